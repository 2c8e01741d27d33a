"""Wakes the outbox when another process wrote to the database.

`cvdbot ingest` (an MTA's pipe) stores a mail and queues its thread posts from its own
process, while `cvdbot run` sleeps until it is woken or its idle wait ends. SQLite's
`PRAGMA data_version` changes whenever another connection commits, so a cheap poll of it
tells the running bot that there is new work, within `POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable

from storage.db import Database

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


async def wake_on_external_commits(
    db: Database, wake: Callable[[], None], stop: asyncio.Event
) -> None:
    """Until `stop`: call `wake` after every commit of another process."""
    last: int | None = None
    while not stop.is_set():
        try:
            version: int | None = await db.data_version()
        except sqlite3.Error:  # a busy or full database: look again next time
            version = last
        if last is not None and version is not None and version != last:
            log.debug("another process wrote to the database: waking the outbox")
            wake()
        last = version
        try:
            await asyncio.wait_for(stop.wait(), timeout=POLL_SECONDS)
        except TimeoutError:
            pass
