"""The monitoring endpoint (`monitoring.listen`): GET /healthz and GET /metrics.

/healthz answers 200 while the sync loop, the mailbox and the outbox are alive and not
stalled beyond `monitoring.stall_after_seconds`, else 503; the body names each part and why.
It binds where the operator says (loopback by default in the sample): it shows no case
content, but its figures are still the organisation's business.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from bot.ops.health import Liveness, PartHealth, judge_beat, judge_outbox
from bot.ops.metrics import CONTENT_TYPE, Counters, render, take_snapshot
from storage import ops_figures
from storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class Monitor:
    """What the endpoint reads: heartbeats, counters, the database and the running tasks."""

    db: Database
    stall_after: float
    liveness: Liveness = field(default_factory=Liveness)
    counters: Counters = field(default_factory=Counters)
    imap_connected: Callable[[], bool] = lambda: False
    tasks_alive: Callable[[], list[str]] = lambda: []  # names of loops that ended
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def health(self) -> list[PartHealth]:
        parts = [judge_beat(self.liveness, "sync", self.stall_after, "completed sync")]
        imap = judge_beat(self.liveness, "imap", self.stall_after, "mailbox activity")
        if self.imap_connected() and not imap.ok:
            imap = PartHealth("imap", True, "connected, waiting for mail")
        parts.append(imap)
        async with self.db.transaction() as conn:
            progress = await ops_figures.outbox_progress(conn)
        since_start = self.liveness.since_start()
        parts.append(judge_outbox(progress, self.now(), self.stall_after, since_start))
        for name in self.tasks_alive():
            parts.append(PartHealth(name, False, "the loop ended"))
        return parts

    async def metrics(self) -> bytes:
        snapshot = await take_snapshot(self.db, self.now(), await self.health())
        return render(snapshot, self.liveness, self.counters)


class OpsServer:
    def __init__(self, listen: str, monitor: Monitor) -> None:
        host, _, port = listen.rpartition(":")
        self._host = host.strip("[]") or "127.0.0.1"
        self._port = int(port)
        self._monitor = monitor
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        log.info("monitoring on http://%s:%s (/healthz, /metrics)", self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        try:
            parts = await asyncio.wait_for(self._monitor.health(), 10)
        except Exception as exc:  # noqa: BLE001 - a failing check is an unhealthy bot
            return web.Response(status=503, text=f"unhealthy: the check failed ({exc})\n")
        healthy = all(part.ok for part in parts)
        lines = [f"{'ok' if p.ok else 'FAILED'} {p.name}: {p.detail}" for p in parts]
        status = "healthy" if healthy else "unhealthy"
        return web.Response(status=200 if healthy else 503, text="\n".join([status, *lines]) + "\n")

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = await asyncio.wait_for(self._monitor.metrics(), 10)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
