"""Issue 10 (mail that lies, mail that looks automatic), on the intake without the servers:
real gpg, a real SQLite file, and the thread posts queued in the outbox."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.mailin.intake import IntakeOutcome
from bot.mailin.intake_posts import NOT_FROM_REPORTER, UNSORTED_MAIL
from bot.mailin.reporter_keys import KEY_NOT_IMPORTED
from bot.mailin.steps.key_trust import KEY_WAITS
from bot.mailout.sealing import ENCRYPTED, recipient_key, seal
from bot.pgp.gpg import format_fingerprint
from storage import cases, reporter_keys
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


def forged_key_mail(fake: ReporterGpg, case_id: str, text: str) -> bytes:
    """A follow-up from a forged From address carrying `fake`'s key, signed by it."""
    subject = f"Re: [{case_id}] XSS"
    inner = fake.inner_part(
        text,
        subject=subject,
        attachments=[("key.asc", "application/pgp-keys", fake.public_key().encode())],
    )
    return fake.pgp_mime_signed(inner, subject=subject)


async def sealed_to(env: Env, address: str) -> EmailMessage:  # noqa: F811
    """A reporter mail to `address` sealed as the outbox seals it (bot/mailout/sealing.py)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = BOT_ADDRESS, address, "Update"
    message.set_content("The fix is deployed.")
    sealed = await seal(env.pgp, message, await recipient_key(env.pgp, env.db, address))
    assert sealed.protection == ENCRYPTED
    parsed = message_from_bytes(sealed.raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


async def test_key_reject_keeps_mail_on_the_pinned_key_for_good(
    env: Env,  # noqa: F811
    keys: Keys,  # noqa: F811
    tmp_path: Path,
) -> None:
    sam = keys.sam
    first = await env.intake.ingest(
        mail("XSS", ENGLISH_BODY + "\n" + sam.public_key()), source="pipe"
    )
    assert first.case_id is not None
    async with env.db.transaction() as conn:
        await cases.set_thread_events(conn, first.case_id, last="$root", root="$root")
    fake = ReporterGpg(tmp_path / "fake", "Sam Finder", "sam@finder.example")
    try:
        await env.intake.ingest(forged_key_mail(fake, first.case_id, "New key."), source="pipe")
        assert KEY_WAITS in env.thread_text(first.case_id)

        room = Room(env.db, env.config, MovableClock(NOW))
        answer = await room.say("!key reject", thread="$root")
        assert answer == (
            f"🔑 {ALICE} rejected the key {format_fingerprint(fake.fingerprint)} for "
            "sam@finder.example: it is never used."
        )
        assert await recipient_key(env.pgp, env.db, "sam@finder.example") == sam.fingerprint
        # The same key mailed again stays rejected: nothing left to decide, never used.
        await env.intake.ingest(forged_key_mail(fake, first.case_id, "Again."), source="pipe")
        for command in ("!key accept", "!key reject"):
            answer = await room.say(command, thread="$root")
            assert answer.endswith("No key of sam@finder.example is waiting for a decision.")
        statuses = env.rows("SELECT fingerprint, status FROM reporter_keys ORDER BY rowid")
        assert statuses == [(sam.fingerprint, "pinned"), (fake.fingerprint, "rejected")]

        # What the outbox sends opens for Sam and not for the owner of the rejected key.
        sealed = await sealed_to(env, "sam@finder.example")
        assert "The fix is deployed." in str(sam.open_mail(sealed))
        with pytest.raises(RuntimeError, match="decryption failed|No secret key"):
            fake.open_mail(sealed)
    finally:
        fake.close()


def expired_key(home: Path, address: str) -> tuple[str, str]:
    """(fingerprint, public key) of a key made on 1 January 2020 that expired a day later."""
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--faked-system-time", "20200101T000000!",
         "--quick-gen-key", f"Old Key <{address}>", "future-default", "default", "1d"],
        check=True, capture_output=True,
    )  # fmt: skip
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line[:4] == "fpr:")
    public = subprocess.run([*gpg, "--armor", "--export"], check=True, capture_output=True)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    return fingerprint, public.stdout.decode()


async def test_a_revoked_or_expired_pinned_key_is_never_used(
    env: Env,  # noqa: F811
    tmp_path: Path,
) -> None:
    """README: encrypted only to the pinned key, never to a revoked or expired one; the mail
    then goes signed only, and no other key of the address takes the pinned one's place."""
    rita = ReporterGpg(tmp_path / "rita", "Rita", "rita@researcher.example")
    try:
        report = mail("XSS", ENGLISH_BODY + "\n" + rita.public_key(), sender=rita.sender)
        assert (await env.intake.ingest(report, source="pipe")).case_id is not None
        assert await recipient_key(env.pgp, env.db, rita.address) == rita.fingerprint
        # Rita revokes her key and mails the revoked key (what her client publishes).
        revocation = (rita.home / "openpgp-revocs.d" / f"{rita.fingerprint}.rev").read_text()
        rita.import_key(revocation.replace(":-----BEGIN", "-----BEGIN"))
        revoked = rita.gpg("--armor", "--export", rita.fingerprint).decode()
        update = mail("Re: XSS", "My key is revoked.\n" + revoked, sender=rita.sender)
        result = await env.intake.ingest(update, source="pipe")
    finally:
        rita.close()
    assert result.case_id is not None
    assert (
        f"🔑 The key for {rita.address} ({format_fingerprint(rita.fingerprint)}) in a key "
        "pasted into the text is revoked or expired; the bot's copy of it now says so"
    ) in env.thread_text(result.case_id)
    assert await recipient_key(env.pgp, env.db, rita.address) is None
    # A valid key for the address in the keyring (not pinned) does not take its place.
    other = ReporterGpg(tmp_path / "other", "Rita", rita.address)
    other.close()
    env.pgp.import_keys(other.public_key())
    assert env.pgp.key_for_address(rita.address) == other.fingerprint
    assert await recipient_key(env.pgp, env.db, rita.address) is None

    # A pinned key that has expired. Mailed, a key the keyring does not hold is not imported.
    old = "old@researcher.example"
    fingerprint, public = expired_key(tmp_path / "old", old)
    mailed = await env.intake.ingest(mail("Hi", ENGLISH_BODY + public, sender=old), source="pipe")
    assert mailed.case_id is not None
    assert (
        f"({format_fingerprint(fingerprint)}) in a key pasted into the text is revoked or "
        f"expired; it {KEY_NOT_IMPORTED}."
    ) in env.thread_text(mailed.case_id)
    assert not env.pgp.holds_public_key(fingerprint)
    assert env.pgp.import_keys(public) == [fingerprint]  # as an earlier mail did while valid
    async with env.db.transaction() as conn:
        await reporter_keys.record_key(
            conn, address=old, fingerprint=fingerprint, status="pinned",
            mail_id=None, case_id=None, at=NOW,
        )  # fmt: skip
    assert await recipient_key(env.pgp, env.db, old) is None
    assert env.pgp.key_for_address(old, pinned=fingerprint) is None


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
