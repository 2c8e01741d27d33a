"""A CVSS vector checked and scored by the `cvss` package (CVSS 3.0, 3.1 and 4.0). Pure.

`rate(vector)` returns the vector's score and the severity the CVSS specification gives it,
or raises InvalidVector with the library's reason. The team's own severity (`!assess high`)
stays what the team said; `severity_differs` says when the vector disagrees, so the answer
in the thread can point it out.

For CVSS 3.x the score is the base score (temporal and environmental metrics in the vector
are accepted but not counted). For CVSS 4.0 the library scores the metrics given: with base
metrics only that is CVSS-B; the name of the score says which (CVSS-B, CVSS-BT, …).
"""

from __future__ import annotations

from dataclasses import dataclass

from cvss import CVSS3, CVSS4, CVSSError

#: A vector is one word of at most this many characters (the longest CVSS 4.0 vector with
#: every supplemental and environmental metric is about 330).
MAX_VECTOR_CHARS = 400


class InvalidVector(ValueError):
    """A vector the library refuses; the message says why, for the team to read."""


@dataclass(frozen=True)
class CvssRating:
    vector: str  # as given
    version: str  # "3.0", "3.1", "4.0"
    score: float
    severity: str  # none, low, medium, high, critical (lower case, as SEVERITIES)
    score_name: str  # "base score", or CVSS 4.0's nomenclature: "CVSS-B", "CVSS-BT", …

    def text(self) -> str:
        """'CVSS 3.1 base score 9.8 (critical)', 'CVSS 4.0 CVSS-B 6.9 (medium)'."""
        return f"CVSS {self.version} {self.score_name} {self.score:.1f} ({self.severity})"


def rate(vector: str) -> CvssRating:
    """Validate and score `vector`; InvalidVector with the library's reason when it is not one."""
    if len(vector) > MAX_VECTOR_CHARS:
        raise InvalidVector(f"a CVSS vector is at most {MAX_VECTOR_CHARS} characters")
    try:
        if vector.startswith("CVSS:3."):
            v3 = CVSS3(vector)
            # severities() is (base, temporal, environmental).
            return CvssRating(
                vector,
                vector[5:8],
                float(v3.base_score),
                str(v3.severities()[0]).lower(),
                "base score",
            )
        if vector.startswith("CVSS:4."):
            v4 = CVSS4(vector)
            return CvssRating(
                vector,
                vector[5:8],
                float(v4.base_score),
                str(v4.severity).lower(),
                _nomenclature(v4.original_metrics),
            )
    except CVSSError as exc:
        raise InvalidVector(str(exc)) from None
    raise InvalidVector(
        f'"{vector}" is not a CVSS 3.0, 3.1 or 4.0 vector (it must start with CVSS:3.0/, '
        "CVSS:3.1/ or CVSS:4.0/)"
    )


def _nomenclature(metrics: dict[str, str]) -> str:
    """CVSS 4.0's name for the score: B(ase), plus T(hreat) and E(nvironmental) when given.
    Environmental metrics are the security requirements (CR, IR, AR) and the modified base
    metrics (MAV … MSA); supplemental metrics do not change the score."""
    given = {name for name, value in metrics.items() if value != "X"}
    threat = "T" if "E" in given else ""
    environmental = any(name in ("CR", "IR", "AR") or name.startswith("M") for name in given)
    return f"CVSS-B{threat}{'E' if environmental else ''}"


def severity_differs(given: str, rating: CvssRating) -> bool:
    """Whether the team's severity is not the one the vector's score gives."""
    return given.strip().lower() != rating.severity
