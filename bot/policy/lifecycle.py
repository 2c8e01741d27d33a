"""The case core: states, the allowed transitions between them, and case IDs. Pure, no I/O.

A case moves new -> acknowledged -> assessed -> fixed. Each step is a promise the policy
makes to the reporter, so a step cannot be skipped: `!fixed` on a case that was never
acknowledged or assessed is refused with the missing steps named, and nothing changes.
An assessment may be revised (a new `!assess` on an assessed case) until the case is fixed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

CASE_ID_PATTERN = re.compile(r"\bCVD-(\d{4})-(\d{4,})\b", re.IGNORECASE)
SEVERITIES = ("none", "low", "medium", "high", "critical")


class CaseState(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ASSESSED = "assessed"
    FIXED = "fixed"


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
    assessed_at: datetime | None = None
    fixed_at: datetime | None = None
    severity: str | None = None
    cvss_vector: str | None = None
    assessment_text: str | None = None
    fix_text: str | None = None
    assignee: str | None = None
    report_mail_id: int | None = None
    thread_root_event_id: str | None = None
    thread_last_event_id: str | None = None
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


def acknowledge(case: Case, at: datetime) -> Case:
    if case.state is not CaseState.NEW:
        when = f" on {case.acknowledged_at:%Y-%m-%d %H:%M} UTC" if case.acknowledged_at else ""
        raise TransitionError(f"{case.id} was already acknowledged{when}; no new mail was sent.")
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
    return replace(
        case,
        state=CaseState.ASSESSED,
        assessed_at=at,
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
    return replace(case, state=CaseState.FIXED, fixed_at=at, fix_text=text)
