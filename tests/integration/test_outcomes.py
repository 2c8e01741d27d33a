"""The outcomes and !reopen on the real servers: one `cvdbot run` process, four reports, and
every outcome command typed by a team member in an E2EE thread.

- Eva's Dutch report (her key unknown to the bot): a bad !reject is refused, !reject
  out-of-scope sends one Dutch mail, signed; !ack is then refused; !reopen sends nothing and a
  later !ack works.
- Sam's encrypted English report (his key attached): !duplicate of an unknown case is
  refused; !duplicate of Eva's case sends one English mail, encrypted to Sam and signed, that
  does not name Eva's case.
- Sam's second, plain report: !duplicate of his first case names it; !reopen; !withdrawn
  sends the withdrawal confirmation, encrypted (the bot knows Sam's key by his address).
- A spam mail: !spam sends nothing.
- The other language of each: Eva's case, switched with !lang en and rejected again (after
  its !reopen and !ack), gets one English rejection, signed; Sam's cases, reopened and
  switched with !lang nl, get one Dutch duplicate notice and one Dutch withdrawal
  confirmation, each encrypted and signed.

Counts are taken when the outbox is empty (tests/harness/quiescence.py), not after sleeping.
The SLA watch's side (no warnings for ended cases, warnings again after !reopen) is proven on
a real database with a moved clock in tests/unit/test_outcome_commands.py.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from tests.harness.bot import CvdDeployment
from tests.harness.person import Person, ReceivedMessage
from tests.harness.quiescence import wait_quiescent, wait_quiescent_and_seen
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import assert_signed, bot_public_key, opened
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import DUTCH_BODY, ENGLISH_BODY, report

CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
SAM = "Sam Finder <sam@finder.example>"


async def wait_root(person: Person, room_id: str, subject: str) -> tuple[ReceivedMessage, str]:
    root = await person.wait_for_message(
        room_id,
        lambda m: m.thread_root is None and "New report" in m.body and subject in m.body,
        timeout=60,
    )
    found = CASE_ID.search(root.body)
    assert found is not None
    return root, found.group(0)


async def command(d: CvdDeployment, root: ReceivedMessage | None, text: str) -> str:
    """Send a command (in the thread, or in the room when `root` is None) and return the
    bot's answer to exactly that message, once everything it caused has gone out."""
    sent = await d.team.send(d.room_id, text, thread_root=root.event_id if root else None)
    answer = await d.team.wait_for_message(
        d.room_id,
        lambda m: (
            m.content.get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id") == sent
        ),
        timeout=60,
    )
    await wait_quiescent(d.db_path)
    return answer.body


# Bookkeeping that moves without any step: the thread's latest event (every bot post) and
# when the SLA watch looks next.
NOT_STATE = ("thread_last_event_id", "next_sla_check_at")


def case_row(d: CvdDeployment, case_id: str) -> dict[str, object]:
    """The case as stored, for "a refused step changes nothing"."""
    with sqlite3.connect(d.db_path) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
    assert row is not None
    return {key: row[key] for key in row.keys() if key not in NOT_STATE}


def audit(d: CvdDeployment, case_id: str) -> list[tuple[str, str]]:
    """The case's audit log: (kind, actor), oldest first."""
    with sqlite3.connect(d.db_path) as conn:
        rows = conn.execute(
            "SELECT kind, actor FROM case_events WHERE case_id = ? ORDER BY id", (case_id,)
        ).fetchall()
    return [(str(kind), str(actor)) for kind, actor in rows]


def steps(d: CvdDeployment, case_id: str) -> list[tuple[str, str]]:
    """The team's entries in the audit log (the intake's, by `mail:…`, left out)."""
    return [entry for entry in audit(d, case_id) if entry[1].startswith("@")]


def column(d: CvdDeployment, case_id: str, name: str) -> object:
    with sqlite3.connect(d.db_path) as conn:
        return conn.execute(f"SELECT {name} FROM cases WHERE id = ?", (case_id,)).fetchone()[0]  # noqa: S608 - test's own column names


