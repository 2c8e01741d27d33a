"""A stored CVSS vector as the FIRST JSON object (the `cvss_v3` of a CSAF score), with its
base score and severity computed by the `cvss` package. CVSS 4.0 has no place in CSAF 2.0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvss import CVSS3
from cvss.exceptions import CVSSError


@dataclass(frozen=True)
class CvssScore:
    vector: str
    base_score: float
    severity: str  # "High", as the CVSS specification names it
    first_json: dict[str, Any]  # the FIRST cvss-v3.x JSON object


def cvss3_score(vector: str | None) -> CvssScore | None:
    """The score of a CVSS 3.0/3.1 vector; None for no vector, CVSS 4.0 or an invalid one."""
    if not vector or not vector.startswith(("CVSS:3.0/", "CVSS:3.1/")):
        return None
    try:
        parsed = CVSS3(vector)
    except CVSSError:
        return None
    data = parsed.as_json(minimal=True)
    return CvssScore(parsed.clean_vector(), float(parsed.base_score), parsed.severities()[0], data)
