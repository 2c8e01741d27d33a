"""The mailbox side: reads new mail from IMAP with IDLE (polling where IDLE is missing).

The folder's UIDVALIDITY and the last UID ingested are stored after each mail, so a restart
neither skips nor repeats one; should the server renumber the folder (a new UIDVALIDITY), the
folder is read again from the start and Message-ID deduplication keeps that harmless.
Mail is read with BODY.PEEK and left in place: the mailbox stays the team's own record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

import aioimaplib

from bot.config import ImapConfig
from bot.mailin.intake import ATTEMPTS, IntakeFailed, MailIntake
from bot.mailin.parse import NotAMailError
from bot.ops.health import Liveness
from storage import sync_state
from storage.db import Database, StorageUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# The reconnect back-off: 1 s after the first failure, doubling up to this.
MAX_BACKOFF_SECONDS = 60.0
# The longest the server may take to answer a command (DONE, SEARCH, FETCH) before the
# connection counts as dead.
REPLY_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 30.0
# A FETCH of one mail that fails (the server answers NO, or ends the connection with BYE,
# as Dovecot does for a mail file it cannot read, or never answers) is asked again at every
# reconnect: the cause may be passing (a server restarting, a store briefly locked, the
# network). When it has failed for this long and at least FETCH_PASS_AFTER_TRIES times, the
# UID is passed, so one unreadable mail cannot stall the folder: the case room is told
# (`MailIntake.unread`) and the mail stays in the mailbox.
FETCH_PASS_AFTER_SECONDS = 600.0
FETCH_PASS_AFTER_TRIES = 3
_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_EXISTS = re.compile(rb"^(\* )?\d+ EXISTS")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


class ImapError(Exception):
    pass


class ConnectionClosedError(ImapError):
    """The server closed the connection (EOF, or a BYE while idling)."""


class FetchRefused(ImapError):
    """The server answered a FETCH of one UID with NO (or BAD)."""


# Faults of the connection: the server refused a command, went away or went silent.
_CONNECTION_FAULTS = (
    OSError,
    TimeoutError,
    ImapError,
    aioimaplib.Abort,
    aioimaplib.CommandTimeout,
)
# Faults of the connection, the disk or the database, not of the mail being read: they end
# the session and the mail is read again after the reconnect, never counted against it
# (a FETCH that keeps failing is the exception: see FETCH_PASS_AFTER_SECONDS).
_NOT_THE_MAILS_FAULT = (*_CONNECTION_FAULTS, StorageUnavailable)


class _WatchfulProtocol(aioimaplib.IMAP4ClientProtocol):
    """Notes every untagged EXISTS, including those aioimaplib drops.

    aioimaplib ignores an untagged response that arrives while no command is pending: an
    EXISTS sent between our UID SEARCH and the start of IDLE would be lost, and the new mail
    would wait until IDLE is renewed. The flag closes that gap.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exists_seen = asyncio.Event()
        # Set on EOF or a reset: aioimaplib itself leaves a pending IDLE waiting forever.
        self.closed = asyncio.Event()
        self.goodbye = ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        super().connection_lost(exc)

    def _untagged_response(self, line: bytes) -> Any:
        if _EXISTS.search(line):
            self.exists_seen.set()
        if line.startswith((b"BYE", b"* BYE")):
            # The server's last words before it hangs up: why, for the log and the room.
            self.goodbye = _printable(bytes(line).removeprefix(b"* "))
        return super()._untagged_response(line)


class _Imap(aioimaplib.IMAP4):
    protocol: _WatchfulProtocol

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _WatchfulProtocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(f"IMAP {what} failed: {response.result}")
    return response


