"""Is the running bot alive? Each loop leaves a heartbeat; /healthz reads them.

The bot is healthy while all three of its loops work: the homeserver sync answered within
the stall limit, the mailbox connection is up (or was, within the limit: a reconnect does
not flap), and the outbox has no item that has been due for longer than the limit. A loop
that stalls without failing (a dead connection that never errors) shows up here, because
only a completed round counts as a heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PartHealth:
    name: str
    ok: bool
    detail: str


class Liveness:
    """Heartbeats by part name, on the monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._beats: dict[str, float] = {}
        self.started = clock()

    def beat(self, part: str) -> None:
        self._beats[part] = self._clock()

    def age(self, part: str) -> float | None:
        """Seconds since the part's last heartbeat, or None if it never beat."""
        last = self._beats.get(part)
        return None if last is None else self._clock() - last

    def since_start(self) -> float:
        return self._clock() - self.started


def judge_beat(liveness: Liveness, part: str, limit: float, what: str) -> PartHealth:
    """A part is healthy when it beat within `limit` seconds (or the bot started that
    recently: it has not had the chance yet)."""
    age = liveness.age(part)
    if age is None:
        if liveness.since_start() <= limit:
            return PartHealth(part, True, f"starting; no {what} yet")
        return PartHealth(
            part, False, f"no {what} since the start {liveness.since_start():.0f} s ago"
        )
    if age > limit:
        return PartHealth(part, False, f"last {what} {age:.0f} s ago (limit {limit:.0f} s)")
    return PartHealth(part, True, f"last {what} {age:.0f} s ago")


def judge_outbox(oldest_due_age: float | None, limit: float) -> PartHealth:
    """The outbox is stalled when an item has waited past its due time for longer than
    `limit` (a failing SMTP server or homeserver; the backlog grows)."""
    if oldest_due_age is None or oldest_due_age <= limit:
        return PartHealth("outbox", True, "nothing overdue")
    return PartHealth(
        "outbox", False, f"an item has been due for {oldest_due_age:.0f} s (limit {limit:.0f} s)"
    )
