"""What stays of a case after its retention countdown ran out. Pure, no I/O.

When a closed case's `delete_after` passes (bot/policy/lifecycle.py: `deletion_due`), the
retention job (bot/watch/retention.py) deletes its mails, attachments, the reporter's
identity and key, the hosts and URLs and the report text, and keeps a stub: case ID,
dates, severity, outcome, whether each promise was kept, the SHA-256 of each deleted mail,
and the audit log of who ran which step. This module decides what of an audit entry stays.

An audit entry keeps its time, kind and team actor; from its data only values that cannot
hold report text or personal data: numbers, yes/no, and text under the keys in
`KEPT_TEXT_KEYS` (enumerated values such as a severity, times, case IDs, team user IDs).
Any other text (a reason, a note, an address, a fingerprint) becomes `DELETED`. A key
another part of cvdbot adds later is scrubbed until it is named here: the safe default.
"""

from __future__ import annotations

from typing import Any

from bot.policy.lifecycle import REJECT_REASONS

DELETED = "(deleted)"
#: An actor from a mail ("mail:<address>") keeps only that it was the reporter's mail.
MAIL_ACTOR_PREFIX = "mail:"
DELETED_MAIL_ACTOR = f"{MAIL_ACTOR_PREFIX}{DELETED}"

#: Data keys whose text is enumerated or a time, never words from a report or a person.
KEPT_TEXT_KEYS = frozenset(
    {
        "severity",
        "cvss_vector",
        "source",
        "encryption",
        "signature",
        "missing",
        "related",
        "points",
        "for",
        "style",
        "state",
        "outcome",
        "duplicate_of",
        "language",
        "assignee",
        "mail_kind",
    }
)
#: Keys whose text is kept only when it is one of these enumerated values.
KEPT_WHEN_ONE_OF: dict[str, frozenset[str]] = {"reason": frozenset(REJECT_REASONS)}


def _is_time_key(key: str) -> bool:
    return key.endswith(("_at", "_due", "_due_before")) or key in ("fix_due", "delete_after")


def _scrub_value(key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if key in KEPT_TEXT_KEYS or _is_time_key(key):
            return value
        if value in KEPT_WHEN_ONE_OF.get(key, frozenset()):
            return value
        return DELETED
    if isinstance(value, list):
        return [_scrub_value(key, item) for item in value]
    if isinstance(value, dict):
        return {inner: _scrub_value(inner, item) for inner, item in value.items()}
    return DELETED


def scrub_event_data(data: dict[str, Any]) -> dict[str, Any]:
    """An audit entry's data without report text or personal data (see the module doc)."""
    return {key: _scrub_value(key, value) for key, value in data.items()}


def scrub_actor(actor: str) -> str:
    """A team member or "cvdbot" stays; a reporter's address does not."""
    return DELETED_MAIL_ACTOR if actor.startswith(MAIL_ACTOR_PREFIX) else actor
