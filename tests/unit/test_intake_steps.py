"""The intake's steps one at a time: whose report a mail carries, and how a mail is routed
(own mail, follow-up, automatic, new report) against a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest_asyncio

from bot.mailin.forwarded import ForwardedReport
from bot.mailin.parse import parse_mail
from bot.mailin.steps.classify import Route, classify, is_own_sender
from bot.mailin.steps.incoming import IncomingMail
from bot.mailin.steps.open_case import whose_report
from bot.policy.lifecycle import Case, CaseState
from storage import cases, mails
from storage.db import Database

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
OWN = "security@gemeente.example"


def incoming(headers: str, body: str = "Hello.\n") -> IncomingMail:
    raw = f"{headers.strip()}\nDate: Mon, 30 Nov 2026 10:00:00 +0000\n\n{body}".encode()
    return IncomingMail.parsed_from(raw, parse_mail(raw), source="test", received_at=None)


def test_a_direct_report_is_the_senders_own() -> None:
    mail = incoming(
        "From: Pieter <pieter@example.nl>\nReply-To: p2@example.nl\nSubject: XSS\n"
        "Message-ID: <a@example.nl>",
        "The search form reflects input.\n",
    )
    report = whose_report(mail)
    assert (report.reporter, report.reporter_name, report.subject) == (
        "p2@example.nl",
        "Pieter",
        "XSS",
    )
    assert report.text == mail.text
    assert report.forwarded is None


def test_a_no_reply_sender_is_anonymous_and_nameless() -> None:
    mail = incoming(
        "From: Webform <no-reply@forms.example>\nSubject: Melding\nMessage-ID: <b@x>",
    )
    report = whose_report(mail)
    assert (report.reporter, report.reporter_name) == (None, None)


def test_a_forwarded_report_is_the_original_senders() -> None:
    mail = incoming("From: colleague@gemeente.example\nSubject: Fwd: XSS\nMessage-ID: <c@x>")
    mail.forwarded = ForwardedReport(
        style="Gmail",
        reporter_address="finder@example.org",
        reporter_name="Finder",
        subject=None,
        date=None,
        text="The original report.",
        note="see below",
    )
    report = whose_report(mail)
    # No subject in the forwarded headers: the forward's own subject stands in.
    assert (report.reporter, report.reporter_name, report.subject, report.text) == (
        "finder@example.org",
        "Finder",
        "Fwd: XSS",
        "The original report.",
    )
    assert report.forwarded is mail.forwarded


def test_thread_ids_keep_order_without_repeats() -> None:
    mail = incoming(
        "From: a@example.org\nSubject: Re\nMessage-ID: <d@x>\n"
        "References: <1@x> <2@x>\nIn-Reply-To: <2@x>"
    )
    assert mail.thread_ids == ["<1@x>", "<2@x>"]
    assert mail.actor == "mail:a@example.org"


@pytest_asyncio.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    db = await Database.open(tmp_path / "x.sqlite3")
    async with db.transaction() as connection:
        case_id, seq = await cases.allocate_case_id(connection, 2026)
        due = NOW + timedelta(days=2)
        case = Case(case_id, CaseState.NEW, "XSS", "a@example.org", None, "en", NOW, due, due, due)
        await cases.insert_case(connection, case, 2026, seq, NOW.isoformat())
        await mails.insert_mail(
            connection,
            direction="out",
            message_id="<sent@gemeente.example>",
            case_id=case_id,
            source="smtp",
            raw=b"x",
            subject="[CVD-2026-0001] Received",
            from_address=OWN,
            to_address="a@example.org",
            sent_date=None,
            stored_at=NOW.isoformat(),
        )
        yield connection
    await db.close()


async def route_of(conn: aiosqlite.Connection, headers: str) -> tuple[Route, str | None]:
    mail = incoming(headers)
    return await classify(conn, mail, own_sender=is_own_sender(mail.parsed, OWN))


async def test_routes(conn: aiosqlite.Connection) -> None:
    person = "From: a@example.org\nMessage-ID: <p@x>\n"
    auto = "From: a@example.org\nAuto-Submitted: auto-replied\nMessage-ID: <q@x>\n"
    assert await route_of(conn, person + "Subject: new") == (Route.NEW_CASE, None)
    assert await route_of(conn, person + "Subject: Re: [cvd-2026-0001] x") == (
        Route.FOLLOW_UP,
        "CVD-2026-0001",
    )
    # A case ID that names no case is no match.
    assert await route_of(conn, person + "Subject: CVD-2026-0099") == (Route.NEW_CASE, None)
    assert await route_of(
        conn, person + "Subject: Re: hi\nIn-Reply-To: <sent@gemeente.example>"
    ) == (Route.FOLLOW_UP, "CVD-2026-0001")
    assert await route_of(conn, auto + "Subject: Out of office") == (
        Route.UNMATCHED_AUTOMATIC,
        None,
    )
    assert await route_of(conn, auto + "Subject: Out of office: [CVD-2026-0001] x") == (
        Route.AUTOMATIC,
        "CVD-2026-0001",
    )
    # Issue 10, item 6: a bare case ID is a mention, not a match; only the tag form is.
    assert await route_of(conn, person + "Subject: Bypass of CVD-2026-0001") == (
        Route.NEW_CASE,
        None,
    )
    assert await route_of(conn, auto + "Subject: Out of office: CVD-2026-0001") == (
        Route.UNMATCHED_AUTOMATIC,
        None,
    )


async def test_own_mail_is_never_a_follow_up(conn: aiosqlite.Connection) -> None:
    own_from = f"From: {OWN}\nX-CVDBot: ack\nMessage-ID: <r@x>\nSubject: [CVD-2026-0001] Received"
    assert await route_of(conn, own_from) == (Route.OWN_MAIL, "CVD-2026-0001")
    # Issue 10, item 5: From alone is a web form writing in our name, i.e. a person's mail.
    form = f"From: {OWN}\nMessage-ID: <f@x>\nSubject: [CVD-2026-0001] Received"
    assert await route_of(conn, form) == (Route.FOLLOW_UP, "CVD-2026-0001")
    # Our own Message-ID come back (e.g. through a list), whoever it claims to be from.
    own_id = "From: list@example.org\nMessage-ID: <sent@gemeente.example>\nSubject: hi"
    assert await route_of(conn, own_id) == (Route.OWN_MAIL, None)
