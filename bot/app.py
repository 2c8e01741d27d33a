"""Wiring: builds every part from the config and runs them until asked to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any

from nio import Event, MegolmEvent, RedactionEvent, RoomMessageText

from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailin.attachments import AttachmentSource
from bot.mailin.bounds import MailBounds
from bot.mailin.imap import ImapSource
from bot.mailin.intake import MailIntake
from bot.mailout.reporter import ReporterMailer, SmtpSender
from bot.mailout.sealing import recipient_key
from bot.matrix.case_room_guard import CaseRoomGuard
from bot.matrix.client import MatrixAdapter, MatrixFatalError
from bot.matrix.posts import Post, post_to_room
from bot.matrix.undecryptable import UndecryptableEvents
from bot.matrix.verification import Verifications, new_txn_id, verification_event
from bot.ops.health import Liveness
from bot.ops.http import Monitor, OpsServer
from bot.ops.supervisor import LoopGaveUpError, end_tasks, supervise
from bot.outbox.external_commits import wake_on_external_commits
from bot.outbox.mail_channel import MailHandler
from bot.outbox.matrix_channel import MatrixHandler
from bot.outbox.worker import OutboxWorker
from bot.pgp.gpg import GpgLimits, Pgp
from bot.policy.clock import Clock, SystemClock
from bot.policy.workdays import WorkingCalendar
from bot.services import Services, calendar_rules
from bot.watch.digest import check_digest_room
from bot.watch.scheduler import make_scheduler
from commands import build_registry
from commands.dispatch import CommandDispatcher, IncomingMessage
from storage.db import Database, DatabaseTooNewError

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_SOFTWARE = 70  # EX_SOFTWARE: a loop kept dying; a service manager starts a fresh process
EXIT_CONFIG = 78  # EX_CONFIG: the bot must not run as configured (unencrypted room, newer db)


def make_pgp(config: Config) -> Pgp:
    limits = config.limits
    return Pgp(
        config.pgp.gnupg_home,
        config.pgp.key_fingerprint,
        config.pgp.passphrase.get_secret_value(),
        limits=GpgLimits(
            timeout_seconds=limits.gpg_timeout_seconds,
            max_output_bytes=limits.max_decrypted_bytes,
            max_expansion_ratio=limits.max_expansion_ratio,
        ),
    )


def make_calendar(config: Config) -> WorkingCalendar:
    return WorkingCalendar(calendar_rules(config.policy))


def make_intake(db: Database, config: Config, clock: Clock, failpoints: Failpoints) -> MailIntake:
    return MailIntake(db, config, make_calendar(config), make_pgp(config), clock, failpoints)


class App:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.failpoints = Failpoints(environ)
        self.liveness = Liveness()
        self.monitor: Monitor | None = None

    async def run(self, stop: asyncio.Event) -> int:
        config = self.config
        try:
            db = await Database.open(config.storage.path)
        except DatabaseTooNewError as exc:
            log.error("refusing to start: %s", exc)
            return EXIT_CONFIG
        pgp = make_pgp(config)
        calendar = make_calendar(config)
        services = Services(
            config, calendar, ReporterMailer(config), reporter_key=partial(recipient_key, pgp, db)
        )
        intake = MailIntake(db, config, calendar, pgp, self.clock, self.failpoints)
        matrix = MatrixAdapter(config.matrix, db, self._on_event)
        matrix.liveness = self.liveness
        # A third of the stall limit: an idle but healthy sync loop never looks stalled.
        stall_ms = config.monitoring.stall_after_seconds * 1000
        matrix.sync_timeout_ms = min(matrix.sync_timeout_ms, stall_ms // 3)
        self._matrix = matrix
        self._db = db
        self._undecryptable = UndecryptableEvents(
            matrix, self._post_notice, self._on_event, self.clock
        )

        async def send_verification(room_id: str, event_type: str, content: dict[str, Any]) -> None:
            # Protocol steps, not case content: sent at once (encrypted like every post),
            # not through the outbox; a lost one just lets the verification time out.
            await matrix.send(room_id, content, new_txn_id(), event_type)

        self._verifications = Verifications(
            matrix.own_identity,
            matrix.is_team,
            send=send_verification,
            device_key=matrix.device_ed25519,
            master_key=matrix.published_master_key,
            now=self.clock.now,
        )
        worker = OutboxWorker(
            db,
            self.clock,
            self.failpoints,
            {
                "matrix": MatrixHandler(
                    config, db, matrix, AttachmentSource(db, pgp, MailBounds.of(config.limits))
                ),
                "mail": MailHandler(SmtpSender(config), db, pgp),
            },
        )
        self.worker = worker
        intake.on_stored = worker.wake
        matrix.on_case_room = CaseRoomGuard(
            db, config, self.clock, is_joined=matrix.is_joined, wake=worker.wake
        ).observe
        self._dispatcher = CommandDispatcher(
            build_registry(), db, services, self.clock, self.failpoints, worker.wake
        )
        imap = ImapSource(config.imap, db, intake)
        imap.liveness = self.liveness
        # SLA warnings and the digest; tests reach `app.scheduler.tick_sla()` directly.
        self.scheduler = make_scheduler(db, config, calendar, pgp, self.clock, worker.wake)
        tasks: list[asyncio.Task[Any]] = []
        self.monitor = Monitor(
            db,
            stall_after=config.monitoring.stall_after_seconds,
            liveness=self.liveness,
            imap_connected=imap.connected.is_set,
            tasks_alive=lambda: [task.get_name() for task in tasks if task.done()],
            now=self.clock.now,
        )
        ops = (
            OpsServer(config.monitoring.listen, self.monitor) if config.monitoring.listen else None
        )
        stopper = asyncio.create_task(stop.wait(), name="stop")
        starting: asyncio.Task[None] | None = None
        try:
            if ops is not None:
                await ops.start()

            # Each loop is restarted when it dies unexpectedly; one that keeps dying ends
            # the process (exit 70) so the service manager starts a fresh one.
            def supervised(name: str, run: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
                return asyncio.create_task(
                    supervise(name, run, stop, fatal=(MatrixFatalError,)), name=name
                )

            # The outbox runs before the first sync is handled (its Matrix posts wait for
            # the rooms): a command in that sync may wait for a case root the outbox must
            # send again first (CommandDispatcher._await_thread_root).
            tasks = [supervised("outbox", lambda: worker.run(stop))]
            # The homeserver may be down at start (retried until it answers): SIGTERM
            # must still end the bot then.
            starting = asyncio.create_task(matrix.start(), name="matrix-start")
            await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                return EXIT_OK
            starting.result()
            check_digest_room(matrix, config)
            self.scheduler.start()
            loops: dict[str, Callable[[], Awaitable[Any]]] = {
                "matrix-sync": lambda: matrix.sync_forever(stop),
                "imap": imap.run,
                # `cvdbot ingest` writes from another process: its posts go out at once.
                "external-commits": lambda: wake_on_external_commits(db, worker.wake, stop),
            }
            tasks += [supervised(name, run) for name, run in loops.items()]
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return EXIT_OK
        except MatrixFatalError as exc:
            log.error("%s", exc)
            return EXIT_CONFIG
        except LoopGaveUpError as exc:
            log.error("%s", exc)
            return EXIT_SOFTWARE
        finally:
            stop.set()
            log.info("cvdbot stopping")
            await end_tasks([*tasks, stopper, *([starting] if starting else [])])
            await self.scheduler.stop()
            if ops is not None:
                await ops.stop()
            await self._undecryptable.close()
            await matrix.close()
            await db.close()
            log.info("cvdbot stopped")

    async def _on_event(self, room_id: str, event: Event) -> None:
        sent_at = datetime.fromtimestamp(event.server_timestamp / 1000, UTC)
        verification = verification_event(event.source, sent_at)
        if verification is not None:
            await self._verifications.handle(room_id, verification)
        elif isinstance(event, RoomMessageText):
            content = event.source.get("content", {})
            relates = content.get("m.relates_to") or {}
            thread_root = relates.get("event_id") if relates.get("rel_type") == "m.thread" else None
            replaces = relates.get("event_id") if relates.get("rel_type") == "m.replace" else None
            body = event.body
            if replaces is not None:
                new = content.get("m.new_content")
                new_body = new.get("body") if isinstance(new, dict) else None
                body = new_body if isinstance(new_body, str) else body.removeprefix("* ")
            await self._dispatcher.handle(
                IncomingMessage(
                    room_id=room_id,
                    event_id=event.event_id,
                    sender=event.sender,
                    body=body,
                    sent_at=datetime.fromtimestamp(event.server_timestamp / 1000, UTC),
                    thread_root=thread_root,
                    replaces=replaces if isinstance(replaces, str) else None,
                )
            )
        elif isinstance(event, RedactionEvent):
            await self._dispatcher.forget(room_id, event.redacts)
        elif isinstance(event, MegolmEvent):
            if self.monitor is not None:
                self.monitor.counters.decrypt_failures += 1
            await self._undecryptable.seen(room_id, event)

    async def _post_notice(self, room_id: str, post: Post, idem_key: str) -> None:
        if room_id != self.config.matrix.case_room:
            # A direct chat (for verification) or the digest room: no commands run there,
            # so a "could not decrypt" notice would only add noise. The log has it.
            return
        async with self._db.transaction() as conn:
            await post_to_room(conn, room_id, post, idem_key=idem_key, now=self.clock.now())
        self.worker.wake()
