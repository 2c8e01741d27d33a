"""Both advisories of a stored case: reads the case, its decisions and its hosts, and builds
the CSAF document and the Markdown text (`cvdbot advisory` and `!advisory`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata

import aiosqlite

from bot.advisory.csaf import build_csaf
from bot.advisory.facts import AdvisoryFacts, gather
from bot.advisory.markdown import build_markdown
from bot.config import Config
from bot.mailout.compose import DEFAULT_ORGANISATION
from bot.policy.lifecycle import TransitionError
from storage import case_decisions, case_intake, cases


class NoAdvisory(Exception):
    """Why there is no advisory for the case (unknown case, not fixed); shown as is."""


@dataclass(frozen=True)
class Advisories:
    facts: AdvisoryFacts
    csaf: str  # JSON text
    markdown: str


def engine_version() -> str:
    try:
        return metadata.version("cvdbot")
    except metadata.PackageNotFoundError:
        return "development"


async def advisories(
    conn: aiosqlite.Connection, config: Config, case_id: str, now: datetime
) -> Advisories:
    case = await cases.get_case(conn, case_id)
    if case is None:
        raise NoAdvisory(f"there is no case {case_id}")
    decisions = await case_decisions.load(conn, case.id)
    hosts, _ = await case_intake.targets_of(conn, case.id)
    try:
        facts = gather(
            case,
            decisions,
            hosts=hosts,
            organisation=DEFAULT_ORGANISATION["en"],
            namespace=f"https://{config.smtp.from_domain}",
            now=now,
        )
    except TransitionError as exc:
        raise NoAdvisory(str(exc)) from exc
    document = build_csaf(facts, engine_version=engine_version())
    return Advisories(
        facts, json.dumps(document, indent=2, ensure_ascii=False), build_markdown(facts)
    )
