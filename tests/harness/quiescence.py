"""Waiting until a bot has nothing left to send, so a test can then count exactly.

The outbox is the only way anything leaves the bot, and a sent mail's thread note is queued
in the same transaction that marks the mail sent: once no row is pending, every post and
mail the bot has accepted so far is out (and SMTP has recorded it), and nothing more follows
until something new comes in.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path


def outbox_counts(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


async def wait_quiescent(db_path: Path, timeout: float = 60.0) -> dict[str, int]:
    """Until the outbox has no pending row; returns the counts by state. A failed row is an
    error: it would never be sent."""
    deadline = time.monotonic() + timeout
    while True:
        counts = outbox_counts(db_path)
        if counts.get("failed"):
            raise AssertionError(f"outbox rows failed: {counts}")
        if not counts.get("pending"):
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"the outbox still has pending rows after {timeout} s: {counts}")
        await asyncio.sleep(0.1)
