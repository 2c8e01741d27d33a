"""The managers' digest as the reader gets it: plain text (room body, mail, `cvdbot digest
--print`), HTML for the room, and the chart as PNG. Pure: a built `Digest` in, text out.

Report content (the subjects, which come from reporters' mail) is left out with
``with_content=False``, for copies that are not end-to-end encrypted.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.matrix.posts import defuse_mentions
from bot.matrix.render import local, time_left
from bot.watch.chart import render_chart
from bot.watch.deadline_warnings import permalink
from bot.watch.digest_contents import CHART_DAYS, RATE_WINDOWS, CaseDue, Digest
from storage.case_overview import CaseLine, OnTime

LIST_LIMIT = 20
_SEP = " · "


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


def _deadline_text(entry: CaseDue, at: datetime, tz: ZoneInfo) -> str:
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
            f"Reporters without an update for too long ({digest.update_every_days} days or "
            f"more without mail from us): {len(digest.without_update)}",
            [
                _item(
                    q.case,
                    _case_facts(q.case) + _SEP + f"no mail from us since {local(q.since, tz)}",
                    room,
                    with_content,
                )
                for q in digest.without_update[:LIST_LIMIT]
            ],
            len(digest.without_update),
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
        _Section(
            f"Not shared with the IBD: {len(digest.ibd_unshared)}",
            [
                _item(c, _case_facts(c) + _SEP + "run !ibd", room, with_content)
                for c in digest.ibd_unshared[:LIST_LIMIT]
            ],
            len(digest.ibd_unshared),
        ),
        _Section(
            f"Reward decisions pending: {len(digest.rewards_pending)}",
            [
                _item(
                    c,
                    "proposed, waiting for a manager (!reward approve|decline)"
                    if state == "proposed"
                    else "approved, not yet sent (!reward sent)",
                    room,
                    with_content,
                )
                for c, state in digest.rewards_pending[:LIST_LIMIT]
            ],
            len(digest.rewards_pending),
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
