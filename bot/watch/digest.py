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
import bisect
import email.policy
import email.utils
import html
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import aiosqlite

from bot.config import Config
from bot.mailout.compose import new_message_id
from bot.mailout.sealing import recipient_key, seal
from bot.matrix.client import MatrixAdapter
from bot.matrix.posts import Post, defuse_mentions, post_to_room
from bot.matrix.render import local, time_left
from bot.outbox import payloads
from bot.pgp.gpg import Pgp, PgpError
from bot.policy.workdays import WorkingCalendar
from bot.watch.chart import HEIGHT, WIDTH, ChartData, render_chart
from bot.watch.deadline_warnings import permalink
from storage import sla as sla_store
from storage.db import Database
from storage.sla import PROMISES, CaseLine, OnTime, PromiseDue

log = logging.getLogger(__name__)

LIST_LIMIT = 20
RATE_WINDOWS = (30, 90)
CHART_DAYS = 90
CHART_WEEKS = 13
_MAX_DAYS_BACK = 400
_SEP = " · "


# ------------------------------------------------------------------------------ moments


def moment_at_or_before(calendar: WorkingCalendar, time_of_day: time, at: datetime) -> datetime:
    """The latest digest moment (a working day at digest.time, local) not after `at`."""
    day = calendar.to_local(at).date()
    for _ in range(_MAX_DAYS_BACK):
        if calendar.is_working_day(day):
            moment = datetime.combine(day, time_of_day, tzinfo=calendar.tz).astimezone(UTC)
            if moment <= at:
                return moment
        day -= timedelta(days=1)
    raise ValueError("no working day in the last 400 days")


def due_until(calendar: WorkingCalendar, at: datetime, working_days: int) -> datetime:
    """End of business on the Nth working day counted from `at`'s day (that day included
    when it is a working day)."""
    day = calendar.to_local(at).date()
    if not calendar.is_working_day(day):
        day, _ = calendar.add_working_days(day, 1)
    last, _ = calendar.add_working_days(day, working_days - 1)
    return datetime.combine(last, calendar.rules.business_end, tzinfo=calendar.tz).astimezone(UTC)


async def _since(
    conn: aiosqlite.Connection, calendar: WorkingCalendar, time_of_day: time, moment: datetime
) -> datetime:
    """Where this digest's period starts: when the previous digest was built, else the
    previous digest moment."""
    async with conn.execute(
        "SELECT until FROM digests WHERE moment < ? ORDER BY moment DESC LIMIT 1",
        (moment.isoformat(),),
    ) as cur:
        row = await cur.fetchone()
    if row is not None:
        return datetime.fromisoformat(row[0])
    return moment_at_or_before(calendar, time_of_day, moment - timedelta(seconds=1))


# ------------------------------------------------------------------------------ contents


@dataclass(frozen=True)
class CaseDeadlines:
    """One case with the deadlines of it that a section lists."""

    case: CaseLine
    promises: list[PromiseDue]


@dataclass(frozen=True)
class Digest:
    moment: datetime  # the digest moment it is for
    built_at: datetime
    since: datetime
    due_until: datetime
    due_within_working_days: int
    open_by_state: dict[str, int]
    paused: int
    new: list[CaseLine]
    due_soon: list[CaseDeadlines]
    overdue: list[CaseDeadlines]
    closed: list[CaseLine]
    on_time: dict[str, dict[int, OnTime]]
    chart: ChartData

    @property
    def open_total(self) -> int:
        return sum(self.open_by_state.values())


def _by_case(promises: list[PromiseDue]) -> list[CaseDeadlines]:
    grouped: dict[str, CaseDeadlines] = {}
    for item in promises:
        entry = grouped.setdefault(item.case.id, CaseDeadlines(item.case, []))
        entry.promises.append(item)
    return sorted(grouped.values(), key=lambda entry: (entry.promises[0].due, entry.case.id))


async def build_digest(
    conn: aiosqlite.Connection, config: Config, calendar: WorkingCalendar, at: datetime
) -> Digest:
    """The digest as of `at`. Counts are the database as it is; periods end at `at`."""
    time_of_day = config.digest.time_of_day
    moment = moment_at_or_before(calendar, time_of_day, at)
    since = min(await _since(conn, calendar, time_of_day, moment), at)
    working_days = config.digest.due_within_working_days
    until = due_until(calendar, at, working_days)
    by_state = await sla_store.count_open_by_state(conn)
    running = [
        item for item in await sla_store.open_promises_due_by(conn, until) if not item.paused
    ]
    on_time = {
        promise: {
            days: await sla_store.on_time(conn, promise, at - timedelta(days=days), at)
            for days in RATE_WINDOWS
        }
        for promise in PROMISES
    }
    return Digest(
        moment=moment,
        built_at=at,
        since=since,
        due_until=until,
        due_within_working_days=working_days,
        open_by_state=by_state,
        paused=await sla_store.count_paused(conn),
        new=await sla_store.created_between(conn, since, at),
        due_soon=_by_case([item for item in running if item.due >= at]),
        overdue=_by_case([item for item in running if item.due < at]),
        closed=await sla_store.fixed_between(conn, since, at),
        on_time=on_time,
        chart=await _chart_data(conn, calendar, at, sum(by_state.values())),
    )


