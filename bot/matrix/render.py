"""What the team reads in the room: the case root and the status card."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.matrix.posts import Post, defuse_mentions
from bot.policy.cvss_vector import InvalidVector, rate
from bot.policy.lifecycle import Case, CaseState
from bot.policy.promises import PROMISES
from bot.text import duration


def local(at: datetime, tz: ZoneInfo) -> str:
    """A time as the team reads it: 'Wed 2 Dec 2026 17:00 CET'."""
    moment = at.astimezone(tz)
    return f"{moment:%a} {moment.day} {moment:%b %Y %H:%M %Z}"


def time_left(due: datetime, now: datetime) -> str:
    """'2d 3h left', or 'overdue by 5m'."""
    if due >= now:
        return f"{duration(due - now)} left"
    return f"overdue by {duration(now - due)}"


def deadline_lines(case: Case, tz: ZoneInfo, now: datetime | None = None) -> list[str]:
    """One line per promise: its deadline, and when it was kept or how much time is left."""
    lines = []
    for promise in PROMISES:
        due, done = promise.due(case), promise.done(case)
        line = f"{promise.label} by {local(due, tz)}"
        if done is not None:
            line += f" — done {local(done, tz)}" + (" (late)" if done > due else "")
        elif now is not None:
            line += f" — {time_left(due, now)}"
        lines.append(line)
    return lines


def case_root(case: Case, tz: ZoneInfo, problems: list[str], details: Sequence[str] = ()) -> Post:
    """`details`: lines about how the report came in (forwarded, encrypted, signed)."""
    subject = defuse_mentions(case.subject) or "(no subject)"
    reporter = defuse_mentions(case.reporter_display)
    shown_details = [defuse_mentions(line) for line in details]
    lines = [
        f"New report {case.id}: {subject}",
        f"Reporter: {reporter}",
        *shown_details,
        f"Received: {local(case.received_at, tz)} · language: {case.language}",
        *deadline_lines(case, tz),
    ]
    if problems:
        lines.append("Problems with this mail: " + "; ".join(problems))
    commands = [*(promise.command for promise in PROMISES), "!status"]
    lines.append(f"Reply in this thread: {', '.join(commands)} (!help for more).")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in deadline_lines(case, tz))
    problem_html = (
        f"<p>⚠️ Problems with this mail: {html.escape('; '.join(problems))}</p>" if problems else ""
    )
    html_body = (
        f"<p><strong>New report {case.id}</strong>: {html.escape(subject)}</p>"
        f"<p>Reporter: {html.escape(reporter)}<br>"
        + "".join(f"{html.escape(line)}<br>" for line in shown_details)
        + f"Received: {html.escape(local(case.received_at, tz))} · language: {case.language}</p>"
        f"<ul>{items}</ul>{problem_html}"
        "<p>Reply in this thread: "
        + ", ".join(f"<code>{command}</code>" for command in commands)
        + " (<code>!help</code> for more).</p>"
    )
    return Post("\n".join(lines), html_body)


def status(case: Case, tz: ZoneInfo, now: datetime) -> Post:
    state = case.state.value
    if case.state is CaseState.ASSESSED or case.severity:
        state += f" · severity {case.severity}"
        if case.cvss_vector:
            state += f" ({case.cvss_vector})"
    lines = [f"{case.id}: {state}"]
    if case.cvss_vector:
        try:
            lines.append(f"Score: {rate(case.cvss_vector).text()}")
        except InvalidVector as exc:  # stored before vectors were checked
            lines.append(f"Score: none, the vector is not valid ({exc})")
    lines += [
        f"Assignee: {case.assignee or 'nobody'}",
        f"Reporter: {defuse_mentions(case.reporter_display)} · language: {case.language}",
        *deadline_lines(case, tz, now),
    ]
    return Post.text("\n".join(lines))
