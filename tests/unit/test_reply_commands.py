"""!reply, !send, !update and !lang through the real dispatcher and database (no Matrix, no
SMTP): what the thread reads, what is stored and queued, and that a refused step changes
nothing. The reporter's key is what `Services.reporter_key` answers (in the bot: the mail
channel's gpg rule, proven end to end in tests/integration/test_replies.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.failpoints import Failpoints
from bot.mailout.compose import ComposedMail
from bot.mailout.reporter import ReporterMailer
from bot.outbox.payloads import Mail, decode
from bot.policy.lifecycle import CaseState
from bot.policy.workdays import WorkingCalendar
from bot.services import Services, calendar_rules
from bot.watch.deadline_warnings import SlaWatch
from bot.watch.digest_contents import build_digest
from bot.watch.digest_render import render_text
from commands import build_registry
from commands.dispatch import CommandDispatcher, IncomingMessage
from storage import case_events, cases, next_checks
from storage.db import Database
from tests.unit.test_sla_commands import MovableClock
from tests.unit.test_sla_watch import ALICE, BOB, add_case, at, make_config, share_with_ibd

SAM = "sam@finder.example"


class Room:
    """A dispatcher over a temporary database; `keys` is the bot's keyring by address."""

    def __init__(self, db: Database, config: Config, clock: MovableClock) -> None:
        self.calendar = WorkingCalendar(calendar_rules(config.policy))
        self.config = config
        self.db = db
        self.clock = clock
        self.keys: dict[str, str] = {}
        self.lookups: list[str] = []

        async def reporter_key(address: str) -> str | None:
            self.lookups.append(address)
            return self.keys.get(address)

        services = Services(config, self.calendar, ReporterMailer(config), reporter_key)
        self.dispatcher = CommandDispatcher(
            build_registry(), db, services, clock, Failpoints({}), lambda: None
        )
        self._count = 0

    async def say(self, body: str, *, sender: str = ALICE, thread: str = "$root-1") -> str:
        self._count += 1
        event_id = f"$event-{self._count}"
        await self.dispatcher.handle(
            IncomingMessage("!cases:example.org", event_id, sender, body, self.clock.now(), thread)
        )
        rows = await self.rows("SELECT payload FROM outbox WHERE idem_key = ?", f"reply:{event_id}")
        assert rows, f"no answer to {body!r}"
        return str(json.loads(rows[0][0])["body"])

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self.db.transaction() as conn:
            async with conn.execute(sql, args) as cur:
                return [tuple(row) for row in await cur.fetchall()]

    async def mails(self) -> list[Mail]:
        rows = await self.rows("SELECT payload FROM outbox WHERE channel = 'mail' ORDER BY id")
        found = [decode(row[0]) for row in rows]
        assert all(isinstance(mail, Mail) for mail in found)
        return found  # type: ignore[return-value]

    async def snapshot(self) -> tuple[Any, ...]:
        """State, audit log, outbox mails and previews: what a refused step must not change."""
        return (
            await self.rows("SELECT * FROM cases"),
            await self.rows("SELECT kind, data FROM case_events ORDER BY id"),
            await self.rows("SELECT idem_key FROM outbox WHERE channel = 'mail'"),
            await self.rows("SELECT * FROM reply_previews ORDER BY case_id, number"),
        )


@pytest.fixture
async def room(tmp_path: Path) -> Any:
    config = make_config(tmp_path)
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield Room(db, config, MovableClock(at(3, 10)))
    await db.close()


def body_of(mail: Mail) -> tuple[str, str]:
    assert mail.composed is not None
    message = ComposedMail.of(mail.composed.to_message()).to_message()
    part = message.get_body(("plain",))
    assert part is not None
    return str(message["Subject"]), str(part.get_content())


def preview_parts(answer: str) -> tuple[str, str]:
    """(subject, body) as the preview in the thread shows them."""
    head, body, _ = answer.split("────────────────────────────────")
    subject = next(line for line in head.splitlines() if line.startswith("Subject: "))
    return subject.removeprefix("Subject: "), body.strip("\n") + "\n"


