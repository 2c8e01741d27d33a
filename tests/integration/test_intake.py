"""Mail intake on the real servers: PGP reports, the reporter's key used for later mail,
attachments as encrypted media, forwarded reports, auto-replies and !ask.

Keys are made by gpg in the test (tests/harness/reporter_pgp.py); the reporter's mail is
built and their received mail decrypted with their own gpg home, never with the bot's code.
"""

from __future__ import annotations

import json
import re
import urllib.request
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from nio.crypto.attachments import decrypt_attachment

from bot.pgp.gpg import format_fingerprint
from tests.harness.bot import CvdDeployment
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_mail_read, wait_quiescent_and_seen
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import assert_signed, bot_public_key, opened
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report

CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


async def wait_root(person: Person, room_id: str, text: str) -> ReceivedMessage:
    return await person.wait_for_message(
        room_id,
        lambda m: m.thread_root is None and "New report" in m.body and text in m.body,
        timeout=60,
    )


async def wait_in_thread(
    person: Person, room_id: str, root: ReceivedMessage, text: str
) -> ReceivedMessage:
    return await person.wait_for_message(
        room_id, lambda m: m.thread_root == root.event_id and text in m.body, timeout=60
    )


def download(d: CvdDeployment, mxc: str) -> bytes:
    """The ciphertext as the team's client fetches it (authenticated media, Matrix 1.11)."""
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    request = urllib.request.Request(
        f"{d.synapse.url}/_matrix/client/v1/media/download/{server}/{media_id}",
        headers={"Authorization": f"Bearer {d.team.client.access_token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return bytes(response.read())


async def test_encrypted_report_key_media_then_encrypted_ack_and_ask(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    d = await make_deployment()
    sam = ReporterGpg(tmp_path / "sam", "Sam Finder", "sam@finder.example")
    try:
        sam.import_key(bot_public_key(d))
        d.start_bot()
        inner = sam.inner_part(
            ENGLISH_BODY,
            subject="SQL injection in the permit form",
            attachments=[
                ("poc.png", "image/png", PNG),
                ("sam.asc", "application/pgp-keys", sam.public_key().encode()),
            ],
        )
        d.append_mail(sam.pgp_mime_encrypted(inner, [d.key_fingerprint]))

        # The protected subject, the decryption and the signature, on the root.
        root = await wait_root(d.team, d.room_id, "SQL injection in the permit form")
        assert "decrypted with the bot's key" in root.body
        assert (
            "good signature by a key that came with this mail (not yet trusted): "
            "Sam Finder <sam@finder.example>"
        ) in root.body
        assert format_fingerprint(sam.fingerprint) in root.body
        case = CASE_ID.search(root.body).group(0)  # type: ignore[union-attr]
        await wait_in_thread(d.team, d.room_id, root, "reflected cross-site scripting")
        await wait_in_thread(d.team, d.room_id, root, "Imported the reporter's public key")

        # The attachment: encrypted media in the thread that the team member can open.
        image = await d.team.wait_for_message(
            d.room_id,
            lambda m: m.thread_root == root.event_id and m.content.get("msgtype") == "m.image",
            timeout=60,
        )
        file = image.content["file"]
        assert "url" not in image.content, "only the encrypted form goes into an E2EE room"
        assert image.content["body"] == "poc.png" and image.content["m.mentions"] == {}
        ciphertext = download(d, file["url"])
        assert ciphertext != PNG
        assert (
            decrypt_attachment(ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
            == PNG
        )

        # A later !ack goes out encrypted to the key that came with the report.
        await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
        [ack] = await d.smtp.wait_for_async(1, timeout=30)
        assert ack.rcpt_tos == ["sam@finder.example"]
        assert b"reflected cross-site scripting" not in ack.raw
        assert case in assert_signed(opened(sam, ack), d, encrypted=True)
        await wait_in_thread(d.team, d.room_id, root, "PGP-encrypted and signed")

        # !ask with the team's question: the more-information mail, encrypted as well.
        await d.team.send(
            d.room_id, "!ask Which form field did you use?", thread_root=root.event_id
        )
        await wait_in_thread(d.team, d.room_id, root, "asked the reporter")
        mails = await d.smtp.wait_for_async(2, timeout=30)
        ask = mails[1]
        assert f"[{case}]" in str(ask.message["Subject"])
        assert "More information needed" in str(ask.message["Subject"])
        assert "Which form field did you use?" in assert_signed(opened(sam, ask), d, encrypted=True)
        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        assert d.team.undecryptable(d.room_id) == []
    finally:
        sam.close()


async def test_wrong_key_forward_and_auto_reply(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    d = await make_deployment()
    mallory = ReporterGpg(tmp_path / "mallory", "Mallory", "mallory@elsewhere.example")
    try:
        d.start_bot()
        # Encrypted to a key the bot does not hold: still a case, with a clear notice.
        inner = mallory.inner_part("A secret report.", subject="hidden")
        d.append_mail(
            mallory.pgp_mime_encrypted(inner, [mallory.fingerprint], outer_subject="Encrypted")
        )
        locked = await wait_root(d.team, d.room_id, "Encrypted")
        assert "could not be decrypted" in locked.body
        assert "Reporter: Mallory <mallory@elsewhere.example>" in locked.body

        # A colleague forwards a report from Outlook: the case is the original reporter's.
        forward = report(
            subject="FW: Open directory on the permit server",
            sender="Jan Collega <jan@haaksbergen.example>",
            body=(
                "Kunnen jullie hiernaar kijken?\n\n"
                "________________________________\n"
                "From: Sam Finder <sam@finder.example>\n"
                "Sent: Monday, February 2, 2026 10:12 AM\n"
                "To: Info <info@haaksbergen.example>\n"
                "Subject: Open directory on the permit server\n\n" + ENGLISH_BODY
            ),
        )
        d.append_mail(forward)
        root = await wait_root(d.team, d.room_id, "Open directory on the permit server")
        assert "Reporter: Sam Finder <sam@finder.example>" in root.body
        assert "forwarded by jan@haaksbergen.example" in root.body
        await wait_in_thread(d.team, d.room_id, root, "Note from jan@haaksbergen.example")

        # An out-of-office answer to that thread goes in quietly, and nothing is mailed.
        forward_id = message_from_bytes(forward, policy=policy.default)["Message-ID"]
        auto = EmailMessage()
        auto["From"] = "Jan Collega <jan@haaksbergen.example>"
        auto["To"] = "security@haaksbergen.example"
        auto["Subject"] = "Automatic reply: FW: Open directory on the permit server"
        auto["Message-ID"] = "<ooo-1@haaksbergen.example>"
        auto["In-Reply-To"] = str(forward_id)
        auto["Auto-Submitted"] = "auto-replied"
        auto.set_content("I am out of the office until Monday.")
        auto_uid = d.append_mail(bytes(auto))
        await wait_in_thread(d.team, d.room_id, root, "Automatic mail (Auto-Submitted")
        await wait_mail_read(d.db_path, auto_uid)
        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        assert d.smtp.messages == [], "intake never mails anyone"
        notes = [m for m in d.team.messages(d.room_id) if m.thread_root == root.event_id]
        assert sum("Automatic mail (Auto-Submitted" in m.body for m in notes) == 1
        roots = [m for m in d.team.messages(d.room_id) if m.thread_root is None]
        assert len([m for m in roots if "New report" in m.body]) == 2
        with_payloads = json.dumps([m.content for m in d.team.messages(d.room_id)])
        assert '"m.mentions": {}' in with_payloads
    finally:
        mallory.close()
