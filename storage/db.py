"""The SQLite connection: opening it safely, applying versioned migrations, and transactions.

One connection serves the whole process; an asyncio lock serialises transactions so that
intake, commands and the outbox never interleave half-done work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
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


class Database:
    """The bot's database; use `transaction()` for everything that reads or writes."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

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
            # file, not left in free pages.
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
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

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
