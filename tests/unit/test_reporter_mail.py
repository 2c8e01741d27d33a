"""Tests for bot.mailout.compose: templates, subjects, dates, the built message and the
composed form the outbox keeps until the mail is sealed."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot.mailout.compose import (
    DEFAULT_ORGANISATION,
    KINDS,
    LANGUAGES,
    ComposedMail,
    MailKind,
    MailLanguage,
    ReporterMailContext,
    build_reporter_mail,
    clean_report_subject,
    format_date,
    format_datetime,
    new_message_id,
    render_reporter_mail,
)

TZ = "Europe/Amsterdam"
TEMPLATES = Path(__file__).resolve().parents[2] / "bot" / "mailout" / "templates"

FULL = ReporterMailContext(
    case_id="CVD-2026-0007",
    report_subject="XSS in zoekformulier",
    reporter_name="Jan Jansen",
    received_at=datetime(2026, 11, 30, 9, 12, tzinfo=UTC),
    assess_due=datetime(2026, 12, 2, 16, 0, tzinfo=UTC),
    fix_due=datetime(2027, 2, 28, 9, 12, tzinfo=UTC),
    timezone=TZ,
    severity="high",
    cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
    text="Reflected XSS in the search form.\nParameter q was not escaped.",
    publish_date=date(2027, 3, 1),
)

BARE = ReporterMailContext(
    case_id="CVD-2026-0012",
    report_subject="",
    reporter_name=None,
    received_at=datetime(2026, 6, 1, 10, 0, tzinfo=UTC),
    assess_due=None,
    fix_due=None,
    timezone=TZ,
)


def bare_for(kind: MailKind) -> ReporterMailContext:
    # The assessment mail cannot exist without a severity, the publication proposal not
    # without its date; everything else may be absent.
    if kind == "publication":
        return replace(BARE, publish_date=date(2026, 7, 1))
    # The assessment mail cannot exist without a severity, a reply not without the team's
    # text; everything else may be absent.
    if kind == "reply":
        return replace(BARE, text="We could reproduce it.")
    return replace(BARE, severity="low") if kind == "assessment" else BARE


def build(ctx: ReporterMailContext = FULL, **overrides: Any) -> EmailMessage:
    arguments: dict[str, Any] = {
        "kind": "ack",
        "language": "nl",
        "ctx": ctx,
        "from_address": "security@example.org",
        "to_address": "reporter@example.net",
        "in_reply_to": "<report-1@example.net>",
        "references": ["<older-0@example.net>", "<report-1@example.net>"],
        "message_id": "<reply-1@example.org>",
        "date": datetime(2026, 12, 1, 8, 0, tzinfo=UTC),
    }
    arguments.update(overrides)
    return build_reporter_mail(**arguments)


def reparse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# ----------------------------------------------------------------------------------------
# templates


def test_every_template_file_exists_with_both_blocks() -> None:
    for kind in KINDS:
        for language in LANGUAGES:
            text = (TEMPLATES / f"{kind}.{language}.txt").read_text(encoding="utf-8")
            assert "{% block subject %}" in text
            assert "{% block outer_subject %}" in text
            assert "{% block body %}" in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", ["full", "bare"])
def test_every_kind_and_language_renders(
    kind: MailKind, language: MailLanguage, which: str
) -> None:
    ctx = FULL if which == "full" else bare_for(kind)
    subject, body = render_reporter_mail(kind, language, ctx)
    assert subject.startswith(f"[{ctx.case_id}] ")
    assert subject.count("[CVD-") == 1
    assert "\n" not in subject
    assert body.endswith("\n") and not body.endswith("\n\n")
    assert "\n\n\n" not in body
    assert "None" not in body
    assert "{{" not in body and "{%" not in body
    assert all(line == line.rstrip() for line in body.splitlines())
    signature = (
        "Team informatiebeveiliging, Gemeente Haaksbergen"
        if language == "nl"
        else "Information security team, Municipality of Haaksbergen"
    )
    assert body.rstrip().endswith(signature)
    greeting = body.splitlines()[0]
    if which == "full":
        assert greeting in ("Beste Jan Jansen,", "Dear Jan Jansen,")
        if kind != "ack":
            assert "Parameter q was not escaped." in body
    else:
        assert greeting in ("Beste melder,", "Dear reporter,")


@pytest.mark.parametrize(
    ("kind", "nl", "en"),
    [
        ("ack", "Ontvangstbevestiging", "Receipt confirmation"),
        ("assessment", "Beoordeling van uw melding", "Assessment of your report"),
        ("fixed", "Opgelost", "Fixed"),
        ("more_info", "Aanvullende informatie nodig", "More information needed"),
        ("closing", "Afgesloten", "Closed"),
        ("reward", "Een beloning voor uw melding", "A reward for your report"),
        ("publication", "Openbaar maken van het probleem", "Making the problem public"),
        ("reply", "Bericht over uw melding", "About your report"),
        ("update", "Voortgang van uw melding", "Progress on your report"),
    ],
)
def test_subjects(kind: MailKind, nl: str, en: str) -> None:
    assert (
        render_reporter_mail(kind, "nl", FULL)[0] == f"[CVD-2026-0007] {nl}: XSS in zoekformulier"
    )
    assert (
        render_reporter_mail(kind, "en", FULL)[0] == f"[CVD-2026-0007] {en}: XSS in zoekformulier"
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Re: [CVD-2026-0007] XSS", "XSS"),
        ("RE: Fwd: Antw: XSS", "XSS"),
        ("[cvd-2026-0007] Re: [CVD-2026-0007] AW: XSS [CVD-2025-0001]", "XSS"),
        ("Re[2]: Fw: WG: Doorst: XSS", "XSS"),
        ("Regarding: the login page", "Regarding: the login page"),
        ("  many   spaces\there ", "many spaces here"),
    ],
)
def test_report_subject_is_cleaned(raw: str, clean: str) -> None:
    assert clean_report_subject(raw) == clean
    subject = render_reporter_mail("ack", "en", replace(FULL, report_subject=raw))[0]
    assert subject == f"[CVD-2026-0007] Receipt confirmation: {clean}"
    assert subject.count("[CVD-") == 1


def test_long_report_subject_is_trimmed_to_120_chars() -> None:
    cleaned = clean_report_subject("Re: " + "x" * 300)
    assert len(cleaned) == 120
    assert cleaned.endswith("…")
    assert clean_report_subject("y" * 120) == "y" * 120


def test_empty_report_subject_gets_a_placeholder() -> None:
    assert render_reporter_mail("ack", "nl", BARE)[0] == (
        "[CVD-2026-0012] Ontvangstbevestiging: uw melding"
    )
    assert render_reporter_mail("ack", "en", replace(BARE, report_subject="Re: [CVD-2026-0012]"))[
        0
    ] == ("[CVD-2026-0012] Receipt confirmation: your report")


@pytest.mark.parametrize(
    ("code", "dutch"),
    [
        ("none", "geen"),
        ("low", "laag"),
        ("medium", "middel"),
        ("high", "hoog"),
        ("critical", "kritiek"),
    ],
)
def test_severity_in_dutch_and_english(code: str, dutch: str) -> None:
    ctx = replace(FULL, severity=code)
    assert f"\nErnst: {dutch}\n" in render_reporter_mail("assessment", "nl", ctx)[1]
    assert f"\nSeverity: {code}\n" in render_reporter_mail("assessment", "en", ctx)[1]


def test_assessment_shows_vector_and_text_and_fix_target() -> None:
    body = render_reporter_mail("assessment", "nl", FULL)[1]
    assert "CVSS-vector: CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N" in body
    assert "Reflected XSS in the search form.\nParameter q was not escaped." in body
    assert "90 dagen" in body
    assert "zondag 28 februari 2027" in body


def test_assessment_without_vector_or_text() -> None:
    body = render_reporter_mail("assessment", "en", replace(FULL, cvss_vector=None, text=None))[1]
    assert "CVSS" not in body
    assert "Severity: high\n\nWe will fix the problem" in body


def test_assessment_of_no_severity_does_not_promise_a_fix() -> None:
    body = render_reporter_mail("assessment", "nl", replace(FULL, severity="none"))[1]
    assert "geen beveiligingsprobleem" in body
    assert "90 dagen" not in body
    body = render_reporter_mail("assessment", "en", replace(FULL, severity="none"))[1]
    assert "do not see a security problem" in body


def test_assessment_needs_a_known_severity() -> None:
    with pytest.raises(ValueError, match="severity"):
        render_reporter_mail("assessment", "nl", replace(FULL, severity=None))
    with pytest.raises(ValueError, match="severity"):
        render_reporter_mail("assessment", "en", replace(FULL, severity="urgent"))


def test_ack_states_what_the_policy_promises() -> None:
    nl = render_reporter_mail("ack", "nl", FULL)[1]
    for fragment in (
        "Binnen 5 werkdagen, dus uiterlijk woensdag 2 december 2026 om 17:00",
        "niet langer dan 90 dagen",
        "vertrouwelijk",
        "Informatiebeveiligingsdienst voor gemeenten (IBD)",
        "anoniem",
        "beloning",
        "per geval",
        "openbaar maken",
        "maandag 30 november 2026 om 10:12",
    ):
        assert fragment in nl, fragment
    en = render_reporter_mail("ack", "en", FULL)[1]
    for fragment in (
        "Within 5 working days, that is by Wednesday 2 December 2026 at 17:00 (CET)",
        "no longer than 90 days",
        "confidential",
        "(Informatiebeveiligingsdienst voor gemeenten, IBD)",
        "anonymous",
        "reward",
        "case by case",
        "made public",
    ):
        assert fragment in en, fragment


def test_configured_deadlines_are_what_the_mail_says() -> None:
    ctx = replace(FULL, assess_within_working_days=7, fix_within_days=60)
    body = render_reporter_mail("ack", "nl", ctx)[1]
    assert "Binnen 7 werkdagen" in body
    assert "niet langer dan 60 dagen" in body


def test_fixed_mail_invites_the_publication_decision() -> None:
    nl = render_reporter_mail("fixed", "nl", FULL)[1]
    assert "opgelost" in nl and "samen met u" in nl and "openbaar" in nl
    en = render_reporter_mail("fixed", "en", FULL)[1]
    assert "has been fixed" in en and "together with you" in en and "made public" in en


def test_publication_proposal_names_the_date_and_asks_for_credit() -> None:
    _, nl = render_reporter_mail("publication", "nl", FULL)
    _, en = render_reporter_mail("publication", "en", FULL)
    assert "op maandag 1 maart 2027 te publiceren" in nl and "anoniem" in nl
    assert "publish on Monday 1 March 2027" in en and "anonymous" in en
    with pytest.raises(ValueError, match="proposed date"):
        render_reporter_mail("publication", "en", BARE)


def test_reward_mail_asks_for_delivery_details_and_says_they_are_deleted() -> None:
    _, nl = render_reporter_mail("reward", "nl", FULL)
    _, en = render_reporter_mail("reward", "en", FULL)
    assert "postadres" in nl and "verwijderen ze zodra die verstuurd is" in nl
    assert "postal" in en and "delete them once it has been sent" in en
    for criterion in ("diligence", "quality", "seriousness"):
        assert criterion in en


def test_more_info_without_text_asks_something_concrete() -> None:
    assert "IP-adres of de URL" in render_reporter_mail("more_info", "nl", BARE)[1]
    assert "IP\naddress or URL" in render_reporter_mail("more_info", "en", BARE)[1]


@pytest.mark.parametrize("language", LANGUAGES)
def test_reply_wraps_the_team_text_in_greeting_and_signature(language: MailLanguage) -> None:
    ctx = replace(FULL, text="We reproduced it.\nA fix is planned for next week.")
    _, body = render_reporter_mail("reply", language, ctx)
    lines = body.splitlines()
    assert lines[0] in ("Beste Jan Jansen,", "Dear Jan Jansen,")
    assert lines[2:4] == ["We reproduced it.", "A fix is planned for next week."]
    assert "[CVD-2026-0007]" in body
    assert body.rstrip().endswith(DEFAULT_ORGANISATION[language])
    # Only the team's words, greeting, the reply hint and the signature: no other promises.
    assert len(lines) < 14


def test_reply_without_text_is_refused() -> None:
    for text in (None, "", "  \n "):
        with pytest.raises(ValueError, match="reply needs the team's text"):
            render_reporter_mail("reply", "en", replace(FULL, text=text))


@pytest.mark.parametrize(
    ("language", "target", "still"),
    [
        ("nl", "uiterlijk zondag 28 februari 2027 opgelost", "We werken nog aan de oplossing"),
        ("en", "fixed by Sunday 28 February 2027", "We are still working on fixing"),
    ],
)
def test_standard_update_names_the_fix_target(
    language: MailLanguage, target: str, still: str
) -> None:
    _, body = render_reporter_mail("update", language, replace(FULL, text=None))
    assert still in body and target in body
    _, own = render_reporter_mail("update", language, FULL)
    assert "Parameter q was not escaped." in own and still not in own and target not in own


def test_update_of_a_fixed_case_speaks_of_the_follow_up() -> None:
    fixed = replace(FULL, text=None, is_fixed=True)
    assert "Het probleem is opgelost" in render_reporter_mail("update", "nl", fixed)[1]
    body = render_reporter_mail("update", "en", fixed)[1]
    assert "has been fixed" in body and "still working on fixing" not in body


def test_update_without_a_fix_date_names_the_policy_days() -> None:
    body = render_reporter_mail("update", "en", replace(FULL, text=None, fix_due=None))[1]
    assert "within 90 days of your report" in body


def test_organisation_can_be_replaced() -> None:
    ctx = replace(FULL, organisation="CERT, Gemeente Elders")
    for language in LANGUAGES:
        assert render_reporter_mail("fixed", language, ctx)[1].endswith("\nCERT, Gemeente Elders\n")


def test_invalid_case_id_and_naive_datetime_are_refused() -> None:
    with pytest.raises(ValueError, match="case ID"):
        render_reporter_mail("ack", "nl", replace(FULL, case_id="CVD-26-7"))
    with pytest.raises(ValueError, match="timezone-aware"):
        render_reporter_mail("ack", "nl", replace(FULL, received_at=datetime(2026, 1, 1)))


# ----------------------------------------------------------------------------------------
# dates


@pytest.mark.parametrize(
    ("utc", "nl", "en"),
    [
        (
            datetime(2026, 12, 2, 16, 0, tzinfo=UTC),
            "woensdag 2 december 2026 om 17:00",
            "Wednesday 2 December 2026 at 17:00 (CET)",
        ),
        (
            datetime(2026, 7, 4, 22, 30, tzinfo=UTC),
            "zondag 5 juli 2026 om 00:30",
            "Sunday 5 July 2026 at 00:30 (CEST)",
        ),
        # Spring forward: 02:00 CET becomes 03:00 CEST on 29 March 2026.
        (
            datetime(2026, 3, 29, 0, 59, tzinfo=UTC),
            "zondag 29 maart 2026 om 01:59",
            "Sunday 29 March 2026 at 01:59 (CET)",
        ),
        (
            datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
            "zondag 29 maart 2026 om 03:00",
            "Sunday 29 March 2026 at 03:00 (CEST)",
        ),
        # Fall back: 02:00-03:00 happens twice on 25 October 2026.
        (
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            "zondag 25 oktober 2026 om 02:30",
            "Sunday 25 October 2026 at 02:30 (CEST)",
        ),
        (
            datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
            "zondag 25 oktober 2026 om 02:30",
            "Sunday 25 October 2026 at 02:30 (CET)",
        ),
    ],
)
def test_dates_in_dutch_and_english(utc: datetime, nl: str, en: str) -> None:
    assert format_datetime(utc, "nl", TZ) == nl
    assert format_datetime(utc, "en", TZ) == en


def test_every_month_and_weekday_name() -> None:
    start = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday
    nl = [format_date(start + timedelta(days=d), "nl", TZ).split()[0] for d in range(7)]
    assert nl == ["maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"]
    months = [
        format_date(datetime(2026, m, 15, 12, tzinfo=UTC), "nl", TZ).split()[2]
        for m in range(1, 13)
    ]
    assert months[0] == "januari" and months[4] == "mei" and months[11] == "december"
    assert format_date(datetime(2026, 3, 1, 12, tzinfo=UTC), "en", TZ) == "Sunday 1 March 2026"


def test_dates_in_the_body_use_the_policy_zone_across_dst() -> None:
    ctx = replace(
        FULL,
        received_at=datetime(2026, 3, 27, 15, 0, tzinfo=UTC),
        assess_due=datetime(2026, 4, 3, 15, 0, tzinfo=UTC),
    )
    en = render_reporter_mail("ack", "en", ctx)[1]
    assert "Friday 27 March 2026 at 16:00 (CET)" in en
    assert "Friday 3 April 2026 at 17:00 (CEST)" in en
    nl = render_reporter_mail("ack", "nl", ctx)[1]
    assert "vrijdag 27 maart 2026 om 16:00" in nl
    assert "vrijdag 3 april 2026 om 17:00" in nl


# ----------------------------------------------------------------------------------------
# the message


def test_headers() -> None:
    message = reparse(build())
    assert message["From"] == (
        '"Team informatiebeveiliging, Gemeente Haaksbergen" <security@example.org>'
    )
    assert message["To"] == "reporter@example.net"
    assert message["Subject"] == "[CVD-2026-0007] Ontvangstbevestiging: XSS in zoekformulier"
    assert message["Date"] == "Tue, 01 Dec 2026 08:00:00 +0000"
    assert message["Message-ID"] == "<reply-1@example.org>"
    assert message["In-Reply-To"] == "<report-1@example.net>"
    assert message["References"] == "<older-0@example.net> <report-1@example.net>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Content-Language"] == "nl"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content() == render_reporter_mail("ack", "nl", FULL)[1]


def test_references_end_with_the_mail_we_answer() -> None:
    message = build(references=["<a@x>", "<b@x> <a@x>"], in_reply_to="<c@x>")
    assert message["References"] == "<a@x> <b@x> <c@x>"
    assert message["In-Reply-To"] == "<c@x>"


def test_without_a_parent_there_is_no_in_reply_to() -> None:
    message = build(in_reply_to=None, references=[])
    assert message["In-Reply-To"] is None
    assert message["References"] is None


def test_english_mail_and_non_ascii_body() -> None:
    ctx = replace(FULL, reporter_name="Zoë Çelik", text="Geëxploiteerd via één parameter.")
    message = reparse(build(ctx, kind="fixed", language="en"))
    assert message["Content-Language"] == "en"
    assert message["Subject"] == "[CVD-2026-0007] Fixed: XSS in zoekformulier"
    body = message.get_content()
    assert body.startswith("Dear Zoë Çelik,\n")
    assert "Geëxploiteerd via één parameter." in body
    raw = bytes(build(ctx, kind="fixed", language="en"))
    assert b"Zo=C3=AB" in raw  # quoted-printable, not 8bit


def test_hostile_subject_cannot_inject_headers() -> None:
    ctx = replace(
        FULL,
        report_subject=(
            "XSS\r\nBcc: attacker@evil.example\r\n\r\nInjected body\x00\x1b[31m\u2028X-Evil: 1"
        ),
        reporter_name="Mallory\r\nX-Evil: yes",
        text="line one\x1b[2J\x07\nline two\u202e",
    )
    message = build(ctx, in_reply_to="<r@x>\r\nBcc: attacker@evil.example")
    raw = bytes(message)
    head, _, _ = raw.partition(b"\n\n")
    head_lines = head.decode("ascii").splitlines()
    assert not any(re.match(r"(?i)(bcc|x-evil):", line) for line in head_lines)
    assert sum(1 for line in head_lines if line.lower().startswith("subject:")) == 1
    parsed = reparse(message)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    subject = str(parsed["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert subject.startswith("[CVD-2026-0007] Ontvangstbevestiging: XSS Bcc:")
    assert not any(ord(char) < 32 for char in subject)
    assert parsed["In-Reply-To"] == "<r@x>"
    body = parsed.get_content()
    assert body.startswith("Beste Mallory X-Evil: yes,\n")
    assert "\x1b" not in body and "\x07" not in body and "\u202e" not in body


def test_control_characters_stripped_from_team_text_but_lines_kept() -> None:
    ctx = replace(FULL, text="first\x1b[1m line\r\nsecond\x00 line")
    body = render_reporter_mail("fixed", "en", ctx)[1]
    assert "first[1m line\nsecond line" in body


def test_bad_header_values_are_refused() -> None:
    with pytest.raises(ValueError):
        build(message_id="not-a-message-id")
    with pytest.raises(ValueError):
        build(from_address="security@example.org\r\nBcc: x@y")
    with pytest.raises(ValueError):
        build(to_address="a@b\nBcc: x@y")
    with pytest.raises(ValueError):
        build(date=datetime(2026, 12, 1, 8, 0))


def test_new_message_id() -> None:
    first = new_message_id("example.org")
    second = new_message_id("example.org")
    assert re.fullmatch(r"<[^<>\s@]+@example\.org>", first)
    assert first != second
    assert build(message_id=first)["Message-ID"] == first


# ----------------------------------------------------------------------------------------
# the composed mail as the outbox keeps it until it is sealed


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "subject",
    [
        "XSS in zoekformulier",
        "Zoë's één ü " * 12,  # encoded words folded over several lines
        "x" * 300,
        "日本語のテスト件名です" * 5,
        "Re: [CVD-2026-0001] Antw: a long subject with many words " * 3,
    ],
)
def test_composed_mail_rebuilds_the_exact_message(
    kind: MailKind, language: MailLanguage, subject: str
) -> None:
    ctx = replace(FULL, report_subject=subject, text="Zoë " * 60)
    message = build(
        ctx,
        kind=kind,
        language=language,
        from_address="Sécurité <security@example.org>",
        references=[f"<older-{i}-0123456789abcdef@example.net>" for i in range(8)],
    )
    rebuilt = ComposedMail.of(message).to_message()
    assert rebuilt.as_bytes(policy=email.policy.SMTP) == message.as_bytes(policy=email.policy.SMTP)
    assert [(k, str(v)) for k, v in rebuilt.items()] == [(k, str(v)) for k, v in message.items()]


def test_serialised_bytes_would_not_rebuild_it() -> None:
    # Why ComposedMail exists: a parsed-back message is not the message that was built.
    message = build(replace(FULL, report_subject="XSS in the parking permit search form"))
    reparsed = email.message_from_bytes(
        message.as_bytes(policy=email.policy.SMTP), policy=email.policy.default
    )
    assert str(reparsed["Subject"]) == " " + str(message["Subject"])


def test_only_a_single_part_message_is_composed() -> None:
    multipart = EmailMessage()
    multipart.set_content("a")
    multipart.add_attachment(b"b", maintype="application", subtype="octet-stream")
    with pytest.raises(ValueError, match="single-part"):
        ComposedMail.of(multipart)
