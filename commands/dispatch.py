"""From a room message to a command's effects: parse, check the sender's role, find the
case, run the handler, and queue the answer in the case thread, all in one transaction.

A Matrix event is marked handled in the same transaction as its effects, so a replayed sync
after a crash can never run a command twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosqlite

from bot.config import Config
from bot.failpoints import Failpoints
from bot.matrix.posts import ROOT_KEY_PREFIX, Post, post_to_case, post_to_room
from bot.matrix.render import local
from bot.policy.clock import Clock
from bot.policy.lifecycle import Case, TransitionError, parse_case_id
from bot.services import Services
from commands.context import CommandContext, ReporterKey
from commands.registry import (
    Command,
    CommandError,
    Registry,
    Role,
    UsageError,
    first_word,
    role_text,
    split_command,
)
from storage import cases, outbox, sync_state
from storage.db import Database, savepoint

log = logging.getLogger(__name__)

# A command typed while the bot was down for longer than this is not run on its return:
# the situation it was meant for has likely changed. The sender is told to repeat it.
STALE_AFTER = timedelta(hours=1)
# How long a command in a thread the bot knows no case for waits while thread roots are
# still unsent (see _await_thread_root).
ROOT_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class IncomingMessage:
    room_id: str
    event_id: str
    sender: str
    body: str
    sent_at: datetime
    thread_root: str | None
    # An edit (`m.replace`) of this event: never run; the command as first sent counts.
    replaces: str | None = None


EDIT_NOTE = (
    "✏️ I do not run edited commands: the message as first sent counts. "
    "To run a command, send it as a new message."
)


class CommandDispatcher:
    def __init__(
        self,
        registry: Registry,
        db: Database,
        services: Services,
        clock: Clock,
        failpoints: Failpoints,
        on_queued: Callable[[], None],
    ) -> None:
        self._registry = registry
        self._db = db
        self._services = services
        self._config: Config = services.config
        self._clock = clock
        self._failpoints = failpoints
        self._on_queued = on_queued

    def role_of(self, user_id: str) -> Role:
        if user_id in self._config.matrix.managers:
            return Role.MANAGER
        if user_id in self._config.matrix.team:
            return Role.TEAM
        return Role.ANYONE

    async def handle(self, message: IncomingMessage) -> bool:
        """Run the command in `message`, if it is one; True when something was queued."""
        if message.room_id != self._config.matrix.case_room:
            return False
        split = split_command(message.body)
        if split is None:
            return False
        name, rest = split
        if message.thread_root is not None and message.replaces is None:
            await self._await_thread_root(message.thread_root)
        key = await self._reporter_key(message, name, rest)
        now = self._clock.now()
        if message.replaces is not None:
            return await self._edited(message, now)
        async with self._db.transaction() as conn:
            if not await sync_state.mark_event_handled(conn, message.event_id, now):
                return False
            case, reply = await self._run(conn, message, name, rest, now, key)
            if case is not None:
                await post_to_case(
                    conn,
                    case.id,
                    reply,
                    idem_key=f"reply:{message.event_id}",
                    now=now,
                    reply_to=message.event_id,
                    mentions=reply.mentions,
                )
            else:
                await post_to_room(
                    conn,
                    message.room_id,
                    reply,
                    idem_key=f"reply:{message.event_id}",
                    now=now,
                    thread_root=message.thread_root,
                    reply_to=message.event_id,
                )
        self._failpoints.hit("command.after_commit")
        self._on_queued()
        return True

    async def _await_thread_root(self, thread_root: str) -> None:
        """A command in a thread that is no case's (yet), while case roots wait in the
        outbox: wait until they are out, at most ROOT_WAIT_SECONDS. A bot killed after its
        root post reached the homeserver but before it recorded the event ID sends the root
        again on restart (the same txn_id, so the same event) and only then knows the thread;
        the team may have answered in that thread meanwhile, and the command must find its
        case rather than be answered "which case?". The outbox runs beside the sync loop."""
        deadline = asyncio.get_running_loop().time() + ROOT_WAIT_SECONDS
        while True:
            async with self._db.transaction() as conn:
                if await cases.case_by_thread_root(conn, thread_root) is not None:
                    return
                if not await outbox.any_pending(conn, ROOT_KEY_PREFIX):
                    return
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "a command in thread %s waited %.0f s for unsent case roots; run as it is",
                    thread_root,
                    ROOT_WAIT_SECONDS,
                )
                return
            await asyncio.sleep(0.2)

    async def _edited(self, message: IncomingMessage, now: datetime) -> bool:
        """An edit that reads as a command: one short note, nothing run."""
        assert message.replaces is not None
        async with self._db.transaction() as conn:
            if not await sync_state.mark_event_handled(conn, message.event_id, now):
                return False
            case_id = await outbox.case_of(conn, f"reply:{message.replaces}")
            post = Post.text(EDIT_NOTE)
            key = f"reply:{message.event_id}"
            if case_id is not None:
                await post_to_case(
                    conn, case_id, post, idem_key=key, now=now, reply_to=message.event_id
                )
            else:
                await post_to_room(
                    conn, message.room_id, post, idem_key=key, now=now, reply_to=message.event_id
                )
        self._on_queued()
        return True

    async def forget(self, room_id: str, event_id: str) -> None:
        """A redacted event: if it was a command not yet run (it waited for its room key,
        say), it never runs now."""
        if room_id != self._config.matrix.case_room:
            return
        async with self._db.transaction() as conn:
            if await sync_state.mark_event_handled(conn, event_id, self._clock.now()):
                log.info("event %s was redacted before it was handled: ignored", event_id)

    async def _run(
        self,
        conn: aiosqlite.Connection,
        message: IncomingMessage,
        name: str,
        rest: str,
        now: datetime,
        key: ReporterKey | None = None,
    ) -> tuple[Case | None, Post]:
        command = self._registry.get(name)
        if command is None:
            return None, Post.text(f"There is no command !{name}. !help lists the commands.")
        role = self.role_of(message.sender)
        if role < command.role:
            log.info("refused !%s from %s (not in the team)", name, message.sender)
            return None, Post.text(
                f"Sorry, only {'managers' if command.role is Role.MANAGER else 'the CVD team'} "
                f"may run !{command.name}. Nothing was changed."
            )
        if now - message.sent_at > STALE_AFTER:
            return None, Post.text(
                f"I was offline when this !{command.name} was sent "
                f"({local(message.sent_at, self._services.tz)}), so I did not run it. "
                "Send it again if it still applies."
            )
        case: Case | None = None
        try:
            if command.needs_case:
                case, rest = await self._find_case(conn, message, rest, command)
            values = command.parse(rest)
            needed = command.role_for(values)
            if role < needed:
                step = values.get(command.args[0].name) if command.args else None
                log.info("refused !%s %s from %s (role)", name, step, message.sender)
                raise CommandError(
                    f"Sorry, only {role_text(needed)} may run !{command.name} {step}. "
                    "Nothing was changed."
                )
        except UsageError as exc:
            return case, Post.text(f"⚠️ {exc}\nUsage: {command.usage()}")
        except CommandError as exc:
            return case, Post.text(f"⚠️ {exc}")
        ctx = CommandContext(
            conn=conn,
            services=self._services,
            registry=self._registry,
            sender=message.sender,
            role=role,
            room_id=message.room_id,
            event_id=message.event_id,
            now=now,
            case=case,
            reporter_key=key,
        )
        # A savepoint, so a failing command leaves no half-made change behind while the
        # event is still recorded as handled and its error answer still goes out.
        try:
            async with savepoint(conn, "command"):
                answer = await command.handler(ctx, **values)
        except (CommandError, TransitionError) as exc:
            return case, Post.text(f"⚠️ {exc}")
        except Exception:
            log.exception("!%s failed", command.name)
            return case, Post.text(
                f"❌ !{command.name} failed because of an error in cvdbot; nothing was changed. "
                "The details are in the bot's log."
            )
        # A handler answers with text, or with a Post when it means to mention someone.
        return ctx.case, answer if isinstance(answer, Post) else Post.text(answer)

    async def _reporter_key(
        self, message: IncomingMessage, name: str, rest: str
    ) -> ReporterKey | None:
        """For a command that says what protection a mail will get: the reporter's key, looked
        up with gpg here, before and outside the command's transaction. None when it does not
        apply or cannot be found out (the handler refuses then)."""
        command = self._registry.get(name)
        lookup = self._services.reporter_key
        if (
            command is None
            or not command.needs_reporter_key
            or lookup is None
            or self.role_of(message.sender) < command.role
        ):
            return None
        try:
            async with self._db.transaction() as conn:
                case, _ = await self._find_case(conn, message, rest, command)
        except CommandError:
            return None  # the command itself says what is wrong
        if case.reporter_address is None:
            return None
        try:
            fingerprint = await lookup(case.reporter_address)
        except Exception:
            log.exception("looking up the reporter's key for !%s failed", command.name)
            return None
        return ReporterKey(case.reporter_address, fingerprint)

    async def _find_case(
        self, conn: aiosqlite.Connection, message: IncomingMessage, rest: str, command: Command
    ) -> tuple[Case, str]:
        first, after = first_word(rest)
        named = parse_case_id(first) if first else None
        if named is not None:
            rest = after
        in_thread = None
        if message.thread_root is not None:
            in_thread = await cases.case_by_thread_root(conn, message.thread_root)
        if named is None and in_thread is None:
            raise UsageError(
                "which case? Run the command in the case's thread, or give the case ID first"
            )
        if named is not None and in_thread is not None and named != in_thread.id:
            if command.takes_case_id_first(first):
                # `!duplicate CVD-2026-0001` in a thread: the ID is the argument.
                return in_thread, f"{first} {rest}".strip()
            raise CommandError(
                f"this is the thread of {in_thread.id}, not {named}; run it in {named}'s thread"
            )
        if in_thread is not None:
            return in_thread, rest
        assert named is not None
        case = await cases.get_case(conn, named)
        if case is None:
            raise CommandError(f"there is no case {named}")
        return case, rest
