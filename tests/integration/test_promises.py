"""The policy's promises beyond the fix, end to end on one deployment (real Synapse, Dovecot,
SMTP and gpg): credit (a name, anonymous) and consent (no, yes), the reward (refused for a
team member who is not a manager, approved and declined by a manager, details kept and
removed when sent), the IBD share and update decrypted with the IBD's own key (the reporter's
contact only with consent), the publication proposal, agreement and refusal, the advisory as
encrypted files that validate against the official CSAF 2.0 schema, `cvdbot advisory`, and
the digest's lists. Every command's audit entry is found by the command's event ID, with the
evidence also stored in `case_decisions`; every mail's signature is checked with the bot's
key; the mails are counted exactly. Case A is English, case B Dutch.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from nio import MemoryDownloadResponse
from nio.crypto.attachments import decrypt_attachment

from bot.advisory.csaf import validation_errors
from tests.conftest import MakePerson
from tests.harness.bot import CvdDeployment
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_quiescent
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import assert_signed, opened
from tests.harness.smtp import ReceivedMail
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import DUTCH_BODY, ENGLISH_BODY, report
from tests.integration.test_spine import CASE_ID, db_rows, wait_in_thread, wait_root


def cli(d: CvdDeployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args[:1], "--config", str(d.config_path), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def quiescent(d: CvdDeployment, timeout: float = 60) -> None:
    """Wait until the outbox holds nothing pending."""
    deadline = time.monotonic() + timeout
    while db_rows(d, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'")[0][0]:
        assert time.monotonic() < deadline, "the outbox did not empty"
        await asyncio.sleep(0.3)


async def command(
    person: Person, d: CvdDeployment, root: ReceivedMessage, text: str, answer: str
) -> ReceivedMessage:
    await person.send(d.room_id, text, thread_root=root.event_id)
    return await wait_in_thread(d.team, d.room_id, root, answer)


def events(d: CvdDeployment, case: str, kind: str) -> list[dict[str, Any]]:
    rows = db_rows(
        d, f"SELECT data FROM case_events WHERE case_id = '{case}' AND kind = '{kind}' ORDER BY id"
    )
    return [json.loads(str(row[0])) for row in rows]


def mails_to(d: CvdDeployment, address: str) -> list[ReceivedMail]:
    return [m for m in d.smtp.messages if m.rcpt_tos == [address]]


def subject(mail: ReceivedMail) -> str:
    return str(mail.message["Subject"])


def command_event(answer: ReceivedMessage) -> str:
    """The command's own event ID: the bot's answer replies to it."""
    return str(answer.content["m.relates_to"]["m.in_reply_to"]["event_id"])


def audit_entry(d: CvdDeployment, case: str, kind: str, answer: ReceivedMessage) -> dict[str, Any]:
    """The one audit entry of `kind` that the command `answer` answers recorded; its
    `event_id` is the command's event, always part of the evidence."""
    [entry] = [e for e in events(d, case, kind) if e.get("event_id") == command_event(answer)]
    return entry


def decision(d: CvdDeployment, case: str, column: str) -> Any:
    """One stored column of the case's decisions (storage/case_decisions.py)."""
    [(value,)] = db_rows(d, f"SELECT {column} FROM case_decisions WHERE case_id = '{case}'")
    return value


def reporter_mail_evidence(d: CvdDeployment, case: str) -> str:
    """The evidence a reporter's decision rests on by default: their latest mail."""
    [(number, message_id)] = db_rows(
        d,
        f"SELECT id, message_id FROM mails WHERE case_id = '{case}' AND direction = 'in'"
        " ORDER BY id DESC LIMIT 1",
    )
    return f"mail {number} {message_id}"


