"""The bot's side of an emoji (SAS) verification, against a second side written here with
vodozemac directly, as a team member's client would run it (Matrix spec, in-room SAS)."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import vodozemac
from canonicaljson import encode_canonical_json

from bot.app import App
from bot.matrix.client import invite_accepted
from bot.matrix.cross_signing import unpadded_b64
from bot.matrix.posts import Post
from bot.matrix.verification import (
    ACCEPT,
    CANCEL,
    DONE,
    EMOJI,
    KEY,
    MAC,
    READY,
    REQUEST,
    START,
    OwnIdentity,
    VerificationEvent,
    Verifications,
    mac_info_base,
    sas_info,
    verification_event,
)
from commands.dispatch import IncomingMessage
from storage.db import Database
from tests.unit.test_command_faults import CASE_ROOM, outbox_rows
from tests.unit.test_sla_commands import MovableClock, Room
from tests.unit.test_sla_watch import ALICE as SLA_ALICE
from tests.unit.test_sla_watch import BOSS, at, make_config

BOT = OwnIdentity("@cvdbot:example.org", "BOTDEVICE", "botdevicekeyb64", "botmasterkeyb64")
ALICE, ALICE_DEVICE = "@alice:example.org", "ALICEPHONE"
ALICE_DEVICE_KEY, ALICE_MASTER = "alicedevicekeyb64", "alicemasterkeyb64"
ROOM = "!cases:example.org"
REQUEST_ID = "$request"
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class Bot:
    """The state machine with its callbacks recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.now = NOW

        async def send(room_id: str, event_type: str, content: dict[str, Any]) -> None:
            self.sent.append((room_id, event_type, content))

        async def device_key(user: str, device: str) -> str | None:
            return ALICE_DEVICE_KEY if (user, device) == (ALICE, ALICE_DEVICE) else None

        async def master_key(user: str) -> str | None:
            return ALICE_MASTER if user == ALICE else None

        self.verifications = Verifications(
            lambda: BOT,
            lambda user: user == ALICE,
            send=send,
            device_key=device_key,
            master_key=master_key,
            now=lambda: self.now,
        )
        self._count = 0

    async def receive(
        self, event_type: str, content: dict[str, Any], *, sender: str = ALICE, **more: Any
    ) -> list[tuple[str, dict[str, Any]]]:
        """Hands the bot one event; returns what it sent in answer."""
        self._count += 1
        before = len(self.sent)
        event = VerificationEvent(
            event_type,
            sender,
            more.get("event_id", f"$event-{self._count}"),
            content,
            more.get("sent_at", self.now),
        )
        await self.verifications.handle(ROOM, event)
        return [(t, c) for _, t, c in self.sent[before:]]


def rel() -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.reference", "event_id": REQUEST_ID}}


def request_content(**changes: Any) -> dict[str, Any]:
    return {
        "msgtype": REQUEST,
        "body": "Alice is requesting to verify your key",
        "from_device": ALICE_DEVICE,
        "methods": ["m.sas.v1", "m.qr_code.show.v1", "m.reciprocate.v1"],
        "to": BOT.user_id,
        **changes,
    }


START_CONTENT = {
    "from_device": ALICE_DEVICE,
    "method": "m.sas.v1",
    "key_agreement_protocols": ["curve25519-hkdf-sha256", "curve25519"],
    "hashes": ["sha256"],
    "message_authentication_codes": ["hkdf-hmac-sha256.v2", "hkdf-hmac-sha256"],
    "short_authentication_string": ["decimal", "emoji"],
    **rel(),
}


