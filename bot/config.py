"""The bot's configuration: YAML file plus ``CVDBOT_*`` environment overrides, validated.

`load_config` reads the file, applies the environment on top, validates everything at once
and raises `ConfigError` listing every problem with its key path (``imap.port: ...``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import ipaddress
import os
import re
import types
import typing
import zoneinfo
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import holidays
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "ENV_PREFIX",
    "Config",
    "ConfigError",
    "DigestConfig",
    "ImapConfig",
    "LimitsConfig",
    "MatrixConfig",
    "PgpConfig",
    "PolicyConfig",
    "SmtpConfig",
    "StorageConfig",
    "load_config",
]

ENV_PREFIX = "CVDBOT_"
# Variables with the prefix that are not settings: crash points for the fault-injection
# tests (bot/failpoints.py) and the test harness's keep-files switch.
NON_CONFIG_ENV = frozenset({"CVDBOT_FAILPOINTS", "CVDBOT_TEST_KEEP"})

# Key paths whose values must never be shown (in error messages, logs or reprs).
_SECRET_PATHS = frozenset(
    {
        ("matrix", "password"),
        ("imap", "password"),
        ("smtp", "password"),
        ("pgp", "passphrase"),
    }
)


class ConfigError(Exception):
    """Every problem found in a configuration, as (key path, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(self.format())

    def format(self) -> str:
        """One ``- key.path: reason`` line per problem, all of them."""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"The configuration has {count} {noun}:"]
        lines.extend(f"- {where}: {why}" for where, why in self.problems)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


# --------------------------------------------------------------------------------------
# YAML loading
# --------------------------------------------------------------------------------------


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars and duplicate-key detection.

    PyYAML follows YAML 1.1, where ``17:00`` is the number 1020 (base 60), ``NO`` (Norway)
    is ``False`` and ``0123`` is octal; all three are real traps in this file (times,
    country codes, passwords). Only plain decimal integers, ``true``/``false`` and
    ``null`` are implicit here; everything else stays text.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML silently keeps the last of two equal keys; a config with the same key twice
        # is almost always a copy-paste mistake, so say where.
        seen: dict[Any, yaml.Node] = {}
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first set on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_ConfigLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
    list("-+0123456789"),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass


# --------------------------------------------------------------------------------------
# Reusable field types
# --------------------------------------------------------------------------------------

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
_ISO_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_FINGERPRINT_RE = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")


def _no_bool(value: Any) -> Any:
    # bool is an int subclass: `port: true` must not quietly become port 1.
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number, not {str(value).lower()}")
    return value


def _text(value: Any) -> Any:
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


def _iso_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE_RE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date written YYYY-MM-DD, like 2026-12-24")


def _path(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, str):
        if not value:
            raise ValueError("must not be empty")
        if value.startswith("~"):
            # Expanding ~ would depend on whoever runs the bot; be explicit instead.
            raise ValueError("'~' is not expanded; write the full path or one relative to the file")
    return value