async def test_credit_consent_reward_ibd_publication_and_advisory(
    make_deployment: MakeDeployment, make_person: MakePerson
) -> None:
    d = await make_deployment()
    boss = await make_person("boss", auto_join=True)
    await d.team.invite(d.room_id, boss.user_id)
    await boss.wait_for_room(d.room_id)
    ibd = ReporterGpg(d.workdir / "ibd-gnupg", "IBD", "cvd@ibd.example")
    subprocess.run(
        ["gpg", "--homedir", str(d.workdir / "data" / "gnupg"), "--batch", "--import"],
        input=ibd.public_key().encode(),
        check=True,
        capture_output=True,
    )
    # The IBD knows the bot's public key, so its gpg checks the signature while decrypting.
    bot_key = subprocess.run(
        ["gpg", "--homedir", str(d.workdir / "data" / "gnupg"), "--armor", "--export"],
        check=True,
        capture_output=True,
    ).stdout
    ibd.import_key(bot_key.decode())
    d.managers = [boss.user_id]
    d.config_overrides = {"ibd": {"email": ibd.address, "key_fingerprint": ibd.fingerprint}}
    d.start_bot()
    team = d.team

    d.append_mail(
        report(subject="XSS in permit search", body=ENGLISH_BODY, sender="Sam <sam@finder.example>")
    )
    d.append_mail(report(subject="Lek in parkeervergunning", body=DUTCH_BODY))
    root_a = await wait_root(team, d.room_id, "XSS in permit search")
    root_b = await wait_root(team, d.room_id, "Lek in parkeervergunning")
    case_a = CASE_ID.search(root_a.body).group(0)  # type: ignore[union-attr]
    case_b = CASE_ID.search(root_b.body).group(0)  # type: ignore[union-attr]
    await boss.wait_for_message(d.room_id, lambda m: m.event_id == root_b.event_id)
    vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"
    for root in (root_a, root_b):
        await command(team, d, root, "!ack", "acknowledged by")
        await command(team, d, root, f"!assess high {vector} reflected XSS in q", "assessed as")

    # Credit with its evidence: the reporter's latest mail and the command's event.
    credit = await command(
        team, d, root_a, "!credit name Sam Finder https://finder.example", "credited as"
    )
    [recorded] = events(d, case_a, "credit")
    assert (
        recorded["name"] == "Sam Finder"
        and recorded["event_id"] == credit.content["m.relates_to"]["m.in_reply_to"]["event_id"]
    )
    assert recorded["mail_id"] and f"mail {recorded['mail_id']}" in credit.body
    assert recorded["evidence"] == reporter_mail_evidence(d, case_a)
    assert decision(d, case_a, "credit_evidence") == recorded["evidence"]

    # Consent refused, with its evidence: the IBD share below leaves the reporter out.
    refused = await command(team, d, root_a, "!consent share-contact no", "may not be shared")
    entry = audit_entry(d, case_a, "consent", refused)
    assert entry["share_contact"] is False
    assert entry["evidence"] == reporter_mail_evidence(d, case_a)
    assert decision(d, case_a, "consent_evidence") == entry["evidence"]
    assert decision(d, case_a, "share_contact") == 0

    # The IBD share: one mail, encrypted to the IBD's key, label in subject and body, and no
    # reporter identity without share-contact yes.
    shared_a = await command(team, d, root_a, "!ibd TLP:RED", "sent the IBD share of")
    entry = audit_entry(d, case_a, "ibd_shared", shared_a)
    assert entry["tlp"] == "TLP:RED" and entry["to"] == ibd.address
    assert entry["contact_shared"] is False and decision(d, case_a, "ibd_tlp") == "TLP:RED"
    await wait_in_thread(team, d.room_id, root_a, f"IBD share mail went to {ibd.address}")
    [shared] = mails_to(d, ibd.address)
    assert shared.message["Subject"] == f"[{case_a}] Melding kwetsbaarheid voor de IBD TLP:RED"
    assert shared.message.get_content_type() == "multipart/encrypted"
    # Needles that cannot occur in ASCII armor by chance (a space, "@", "<"): a bare "Sam"
    # turns up in about 1 % of random armors.
    for clear in (b"Sam <", b"Sam Finder", b"sam@finder.example", b"XSS in permit search"):
        assert clear not in shared.raw, clear
    # Decrypted with the IBD's key, signed by the bot's.
    result = opened(ibd, shared)
    body = assert_signed(result, d, encrypted=True)
    assert result.message is not None and "TLP:RED" in str(result.message["Subject"])
    assert body.startswith("TLP:RED") and body.rstrip().endswith("TLP:RED")
    assert "Getroffen systemen" in body and "reflected XSS in q" in body
    assert "6.1 (Medium)" in body
    for identity in ("sam@finder.example", "Sam Finder", "Sam <"):
        assert identity not in body
    assert "niet gedeeld" in body

    # The reward: a team member who is not a manager cannot approve; nothing changes.
    proposed = await command(
        team,
        d,
        root_a,
        "!reward propose diligence=high quality=good seriousness=high a gift voucher",
        "reward proposed",
    )
    entry = audit_entry(d, case_a, "reward_proposed", proposed)
    assert entry["criteria"] == "diligence=high quality=good seriousness=high"
    assert entry["proposal"] == "a gift voucher" == decision(d, case_a, "reward_proposal")
    decisions_before = db_rows(d, f"SELECT * FROM case_decisions WHERE case_id = '{case_a}'")
    events_before = db_rows(d, f"SELECT COUNT(*) FROM case_events WHERE case_id = '{case_a}'")
    refusal = await command(team, d, root_a, "!reward approve", "only managers may run")
    assert "Nothing was changed" in refusal.body
    assert db_rows(d, f"SELECT * FROM case_decisions WHERE case_id = '{case_a}'") == (
        decisions_before
    )
    assert (
        db_rows(d, f"SELECT COUNT(*) FROM case_events WHERE case_id = '{case_a}'") == events_before
    )

    # Case B (Dutch): anonymous, consent given, each with its evidence; reward approved by
    # the manager -> one Dutch mail.
    anonymous = await command(team, d, root_b, "!credit anonymous", "the reporter is anonymous")
    entry = audit_entry(d, case_b, "credit", anonymous)
    assert entry["name"] is None and entry["evidence"] == reporter_mail_evidence(d, case_b)
    assert decision(d, case_b, "credit_evidence") == entry["evidence"]
    assert decision(d, case_b, "credit_name") is None
    given = await command(team, d, root_b, "!consent share-contact yes", "may be shared")
    entry = audit_entry(d, case_b, "consent", given)
    assert entry["share_contact"] is True and entry["evidence"] == reporter_mail_evidence(d, case_b)
    assert decision(d, case_b, "consent_evidence") == entry["evidence"]
    proposed = await command(
        team,
        d,
        root_b,
        "!reward propose diligence=good quality=good seriousness=high een cadeaubon",
        "reward proposed",
    )
    assert audit_entry(d, case_b, "reward_proposed", proposed)["proposal"] == "een cadeaubon"
    approved = await command(
        boss, d, root_b, "!reward approve een bon van 50 euro", "reward approved by"
    )
    entry = audit_entry(d, case_b, "reward_approved", approved)
    assert entry["decided_by"] == boss.user_id and entry["text"] == "een bon van 50 euro"
    assert decision(d, case_b, "reward_decided_by") == boss.user_id

    # Publication after the fix (case A, English), then the advisory as encrypted files.
    await command(team, d, root_a, "!publish propose 2027-01-15", "needs a case that is")
    await command(team, d, root_a, "!fixed output encoding added", "marked fixed")
    proposal = await command(
        team,
        d,
        root_a,
        "!publish propose 2030-01-15 with your name",
        "publication on 2030-01-15 proposed by",
    )
    entry = audit_entry(d, case_a, "publication_proposed", proposal)
    assert entry["date"] == "2030-01-15" and entry["text"] == "with your name"
    agreed = await command(team, d, root_a, "!publish agreed", "publication agreed for 2030-01-15")
    entry = audit_entry(d, case_a, "publication_agreed", agreed)
    assert entry["date"] == "2030-01-15" and entry["evidence"] == reporter_mail_evidence(d, case_a)
    assert decision(d, case_a, "publish_evidence") == entry["evidence"]
    await command(team, d, root_a, "!advisory", "posted in this thread as encrypted files")
    csaf_event = await wait_in_thread(team, d.room_id, root_a, f"{case_a}.csaf.json")
    await wait_in_thread(team, d.room_id, root_a, f"{case_a}.md")
    file: dict[str, Any] = csaf_event.content["file"]
    downloaded = await team.client.download(mxc=file["url"])
    assert isinstance(downloaded, MemoryDownloadResponse)
    assert b"csaf_security_advisory" not in downloaded.body  # the server holds ciphertext
    document = json.loads(
        decrypt_attachment(downloaded.body, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
    )
    assert validation_errors(document) == []
    assert document["vulnerabilities"][0]["acknowledgments"][0]["names"] == ["Sam Finder"]
    assert document["document"]["distribution"]["tlp"]["label"] == "WHITE"
    [posted] = events(d, case_a, "advisory_posted")
    assert posted["credited"] is True and posted["event_id"]

    await quiescent(d)
    await asyncio.sleep(1)
    await quiescent(d)
    # Exactly the mails owed: per case ack, assessment; A: fix notice, publication proposal;
    # B: reward approval; and one IBD mail.
    reporter_a = [m.message["Subject"] for m in mails_to(d, "sam@finder.example")]
    reporter_b = [m.message["Subject"] for m in mails_to(d, "eva@researcher.example")]
    assert len(d.smtp.messages) == 8
    assert len(reporter_a) == 4 and len(reporter_b) == 3 and len(mails_to(d, ibd.address)) == 1
    [publication] = [
        m
        for m in mails_to(d, "sam@finder.example")
        if "Making the problem public" in m.message["Subject"]
    ]
    assert publication.message["Subject"].startswith(f"[{case_a}]")
    # The reporters have no key: signed only. Any client with the bot's public key checks the
    # signature; the IBD's keyring holds it.
    publication_text = assert_signed(opened(ibd, publication), d, encrypted=False)
    assert "with your name" in publication_text and case_a in publication_text
    [reward] = [
        m for m in mails_to(d, "eva@researcher.example") if "beloning" in m.message["Subject"]
    ]
    reward_text = assert_signed(opened(ibd, reward), d, encrypted=False)
    assert "een bon van 50 euro" in reward_text and "postadres" in reward_text
    assert not [s for s in reporter_a if "reward" in s.lower()]

    # The CLI: the same advisory, and the reasons when there is none.
    printed = cli(d, "advisory", case_a)
    assert printed.returncode == 0, printed.stderr
    assert validation_errors(json.loads(printed.stdout)) == []
    markdown = cli(d, "advisory", case_a, "--format", "markdown")
    assert markdown.returncode == 0 and "We thank Sam Finder" in markdown.stdout
    not_fixed = cli(d, "advisory", case_b)
    assert not_fixed.returncode == 2 and "only for a fixed case" in not_fixed.stderr
    unknown = cli(d, "advisory", "CVD-2020-9999")
    assert unknown.returncode == 2 and "there is no case CVD-2020-9999" in unknown.stderr

    # The digest lists the case not shared with the IBD and the pending reward decisions.
    digest = cli(d, "digest", "--print")
    assert digest.returncode == 0, digest.stderr
    text = digest.stdout
    unshared = text.split("Not shared with the IBD: 1")[1].split("\n\n")[0]
    assert case_b in unshared and case_a not in unshared
    rewards = text.split("Reward decisions pending: 2")[1].split("\n\n")[0]
    assert f"{case_a} · proposed, waiting for a manager" in rewards
    assert f"{case_b} · approved, not yet sent" in rewards

    # After the digest, the steps left: case A's reward declined, proposed again and approved
    # (the English reward mail); case B's reward sent (its delivery details gone); case B
    # shared with the IBD with the contact its reporter allowed; case A's IBD update; the
    # reporter of case A declines publication after all.
    declined = await command(
        boss, d, root_a, "!reward decline not for this one", "reward declined by"
    )
    assert "The reporter gets no mail" in declined.body
    entry = audit_entry(d, case_a, "reward_declined", declined)
    assert entry["decided_by"] == boss.user_id and entry["text"] == "not for this one"
    assert decision(d, case_a, "reward_state") == "declined"
    assert decision(d, case_a, "reward_decision") == "not for this one"
    await command(
        team,
        d,
        root_a,
        "!reward propose diligence=high quality=good seriousness=high a book voucher",
        "a book voucher",  # the first proposal's answer is in the thread too
    )
    approved = await command(
        boss, d, root_a, "!reward approve a voucher of 50 euro", "reward approved by"
    )
    assert audit_entry(d, case_a, "reward_approved", approved)["decided_by"] == boss.user_id
    await command(team, d, root_b, "!reward details Postbus 12, Haaksbergen", "details kept")
    assert decision(d, case_b, "reward_delivery") == "Postbus 12, Haaksbergen"
    sent = await command(team, d, root_b, "!reward sent", "reward sent, recorded by")
    assert audit_entry(d, case_b, "reward_sent", sent)["text"] is None
    assert decision(d, case_b, "reward_state") == "sent"
    assert decision(d, case_b, "reward_delivery") is None

    shared_b = await command(team, d, root_b, "!ibd", "sent the IBD share of")
    assert "with the reporter's contact" in shared_b.body
    entry = audit_entry(d, case_b, "ibd_shared", shared_b)
    assert entry["tlp"] == "TLP:AMBER" and entry["contact_shared"] is True
    updated = await command(team, d, root_a, "!ibd update", "sent the IBD update for")
    entry = audit_entry(d, case_a, "ibd_updated", updated)
    assert entry["tlp"] == "TLP:RED" and entry["contact_shared"] is False
    assert decision(d, case_a, "ibd_updated_at") is not None

    no_publication = await command(
        team, d, root_a, "!publish declined", "the reporter declined publication"
    )
    entry = audit_entry(d, case_a, "publication_declined", no_publication)
    assert entry["evidence"] == reporter_mail_evidence(d, case_a)
    assert decision(d, case_a, "publish_evidence") == entry["evidence"]
    assert decision(d, case_a, "publish_state") == "declined"
    assert decision(d, case_a, "publish_date") is None

    # Exactly three more mails: A's English reward mail, B's IBD share, A's IBD update.
    await wait_quiescent(d.db_path)
    assert len(d.smtp.messages) == 11
    assert len(mails_to(d, "sam@finder.example")) == 5
    assert len(mails_to(d, "eva@researcher.example")) == 3
    [reward_en] = [m for m in mails_to(d, "sam@finder.example") if "reward" in subject(m)]
    assert subject(reward_en) == f"[{case_a}] A reward for your report: XSS in permit search"
    reward_text = assert_signed(opened(ibd, reward_en), d, encrypted=False)
    assert "We have decided to give you a reward" in reward_text
    assert "a voucher of 50 euro" in reward_text and "postal\naddress" in reward_text
    ibd_mails = {subject(m): m for m in mails_to(d, ibd.address)}
    assert len(ibd_mails) == 3
    with_contact = ibd_mails[f"[{case_b}] Melding kwetsbaarheid voor de IBD TLP:AMBER"]
    assert b"eva@researcher.example" not in with_contact.raw  # encrypted
    text = assert_signed(opened(ibd, with_contact), d, encrypted=True)
    assert "Melder: Eva Onderzoeker" in text and "eva@researcher.example" in text
    assert "gaf toestemming om de contactgegevens te delen" in text
    update = ibd_mails[f"[{case_a}] Update melding kwetsbaarheid voor de IBD TLP:RED"]
    text = assert_signed(opened(ibd, update), d, encrypted=True)
    assert text.startswith("TLP:RED") and "Update van onze melding van" in text
    for identity in ("sam@finder.example", "Sam Finder"):
        assert identity not in text
    ibd.close()