async def _chart_data(
    conn: aiosqlite.Connection, calendar: WorkingCalendar, at: datetime, open_now: int
) -> ChartData:
    """Open cases at the end of each of the last 90 days, worked back from the open cases
    now through the cases created and fixed since (only the recent rows are read)."""
    tz = calendar.tz
    today = calendar.to_local(at).date()
    first = today - timedelta(days=CHART_DAYS - 1)
    start = datetime.combine(first, time(0), tzinfo=tz).astimezone(UTC)
    created, fixed = await sla_store.created_and_fixed_since(conn, start)
    created.sort()
    fixed.sort()
    days = []
    for offset in range(CHART_DAYS):
        day = first + timedelta(days=offset)
        end = min(datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz), at)
        later_created = len(created) - bisect.bisect_right(created, end)
        later_fixed = len(fixed) - bisect.bisect_right(fixed, end)
        days.append((day, open_now - later_created + later_fixed))
    this_monday = today - timedelta(days=today.weekday())
    rates: list[tuple[date, float | None]] = []
    for back in range(CHART_WEEKS - 1, -1, -1):
        monday = this_monday - timedelta(weeks=back)
        begin = datetime.combine(monday, time(0), tzinfo=tz).astimezone(UTC)
        end = min(datetime.combine(monday + timedelta(weeks=1), time(0), tzinfo=tz), at)
        kept = decided = 0
        for promise in PROMISES:
            result = await sla_store.on_time(conn, promise, begin, end.astimezone(UTC))
            kept += result.kept
            decided += result.decided
        rates.append((monday, kept / decided if decided else None))
    return ChartData(open_per_day=days, rate_per_week=rates)


# ------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class _Item:
    case_id: str
    link: str | None
    text: str
    subject: str | None


@dataclass(frozen=True)
class _Section:
    title: str
    items: list[_Item]
    total: int


def _item(case: CaseLine, text: str, room: str, with_content: bool) -> _Item:
    link = permalink(room, case.thread_root_event_id) if case.thread_root_event_id else None
    subject = None
    if with_content:
        subject = defuse_mentions(" ".join(case.subject.split())) or "(no subject)"
    return _Item(case.id, link, text, subject)


def _case_facts(case: CaseLine) -> str:
    facts = [case.state]
    if case.severity:
        facts.append(case.severity)
    facts.append(case.assignee or "unassigned")
    return _SEP.join(facts)


def _deadline_text(entry: CaseDeadlines, at: datetime, tz: ZoneInfo) -> str:
    parts = [
        f"{item.promise} by {local(item.due, tz)} ({time_left(item.due, at)})"
        for item in entry.promises
    ]
    return _case_facts(entry.case) + _SEP + ", ".join(parts)


def _rate_text(result: OnTime) -> str:
    if result.rate is None:
        return "none due"
    return f"{result.kept} of {result.decided} ({result.rate:.0%})"


def _sections(digest: Digest, tz: ZoneInfo, room: str, with_content: bool) -> list[_Section]:
    at = digest.built_at
    return [
        _Section(
            f"New since {local(digest.since, tz)}: {len(digest.new)}",
            [_item(c, _case_facts(c), room, with_content) for c in digest.new[:LIST_LIMIT]],
            len(digest.new),
        ),
        _Section(
            f"Due within {digest.due_within_working_days} working days (by "
            f"{local(digest.due_until, tz)}): {len(digest.due_soon)}",
            [
                _item(e.case, _deadline_text(e, at, tz), room, with_content)
                for e in digest.due_soon[:LIST_LIMIT]
            ],
            len(digest.due_soon),
        ),
        _Section(
            f"Overdue: {len(digest.overdue)}",
            [
                _item(e.case, _deadline_text(e, at, tz), room, with_content)
                for e in digest.overdue[:LIST_LIMIT]
            ],
            len(digest.overdue),
        ),
        _Section(
            f"Closed since {local(digest.since, tz)}: {len(digest.closed)}",
            [
                _item(
                    c,
                    f"fixed {local(c.fixed_at, tz)}" if c.fixed_at else "fixed",
                    room,
                    with_content,
                )
                for c in digest.closed[:LIST_LIMIT]
            ],
            len(digest.closed),
        ),
    ]


def _summary(digest: Digest) -> str:
    states = _SEP.join(f"{state} {count}" for state, count in digest.open_by_state.items())
    text = f"Open cases: {digest.open_total} ({states})"
    if digest.paused:
        text += f"; fix clock paused in {digest.paused}"
    return text + "."