Text = Annotated[str, BeforeValidator(_text), AfterValidator(_not_empty)]
Host = Annotated[str, BeforeValidator(_text), AfterValidator(_not_empty), AfterValidator(_hostname)]
Port = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=65535)]
PositiveInt = Annotated[int, BeforeValidator(_no_bool), Field(gt=0)]
MatrixUserId = Annotated[str, BeforeValidator(_text), AfterValidator(_matrix_user_id)]
MatrixRoomId = Annotated[str, BeforeValidator(_text), AfterValidator(_matrix_room_id)]
EmailAddress = Annotated[str, BeforeValidator(_text), AfterValidator(_email_address)]
ClockTime = Annotated[str, BeforeValidator(_hhmm)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
ConfigPath = Annotated[Path, BeforeValidator(_path)]
Security = Literal["tls", "starttls", "none"]


def _resolve(value: Path, info: ValidationInfo) -> Path:
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


def _check_security(value: str, info: ValidationInfo) -> str:
    host = info.data.get("host")
    if value == "none" and host is not None and not _is_loopback(host):
        raise ValueError(
            f"'none' is only allowed for a loopback host (localhost, 127.0.0.1, ::1), not "
            f"{host!r}: credentials and vulnerability reports would cross the network in "
            "clear text; use 'tls' or 'starttls'"
        )
    return value


_Frozen = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


# --------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------


class MatrixConfig(BaseModel):
    """The bot's Matrix account, its rooms and who may command it."""

    model_config = _Frozen

    homeserver: str
    user_id: MatrixUserId
    password: SecretStr
    device_name: Text = "cvdbot"
    store_path: ConfigPath
    case_room: MatrixRoomId
    digest_room: MatrixRoomId | None = None
    team: list[MatrixUserId] = Field(default_factory=list)
    managers: list[MatrixUserId] = Field(default_factory=list)

    @field_validator("homeserver", mode="before")
    @classmethod
    def _homeserver_url(cls, value: Any) -> Any:
        value = _text(value)
        if not isinstance(value, str):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL like https://matrix.example.org")
        # Clients join API paths onto this; a trailing slash would double it.
        return value.rstrip("/")

    @field_validator("store_path")
    @classmethod
    def _resolve_store_path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("managers")
    @classmethod
    def _someone_in_charge(cls, value: list[str], info: ValidationInfo) -> list[str]:
        team = info.data.get("team")
        if team is not None and not team and not value:
            raise ValueError(
                "team and managers are both empty: nobody could run case commands; "
                "name at least one Matrix user in either list"
            )
        return value

    @property
    def server_name(self) -> str:
        """The bot's own server name: the part of user_id after the first ':'."""
        return self.user_id.split(":", 1)[1]

    @property
    def effective_digest_room(self) -> str:
        """Where the daily digest goes: digest_room, or case_room when none is set."""
        return self.digest_room or self.case_room


class ImapConfig(BaseModel):
    """The mailbox that receives vulnerability reports."""

    model_config = _Frozen

    host: Host
    port: Port
    security: Security
    username: Text
    password: SecretStr
    folder: Text = "INBOX"

    @field_validator("security")
    @classmethod
    def _clear_text_only_on_loopback(cls, value: str, info: ValidationInfo) -> str:
        return _check_security(value, info)


class SmtpConfig(BaseModel):
    """The server that sends mail to reporters and managers."""

    model_config = _Frozen

    host: Host
    port: Port
    security: Security
    username: Text | None = None
    # validate_default so that a username without any password is caught too.
    password: SecretStr | None = Field(default=None, validate_default=True)
    from_address: EmailAddress

    @field_validator("security")
    @classmethod
    def _clear_text_only_on_loopback(cls, value: str, info: ValidationInfo) -> str:
        return _check_security(value, info)

    @field_validator("password")
    @classmethod
    def _credentials_in_pairs(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # Checked on `password` because `username` has been validated by then.
        if "username" not in info.data:
            return value
        username = info.data["username"]
        if username is not None and value is None:
            raise ValueError("smtp.username is set, so the password is needed as well")
        if username is None and value is not None:
            raise ValueError("a password without smtp.username cannot be used; set both")
        return value

    @property
    def from_domain(self) -> str:
        """Domain of from_address, lower-cased (used for Message-IDs)."""
        return self.from_address.rsplit("@", 1)[1].lower()


class PgpConfig(BaseModel):
    """The bot's own OpenPGP key: decrypts incoming reports, signs outgoing mail."""

    model_config = _Frozen

    gnupg_home: ConfigPath
    key_fingerprint: str
    passphrase: SecretStr

    @field_validator("gnupg_home")
    @classmethod
    def _resolve_gnupg_home(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("key_fingerprint", mode="before")
    @classmethod
    def _fingerprint(cls, value: Any) -> Any:
        value = _text(value)
        if not isinstance(value, str):
            return value
        # gpg prints fingerprints in groups of four; accept that form as pasted.
        compact = value.replace(" ", "").upper().removeprefix("0X")
        if not _FINGERPRINT_RE.match(compact):
            raise ValueError(
                "must be the key's full fingerprint (40 hex digits, as `gpg --fingerprint` "
                "shows it), not a short key ID"
            )
        return compact


class StorageConfig(BaseModel):
    """Where cases, mails and the audit log are kept."""

    model_config = _Frozen

    path: ConfigPath

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


DEFAULT_WARNINGS = ("50%", "1 working day left", "overdue")
# The forms bot/watch/deadline_warnings.py understands: a share of the time used, working
# time left, or the deadline passed.
WARNING_POINT_RE = re.compile(
    r"^(?:([1-9][0-9]?)%|([1-9][0-9]*) working (day|hour)s? left|overdue)$"
)


def _warning_points(value: list[str]) -> list[str]:
    points = [" ".join(str(item).split()).lower() for item in value]
    bad = [
        repr(item)
        for item, point in zip(value, points, strict=True)
        if not WARNING_POINT_RE.match(point)
    ]
    if bad:
        raise ValueError(
            f'{", ".join(bad)}: a warning point is a share of the time used ("50%"), working '
            'time left ("1 working day left", "4 working hours left") or "overdue"'
        )
    if "overdue" not in points:
        raise ValueError('must include "overdue": an overdue case is what reaches the managers')
    if len(set(points)) != len(points):
        raise ValueError("names a warning point twice")
    return points


@functools.lru_cache(maxsize=8)
def _holiday_names(country: str) -> frozenset[str]:
    """Case-folded names the holidays package uses for `country`, native and English.

    Without an explicit language the package picks one from LANG, so both are accepted.
    """
    probe = holidays.country_holidays(country)
    languages: set[str | None] = {
        lang for lang in (probe.default_language, "en_US") if lang in probe.supported_languages
    } or {None}
    names: set[str] = set()
    for language in languages:
        calendar = holidays.country_holidays(country, years=range(2000, 2051), language=language)
        for joined in calendar.values():
            # Two holidays on one day come back as "A; B".
            names.update(part.strip().casefold() for part in str(joined).split(";"))
    return frozenset(names)


class PolicyConfig(BaseModel):
    """The CVD policy's promises and the calendar they are counted in."""

    model_config = _Frozen

    timezone: str = "Europe/Amsterdam"
    holiday_country: str = "NL"
    acknowledge_within_working_days: PositiveInt = 2
    assess_within_working_days: PositiveInt = 5
    fix_within_days: PositiveInt = 90
    default_language: Literal["nl", "en"] = "nl"
    business_hours_start: ClockTime = "09:00"
    business_hours_end: ClockTime = "17:00"
    closing_days: list[IsoDate] = Field(default_factory=list)
    working_holidays: list[date | str] = Field(default_factory=list)
    liberation_day: Literal["every_year", "package"] = "package"
    # When the case thread is warned about a deadline (bot/watch/deadline_warnings.py parses these).
    warnings: Annotated[list[str], AfterValidator(_warning_points)] = Field(
        default_factory=lambda: list(DEFAULT_WARNINGS)
    )

    @field_validator("timezone", mode="before")
    @classmethod
    def _known_zone(cls, value: Any) -> Any:
        value = _text(value)
        if not isinstance(value, str):
            return value
        known = zoneinfo.available_timezones()
        # available_timezones() is empty when no tz database is found; then let ZoneInfo
        # decide rather than rejecting every zone.
        if known and value not in known:
            close = difflib.get_close_matches(value, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"must be an IANA time zone like Europe/Amsterdam{hint}")
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone like Europe/Amsterdam") from None
        return value

    @field_validator("holiday_country", mode="before")
    @classmethod
    def _known_country(cls, value: Any) -> Any:
        value = _text(value)
        if not isinstance(value, str):
            return value
        code = value.upper()
        if code not in holidays.list_supported_countries():
            raise ValueError("must be a country code the holidays package knows, like NL, BE or DE")
        return code

    @field_validator("business_hours_end")
    @classmethod
    def _end_after_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("business_hours_start")
        if start is not None and value <= start:
            raise ValueError(f"must be later than business_hours_start ({start})")
        return value

    @field_validator("working_holidays", mode="before")
    @classmethod
    def _holiday_entries(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list):
            return value
        country = info.data.get("holiday_country")
        known = _holiday_names(country) if country else None
        entries: list[date | str] = []
        bad: list[str] = []
        unknown: list[str] = []
        for entry in value:
            if isinstance(entry, date) or (isinstance(entry, str) and _ISO_DATE_RE.match(entry)):
                try:
                    entries.append(_iso_date(entry))
                except ValueError:
                    bad.append(repr(entry))
            elif isinstance(entry, str) and entry.strip():
                name = entry.strip()
                if known is not None and name.casefold() not in known:
                    unknown.append(repr(name))
                entries.append(name)
            else:
                bad.append(repr(entry))
        # One field gets one message, so every bad entry is named in it.
        reasons = []
        if bad:
            reasons.append(
                f"{', '.join(bad)}: not a holiday name or a real date written YYYY-MM-DD"
            )
        if unknown:
            reasons.append(
                f"{', '.join(unknown)}: not a holiday in {country} as the holidays package "
                "names it (its Dutch or English name, e.g. 'Good Friday' or 'Goede vrijdag')"
            )
        if reasons:
            raise ValueError("; ".join(reasons))
        return entries

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The policy's time zone as a tzinfo."""
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def business_hours_start_time(self) -> dt.time:
        return dt.time.fromisoformat(self.business_hours_start)

    @property
    def business_hours_end_time(self) -> dt.time:
        return dt.time.fromisoformat(self.business_hours_end)

    @property
    def working_holiday_dates(self) -> frozenset[date]:
        """The working_holidays given as dates."""
        return frozenset(item for item in self.working_holidays if isinstance(item, date))

    @property
    def working_holiday_names(self) -> frozenset[str]:
        """The working_holidays given as names, case-folded for matching."""
        return frozenset(item.casefold() for item in self.working_holidays if isinstance(item, str))


class DigestConfig(BaseModel):
    """The managers' daily digest."""

    model_config = _Frozen

    time: ClockTime = "08:30"
    email_to: list[EmailAddress] = Field(default_factory=list)
    # How far ahead the digest's "due soon" list looks.
    due_within_working_days: PositiveInt = 3

    @property
    def time_of_day(self) -> dt.time:
        """`time` as a datetime.time (in the policy's time zone)."""
        return dt.time.fromisoformat(self.time)


class LimitsConfig(BaseModel):
    """How much of a report is copied into the Matrix thread."""

    model_config = _Frozen

    max_body_chars_in_thread: PositiveInt = 20000
    max_attachment_bytes_in_thread: PositiveInt = 10 * 1024 * 1024


_OPTIONAL_SECTIONS = ("policy", "digest", "limits")


class Config(BaseModel):
    """The whole configuration file."""

    model_config = _Frozen

    matrix: MatrixConfig
    imap: ImapConfig
    smtp: SmtpConfig
    pgp: PgpConfig
    storage: StorageConfig
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_optional_sections(cls, data: Any) -> Any:
        # `digest:` with nothing under it is YAML null; treat it like a left-out section.
        if isinstance(data, dict):
            return {
                key: value
                for key, value in data.items()
                if not (key in _OPTIONAL_SECTIONS and value is None)
            }
        return data


# --------------------------------------------------------------------------------------
# Environment overrides
# --------------------------------------------------------------------------------------


def _section_models() -> dict[str, type[BaseModel]]:
    sections: dict[str, type[BaseModel]] = {}
    for name, info in Config.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            sections[name] = annotation
    return sections


def _annotation_kind(annotation: Any) -> Literal["secret", "list", "text", "other"]:
    """How an environment string for a field of this type is turned into a value."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = {_annotation_kind(arg) for arg in args if arg is not type(None)}
        for kind in ("secret", "list", "text"):
            if kind in kinds:
                return kind
        return "other"
    if origin is typing.Annotated:
        return _annotation_kind(args[0])
    if annotation is SecretStr:
        return "secret"
    if origin is list:
        return "list"
    if annotation in (str, Path) or origin is Literal:
        return "text"
    return "other"


def _env_suggestion(key: str, sections: Mapping[str, type[BaseModel]]) -> str:
    candidates = [
        f"{ENV_PREFIX}{section.upper()}__{field.upper()}"
        for section, model in sections.items()
        for field in model.model_fields
    ]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.8)
    return f"; did you mean {close[0]}?" if close else ""


def _env_value(raw: str, kind: str) -> tuple[Any, str | None]:
    """Turn one environment string into a config value, or explain why it can't be."""
    if kind == "secret":
        # A password may legitimately look like YAML (start with a quote, be all digits).
        return raw, None
    try:
        parsed = _yaml_load(raw)
    except yaml.YAMLError as exc:
        if kind == "list":
            reason = getattr(exc, "problem", None) or "syntax error"
            return None, f'must be a YAML list like ["@alice:example.org"] ({reason})'
        # Text such as "@cvdbot:example.org" or "!room:x" is not valid YAML; take it as is.
        return raw, None
    if kind == "text":
        # Quoted YAML strings lose their quotes; anything else ("#x", "123") stays literal.
        return (parsed if isinstance(parsed, str) else raw), None
    return parsed, None


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """Apply CVDBOT_* overrides to `data` in place; return problems with unknown names."""
    problems: list[tuple[str, str]] = []
    sections = _section_models()
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX) or key in NON_CONFIG_ENV:
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        dotted = ".".join(parts)
        if len(parts) == 1 and parts[0] in sections:
            problems.append(
                (
                    dotted,
                    f"environment variable {key} names a whole section; set its keys one "
                    f"by one, e.g. {key}__{next(iter(sections[parts[0]].model_fields)).upper()}",
                )
            )
            continue
        model = sections.get(parts[0]) if len(parts) == 2 else None
        if model is None or parts[1] not in model.model_fields:
            problems.append(
                (
                    dotted,
                    f"environment variable {key} does not name a setting"
                    f"{_env_suggestion(key, sections)}",
                )
            )
            continue
        section, field = parts
        kind = _annotation_kind(model.model_fields[field].annotation)
        value, problem = _env_value(environ[key], kind)
        if problem is not None:
            problems.append((dotted, f"from environment variable {key}: {problem}"))
            continue
        target = data.get(section)
        if target is None:
            target = data[section] = {}
        if isinstance(target, dict):
            target[field] = value
        # A section that is not a mapping in the file is reported by validation anyway.
    return problems


# --------------------------------------------------------------------------------------
# Turning pydantic errors into plain sentences
# --------------------------------------------------------------------------------------


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    return len(loc) >= 2 and (loc[0], loc[1]) in _SECRET_PATHS


def _showable(value: Any) -> bool:
    scalar = (str, int, float, bool, date, type(None))
    if isinstance(value, scalar):
        return True
    return isinstance(value, list) and all(isinstance(item, scalar) for item in value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field_names(loc: tuple[int | str, ...]) -> list[str]:
    """Valid keys next to the one at `loc` (for 'did you mean')."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        annotation = model.model_fields.get(str(part))
        target = annotation.annotation if annotation is not None else None
        if not (isinstance(target, type) and issubclass(target, BaseModel)):
            return []
        model = target
    return list(model.model_fields)


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    value = error.get("input")
    if kind == "missing":
        reason = "required setting is missing"
        if _is_secret(loc):
            env = ENV_PREFIX + "__".join(str(part).upper() for part in loc)
            reason += f" (put it here or, better, in the environment variable {env})"
        return reason
    if kind == "extra_forbidden":
        # Never show the value: a misspelt "pasword" still holds a password.
        close = difflib.get_close_matches(str(loc[-1]), _field_names(loc), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown setting{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if value is None:
            return "this section is empty; it needs its settings underneath"
        return "must be a section with settings underneath, not a single value"
    if kind == "value_error":
        reason = str(ctx.get("error", error["msg"]))
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        reason = "must be a whole number"
    elif kind == "greater_than":
        reason = f"must be greater than {ctx.get('gt')}"
    elif kind == "greater_than_equal":
        reason = f"must be at least {ctx.get('ge')}"
    elif kind == "less_than_equal":
        reason = f"must be at most {ctx.get('le')}"
    elif kind == "literal_error":
        reason = f"must be one of {ctx.get('expected')}"
    elif kind == "string_type":
        reason = "must be text"
        if isinstance(value, int | float):
            reason += "; put the value in quotes"
    elif kind == "list_type":
        reason = 'must be a list, like ["a", "b"] (or [] for none)'
    else:
        reason = str(error["msg"])
    if not _is_secret(loc) and _showable(value):
        reason += f" (got {_shown(value)})"
    return reason


def _problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    return [(_key_path(tuple(err["loc"])), _reason(err)) for err in exc.errors()]


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return f"YAML syntax error at {where}{what or 'invalid YAML'}"
    return f"YAML syntax error: {exc}"


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate the configuration at `path`.

    `environ` defaults to the process environment (``os.environ``); pass ``{}`` for none.
    Relative paths in the file are resolved against the file's directory.
    Raises ConfigError listing every problem found.
    """
    if environ is None:
        environ = os.environ
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([(where, "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([(where, "is a directory, not a configuration file")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(where, "is not UTF-8 text")]) from None
    except OSError as exc:
        raise ConfigError([(where, f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([(where, _yaml_problem(exc))]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [(where, "the top level must be a mapping of sections (matrix:, imap:, ...)")]
        )
    problems = _apply_environment(data, environ)
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent.absolute()})
    except ValidationError as exc:
        problems.extend(_problems_from(exc))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config
