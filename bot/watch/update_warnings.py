"""The update warning point: a case assessed and not yet fixed whose reporter has had no mail
from us for `policy.update_every_days` calendar days gets one warning in its thread per
quiet period, mentioning who must act. The rule is bot/policy/update_due.py; this module
stores and posts. It runs inside the SLA tick (bot/watch/deadline_warnings.py), which gives
it each due case and schedules the case's next look from what `check` returns, so it costs
nothing for cases that are not due.

Exactly once: the quiet period (identified by the mail, or receipt, it began with) is
recorded in `update_warnings` in the same transaction as the post. Outside business hours
the warning waits for the next business period, as the deadline warnings do.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta

import aiosqlite

from bot.config import Config
from bot.matrix.posts import Post, post_to_case, user_link
from bot.matrix.render import local
from bot.policy.lifecycle import Case
from bot.policy.update_due import quiet_since, update_due, watched
from bot.policy.workdays import WorkingCalendar
from storage import case_events, reporter_updates

WARNING_MARK = "no update for the reporter"


class UpdateWatch:
    def __init__(self, config: Config, calendar: WorkingCalendar) -> None:
        self._config = config
        self._calendar = calendar
        self.every_days = config.policy.update_every_days

    async def check(
        self, conn: aiosqlite.Connection, case: Case, now: datetime, who: list[str]
    ) -> tuple[bool, datetime | None]:
        """Warn the case's thread if its reporter is owed an update and this quiet period
        was not warned yet. Returns (warned now, when to look at the case again for it)."""
        if not watched(case):
            return False, None
        last_mail = await reporter_updates.last_reporter_mail_at(conn, case.id)
        since = quiet_since(case.received_at, last_mail)
        due = update_due(since, self.every_days, self._calendar.tz)
        if due > now:
            return False, due
        # Warned for this period already: a later mail starts a new one (the mailer has the
        # case looked at again then); until then a look per period is enough.
        again = now + timedelta(days=self.every_days)
        if await reporter_updates.was_warned(conn, case.id, since):
            return False, again
        if not self._calendar.in_business_hours(now):
            return False, self._calendar.clock_start(now)
        await reporter_updates.record_warning(conn, case.id, since, now)
        await self._post(conn, case, since, now, who)
        return True, again

    async def _post(
        self, conn: aiosqlite.Connection, case: Case, since: datetime, now: datetime, who: list[str]
    ) -> None:
        tz = self._calendar.tz
        days = (now - since).days
        what = (
            f"the reporter has had no mail from us since {local(since, tz)} ({days} days; the "
            f"policy promises to keep them informed, every {self.every_days} days at most)."
        )
        advice = "!update [text] sends the progress mail; !reply <text> writes your own."
        names = " ".join(who) or "the team"
        body = f"📭 {case.id}: {WARNING_MARK} — for {names}: {what}\n{advice}"
        mentions_html = " ".join(user_link(user) for user in who) or "the team"
        html_body = (
            f"<p>📭 <strong>{html.escape(case.id)}</strong>: {WARNING_MARK} — for "
            f"{mentions_html}: {html.escape(what)}</p><p>{html.escape(advice)}</p>"
        )
        await case_events.record(
            conn,
            case.id,
            actor="cvdbot",
            kind="update_warning",
            at=now,
            data={"quiet_since": since.isoformat(), "for": who},
        )
        await post_to_case(
            conn,
            case.id,
            Post(body, html_body),
            idem_key=f"update-warning:{case.id}:{since:%Y%m%dT%H%M%S%f}",
            now=now,
            mentions=who,
        )