async def test_reply_previews_exactly_what_send_sends_once(room: Room) -> None:
    case = await add_case(room.db, room.calendar, state=CaseState.ACKNOWLEDGED)
    room.keys[SAM] = "F" * 40
    answer = await room.say("!reply We could reproduce it.\nThe fix is planned for next week.")
    assert answer.startswith(f"📝 Preview #1 of a reply to the reporter of {case.id}")
    assert f"To: {SAM}" in answer
    assert "Language: English (en)" in answer
    assert "Protection: PGP-encrypted and signed" in answer
    assert "!send sends it (or !send 1), until Tue 3 Nov 2026 11:00 CET" in answer
    assert await room.mails() == [], "a preview sends nothing"
    subject, body = preview_parts(answer)
    assert subject == f"[{case.id}] About your report: XSS in the parking permit search"
    assert "We could reproduce it.\nThe fix is planned for next week." in body

    room.clock.moment += timedelta(minutes=59)
    sent = await room.say("!send")
    assert f"{ALICE} sent reply preview #1 of {case.id}" in sent
    assert "The reply mail to the reporter is queued." in sent
    [mail] = await room.mails()
    assert mail.kind == "reply" and mail.to_address == SAM
    assert body_of(mail) == (subject, body)
    history = await room.rows("SELECT kind, actor FROM case_events ORDER BY id")
    assert history == [("reply_previewed", ALICE), ("reply_sent", ALICE)]
    assert room.lookups == [SAM, SAM], "looked up for the preview and again before sending"

    before = await room.snapshot()
    again = await room.say("!send", sender=BOB)
    assert "preview #1 was already sent on 2026-11-03 09:59 UTC by @alice" in again
    assert await room.snapshot() == before


async def test_superseded_and_expired_previews_are_refused(room: Room) -> None:
    case = await add_case(room.db, room.calendar, state=CaseState.ASSESSED, language="nl")
    first = await room.say("!reply Eerste versie.")
    assert "Language: Dutch (nl)" in first
    assert "Protection: signed; not encrypted, no PGP key known for this address" in first
    assert "Subject: [CVD-2026-0001] Bericht over uw melding: XSS" in first
    second = await room.say("!reply Tweede versie.", sender=BOB)
    assert second.startswith(f"📝 Preview #2 of a reply to the reporter of {case.id}")

    before = await room.snapshot()
    refused = await room.say("!send 1")
    assert "preview #1 was superseded by #2 (@bob:example.org" in refused
    assert await room.snapshot() == before

    room.clock.moment += timedelta(hours=1, seconds=1)
    expired = await room.say("!send 2")
    assert "preview #2 is older than an hour" in expired
    assert await room.snapshot() == before

    third = await room.say("!reply Derde versie.")
    assert "Preview #3" in third
    # The key came in the meantime: the preview said "signed only", so it is not sent.
    room.keys[SAM] = "F" * 40
    changed = await room.say("!send")
    assert "would now be encrypted, unlike preview #3 said" in changed
    del room.keys[SAM]
    sent = await room.say("!send 3")
    assert "sent reply preview #3" in sent
    [mail] = await room.mails()
    assert "Derde versie." in body_of(mail)[1]
    assert body_of(mail)[1].startswith("Beste melder,")


async def test_reply_and_update_refuse_anonymous_and_oversized(room: Room) -> None:
    await add_case(room.db, room.calendar, state=CaseState.ASSESSED, reporter_address=None)
    before = await room.snapshot()
    assert "no reporter address to write to (anonymous report)" in await room.say("!reply Hi")
    assert "no reporter address" in await room.say("!send")
    assert "no reporter address" in await room.say("!update")
    assert await room.snapshot() == before
    assert "Usage: !reply" in await room.say("!reply")
    await add_case(room.db, room.calendar, state=CaseState.ASSESSED, thread_root_event_id="$r2")
    long = await room.say("!reply " + "x" * 8001, thread="$r2")
    assert "at most 8000 fit one mail" in long
    assert await room.rows("SELECT COUNT(*) FROM reply_previews") == [(0,)]


async def test_lang_switches_later_mails_and_stales_a_preview(room: Room) -> None:
    case = await add_case(room.db, room.calendar, state=CaseState.ASSESSED)
    await room.say("!reply Thank you.")
    switched = await room.say("!lang nl")
    assert f"switched the mails of {case.id} from English (en) to Dutch (nl)" in switched
    before = await room.snapshot()
    assert "already in Dutch (nl)" in await room.say("!lang NL")
    assert "language changed to nl after preview #1 (en)" in await room.say("!send")
    assert await room.snapshot() == before
    assert "must be one of nl, en" in await room.say("!lang de")

    update = await room.say("!update")
    assert f"sent the reporter of {case.id} a progress update" in update
    [mail] = await room.mails()
    subject, body = body_of(mail)
    assert subject == f"[{case.id}] Voortgang van uw melding: XSS in the parking permit search"
    assert "We werken nog aan de oplossing" in body
    assert "uiterlijk zondag 31 januari 2027 opgelost" in body
    async with room.db.transaction() as conn:
        stored = await cases.get_case(conn, case.id)
        history = await case_events.history(conn, case.id)
    assert stored is not None and stored.language == "nl"
    changed = [e for e in history if e.kind == "language_changed"]
    assert [(e.actor, e.data) for e in changed] == [(ALICE, {"previous": "en", "language": "nl"})]
    assert history[-1].kind == "update_sent"


