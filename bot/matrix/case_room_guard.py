"""Watching the case room's trust boundary: alert the managers when it breaks, resume when
it holds again.

After every sync the Matrix adapter hands over what the case room looks like
(`RoomView`); the rule of what breaks the boundary is `bot/policy/room_trust.py`. While the
room is outside it, the outbox holds every post for the case room (`MatrixHandler.send`),
so nothing is lost and nothing is posted there. On the step from inside to outside the
managers get one alert: in `digest_room` when the bot is in that room (it is not the case
room), else by mail to `digest.email_to`; the step back (say an invite from the team brought
the bot back, which `MatrixAdapter` accepts) gets one note, and every waiting post is made
due at once.

The state ("trusted:N" or "broken:N", N counting the breaks) is kept in the database with
the alert, in one transaction, so a restart neither repeats nor forgets an alert.
"""

from __future__ import annotations

import email.policy
import email.utils
import logging
from collections.abc import Callable
from email.message import EmailMessage

import aiosqlite

from bot.config import Config
from bot.mailout.compose import ComposedMail, new_message_id
from bot.matrix.posts import Post, defuse_mentions, post_to_room, user_link
from bot.outbox import payloads
from bot.policy.clock import Clock
from bot.policy.room_trust import RoomView, boundary_breaks
from bot.text import shorten
from storage import outbox, sync_state
from storage.db import Database

log = logging.getLogger(__name__)

STATE_KEY = "case_room.trust"
_MAX_REASON = 200  # a kick's reason is whoever kicked's free text


def _parse(value: str | None) -> tuple[str | None, int]:
    if not value:
        return None, 0
    state, _, number = value.partition(":")
    return state, int(number or 0)


def broken_text(view: RoomView, reasons: list[str], case_room: str, waiting: int) -> str:
    by = f" (by {view.changed_by})" if view.changed_by else ""
    why = "; ".join(reasons)
    lines = [f"🚨 The CVD case room {case_room} is no longer a safe place for reports: {why}{by}."]
    if view.left_reason:
        lines.append(f"Reason given: {defuse_mentions(shorten(view.left_reason, _MAX_REASON))}")
    if view.joined:
        fix = "Make it invite-only again, with history not world-readable"
    else:
        fix = "A team member or manager can invite me back (unban me first if I was banned)"
    lines.append(
        "I post nothing about the cases there until this is fixed; "
        f"{waiting} post(s) wait in the outbox and go out then, once. {fix}, and I continue "
        "by myself."
    )
    return "\n".join(lines)


def resumed_text(case_room: str, sent_now: int) -> str:
    return (
        f"✅ The CVD case room {case_room} is safe again (I am a member, it is encrypted and "
        f"invite-only): {sent_now} waiting post(s) go out now."
    )


class CaseRoomGuard:
    def __init__(
        self,
        db: Database,
        config: Config,
        clock: Clock,
        *,
        is_joined: Callable[[str], bool],
        wake: Callable[[], None],
    ) -> None:
        self._db = db
        self._config = config
        self._clock = clock
        self._is_joined = is_joined
        self._wake = wake
        self._state: str | None = None
        self._breaks = 0
        self._loaded = False

    async def observe(self, view: RoomView) -> None:
        """Called after every sync; touches the database only when the state changes."""
        if not self._loaded:
            async with self._db.transaction() as conn:
                self._state, self._breaks = _parse(await sync_state.get_value(conn, STATE_KEY))
            self._loaded = True
        reasons = boundary_breaks(view)
        if not reasons:
            if self._state != "trusted":
                await self._resume()
        elif self._state == "trusted" or (self._state is None and view.joined):
            # Never inside before and not joined: not invited yet, nothing broke.
            await self._break(view, reasons)

    async def _break(self, view: RoomView, reasons: list[str]) -> None:
        number = self._breaks + 1
        case_room = self._config.matrix.case_room
        log.warning("case room outside the trust boundary: %s", "; ".join(reasons))
        async with self._db.transaction() as conn:
            waiting = await outbox.pending_in(conn, "matrix")
            text = broken_text(view, reasons, case_room, waiting)
            await self._alert(conn, f"room-trust:{number}:broken", text, "no longer safe")
            await sync_state.set_value(conn, STATE_KEY, f"broken:{number}")
        self._state, self._breaks = "broken", number
        self._wake()

    async def _resume(self) -> None:
        was_broken = self._state == "broken"
        now = self._clock.now()
        async with self._db.transaction() as conn:
            due = await outbox.retry_now(conn, "matrix", now)
            if was_broken:
                waiting = await outbox.pending_in(conn, "matrix")
                text = resumed_text(self._config.matrix.case_room, waiting)
                await self._alert(conn, f"room-trust:{self._breaks}:resumed", text, "safe again")
            await sync_state.set_value(conn, STATE_KEY, f"trusted:{self._breaks}")
        if was_broken:
            log.info("case room inside the trust boundary again; %d post(s) made due", due)
        self._state = "trusted"
        self._wake()

    async def _alert(self, conn: aiosqlite.Connection, key: str, text: str, what: str) -> None:
        """To the managers: in digest_room when the bot can post there, else by mail."""
        matrix = self._config.matrix
        room = matrix.digest_room
        now = self._clock.now()
        if room and room != matrix.case_room and self._is_joined(room):
            managers = list(matrix.managers)
            post = Post.text(text)
            if managers:
                post = Post(
                    f"{text}\nFor {' '.join(managers)}",
                    f"{post.html}<br>\nFor {' '.join(user_link(m) for m in managers)}",
                )
            # No report content in it: it may go into a digest_room without encryption.
            await post_to_room(
                conn, room, post, idem_key=key, now=now, mentions=managers, unencrypted=post
            )
            return
        addresses = self._config.digest.email_to
        if not addresses:
            log.error(
                "nobody could be told that the case room is %s: set matrix.digest_room "
                "(and invite the bot there) or digest.email_to",
                what,
            )
            return
        smtp = self._config.smtp
        for address in addresses:
            message = EmailMessage(policy=email.policy.default)
            message["From"] = smtp.from_address
            message["To"] = address
            message["Subject"] = f"cvdbot: the CVD case room is {what}"
            message["Date"] = email.utils.format_datetime(now)
            message_id = new_message_id(smtp.from_domain)
            message["Message-ID"] = message_id
            message["Auto-Submitted"] = "auto-generated"
            message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
            mail = payloads.Mail(
                kind="alert",
                label="case room alert",
                from_address=smtp.from_address,
                to_address=address,
                message_id=message_id,
                composed=ComposedMail.of(message),
            )
            await payloads.enqueue(conn, mail, idem_key=f"{key}:{address}", case_id=None, now=now)
