"""The case core: states, the allowed steps between them, and case IDs. Pure, no I/O.

A case is worked new -> acknowledged -> assessed -> fixed -> closed. Each working step is a
promise the policy makes to the reporter, so a step cannot be skipped: `!fixed` on a case
that was never acknowledged or assessed is refused with the missing steps named, and
nothing changes. An assessment may be revised until the case is fixed; the first
assessment's time stays (the promise was kept then).

Instead of being fixed, a working case can end in an outcome: rejected (with a reason),
duplicate (of another case), withdrawn by the reporter, or spam. An outcome stops the
clocks. A fixed case or an outcome is closed with `!close`, which starts the retention
countdown; when it runs out the case's personal data and report text are deleted and only
a stub stays. `!reopen` brings a case back from an outcome or from closed, to the working
state its kept promises give, until its data is deleted. `!hold` stops the countdown.

`STEPS` is the transition table: which states each step may start from. A refused step
raises TransitionError with a message that says what is missing, and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

CASE_ID_PATTERN = re.compile(r"\bCVD-(\d{4})-(\d{4,})\b", re.IGNORECASE)
SEVERITIES = ("none", "low", "medium", "high", "critical")
REJECT_REASONS = ("not-a-vulnerability", "out-of-scope", "not-reproducible", "accepted-risk")


class CaseState(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ASSESSED = "assessed"
    FIXED = "fixed"
    CLOSED = "closed"
    # Outcomes: how a case ends when it is not fixed.
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    WITHDRAWN = "withdrawn"
    SPAM = "spam"

    @property
    def clocks_run(self) -> bool:
        """Whether the policy's clocks run: only while the case is being worked."""
        return self in WORKING_STATES

    @property
    def is_outcome(self) -> bool:
        return self in OUTCOMES


#: The states in which the promises' clocks run and warnings are due.
WORKING_STATES = frozenset({CaseState.NEW, CaseState.ACKNOWLEDGED, CaseState.ASSESSED})
OUTCOMES = (CaseState.REJECTED, CaseState.DUPLICATE, CaseState.WITHDRAWN, CaseState.SPAM)
#: A case is done being worked (fixed or an outcome) and may be closed.
ENDED_STATES = frozenset({CaseState.FIXED, *OUTCOMES})

#: The transition table: the states each step may start from.
STEPS: dict[str, frozenset[CaseState]] = {
    "ack": frozenset({CaseState.NEW}),
    "assess": frozenset({CaseState.ACKNOWLEDGED, CaseState.ASSESSED}),
    "fixed": frozenset({CaseState.ASSESSED}),
    "outcome": WORKING_STATES,
    "close": ENDED_STATES,
    "reopen": frozenset({CaseState.CLOSED, *OUTCOMES}),
    # Mail to the reporter about the work: progress updates while the case is worked or just
    # fixed (the publication question follows the fix).
    "update": frozenset({CaseState.ACKNOWLEDGED, CaseState.ASSESSED, CaseState.FIXED}),
    # The promises beyond the fix (bot/policy/decisions.py). What the reporter wants said of
    # them holds from the first mail until the data is deleted.
    "credit": frozenset(CaseState),
    "consent": frozenset(CaseState),
    # A reward is for a real weakness: once assessed, also after the fix and after closing.
    "reward": frozenset({CaseState.ASSESSED, CaseState.FIXED, CaseState.CLOSED}),
    # "Always shared with the IBD": once assessed, whatever the case became afterwards
    # (decisions.share_with_ibd also requires the assessment).
    "ibd": frozenset({CaseState.ASSESSED, CaseState.FIXED, CaseState.CLOSED, *OUTCOMES})
    - {CaseState.SPAM},
    # Publication is decided together after the fix; the advisory describes a fix.
    "publish": frozenset({CaseState.FIXED, CaseState.CLOSED}),
    "advisory": frozenset({CaseState.FIXED, CaseState.CLOSED}),
}


class TransitionError(Exception):
    """A step the case's state does not allow; the message is shown to the team as is."""


def format_case_id(year: int, seq: int) -> str:
    return f"CVD-{year:04d}-{seq:04d}"


