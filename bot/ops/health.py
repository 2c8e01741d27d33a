"""Is the running bot alive? Each loop leaves a heartbeat; /healthz reads them.

The bot is healthy while all three of its loops work: the homeserver sync answered within
the stall limit, the mailbox connection is up (or was, within the limit: a reconnect does
not flap), and the outbox, while items wait, sent something within the limit. A loop
that stalls without failing (a dead connection that never errors) shows up here, because
only a completed round counts as a heartbeat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from storage.ops_figures import OutboxProgress


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


def judge_outbox(
    channels: Sequence[OutboxProgress], now: datetime, limit: float, since_start: float
) -> PartHealth:
    """The outbox is stalled when a channel has items waiting and has sent nothing for longer
    than `limit` (a failing SMTP server or homeserver: the backlog grows, nothing leaves).

    Judged by progress, not by the oldest item's age: a burst of hundreds of posts keeps its
    first items waiting for minutes while the outbox sends as fast as the homeserver allows,
    and that is healthy. A channel counts as waiting since the later of its oldest pending
    item, its last send and the bot's start (a bot that just started has had no chance yet)."""
    stalled, waiting = [], []
    for channel in channels:
        oldest_age = (now - channel.oldest_created_at).total_seconds()
        since_sent = (now - channel.last_sent_at).total_seconds() if channel.last_sent_at else None
        idle = min(age for age in (oldest_age, since_sent, since_start) if age is not None)
        what = f"{channel.channel}: {channel.pending} waiting"
        if since_sent is not None:
            what += f", last sent {since_sent:.0f} s ago"
        if idle > limit:
            stalled.append(f"{what}, no progress for {idle:.0f} s (limit {limit:.0f} s)")
        else:
            waiting.append(what)
    if stalled:
        return PartHealth("outbox", False, "; ".join(stalled))
    return PartHealth("outbox", True, "; ".join(waiting) or "nothing waiting")
