"""The bot's clockwork: APScheduler 3's AsyncIOScheduler runs the SLA tick and the digest.

Nothing scheduled lives only in memory: what is due comes from the database
(``cases.next_sla_check_at``, the ``digests`` table), so the jobs are derived afresh at
every start, and the first SLA tick and a digest check run at once to catch up on what fell
due while the bot was down. A missed job is never dropped (``misfire_grace_time=None``) and
runs once however many times it was missed (``coalesce``).

Jobs:
* ``sla-next``: a one-off at the earliest ``next_sla_check_at``, re-planned after each tick.
* ``sla-interval``: a tick every minute, which also picks up new cases and cases a command
  changed (their check is set to "as soon as possible").
* ``digest``: every day at digest.time (policy time zone); the job itself skips non-working
  days and a digest that was already queued.
* ``retention``: every ten minutes (and at start), deletes the data of closed cases whose
  retention countdown ran out (bot/watch/retention.py).
* ``digest-catch-up``: once at start, today's digest if its time has passed and it was not
  queued (the bot was down at digest.time); not on a new installation's first start.

The times the jobs compute with come from the injected clock; APScheduler only decides when
to wake up, so a test can move the clock and call `tick_sla()` / `run_digest()` directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Config
from bot.pgp.gpg import Pgp
from bot.policy.clock import Clock
from bot.policy.workdays import WorkingCalendar
from bot.watch.deadline_warnings import SlaWatch, TickResult
from bot.watch.digest import DigestService
from bot.watch.retention import RetentionResult, RetentionWatch
from storage.db import Database

log = logging.getLogger(__name__)

SLA_INTERVAL_SECONDS = 60
RETENTION_INTERVAL_SECONDS = 600
_JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}


class Scheduler:
    def __init__(
        self,
        *,
        clock: Clock,
        calendar: WorkingCalendar,
        sla: SlaWatch,
        digests: DigestService,
        digest_time: str,
        on_queued: Callable[[], None],
        retention: RetentionWatch | None = None,
    ) -> None:
        self._clock = clock
        self.retention = retention
        self._retention_lock = asyncio.Lock()
        self._calendar = calendar
        self.sla = sla
        self.digests = digests
        self._digest_time = digest_time
        self._on_queued = on_queued
        self._sla_lock = asyncio.Lock()
        self._digest_lock = asyncio.Lock()
        self._aps = AsyncIOScheduler(timezone=calendar.tz, job_defaults=_JOB_DEFAULTS)

    def start(self) -> None:
        """Plan the jobs (call on the running event loop). The first tick and a digest check
        run at once: that is the catch-up after downtime."""
        tz = self._calendar.tz
        now = datetime.now(tz)
        hour, minute = (int(part) for part in self._digest_time.split(":"))
        self._aps.add_job(
            self.tick_sla,
            IntervalTrigger(seconds=SLA_INTERVAL_SECONDS, timezone=tz),
            id="sla-interval",
            next_run_time=now,
        )
        self._aps.add_job(
            self.run_digest,
            CronTrigger(hour=hour, minute=minute, timezone=tz),
            id="digest",
        )
        if self.retention is not None:
            self._aps.add_job(
                self.tick_retention,
                IntervalTrigger(seconds=RETENTION_INTERVAL_SECONDS, timezone=tz),
                id="retention",
                next_run_time=now,
            )
        self._aps.add_job(
            self._catch_up_digest, DateTrigger(run_date=now, timezone=tz), id="digest-catch-up"
        )
        self._aps.start()
        log.info(
            "scheduler started: SLA checks every %d s, digest at %s",
            SLA_INTERVAL_SECONDS,
            self._digest_time,
        )

    async def stop(self) -> None:
        """Stop planning; wait for a tick or digest in progress (it holds the database)."""
        if self._aps.running:
            self._aps.shutdown(wait=False)
        async with self._sla_lock, self._digest_lock, self._retention_lock:
            pass

    async def tick_sla(self) -> TickResult:
        """One SLA tick at the clock's now, then the next one planned from the database."""
        async with self._sla_lock:
            try:
                result = await self.sla.tick(self._clock.now())
            except Exception:
                log.exception("SLA tick failed; the next one retries")
                return TickResult()
            await self._plan_next()
        if result.queued:
            self._on_queued()
        return result

    async def tick_retention(self) -> RetentionResult:
        """Delete the data of the cases whose retention countdown ran out by the clock's now."""
        if self.retention is None:
            return RetentionResult()
        async with self._retention_lock:
            try:
                result = await self.retention.tick(self._clock.now())
            except Exception:
                log.exception("retention run failed; the next one retries")
                return RetentionResult()
        if result.queued:
            self._on_queued()
        return result

    async def run_digest(self) -> bool:
        """Queue today's digest if its time has come and it is not queued yet."""
        async with self._digest_lock:
            try:
                queued = await self.digests.send_if_due(self._clock.now())
            except Exception:
                log.exception("building the digest failed; the next start or day retries")
                return False
        if queued:
            self._on_queued()
        return queued

    async def _catch_up_digest(self) -> None:
        """At start: today's digest if it was missed. A new installation (no digest ever
        queued) sends its first one at the next digest time, not on its first start."""
        if await self.digests.any_queued():
            await self.run_digest()

    async def _plan_next(self) -> None:
        upcoming = await self.sla.next_check()
        if upcoming is None:
            return  # nothing scheduled; the interval job picks up whatever changes
        if not self._aps.running:
            return
        delay = timedelta(0)
        if isinstance(upcoming, datetime):
            delay = max(upcoming - self._clock.now(), timedelta(0))
        # The clock may be injected (tests): the delay, not the clock's time, goes to the
        # real-time scheduler.
        run_at = datetime.now(self._calendar.tz) + delay
        self._aps.add_job(
            self.tick_sla,
            DateTrigger(run_date=run_at, timezone=self._calendar.tz),
            id="sla-next",
            replace_existing=True,
        )


def make_scheduler(
    db: Database,
    config: Config,
    calendar: WorkingCalendar,
    pgp: Pgp,
    clock: Clock,
    on_queued: Callable[[], None],
) -> Scheduler:
    return Scheduler(
        clock=clock,
        calendar=calendar,
        sla=SlaWatch(db, config, calendar),
        digests=DigestService(db, config, calendar, pgp),
        digest_time=config.digest.time,
        on_queued=on_queued,
        retention=RetentionWatch(db, config, pgp, calendar.tz),
    )
