"""Working a case inside the team, end to end on real Synapse, Dovecot, SMTP and gpg:
!assign (me, another team member, a non-member refused, none), !note (never mailed),
!history (in order, with actors), and !assess's CVSS check (score shown, an invalid vector
refused with nothing changed, a revision recorded).

One deployment: a Dutch report without a key and an English one whose reporter attached
their public key, so the assessment mails show both languages, signed and encrypted. Each
mail is opened with the reporter's own gpg and its signature checked against the bot's key
(tests/harness/signed_mail.py).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

from tests.conftest import MakePerson
from tests.harness.bot import CvdDeployment
from tests.harness.person import Person, ReceivedMessage
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import assert_signed, bot_public_key, opened
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import DUTCH_BODY, ENGLISH_BODY, report

CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
V31_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5, high
V31_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8, critical
V40_CRITICAL = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"  # 9.3
BROKEN = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"  # no A


def rows(d: CvdDeployment, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(d.db_path) as conn:
        return conn.execute(sql).fetchall()


# Bookkeeping that posting the answer and the SLA watch update; not the case's data.
BOOKKEEPING = {"thread_last_event_id", "updated_at", "next_sla_check_at"}


def case_state(d: CvdDeployment, case: str) -> tuple[object, ...]:
    """The case row, its audit log and its queued mails: what a refused step must not change."""
    with sqlite3.connect(d.db_path) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM cases WHERE id = ?", (case,)).fetchone()
    data = {key: row[key] for key in row.keys() if key not in BOOKKEEPING}
    events = rows(d, f"SELECT id, kind FROM case_events WHERE case_id = '{case}'")  # noqa: S608
    mails = rows(d, "SELECT COUNT(*) FROM outbox WHERE channel = 'mail'")
    return data, events, mails


async def quiescent(d: CvdDeployment, timeout: float = 60) -> None:
    """Until nothing waits in the outbox (every post and mail went out)."""
    deadline = time.monotonic() + timeout
    while rows(d, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'") != [(0,)]:
        assert time.monotonic() < deadline, "the outbox did not drain"
        await asyncio.sleep(0.2)


class Thread:
    """A case thread as the team member uses it: send a command, wait for the answer."""

    def __init__(self, d: CvdDeployment, root: ReceivedMessage) -> None:
        self.d, self.root = d, root
        self.case = CASE_ID.search(root.body).group(0)  # type: ignore[union-attr]

    async def say(self, command: str, answer: str, person: Person | None = None) -> ReceivedMessage:
        sent = await self.d.team.send(self.d.room_id, command, thread_root=self.root.event_id)
        return await (person or self.d.team).wait_for_message(
            self.d.room_id,
            lambda m: (
                m.thread_root == self.root.event_id
                and answer in m.body
                and m.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
                == sent
            ),
            timeout=30,
        )


async def test_assign_note_history_and_cvss_assessment(
    make_deployment: MakeDeployment, make_person: MakePerson, tmp_path: Path
) -> None:
    d = await make_deployment()
    bob = await make_person("bob", auto_join=True)
    d.extra_team = [bob.user_id]
    await d.team.invite(d.room_id, bob.user_id)
    await bob.wait_for_room(d.room_id)
    mallory = f"@mallory:{d.synapse.server_name}"  # exists nowhere in the config
    sam = ReporterGpg(tmp_path / "sam", "Sam Finder", "sam@finder.example")
    # Eva's key stays hers: the bot never learns it, she only checks the bot's signatures.
    eva = ReporterGpg(tmp_path / "eva", "Eva Onderzoeker", "eva@researcher.example")
    try:
        for reporter in (sam, eva):
            reporter.import_key(bot_public_key(d))  # the bot's key, as published
        d.start_bot()
        d.append_mail(report(subject="Lek in parkeervergunning", body=DUTCH_BODY))
        inner = sam.inner_part(
            ENGLISH_BODY,
            subject="XSS in the permit search",
            attachments=[("sam.asc", "application/pgp-keys", sam.public_key().encode())],
        )
        d.append_mail(sam.pgp_mime_signed(inner, subject="XSS in the permit search"))
        nl = Thread(d, await wait_root(d, "Lek in parkeervergunning"))
        en = Thread(d, await wait_root(d, "XSS in the permit search"))
        await d.team.wait_for_message(
            d.room_id,
            lambda m: (
                m.thread_root == en.root.event_id and "Imported the reporter's public key" in m.body
            ),
            timeout=60,
        )
        alice = d.team.user_id

        # !assign: me, another team member (who is mentioned and notified), a non-member
        # (refused, nothing changes), none.
        mine = await nl.say("!assign me", f"assigned to {alice} by {alice}")
        assert mine.content["m.mentions"] == {"user_ids": [alice]}
        assert f'<a href="https://matrix.to/#/{alice}">' in (mine.formatted_body or "")
        to_bob = await nl.say(f"!assign {bob.user_id}", f"assigned to {bob.user_id}", bob)
        assert to_bob.content["m.mentions"] == {"user_ids": [bob.user_id]}, "exactly bob"
        assert f'<a href="https://matrix.to/#/{bob.user_id}">' in (to_bob.formatted_body or "")
        before = case_state(d, nl.case)
        refused = await nl.say(f"!assign {mallory}", "cannot be assigned")
        assert f"{mallory} is not in the CVD team or among the managers" in refused.body
        assert refused.content["m.mentions"] == {}
        assert case_state(d, nl.case) == before
        status = await nl.say("!status", f"{nl.case}: new")
        assert f"Assignee: {bob.user_id}" in status.body
        nobody = await nl.say("!assign none", "is no longer assigned")
        assert nobody.content["m.mentions"] == {}

        # !note: kept, never mailed.
        await nl.say("!note supplier called, patch expected Friday", "kept in the audit log")
        await quiescent(d)
        assert d.smtp.messages == []

        # !assess: an invalid vector is refused (no mail, no change); a valid one is scored;
        # a revision keeps the first assessment time and is recorded.
        await nl.say("!ack", "acknowledged by")
        await quiescent(d)
        before = case_state(d, nl.case)
        invalid = await nl.say(f"!assess high {BROKEN} te repareren", "CVSS vector is not valid")
        assert "Missing mandatory metrics" in invalid.body and "no mail was sent" in invalid.body
        await quiescent(d)
        assert case_state(d, nl.case) == before
        assert len(d.smtp.messages) == 1, "only the receipt confirmation"
        first = await nl.say(f"!assess high {V31_HIGH} lek bevestigd", "assessed as high")
        assert "CVSS 3.1 base score 7.5 (high)." in first.body and "⚠️" not in first.body
        [first_at] = rows(d, f"SELECT assessed_at FROM cases WHERE id = '{nl.case}'")  # noqa: S608
        revised = await nl.say(f"!assess medium {V31_CRITICAL}", "re-assessed as medium")
        assert "(revised: high -> medium)" in revised.body
        assert "CVSS 3.1 base score 9.8 (critical)" in revised.body
        assert "vector's severity is critical, not medium; the case keeps medium" in revised.body
        assert rows(d, f"SELECT assessed_at, severity FROM cases WHERE id = '{nl.case}'") == [  # noqa: S608
            (first_at[0], "medium")
        ]
        status = await nl.say("!status", f"{nl.case}: assessed")
        assert "Score: CVSS 3.1 base score 9.8 (critical)" in status.body

        # !history: every entry in order, with who did it.
        history = await nl.say("!history", f"History of {nl.case}")
        lines = history.body.splitlines()[1:]
        defused_alice = alice.replace("@", "@\u2060")
        expected = [
            ("mail:eva@researcher.example", "case opened from a mail"),
            (defused_alice, "assigned to " + defused_alice),
            (defused_alice, "assigned to " + bob.user_id.replace("@", "@\u2060")),
            (defused_alice, "unassigned (was " + bob.user_id.replace("@", "@\u2060")),
            (defused_alice, "note: supplier called, patch expected Friday"),
            (defused_alice, "acknowledged"),
            (defused_alice, "assessed as high (CVSS 3.1 base score 7.5 (high))"),
            (defused_alice, "assessment revised: high -> medium (CVSS 3.1 base score 9.8"),
        ]
        assert len(lines) == len(expected), history.body
        for line, (actor, what) in zip(lines, expected, strict=True):
            _, shown_actor, shown_what = line.split(" · ", 2)
            assert (shown_actor, shown_what.startswith(what)) == (actor, True), line
        assert history.content["m.mentions"] == {}
        assert "@" + bob.user_id[1:] not in history.body, "no user ID in it can ping"

        # The English case: its reporter's key is known, so the assessment is encrypted.
        await en.say("!ack", "acknowledged by")
        answer = await en.say(f"!assess critical {V40_CRITICAL}", "assessed as critical")
        assert "CVSS 4.0 CVSS-B 9.3 (critical)." in answer.body

        await quiescent(d)
        mails = d.smtp.messages
        assert [m.rcpt_tos for m in mails] == [["eva@researcher.example"]] * 3 + [
            ["sam@finder.example"]
        ] * 2, "one mail per step, none for !assign, !note, !history or the refusals"
        # Every mail signed by the bot's key: Eva's signed only, Sam's also encrypted to him.
        dutch = [assert_signed(opened(eva, m), d, encrypted=False) for m in mails[:3]]
        english = [opened(sam, m) for m in mails[3:]]
        assert all(m.message["Subject"].startswith(f"[{nl.case}] Beoordeling") for m in mails[1:3])
        assert "Beste" in dutch[1] and "supplier called" not in dutch[2]
        texts = [assert_signed(result, d, encrypted=True) for result in english]
        assert english[1].message is not None
        assert english[1].message["Subject"].startswith(f"[{en.case}] Assessment of your report")
        assert "Dear" in texts[1] and "CVSS" in texts[1]
    finally:
        sam.close()
        eva.close()


async def wait_root(d: CvdDeployment, subject: str) -> ReceivedMessage:
    return await d.team.wait_for_message(
        d.room_id,
        lambda m: m.thread_root is None and "New report" in m.body and subject in m.body,
        timeout=60,
    )
