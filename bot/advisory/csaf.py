"""The CSAF 2.0 `csaf_security_advisory` of a fixed case, and its offline validation against
the official schema shipped in bot/advisory/schemas/ (no network: the CVSS schemas the CSAF
schema references are mapped to the shipped files)."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4, DRAFT7

from bot.advisory.facts import AdvisoryFacts

CSAF_SCHEMA = "csaf_json_schema.json"
# The $ref URIs in the CSAF 2.0 schema and the shipped file each names, with its draft.
_REFERENCED = {
    "https://www.first.org/cvss/cvss-v2.0.json": ("cvss-v2.0.json", DRAFT4),
    "https://www.first.org/cvss/cvss-v3.0.json": ("cvss-v3.0.json", DRAFT4),
    "https://www.first.org/cvss/cvss-v3.1.json": ("cvss-v3.1.json", DRAFT7),
}


class AdvisoryInvalid(ValueError):
    """The document does not validate against the CSAF 2.0 schema."""


def _schema_file(name: str) -> Any:
    return json.loads(resources.files("bot.advisory").joinpath("schemas", name).read_text("utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    def retrieve(uri: str) -> Resource[Any]:
        # Called only for a URI not in the registry: refuse instead of fetching it.
        raise LookupError(f"the CSAF validation may not fetch {uri}")

    registry: Registry[Any] = Registry(retrieve=retrieve).with_resources(  # type: ignore[call-arg]
        (uri, Resource.from_contents(_schema_file(name), default_specification=spec))
        for uri, (name, spec) in _REFERENCED.items()
    )
    schema = _schema_file(CSAF_SCHEMA)
    return Draft202012Validator(
        schema,
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def validation_errors(document: dict[str, Any]) -> list[str]:
    """Every schema violation, as `path: message`; empty when the document is valid."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(document)'}: {error.message}"
        for error in errors
    ]


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def build_csaf(facts: AdvisoryFacts, *, engine_version: str) -> dict[str, Any]:
    """The CSAF 2.0 document; raises AdvisoryInvalid if it does not validate."""
    product_ids = [f"CSAFPID-{index:04d}" for index in range(1, len(facts.hosts) + 1)]
    products = [
        {"product_id": pid, "name": host}
        for pid, host in zip(product_ids, facts.hosts, strict=True)
    ]
    if not products:
        product_ids = ["CSAFPID-0001"]
        products = [{"product_id": "CSAFPID-0001", "name": f"Systems of {facts.organisation}"}]
    notes = [
        {
            "category": "summary",
            "title": "Summary",
            "text": f"A {facts.severity or 'reported'} vulnerability in systems of "
            f"{facts.organisation}, reported under coordinated vulnerability disclosure and "
            f"fixed on {facts.fixed_at.date().isoformat()}.",
        }
    ]
    if facts.description:
        notes.append({"category": "description", "title": "Description", "text": facts.description})
    vulnerability: dict[str, Any] = {
        "title": facts.title,
        "discovery_date": _time(facts.received_at),
        "notes": notes,
        "product_status": {"fixed": product_ids},
        "remediations": [
            {
                "category": "vendor_fix",
                "date": _time(facts.fixed_at),
                "details": facts.fix or "The vulnerability has been fixed.",
                "product_ids": product_ids,
            }
        ],
    }
    if facts.cvss is not None:
        vulnerability["scores"] = [{"cvss_v3": facts.cvss.first_json, "products": product_ids}]
    if facts.severity:
        vulnerability["threats"] = [
            {
                "category": "impact",
                "details": f"Severity: {facts.severity}.",
                "product_ids": product_ids,
            }
        ]
    if facts.credit_name:
        acknowledgment: dict[str, Any] = {
            "names": [facts.credit_name],
            "summary": "reporting this vulnerability",
        }
        if facts.credit_url:
            acknowledgment["urls"] = [facts.credit_url]
        vulnerability["acknowledgments"] = [acknowledgment]
    revisions = [
        {"number": r.number, "date": _time(r.at), "summary": r.summary} for r in facts.revisions
    ]
    document: dict[str, Any] = {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "title": facts.title,
            "publisher": {
                "category": "vendor",
                "name": facts.organisation,
                "namespace": facts.namespace,
            },
            "distribution": {
                "tlp": {"label": facts.csaf_tlp, "url": "https://www.first.org/tlp/"},
                "text": f"Shared as {facts.tlp} (FIRST TLP 2.0).",
            },
            "tracking": {
                "id": facts.case_id,
                "status": "final" if facts.final else "draft",
                "version": facts.revisions[-1].number,
                "revision_history": revisions,
                "initial_release_date": _time(facts.revisions[0].at),
                "current_release_date": _time(facts.revisions[-1].at),
                "generator": {
                    "date": _time(facts.generated_at),
                    "engine": {"name": "cvdbot", "version": engine_version},
                },
            },
        },
        "product_tree": {"full_product_names": products},
        "vulnerabilities": [vulnerability],
    }
    problems = validation_errors(document)
    if problems:
        raise AdvisoryInvalid("; ".join(problems))
    return document
