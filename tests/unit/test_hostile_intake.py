"""Issue 10 (mail that lies, mail that looks automatic), on the intake without the servers:
real gpg, a real SQLite file, and the thread posts queued in the outbox."""

from __future__ import annotations

from bot.mailin.intake import IntakeOutcome
from bot.mailin.intake_posts import NOT_FROM_REPORTER
from tests.integration.sample_mails import ENGLISH_BODY
from tests.unit.test_mail_intake import Env, env, keys, mail  # noqa: F401 - fixtures

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
