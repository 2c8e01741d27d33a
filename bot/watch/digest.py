"""The managers' daily digest: where every case stands, each morning of a working day.

At ``digest.time`` on working days (policy calendar) the bot queues, through the outbox:
the digest in ``digest_room`` (HTML with a plain-text body), a PNG chart of the trend as
encrypted media, and one mail per ``digest.email_to`` address, PGP-encrypted when the bot
holds a valid key for it and otherwise signed only. `cvdbot digest --print` prints the same
plain text.

Contents: open cases by state, new and closed cases since the previous digest, deadlines
due within ``digest.due_within_working_days`` working days, overdue promises, and the share
of each promise kept in time over the last 30 and 90 days; each case linked to its thread.

Report content (the subjects, which come from reporters' mail) goes only where it is
end-to-end encrypted: a signed-only mail and the text for a digest_room that is not
encrypted carry case IDs, states, deadlines, counts and links only.

Each digest is for one *moment* (a working day at digest.time) and lists what is new since
the previous digest was built, so a digest after downtime misses nothing. A digest missed
because the bot was down is sent when it starts again later that day; a missed day is
covered by the next digest's "new since" period rather than sent a day late.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage

from bot.config import Config
from bot.mailin.header_fields import BOT_HEADER
from bot.mailout.compose import DEFAULT_ORGANISATION, new_message_id
from bot.mailout.sealing import outer_subject, recipient_key, seal
from bot.matrix.client import MatrixAdapter
from bot.matrix.posts import Post, post_to_room
from bot.outbox import payloads
from bot.pgp.gpg import Pgp, PgpError
from bot.policy.workdays import WorkingCalendar
from bot.watch.chart import HEIGHT, WIDTH
from bot.watch.digest_contents import Digest, build_digest, moment_at_or_before
from bot.watch.digest_render import chart_png, render_html, render_text
from storage import digests
from storage.db import Database

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ sending


class DigestService:
    """Builds the digest and queues its room post, chart and mails, once per moment."""

    def __init__(self, db: Database, config: Config, calendar: WorkingCalendar, pgp: Pgp) -> None:
        self._db = db
        self._config = config
        self._calendar = calendar
        self._pgp = pgp

    async def build(self, at: datetime) -> Digest:
        async with self._db.transaction() as conn:
            return await build_digest(conn, self._config, self._calendar, at)

    def due_moment(self, now: datetime) -> datetime | None:
        """Today's digest moment if it has come (and today is a working day), else None."""
        moment = moment_at_or_before(self._calendar, self._config.digest.time_of_day, now)
        same_day = self._calendar.to_local(moment).date() == self._calendar.to_local(now).date()
        return moment if same_day else None

    async def send_if_due(self, now: datetime) -> bool:
        """Queue today's digest if its time has come and it is not queued yet."""
        moment = self.due_moment(now)
        if moment is None or await self._queued(moment):
            return False
        digest = await self.build(now)
        await self.enqueue(digest)
        return True

    async def any_queued(self) -> bool:
        async with self._db.transaction() as conn:
            return await digests.any_queued(conn)

    async def _queued(self, moment: datetime) -> bool:
        async with self._db.transaction() as conn:
            return await digests.is_queued(conn, moment)

    async def enqueue(self, digest: Digest) -> bool:
        """Queue the post, the chart and the mails in one transaction with the digest's
        record; False when this moment's digest was queued already."""
        config = self._config
        tz = self._calendar.tz
        case_room = config.matrix.case_room
        png = await asyncio.to_thread(chart_png, digest, tz)
        mails = []
        recipients = config.digest.email_to
        for number, address in enumerate(recipients, start=1):
            try:
                mails.append(await self._mail(digest, address))
            except PgpError as exc:
                # The room still gets its digest; the operator learns why a mail is missing.
                # Logs carry no addresses (bot/ops/logs.py): the entry's place in the list
                # says which one.
                log.error(
                    "digest mail %d of %d (digest.email_to) not built: %s",
                    number,
                    len(recipients),
                    exc,
                )
        day = digest.moment.astimezone(tz).date().isoformat()
        room = config.matrix.effective_digest_room
        now = digest.built_at
        async with self._db.transaction() as conn:
            if not await digests.record(conn, digest.moment, digest.since, now):
                return False
            await post_to_room(
                conn,
                room,
                Post(
                    render_text(digest, tz, case_room),
                    render_html(digest, tz, case_room),
                ),
                idem_key=f"digest:{day}:room",
                now=now,
                unencrypted=Post(
                    render_text(digest, tz, case_room, with_content=False),
                    render_html(digest, tz, case_room, with_content=False),
                ),
            )
            chart = payloads.ImagePost(
                room_id=room,
                body=f"CVD digest chart {day}",
                filename=f"cvd-digest-{day}.png",
                mimetype="image/png",
                data=png,
                width=WIDTH,
                height=HEIGHT,
            )
            await payloads.enqueue(
                conn, chart, idem_key=f"digest:{day}:chart", case_id=None, now=now
            )
            for mail in mails:
                await payloads.enqueue(
                    conn,
                    mail,
                    idem_key=f"digest:{day}:mail:{mail.to_address}",
                    case_id=None,
                    now=now,
                )
        log.info(
            "digest for %s queued: %d open, %d overdue, %d mail(s)",
            day,
            digest.open_total,
            len(digest.overdue),
            len(mails),
        )
        return True

    async def _mail(self, digest: Digest, address: str) -> payloads.Mail:
        """Sealed here, not by the outbox: what the text may say depends on whether it is
        encrypted, so the key looked up for the text is the key it is sealed with."""
        config = self._config
        tz = self._calendar.tz
        key = await recipient_key(self._pgp, self._db, address)
        text = render_text(digest, tz, config.matrix.case_room, with_content=key is not None)
        message = EmailMessage(policy=email.policy.default)
        message["From"] = Address(DEFAULT_ORGANISATION["en"], addr_spec=config.smtp.from_address)
        message["To"] = address
        day = digest.moment.astimezone(tz).date().isoformat()
        real_subject = f"CVD digest {day}: {digest.open_total} open, {len(digest.overdue)} overdue"
        message["Subject"] = real_subject
        message["Date"] = email.utils.format_datetime(digest.built_at)
        message_id = new_message_id(config.smtp.from_domain)
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"
        message[BOT_HEADER] = "digest"
        message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        # The digest is about reports: the same subject rule as reporter mail.
        hidden = outer_subject(real_subject, f"CVD digest {day}", confidential=True)
        sealed = await seal(
            self._pgp,
            message,
            key,
            unencrypted_why="so without report subjects",
            hidden_subject=hidden,
        )
        return payloads.Mail(
            kind="digest",
            label="digest",
            from_address=config.smtp.from_address,
            to_address=address,
            message_id=message_id,
            sealed=sealed,
        )


def check_digest_room(matrix: MatrixAdapter, config: Config) -> None:
    """Say at start what the managers' room will get, when it is not the full digest."""
    room = config.matrix.effective_digest_room
    if room == config.matrix.case_room:
        return
    if not matrix.is_joined(room):
        log.warning(
            "digest_room %s is not joined (yet): digests and escalations wait in the outbox "
            "until a manager or team member invites the bot",
            room,
        )
    elif not matrix.room_is_encrypted(room):
        log.warning(
            "digest_room %s is not end-to-end encrypted: digests and escalations there carry "
            "case IDs, counts, deadlines and links only, and no chart",
            room,
        )
