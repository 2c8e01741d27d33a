"""The policy's "always shared with the IBD" as a warning point: a case assessed and not
shared with `!ibd` within `policy.share_ibd_within_working_days` gets one warning in its
thread, mentioning who must act. Checked in the SLA tick (bot/watch/deadline_warnings.py),
recorded in `sla_warnings` with the post, so it is posted exactly once across restarts.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.matrix.posts import Post, post_to_case
from bot.matrix.render import local
from bot.policy.decisions import ibd_share_due
from bot.policy.lifecycle import Case
from bot.policy.workdays import WorkingCalendar
from bot.watch.warning_points import OVERDUE_AFTER
from storage import case_decisions, case_events, sla_warnings

PROMISE = "ibd"
POINT = "not shared"


async def check_ibd_share(
    conn: aiosqlite.Connection,
    case: Case,
    now: datetime,
    calendar: WorkingCalendar,
    working_days: int,
    who: list[str],
) -> datetime | None:
    """Warn once when the share is overdue; else when to look again (None: nothing to do)."""
    due = ibd_share_due(case, calendar, working_days)
    if due is None:
        return None
    if (await case_decisions.load(conn, case.id)).ibd_shared_at is not None:
        return None
    if any(w.promise == PROMISE for w in await sla_warnings.warnings_of(conn, case.id)):
        return None
    if now < due + OVERDUE_AFTER:
        return due + OVERDUE_AFTER
    if not await sla_warnings.record_warning(
        conn, case.id, promise=PROMISE, point=POINT, due=due, at=now
    ):
        return None
    text = (
        f"🛡️ {case.id}: not shared with the IBD — the policy shares every report with the "
        f"IBD, and this case was assessed {local(case.assessed_at or due, calendar.tz)}; "
        f"it was due by {local(due, calendar.tz)} ({working_days} working days). "
        f"For {' '.join(who) or 'the team'}: !ibd [TLP label] shares it."
    )
    await case_events.record(
        conn,
        case.id,
        actor="cvdbot",
        kind="sla_warning",
        at=now,
        data={"points": [f"{PROMISE}: {POINT}"], "for": who},
    )
    await post_to_case(
        conn, case.id, Post.text(text), idem_key=f"sla:{case.id}:ibd", now=now, mentions=who
    )
    return None
