"""Who may be a case's assignee, and assigning it. Pure, no I/O.

Only the people who work cases (`matrix.team` and `matrix.managers`) can be assigned: the
assignee is whom deadline warnings mention and whose `!cases mine` lists the case, so an
outsider as assignee would leave the case without anyone being told.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import replace

from bot.policy.lifecycle import Case, TransitionError, check_not_deleted

#: A Matrix user ID (the spec allows at most 255 characters).
USER_ID = re.compile(r"@[A-Za-z0-9._=/+\-]+:[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
MAX_USER_ID_CHARS = 255


class AssignmentError(TransitionError):
    """An assignee the rule refuses; the message is shown to the team as is."""


def resolve_assignee(word: str, sender: str, eligible: Collection[str]) -> str | None:
    """The user `word` names (`me`, `none`, a user ID, or the local part of exactly one
    eligible user, as a client may write a mention), None for nobody.

    Raises AssignmentError when the user is not one who may be assigned.
    """
    word = word.strip()
    lowered = word.lower()
    if lowered == "none":
        return None
    if lowered == "me":
        user = sender
    elif len(word) <= MAX_USER_ID_CHARS and USER_ID.fullmatch(word):
        user = word
    else:
        local = lowered.removeprefix("@")
        matches = [user for user in eligible if user[1:].split(":", 1)[0].lower() == local]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AssignmentError(
                f"{len(matches)} team members are called {local!r}: give the full user ID "
                f"({', '.join(sorted(matches))})."
            )
        raise AssignmentError(
            f"give a user ID (@name:server), me or none; {word[:60]!r} is none of the team members."
        )
    if user not in eligible:
        raise AssignmentError(
            f"{user} is not in the CVD team or among the managers (matrix.team, "
            "matrix.managers), so they cannot be assigned. Nothing was changed."
        )
    return user


def assign(case: Case, assignee: str | None) -> Case:
    """The case with its new assignee (None: nobody). Refused when nothing would change."""
    check_not_deleted(case)
    if case.assignee == assignee:
        who = f"assigned to {assignee}" if assignee else "not assigned to anyone"
        raise AssignmentError(f"{case.id} is already {who}; nothing was changed.")
    return replace(case, assignee=assignee)
