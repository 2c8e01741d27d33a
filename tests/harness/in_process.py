"""cvdbot in the test's own process with an injected clock: `App.run` as a task, and a clock
that flows in real time from a moment the test chooses and jumps when the test says so.
Used where a test moves time (SLA warnings, the retention countdown)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.app import App


class ShiftedClock:
    """Real time, shifted: time flows (so retries and back-off work) and the test jumps."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def set(self, moment: datetime) -> None:
        self._offset = moment - datetime.now(UTC)


class RunningBot:
    """`App.run` as a task on the test's event loop; `stop()` is a clean shutdown."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(app.run(self._stop))

    async def ready(self) -> None:
        for _ in range(600):
            if hasattr(self.app, "scheduler") and getattr(self.app, "_matrix", None):
                if self.app._matrix.case_room_ready.is_set():
                    return
            if self._task.done():
                raise RuntimeError(f"the bot stopped: {self._task.result()}")
            await asyncio.sleep(0.05)
        raise TimeoutError("the bot did not get ready")

    async def stop(self) -> int:
        self._stop.set()
        return await asyncio.wait_for(self._task, 60)


async def wait_until_sent(db_path: Path, timeout: float = 60) -> None:
    """Until the bot's outbox holds nothing pending: every post and mail it queued has gone
    out (a failed row fails the wait). Counting after this is exact, not a guess by sleep."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        with sqlite3.connect(db_path, timeout=10) as conn:
            pending, failed = conn.execute(
                "SELECT SUM(state = 'pending'), SUM(state = 'failed') FROM outbox"
            ).fetchone()
        if failed:
            raise AssertionError(f"{failed} outbox item(s) failed")
        if not pending:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{pending} outbox item(s) still pending after {timeout} s")
        await asyncio.sleep(0.1)
