"""bot/matrix/failures.py: which homeserver failures are waited out, which log in again,
which stop the bot with EX_CONFIG."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from nio import LoginError, LoginResponse, SyncError, SyncResponse

from bot.matrix.failures import Failure, classify_response, describe, is_transport_error


def error(cls: type, body: object, status: int | None) -> object:
    response = cls.from_dict(body)
    response.transport_response = SimpleNamespace(status=status) if status else None
    return response


@pytest.mark.parametrize(
    ("cls", "body", "status", "expected"),
    [
        # a reverse proxy's HTML page while the homeserver restarts: no Matrix error at all
        (SyncError, None, 502, Failure.TRANSIENT),
        (LoginError, None, 503, Failure.TRANSIENT),
        (SyncResponse, None, 504, Failure.TRANSIENT),
        (SyncResponse, {"errcode": "M_UNKNOWN", "error": "Internal error"}, 500, Failure.TRANSIENT),
        (SyncResponse, {"errcode": "M_LIMIT_EXCEEDED", "error": "slow"}, 429, Failure.TRANSIENT),
        (SyncResponse, {"errcode": "M_UNKNOWN_TOKEN", "error": "gone"}, 401, Failure.LOST_TOKEN),
        (
            SyncResponse,
            {"errcode": "M_UNKNOWN_TOKEN", "error": "expired", "soft_logout": True},
            401,
            Failure.LOST_TOKEN,
        ),
        (LoginResponse, {"errcode": "M_FORBIDDEN", "error": "Invalid pw"}, 403, Failure.FATAL),
        (LoginResponse, {"errcode": "M_USER_DEACTIVATED", "error": "x"}, 403, Failure.FATAL),
    ],
)
def test_classify(cls: type, body: object, status: int | None, expected: Failure) -> None:
    assert classify_response(error(cls, body, status)) is expected


def test_success_is_no_failure_and_transport_errors_are_transient() -> None:
    ok = LoginResponse("@bot:example.org", "DEVICE", "token")
    assert classify_response(ok) is None
    assert is_transport_error(aiohttp.ClientConnectionError("refused"))
    assert is_transport_error(ConnectionRefusedError(111, "refused"))
    assert is_transport_error(TimeoutError())
    assert not is_transport_error(ValueError("a bug"))


def test_describe_names_status_errcode_and_soft_logout_but_no_body() -> None:
    soft = error(
        SyncResponse,
        {"errcode": "M_UNKNOWN_TOKEN", "error": "secret-ish text", "soft_logout": True},
        401,
    )
    assert describe(soft) == "HTTP 401, M_UNKNOWN_TOKEN, soft logout"
    assert describe(error(SyncError, None, 502)) == "HTTP 502"
    assert describe(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
