"""`cvdbot export`: one case as a record (JSON or Markdown), for the files before its data is
deleted: the case, its decisions (credit, consent, reward, IBD share, publication), the
hosts and URLs the report names, the audit log, and every mail in and out with its
decoded text (an encrypted mail is decrypted with the bot's key; a sealed reply to the
reporter is encrypted to the bot's key as well).

The output goes to standard output, `--format json` (default) or `--format markdown`;
redirect it into the records system. After deletion the export is the stub: empty mails
with their SHA-256, the scrubbed audit log, the decisions' states and times without their
texts, no hosts or URLs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from datetime import date, datetime
from enum import Enum
from typing import Any

import aiosqlite

from bot.mailin.parse import NotAMailError, parse_mail
from bot.pgp.gpg import Pgp
from bot.policy.decisions import Decisions
from bot.policy.lifecycle import Case
from storage import case_decisions, case_events, case_intake, cases, mails

FORMATS = ("json", "markdown")


class UnknownCase(LookupError):
    pass


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def _decoded_text(raw: bytes, pgp: Pgp | None) -> tuple[str, str]:
    """(text, how it was read) of a stored mail; never raises."""
    if not raw:
        return "", "deleted"
    data, how = raw, "plain"
    if pgp is not None:
        try:
            result = pgp.decrypt_raw(raw)
        except Exception as exc:  # gpg failing on a stored mail must not stop the export
            return "", f"could not be read ({type(exc).__name__})"
        if result.encrypted and not result.decrypted:
            return "", "encrypted; could not be decrypted"
        if result.decrypted and result.message is not None:
            data, how = result.message.as_bytes(), "decrypted"
    try:
        return parse_mail(data).text, how
    except (NotAMailError, ValueError) as exc:
        return "", f"could not be parsed ({type(exc).__name__})"


@dataclass(frozen=True)
class StoredCase:
    case: Case
    audit: list[case_events.CaseEvent]
    mails: list[mails.CaseMail]
    decisions: Decisions
    hosts: list[str]
    urls: list[str]


async def load_case(conn: aiosqlite.Connection, case_id: str) -> StoredCase:
    """Everything stored about the case; UnknownCase when there is no such case."""
    case = await cases.get_case(conn, case_id)
    if case is None:
        raise UnknownCase(case_id)
    hosts, urls = await case_intake.targets_of(conn, case_id)
    return StoredCase(
        case,
        await case_events.history(conn, case_id),
        await mails.case_mails(conn, case_id),
        await case_decisions.load(conn, case_id),
        hosts,
        urls,
    )


def build_record(stored: StoredCase, pgp: Pgp | None) -> dict[str, Any]:
    """The case as one JSON-ready object. Runs gpg: call it outside a transaction."""
    mail_records = []
    for mail in stored.mails:
        text, how = _decoded_text(mail.raw, pgp)
        mail_records.append(
            {
                "direction": mail.direction,
                "message_id": mail.message_id,
                "subject": mail.subject,
                "from": mail.from_address,
                "to": mail.to_address,
                "date": mail.sent_date,
                "stored_at": mail.stored_at,
                "language": mail.language,
                "read_as": how,
                "text": text,
                "size": len(mail.raw),
                "deleted_at": mail.deleted_at,
                "sha256_of_deleted": mail.sha256,
            }
        )
    case = stored.case
    return {
        "case": {f.name: _plain(getattr(case, f.name)) for f in fields(Case)},
        "decisions": {
            f.name: _plain(getattr(stored.decisions, f.name))
            for f in fields(Decisions)
            if f.name != "case_id"
        },
        "hosts": stored.hosts,
        "urls": stored.urls,
        "audit_log": [
            {
                "at": event.at.isoformat(),
                "actor": event.actor,
                "kind": event.kind,
                "data": event.data,
            }
            for event in stored.audit
        ],
        "mails": mail_records,
    }


def render_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n"


def _md_inline(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    """A code block whose fence is longer than any run of backticks in the mail's text, so
    the text cannot end the block and turn into Markdown."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def render_markdown(record: dict[str, Any]) -> str:
    case = record["case"]
    lines = [f"# {case['id']}: {_md_inline(case['subject'])}", "", "## Case", ""]
    lines += ["| field | value |", "| --- | --- |"]
    lines += [f"| {name} | {_md_inline(value)} |" for name, value in case.items()]
    lines += ["", "## Decisions (credit, consent, reward, IBD share, publication)", ""]
    lines += ["| decision | value |", "| --- | --- |"]
    lines += [f"| {name} | {_md_inline(value)} |" for name, value in record["decisions"].items()]
    lines += ["", "## Affected hosts and URLs", ""]
    targets = [*record["hosts"], *record["urls"]]
    lines += [f"- {_md_inline(target)}" for target in targets] or ["(none)"]
    lines += [
        "",
        "## Audit log",
        "",
        "| when | who | what | details |",
        "| --- | --- | --- | --- |",
    ]
    for entry in record["audit_log"]:
        details = entry["data"]
        lines.append(
            f"| {entry['at']} | {_md_inline(entry['actor'])} | {_md_inline(entry['kind'])} | "
            f"{_md_inline(json.dumps(details, ensure_ascii=False, default=str))} |"
        )
    lines += ["", "## Mails", ""]
    if not record["mails"]:
        lines.append("(none)")
    for number, mail in enumerate(record["mails"], 1):
        arrow = "from the reporter" if mail["direction"] == "in" else "to the reporter"
        lines += [
            f"### {number}. {arrow}: {_md_inline(mail['subject'])}",
            "",
            f"- date: {_md_inline(mail['date'])}; stored: {mail['stored_at']}",
            f"- from: {_md_inline(mail['from'])}; to: {_md_inline(mail['to'])}",
            f"- Message-ID: {_md_inline(mail['message_id'])}; read as: {mail['read_as']}",
        ]
        if mail["deleted_at"]:
            lines.append(
                f"- deleted {mail['deleted_at']}; SHA-256 of the deleted bytes: "
                f"{mail['sha256_of_deleted']}"
            )
        lines += ["", _fence(mail["text"]) if mail["text"] else "(no text)", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
