"""The outbox's order and concurrency on a real database: a case's items leave in the order
they were queued, also when an earlier one is backing off and after a restart; other cases
are not held up by it; several cases are sent at once, never two items of one case, roots
first; items of no case go one at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest_asyncio

from bot.failpoints import Failpoints
from bot.matrix.posts import Post, post_case_root, post_to_case, post_to_room
from bot.outbox.payloads import Payload, RoomPost, RootPost, ThreadPost
from bot.outbox.worker import DeliveryError, OutboxWorker
from bot.policy.lifecycle import Case, CaseState
from storage import cases, outbox
from storage.db import Database
from storage.outbox import OutboxItem
from tests.unit.test_outbox_worker import NOW, MovableClock


@dataclass
class ScriptedHandler:
    """A channel stand-in: fails the bodies listed in `failing` (retryably), optionally holds
    every send until `gate` opens, and records what was in flight at once."""

    failing: set[str] = field(default_factory=set)
    gate: asyncio.Event | None = None
    sent: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    in_flight: dict[int, str | None] = field(default_factory=dict)
    most_in_flight: int = 0
    overlaps: list[tuple[str | None, ...]] = field(default_factory=list)

    def ready(self) -> bool:
        return True

    async def prepare(self, item: OutboxItem, payload: Payload) -> Payload:
        return payload

    async def send(self, item: OutboxItem, payload: Payload) -> str:
        body = payload.body if isinstance(payload, RootPost | ThreadPost | RoomPost) else "?"
        self.started.append(body)
        self.in_flight[item.id] = item.case_id
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        self.overlaps.append(tuple(sorted(c or "-" for c in self.in_flight.values())))
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if body in self.failing:
                raise DeliveryError(f"{body} refused for now", retryable=True)
        finally:
            del self.in_flight[item.id]
        self.sent.append(body)
        return f"$event-{item.id}"

    async def after_sent(self, *args: object) -> None:
        pass

    async def after_failure(self, *args: object) -> None:
        pass


@dataclass
class Env:
    db: Database
    clock: MovableClock
    handler: ScriptedHandler

    def worker(self, concurrency: int = 4) -> OutboxWorker:
        return OutboxWorker(
            self.db, self.clock, Failpoints({}), {"matrix": self.handler}, {"matrix": concurrency}
        )

    async def add_case(self) -> str:
        async with self.db.transaction() as conn:
            case_id, seq = await cases.allocate_case_id(conn, 2026)
            case = Case(
                id=case_id,
                state=CaseState.NEW,
                subject="s",
                reporter_address=None,
                reporter_name=None,
                language="en",
                received_at=NOW,
                acknowledge_due=NOW + timedelta(days=1),
                assess_due=NOW + timedelta(days=5),
                fix_due=NOW + timedelta(days=90),
            )
            await cases.insert_case(conn, case, 2026, seq, NOW.isoformat())
        return case_id

    async def root(self, case_id: str, body: str) -> None:
        async with self.db.transaction() as conn:
            await post_case_root(conn, case_id, Post.text(body), now=self.clock.now())

    async def post(self, case_id: str | None, body: str) -> None:
        async with self.db.transaction() as conn:
            if case_id is None:
                await post_to_room(
                    conn, "!room:x", Post.text(body), idem_key=body, now=self.clock.now()
                )
            else:
                await post_to_case(
                    conn, case_id, Post.text(body), idem_key=body, now=self.clock.now()
                )

    async def pending(self) -> int:
        async with self.db.transaction() as conn:
            return await outbox.pending_count(conn)

    async def next_due(self) -> datetime | None:
        async with self.db.transaction() as conn:
            return await outbox.next_due_at(conn, "matrix")


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = await Database.open(tmp_path / "db.sqlite3")
    yield Env(db, MovableClock(), ScriptedHandler())
    await db.close()


async def test_a_later_item_never_overtakes_one_backing_off_and_other_cases_go_on(
    env: Env,
) -> None:
    a, b = await env.add_case(), await env.add_case()
    await env.post(a, "a-receipt")
    env.handler.failing.add("a-receipt")
    worker = env.worker()
    for _ in range(3):  # three failures: the back-off is now 8 s
        assert await worker.drain("matrix") == 0
        env.clock.moment = env.clock.moment + timedelta(seconds=5)
    # Queued later, its own back-off none: still it waits behind the receipt.
    await env.post(a, "a-assessment")
    await env.post(b, "b-note")
    assert await worker.drain("matrix") == 1
    assert env.handler.sent == ["b-note"], "case b is not held up by case a"
    # What is due next is the receipt's retry, not the assessment queued behind it.
    async with env.db.transaction() as conn:
        async with conn.execute(
            "SELECT next_attempt_at FROM outbox WHERE idem_key = 'a-receipt'"
        ) as cur:
            row = await cur.fetchone()
    assert row is not None
    retry_at = str(row[0])
    assert await env.next_due() == datetime.fromisoformat(retry_at)
    assert env.clock.now() < datetime.fromisoformat(retry_at)

    # A restart (a new worker on the same database) keeps the order too.
    env.handler.failing.clear()
    env.clock.moment = datetime.fromisoformat(retry_at)
    assert await env.worker().drain("matrix") == 2
    assert env.handler.sent == ["b-note", "a-receipt", "a-assessment"]
    assert await env.pending() == 0
    assert await env.next_due() is None


async def test_cases_overlap_up_to_the_limit_one_item_per_case_roots_first(env: Env) -> None:
    ids = [await env.add_case() for _ in range(6)]
    for case_id in ids:
        await env.root(case_id, f"root {case_id}")
    for case_id in ids:
        await env.post(case_id, f"report {case_id}")
        await env.post(case_id, f"check {case_id}")
    gate = asyncio.Event()
    env.handler.gate = gate
    draining = asyncio.create_task(env.worker(concurrency=4).drain("matrix"))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(env.handler.in_flight) == 4:
            break
    assert len(env.handler.in_flight) == 4, "four cases are sent at once"
    gate.set()
    assert await draining == 18
    assert env.handler.most_in_flight == 4
    # Never two items of one case in flight together.
    assert all(len(set(seen)) == len(seen) for seen in env.handler.overlaps)
    # Every root was started before any other post.
    assert [b.startswith("root") for b in env.handler.started] == [True] * 6 + [False] * 12
    for case_id in ids:
        mine = [b for b in env.handler.sent if b.endswith(case_id)]
        assert mine == [f"root {case_id}", f"report {case_id}", f"check {case_id}"]


async def test_items_of_no_case_go_one_at_a_time_and_a_failed_one_blocks_none(
    env: Env,
) -> None:
    for body in ("help-1", "digest", "help-2"):
        await env.post(None, body)
    env.handler.failing.add("help-1")
    assert await env.worker().drain("matrix") == 2
    assert env.handler.most_in_flight == 1
    assert env.handler.sent == ["digest", "help-2"]
