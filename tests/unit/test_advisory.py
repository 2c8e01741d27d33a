"""The CSAF 2.0 advisory: validated offline against the shipped official schema, naming the
reporter only with credit consent; the Markdown advisory; `cvdbot advisory`'s exits."""

from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.advisory.csaf import build_csaf, validation_errors
from bot.advisory.facts import gather
from bot.advisory.markdown import build_markdown
from bot.policy.decisions import Decisions
from bot.policy.lifecycle import Case, CaseState, TransitionError

SCHEMAS = Path(__file__).resolve().parents[2] / "bot" / "advisory" / "schemas"
T = datetime(2026, 12, 1, 10, tzinfo=UTC)
FIXED = Case(
    id="CVD-2026-0007",
    state=CaseState.FIXED,
    subject="Secret subject from the reporter",
    reporter_address="sam@finder.example",
    reporter_name="Sam Finder",
    language="en",
    received_at=T,
    acknowledge_due=T,
    assess_due=T,
    fix_due=T,
    acknowledged_at=T,
    assessed_at=T,
    fixed_at=T,
    severity="high",
    cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
    assessment_text="Reflected XSS in q.",
    fix_text="Output encoding added.",
)


def facts(case: Case = FIXED, d: Decisions | None = None) -> Any:
    return gather(
        case,
        d or Decisions(case.id),
        hosts=["parkeren.haaksbergen.example"],
        organisation="Municipality of Haaksbergen",
        namespace="https://haaksbergen.example",
        now=T,
    )


def test_shipped_schemas_are_the_official_files() -> None:
    expected = {
        "csaf_json_schema.json": "29c114b35b0a30831f1674f2ab8b3ed9b2890cfeaa63b924ac6ed9d70ef44262",
        "cvss-v2.0.json": "cd1a7c0815b7a47dc12fb7dded10622b96d562841f7bc6d2d8765c5d937a28f2",
        "cvss-v3.0.json": "b2b587e5dfa6d9a4be89e25cb593df04f14e7ffbe8fe5b167ceee17b6097d919",
        "cvss-v3.1.json": "77ff3df106e4588e2bb5c9cf0237f962c62d35c5002443c4bf7cc7ca16ee171f",
    }
    for name, digest in expected.items():
        assert hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest() == digest


def test_advisory_validates_offline_and_is_anonymous_without_credit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the validation tried to use the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    document = build_csaf(facts(), engine_version="test")
    assert validation_errors(document) == []
    assert document["document"]["category"] == "csaf_security_advisory"
    assert document["document"]["publisher"]["category"] == "vendor"
    assert document["document"]["tracking"]["revision_history"][0]["number"] == "1"
    vulnerability = document["vulnerabilities"][0]
    assert vulnerability["scores"][0]["cvss_v3"]["baseScore"] == 6.1
    assert vulnerability["remediations"][0]["category"] == "vendor_fix"
    assert vulnerability["product_status"]["fixed"] == ["CSAFPID-0001"]
    assert "acknowledgments" not in vulnerability
    text = json.dumps(document) + build_markdown(facts())
    for private in ("Sam Finder", "sam@finder.example", "Secret subject"):
        assert private not in text
    assert document["document"]["distribution"]["tlp"]["label"] == "AMBER"


def test_credit_consent_names_the_reporter() -> None:
    credited = Decisions(FIXED.id, credit_name="Sam Finder", credit_url="https://finder.example")
    document = build_csaf(facts(d=credited), engine_version="test")
    assert validation_errors(document) == []
    assert document["vulnerabilities"][0]["acknowledgments"] == [
        {
            "names": ["Sam Finder"],
            "summary": "reporting this vulnerability",
            "urls": ["https://finder.example"],
        }
    ]
    assert "We thank Sam Finder (https://finder.example)" in build_markdown(facts(d=credited))
    assert "sam@finder.example" not in json.dumps(document)


def test_the_schema_catches_what_is_wrong() -> None:
    document = build_csaf(facts(), engine_version="test")
    document["document"]["publisher"]["category"] = "municipality"
    document["vulnerabilities"][0]["scores"][0]["cvss_v3"]["baseScore"] = 11.0
    problems = validation_errors(document)
    assert any(p.startswith("document/publisher/category") for p in problems)
    assert any(p.startswith("vulnerabilities/0/scores/0/cvss_v3") for p in problems)


def test_agreed_publication_makes_a_final_public_revision() -> None:
    agreed = Decisions(
        FIXED.id, publish_state="agreed", publish_date=T.date(), publish_at=T, ibd_tlp="TLP:RED"
    )
    document = build_csaf(facts(d=agreed), engine_version="test")
    tracking = document["document"]["tracking"]
    assert tracking["status"] == "final" and tracking["version"] == "2"
    assert document["document"]["distribution"]["tlp"]["label"] == "WHITE"
    shared = build_csaf(facts(d=Decisions(FIXED.id, ibd_tlp="TLP:RED")), engine_version="t")
    assert shared["document"]["distribution"]["tlp"]["label"] == "RED"


def test_no_advisory_before_the_fix_or_for_a_rejected_case() -> None:
    with pytest.raises(TransitionError, match="only for a fixed case"):
        facts(replace(FIXED, state=CaseState.ASSESSED, fixed_at=None))
    closed_rejected = replace(FIXED, state=CaseState.CLOSED, outcome="rejected")
    with pytest.raises(TransitionError, match="closed as rejected"):
        facts(closed_rejected)
    facts(replace(FIXED, state=CaseState.CLOSED, outcome="fixed"))
