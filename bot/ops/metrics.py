"""/metrics in the Prometheus text format, through prometheus-client.

Every figure is a count, an age or a time: no case content, subject or address can appear
in a metric (the only labels are fixed words: states, promises, channels, parts). The
database figures are read at scrape time, so they are right after a restart as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.ops.health import Liveness, PartHealth
from bot.policy.lifecycle import CaseState
from storage import ops_figures
from storage.case_overview import open_promises_due_by
from storage.db import Database

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Counters:
    """Events the database does not keep: counted in the running process."""

    decrypt_failures: int = 0


@dataclass(frozen=True)
class Snapshot:
    cases: dict[str, int]
    overdue: dict[str, int]
    backlog: ops_figures.OutboxBacklog
    totals: dict[tuple[str, str], int]
    now: datetime
    parts: list[PartHealth] = field(default_factory=list)


async def take_snapshot(db: Database, now: datetime, parts: list[PartHealth]) -> Snapshot:
    async with db.transaction() as conn:
        cases = await ops_figures.cases_by_state(conn)
        overdue: dict[str, int] = {}
        for item in await open_promises_due_by(conn, now):
            if not item.paused and item.due < now:
                overdue[item.promise] = overdue.get(item.promise, 0) + 1
        backlog = await ops_figures.outbox_backlog(conn)
        totals = await ops_figures.outbox_totals(conn)
    return Snapshot(cases, overdue, backlog, totals, now, parts)


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot, liveness: Liveness, counters: Counters) -> None:
        self._s = snapshot
        self._liveness = liveness
        self._counters = counters

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._s
        cases = GaugeMetricFamily("cvdbot_cases", "Cases by state", labels=["state"])
        for state in CaseState:
            cases.add_metric([state.value], s.cases.get(state.value, 0))
        yield cases
        overdue = GaugeMetricFamily(
            "cvdbot_overdue_promises", "Promises past their deadline, not kept", labels=["promise"]
        )
        from bot.policy.promises import PROMISES

        for promise in PROMISES:
            overdue.add_metric([promise.name], s.overdue.get(promise.name, 0))
        yield overdue
        yield GaugeMetricFamily(
            "cvdbot_outbox_backlog", "Posts and mails waiting to be sent", value=s.backlog.pending
        )
        oldest = s.backlog.oldest_created_at
        yield GaugeMetricFamily(
            "cvdbot_outbox_oldest_age_seconds",
            "Age of the oldest item waiting in the outbox (0 when empty)",
            value=max((s.now - oldest).total_seconds(), 0.0) if oldest else 0.0,
        )
        for name, channel, help_text in (
            ("cvdbot_mails_sent", "mail", "Mails sent (reporters, managers, IBD)"),
            ("cvdbot_matrix_posts_sent", "matrix", "Matrix posts sent"),
        ):
            yield CounterMetricFamily(name, help_text, value=s.totals.get((channel, "sent"), 0))
        failed = CounterMetricFamily(
            "cvdbot_outbox_failed", "Items given up on, by channel", labels=["channel"]
        )
        for channel in ("matrix", "mail"):
            failed.add_metric([channel], s.totals.get((channel, "failed"), 0))
        yield failed
        yield CounterMetricFamily(
            "cvdbot_decrypt_failures",
            "Room events the bot could not decrypt",
            value=self._counters.decrypt_failures,
        )
        ages = GaugeMetricFamily(
            "cvdbot_last_activity_age_seconds",
            "Seconds since the part's last completed round (sync, imap)",
            labels=["part"],
        )
        for part in ("sync", "imap"):
            age = self._liveness.age(part)
            if age is not None:
                ages.add_metric([part], age)
        yield ages
        up = GaugeMetricFamily("cvdbot_healthy", "1 when the part is healthy", labels=["part"])
        for health in s.parts:
            up.add_metric([health.name], 1.0 if health.ok else 0.0)
        yield up


def render(snapshot: Snapshot, liveness: Liveness, counters: Counters) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot, liveness, counters))
    return generate_latest(registry)


def metric_names(text: str) -> Iterable[str]:
    """The family names in an exposition (tests and doctor use it)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [family.name for family in text_string_to_metric_families(text)]
