"""The SQLite connection: opening it safely, applying versioned migrations, and transactions.

One connection serves the whole process; an asyncio lock serialises transactions so that
intake, commands and the outbox never interleave half-done work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

#: (version, file name, SQL text) of one migration file.
Migration = tuple[int, str, str]


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat()


def migrations() -> list[Migration]:
    """Every migration shipped in storage/migrations, as (version, name, sql), in order."""
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


class DatabaseTooNewError(RuntimeError):
    """The database was last migrated by a newer cvdbot than this one: refuse to touch it."""

    def __init__(self, path: Path, found: int, known: int) -> None:
        super().__init__(
            f"the database {path} is at schema version {found}, but this cvdbot knows"
            f" migrations only up to version {known}: run the cvdbot that wrote it (or newer),"
            " or restore a backup made with this version"
        )
        self.path = path
        self.found = found
        self.known = known


class StorageUnavailable(sqlite3.OperationalError):
    """The database refused a step for a reason outside the code (disk full, I/O error,
    locked longer than the busy timeout, read-only file). The step was rolled back whole:
    nothing of it is stored, and the caller tries it again later."""


# SQLite's primary result codes that say "the storage, not the statement": BUSY, LOCKED,
# NOMEM, READONLY, IOERR, FULL, CANTOPEN.
_TRANSIENT_CODES = frozenset({5, 6, 7, 8, 10, 13, 14})
_TRANSIENT_TEXT = ("disk is full", "disk i/o error", "database is locked", "readonly database")


def schema_version_read_only(path: Path) -> int:
    """The schema version of the database at `path`, opened read-only (nothing is created,
    migrated or locked for writing: what `cvdbot doctor` may do). Raises sqlite3.Error."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0) if row else 0


def is_transient(exc: sqlite3.Error) -> bool:
    """Whether a SQLite error is the storage's (worth retrying), not a bug in a statement."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _TRANSIENT_CODES
    return any(text in str(exc).lower() for text in _TRANSIENT_TEXT)


class Database:
    """The bot's database; use `transaction()` for everything that reads or writes."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path
        # Fault injection for the tests: while set, every transaction that changed something
        # fails at its end with this message, as SQLite does when the disk is full.
        self.fail_writes: str | None = None

    @classmethod
    async def open(cls, path: Path, *, known: list[Migration] | None = None) -> Database:
        """Open (creating it if needed) and migrate to the newest schema this code has.

        `known` replaces the shipped migrations (tests). Raises DatabaseTooNewError when the
        file was migrated by a newer cvdbot; the connection is closed again then.
        """
        _create_private(path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn, path)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            # Deleted report data (bot/watch/retention.py) is overwritten with zeros in the
            # file, not left in free pages; the job then empties the WAL (checkpoint_wal).
            await conn.execute("PRAGMA secure_delete=ON")
            await db.migrate(known)
        except BaseException:
            await conn.close()
            raise
        _restrict_side_files(path)
        return db

    async def migrate(self, known: list[Migration] | None = None) -> list[str]:
        """Apply the migrations not yet recorded, each whole in its own transaction.

        A file runs as one script (so a ';' inside a string or a trigger body is just text)
        between BEGIN and COMMIT, together with its row in schema_migrations: a file that
        fails halfway leaves neither its changes nor its version behind.
        """
        available = migrations() if known is None else sorted(known)
        newest_known = max((version for version, _, _ in available), default=0)
        applied_now: list[str] = []
        async with self._lock:
            await self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            async with self._conn.execute("SELECT version FROM schema_migrations") as cur:
                done = {int(row[0]) for row in await cur.fetchall()}
            if done and max(done) > newest_known:
                # Its tables may mean something this code does not know; writing to them
                # could corrupt cases that a newer version relies on.
                raise DatabaseTooNewError(self.path, max(done), newest_known)
            for version, name, sql in available:
                if version in done:
                    continue
                log.info("applying migration %s", name)
                await self._apply(version, name, sql)
                applied_now.append(name)
        return applied_now

    async def _apply(self, version: int, name: str, sql: str) -> None:
        # executescript commits any open transaction before it runs, so the BEGIN has to be
        # part of the script itself; the version row then joins the same transaction.
        try:
            await self._conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\n")
            if not self._conn.in_transaction:
                raise RuntimeError(
                    f"migration {name} ended its own transaction; a migration file must not"
                    " contain BEGIN, COMMIT or ROLLBACK"
                )
            await self._conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                (version, name, utc_now_iso()),
            )
        except BaseException:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            raise
        await self._conn.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run a block atomically: committed when it ends, rolled back when it raises."""
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc
            changes_before = self._conn.total_changes
            try:
                yield self._conn
                if self.fail_writes and self._conn.total_changes != changes_before:
                    raise sqlite3.OperationalError(self.fail_writes)
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback()
                if isinstance(exc, StorageUnavailable) or not is_transient(exc):
                    raise
                raise self._unavailable(exc) from exc
            except BaseException:
                await self._rollback()
                raise

    async def _rollback(self) -> None:
        # After a failed COMMIT SQLite may have rolled back already.
        if self._conn.in_transaction:
            try:
                await self._conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("rollback failed too: %s", exc)

    def _unavailable(self, exc: sqlite3.Error) -> StorageUnavailable:
        log.error(
            "the database %s refused a write (%s): that step was rolled back whole and "
            "nothing of it is stored; it is tried again later",
            self.path,
            exc,
        )
        return StorageUnavailable(str(exc))

    async def data_version(self) -> int:
        """SQLite's `data_version`: changes whenever another connection (another process,
        such as `cvdbot ingest`) commits to the database."""
        async with self._lock:
            async with self._conn.execute("PRAGMA data_version") as cur:
                row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def checkpoint_wal(self) -> bool:
        """Copy the write-ahead log into the database file and empty it (`TRUNCATE`): until
        then the WAL keeps the earlier versions of pages, with the data just deleted, and
        `secure_delete` only zeroes the database file. False when a reader in another process
        (e.g. `cvdbot ingest`) kept part of the log in use; the caller tries again later."""
        async with self._lock:
            async with self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
                row = await cur.fetchone()
        busy = bool(row[0]) if row else True
        if busy:
            log.warning("the WAL checkpoint of %s was blocked by a reader; retried", self.path)
        return not busy

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()


@asynccontextmanager
async def savepoint(conn: aiosqlite.Connection, name: str) -> AsyncIterator[None]:
    """A nested step inside an open transaction: when the block raises, only its own changes
    are undone (and the exception goes on); the rest of the transaction stays."""
    if not name.isidentifier():
        raise ValueError(f"not a savepoint name: {name!r}")
    await conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        await conn.execute(f"ROLLBACK TO {name}")
        await conn.execute(f"RELEASE {name}")
        raise
    await conn.execute(f"RELEASE {name}")


def _create_private(path: Path) -> None:
    """Report contents live in this file: make it private before SQLite touches it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Only when it does not exist yet: closing any descriptor of the file drops every POSIX
    # lock this process holds on it, SQLite's as well (a second Database in the process of a
    # running bot then saw "disk I/O error").
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


def _restrict_side_files(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, 0o600)
