"""The CVSS rule (bot/policy/cvss_vector.py) over the cvss package: valid vectors of each
version get their score and severity; invalid ones are refused with the library's reason."""

from __future__ import annotations

import pytest

from bot.policy.cvss_vector import MAX_VECTOR_CHARS, InvalidVector, rate, severity_differs

V31_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V4_BASE = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


@pytest.mark.parametrize(
    ("vector", "version", "score", "severity", "name"),
    [
        (V31_CRITICAL, "3.1", 9.8, "critical", "base score"),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", "3.0", 0.0, "none", "base score"),
        ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", "3.1", 5.4, "medium", "base score"),
        # Temporal metrics are accepted; the base score ignores them.
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N/E:U", "3.1", 5.3, "medium", "base score"),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", "3.1", 1.6, "low", "base score"),
        (V4_BASE, "4.0", 9.3, "critical", "CVSS-B"),
        (V4_BASE.replace("VC:H/VI:H/VA:H", "VC:L/VI:N/VA:N"), "4.0", 6.9, "medium", "CVSS-B"),
        (V4_BASE + "/E:U", "4.0", 8.1, "high", "CVSS-BT"),
        (V4_BASE + "/MSI:S/E:A", "4.0", 10.0, "critical", "CVSS-BTE"),
    ],
)
def test_valid_vectors_are_scored(
    vector: str, version: str, score: float, severity: str, name: str
) -> None:
    rating = rate(vector)
    assert (rating.version, rating.score, rating.severity, rating.score_name) == (
        version,
        score,
        severity,
        name,
    )
    assert rating.text() == f"CVSS {version} {name} {score:.1f} ({severity})"


@pytest.mark.parametrize(
    ("vector", "reason"),
    [
        ("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 'Unknown value "X" in field "AV:X"'),
        ("CVSS:3.1/AV:N", "Missing mandatory metrics"),
        (V31_CRITICAL + "/AV:L", 'Duplicate metric "AV"'),
        (V31_CRITICAL + "/", 'trailing "/"'),
        ("CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "unsupported CVSS version"),
        ("CVSS:4.0/AV:N/AC:L", "Missing mandatory metrics"),
        ("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", "is not a CVSS 3.0, 3.1 or 4.0 vector"),
        ("CVSS:" + "A" * MAX_VECTOR_CHARS, f"at most {MAX_VECTOR_CHARS} characters"),
    ],
)
def test_invalid_vectors_are_refused_with_the_reason(vector: str, reason: str) -> None:
    with pytest.raises(InvalidVector) as caught:
        rate(vector)
    assert reason in str(caught.value)


def test_severity_differs_compares_the_teams_word_with_the_vector() -> None:
    critical = rate(V31_CRITICAL)
    assert severity_differs("high", critical)
    assert not severity_differs("critical", critical)
    assert not severity_differs("Critical ", critical)
