"""Mail to reporters: renders the Dutch and English templates and builds the message.

Templates live in ``bot/mailout/templates/<kind>.<language>.txt``; each has a
``{% block subject %}`` (one line, without the case tag, which is added here) and a
``{% block body %}`` (plain text). Rendering is pure; nothing here sends or stores mail.
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

import jinja2

from bot.mailin.header_fields import BOT_HEADER
from bot.policy.lifecycle import REJECT_REASONS
from bot.text import shorten

__all__ = [
    "DEFAULT_ORGANISATION",
    "ComposedMail",
    "KINDS",
    "LANGUAGES",
    "SEVERITIES",
    "MailKind",
    "MailLanguage",
    "ReporterMailContext",
    "build_reporter_mail",
    "clean_line",
    "clean_report_subject",
    "clean_text",
    "fixed_subject",
    "format_date",
    "format_datetime",
    "new_message_id",
    "render_reporter_mail",
    "template_name",
]

#: Every reporter mail, one template pair (nl, en) each in templates/.
MailKind = Literal[
    "ack",
    "assessment",
    "fixed",
    "more_info",
    "rejected",
    "duplicate",
    "withdrawn",
    "closing",
    "reward",
    "publication",
    "reply",
    "update",
]
KINDS: tuple[MailKind, ...] = get_args(MailKind)
MailLanguage = Literal["nl", "en"]
LANGUAGES: tuple[MailLanguage, ...] = ("nl", "en")

SEVERITIES: dict[MailLanguage, dict[str, str]] = {
    "nl": {
        "none": "geen",
        "low": "laag",
        "medium": "middel",
        "high": "hoog",
        "critical": "kritiek",
    },
    "en": {
        "none": "none",
        "low": "low",
        "medium": "medium",
        "high": "high",
        "critical": "critical",
    },
}

DEFAULT_ORGANISATION: dict[MailLanguage, str] = {
    "nl": "Team informatiebeveiliging, Gemeente Haaksbergen",
    "en": "Information security team, Municipality of Haaksbergen",
}

# Shown when the report's subject is empty once tags and Re:/Fwd: are gone.
_NO_SUBJECT: dict[MailLanguage, str] = {"nl": "uw melding", "en": "your report"}

_DAYS: dict[MailLanguage, tuple[str, ...]] = {
    "nl": tuple("maandag dinsdag woensdag donderdag vrijdag zaterdag zondag".split()),
    "en": tuple("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()),
}
_MONTHS: dict[MailLanguage, tuple[str, ...]] = {
    "nl": tuple(
        "januari februari maart april mei juni juli augustus september oktober november "
        "december".split()
    ),
    "en": tuple(
        "January February March April May June July August September October November "
        "December".split()
    ),
}

SUBJECT_MAX_CHARS = 120
_NAME_MAX_CHARS = 100

_CASE_ID_RE = re.compile(r"^CVD-[0-9]{4}-[0-9]{4,}$")
_CASE_TAG_RE = re.compile(r"\[\s*CVD-[0-9]{4}-[0-9]+\s*\]", re.IGNORECASE)
# Reply/forward prefixes of common Dutch and English mail clients ("Re[2]:", "Antw:", "Fw:").
_REPLY_PREFIX_RE = re.compile(
    r"^(?:re|fwd?|antw|aw|wg|doorst|tr)\s*(?:\[[0-9]+\])?\s*:\s*", re.IGNORECASE
)
_MSG_ID_RE = re.compile(r"<[^<>\s]+>")
# Bidirectional overrides and isolates can make a subject read differently from what it
# is ("Trojan Source"); line/paragraph separators act as line breaks in some clients.
_INVISIBLE = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0xFEFF]
)
_LINE_SEPARATORS = {0x2028: "\n", 0x2029: "\n", 0x85: "\n"}


@dataclass(frozen=True)
class ReporterMailContext:
    """Everything a reporter mail says about its case.

    Datetimes must be timezone-aware; they are shown in `timezone`. `text` is the team's
    free text (assessment details, what was fixed, what information is needed).
    `assess_within_working_days` and `fix_within_days` are the policy's numbers as
    configured, so the mail never promises something else than the deadlines it shows.
    """

    case_id: str
    report_subject: str
    reporter_name: str | None
    received_at: datetime
    assess_due: datetime | None
    fix_due: datetime | None
    timezone: str
    severity: str | None = None
    cvss_vector: str | None = None
    text: str | None = None
    organisation: str | None = None
    assess_within_working_days: int = 5
    fix_within_days: int = 90
    # The rejection's reason (one of lifecycle.REJECT_REASONS), explained by the template.
    reject_reason: str | None = None
    # The earlier case a duplicate mail names: only the same reporter's own case.
    duplicate_of: str | None = None
    # The closing mail: when the case's data will be deleted, or that it is held for now.
    delete_after: datetime | None = None
    held: bool = False
    publish_date: date | None = None  # the publication mail's proposed date
    is_fixed: bool = False  # the progress update of a fixed case speaks of what follows


# ----------------------------------------------------------------------------------------
# Cleaning values that come from outside (the reporter's mail, the team's chat message)
# ----------------------------------------------------------------------------------------


def clean_text(value: str) -> str:
    """Multi-line text without control characters: keeps newlines and tabs only."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").translate(_LINE_SEPARATORS)
    value = value.translate(_INVISIBLE)
    return "".join(char for char in value if char in "\n\t" or unicodedata.category(char) != "Cc")