class Alice:
    """The team member's client: starts the SAS after the bot is ready, as Element does."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.sas = vodozemac.Sas()
        self.key = self.sas.public_key.to_base64()
        self.established: vodozemac.EstablishedSas | None = None

    async def up_to_keys(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """request -> ready, start -> accept, key -> key + mac; (accept, bot's key, bot's mac)."""
        [(kind, ready)] = await self.bot.receive(REQUEST, request_content(), event_id=REQUEST_ID)
        assert kind == READY
        assert ready == {"from_device": BOT.device_id, "methods": ["m.sas.v1"], **rel()}
        [(kind, accept)] = await self.bot.receive(START, START_CONTENT)
        assert kind == ACCEPT
        answers = await self.bot.receive(KEY, {"key": self.key, **rel()})
        assert [kind for kind, _ in answers] == [KEY, MAC]
        (_, bot_key), (_, bot_mac) = answers
        self.established = self.sas.diffie_hellman(
            vodozemac.Curve25519PublicKey.from_base64(bot_key["key"])
        )
        return accept, bot_key, bot_mac

    def sas_bytes(self, bot_key: str) -> vodozemac.SasBytes:
        assert self.established is not None
        info = sas_info(
            (ALICE, ALICE_DEVICE, self.key), (BOT.user_id, BOT.device_id, bot_key), REQUEST_ID
        )
        return self.established.bytes(info)

    def mac_event(self, keys: dict[str, str]) -> dict[str, Any]:
        assert self.established is not None
        base = mac_info_base((ALICE, ALICE_DEVICE), (BOT.user_id, BOT.device_id), REQUEST_ID)
        return {
            "mac": {k: self.established.calculate_mac(v, base + k) for k, v in keys.items()},
            "keys": self.established.calculate_mac(",".join(sorted(keys)), base + "KEY_IDS"),
            **rel(),
        }


async def test_a_team_member_verifies_the_bot(caplog: pytest.LogCaptureFixture) -> None:
    bot = Bot()
    alice = Alice(bot)
    with caplog.at_level(logging.WARNING):
        accept, bot_key, bot_mac = await alice.up_to_keys()

    # The accept commits to the bot's key: sha256(key + canonical JSON of the start content).
    expected = hashlib.sha256(
        bot_key["key"].encode() + bytes(encode_canonical_json(START_CONTENT))
    ).digest()
    assert accept["commitment"] == unpadded_b64(expected)
    assert accept["message_authentication_code"] == "hkdf-hmac-sha256.v2"
    assert accept["short_authentication_string"] == ["emoji", "decimal"]
    assert accept["key_agreement_protocol"] == "curve25519-hkdf-sha256"

    # Both sides have the same SAS; the bot's log line shows it to the operator.
    ours = alice.sas_bytes(bot_key["key"])
    line = next(r.getMessage() for r in caplog.records if "compare these" in r.getMessage())
    assert f"verification by {ALICE} (device {ALICE_DEVICE})" in line
    decimals = " ".join(str(d) for d in ours.decimals)
    assert line.endswith(f" | {decimals}")
    assert all(1000 <= d <= 9191 for d in ours.decimals)
    emojis = line.split(": compare these with Element: ")[1].split(" | ")[0].split(", ")
    assert len(emojis) == 7
    assert emojis == [" ".join(EMOJI[i]) for i in ours.emoji_indices]

    # The bot's MACs verify for its device key and its master key, and for the key list.
    assert alice.established is not None
    base = mac_info_base((BOT.user_id, BOT.device_id), (ALICE, ALICE_DEVICE), REQUEST_ID)
    device_id, master_id = f"ed25519:{BOT.device_id}", f"ed25519:{BOT.master_key}"
    assert set(bot_mac["mac"]) == {device_id, master_id}
    alice.established.verify_mac(BOT.device_key, base + device_id, bot_mac["mac"][device_id])
    alice.established.verify_mac(BOT.master_key, base + master_id, bot_mac["mac"][master_id])
    keys = ",".join(sorted([device_id, master_id]))
    alice.established.verify_mac(keys, base + "KEY_IDS", bot_mac["keys"])
    with pytest.raises(vodozemac.SasException):
        alice.established.verify_mac(
            "someone else's key", base + device_id, bot_mac["mac"][device_id]
        )

    # Alice confirms: her MAC of her device and master key; the bot answers done.
    mac = alice.mac_event(
        {f"ed25519:{ALICE_DEVICE}": ALICE_DEVICE_KEY, f"ed25519:{ALICE_MASTER}": ALICE_MASTER}
    )
    with caplog.at_level(logging.WARNING):
        assert await bot.receive(MAC, mac) == [(DONE, rel())]
    assert f"verified by {ALICE} (device {ALICE_DEVICE})" in caplog.text
    assert await bot.receive(DONE, rel()) == []
    assert bot.verifications.transactions == {}


async def test_a_wrong_mac_cancels_with_key_mismatch() -> None:
    bot = Bot()
    alice = Alice(bot)
    await alice.up_to_keys()
    mac = alice.mac_event({f"ed25519:{ALICE_DEVICE}": "a key that is not alice's device key"})
    [(kind, content)] = await bot.receive(MAC, mac)
    assert kind == CANCEL and content["code"] == "m.key_mismatch"
    assert content["m.relates_to"]["event_id"] == REQUEST_ID
    assert bot.verifications.transactions == {}


async def test_a_mac_of_another_key_list_cancels() -> None:
    bot = Bot()
    alice = Alice(bot)
    await alice.up_to_keys()
    mac = alice.mac_event({f"ed25519:{ALICE_DEVICE}": ALICE_DEVICE_KEY})
    mac["keys"] = alice.mac_event({"ed25519:OTHER": ALICE_DEVICE_KEY})["keys"]
    [(kind, content)] = await bot.receive(MAC, mac)
    assert (kind, content["code"]) == (CANCEL, "m.key_mismatch")


async def test_the_legacy_mac_method_works_too() -> None:
    bot = Bot()
    start = {**START_CONTENT, "message_authentication_codes": ["hkdf-hmac-sha256"]}
    await bot.receive(REQUEST, request_content(), event_id=REQUEST_ID)
    [(_, accept)] = await bot.receive(START, start)
    assert accept["message_authentication_code"] == "hkdf-hmac-sha256"
    sas = vodozemac.Sas()
    my_key = sas.public_key.to_base64()
    (_, bot_key), (_, bot_mac) = await bot.receive(KEY, {"key": my_key, **rel()})
    established = sas.diffie_hellman(vodozemac.Curve25519PublicKey.from_base64(bot_key["key"]))
    base = mac_info_base((BOT.user_id, BOT.device_id), (ALICE, ALICE_DEVICE), REQUEST_ID)
    device_id = f"ed25519:{BOT.device_id}"
    assert bot_mac["mac"][device_id] == established.calculate_mac_invalid_base64(
        BOT.device_key, base + device_id
    )
    theirs = mac_info_base((ALICE, ALICE_DEVICE), (BOT.user_id, BOT.device_id), REQUEST_ID)
    key_id = f"ed25519:{ALICE_DEVICE}"
    mac = {
        "mac": {
            key_id: established.calculate_mac_invalid_base64(ALICE_DEVICE_KEY, theirs + key_id)
        },
        "keys": established.calculate_mac_invalid_base64(key_id, theirs + "KEY_IDS"),
        **rel(),
    }
    assert await bot.receive(MAC, mac) == [(DONE, rel())]


@pytest.mark.parametrize(
    ("sender", "changes", "age"),
    [
        ("@mallory:example.org", {}, timedelta(0)),  # not a team member
        (ALICE, {"to": "@someoneelse:example.org"}, timedelta(0)),  # not addressed to the bot
        (ALICE, {}, timedelta(minutes=11)),  # too old
    ],
)
async def test_requests_that_are_not_answered(
    sender: str, changes: dict[str, Any], age: timedelta
) -> None:
    bot = Bot()
    content = request_content(**changes)
    answers = await bot.receive(
        REQUEST, content, sender=sender, event_id=REQUEST_ID, sent_at=NOW - age
    )
    assert answers == []
    assert bot.verifications.transactions == {}
    # ... and a start for that request is not answered either.
    assert await bot.receive(START, START_CONTENT, sender=sender) == []


async def test_a_request_without_sas_is_cancelled() -> None:
    bot = Bot()
    content = request_content(methods=["m.qr_code.scan.v1"])
    [(kind, cancel)] = await bot.receive(REQUEST, content, event_id=REQUEST_ID)
    assert (kind, cancel["code"]) == (CANCEL, "m.unknown_method")


async def test_their_cancel_and_the_timeout_end_a_transaction() -> None:
    bot = Bot()
    await bot.receive(REQUEST, request_content(), event_id=REQUEST_ID)
    assert await bot.receive(CANCEL, {"code": "m.user", "reason": "no", **rel()}) == []
    assert bot.verifications.transactions == {}

    await bot.receive(REQUEST, request_content(), event_id=REQUEST_ID)
    bot.now += timedelta(minutes=11)
    [(kind, cancel)] = await bot.receive(START, START_CONTENT)
    assert (kind, cancel["code"]) == (CANCEL, "m.timeout")
    assert bot.verifications.transactions == {}


def test_what_nio_gives_is_recognised() -> None:
    """The request is a room message of its own msgtype; the rest are events of their type."""
    at = NOW
    request = {
        "type": "m.room.message",
        "sender": ALICE,
        "event_id": REQUEST_ID,
        "content": request_content(),
    }
    event = verification_event(request, at)
    assert event is not None and event.type == REQUEST and event.transaction_id == REQUEST_ID
    start = {"type": START, "sender": ALICE, "event_id": "$s", "content": START_CONTENT}
    event = verification_event(start, at)
    assert event is not None and event.transaction_id == REQUEST_ID
    text = {
        "type": "m.room.message",
        "sender": ALICE,
        "event_id": "$t",
        "content": {"msgtype": "m.text", "body": "!help"},
    }
    assert verification_event(text, at) is None


# -- the direct chat Element's "Verify" makes: the bot joins, answers verification only ---------

DM = "!dm-with-alice:example.org"


def test_invites_the_bot_follows(tmp_path: Path) -> None:
    matrix = make_config(tmp_path).matrix
    # A team member's or manager's direct chat (Element's "Verify" on the bot's profile).
    assert invite_accepted(matrix, DM, SLA_ALICE, direct=True)
    assert invite_accepted(matrix, DM, BOSS, direct=True)
    # Anyone else's direct chat, or a team member's room that is not a direct chat: no.
    assert not invite_accepted(matrix, DM, "@mallory:example.org", direct=True)
    assert not invite_accepted(matrix, DM, SLA_ALICE, direct=False)
    # The case room, as before.
    assert invite_accepted(matrix, matrix.case_room, SLA_ALICE, direct=False)
    assert not invite_accepted(matrix, matrix.case_room, "@mallory:example.org", direct=False)


async def test_a_command_in_a_direct_chat_is_not_run(tmp_path: Path) -> None:
    """Commands run only in the case room: in the direct chat (or any other room) nothing
    is queued, so no case content can be posted there."""
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    try:
        room = Room(db, make_config(tmp_path), MovableClock(at(3, 10)))
        for body in ("!help", "!list", "!show 2026-001"):
            message = IncomingMessage(DM, f"$dm-{body}", SLA_ALICE, body, room.clock.now(), None)
            assert await room.dispatcher.handle(message) is False
        assert await outbox_rows(db) == []
        # The same command in the case room is answered (the check above can fail).
        help_ = IncomingMessage(CASE_ROOM, "$help", SLA_ALICE, "!help", room.clock.now(), None)
        assert await room.dispatcher.handle(help_) is True
        assert [row[0] for row in await outbox_rows(db)] == ["reply:$help"]
    finally:
        await db.close()


async def test_no_could_not_decrypt_notice_outside_the_case_room(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    try:
        app = App(make_config(tmp_path))
        app._db = db
        app.worker = SimpleNamespace(wake=lambda: None)  # type: ignore[assignment]
        await app._post_notice(DM, Post.text("could not decrypt"), "undecryptable:dm")
        assert await outbox_rows(db) == []
        await app._post_notice(CASE_ROOM, Post.text("could not decrypt"), "undecryptable:case")
        assert [row[0] for row in await outbox_rows(db)] == ["undecryptable:case"]
    finally:
        await db.close()
