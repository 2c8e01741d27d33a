"""Field types and validators shared by the configuration sections (host, port, Matrix IDs...).

Each type names what it accepts and rejects with a sentence an operator can act on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationInfo

_MATRIX_SERVER = r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
_MATRIX_USER_RE = re.compile(rf"^@[^\s:]+:{_MATRIX_SERVER}$")
# Room versions up to 11 have IDs like !opaque:server; version 12 (MSC4291) drops the server.
_MATRIX_ROOM_RE = re.compile(rf"^![^\s:]+(:{_MATRIX_SERVER})?$")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_RE = re.compile(
    rf"^{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_HHMM_RE = re.compile(r"^(?:[01]?[0-9]|2[0-3]):[0-5][0-9]$")
ISO_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
FINGERPRINT_RE = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")


def full_fingerprint(value: Any, whose: str) -> Any:
    """A key's full fingerprint, compacted (gpg prints it in groups of four; that form is
    accepted as pasted); a short key ID is refused. Non-text is left to the type check."""
    value = as_text(value)
    if not isinstance(value, str):
        return value
    compact = value.replace(" ", "").upper().removeprefix("0X")
    if not FINGERPRINT_RE.match(compact):
        raise ValueError(
            f"must be {whose} full fingerprint (40 hex digits, as `gpg --fingerprint` shows "
            "it), not a short key ID"
        )
    return compact


def _no_bool(value: Any) -> Any:
    # bool is an int subclass: `port: true` must not quietly become port 1.
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {str(value).lower()}")
    return value


def as_text(value: Any) -> Any:
    # A bare number where text is expected loses information silently if coerced (leading
    # zeros of a fingerprint, say), so ask for quotes instead.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be text; put the value in quotes")
    if isinstance(value, str):
        return value.strip()
    return value


def _not_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _matrix_user_id(value: str) -> str:
    if not _MATRIX_USER_RE.match(value):
        raise ValueError("must be a Matrix user ID like @name:example.org")
    return value


def _matrix_room_id(value: str) -> str:
    if value.startswith("#"):
        raise ValueError(
            "is a room alias; use the room ID instead (starts with '!', shown under the "
            "room's advanced settings), like !abcdef:example.org"
        )
    if not _MATRIX_ROOM_RE.match(value):
        raise ValueError(
            "must be a Matrix room ID like !abcdef:example.org (or !abcdef in room version 12)"
        )
    return value


def _email_address(value: str) -> str:
    if len(value) > 254 or not _EMAIL_RE.match(value):
        raise ValueError(
            "must be a plain e-mail address like security@example.org "
            "(no display name; international domains in their xn-- form)"
        )
    return value


def _hostname(value: str) -> str:
    if "://" in value:
        raise ValueError("must be a host name only, without a scheme like imaps://")
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not _HOSTNAME_RE.match(value):
            raise ValueError("must be a host name or IP address like mail.example.org") from None
    return value


def _hhmm(value: Any) -> Any:
    if isinstance(value, str) and _HHMM_RE.match(value.strip()):
        # Normalised to HH:MM so "9:00" and "09:00" compare (and sort) alike.
        return value.strip().zfill(5)
    raise ValueError('must be a 24-hour time HH:MM in quotes, like "08:30"')


def iso_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and ISO_DATE_RE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date written YYYY-MM-DD, like 2026-12-24")


def _path(value: Any) -> Any:
    value = as_text(value)
    if isinstance(value, str):
        if not value:
            raise ValueError("must not be empty")
        if value.startswith("~"):
            # Expanding ~ would depend on whoever runs the bot; be explicit instead.
            raise ValueError("'~' is not expanded; write the full path or one relative to the file")
    return value


Text = Annotated[str, BeforeValidator(as_text), AfterValidator(_not_empty)]
Host = Annotated[
    str, BeforeValidator(as_text), AfterValidator(_not_empty), AfterValidator(_hostname)
]
Port = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=65535)]
PositiveInt = Annotated[int, BeforeValidator(_no_bool), Field(gt=0)]
MatrixUserId = Annotated[str, BeforeValidator(as_text), AfterValidator(_matrix_user_id)]
MatrixRoomId = Annotated[str, BeforeValidator(as_text), AfterValidator(_matrix_room_id)]
EmailAddress = Annotated[str, BeforeValidator(as_text), AfterValidator(_email_address)]
ClockTime = Annotated[str, BeforeValidator(_hhmm)]
IsoDate = Annotated[date, BeforeValidator(iso_date)]
ConfigPath = Annotated[Path, BeforeValidator(_path)]
Security = Literal["tls", "starttls", "none"]


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Make a relative path absolute against the config file's directory.

    The bot may be started from anywhere (systemd, cron, a shell), so "relative to the
    working directory" would move its E2EE store around; the file's own directory is fixed.
    """
    if value.is_absolute():
        return value
    context = info.context if isinstance(info.context, Mapping) else {}
    base = context.get("base_dir")
    base_dir = Path(base) if base is not None else Path.cwd()
    return base_dir.absolute() / value


def _is_loopback(host: str) -> bool:
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_security(value: str, info: ValidationInfo) -> str:
    host = info.data.get("host")
    if value == "none" and host is not None and not _is_loopback(host):
        raise ValueError(
            f"'none' is only allowed for a loopback host (localhost, 127.0.0.1, ::1), not "
            f"{host!r}: credentials and vulnerability reports would cross the network in "
            "clear text; use 'tls' or 'starttls'"
        )
    return value


FROZEN = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
