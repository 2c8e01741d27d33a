"""`cvdbot doctor`: does this deployment work? One line per check, ok / warning / failed,
with what to do. It changes nothing: the mailbox is opened read-only (EXAMINE), SMTP gets
EHLO and QUIT, the homeserver is asked with the bot's stored token (no sync, no device;
without a stored device it logs in and out again, which leaves no device behind), gpg only
signs a test string, and the database is opened read-only.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import holidays

from bot.config import Config

Verdict = Literal["ok", "warning", "failed"]


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.verdict:<8} {self.name:<12} {self.detail}"
        return f"{text} -> {self.fix}" if self.fix and self.verdict != "ok" else text


class _Matrix:
    """Plain client-server API calls with the bot's token; nothing stored."""

    def __init__(self, http: aiohttp.ClientSession, homeserver: str, token: str | None) -> None:
        self._http = http
        self._base = homeserver.rstrip("/")
        self.token = token

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self._http.request(
            method, self._base + path, json=body, headers=headers
        ) as response:
            try:
                data = await response.json(content_type=None)
            except (json.JSONDecodeError, aiohttp.ContentTypeError):
                data = {}
            return response.status, data if isinstance(data, dict) else {}


async def _matrix_checks(config: Config) -> list[Check]:
    m = config.matrix
    checks: list[Check] = []
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        api = _Matrix(http, m.homeserver, None)
        try:
            status, versions = await api.call("GET", "/_matrix/client/versions")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return [
                Check(
                    "homeserver",
                    "failed",
                    f"{m.homeserver} unreachable ({type(exc).__name__})",
                    "check matrix.homeserver and the network",
                )
            ]
        if status != 200:
            return [Check("homeserver", "failed", f"{m.homeserver} answered {status}", "")]
        newest = (versions.get("versions") or ["?"])[-1]
        checks.append(Check("homeserver", "ok", f"{m.homeserver} reachable (spec {newest})"))

        session_file = Path(m.store_path) / "session.json"
        temporary = False
        if session_file.exists():
            api.token = json.loads(session_file.read_text(encoding="utf-8"))["access_token"]
        else:
            status, login = await api.call(
                "POST",
                "/_matrix/client/v3/login",
                {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": m.user_id},
                    "password": m.password.get_secret_value(),
                    "initial_device_display_name": "cvdbot doctor (logged out again)",
                },
            )
            if status != 200:
                checks.append(
                    Check(
                        "login",
                        "failed",
                        f"password login as {m.user_id} refused ({login.get('errcode', status)})",
                        "check matrix.user_id and matrix.password",
                    )
                )
                return checks
            api.token = login["access_token"]
            temporary = True
        try:
            checks.extend(await _account_checks(api, config, temporary))
        finally:
            if temporary:
                await api.call("POST", "/_matrix/client/v3/logout", {})
    return checks


async def _account_checks(api: _Matrix, config: Config, temporary: bool) -> list[Check]:
    m = config.matrix
    checks: list[Check] = []
    status, who = await api.call("GET", "/_matrix/client/v3/account/whoami")
    if status != 200:
        return [
            Check(
                "login",
                "failed",
                f"the stored access token is refused ({who.get('errcode', status)})",
                f"move {m.store_path} aside so the bot logs in again (a new device)",
            )
        ]
    if temporary:
        checks.append(
            Check(
                "login",
                "warning",
                f"password login as {who.get('user_id')} works; no device stored yet",
                "run `cvdbot run` once: it creates the bot's device and keys",
            )
        )
    else:
        checks.append(
            Check("login", "ok", f"logged in as {who.get('user_id')} device {who.get('device_id')}")
        )
    status, joined = await api.call("GET", "/_matrix/client/v3/joined_rooms")
    rooms = set(joined.get("joined_rooms") or [])
    bot = str(who.get("user_id"))
    checks.append(await _room_check(api, "case room", m.case_room, rooms, bot, needs_crypto=True))
    if m.digest_room and m.digest_room != m.case_room:
        checks.append(
            await _room_check(api, "digest room", m.digest_room, rooms, bot, needs_crypto=False)
        )
    return checks


async def _room_check(
    api: _Matrix, name: str, room_id: str, rooms: set[str], bot: str, *, needs_crypto: bool
) -> Check:
    if room_id not in rooms:
        return Check(name, "failed", f"the bot is not in {room_id}", "invite the bot to the room")
    room = quote(room_id, safe="")
    status, encryption = await api.call(
        "GET", f"/_matrix/client/v3/rooms/{room}/state/m.room.encryption/"
    )
    encrypted = status == 200 and bool(encryption.get("algorithm"))
    if needs_crypto and not encrypted:
        return Check(
            name,
            "failed",
            f"{room_id} is not end-to-end encrypted; cvdbot will not post case content there",
            "enable encryption in the room (it cannot be turned off again)",
        )
    status, levels = await api.call(
        "GET", f"/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"
    )
    mine = int((levels.get("users") or {}).get(bot, levels.get("users_default", 0)))
    events = levels.get("events") or {}
    kind = "m.room.encrypted" if encrypted else "m.room.message"
    post = int(events.get(kind, levels.get("events_default", 0)))
    # The bot redacts only its own events (after deletion), which needs the level to send
    # m.room.redaction, not the "redact" level for other people's events.
    redact = int(events.get("m.room.redaction", levels.get("events_default", 0)))
    if mine < post:
        return Check(name, "failed", f"the bot (level {mine}) may not post (needs {post})", "")
    where = f"{room_id} joined, {'encrypted' if encrypted else 'not encrypted'}"
    if mine < redact:
        return Check(
            name,
            "warning",
            f"{where}; the bot (level {mine}) may post but not redact (needs {redact})",
            "raise the bot's power level, so it can redact its posts of a deleted case",
        )
    return Check(name, "ok", f"{where}, may post and redact")


