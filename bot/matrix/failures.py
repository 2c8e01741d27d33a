"""What a failed homeserver request means for the bot: wait and retry, log in again, or stop.

Only a refusal that no retry can change (bad credentials, a deactivated account, a request
the server rejects as malformed) is a configuration error; a homeserver that is down,
restarting behind a reverse proxy (502/503/504), slow or rate-limiting is transient, and
`M_UNKNOWN_TOKEN` (also a soft logout) means the access token is gone while the device may
live on: log in again with the password and the same device ID.
"""

from __future__ import annotations

import enum

import aiohttp
from nio import ErrorResponse


class Failure(enum.Enum):
    TRANSIENT = "transient"  # retry with back-off
    LOST_TOKEN = "relogin"  # noqa: S105 - not a secret; the access token is no longer accepted: log in again
    FATAL = "fatal"  # a configuration problem: stop with EX_CONFIG


# Errcodes that say "not now" rather than "never".
_TRANSIENT_ERRCODES = frozenset({"M_LIMIT_EXCEEDED", "M_UNKNOWN"})
_TRANSIENT_HTTP = frozenset({408, 425, 429})


def http_status(response: ErrorResponse) -> int | None:
    transport = getattr(response, "transport_response", None)
    status = getattr(transport, "status", None)
    return status if isinstance(status, int) else None


def classify_response(response: object) -> Failure | None:
    """None for a successful response, else what the failure means."""
    if not isinstance(response, ErrorResponse):
        return None
    if response.status_code == "M_UNKNOWN_TOKEN":
        return Failure.LOST_TOKEN
    status = http_status(response)
    if status is not None and (status >= 500 or status in _TRANSIENT_HTTP):
        return Failure.TRANSIENT
    if response.status_code is None or response.status_code in _TRANSIENT_ERRCODES:
        # No Matrix error at all: a proxy's HTML page, a truncated body. Not the homeserver
        # refusing the bot, so not a reason to stop.
        return Failure.TRANSIENT
    return Failure.FATAL


def is_transport_error(exc: BaseException) -> bool:
    """Connection refused or reset, DNS, TLS, timeouts: the network, not the configuration."""
    return isinstance(exc, aiohttp.ClientError | OSError | TimeoutError)


def describe(outcome: object) -> str:
    """One log-safe line for a failed response or exception (no bodies, no tokens)."""
    if isinstance(outcome, BaseException):
        text = str(outcome)
        return f"{type(outcome).__name__}: {text}" if text else type(outcome).__name__
    if isinstance(outcome, ErrorResponse):
        status = http_status(outcome)
        parts = [f"HTTP {status}" if status is not None else "no HTTP status"]
        if outcome.status_code:
            parts.append(str(outcome.status_code))
        if getattr(outcome, "soft_logout", False):
            parts.append("soft logout")
        return ", ".join(parts)
    return type(outcome).__name__
