"""The policy's promises beyond the fix, end to end on one deployment (real Synapse, Dovecot,
SMTP and gpg): credit and consent with their evidence, the reward (refused for a team member
who is not a manager, approved by a manager), the IBD share decrypted with the IBD's own key,
the publication proposal, the advisory as encrypted files that validate against the official
CSAF 2.0 schema, `cvdbot advisory`, and the digest's lists. Case A is English, case B Dutch.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from nio import MemoryDownloadResponse
from nio.crypto.attachments import decrypt_attachment

from bot.advisory.csaf import validation_errors
from tests.conftest import MakePerson
from tests.harness.bot import CvdDeployment
from tests.harness.person import Person, ReceivedMessage
from tests.harness.reporter_pgp import ReporterGpg
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


def plain_body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


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

    # The IBD share: one mail, encrypted to the IBD's key, label in subject and body, and no
    # reporter identity without share-contact yes.
    await command(team, d, root_a, "!ibd TLP:RED", "sent the IBD share of")
    await wait_in_thread(team, d.room_id, root_a, f"IBD share mail went to {ibd.address}")
    [shared] = mails_to(d, ibd.address)
    assert shared.message["Subject"] == f"[{case_a}] Melding kwetsbaarheid voor de IBD TLP:RED"
    assert shared.message.get_content_type() == "multipart/encrypted"
    assert b"Sam" not in shared.raw and b"XSS in permit search" not in shared.raw
    armored = shared.message.get_payload()[1].get_payload(decode=True)  # type: ignore[index]
    inner = message_from_bytes(ibd.decrypt(armored), policy=policy.default)
    assert isinstance(inner, EmailMessage)
    assert "TLP:RED" in str(inner["Subject"])
    body = plain_body(inner)
    assert body.startswith("TLP:RED") and body.rstrip().endswith("TLP:RED")
    assert "Getroffen systemen" in body and "reflected XSS in q" in body
    assert "6.1 (Medium)" in body
    for identity in ("sam@finder.example", "Sam Finder", "Sam <"):
        assert identity not in body
    assert "niet gedeeld" in body

    # The reward: a team member who is not a manager cannot approve; nothing changes.
    await command(
        team,
        d,
        root_a,
        "!reward propose diligence=high quality=good seriousness=high a gift voucher",
        "reward proposed",
    )
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

    # Case B (Dutch): consent recorded, reward approved by the manager -> one Dutch mail.
    await command(team, d, root_b, "!consent share-contact yes", "may be shared")
    await command(
        team,
        d,
        root_b,
        "!reward propose diligence=good quality=good seriousness=high een cadeaubon",
        "reward proposed",
    )
    await command(boss, d, root_b, "!reward approve een bon van 50 euro", "reward approved by")

    # Publication after the fix (case A, English), then the advisory as encrypted files.
    await command(team, d, root_a, "!publish propose 2027-01-15", "needs a case that is")
    await command(team, d, root_a, "!fixed output encoding added", "marked fixed")
    await command(team, d, root_a, "!publish propose 2030-01-15 with your name", "proposed by")
    await command(team, d, root_a, "!publish agreed", "publication agreed for 2030-01-15")
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
    assert events(d, case_a, "advisory_posted")[0]["credited"] is True

    await quiescent(d)
    await asyncio.sleep(1)
    await quiescent(d)
    # Exactly the mails owed: per case ack, assessment; A: fix notice, publication proposal;
    # B: reward approval; and one IBD mail.
    reporter_a = [m.message["Subject"] for m in mails_to(d, "sam@finder.example")]
    reporter_b = [m.message["Subject"] for m in mails_to(d, "eva@researcher.example")]
    assert len(d.smtp.messages) == 8
    assert len(reporter_a) == 4 and len(reporter_b) == 3 and len(mails_to(d, ibd.address)) == 1
    [publication] = [s for s in reporter_a if "Making the problem public" in s]
    assert publication.startswith(f"[{case_a}]")
    [reward] = [
        m for m in mails_to(d, "eva@researcher.example") if "beloning" in m.message["Subject"]
    ]
    assert reward.message.get_content_type() == "multipart/signed"
    [text_part] = [p for p in reward.message.walk() if p.get_content_type() == "text/plain"]
    reward_text = str(text_part.get_content())  # type: ignore[attr-defined]
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
    ibd.close()
