"""`!history` as the team reads it: a case's audit log, one short line per entry, newest last.

Entries come from people (the team's commands), from the bot (warnings) and from mail (the
actor of a mail's entries is `mail:<From address>`, and some data is taken from the mail).
Everything shown is therefore treated as untrusted: collapsed to one line, shortened, mentions
defused, and escaped by `Post.text`. Every line starts with its time, so none starts with `!`.

A long history keeps its newest entries (what the team most likely asks about) within
`MAX_ENTRIES` and `MAX_CHARS` and says how many older ones were left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.matrix.posts import Post, defuse_mentions
from bot.text import duration, shorten
from storage.case_events import CaseEvent

MAX_ENTRIES = 40
MAX_CHARS = 12_000  # well within one Matrix event, and still scrollable on a phone
VALUE_CHARS = 120
NOTE_CHARS = 600


def _one_line(value: object, limit: int = VALUE_CHARS) -> str:
    return shorten(defuse_mentions(" ".join(str(value).split())), limit)


def _get(data: dict[str, Any], key: str, limit: int = VALUE_CHARS) -> str:
    value = data.get(key)
    return "" if value in (None, "", [], {}) else _one_line(value, limit)


def _opened(data: dict[str, Any]) -> str:
    text = f"case opened from a mail ({_get(data, 'source') or 'unknown source'}"
    if _get(data, "encryption") not in ("", "none"):
        text += f", encryption {_get(data, 'encryption')}"
    text += ")"
    if _get(data, "forwarded_by"):
        text += f", forwarded by {_get(data, 'forwarded_by')}"
    if _get(data, "missing"):
        text += f"; missing: {_get(data, 'missing')}"
    return text


def _assessed(data: dict[str, Any]) -> str:
    text = f"assessed as {_get(data, 'severity')}"
    if _get(data, "cvss_score"):
        text += f" ({_get(data, 'cvss_score')})"
    return text


def _revised(data: dict[str, Any]) -> str:
    text = f"assessment revised: {_get(data, 'revised')}"
    if _get(data, "cvss_score"):
        text += f" ({_get(data, 'cvss_score')})"
    return text


def _assigned(data: dict[str, Any]) -> str:
    if _get(data, "assignee"):
        return f"assigned to {_get(data, 'assignee')}"
    return f"unassigned (was {_get(data, 'previous') or 'nobody'})"


def _resumed(data: dict[str, Any]) -> str:
    seconds = data.get("paused_seconds")
    paused = f" after {duration(timedelta(seconds=seconds))}" if isinstance(seconds, int) else ""
    return f"fix clock restarted{paused}"


_WHAT: dict[str, Callable[[dict[str, Any]], str]] = {
    "opened": _opened,
    "forwarded": lambda d: f"forwarded by {_get(d, 'forwarded_by')}",
    "follow_up": lambda d: "automatic mail stored" if d.get("automatic") else "mail stored",
    "reporter_key_imported": lambda d: f"reporter's key imported ({_get(d, 'fingerprint')})",
    "acknowledged": lambda d: "acknowledged: receipt confirmation mail",
    "assessed": _assessed,
    "assessment_revised": _revised,
    "fixed": lambda d: "marked fixed: fix notice mail",
    "fix_paused": lambda d: f"fix clock paused: {_get(d, 'reason')}",
    "fix_resumed": _resumed,
    "fix_extended": lambda d: (
        f"fix deadline extended by {_get(d, 'days')} days: {_get(d, 'reason')}"
    ),
    "more_info_requested": lambda d: "asked the reporter for more information",
    "sla_warning": lambda d: f"deadline warning ({_get(d, 'points')})",
    "assigned": _assigned,
    "note": lambda d: f"note: {_get(d, 'text', NOTE_CHARS)}",
}


def _generic(kind: str, data: dict[str, Any]) -> str:
    """An entry this module has no words for yet: its kind and its short values."""
    values = [
        f"{_one_line(key, 30)} {_get(data, key, 60)}"
        for key in data
        if _get(data, key) and not isinstance(data[key], dict)
    ]
    text = _one_line(kind.replace("_", " "), 40)
    return shorten(f"{text}: {', '.join(values)}" if values else text, 2 * VALUE_CHARS)


def describe(event: CaseEvent) -> str:
    """What one entry did, in a few words."""
    what = _WHAT.get(event.kind)
    return what(event.data) if what else _generic(event.kind, event.data)


def when(at: datetime, tz: ZoneInfo) -> str:
    """'2 Dec 2026 10:05': short for a phone, in the policy's time zone."""
    moment = at.astimezone(tz)
    return f"{moment.day} {moment:%b %Y %H:%M}"


def history_post(case_id: str, events: Sequence[CaseEvent], tz: ZoneInfo) -> Post:
    """The case's audit log, newest last; the oldest entries left out when it is long."""
    if not events:
        return Post.text(f"History of {case_id}: no entries.")
    lines: list[str] = []
    used = 0
    for event in reversed(events):
        line = f"{when(event.at, tz)} · {_one_line(event.actor, 80)} · {describe(event)}"
        if len(lines) == MAX_ENTRIES or used + len(line) + 1 > MAX_CHARS:
            break
        lines.append(line)
        used += len(line) + 1
    lines.reverse()
    left_out = len(events) - len(lines)
    heading = f"History of {case_id} ({len(events)} entries, times {tz.key}, newest last)"
    if left_out:
        heading += f"; the {left_out} oldest are left out"
    return Post.text("\n".join([heading + ":", *lines]))