async def _imap_check(config: Config) -> Check:
    from bot.mailin.imap import ImapError, probe_mailbox

    try:
        detail = await probe_mailbox(config.imap)
    except (ImapError, OSError, TimeoutError) as exc:
        return Check(
            "imap",
            "failed",
            f"{config.imap.host}:{config.imap.port}: {exc or type(exc).__name__}",
            "check the imap section (host, port, security, username, password, folder)",
        )
    except Exception as exc:  # noqa: BLE001 - aioimaplib raises its own types too
        return Check("imap", "failed", f"{type(exc).__name__}: {exc}", "check the imap section")
    return Check("imap", "ok", detail)


async def _smtp_check(config: Config) -> Check:
    from bot.mailout.reporter import SmtpDeliveryError, SmtpSender

    try:
        detail = await SmtpSender(config).probe()
    except SmtpDeliveryError as exc:
        return Check(
            "smtp",
            "failed",
            f"{config.smtp.host}:{config.smtp.port}: {exc}",
            "check the smtp section and that the server is up",
        )
    return Check("smtp", "ok", detail)


def _gpg_check(config: Config) -> Check:
    from bot.pgp.gpg import Pgp, PgpError

    home = Path(config.pgp.gnupg_home)
    if not home.is_dir():
        return Check("gpg", "failed", f"no gpg home at {home}", "import the bot's key there")
    try:
        pgp = Pgp(home, config.pgp.key_fingerprint, config.pgp.passphrase.get_secret_value())
        result = pgp.check_own_key(time.time())
    except PgpError as exc:
        return Check("gpg", "failed", str(exc), "check the pgp section")
    if not result.ok:
        return Check("gpg", "failed", result.detail, "see README, 'The bot's PGP key'")
    if result.warning:
        return Check("gpg", "warning", result.detail, "extend the key's expiry date")
    return Check("gpg", "ok", result.detail)


def _calendar_check(config: Config) -> Check:
    policy = config.policy
    try:
        zone = zoneinfo.ZoneInfo(policy.timezone)
    except zoneinfo.ZoneInfoNotFoundError:
        return Check("calendar", "failed", f"no time zone data for {policy.timezone}", "")
    year = datetime.now(UTC).astimezone(zone).year
    days = holidays.country_holidays(policy.holiday_country, years=[year, year + 1])
    if not days:
        return Check("calendar", "failed", f"no {policy.holiday_country} holidays for {year}", "")
    return Check(
        "calendar",
        "ok",
        f"{policy.timezone}, {len(days)} {policy.holiday_country} holidays in {year}-{year + 1}",
    )


def _database_check(config: Config) -> Check:
    from storage.db import migrations, schema_version_read_only

    path = Path(config.storage.path)
    if not path.exists():
        return Check("database", "warning", f"{path} does not exist yet", "created on first run")
    known = max(version for version, _, _ in migrations())
    try:
        version = schema_version_read_only(path)
    except sqlite3.Error as exc:
        return Check("database", "failed", f"{path}: {exc}", "check storage.path")
    if version > known:
        return Check(
            "database",
            "failed",
            f"{path} is at schema {version}, newer than this cvdbot ({known})",
            "install the cvdbot that wrote it, or restore a backup",
        )
    pending = f", {known - version} migration(s) to apply at start" if version < known else ""
    return Check("database", "ok", f"{path} at schema {version}{pending}")


async def run_checks(config: Config) -> list[Check]:
    async def guarded(name: str, check: Callable[[], Awaitable[Any]]) -> list[Check]:
        try:
            result = await asyncio.wait_for(check(), 60)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            return [Check(name, "failed", f"the check itself failed: {type(exc).__name__}")]
        return result if isinstance(result, list) else [result]

    results = await asyncio.gather(
        guarded("homeserver", lambda: _matrix_checks(config)),
        guarded("imap", lambda: _imap_check(config)),
        guarded("smtp", lambda: _smtp_check(config)),
        guarded("gpg", lambda: asyncio.to_thread(_gpg_check, config)),
    )
    checks = [check for group in results for check in group]
    checks.append(_calendar_check(config))
    checks.append(_database_check(config))
    return checks
