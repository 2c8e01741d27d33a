"""Closing and retention without servers: what an audit entry keeps after deletion, the
closing mail's deletion date, !close/!hold/!unhold through the real dispatcher and database
(refused steps change nothing), and the retention job on a real database: the export before
it holds the decisions and hosts; after it nothing of the report (mails, hosts, reply
preview, credit, reward and publication texts) stays in any table, the stub and the hashes
do, not even in the bytes of the database file and its WAL, and a second run does nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.case_export import build_record, load_case, render_json, render_markdown
from bot.mailout.compose import ReporterMailContext, render_reporter_mail
from bot.matrix.posts import Post, post_to_room
from bot.matrix.render import local
from bot.outbox.payloads import DELETED_PAYLOAD, ThreadPost, decode, enqueue
from bot.pgp.gpg import Pgp
from bot.policy.lifecycle import CaseState
from bot.policy.retention import DELETED, DELETED_MAIL_ACTOR, scrub_actor, scrub_event_data
from bot.watch.retention import RetentionWatch
from storage import case_events, case_intake, cases, mails, outbox, reporter_keys
from storage.db import Database
from tests.harness.gpg_agents import stop_agents_under
from tests.unit.test_reply_commands import Room
from tests.unit.test_sla_commands import MovableClock
from tests.unit.test_sla_watch import ALICE, BOSS, add_case, at, make_config

DAY = timedelta(days=1)


@pytest.fixture
async def room(tmp_path: Path) -> Any:
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield Room(db, make_config(tmp_path), MovableClock(at(3, 10)))
    await db.close()


# ------------------------------------------------------------------------------ the rule


def test_an_audit_entry_keeps_enumerated_values_and_times_only() -> None:
    data: dict[str, Any] = {
        "mail_id": 3,
        "automatic": False,
        "severity": "high",
        "cvss_vector": "CVSS:3.1/AV:N",
        "fix_due": "2026-12-01T10:00:00+00:00",
        "closed_at": "2026-12-02T10:00:00+00:00",
        "reason": "not-reproducible",
        "text": "the login form at https://x.example leaks",
        "address": "sam@finder.example",
        "fingerprint": "ABCD" * 10,
        "forwarded_by": "boss@finder.example",
        "points": ["fix: 50%"],
        "related": ["CVD-2026-0002"],
        "nested": {"subject": "secret", "days": 3},
        "new_key_of_another_helper": "anything",
    }
    scrubbed = scrub_event_data(data)
    for kept in ("mail_id", "automatic", "severity", "cvss_vector", "fix_due", "closed_at"):
        assert scrubbed[kept] == data[kept]
    assert scrubbed["reason"] == "not-reproducible"  # one of REJECT_REASONS
    assert scrubbed["points"] == ["fix: 50%"] and scrubbed["related"] == ["CVD-2026-0002"]
    for gone in ("text", "address", "fingerprint", "forwarded_by", "new_key_of_another_helper"):
        assert scrubbed[gone] == DELETED
    assert scrubbed["nested"] == {"subject": DELETED, "days": 3}
    assert scrub_event_data({"reason": "waiting for the supplier"}) == {"reason": DELETED}


def test_the_reporter_as_actor_is_deleted_the_team_stays() -> None:
    assert scrub_actor("mail:sam@finder.example") == DELETED_MAIL_ACTOR
    assert scrub_actor(ALICE) == ALICE and scrub_actor("cvdbot") == "cvdbot"


# ------------------------------------------------------------------------------ the mail


CLOSING = ReporterMailContext(
    case_id="CVD-2026-0007",
    report_subject="XSS",
    reporter_name=None,
    received_at=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
    assess_due=None,
    fix_due=None,
    timezone="Europe/Amsterdam",
    delete_after=datetime(2027, 3, 1, 23, 30, tzinfo=UTC),
)


def test_the_closing_mail_states_the_deletion_date_in_the_policy_zone() -> None:
    _, nl = render_reporter_mail("closing", "nl", CLOSING)
    _, en = render_reporter_mail("closing", "en", CLOSING)
    # 23:30 UTC is already 2 March in Amsterdam.
    assert "Op dinsdag 2 maart 2027 verwijderen we uw persoonsgegevens" in nl
    assert "on\nTuesday 2 March 2027." in en


def test_a_held_case_says_it_is_kept_for_now() -> None:
    held = replace(CLOSING, delete_after=None, held=True)
    _, nl = render_reporter_mail("closing", "nl", held)
    _, en = render_reporter_mail("closing", "en", held)
    assert "We bewaren de gegevens van uw melding voorlopig" in nl and "verwijderen we uw" not in nl
    assert "We keep the data of your report for now" in en and "We will delete" not in en


# ------------------------------------------------------------------------------ commands


async def snapshot(room: Room, case_id: str) -> tuple[Any, ...]:
    async with room.db.transaction() as conn:
        case = await cases.get_case(conn, case_id)
        history = await case_events.history(conn, case_id)
        async with conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE idem_key NOT LIKE 'reply:%'"
        ) as cur:
            row = await cur.fetchone()
    return case, len(history), row[0] if row else None


async def test_close_hold_unhold_and_refusals_that_change_nothing(room: Room) -> None:
    case = await add_case(room.db, room.calendar, thread_root_event_id="$root")
    before = await snapshot(room, case.id)
    answer = await room.say("!close", thread="$root")
    assert "run !fixed, or record an outcome" in answer
    assert "is not held" in await room.say("!unhold", thread="$root")
    assert await snapshot(room, case.id) == before

    for command in ("!ack", "!assess high", "!fixed"):
        await room.say(command, thread="$root")
    answer = await room.say("!close", thread="$root")
    now = room.clock.now()
    assert "closed (fixed)" in answer and "closing notice mail to the reporter is queued" in answer
    async with room.db.transaction() as conn:
        stored = await cases.get_case(conn, case.id)
        history = await case_events.history(conn, case.id)
    assert stored is not None and stored.state is CaseState.CLOSED
    assert stored.delete_after == now + timedelta(days=90)
    assert history[-1].kind == "closed" and history[-1].actor == ALICE

    before = await snapshot(room, case.id)
    assert "run !reopen first" in await room.say("!close", thread="$root")
    assert await snapshot(room, case.id) == before

    room.clock.moment = now + 10 * DAY
    held = await room.say("!hold legal obligation", thread="$root")
    assert "on hold" in held
    assert "already held" in await room.say("!hold again", thread="$root")
    room.clock.moment = now + 20 * DAY
    released = await room.say("!unhold", thread="$root")
    assert local(now + 110 * DAY, room.calendar.tz) in released  # 90 days after !unhold
    async with room.db.transaction() as conn:
        stored = await cases.get_case(conn, case.id)
        kinds = [(e.kind, e.data.get("reason")) for e in await case_events.history(conn, case.id)]
    assert stored is not None and stored.delete_after == now + 110 * DAY
    assert ("retention_held", "legal obligation") in kinds and ("retention_released", None) in kinds


async def test_spam_is_closed_without_a_mail(room: Room) -> None:
    await add_case(
        room.db, room.calendar, state=CaseState.SPAM, outcome="spam", thread_root_event_id="$r"
    )
    answer = await room.say("!close", thread="$r")
    assert "closed (spam)" in answer and "No closing mail" in answer
    async with room.db.transaction() as conn:
        async with conn.execute("SELECT COUNT(*) FROM outbox WHERE channel = 'mail'") as cur:
            row = await cur.fetchone()
    assert row is not None and row[0] == 0


# ------------------------------------------------------------------------------ the job


async def test_the_retention_job_leaves_a_stub_and_nothing_of_the_report(
    room: Room, tmp_path: Path
) -> None:
    secret = "walrus-4412 in https://afval.example/pasjes"
    case = await add_case(
        room.db,
        room.calendar,
        subject=f"Leak: {secret}",
        reporter_name="Eva Onderzoeker",
        thread_root_event_id="$root",
    )
    raw = f"From: eva@researcher.example\r\nSubject: {secret}\r\n\r\n{secret}\r\n".encode()
    async with room.db.transaction() as conn:
        mail_id = await mails.insert_mail(
            conn,
            direction="in",
            message_id="<eva-1@researcher.example>",
            case_id=case.id,
            source="pipe",
            raw=raw,
            subject=secret,
            from_address="eva@researcher.example",
            to_address="security@x.org",
            sent_date=None,
            stored_at=at(3, 9).isoformat(),
            language="nl",
            thread_ids=["<eva-0@researcher.example>"],
        )
        await case_intake.add_targets(
            conn,
            case.id,
            hosts=["afval.example"],
            urls=["https://afval.example/pasjes"],
            mail_id=mail_id,
        )
        await reporter_keys.record_key(
            conn,
            address="eva@researcher.example",
            fingerprint="F" * 40,
            status="pinned",
            mail_id=mail_id,
            case_id=case.id,
            at=at(3, 9),
        )
        await case_events.record(
            conn,
            case.id,
            actor="mail:eva@researcher.example",
            kind="opened",
            at=at(3, 9),
            data={"mail_id": mail_id, "subject": secret},
        )
        await enqueue(
            conn, ThreadPost(secret, secret), idem_key="t1", case_id=case.id, now=at(3, 9)
        )
        async with conn.execute("SELECT id FROM outbox WHERE idem_key = 't1'") as cur:
            row = await cur.fetchone()
        assert row is not None
        await outbox.mark_sent(conn, row[0], "$posted", at(3, 9))
        # Overdue alerts in the managers' room quote the subject: this case's and another's.
        for about, event_id in ((case.id, "$escalated"), ("CVD-2026-9999", "$other-case")):
            await post_to_room(
                conn,
                "!digest:example.org",
                Post.text(f"Overdue: {about} Subject: {secret if about == case.id else 'x'}"),
                idem_key=f"escalate:{about}:acknowledge@20260305T170000",
                now=at(5, 9),
            )
            await conn.execute(
                "UPDATE outbox SET state = 'sent', result = ? WHERE idem_key = ?",
                (event_id, f"escalate:{about}:acknowledge@20260305T170000"),
            )
    for command, sender in (
        ("!ack", ALICE),
        # A preview, never sent (no key for Eva: Room.keys is empty, so it would be signed).
        (f"!reply Thanks Eva Onderzoeker, we look at {secret}", ALICE),
        ("!credit name Eva Onderzoeker https://afval.example/eva", ALICE),
        ("!assess low", ALICE),
        (f"!fixed removed {secret}", ALICE),
        (
            "!reward propose diligence=high quality=high seriousness=low "
            f"a voucher for finding {secret}",
            ALICE,
        ),
        (f"!reward approve well done on {secret}", BOSS),
        ("!reward details Eva Onderzoeker, Postbus 12, Utrecht", ALICE),
        (f"!publish propose 2027-01-15 an advisory on {secret}", ALICE),
        ("!close", ALICE),
    ):
        answer = await room.say(command, sender=sender, thread="$root")
        assert "CVD-" in answer, (command, answer)
    async with room.db.transaction() as conn:
        closed = await cases.get_case(conn, case.id)
        record = build_record(await load_case(conn, case.id), None)
        async with conn.execute("SELECT COUNT(*) FROM reply_previews") as cur:
            assert tuple(await cur.fetchone() or ()) == (1,)
    assert closed is not None and closed.delete_after is not None

    # The export for the records, before deletion: the decisions with their texts, the hosts.
    decisions = record["decisions"]
    assert decisions["credit_name"] == "Eva Onderzoeker"
    assert decisions["reward_state"] == "approved" and decisions["reward_decided_by"] == BOSS
    assert decisions["reward_criteria"] == "diligence=high quality=high seriousness=low"
    assert secret in decisions["reward_proposal"] and secret in decisions["reward_decision"]
    assert decisions["reward_delivery"] == "Eva Onderzoeker, Postbus 12, Utrecht"
    assert decisions["publish_state"] == "proposed" and decisions["publish_date"] == "2027-01-15"
    assert secret in decisions["publish_text"]
    assert record["hosts"] == ["afval.example"]
    assert record["urls"] == ["https://afval.example/pasjes"]
    assert json.loads(render_json(record))["decisions"] == decisions
    markdown = render_markdown(record)
    assert "## Decisions (credit, consent, reward, IBD share, publication)" in markdown
    assert "| reward_state | approved |" in markdown and "| publish_date | 2027-01-15 |" in markdown
    assert f"| publish_text | an advisory on {secret} |" in markdown
    assert "## Affected hosts and URLs\n\n- afval.example\n- https://afval.example/pasjes\n" in (
        markdown
    )

    wal = room.db.path.with_name(room.db.path.name + "-wal")
    on_disk = (b"walrus-4412", b"Leak: walrus", b"eva@researcher.example")
    before = room.db.path.read_bytes() + wal.read_bytes()
    assert all(needle in before for needle in on_disk)  # the search below can find them

    pgp = Pgp(tmp_path / "gnupg", None, None)
    try:
        watch = RetentionWatch(room.db, room.dispatcher._config, pgp, room.calendar.tz)  # noqa: SLF001
        early = await watch.tick(closed.delete_after - timedelta(minutes=1))
        assert early.deleted == []
        # The closing mail and the answers still wait in the outbox: deletion waits for them.
        waiting = await watch.tick(closed.delete_after)
        assert waiting.deleted == [] and waiting.waiting == [case.id]
        async with room.db.transaction() as conn:
            await conn.execute(
                "UPDATE outbox SET state = 'sent', result = '$sent-' || id WHERE state = 'pending'"
            )
        done = await watch.tick(closed.delete_after)
        assert done.deleted == [case.id] and done.keys_removed == ["F" * 40]
        assert (await watch.tick(closed.delete_after + DAY)).deleted == []
    finally:
        pgp.close()
        stop_agents_under(tmp_path)

    # Nor in the bytes on disk: the database file (secure_delete zeroes what was deleted)
    # and its write-ahead log (the job checkpoints and empties it), read while the bot's
    # connection is still open, as in a running bot.
    for path in (room.db.path, wal):
        data = path.read_bytes()
        for needle in on_disk:
            assert needle not in data, (path.name, needle)

    with sqlite3.connect(room.db.path) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f"SELECT * FROM {table}"):  # noqa: S608
                text = " ".join(
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row
                )
                for needle in ("walrus-4412", "afval.example", "eva@researcher", "Onderzoeker"):
                    assert needle not in text, (table, row)
        stub = conn.execute(
            "SELECT subject, severity, outcome, acknowledged_at IS NOT NULL, data_deleted_at"
            " IS NOT NULL FROM cases WHERE id = ?",
            (case.id,),
        ).fetchone()
        assert stub == ("(deleted)", "low", "fixed", 1, 1)
        [(digest,)] = conn.execute("SELECT sha256 FROM mails WHERE id = ?", (mail_id,)).fetchall()
        assert digest == hashlib.sha256(raw).hexdigest()
        redactions = [
            json.loads(p)
            for (p,) in conn.execute("SELECT payload FROM outbox WHERE idem_key LIKE 'redact:%'")
        ]
        assert {r["event_id"] for r in redactions} >= {"$posted", "$escalated"}
        assert all(r["kind"] == "redaction" for r in redactions)
        rooms = {r["event_id"]: r["room_id"] for r in redactions}
        assert rooms["$escalated"] == "!digest:example.org"
        assert rooms["$posted"] == room.dispatcher._config.matrix.case_room  # noqa: SLF001
        assert "$other-case" not in rooms, "another case's alert stays"
        [note] = [
            json.loads(p)["body"]
            for (p,) in conn.execute(
                "SELECT payload FROM outbox WHERE idem_key = ?", (f"data-deleted:{case.id}",)
            )
        ]
        assert "• 1 overdue alert(s) in the managers' room, which named the subject" in note
        kinds = [
            k for (k,) in conn.execute("SELECT kind FROM case_events WHERE case_id = ?", (case.id,))
        ]
        assert kinds[0] == "opened" and kinds[-1] == "data_deleted" and "closed" in kinds
        # The decisions keep their states and times, not the words or the delivery address.
        kept = conn.execute(
            "SELECT reward_state, reward_criteria, reward_proposal, reward_decision,"
            " reward_delivery, publish_state, publish_text, credit_name FROM case_decisions"
            " WHERE case_id = ?",
            (case.id,),
        ).fetchone()
        assert kept == ("approved", None, None, None, None, "proposed", None, None)
        scrubbed = conn.execute("SELECT payload FROM outbox WHERE idem_key = 't1'").fetchone()
    assert scrubbed == (DELETED_PAYLOAD,)
    try:
        decode(DELETED_PAYLOAD)
    except ValueError as exc:
        assert "deleted" in str(exc)
    else:
        raise AssertionError("a deleted payload must never be sendable")