def clean_line(value: str) -> str:
    """One line: control characters dropped, every run of whitespace made one space.

    This is what keeps a reporter's subject from smuggling a header into our reply.
    """
    return " ".join(clean_text(value).split())


def clean_report_subject(subject: str, language: MailLanguage = "en") -> str:
    """The reporter's subject as quoted in ours: one line, no case tag, no Re:/Fwd:."""
    text = clean_line(subject)
    previous = None
    # Tags and prefixes interleave in long threads ("Re: [CVD-…] Antw: …").
    while text != previous:
        previous = text
        text = _CASE_TAG_RE.sub(" ", text)
        text = " ".join(text.split())
        text = _REPLY_PREFIX_RE.sub("", text)
    text = shorten(text, SUBJECT_MAX_CHARS)
    return text or _NO_SUBJECT[language]


def _finalize(value: Any) -> Any:
    # Last line of defence for every {{ … }} in a template: callers clean values already,
    # but a template must never be able to emit a control character.
    return clean_text(value) if isinstance(value, str) else value


# ----------------------------------------------------------------------------------------
# Dates, without locale dependency
# ----------------------------------------------------------------------------------------


def _local(moment: datetime, timezone: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("reporter mail datetimes must be timezone-aware")
    return moment.astimezone(ZoneInfo(timezone))


def format_date(moment: datetime | date, language: MailLanguage, timezone: str) -> str:
    """``woensdag 2 december 2026`` / ``Wednesday 2 December 2026``."""
    day = _local(moment, timezone).date() if isinstance(moment, datetime) else moment
    return (
        f"{_DAYS[language][day.weekday()]} {day.day} {_MONTHS[language][day.month - 1]} {day.year}"
    )


def format_datetime(moment: datetime, language: MailLanguage, timezone: str) -> str:
    """``woensdag 2 december 2026 om 17:00`` / ``Wednesday 2 December 2026 at 17:00 (CET)``.

    Dutch readers share our clock, so the Dutch text leaves the zone out; English readers
    may be anywhere, so the zone abbreviation (CET/CEST) is shown.
    """
    local = _local(moment, timezone)
    day = format_date(local.date(), language, timezone)
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if language == "nl":
        return f"{day} om {clock}"
    zone = local.tzname() or timezone
    return f"{day} at {clock} ({zone})"


# ----------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    # Cached because it only caches compiled templates; it holds no per-case state.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.mailout", "templates"),
        autoescape=False,  # noqa: S701 - plain-text mail, never HTML
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )


def template_name(kind: MailKind, language: MailLanguage) -> str:
    """Loader name of a template: ``<kind>.<language>.txt``."""
    return f"{kind}.{language}.txt"


