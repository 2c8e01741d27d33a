"""The policy's promises beyond the fix, as pure decisions over one case. No I/O.

The policy promises that the reporter stays anonymous unless they want their name mentioned
(credit), that personal data is shared only with permission (consent), that a reward *may*
be given case by case on diligence, quality and seriousness (reward, decided by a manager),
that the report is always shared with the IBD (the Informatiebeveiligingsdienst voor
gemeenten), and that publication is decided together with the reporter after the fix.

`Decisions` holds the current answer to each; every change returns a new one and is
recorded by the caller in the audit log with its evidence (the command's Matrix event and,
for what the reporter said, the mail it came from). Which case states each step may start
from is in `bot.policy.lifecycle.STEPS` ("credit", "consent", "reward", "ibd", "publish",
"advisory"); the rules that need more than the state are here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from bot.policy.lifecycle import Case, CaseState, TransitionError, check_step
from bot.policy.workdays import WorkingCalendar

#: The Traffic Light Protocol 2.0 labels, most restrictive first (FIRST TLP 2.0).
TLP_LABELS = ("TLP:RED", "TLP:AMBER+STRICT", "TLP:AMBER", "TLP:GREEN", "TLP:CLEAR")
DEFAULT_TLP = "TLP:AMBER"
#: The reward criteria the policy names, in its order.
REWARD_CRITERIA = ("diligence", "quality", "seriousness")
REWARD_STATES = ("proposed", "approved", "declined", "sent")
PUBLISH_STATES = ("proposed", "agreed", "declined", "none")

_URL = re.compile(r"https?://[^\s<>\"']{1,300}")
NAME_MAX_CHARS = 100
TEXT_MAX_CHARS = 2000


@dataclass(frozen=True)
class Decisions:
    """A case's answers to the promises beyond the fix (defaults: nothing decided yet)."""

    case_id: str
    credit_name: str | None = None  # None: anonymous (the policy's default)
    credit_url: str | None = None
    credit_evidence: str | None = None
    credit_at: datetime | None = None
    share_contact: bool = False  # only with the reporter's explicit yes
    consent_evidence: str | None = None
    consent_at: datetime | None = None
    reward_state: str | None = None  # REWARD_STATES
    reward_criteria: str | None = None  # "diligence=… quality=… seriousness=…"
    reward_proposal: str | None = None
    reward_decision: str | None = None  # the manager's words
    reward_decided_by: str | None = None
    reward_delivery: str | None = None  # personal data for delivery; gone once sent
    reward_at: datetime | None = None
    ibd_shared_at: datetime | None = None
    ibd_tlp: str | None = None
    ibd_updated_at: datetime | None = None
    publish_state: str | None = None  # PUBLISH_STATES
    publish_date: date | None = None
    publish_text: str | None = None
    publish_evidence: str | None = None
    publish_at: datetime | None = None

    @property
    def credited(self) -> bool:
        return self.credit_name is not None

    @property
    def reward_pending(self) -> bool:
        """A proposal waits for a manager's decision, or an approved reward is not sent."""
        return self.reward_state in ("proposed", "approved")


# ------------------------------------------------------------------------------ credit


def parse_credit_name(words: str) -> tuple[str, str | None]:
    """`Jan de Vries https://example.org` -> ("Jan de Vries", "https://example.org")."""
    text = " ".join(words.split())
    url = None
    last = text.rsplit(" ", 1)
    if len(last) == 2 and _URL.fullmatch(last[1]):
        text, url = last[0], last[1]
    elif _URL.fullmatch(text):
        raise TransitionError("a credit needs a display name before the URL")
    if not text:
        raise TransitionError("a credit needs the name the reporter wants to be mentioned by")
    if len(text) > NAME_MAX_CHARS:
        raise TransitionError(f"a display name has at most {NAME_MAX_CHARS} characters")
    return text, url


def give_credit(
    case: Case, d: Decisions, name: str | None, url: str | None, evidence: str, at: datetime
) -> Decisions:
    """Record the reporter's credit choice: a name (and URL) or anonymous (name None)."""
    check_step(case, "credit")
    return replace(
        d,
        credit_name=name,
        credit_url=url if name else None,
        credit_evidence=evidence,
        credit_at=at,
    )


def set_consent(case: Case, d: Decisions, share: bool, evidence: str, at: datetime) -> Decisions:
    check_step(case, "consent")
    return replace(d, share_contact=share, consent_evidence=evidence, consent_at=at)


# ------------------------------------------------------------------------------ reward


def parse_criteria(text: str) -> tuple[str, str]:
    """The three criteria (`diligence=… quality=… seriousness=…`, in any order, values one
    word each) and the proposal text after them."""
    found: dict[str, str] = {}
    rest: list[str] = []
    for word in text.split():
        key, eq, value = word.partition("=")
        if eq and key.lower() in REWARD_CRITERIA and value:
            found[key.lower()] = value
        else:
            rest.append(word)
    missing = [name for name in REWARD_CRITERIA if name not in found]
    if missing:
        raise TransitionError(
            "a reward proposal weighs the policy's three criteria: give "
            + " ".join(f"{name}=…" for name in missing)
            + " (e.g. diligence=high quality=good seriousness=medium)"
        )
    proposal = " ".join(rest)
    if not proposal:
        raise TransitionError("say what you propose after the criteria (e.g. a gift voucher)")
    criteria = " ".join(f"{name}={found[name]}" for name in REWARD_CRITERIA)
    return criteria, proposal[:TEXT_MAX_CHARS]