class ImapSource:
    def __init__(self, config: ImapConfig, db: Database, intake: MailIntake) -> None:
        # Failures per (UIDVALIDITY, UID) that were not the connection's: a mail is read
        # again after the first, and passed (quarantined) after the second.
        self._failures: dict[tuple[int, int], int] = {}
        # FETCHes of a (UIDVALIDITY, UID) that failed: when first, and how many times; see
        # FETCH_PASS_AFTER_SECONDS.
        self._fetch_failed: dict[tuple[int, int], tuple[float, int]] = {}
        self._config = config
        self._db = db
        self._intake = intake
        self.connected = asyncio.Event()
        self.liveness: Liveness | None = None  # heartbeats for /healthz (bot/ops/health.py)
        # A short renew interval (tests) gets an equally short patience for answers.
        self._reply_timeout = min(REPLY_TIMEOUT_SECONDS, max(2.0, config.idle_renew_seconds))

    async def run(self) -> None:
        """Read mail until cancelled, reconnecting with back-off after any failure.

        Every session starts by reading from the stored UID on, so mail that arrived while
        the connection was down is read then, none skipped. Any exception ends only the
        session, never the loop: a dropped or silent connection, a protocol timeout
        (aioimaplib's CommandTimeout), a database that refused a write (the mail was not
        stored and its UID not recorded, so it is read again), or whatever one mail caused
        (logged by its type and UID only, its text may quote the mail; see `_read_one`).
        """
        backoff = 1.0
        while True:
            began = asyncio.get_running_loop().time()
            try:
                await self._session()
            except Exception as exc:  # noqa: BLE001 - see the docstring: the loop survives
                self.connected.clear()
                if asyncio.get_running_loop().time() - began > 60:
                    backoff = 1.0  # the session worked for a while: a fresh failure
                if isinstance(exc, StorageUnavailable):
                    log.error(
                        "mail not stored (database refused the write); it stays in the "
                        "mailbox and is read again in %.0f s",
                        backoff,
                    )
                elif isinstance(exc, FetchRefused):
                    log.warning("%s; asking again in %.0f s", exc, backoff)
                elif isinstance(exc, _CONNECTION_FAULTS):
                    log.warning(
                        "IMAP connection lost (%s); reconnecting in %.0f s", _describe(exc), backoff
                    )
                else:
                    log.error(
                        "IMAP session ended by %s; reconnecting in %.0f s",
                        type(exc).__name__,
                        backoff,
                    )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            else:
                backoff = 1.0

    async def _connect(self) -> _Imap:
        return await _login(self._config, self._reply_timeout)

    async def _session(self) -> None:
        imap = await asyncio.wait_for(self._connect(), self._reply_timeout)
        try:
            selected = _ok(await imap.select(self._config.folder), "select")
            uidvalidity = _uidvalidity(selected.lines)
            self.connected.set()
            log.info("IMAP connected to %s:%s", self._config.host, self._config.port)
            idle = "IDLE" in imap.protocol.capabilities
            while True:
                await self._fetch_new(imap, uidvalidity)
                if self.liveness is not None:
                    self.liveness.beat("imap")
                if idle:
                    await self._idle(imap)
                else:
                    await self._poll_wait(imap)
        finally:
            self.connected.clear()
            if not imap.protocol.closed.is_set():  # else nobody is left to say goodbye to
                try:
                    await asyncio.wait_for(imap.logout(), min(5.0, self._reply_timeout))
                except (OSError, TimeoutError, aioimaplib.Abort, aioimaplib.CommandTimeout,
                        asyncio.CancelledError):  # fmt: skip
                    pass
            # A silent connection never answers LOGOUT: close our end, leave no socket behind.
            if imap.protocol.transport is not None:
                imap.protocol.transport.close()

    async def _poll_wait(self, imap: _Imap) -> None:
        """Without IDLE: wait for the next poll, then check the connection with NOOP."""
        closed = imap.protocol.closed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), POLL_SECONDS)
        if closed.is_set():
            raise ConnectionClosedError("the server closed the connection")
        _ok(await asyncio.wait_for(imap.noop(), self._reply_timeout), "NOOP")

    async def _idle(self, imap: _Imap) -> None:
        """IDLE until new mail, the renew interval, or the end of the connection.

        The renewal is the liveness check: after DONE the server must answer within the
        reply timeout, or the connection counts as dead (a NAT that dropped it says nothing).
        """
        renew = self._config.idle_renew_seconds
        protocol = imap.protocol
        if protocol.closed.is_set():
            raise ConnectionClosedError("the server closed the connection")
        idle_task = await asyncio.wait_for(
            imap.idle_start(timeout=renew + self._reply_timeout), self._reply_timeout
        )
        closed = asyncio.ensure_future(protocol.closed.wait())
        deadline = asyncio.get_running_loop().time() + renew
        try:
            # A mail that arrived since the last search: read it now instead of idling.
            while imap.has_pending_idle() and not protocol.exists_seen.is_set():
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                push = _quiet(asyncio.ensure_future(imap.wait_server_push(timeout=left)))
                done, _ = await asyncio.wait({push, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed in done:
                    push.cancel()
                    raise ConnectionClosedError("the server closed the connection")
                try:
                    pushed = push.result()
                except TimeoutError:
                    break
                lines = [bytes(line) for line in pushed if isinstance(line, bytes | bytearray)]
                if any(line.startswith((b"BYE", b"* BYE")) for line in lines):
                    raise ConnectionClosedError("the server said BYE")
                if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH or any(
                    b"EXISTS" in line for line in lines
                ):
                    break
        finally:
            closed.cancel()
            if imap.has_pending_idle() and not protocol.closed.is_set():
                imap.idle_done()
        if protocol.closed.is_set():
            raise ConnectionClosedError("the server closed the connection")
        try:
            await asyncio.wait_for(asyncio.shield(idle_task), self._reply_timeout)
        except TimeoutError:
            idle_task.cancel()
            raise ImapError(
                f"no answer to DONE within {self._reply_timeout:.0f} s: the connection is dead"
            ) from None

    async def _fetch_new(self, imap: _Imap, uidvalidity: int) -> None:
        folder = self._config.folder
        # Cleared before the search: any EXISTS from here on means there may be more to read.
        imap.protocol.exists_seen.clear()
        async with self._db.transaction() as conn:
            position = await sync_state.imap_position(conn, folder)
            backlog = await sync_state.get_value(conn, f"imap_backlog:{folder}")
        last_uid = 0
        if position is None:
            top = await _highest_uid(imap)
            async with self._db.transaction() as conn:
                if self._config.start_at == "now":
                    # First start: the mail already there is history, not new reports.
                    await sync_state.set_imap_position(conn, folder, uidvalidity, top)
                    log.info("first start on %s: taking mail after UID %d only", folder, top)
                    return
                backlog = str(top)
                await sync_state.set_value(conn, f"imap_backlog:{folder}", backlog)
                log.info("first start on %s: importing the backlog up to UID %d", folder, top)
        backlog_top = int(backlog) if backlog else 0
        if position is not None:
            stored_validity, last_uid = position
            if stored_validity != uidvalidity:
                log.warning(
                    "UIDVALIDITY of %s changed (%s -> %s): reading the folder again; "
                    "mails already stored are recognised by Message-ID",
                    folder,
                    stored_validity,
                    uidvalidity,
                )
                last_uid = 0
        search = _ok(await imap.uid_search(f"UID {last_uid + 1}:*", charset=None), "search")
        uids = sorted(uid for line in search.lines[:-1] for uid in _ints(line) if uid > last_uid)
        for uid in uids:
            await self._read_one(imap, uidvalidity, uid, imported=uid <= backlog_top)
            async with self._db.transaction() as conn:
                await sync_state.set_imap_position(conn, folder, uidvalidity, uid)

    async def _read_one(self, imap: _Imap, uidvalidity: int, uid: int, *, imported: bool) -> None:
        """Fetch one mail and hand it to the intake; what fails here never stalls the folder.

        An exception that is not the connection's, the disk's or the database's is the
        mail's, wherever it came from (the FETCH reply, the intake): logged with the UID (by
        type only), it ends the session and the mail is read again after the reconnect; the
        second time, what was fetched is quarantined (stored raw, the room told) and the UID
        passed.
        """
        lines: list[Any] = []
        try:
            fetched = await self._fetch(imap, uidvalidity, uid)
            if fetched is None:
                return
            lines = fetched.lines
            raw, received = _fetched_message(lines)
            if raw is None:
                log.warning("IMAP UID %s returned no message body; skipped", uid)
                return
            await self._take(raw, uid, received, imported=imported)
        except _NOT_THE_MAILS_FAULT:
            raise
        except Exception as exc:  # noqa: BLE001 - one mail must never stall the folder
            key = (uidvalidity, uid)
            failed = self._failures[key] = self._failures.get(key, 0) + 1
            name = type(exc).__name__
            log.error("IMAP UID %s: reading it raised %s (attempt %d)", uid, name, failed)
            if failed < ATTEMPTS:
                raise
            del self._failures[key]
            await self._intake.quarantine(
                _fetched_raw(lines), f"reading it raised {name}", source="imap", imap_uid=uid
            )

    async def _fetch(self, imap: _Imap, uidvalidity: int, uid: int) -> aioimaplib.Response | None:
        """FETCH one mail; None when it has failed long enough to be passed (see
        FETCH_PASS_AFTER_SECONDS). A failure before that ends the session, as any
        connection fault does, and the mail is asked for again after the reconnect."""
        key = (uidvalidity, uid)
        try:
            fetched = await _unless_closed(
                imap, imap.uid("fetch", str(uid), "(INTERNALDATE BODY.PEEK[])"), f"UID {uid}"
            )
            if fetched.result != "OK":
                raise FetchRefused(
                    f"IMAP UID {uid}: the server refused to hand it out ({_server_text(fetched)})"
                )
        except _CONNECTION_FAULTS as exc:
            now = time.monotonic()
            first, tries = self._fetch_failed.get(key, (now, 0))
            tries += 1
            if tries < FETCH_PASS_AFTER_TRIES or now - first < FETCH_PASS_AFTER_SECONDS:
                self._fetch_failed[key] = (first, tries)
                raise
            del self._fetch_failed[key]
            last = _describe(exc)
        else:
            self._fetch_failed.pop(key, None)
            return fetched
        minutes = max(1, round((now - first) / 60))
        log.error("IMAP UID %s: could not be fetched in %d tries; passed", uid, tries)
        await self._intake.unread(
            imap_uid=uid,
            uidvalidity=uidvalidity,
            reason=(
                f"the mail server would not hand it out ({tries} tries in {minutes} min;"
                f" the last: {last})"
            ),
        )
        return None

    async def _take(
        self, raw: bytes, uid: int, received: datetime | None, *, imported: bool
    ) -> None:
        """Hand one mail to the intake; a second failure quarantines it (never a loop)."""
        for _ in range(2):
            try:
                await self._intake.receive(
                    raw, source="imap", received_at=received, imap_uid=uid, imported=imported
                )
                return
            except NotAMailError as exc:
                # Still in the mailbox for a human to look at; nothing to open a case on.
                log.warning("IMAP UID %s is not a mail message (%s); left in place", uid, exc)
                return
            except IntakeFailed as exc:
                log.warning("IMAP UID %s: intake failed (%s); trying once more", uid, exc)
        # Unreachable in practice: the second failure is quarantined by the intake.
        log.error("IMAP UID %s failed twice; passed", uid)


async def _login(config: ImapConfig, reply_seconds: float = REPLY_TIMEOUT_SECONDS) -> _Imap:
    """Connect and log in; `reply_seconds` is also how long aioimaplib waits for each
    command's answer (a FETCH that gets none raises CommandTimeout)."""
    tls = ssl.create_default_context() if config.security == "tls" else None
    imap = _Imap(host=config.host, port=config.port, timeout=reply_seconds, ssl_context=tls)
    await imap.wait_hello_from_server()
    if config.security == "starttls":
        await _starttls(imap, config.host)
    _ok(await imap.login(config.username, config.password.get_secret_value()), "login")
    return imap


async def probe_mailbox(config: ImapConfig) -> str:
    """Log in and open the folder read-only (EXAMINE: no flag changes); what `cvdbot doctor`
    checks. Returns a short description; raises ImapError or OSError on failure."""
    imap = await asyncio.wait_for(_login(config), 30)
    try:
        examined = _ok(await imap.examine(config.folder), f"EXAMINE {config.folder}")
        idle = "IDLE" in imap.protocol.capabilities
        _uidvalidity(examined.lines)
        return f"logged in as {config.username}, folder {config.folder} opened" + (
            ", IDLE supported" if idle else ", no IDLE (polling)"
        )
    finally:
        try:
            await asyncio.wait_for(imap.logout(), 5)
        except (OSError, TimeoutError, aioimaplib.Abort):
            pass


async def _highest_uid(imap: _Imap) -> int:
    """The highest UID in the selected folder now (0 when it is empty)."""
    search = _ok(await imap.uid_search("ALL", charset=None), "search")
    return max((uid for line in search.lines[:-1] for uid in _ints(line)), default=0)


async def _starttls(imap: _Imap, host: str) -> None:
    """Upgrade a plain connection (aioimaplib has no STARTTLS of its own)."""
    protocol = imap.protocol
    _ok(
        await protocol.execute(
            aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        ),
        "STARTTLS",
    )
    loop = asyncio.get_running_loop()
    protocol.transport = await loop.start_tls(
        protocol.transport, protocol, ssl.create_default_context(), server_hostname=host
    )
    await protocol.capability()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aioimaplib.CommandTimeout):
        return f"no answer to {exc.command.name} in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _uidvalidity(lines: list[bytes]) -> int:
    for line in lines:
        if isinstance(line, bytes | bytearray):
            match = _UIDVALIDITY.search(line)
            if match:
                return int(match.group(1))
    raise ImapError("the server sent no UIDVALIDITY")


def _ints(line: bytes | bytearray) -> list[int]:
    return [int(word) for word in bytes(line).split() if word.isdigit()]


def _fetched_message(lines: list[bytes]) -> tuple[bytes | None, datetime | None]:
    raw = None
    received = None
    for line in lines:
        if isinstance(line, bytearray) and raw is None:
            raw = bytes(line)
        elif isinstance(line, bytes) and received is None:
            match = _INTERNALDATE.search(line)
            if match:
                received = _parse_internaldate(match.group(1).decode("ascii", "replace"))
    return raw, received


def _fetched_raw(lines: list[Any]) -> bytes:
    """What to quarantine of a FETCH reply that could not be read: the message literal, or
    the whole reply when there is none (it names the UID, so no two are alike)."""
    for line in lines:
        if isinstance(line, bytearray):
            return bytes(line)
    return b"\r\n".join(bytes(line) for line in lines if isinstance(line, bytes | bytearray))


def _quiet(task: asyncio.Future[T]) -> asyncio.Future[T]:
    """`task`, whose exception is retrieved however it ends. A task left behind by a
    cancelled session (an IDLE push wait, a FETCH) may still end with an error (its own
    timeout, the closed connection) that nobody awaits; asyncio would log it as an ERROR,
    "Task exception was never retrieved", long after, from the garbage collector."""

    def retrieve(done: asyncio.Future[T]) -> None:
        if not done.cancelled():
            done.exception()

    task.add_done_callback(retrieve)
    return task


async def _unless_closed(
    imap: _Imap, command: Awaitable[aioimaplib.Response], what: str
) -> aioimaplib.Response:
    """A command's answer, or ConnectionClosedError as soon as the server hangs up:
    aioimaplib leaves a command pending until its timeout when the connection ends (Dovecot
    sends BYE and closes when it cannot read a mail's file)."""
    protocol = imap.protocol
    answer = _quiet(asyncio.ensure_future(command))
    closed = asyncio.ensure_future(protocol.closed.wait())
    try:
        done, _ = await asyncio.wait({answer, closed}, return_when=asyncio.FIRST_COMPLETED)
        if answer in done:
            return answer.result()
        goodbye = f" ({protocol.goodbye})" if protocol.goodbye else ""
        raise ConnectionClosedError(f"the server closed the connection at {what}{goodbye}")
    finally:
        for pending in (answer, closed):
            pending.cancel()


def _server_text(answer: aioimaplib.Response) -> str:
    """The server's words on a refused command ("NO [SERVERBUG] …"), printable and short."""
    words = b" ".join(bytes(line) for line in answer.lines if isinstance(line, bytes))
    return _printable(answer.result.encode("ascii", "replace") + b" " + words)


def _printable(words: bytes) -> str:
    """A server's words as one short printable line, for the log and the case room."""
    text = words.decode("ascii", "replace").strip()
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _parse_internaldate(value: str) -> datetime | None:
    try:
        return datetime.strptime(value.strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None