def _template_vars(
    kind: MailKind, language: MailLanguage, ctx: ReporterMailContext
) -> dict[str, Any]:
    if not _CASE_ID_RE.match(ctx.case_id):
        raise ValueError(f"not a case ID: {ctx.case_id!r}")
    severity_code = ctx.severity.strip().lower() if ctx.severity else None
    if severity_code is not None and severity_code not in SEVERITIES[language]:
        raise ValueError(f"unknown severity {ctx.severity!r}")
    if kind == "assessment" and severity_code is None:
        raise ValueError("the assessment mail needs a severity")
    if kind == "publication" and ctx.publish_date is None:
        raise ValueError("the publication mail needs the proposed date")
    if kind == "reply" and not (ctx.text and ctx.text.strip()):
        raise ValueError("a reply needs the team's text")
    name = clean_line(ctx.reporter_name or "")[:_NAME_MAX_CHARS].strip()
    text = clean_text(ctx.text).strip() if ctx.text else ""
    cvss = clean_line(ctx.cvss_vector) if ctx.cvss_vector else ""
    organisation = clean_line(ctx.organisation or "") or DEFAULT_ORGANISATION[language]
    if ctx.reject_reason is not None and ctx.reject_reason not in REJECT_REASONS:
        raise ValueError(f"unknown rejection reason {ctx.reject_reason!r}")
    if ctx.duplicate_of is not None and not _CASE_ID_RE.match(ctx.duplicate_of):
        raise ValueError(f"not a case ID: {ctx.duplicate_of!r}")
    return {
        "case_id": ctx.case_id,
        "report_subject": clean_report_subject(ctx.report_subject, language),
        "reporter_name": name or None,
        "received_at": format_datetime(ctx.received_at, language, ctx.timezone),
        "assess_due": (
            format_datetime(ctx.assess_due, language, ctx.timezone) if ctx.assess_due else None
        ),
        # A 90-day target is a date; an exact minute would suggest false precision.
        "fix_due": format_date(ctx.fix_due, language, ctx.timezone) if ctx.fix_due else None,
        "assess_days": ctx.assess_within_working_days,
        "fix_days": ctx.fix_within_days,
        "severity_code": severity_code,
        "severity": SEVERITIES[language][severity_code] if severity_code else None,
        "cvss_vector": cvss or None,
        "text": text or None,
        "organisation": organisation,
        "reject_reason": ctx.reject_reason,
        "duplicate_of": ctx.duplicate_of,
        "delete_after": (
            format_date(ctx.delete_after, language, ctx.timezone) if ctx.delete_after else None
        ),
        "held": ctx.held,
        "publish_date": (
            format_date(ctx.publish_date, language, ctx.timezone) if ctx.publish_date else None
        ),
        "is_fixed": ctx.is_fixed,
    }


def _tidy_body(body: str) -> str:
    lines = [line.rstrip() for line in body.strip("\n").split("\n")]
    tidy = "\n".join(lines)
    # Optional parts that render empty must not leave holes in the letter.
    tidy = re.sub(r"\n{3,}", "\n\n", tidy)
    return tidy.strip("\n") + "\n"