async def test_outcomes_mail_once_refusals_change_nothing_and_reopen_restores(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    d = await make_deployment()
    eva = ReporterGpg(tmp_path / "eva", "Eva Onderzoeker", "eva@researcher.example")
    sam = ReporterGpg(tmp_path / "sam", "Sam Finder", "sam@finder.example")
    try:
        for reporter in (eva, sam):
            reporter.import_key(bot_public_key(d))  # to check the bot's signatures
        d.start_bot()
        d.append_mail(report(subject="Lek in parkeervergunning", body=DUTCH_BODY))
        inner = sam.inner_part(
            ENGLISH_BODY,
            subject="XSS in the permit search",
            attachments=[("sam.asc", "application/pgp-keys", sam.public_key().encode())],
        )
        d.append_mail(sam.pgp_mime_encrypted(inner, [d.key_fingerprint]))
        d.append_mail(report(subject="Same XSS, other page", body=ENGLISH_BODY, sender=SAM))
        d.append_mail(
            report(
                subject="Cheap watches",
                body="Buy cheap watches at our shop, best prices in town!\n",
                sender="Shop <offers@junk.example>",
            )
        )
        root_a, case_a = await wait_root(d.team, d.room_id, "Lek in parkeervergunning")
        root_b, case_b = await wait_root(d.team, d.room_id, "XSS in the permit search")
        root_c, case_c = await wait_root(d.team, d.room_id, "Same XSS, other page")
        root_d, case_d = await wait_root(d.team, d.room_id, "Cheap watches")
        await d.team.wait_for_message(
            d.room_id,
            lambda m: (
                m.thread_root == root_b.event_id and "Imported the reporter's public key" in m.body
            ),
            timeout=60,
        )
        await wait_quiescent(d.db_path)
        assert d.smtp.messages == []
        alice = d.team.user_id

        # --- Eva's Dutch case: a bad reason is refused and changes nothing.
        before, logged = case_row(d, case_a), audit(d, case_a)
        answer = await command(d, root_a, "!reject boring")
        assert "reason must be one of not-a-vulnerability" in answer
        assert case_row(d, case_a) == before and audit(d, case_a) == logged
        assert d.smtp.messages == []

        answer = await command(
            d, root_a, "!reject out-of-scope Het portaal wordt beheerd door de provincie."
        )
        assert f"{case_a} rejected (out-of-scope) by {alice}" in answer
        assert (
            "Its clocks stopped" in answer and "rejection mail to the reporter is queued" in answer
        )
        assert steps(d, case_a) == [("rejected", alice)]
        assert column(d, case_a, "state") == "rejected"
        assert column(d, case_a, "outcome_reason") == "out-of-scope"
        [rejection] = d.smtp.messages
        assert rejection.rcpt_tos == ["eva@researcher.example"]
        assert rejection.message.get_content_type() == "multipart/signed"
        assert rejection.message["Subject"].startswith(f"[{case_a}] Besluit over uw melding")
        body = assert_signed(opened(eva, rejection), d, encrypted=False)
        assert "Beste Eva Onderzoeker," in body
        assert "niet van ons\nis of niet door ons wordt beheerd" in body
        assert "Het portaal wordt beheerd door de provincie." in body
        await d.team.wait_for_message(
            d.room_id,
            lambda m: (
                m.thread_root == root_a.event_id
                and "rejection mail went to eva@researcher.example (signed" in m.body
            ),
            timeout=10,
        )

        # A rejected case takes no work until it is reopened.
        before, logged = case_row(d, case_a), audit(d, case_a)
        answer = await command(d, root_a, "!ack")
        assert f"{case_a} is rejected (out-of-scope): run !reopen first." in answer
        assert case_row(d, case_a) == before and audit(d, case_a) == logged
        assert len(d.smtp.messages) == 1

        # --- Sam's encrypted case: an unknown original is refused; then another
        # reporter's case as the original, which the mail must not name.
        before, logged = case_row(d, case_b), audit(d, case_b)
        unknown = f"{case_b[:9]}9999"
        answer = await command(d, root_b, f"!duplicate {unknown}")
        assert f"there is no case {unknown}; nothing was changed." in answer
        assert case_row(d, case_b) == before and audit(d, case_b) == logged
        answer = await command(d, root_b, f"!duplicate {case_a}")
        assert f"{case_b} marked as a duplicate of {case_a} by {alice}" in answer
        assert "The mail names" not in answer
        assert steps(d, case_b) == [("duplicate", alice)]
        assert column(d, case_b, "duplicate_of") == case_a
        assert len(d.smtp.messages) == 2
        notice = d.smtp.messages[1]
        assert notice.rcpt_tos == ["sam@finder.example"]
        assert notice.message.get_content_type() == "multipart/encrypted"
        assert notice.message["Subject"].startswith(f"[{case_b}] Already reported")
        assert b"already been reported" not in notice.raw, "the text travels encrypted"
        body = assert_signed(opened(sam, notice), d, encrypted=True)
        assert "This problem had already been reported to us before." in body
        assert case_a not in body

        # --- Sam's second case: a duplicate of his own first case, which the mail names;
        # reopened (no mail), then withdrawn.
        answer = await command(d, None, f"!duplicate {case_c} {case_b}")
        assert f"The mail names {case_b}: it is the same reporter's case." in answer
        assert len(d.smtp.messages) == 3
        own = d.smtp.messages[2]
        body = assert_signed(opened(sam, own), d, encrypted=True)
        assert f"You already reported this problem to us earlier, as {case_b}." in body

        answer = await command(d, root_c, "!reopen")
        assert f"it was duplicate of {case_b}, it is new again" in answer
        assert "The reporter was not told" in answer
        assert column(d, case_c, "state") == "new"
        assert column(d, case_c, "duplicate_of") is None
        assert column(d, case_c, "next_sla_check_at") is not None, "watched again"
        assert len(d.smtp.messages) == 3, "!reopen mails nothing"

        answer = await command(d, root_c, "!withdrawn")
        assert f"{case_c} marked as withdrawn by {alice}" in answer
        assert steps(d, case_c) == [("duplicate", alice), ("reopened", alice), ("withdrawn", alice)]
        assert len(d.smtp.messages) == 4
        withdrawal = d.smtp.messages[3]
        assert withdrawal.message["Subject"].startswith(f"[{case_c}] Report withdrawn")
        assert withdrawal.message.get_content_type() == "multipart/encrypted"
        body = assert_signed(opened(sam, withdrawal), d, encrypted=True)
        assert "We confirm that we have\nstopped handling it." in body

        # --- Spam: nothing is sent.
        answer = await command(d, root_d, "!spam")
        assert f"{case_d} marked as spam by {alice}" in answer and "No mail was sent." in answer
        assert steps(d, case_d) == [("spam", alice)]
        assert column(d, case_d, "state") == "spam"
        assert len(d.smtp.messages) == 4

        # Only open cases are listed: Eva's rejected case is not, until it is reopened.
        listed = await command(d, None, "!cases")
        assert listed.startswith("Open cases: 0")

        # --- Eva's case back: no mail for the reopening, and !ack now works.
        answer = await command(d, root_a, "!reopen")
        assert "it was rejected (out-of-scope), it is new again. Its clocks run again." in answer
        assert len(d.smtp.messages) == 4
        answer = await command(d, root_a, "!ack")
        assert f"{case_a} acknowledged by {alice}" in answer
        assert steps(d, case_a) == [
            ("rejected", alice),
            ("reopened", alice),
            ("acknowledged", alice),
        ]
        listed = await command(d, None, "!cases")
        assert listed.startswith("Open cases: 1") and case_a in listed
        for other in (case_b, case_c, case_d):
            assert other not in listed

        # Exactly these mails, each once: two to Eva (Dutch), three to Sam (English).
        await wait_quiescent(d.db_path)
        mails = d.smtp.messages
        assert len(mails) == 5
        ack = mails[4]
        assert ack.rcpt_tos == ["eva@researcher.example"]
        assert ack.message["Subject"].startswith(f"[{case_a}] Ontvangstbevestiging")
        assert_signed(opened(eva, ack), d, encrypted=False)
        assert [m.rcpt_tos[0] for m in mails].count("sam@finder.example") == 3
        assert len({m.message["Message-ID"] for m in mails}) == 5

        # --- The other language of each outcome mail. Eva's case switched to English and
        # rejected: one English mail, signed only (her key is unknown).
        answer = await command(d, root_a, "!lang en")
        assert "from Dutch (nl) to English (en)" in answer
        answer = await command(d, root_a, "!reject not-reproducible")
        assert f"{case_a} rejected (not-reproducible) by {alice}" in answer
        assert steps(d, case_a)[-2:] == [("language_changed", alice), ("rejected", alice)]
        assert len(d.smtp.messages) == 6
        english = d.smtp.messages[5]
        assert english.rcpt_tos == ["eva@researcher.example"]
        assert english.message.get_content_type() == "multipart/signed"
        assert english.message["Subject"].startswith(f"[{case_a}] Decision on your report")
        body = assert_signed(opened(eva, english), d, encrypted=False)
        assert "Dear Eva Onderzoeker," in body and "Beste" not in body
        assert "Why: we could not reproduce the problem." in body

        # Sam's first case reopened, switched to Dutch and marked a duplicate of Eva's case:
        # one Dutch mail, encrypted to Sam and signed, that does not name Eva's case.
        await command(d, root_b, "!reopen")
        answer = await command(d, root_b, "!lang nl")
        assert "from English (en) to Dutch (nl)" in answer
        answer = await command(d, root_b, f"!duplicate {case_a}")
        assert f"{case_b} marked as a duplicate of {case_a} by {alice}" in answer
        assert steps(d, case_b) == [
            ("duplicate", alice),
            ("reopened", alice),
            ("language_changed", alice),
            ("duplicate", alice),
        ]
        assert len(d.smtp.messages) == 7
        dutch = d.smtp.messages[6]
        assert dutch.rcpt_tos == ["sam@finder.example"]
        assert dutch.message.get_content_type() == "multipart/encrypted"
        assert dutch.message["Subject"].startswith(f"[{case_b}] Al eerder gemeld")
        assert b"eerder bij ons gemeld" not in dutch.raw, "the text travels encrypted"
        body = assert_signed(opened(sam, dutch), d, encrypted=True)
        assert "Beste Sam Finder," in body
        assert "Dit probleem was al eerder bij ons gemeld." in body
        assert case_a not in body

        # Sam's second case reopened, switched to Dutch and withdrawn: one Dutch withdrawal
        # confirmation, encrypted to Sam and signed.
        await command(d, root_c, "!reopen")
        await command(d, root_c, "!lang nl")
        answer = await command(d, root_c, "!withdrawn")
        assert f"{case_c} marked as withdrawn by {alice}" in answer
        assert steps(d, case_c)[-3:] == [
            ("reopened", alice),
            ("language_changed", alice),
            ("withdrawn", alice),
        ]
        assert len(d.smtp.messages) == 8
        ingetrokken = d.smtp.messages[7]
        assert ingetrokken.rcpt_tos == ["sam@finder.example"]
        assert ingetrokken.message.get_content_type() == "multipart/encrypted"
        assert ingetrokken.message["Subject"].startswith(f"[{case_c}] Melding ingetrokken")
        body = assert_signed(opened(sam, ingetrokken), d, encrypted=True)
        assert "Beste Sam Finder," in body
        assert "we dat we de behandeling ervan hebben gestopt." in body

        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        assert len(d.smtp.messages) == 8
        assert len({m.message["Message-ID"] for m in d.smtp.messages}) == 8
        assert d.team.undecryptable(d.room_id) == []
    finally:
        eva.close()
        sam.close()
