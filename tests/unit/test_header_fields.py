"""Tests for bot.mailin.header_fields: Message-IDs, case IDs, addresses, dates and the
signs of automatic mail, read straight from header fields."""

from __future__ import annotations

from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser

import pytest

from bot.mailin.header_fields import (
    CASE_ID_RE,
    addresses,
    automatic_reason,
    extract_message_ids,
    find_case_ids,
    normalise_message_id,
    parse_date,
)


def headers(text: str) -> Message:
    return BytesParser(policy=policy.default).parsebytes(text.encode() + b"\n\nbody\n")


def test_extract_message_ids_tolerates_garbage() -> None:
    assert extract_message_ids("") == []
    assert extract_message_ids("garbage without ids") == []
    assert extract_message_ids("a@b.example, <c@d.example>") == ["<c@d.example>"]
    assert extract_message_ids("a@b.example c@d.example") == ["<a@b.example>", "<c@d.example>"]
    assert extract_message_ids("<a@b.example> <a@b.example> <>") == ["<a@b.example>"]
    assert extract_message_ids("<" + "x" * 5000 + "@y>") == []
    assert extract_message_ids("<a @b.example>") == ["<a@b.example>"]


def test_normalise_message_id() -> None:
    assert normalise_message_id("<abc@def>") == "<abc@def>"
    assert normalise_message_id("  abc@def ") == "<abc@def>"
    assert normalise_message_id("<abc@def> <ghi@jkl>") == "<abc@def>"
    assert normalise_message_id("") is None
    assert normalise_message_id("<>") is None


def test_find_case_ids() -> None:
    assert find_case_ids("Re: [CVD-2026-0007] Ontvangstbevestiging") == ["CVD-2026-0007"]
    assert find_case_ids("re: cvd-2026-0007 en CVD-2025-12345, CVD-2026-0007") == [
        "CVD-2026-0007",
        "CVD-2025-12345",
    ]
    assert find_case_ids("XCVD-2026-0007 CVD-2026-007 CVD-26-0007 CVD-2026-0007a") == []
    assert find_case_ids("") == []
    assert CASE_ID_RE.fullmatch("cvd-2026-000123")


def test_addresses_are_lower_case_with_names_and_tolerate_broken_fields() -> None:
    problems: list[str] = []
    msg = headers(
        'From: "Jansen, Pieter" <Pieter@Example.NL>\nTo: a@b.example, <<bad>>, c@d.example\n'
        "Cc: Pieter@Example.NL"
    )
    assert addresses(msg, "From", problems) == ([("pieter@example.nl", "Jansen, Pieter")], True)
    assert [spec for spec, _ in addresses(msg, "To", problems)[0]] == [
        "a@b.example",
        "c@d.example",
    ]
    # A display name that only repeats the address is no name.
    assert addresses(msg, "Cc", problems) == ([("pieter@example.nl", None)], True)
    assert addresses(msg, "Reply-To", problems) == ([], False)


def test_parse_date_in_utc_and_problems_for_missing_or_garbage() -> None:
    problems: list[str] = []
    when = parse_date(headers("Date: Tue, 3 Feb 2026 10:12:05 +0100"), problems)
    assert when == datetime(2026, 2, 3, 9, 12, 5, tzinfo=UTC)
    assert problems == []
    assert parse_date(headers("Subject: x"), problems) is None
    assert parse_date(headers("Date: next tuesday"), problems) is None
    assert problems == ["no Date header", "unparseable Date header"]


@pytest.mark.parametrize(
    ("fields", "content_type", "reason"),
    [
        ("Auto-Submitted: auto-replied", "text/plain", "Auto-Submitted: auto-replied"),
        ("X-Autoreply: yes", "text/plain", "X-Autoreply header"),
        ("Precedence: bulk", "text/plain", "Precedence: bulk"),
        ("Subject: x", "multipart/report", "delivery or read report (multipart/report)"),
        ("Return-Path: < >", "text/plain", "bounce (empty Return-Path)"),
        ("List-Id: <sec.example.org>", "text/plain", "mailing list mail (List-Id)"),
        (
            "Subject: Out of office: back Monday",
            "text/plain",
            "automatic reply or bounce (subject)",
        ),
        ("Auto-Submitted: no", "text/plain", None),
        ("X-Autoreply: no", "text/plain", None),
    ],
)
def test_automatic_reason(fields: str, content_type: str, reason: str | None) -> None:
    msg = headers(fields)
    subject = str(msg.get("Subject", ""))
    auto = str(msg["Auto-Submitted"]) if msg["Auto-Submitted"] else None
    assert automatic_reason(msg, subject, auto, content_type, []) == reason