def parse_case_id(text: str) -> str | None:
    """The canonical case ID if `text` is one (any letter case), else None."""
    match = CASE_ID_PATTERN.fullmatch(text.strip())
    if not match:
        return None
    return format_case_id(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class Case:
    id: str
    state: CaseState
    subject: str
    reporter_address: str | None
    reporter_name: str | None
    language: str
    received_at: datetime
    acknowledge_due: datetime
    assess_due: datetime
    fix_due: datetime
    acknowledged_at: datetime | None = None
    assessed_at: datetime | None = None  # the first assessment: when the promise was kept
    fixed_at: datetime | None = None
    severity: str | None = None
    cvss_vector: str | None = None
    assessment_text: str | None = None
    fix_text: str | None = None
    assignee: str | None = None
    report_mail_id: int | None = None
    thread_root_event_id: str | None = None
    thread_last_event_id: str | None = None
    # How the case ended: an outcome's name, or "fixed" once a fixed case is closed.
    outcome: str | None = None
    outcome_at: datetime | None = None
    outcome_reason: str | None = None  # !reject's reason (REJECT_REASONS)
    outcome_text: str | None = None  # the team's words to the reporter about the outcome
    duplicate_of: str | None = None
    closed_at: datetime | None = None
    # Retention: when the case's personal data and report text are due for deletion
    # (None while open, while held, or once deleted), why it is held, when it was deleted.
    delete_after: datetime | None = None
    hold_reason: str | None = None
    data_deleted_at: datetime | None = None
    # Opened from the mailbox's backlog (imap.start_at: all): warning points that had passed
    # by then are not warned.
    imported_at: datetime | None = None

    @property
    def reporter_display(self) -> str:
        if self.reporter_address is None:
            return "anonymous"
        if self.reporter_name:
            return f"{self.reporter_name} <{self.reporter_address}>"
        return self.reporter_address

    @property
    def state_text(self) -> str:
        """The state as the team reads it: "rejected (out-of-scope)", "closed (duplicate)"."""
        if self.state is CaseState.REJECTED and self.outcome_reason:
            return f"rejected ({self.outcome_reason})"
        if self.state is CaseState.DUPLICATE and self.duplicate_of:
            return f"duplicate of {self.duplicate_of}"
        if self.state is CaseState.CLOSED and self.outcome:
            return f"closed ({self.outcome})"
        return self.state.value


def working_state(case: Case) -> CaseState:
    """The working state the case's kept promises give: where `!reopen` brings it back to."""
    if case.fixed_at is not None:
        return CaseState.FIXED
    if case.assessed_at is not None:
        return CaseState.ASSESSED
    if case.acknowledged_at is not None:
        return CaseState.ACKNOWLEDGED
    return CaseState.NEW


def check_step(case: Case, step: str) -> None:
    """Refuse `step` unless the transition table allows it from the case's state."""
    if case.data_deleted_at is not None:
        raise TransitionError(
            f"the data of {case.id} was deleted on {case.data_deleted_at:%Y-%m-%d}; only its "
            "stub remains, so nothing about it can change."
        )
    if case.state in STEPS[step]:
        return
    if case.state is CaseState.CLOSED or case.state.is_outcome:
        raise TransitionError(f"{case.id} is {case.state_text}: run !reopen first.")
    allowed = ", ".join(sorted(state.value for state in STEPS[step]))
    raise TransitionError(f"{case.id} is {case.state_text}; this needs a case that is {allowed}.")


def acknowledge(case: Case, at: datetime) -> Case:
    if case.state in (CaseState.ACKNOWLEDGED, CaseState.ASSESSED, CaseState.FIXED):
        when = f" on {case.acknowledged_at:%Y-%m-%d %H:%M} UTC" if case.acknowledged_at else ""
        raise TransitionError(f"{case.id} was already acknowledged{when}; no new mail was sent.")
    check_step(case, "ack")
    return replace(case, state=CaseState.ACKNOWLEDGED, acknowledged_at=at)


def assess(
    case: Case, at: datetime, severity: str, cvss_vector: str | None, text: str | None
) -> Case:
    if severity not in SEVERITIES:
        raise TransitionError(f"severity must be one of {', '.join(SEVERITIES)}")
    if case.state is CaseState.NEW:
        raise TransitionError(
            f"{case.id} has not been acknowledged yet: run !ack first, so the reporter gets "
            "the receipt confirmation before the assessment."
        )
    if case.state is CaseState.FIXED:
        raise TransitionError(f"{case.id} is already fixed; the assessment can no longer change.")
    check_step(case, "assess")
    return replace(
        case,
        state=CaseState.ASSESSED,
        assessed_at=case.assessed_at or at,
        severity=severity,
        cvss_vector=cvss_vector,
        assessment_text=text,
    )


def mark_fixed(case: Case, at: datetime, text: str | None) -> Case:
    missing = []
    if case.state is CaseState.NEW:
        missing = ["!ack", "!assess"]
    elif case.state is CaseState.ACKNOWLEDGED:
        missing = ["!assess"]
    elif case.state is CaseState.FIXED:
        raise TransitionError(f"{case.id} is already marked fixed; no new mail was sent.")
    if missing:
        raise TransitionError(
            f"{case.id} is {case.state.value}: run {' and '.join(missing)} first. "
            "The reporter is owed those answers before the fix notice."
        )
    check_step(case, "fixed")
    return replace(case, state=CaseState.FIXED, fixed_at=at, fix_text=text)


def end_with(
    case: Case,
    outcome: CaseState,
    at: datetime,
    *,
    reason: str | None = None,
    text: str | None = None,
    duplicate_of: str | None = None,
) -> Case:
    """Record an outcome (rejected, duplicate, withdrawn, spam): the clocks stop."""
    if not outcome.is_outcome:
        raise ValueError(f"{outcome} is not an outcome")
    if case.state is CaseState.FIXED:
        raise TransitionError(f"{case.id} is already fixed; close it with !close instead.")
    check_step(case, "outcome")
    if outcome is CaseState.REJECTED and reason not in REJECT_REASONS:
        raise TransitionError(f"a rejection needs a reason: one of {', '.join(REJECT_REASONS)}")
    if outcome is CaseState.DUPLICATE:
        if duplicate_of is None:
            raise TransitionError("a duplicate needs the ID of the case it duplicates")
        if duplicate_of == case.id:
            raise TransitionError(f"{case.id} cannot be a duplicate of itself")
    return replace(
        case,
        state=outcome,
        outcome=outcome.value,
        outcome_at=at,
        outcome_reason=reason if outcome is CaseState.REJECTED else None,
        outcome_text=text,
        duplicate_of=duplicate_of if outcome is CaseState.DUPLICATE else None,
    )


def same_reporter(case: Case, other: Case) -> bool:
    """Whether two cases come from the same reporter address (compared without letter case).

    A duplicate's mail names the earlier case only then: another reporter's case ID would
    tell a stranger that someone else reported it, and under which number.
    """
    if case.reporter_address is None or other.reporter_address is None:
        return False
    return case.reporter_address.strip().lower() == other.reporter_address.strip().lower()


def close(case: Case, at: datetime, retention: timedelta) -> Case:
    """Close a fixed case or an outcome; the retention countdown starts unless held."""
    if case.state is not CaseState.CLOSED and case.state.clocks_run:
        missing = "run !fixed, or record an outcome (!reject, !duplicate, !withdrawn, !spam)"
        raise TransitionError(f"{case.id} is {case.state_text}: {missing} before !close.")
    check_step(case, "close")
    return replace(
        case,
        state=CaseState.CLOSED,
        outcome=case.outcome or case.state.value,
        outcome_at=case.outcome_at or case.fixed_at or at,
        closed_at=at,
        delete_after=None if case.hold_reason else at + retention,
    )


def reopen(case: Case) -> Case:
    """Back from an outcome or from closed to the working state its kept promises give."""
    if case.data_deleted_at is None and case.state.clocks_run:
        raise TransitionError(f"{case.id} is {case.state_text}: it is open already.")
    check_step(case, "reopen")
    return replace(
        case,
        state=working_state(case),
        outcome=None,
        outcome_at=None,
        outcome_reason=None,
        outcome_text=None,
        duplicate_of=None,
        closed_at=None,
        delete_after=None,
    )


def hold(case: Case, reason: str) -> Case:
    """Stop the deletion countdown (e.g. a legal obligation to keep the data)."""
    check_not_deleted(case)
    if case.hold_reason is not None:
        raise TransitionError(f"{case.id} is already held: {case.hold_reason}")
    return replace(case, hold_reason=reason, delete_after=None)


def unhold(case: Case, at: datetime, retention: timedelta) -> Case:
    """Restart the countdown: a closed case's data is deleted `retention` from now."""
    check_not_deleted(case)
    if case.hold_reason is None:
        raise TransitionError(f"{case.id} is not held; there is nothing to release.")
    delete_after = at + retention if case.state is CaseState.CLOSED else None
    return replace(case, hold_reason=None, delete_after=delete_after)


def check_not_deleted(case: Case) -> None:
    if case.data_deleted_at is not None:
        raise TransitionError(
            f"the data of {case.id} was deleted on {case.data_deleted_at:%Y-%m-%d}; only its "
            "stub remains."
        )


def deletion_due(case: Case, now: datetime) -> bool:
    return (
        case.state is CaseState.CLOSED
        and case.data_deleted_at is None
        and case.hold_reason is None
        and case.delete_after is not None
        and case.delete_after <= now
    )


def strip_personal_data(case: Case, at: datetime) -> Case:
    """The stub that stays after deletion: ID, dates, severity, outcome; no report text,
    reporter identity or team's words to the reporter."""
    if not deletion_due(case, at):
        raise TransitionError(f"{case.id} is not due for deletion.")
    return replace(
        case,
        subject="(deleted)",
        reporter_address=None,
        reporter_name=None,
        assessment_text=None,
        fix_text=None,
        outcome_text=None,
        delete_after=None,
        data_deleted_at=at,
    )
