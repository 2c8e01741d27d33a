"""Proof that the real-server harness works: E2EE threads on Synapse, IMAP IDLE on Dovecot,
and an SMTP sink that can go down and come back on the same port."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import socket
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import MakeMailbox, MakePerson, MakeUser
from tests.harness.dovecot import DovecotServer
from tests.harness.person import Person
from tests.harness.smtp import SmtpServer
from tests.harness.synapse import SynapseServer


async def test_two_people_exchange_threaded_encrypted_messages(make_person: MakePerson) -> None:
    alice = await make_person("alice")
    bob = await make_person("bob", auto_join=True)

    room_id = await alice.create_encrypted_room(invite=[bob.user_id], name="harness check")
    await bob.wait_for_room(room_id)
    await alice.wait_for_member(room_id, bob.user_id)
    assert alice.client.rooms[room_id].encrypted

    root_id = await alice.send(room_id, "CVD-2026-0001 root")
    got_root = await bob.wait_for_message(room_id, lambda m: m.event_id == root_id)
    assert got_root.sender == alice.user_id
    assert got_root.body == "CVD-2026-0001 root"
    assert got_root.encrypted
    assert got_root.thread_root is None

    reply_id = await bob.send(room_id, "!ack", thread_root=root_id)
    got_reply = await alice.wait_for_message(room_id, lambda m: m.event_id == reply_id)
    assert got_reply.sender == bob.user_id
    assert got_reply.body == "!ack"
    assert got_reply.thread_root == root_id
    relates = got_reply.content["m.relates_to"]
    assert relates["rel_type"] == "m.thread"
    assert relates["is_falling_back"] is True
    assert relates["m.in_reply_to"] == {"event_id": root_id}

    # Messages received before the call count: this one is already in the list.
    again = await alice.wait_for_message(room_id, lambda m: m.body == "!ack", timeout=1)
    assert again.event_id == reply_id
    assert [m.event_id for m in alice.messages(room_id)] == [reply_id]
    assert alice.undecryptable() == []
    assert bob.undecryptable() == []


async def test_late_joiner_reads_messages_sent_after_joining(make_person: MakePerson) -> None:
    # The case a bot meets daily: a member joins an existing encrypted room and the
    # current members' next message must be readable on the new device.
    alice = await make_person("alice")
    bob = await make_person("bob", auto_join=True)
    room_id = await alice.create_encrypted_room(invite=[bob.user_id])
    await alice.wait_for_member(room_id, bob.user_id)
    first = await alice.send(room_id, "before carol")
    await bob.wait_for_message(room_id, lambda m: m.event_id == first)

    carol = await make_person("carol", auto_join=True)
    await alice.invite(room_id, carol.user_id)
    await carol.wait_for_room(room_id)
    await alice.wait_for_member(room_id, carol.user_id)
    await bob.wait_for_member(room_id, carol.user_id)

    from_alice = await alice.send(room_id, "hello carol")
    from_bob = await bob.send(room_id, "hi carol, from bob")
    await carol.wait_for_message(room_id, lambda m: m.event_id == from_alice)
    await carol.wait_for_message(room_id, lambda m: m.event_id == from_bob)
    from_carol = await carol.send(room_id, "thanks")
    await alice.wait_for_message(room_id, lambda m: m.event_id == from_carol)
    await bob.wait_for_message(room_id, lambda m: m.event_id == from_carol)
    # Carol may see "before carol" as undecryptable history (it was not shared with her
    # device, by design); everything sent after her join must decrypt.
    assert {e.event_id for e in carol.undecryptable(room_id)} <= {first}
    assert alice.undecryptable() == [] and bob.undecryptable() == []


async def test_person_restores_its_device_from_the_store(
    synapse: SynapseServer, make_user: MakeUser, harness_root: Path, make_person: MakePerson
) -> None:
    user_id, password = make_user("restorer")
    store = harness_root / "people" / f"restore-{uuid.uuid4().hex[:8]}"
    alice = await make_person("alice", auto_join=True)

    first = await Person.create(synapse.url, user_id, password, store)
    device_id = first.device_id
    room_id = await first.create_encrypted_room(invite=[alice.user_id])
    await first.wait_for_member(room_id, alice.user_id)
    await first.close()

    second = await Person.create(synapse.url, user_id, "wrong password is not used", store)
    try:
        assert second.device_id == device_id
        event_id = await second.send(room_id, "same device after restart")
        got = await alice.wait_for_message(room_id, lambda m: m.event_id == event_id)
        assert got.sender == user_id
        reply = await alice.send(room_id, "welcome back")
        await second.wait_for_message(room_id, lambda m: m.event_id == reply)
        assert second.undecryptable() == [] and alice.undecryptable() == []
    finally:
        await second.close()


def test_dovecot_append_then_imap_login_select_and_idle(
    dovecot: DovecotServer, make_mailbox: MakeMailbox
) -> None:
    username, password = make_mailbox("security")
    subject = f"report {uuid.uuid4().hex}"
    dovecot.append(username, password, f"Subject: {subject}\r\n\r\nfirst\r\n".encode())

    with imaplib.IMAP4(dovecot.host, dovecot.port, timeout=10) as imap:
        assert "IDLE" in imap.capabilities
        imap.login(username, password)
        status, data = imap.select("INBOX")
        assert status == "OK" and data == [b"1"]
        status, fetched = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert status == "OK"
        first = fetched[0]
        assert isinstance(first, tuple)
        assert subject.encode() in first[1]

        # RFC 2177 by hand (imaplib has no IDLE before Python 3.14): enter IDLE, deliver
        # a second message from another connection, and expect an untagged EXISTS.
        tag = imap._new_tag()
        imap.send(tag + b" IDLE\r\n")
        assert _read_until(imap, lambda line: line.startswith(b"+"))
        dovecot.append(username, password, b"Subject: second\r\n\r\nsecond\r\n")
        exists = _read_until(imap, lambda line: b"EXISTS" in line)
        assert exists.strip() == b"* 2 EXISTS"
        imap.send(b"DONE\r\n")
        done = _read_until(imap, lambda line: line.startswith(tag))
        assert done.startswith(tag + b" OK"), done
        imap.logout()


def _read_until(
    imap: imaplib.IMAP4, wanted: Callable[[bytes], bool], timeout: float = 10.0
) -> bytes:
    """Read server lines until one matches; fail on EOF or after `timeout` seconds.

    Untagged lines in between (RECENT, "* OK Still here") are expected and skipped.
    """
    deadline = time.monotonic() + timeout
    seen: list[bytes] = []
    while time.monotonic() < deadline:
        imap.sock.settimeout(max(0.1, deadline - time.monotonic()))
        line = imap.readline()
        if not line:
            raise AssertionError(f"IMAP server closed the connection; lines so far: {seen}")
        if wanted(line):
            return line
        seen.append(line)
    raise AssertionError(f"no matching IMAP line within {timeout} s; lines: {seen}")


def test_dovecot_refuses_a_wrong_password(
    dovecot: DovecotServer, make_mailbox: MakeMailbox
) -> None:
    username, _password = make_mailbox("intruder-target")
    with imaplib.IMAP4(dovecot.host, dovecot.port, timeout=10) as imap:
        with pytest.raises(imaplib.IMAP4.error):
            imap.login(username, "not the password")


def _mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "security@example.org"
    message["To"] = "reporter@example.net"
    message["Subject"] = subject
    message.set_content("Dank voor uw melding.")
    return message


def test_smtp_receives_goes_down_and_comes_back_on_the_same_port(smtp: SmtpServer) -> None:
    port = smtp.port
    with smtplib.SMTP(smtp.host, port, timeout=10) as client:
        client.send_message(_mail("[CVD-2026-0001] first"))
    (first,) = smtp.wait_for(1, timeout=5)
    assert first.mail_from == "security@example.org"
    assert first.rcpt_tos == ["reporter@example.net"]
    assert first.message["Subject"] == "[CVD-2026-0001] first"
    assert b"Dank voor uw melding." in first.raw

    smtp.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection((smtp.host, port), 2):
        pass

    smtp.start()
    assert smtp.port == port
    with smtplib.SMTP(smtp.host, port, timeout=10) as client:
        client.send_message(_mail("[CVD-2026-0001] second"))
    messages = smtp.wait_for(2, timeout=5)
    assert [m.message["Subject"] for m in messages] == [
        "[CVD-2026-0001] first",
        "[CVD-2026-0001] second",
    ]
    smtp.clear()
    assert smtp.messages == []
    with pytest.raises(TimeoutError):
        smtp.wait_for(1, timeout=0.1)


async def test_smtp_wait_for_async(smtp: SmtpServer) -> None:
    def send() -> None:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.send_message(_mail("async"))

    sender = asyncio.get_running_loop().run_in_executor(None, send)
    (mail,) = await smtp.wait_for_async(1, timeout=10)
    await sender
    assert mail.message["Subject"] == "async"


async def test_plaintext_messages_are_recorded_but_not_matched_by_default(
    make_person: MakePerson,
) -> None:
    alice = await make_person("alice")
    bob = await make_person("bob", auto_join=True)
    room_id = await alice.create_plain_room(invite=[bob.user_id])
    await alice.wait_for_member(room_id, bob.user_id)
    assert not alice.client.rooms[room_id].encrypted

    event_id = await alice.send(room_id, "in the clear")
    got = await bob.wait_for_message(
        room_id, lambda m: m.event_id == event_id, include_plaintext=True
    )
    assert not got.encrypted
    with pytest.raises(TimeoutError):
        await bob.wait_for_message(room_id, lambda m: m.event_id == event_id, timeout=0.5)
    for _ in range(300):  # her own event comes back to her in a sync of her own
        if alice.messages(room_id, include_own=True):
            break
        await asyncio.sleep(0.1)
    assert [m.event_id for m in alice.messages(room_id, include_own=True)] == [event_id]
