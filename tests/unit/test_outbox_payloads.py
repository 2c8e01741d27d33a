"""Outbox payloads (bot/outbox/payloads.py): every kind round-trips, rows written by the
previous version still parse to the same JSON, and anything else is refused by name."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.mailout.compose import ComposedMail
from bot.mailout.sealing import Sealed
from bot.outbox.payloads import (
    MAIL_KINDS,
    FilePost,
    ImagePost,
    Mail,
    MediaPost,
    Payload,
    PayloadError,
    PlainVariant,
    Redaction,
    RoomPost,
    RootPost,
    ThreadPost,
    UnsortedPost,
    channel_of,
    decode,
    encode,
    from_json,
    to_json,
)

COMPOSED = ComposedMail(
    (("From", "s@x.org"), ("Subject", "[CVD-2026-0001] Zoë's één ü"), ("To", "r@y.org")),
    "Dank voor uw melding.=0A",
)

EXAMPLES: list[Payload] = [
    RootPost("🆕 CVD-2026-0001", "<p>🆕 CVD-2026-0001</p>"),
    ThreadPost("b", "h"),
    UnsortedPost("📥 Unsorted mail 7 from a@b: s", "<p>📥 Unsorted mail 7</p>"),
    ThreadPost("b", "h", reply_to="$cmd", mentions=("@alice:example.org",)),
    RoomPost("!r:x", "b", "h"),
    RoomPost(
        "!r:x",
        "b",
        "h",
        thread_root="$root",
        reply_to="$cmd",
        mentions=("@boss:x",),
        unencrypted=PlainVariant("plain", "<p>plain</p>"),
    ),
    MediaPost(7, "decrypted", 2, "ab" * 32, "poc.png", "image/png", 1234),
    Redaction("!r:x", "$event", "case data deleted after the retention period"),
    ImagePost("!r:x", "chart", "c.png", "image/png", b"\x89PNG\r\n\x1a\n\x00\xff", 800, 400),
    Mail("ack", "receipt confirmation", "s@x.org", "r@y.org", "<1@x.org>", composed=COMPOSED),
    Mail(
        "digest",
        "digest",
        "s@x.org",
        "boss@x.org",
        "<2@x.org>",
        sealed=Sealed(b"sealed \x00 bytes", "signed; not encrypted, so without report subjects"),
    ),
    Mail(
        "ibd",
        "IBD share",
        "s@x.org",
        "cvd@ibd.example",
        "<3@x.org>",
        composed=COMPOSED,
        encrypt_to="0123456789ABCDEF0123456789ABCDEF01234567",
    ),
    FilePost("CSAF advisory", "CVD-2026-0001.csaf.json", "application/json", b'{"a": 1}\x00'),
]


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda p: type(p).__name__)
def test_every_kind_round_trips(payload: Payload) -> None:
    assert decode(encode(payload)) == payload


def test_every_mail_kind_round_trips() -> None:
    for kind in MAIL_KINDS:
        mail = Mail(kind, kind, "s@x.org", "r@y.org", "<1@x.org>", composed=COMPOSED)
        assert decode(encode(mail)) == mail
    assert {"ack", "assessment", "fixed", "more_info", "digest"} <= set(MAIL_KINDS)


# Exactly what the previous version stored (string-keyed dicts built in six modules).
LEGACY: list[dict[str, Any]] = [
    {"kind": "root", "body": "b", "html": "h", "mentions": []},
    {"kind": "thread", "body": "b", "html": "h", "reply_to": None, "mentions": []},
    {"kind": "thread", "body": "b", "html": "h", "reply_to": "$c", "mentions": ["@a:x"]},
    {
        "kind": "room",
        "room_id": "!r:x",
        "body": "b",
        "html": "h",
        "thread_root": "$t",
        "reply_to": "$c",
        "mentions": [],
    },
    {
        "kind": "room",
        "room_id": "!m:x",
        "body": "b",
        "html": "h",
        "thread_root": None,
        "reply_to": None,
        "mentions": ["@boss:x"],
        "unencrypted": {"body": "pb", "html": "ph"},
    },
    {
        "kind": "media",
        "mail_id": 3,
        "layer": "outer",
        "index": 0,
        "sha256": "00" * 32,
        "filename": "a.txt",
        "content_type": "text/plain",
        "size": 5,
    },
    {
        "kind": "image",
        "room_id": "!m:x",
        "body": "CVD digest chart 2026-11-05",
        "filename": "cvd-digest-2026-11-05.png",
        "mimetype": "image/png",
        "data": "iVBORw0KGgo=",
        "width": 800,
        "height": 400,
        "thread_root": None,
        "reply_to": None,
        "mentions": [],
    },
    {
        "kind": "assessment",
        "label": "assessment",
        "from": "s@x.org",
        "to": "r@y.org",
        "message_id": "<3@x.org>",
        "raw": "RnJvbTogcw0KDQpoaQ0K",
        "protection": "PGP-encrypted and signed",
    },
    {
        "kind": "digest",
        "label": "digest",
        "from": "s@x.org",
        "to": "boss@x.org",
        "message_id": "<4@x.org>",
        "raw": "aGk=",
        "protection": "signed; not encrypted, so without report subjects",
    },
]


@pytest.mark.parametrize("stored", LEGACY, ids=lambda d: str(d["kind"]))
def test_rows_of_the_previous_version_parse_and_keep_their_shape(stored: dict[str, Any]) -> None:
    payload = decode(json.dumps(stored))
    assert to_json(payload) == stored


def test_a_legacy_mail_is_already_sealed() -> None:
    mail = from_json(LEGACY[7])
    assert isinstance(mail, Mail)
    assert mail.composed is None and mail.sealed is not None
    assert mail.sealed.raw == b"From: s\r\n\r\nhi\r\n"
    assert mail.sealed.protection == "PGP-encrypted and signed"
    assert (mail.kind, mail.to_address, mail.message_id) == ("assessment", "r@y.org", "<3@x.org>")


def test_sealing_drops_the_unsealed_message_and_keeps_the_rest() -> None:
    mail = Mail("fixed", "fix notice", "s@x.org", "r@y.org", "<5@x.org>", composed=COMPOSED)
    sealed = mail.with_sealed(Sealed(b"sealed", "PGP-encrypted and signed"))
    assert sealed.composed is None and sealed.sealed == Sealed(
        b"sealed", "PGP-encrypted and signed"
    )
    assert (sealed.kind, sealed.label, sealed.message_id) == ("fixed", "fix notice", "<5@x.org>")
    assert "unsealed" in to_json(mail) and "raw" not in to_json(mail)
    assert "unsealed" not in to_json(sealed) and "raw" in to_json(sealed)


def test_channels() -> None:
    assert [channel_of(p) for p in EXAMPLES].count("mail") == 3
    assert channel_of(RoomPost("!r:x", "b", "h")) == "matrix"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"kind": "fax", "body": "b"}', "unknown payload kind 'fax'"),
        ('{"body": "b"}', "field 'kind' is missing"),
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"kind": "thread", "html": "h"}', "field 'body'"),
        ('{"kind": "thread", "body": "b", "html": "h", "mentions": "@a:x"}', "'mentions'"),
        ('{"kind": "room", "room_id": 5, "body": "b", "html": "h"}', "'room_id'"),
        (
            '{"kind": "room", "room_id": "!r", "body": "b", "html": "h", "unencrypted": "x"}',
            "'unencrypted'",
        ),
        (
            '{"kind": "media", "mail_id": true, "layer": "outer", "index": 0, "sha256": "",'
            ' "filename": "f", "content_type": "t", "size": 1}',
            "'mail_id'",
        ),
        ('{"kind": "image", "room_id": "!r", "body": "b", "data": "***"}', "'filename'"),
        (
            '{"kind": "image", "room_id": "!r", "body": "b", "filename": "f", "mimetype": "m",'
            ' "data": "***", "width": 1, "height": 1}',
            "'data' is not base64",
        ),
        (
            '{"kind": "ack", "label": "l", "from": "f", "to": "t", "message_id": "<m>"}',
            "'unsealed'",
        ),
        (
            '{"kind": "ack", "label": "l", "from": "f", "to": "t", "message_id": "<m>",'
            ' "unsealed": {"headers": [["From"]], "body": "b"}}',
            "no list of",
        ),
        (
            '{"kind": "ack", "label": "l", "from": "f", "to": "t", "message_id": "<m>",'
            ' "unsealed": {"headers": [], "body": 1}}',
            "'body'",
        ),
    ],
)
def test_anything_else_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason.replace("(", r"\(")):
        decode(text)


def test_a_mail_is_either_sealed_or_not() -> None:
    with pytest.raises(PayloadError, match="either"):
        Mail("ack", "l", "f", "t", "<m>")
    with pytest.raises(PayloadError, match="either"):
        Mail("ack", "l", "f", "t", "<m>", composed=COMPOSED, sealed=Sealed(b"s", "p"))
    with pytest.raises(PayloadError, match="unknown mail kind"):
        Mail("telegram", "l", "f", "t", "<m>", composed=COMPOSED)
