"""Issue 10 (mail that lies, mail that looks automatic), on the intake without the servers:
real gpg, a real SQLite file, and the thread posts queued in the outbox."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from bot.mailin.intake import IntakeOutcome
from bot.mailin.intake_posts import NOT_FROM_REPORTER, UNSORTED_MAIL
from bot.mailin.steps.key_trust import KEY_WAITS
from bot.mailout.sealing import recipient_key
from bot.pgp.gpg import format_fingerprint
from storage import reporter_keys
from tests.harness.reporter_pgp import ReporterGpg
from tests.integration.sample_mails import ENGLISH_BODY
from tests.unit.test_mail_intake import (  # noqa: F401 - fixtures
    BOT_ADDRESS,
    NOW,
    Env,
    Keys,
    env,
    keys,
    mail,
)
from tests.unit.test_sla_commands import MovableClock, Room
from tests.unit.test_sla_watch import ALICE

RECEIVED = NOW - timedelta(days=2)

# ---- item 6: follow-ups only by the tag form or a reply; anyone else is marked


async def test_a_bare_case_id_in_a_new_report_opens_its_own_case(env: Env) -> None:  # noqa: F811
    first = await env.intake.ingest(mail("XSS", ENGLISH_BODY), source="pipe")
    assert first.case_id is not None
    before = env.thread_text(first.case_id)
    other = mail(
        f"Bypass of the fix for {first.case_id}",
        ENGLISH_BODY.replace("Sam", "Kim"),
        sender="kim@else.example",
    )
    result = await env.intake.ingest(other, source="pipe")
    assert result.outcome is IntakeOutcome.NEW_CASE
    assert result.case_id is not None and result.case_id != first.case_id
    root = str(env.posts(result.case_id)[0]["body"])
    assert f"Mentions {first.case_id}" in root
    assert env.rows("SELECT received_at IS NOT NULL FROM cases WHERE id = ?", result.case_id)
    # Nothing of Kim's mail went into Sam's case.
    assert "Bypass of the fix" not in env.thread_text(first.case_id).replace(before, "")


async def test_the_tag_form_from_a_stranger_is_marked_even_with_the_reporters_reply_to(
    env: Env,  # noqa: F811
) -> None:
    first = await env.intake.ingest(mail("XSS", ENGLISH_BODY), source="pipe")
    assert first.case_id is not None
    forged = mail(
        f"Re: [{first.case_id}] XSS",
        "Please send everything to my new address.",
        sender="mallory@elsewhere.example",
        headers={"Reply-To": "sam@finder.example"},
    )
    result = await env.intake.ingest(forged, source="pipe")
    assert result.outcome is IntakeOutcome.FOLLOW_UP and result.case_id == first.case_id
    assert f"{NOT_FROM_REPORTER} (sam@finder.example)" in env.thread_text(first.case_id)


# ---- item 2: reporter keys as trust on first use


async def test_a_forged_key_swap_waits_for_the_team(
    env: Env,  # noqa: F811
    keys: Keys,  # noqa: F811
    tmp_path: Path,
) -> None:
    sam = keys.sam
    first = await env.intake.ingest(
        mail("XSS", ENGLISH_BODY + "\n" + sam.public_key()), source="pipe"
    )
    second = await env.intake.ingest(mail("Another one", ENGLISH_BODY + " again"), source="pipe")
    assert first.case_id and second.case_id
    assert "first key seen for this address, so it is pinned" in env.thread_text(first.case_id)

    # Mallory forges Sam's address and sends a key with Sam's user ID, signed by it.
    fake = ReporterGpg(tmp_path / "fake", "Sam Finder", "sam@finder.example")
    try:
        inner = fake.inner_part(
            "Please use my new key.",
            subject=f"Re: [{first.case_id}] XSS",
            attachments=[("key.asc", "application/pgp-keys", fake.public_key().encode())],
        )
        forged = fake.pgp_mime_signed(inner, subject=f"Re: [{first.case_id}] XSS")
        result = await env.intake.ingest(forged, source="pipe")
    finally:
        fake.close()
    assert result.outcome is IntakeOutcome.FOLLOW_UP
    thread = env.thread_text(first.case_id)
    assert KEY_WAITS in thread and format_fingerprint(fake.fingerprint) in thread
    assert "good signature by a key that came with this mail (not yet trusted)" in thread
    # Sam's other case is told too.
    assert KEY_WAITS in env.thread_text(second.case_id)
    # The forged key is in the keyring and usable for Sam's address (which of two keys made
    # in the same second gpg would pick is a coin toss); the bot's choice is the pinned one.
    assert env.pgp.key_for_address("sam@finder.example", exclude=[sam.fingerprint]) == (
        fake.fingerprint
    )
    assert await recipient_key(env.pgp, env.db, "sam@finder.example") == sam.fingerprint

    # A mail signed by the pinned key says so.
    signed = sam.pgp_mime_signed(
        sam.inner_part("Still me.", subject=f"Re: [{first.case_id}] XSS"),
        subject=f"Re: [{first.case_id}] XSS",
    )
    await env.intake.ingest(signed, source="pipe")
    assert f"good signature by a key pinned on {NOW.date()}" in env.thread_text(first.case_id)

    # !key accept pins the new one; !key reject would have kept it out for good.
    async with env.db.transaction() as conn:
        await reporter_keys.decide(
            conn,
            address="sam@finder.example",
            fingerprint=fake.fingerprint,
            accept=True,
            by="@alice:example.org",
            at=NOW,
        )
    assert await recipient_key(env.pgp, env.db, "sam@finder.example") == fake.fingerprint


async def test_a_mailed_key_for_a_digest_address_is_never_pinned_by_mail(
    env: Env,  # noqa: F811
    keys: Keys,  # noqa: F811
) -> None:
    manager = "sam@finder.example"  # stands for a manager's digest address here
    env.intake._setup = replace(  # the digest address as configured
        env.intake._setup,
        config=env.config.model_copy(
            update={"digest": env.config.digest.model_copy(update={"email_to": [manager]})}
        ),
    )
    result = await env.intake.ingest(
        mail("Hello", ENGLISH_BODY + "\n" + keys.sam.public_key()), source="pipe"
    )
    assert result.case_id is not None
    assert KEY_WAITS in env.thread_text(result.case_id)
    assert await recipient_key(env.pgp, env.db, manager) is None


# ---- item 5: nothing from the mailbox is dropped


async def test_unmatched_list_mail_is_shown_and_can_become_a_case(env: Env) -> None:  # noqa: F811
    raw = mail(
        "[security] SQL injection in the permit form",
        ENGLISH_BODY,
        sender="Kim Researcher <kim@else.example>",
        headers={"List-Id": "<security.haaksbergen.example>", "Precedence": "list"},
    )
    result = await env.intake.ingest(raw, source="imap", received_at=RECEIVED)
    assert result.outcome is IntakeOutcome.UNMATCHED_AUTOMATIC and result.mail_id is not None
    [shown] = [
        str(json.loads(str(row[0]))["body"])
        for row in env.rows("SELECT payload FROM outbox WHERE payload LIKE '%unsorted%'")
    ]
    assert f"{UNSORTED_MAIL} {result.mail_id} from kim@else.example" in shown
    assert "SQL injection in the permit form" in shown
    assert "It looked automatic: Precedence: list." in shown
    assert f"!open {result.mail_id}" in shown
    assert env.rows("SELECT COUNT(*) FROM cases") == [(0,)]

    room = Room(env.db, env.config, MovableClock(NOW))
    answer = await room.say(f"!open {result.mail_id}")
    [(case_id, received)] = env.rows("SELECT id, received_at FROM cases")
    assert answer == f"📂 {ALICE} opened {case_id} from unsorted mail {result.mail_id}."
    assert datetime.fromisoformat(str(received)) == RECEIVED  # the clock starts at receipt
    assert "New report" in str(env.posts(str(case_id))[0]["body"])
    again = await room.say(f"!open {result.mail_id}")
    assert "is not an unsorted mail" in again
    assert env.rows("SELECT COUNT(*) FROM cases") == [(1,)]


async def test_a_web_form_writing_from_the_security_address_is_a_report(
    env: Env,  # noqa: F811
) -> None:
    form = mail(
        "Web form: vulnerability report",
        ENGLISH_BODY,
        sender=f"Website <{BOT_ADDRESS}>",
        headers={"Reply-To": "eva@researcher.example"},
    )
    result = await env.intake.ingest(form, source="imap")
    assert result.outcome is IntakeOutcome.NEW_CASE and result.case_id is not None
    assert env.rows("SELECT reporter_address FROM cases") == [("eva@researcher.example",)]
    # The bot's own mail carries its header as well as its From address.
    own = mail(
        "[CVD-2026-0099] Receipt confirmation",
        "Thank you",
        sender=BOT_ADDRESS,
        headers={"X-CVDBot": "ack"},
    )
    assert (await env.intake.ingest(own, source="imap")).outcome is IntakeOutcome.OWN_MAIL