async def test_update_names_the_fix_target_as_it_stands_and_follows_the_steps(room: Room) -> None:
    case = await add_case(room.db, room.calendar)
    before = await room.snapshot()
    refused = await room.say("!update")
    assert f"{case.id} is new; this needs a case that is acknowledged, assessed, fixed" in refused
    assert await room.snapshot() == before
    async with room.db.transaction() as conn:
        await cases.save_case(conn, replace(case, state=CaseState.ASSESSED), "x")
    await room.say("!extend 10 the supplier needs more time")
    await room.say("!update Our supplier is testing the patch.")
    [mail] = await room.mails()
    body = body_of(mail)[1]
    assert "Our supplier is testing the patch." in body and "target" not in body
    await room.say("!update")
    standard = body_of((await room.mails())[1])[1]
    assert "fixed by Wednesday 10 February 2027" in standard, "31 January + 10 days"
    assert len(await room.mails()) == 2


async def test_update_warning_once_per_quiet_period_and_in_the_digest(room: Room) -> None:
    case = await add_case(
        room.db, room.calendar, state=CaseState.ACKNOWLEDGED, acknowledged_at=at(2, 11)
    )
    watch = SlaWatch(room.db, room.config, room.calendar)
    # Shared with the IBD already: this test watches the update point, not the share's.
    await share_with_ibd(room.db, case)
    await room.say("!assess low stored XSS")  # the assessment mail: the quiet period starts
    assert (await room.rows("SELECT next_sla_check_at FROM cases")) == [("",)]
    await watch.tick(room.clock.now())
    async with room.db.transaction() as conn:
        planned = await next_checks.next_check_of(conn, case.id)
    assert planned == at(3, 10) + timedelta(days=30), "30 calendar days after the last mail"

    async def update_warnings() -> list[str]:
        rows = await room.rows("SELECT payload FROM outbox WHERE idem_key LIKE 'update-warning:%'")
        return [json.loads(row[0])["body"] for row in rows]

    async def digest_text(moment: datetime) -> str:
        async with room.db.transaction() as conn:
            digest = await build_digest(conn, room.config, room.calendar, moment)
        return render_text(digest, room.calendar.tz, "!cases:example.org")

    day_before = at(2, 10, month=12)
    result = await watch.tick(day_before)
    assert result.update_warned == [] and await update_warnings() == []
    assert "Reporters without an update for too long (30 days or more" in (
        await digest_text(day_before)
    )
    assert f"{case.id} · assessed" not in await digest_text(day_before)

    # Thursday 3 December 10:00 CET, 30 days on: one warning, and the digest lists the case.
    due = at(3, 10, month=12)
    assert (await watch.tick(due)).update_warned == [case.id]
    [warning] = await update_warnings()
    assert f"📭 {case.id}: no update for the reporter — for {ALICE} {BOB}" in warning
    assert "no mail from us since Tue 3 Nov 2026 10:00 CET (30 days" in warning
    text = await digest_text(due)
    assert "or more without mail from us): 1" in text
    assert f"{case.id} · assessed · low · unassigned · no mail from us since" in text
    for later in (due, due + timedelta(hours=2), due + timedelta(days=3)):
        assert (await watch.tick(later)).update_warned == []
    async with room.db.transaction() as conn:
        await next_checks.check_soon(conn, case.id)
    assert (await watch.tick(due + timedelta(days=4))).update_warned == []
    assert len(await update_warnings()) == 1, "once per quiet period"

    # An update starts a new quiet period, warned again 30 days after it.
    room.clock.moment = due + timedelta(days=5)
    await room.say("!update")
    assert "or more without mail from us): 0" in await digest_text(room.clock.moment)
    await watch.tick(room.clock.moment)
    assert (await watch.tick(room.clock.moment + timedelta(days=29))).update_warned == []
    assert (await watch.tick(room.clock.moment + timedelta(days=30))).update_warned == [case.id]
    assert len(await update_warnings()) == 2
    history = await room.rows("SELECT kind, actor FROM case_events WHERE kind = 'update_warning'")
    assert history == [("update_warning", "cvdbot")] * 2


async def test_a_paused_fix_clock_does_not_silence_the_update_warning(room: Room) -> None:
    # Waiting for a supplier is news the reporter is owed as well.
    case = await add_case(
        room.db,
        room.calendar,
        state=CaseState.ASSESSED,
        acknowledged_at=at(2, 11),
        assessed_at=at(2, 12),
    )
    await room.say("!pause waiting for the supplier's patch")
    watch = SlaWatch(room.db, room.config, room.calendar)
    await watch.tick(room.clock.now())
    assert (await watch.tick(at(2, 10, month=12))).update_warned == [case.id]
