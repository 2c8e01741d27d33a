"""The Markdown advisory of a fixed case: the same facts as the CSAF document, for people."""

from __future__ import annotations

from bot.advisory.facts import AdvisoryFacts


def _escape(text: str) -> str:
    """Team text as Markdown text: no markup, no raw HTML, no links it did not mean."""
    out = []
    for char in text:
        out.append("\\" + char if char in "\\`*_{}[]()<>#+!|~" else char)
    return "".join(out)


def build_markdown(facts: AdvisoryFacts) -> str:
    lines = [f"# {_escape(facts.title)}", ""]
    lines.append(f"**{facts.tlp}** · publisher: {_escape(facts.organisation)} · ID {facts.case_id}")
    status = (
        f"publication agreed for {facts.publish_date.isoformat()}"
        if facts.final and facts.publish_date
        else "draft, not agreed for publication"
    )
    lines += [f"Status: {status}", "", "## Summary", ""]
    lines.append(
        f"Severity: {facts.severity or 'not given'}"
        + (
            f", CVSS {facts.cvss.base_score} ({facts.cvss.severity}) `{facts.cvss.vector}`"
            if facts.cvss
            else (f", CVSS vector `{_escape(facts.cvss_vector)}`" if facts.cvss_vector else "")
        )
    )
    lines.append(f"Reported: {facts.received_at.date().isoformat()}")
    lines.append(f"Fixed: {facts.fixed_at.date().isoformat()}")
    if facts.hosts:
        lines += ["", "## Affected systems", ""]
        lines += [f"- {_escape(host)}" for host in facts.hosts]
    if facts.description:
        lines += ["", "## Description", "", _escape(facts.description)]
    lines += ["", "## Remediation", "", _escape(facts.fix or "The vulnerability has been fixed.")]
    lines += ["", "## Acknowledgments", ""]
    if facts.credit_name:
        who = _escape(facts.credit_name)
        if facts.credit_url:
            who += f" ({_escape(facts.credit_url)})"
        lines.append(f"We thank {who} for reporting this vulnerability.")
    else:
        lines.append("We thank the reporter, who wishes to remain anonymous.")
    lines += ["", "## Revision history", ""]
    lines += [
        f"- {r.number} ({r.at.date().isoformat()}): {_escape(r.summary)}" for r in facts.revisions
    ]
    return "\n".join(lines) + "\n"
