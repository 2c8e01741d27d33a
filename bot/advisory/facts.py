"""What an advisory says of a case, gathered once for both formats. Pure.

Only what the team wrote for publication goes in: the assessment and fix texts, severity
and CVSS, the affected hosts, dates. Never the report's mail or subject, and the reporter
only as the credit consent says (`Decisions.credit_name`), never their address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from bot.advisory.cvss_metrics import CvssScore, cvss3_score
from bot.policy.decisions import Decisions, check_advisory
from bot.policy.lifecycle import Case

# TLP 2.0 (what !ibd records) to the TLP 1.0 labels CSAF 2.0 knows; AMBER+STRICT has no
# TLP 1.0 counterpart and becomes the nearest stricter-than-GREEN label, AMBER.
CSAF_TLP = {
    "TLP:RED": "RED",
    "TLP:AMBER+STRICT": "AMBER",
    "TLP:AMBER": "AMBER",
    "TLP:GREEN": "GREEN",
    "TLP:CLEAR": "WHITE",
}


@dataclass(frozen=True)
class Revision:
    number: str
    at: datetime
    summary: str


@dataclass(frozen=True)
class AdvisoryFacts:
    case_id: str
    organisation: str
    namespace: str  # the publisher's URL
    title: str
    severity: str | None
    cvss: CvssScore | None
    cvss_vector: str | None  # as assessed (also a 4.0 vector, shown in Markdown only)
    description: str | None
    fix: str | None
    hosts: tuple[str, ...]
    received_at: datetime
    fixed_at: datetime
    generated_at: datetime
    credit_name: str | None
    credit_url: str | None
    tlp: str  # TLP 2.0 label
    publish_state: str | None
    publish_date: date | None
    revisions: tuple[Revision, ...]

    @property
    def csaf_tlp(self) -> str:
        return CSAF_TLP[self.tlp]

    @property
    def final(self) -> bool:
        return self.publish_state == "agreed"


def advisory_tlp(d: Decisions) -> str:
    """Public once publication is agreed; otherwise the label the IBD got, or TLP:AMBER."""
    if d.publish_state == "agreed":
        return "TLP:CLEAR"
    return d.ibd_tlp or "TLP:AMBER"


def gather(
    case: Case,
    d: Decisions,
    *,
    hosts: list[str],
    organisation: str,
    namespace: str,
    now: datetime,
) -> AdvisoryFacts:
    """The facts of a fixed case's advisory; TransitionError when it is not fixed."""
    check_advisory(case)
    assert case.fixed_at is not None
    revisions = [Revision("1", case.fixed_at, "Fixed; first version of this advisory.")]
    if d.publish_state == "agreed" and d.publish_at is not None and d.publish_date:
        revisions.append(
            Revision(
                "2",
                max(d.publish_at, case.fixed_at),
                f"Publication agreed with the reporter for {d.publish_date.isoformat()}.",
            )
        )
    severity = case.severity
    kind = f"{severity.capitalize()} vulnerability" if severity not in (None, "none") else "Issue"
    title = f"{case.id}: {kind} fixed"
    return AdvisoryFacts(
        case_id=case.id,
        organisation=organisation,
        namespace=namespace,
        title=title,
        severity=severity,
        cvss=cvss3_score(case.cvss_vector),
        cvss_vector=case.cvss_vector,
        description=case.assessment_text,
        fix=case.fix_text,
        hosts=tuple(hosts),
        received_at=case.received_at,
        fixed_at=case.fixed_at,
        generated_at=now,
        credit_name=d.credit_name,
        credit_url=d.credit_url,
        tlp=advisory_tlp(d),
        publish_state=d.publish_state,
        publish_date=d.publish_date,
        revisions=tuple(revisions),
    )
