"""Issue 10 on the real servers: an encrypted report's subject never travels in clear
(item 1, read as the reporter's client reads it), and a forged key swap does not redirect
mail until a team member runs !key accept (item 2); unmatched list mail in one unsorted
thread, and !open (item 5)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.mailin.steps.key_trust import KEY_WAITS
from bot.outbox.matrix_channel import UNSORTED_TITLE
from tests.harness.quiescence import wait_quiescent, wait_quiescent_and_seen
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import bot_public_key
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report
from tests.integration.test_intake import wait_in_thread, wait_root

CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
SECRET_SUBJECT = "SQL injection in https://permits.haaksbergen.example/login"


async def test_hidden_subject_and_a_forged_key_swap(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    d = await make_deployment()
    sam = ReporterGpg(tmp_path / "sam", "Sam Finder", "sam@finder.example")
    fake = ReporterGpg(tmp_path / "fake", "Sam Finder", "sam@finder.example")
    try:
        sam.import_key(bot_public_key(d))
        fake.import_key(bot_public_key(d))
        d.start_bot()
        inner = sam.inner_part(
            ENGLISH_BODY,
            subject=SECRET_SUBJECT,
            attachments=[("sam.asc", "application/pgp-keys", sam.public_key().encode())],
        )
        d.append_mail(sam.pgp_mime_encrypted(inner, [d.key_fingerprint]))
        root = await wait_root(d.team, d.room_id, SECRET_SUBJECT)
        case = CASE_ID.search(root.body).group(0)  # type: ignore[union-attr]
        await wait_in_thread(d.team, d.room_id, root, "so it is pinned")

        # Item 1: what the relays and the reporter's message list see, then what they read.
        await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
        [ack] = await d.smtp.wait_for_async(1, timeout=30)
        assert ack.message["Subject"] == f"[{case}] Receipt confirmation"
        assert b"permits.haaksbergen" not in ack.raw and b"SQL injection" not in ack.raw
        assert b"Subject:\r\n" not in ack.raw
        sender = ack.message["From"].addresses[0]
        assert sender.display_name == "Information security team, Municipality of Haaksbergen"
        opened = sam.open_mail(ack.message)
        assert opened["Subject"] == f"[{case}] Receipt confirmation: {SECRET_SUBJECT}"

        # Item 2: a forged follow-up From Sam with a key of its own ...
        forged = fake.inner_part(
            "I have a new key, please use it from now on.",
            subject=f"Re: [{case}] Receipt confirmation",
            attachments=[("key.asc", "application/pgp-keys", fake.public_key().encode())],
        )
        d.append_mail(fake.pgp_mime_signed(forged, subject=f"Re: [{case}] Receipt confirmation"))
        await wait_in_thread(d.team, d.room_id, root, KEY_WAITS)
        await wait_in_thread(d.team, d.room_id, root, "came with this mail (not yet trusted)")

        # ... changes nothing: the next mail is still for Sam's first key only.
        await d.team.send(d.room_id, "!assess low", thread_root=root.event_id)
        assessment = (await d.smtp.wait_for_async(2, timeout=30))[1]
        assert "Assessment" in str(sam.open_mail(assessment.message)["Subject"])
        with pytest.raises(RuntimeError):
            fake.open_mail(assessment.message)

        # Only after !key accept does mail go to the new key.
        await d.team.send(d.room_id, "!key accept", thread_root=root.event_id)
        await wait_in_thread(d.team, d.room_id, root, "accepted the key")
        await d.team.send(d.room_id, "!fixed output encoding added", thread_root=root.event_id)
        fixed = (await d.smtp.wait_for_async(3, timeout=30))[2]
        assert "Fixed" in str(fake.open_mail(fixed.message)["Subject"])
        with pytest.raises(RuntimeError):
            sam.open_mail(fixed.message)
        await wait_quiescent(d.db_path)
        assert len(d.smtp.messages) == 3

        # Item 5: list mail that matched no case lands in one unsorted thread, and !open
        # makes it a case.
        for n in (1, 2):
            d.append_mail(
                report(subject=f"List report {n}", body=ENGLISH_BODY).replace(
                    b"Subject:", b"List-Id: <security.haaksbergen.example>\nSubject:", 1
                )
            )
        first = await d.team.wait_for_message(
            d.room_id, lambda m: "List report 1" in m.body and UNSORTED_TITLE in m.body, timeout=60
        )
        second = await d.team.wait_for_message(
            d.room_id, lambda m: "List report 2" in m.body, timeout=60
        )
        assert first.thread_root is None and second.thread_root == first.event_id
        mail_id = re.search(r"!open (\d+)", second.body).group(1)  # type: ignore[union-attr]
        await d.team.send(d.room_id, f"!open {mail_id}", thread_root=first.event_id)
        await wait_root(d.team, d.room_id, "List report 2")
        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        assert d.team.undecryptable(d.room_id) == []
    finally:
        sam.close()
        fake.close()