def _rate_lines(digest: Digest) -> list[str]:
    return [
        f"{promise}: "
        + _SEP.join(f"{days} days {_rate_text(windows[days])}" for days in RATE_WINDOWS)
        for promise, windows in digest.on_time.items()
    ]


def render_text(digest: Digest, tz: ZoneInfo, room: str, *, with_content: bool = True) -> str:
    """The plain-text digest (the room's body, the mail, `cvdbot digest --print`)."""
    lines = [f"CVD digest, {local(digest.built_at, tz)}", _summary(digest)]
    if not with_content:
        lines.append("Report subjects are left out here: this copy is not end-to-end encrypted.")
    for section in _sections(digest, tz, room, with_content):
        lines.append("")
        lines.append(section.title)
        for item in section.items:
            parts = [item.case_id, item.text]
            if item.subject is not None:
                parts.append(item.subject)
            parts.append(item.link or "(thread not posted yet)")
            lines.append("  " + _SEP.join(parts))
        if section.total > len(section.items):
            lines.append(f"  … and {section.total - len(section.items)} more (!cases lists all)")
    lines.append("")
    lines.append("Promises kept in time (of those decided in the period):")
    lines.extend(f"  {line}" for line in _rate_lines(digest))
    return "\n".join(lines)


def render_html(digest: Digest, tz: ZoneInfo, room: str, *, with_content: bool = True) -> str:
    parts = [
        f"<h4>CVD digest, {html.escape(local(digest.built_at, tz))}</h4>",
        f"<p>{html.escape(_summary(digest))}</p>",
    ]
    if not with_content:
        parts.append(
            "<p><em>Report subjects are left out here: this copy is not end-to-end "
            "encrypted.</em></p>"
        )
    for section in _sections(digest, tz, room, with_content):
        parts.append(f"<p><strong>{html.escape(section.title)}</strong></p>")
        if not section.items:
            continue
        items = []
        for item in section.items:
            case = html.escape(item.case_id)
            label = f'<a href="{html.escape(item.link)}">{case}</a>' if item.link else case
            text = f"{label}{_SEP}{html.escape(item.text)}"
            if item.subject is not None:
                text += f"{_SEP}<em>{html.escape(item.subject)}</em>"
            items.append(f"<li>{text}</li>")
        if section.total > len(section.items):
            items.append(f"<li>… and {section.total - len(section.items)} more</li>")
        parts.append(f"<ul>{''.join(items)}</ul>")
    rates = "".join(f"<li>{html.escape(line)}</li>" for line in _rate_lines(digest))
    parts.append(
        f"<p><strong>Promises kept in time</strong> (of those decided):</p><ul>{rates}</ul>"
    )
    return "".join(parts)


def chart_png(digest: Digest, tz: ZoneInfo) -> bytes:
    day = digest.built_at.astimezone(tz).date().isoformat()
    return render_chart(digest.chart, f"CVD cases, {CHART_DAYS} days to {day}")


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
            async with conn.execute("SELECT 1 FROM digests LIMIT 1") as cur:
                return await cur.fetchone() is not None

    async def _queued(self, moment: datetime) -> bool:
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT 1 FROM digests WHERE moment = ?", (moment.isoformat(),)
            ) as cur:
                return await cur.fetchone() is not None

    async def enqueue(self, digest: Digest) -> bool:
        """Queue the post, the chart and the mails in one transaction with the digest's
        record; False when this moment's digest was queued already."""
        config = self._config
        tz = self._calendar.tz
        case_room = config.matrix.case_room
        png = await asyncio.to_thread(chart_png, digest, tz)
        mails = []
        for address in config.digest.email_to:
            try:
                mails.append(await self._mail(digest, address))
            except PgpError as exc:
                # The room still gets its digest; the operator learns why a mail is missing.
                log.error("digest mail to %s not built: %s", address, exc)
        day = digest.moment.astimezone(tz).date().isoformat()
        room = config.matrix.effective_digest_room
        now = digest.built_at
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO digests (moment, since, until, queued_at) VALUES (?,?,?,?)"
                " ON CONFLICT (moment) DO NOTHING",
                (
                    digest.moment.isoformat(),
                    digest.since.isoformat(),
                    now.isoformat(),
                    now.isoformat(),
                ),
            )
            if cur.rowcount != 1:
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
        key = await recipient_key(self._pgp, address)
        text = render_text(digest, tz, config.matrix.case_room, with_content=key is not None)
        message = EmailMessage(policy=email.policy.default)
        message["From"] = config.smtp.from_address
        message["To"] = address
        day = digest.moment.astimezone(tz).date().isoformat()
        message["Subject"] = (
            f"CVD digest {day}: {digest.open_total} open, {len(digest.overdue)} overdue"
        )
        message["Date"] = email.utils.format_datetime(digest.built_at)
        message_id = new_message_id(config.smtp.from_domain)
        message["Message-ID"] = message_id
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
        sealed = await seal(self._pgp, message, key, unencrypted_why="so without report subjects")
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