def render_reporter_mail(
    kind: MailKind, language: MailLanguage, ctx: ReporterMailContext
) -> tuple[str, str]:
    """Render (subject, body) of one reporter mail.

    The subject is ``[CVD-YYYY-NNNN] `` plus the template's subject line; the body is
    plain text ending in one newline. Raises ValueError for an invalid case ID, a naive
    datetime or an unknown severity (and jinja2 errors for a broken template).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown mail kind {kind!r}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    template = _environment().get_template(template_name(kind, language))
    context = template.new_context(_template_vars(kind, language, ctx))
    subject_line = clean_line("".join(template.blocks["subject"](context)))
    body = "".join(template.blocks["body"](context))
    return f"[{ctx.case_id}] {subject_line}", _tidy_body(body)


def fixed_subject(kind: MailKind, language: MailLanguage, case_id: str) -> str:
    """``[CVD-YYYY-NNNN] `` plus the kind's fixed phrase ("Receipt confirmation"): the
    subject that may travel in clear when the report's own subject must not
    (bot/mailout/sealing.py, `outer_subject`)."""
    if not _CASE_ID_RE.match(case_id):
        raise ValueError(f"not a case ID: {case_id!r}")
    template = _environment().get_template(template_name(kind, language))
    phrase = clean_line("".join(template.blocks["outer_subject"](template.new_context({}))))
    return f"[{case_id}] {phrase}"


# ----------------------------------------------------------------------------------------
# The message
# ----------------------------------------------------------------------------------------


def _message_ids(values: list[str]) -> list[str]:
    """Message-IDs found in `values` (each may hold several), deduplicated, order kept.

    These come from the reporter's mail, so only the ``<…>`` tokens are taken: anything
    else (line breaks, comments, a crafted header) is dropped.
    """
    seen: list[str] = []
    for value in values:
        for found in _MSG_ID_RE.findall(clean_text(value)):
            if found not in seen:
                seen.append(found)
    return seen


def _single_line_header(value: str, what: str) -> str:
    if clean_line(value) != value.strip() or not value.strip():
        raise ValueError(f"{what} must be one non-empty line")
    return value.strip()


def build_reporter_mail(
    *,
    kind: MailKind,
    language: MailLanguage,
    ctx: ReporterMailContext,
    from_address: str,
    to_address: str,
    in_reply_to: str | None,
    references: list[str],
    message_id: str,
    date: datetime,
    rendered: tuple[str, str] | None = None,
) -> EmailMessage:
    """The complete reporter mail as a text/plain UTF-8 message, ready to sign and send.

    `rendered`: the (subject, body) rendered before, e.g. what a `!reply` preview showed,
    so the mail is exactly that text; default: rendered now."""
    subject, body = rendered or render_reporter_mail(kind, language, ctx)
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date header needs a timezone-aware datetime")
    own_ids = _message_ids([message_id])
    if len(own_ids) != 1 or own_ids[0] != message_id.strip():
        raise ValueError(f"not a Message-ID: {message_id!r}")
    parent = _message_ids([in_reply_to]) if in_reply_to else []
    chain = _message_ids([*references, *parent])

    message = EmailMessage(policy=email.policy.default)
    # The organisation's name as display name: a reporter's client shows who wrote, not a
    # bare address.
    organisation = clean_line(ctx.organisation or "") or DEFAULT_ORGANISATION[language]
    name, address = email.utils.parseaddr(_single_line_header(from_address, "From"))
    if "@" not in address:
        raise ValueError(f"not a From address: {from_address!r}")
    message["From"] = Address(name or organisation, addr_spec=address)
    message["To"] = _single_line_header(to_address, "To")
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = own_ids[0]
    if parent:
        message["In-Reply-To"] = parent[0]
    if chain:
        message["References"] = " ".join(chain)
    # RFC 3834: tells vacation responders and ticket systems not to answer automatically.
    message["Auto-Submitted"] = "auto-replied"
    message[BOT_HEADER] = kind
    message.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
    # After set_content: it drops every Content-* header that was there before.
    message["Content-Language"] = language
    return message


@dataclass(frozen=True)
class ComposedMail:
    """A built single-part message before it is signed, kept as its headers (as set) and its
    encoded body: those rebuild it exactly. Its serialised bytes would not: parsing them back
    changes folded headers (a leading space, the spaces between encoded words)."""

    headers: tuple[tuple[str, str], ...]
    body: str

    @classmethod
    def of(cls, message: EmailMessage) -> ComposedMail:
        body = message.get_payload()
        if message.is_multipart() or not isinstance(body, str):
            raise ValueError("only a single-part message is kept this way")
        return cls(tuple((name, str(value)) for name, value in message.items()), body)

    def to_message(self) -> EmailMessage:
        message = EmailMessage(policy=email.policy.default)
        for name, value in self.headers:
            message[name] = value
        message.set_payload(self.body)
        return message


def new_message_id(domain: str) -> str:
    """A fresh ``<…@domain>`` Message-ID."""
    return email.utils.make_msgid(domain=domain)