def propose_reward(case: Case, d: Decisions, text: str, at: datetime) -> Decisions:
    check_step(case, "reward")
    if d.reward_state in ("approved", "sent"):
        raise TransitionError(f"the reward for {case.id} is already {d.reward_state}.")
    criteria, proposal = parse_criteria(text)
    return replace(
        d,
        reward_state="proposed",
        reward_criteria=criteria,
        reward_proposal=proposal,
        reward_decision=None,
        reward_decided_by=None,
        reward_at=at,
    )


def decide_reward(
    case: Case, d: Decisions, approve: bool, text: str | None, by: str, at: datetime
) -> Decisions:
    check_step(case, "reward")
    if d.reward_state != "proposed":
        what = d.reward_state or "not proposed yet"
        raise TransitionError(
            f"there is no reward proposal for {case.id} to decide (it is {what}); "
            "!reward propose comes first."
        )
    return replace(
        d,
        reward_state="approved" if approve else "declined",
        reward_decision=text,
        reward_decided_by=by,
        reward_at=at,
    )


def reward_details(case: Case, d: Decisions, text: str) -> Decisions:
    """What is needed to deliver an approved reward (e.g. a postal address), kept until sent."""
    check_step(case, "reward")
    if d.reward_state != "approved":
        raise TransitionError(f"the reward for {case.id} is not approved; nothing to deliver.")
    return replace(d, reward_delivery=text[:TEXT_MAX_CHARS])


def reward_sent(case: Case, d: Decisions, at: datetime) -> Decisions:
    """The reward went out: the personal data collected for delivering it is removed."""
    check_step(case, "reward")
    if d.reward_state != "approved":
        raise TransitionError(
            f"the reward for {case.id} is {d.reward_state or 'not proposed'}; only an approved "
            "reward can be sent."
        )
    return replace(d, reward_state="sent", reward_delivery=None, reward_at=at)


# ------------------------------------------------------------------------------ IBD


def parse_tlp(word: str | None) -> str:
    if word is None:
        return DEFAULT_TLP
    label = word.upper()
    if not label.startswith("TLP:"):
        label = "TLP:" + label
    if label not in TLP_LABELS:
        raise TransitionError(f"the TLP label must be one of {', '.join(TLP_LABELS)}")
    return label


def share_with_ibd(case: Case, d: Decisions, tlp: str, at: datetime) -> Decisions:
    check_step(case, "ibd")
    if case.assessed_at is None:
        raise TransitionError(f"{case.id} is not assessed yet: run !assess first.")
    if d.ibd_shared_at is not None:
        raise TransitionError(
            f"{case.id} was shared with the IBD on {d.ibd_shared_at:%Y-%m-%d %H:%M} UTC "
            f"({d.ibd_tlp}); !ibd update sends the outcome."
        )
    return replace(d, ibd_shared_at=at, ibd_tlp=tlp)


def update_ibd(case: Case, d: Decisions, at: datetime) -> Decisions:
    check_step(case, "ibd")
    if d.ibd_shared_at is None:
        raise TransitionError(f"{case.id} was not shared with the IBD yet: run !ibd first.")
    return replace(d, ibd_updated_at=at)


def ibd_share_due(case: Case, calendar: WorkingCalendar, working_days: int) -> datetime | None:
    """When the case should have been shared with the IBD: N working days after its first
    assessment (counted like acknowledge), or None before it is assessed or for spam."""
    if case.assessed_at is None or case.state is CaseState.SPAM or case.data_deleted_at:
        return None
    return calendar.working_day_deadline(case.assessed_at, working_days).due.astimezone(UTC)


# ------------------------------------------------------------------------------ publication


def parse_date(word: str) -> date:
    try:
        return date.fromisoformat(word)
    except ValueError:
        raise TransitionError(f"{word!r} is not a date (YYYY-MM-DD)") from None


def propose_publication(
    case: Case, d: Decisions, when: date, text: str | None, at: datetime
) -> Decisions:
    check_publication(case)
    if d.publish_state in ("agreed", "declined", "none"):
        raise TransitionError(f"publication of {case.id} was already decided: {d.publish_state}.")
    if when < at.date():
        raise TransitionError(f"{when} is in the past; propose a date from today on.")
    return replace(d, publish_state="proposed", publish_date=when, publish_text=text, publish_at=at)


def decide_publication(
    case: Case, d: Decisions, outcome: str, when: date | None, evidence: str, at: datetime
) -> Decisions:
    """The joint decision: agreed (on a date: the given one, else the proposed one),
    declined by the reporter, or none (no publication)."""
    check_publication(case)
    if outcome not in ("agreed", "declined", "none"):
        raise ValueError(outcome)
    if outcome == "agreed":
        when = when or d.publish_date
        if when is None:
            raise TransitionError("agreed on which date? Give it: !publish agreed YYYY-MM-DD")
    else:
        when = None
    return replace(
        d, publish_state=outcome, publish_date=when, publish_evidence=evidence, publish_at=at
    )


def check_publication(case: Case) -> None:
    """Publication and the advisory come after the fix: a fixed case, or one closed fixed."""
    check_step(case, "publish")
    if case.state is CaseState.CLOSED and case.outcome != "fixed":
        raise TransitionError(f"{case.id} closed as {case.outcome}; there is no fix to publish.")


def check_advisory(case: Case) -> None:
    try:
        check_step(case, "advisory")
    except TransitionError:
        raise TransitionError(
            f"{case.id} is {case.state_text}: an advisory is only for a fixed case."
        ) from None
    if case.state is CaseState.CLOSED and case.outcome != "fixed":
        raise TransitionError(f"{case.id} closed as {case.outcome}; an advisory needs a fix.")
