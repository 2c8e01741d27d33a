"""!credit, !consent, !reward, !ibd, !publish and !advisory through the real dispatcher and
database (no Matrix): the answers, the decisions with their evidence in the audit log, what
is queued, and that refused steps (a non-manager approving a reward) change nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from email import message_from_string, policy
from pathlib import Path
from typing import Any

import pytest

from bot.config import IbdConfig
from bot.policy.lifecycle import CaseState
from storage import case_decisions, case_events, mails
from storage.db import Database
from tests.unit.test_sla_commands import MovableClock, Room
from tests.unit.test_sla_watch import BOB, RECEIVED, add_case, at, make_config

BOSS = "@boss:example.org"
IBD_KEY = "0123456789ABCDEF0123456789ABCDEF01234567"


@pytest.fixture
async def room(tmp_path: Path) -> Any:
    config = make_config(tmp_path)
    config = config.model_copy(
        update={"ibd": IbdConfig(email="cvd@ibd.example", key_fingerprint=IBD_KEY)}
    )
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    yield Room(db, config, MovableClock(at(3, 10)))
    await db.close()


async def snapshot(room: Room, case_id: str) -> tuple[Any, ...]:
    async with room.db.transaction() as conn:
        decisions = await case_decisions.load(conn, case_id)
        events = await case_events.history(conn, case_id)
        async with conn.execute(
            "SELECT idem_key FROM outbox WHERE idem_key NOT LIKE 'reply:%'"
        ) as cur:
            queued = [row[0] for row in await cur.fetchall()]
    return decisions, len(events), queued


async def queued(room: Room, prefix: str) -> list[dict[str, Any]]:
    async with room.db.transaction() as conn:
        async with conn.execute(
            "SELECT payload FROM outbox WHERE idem_key LIKE ? ORDER BY id", (prefix + "%",)
        ) as cur:
            return [json.loads(row[0]) for row in await cur.fetchall()]


async def assessed_case(room: Room, state: CaseState = CaseState.ASSESSED, **changes: Any) -> str:
    received = RECEIVED
    case = await add_case(
        room.db,
        room.calendar,
        state=state,
        acknowledged_at=at(2, 11),
        assessed_at=at(2, 12),
        severity="high",
        cvss_vector="CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N",
        assessment_text="Reflected XSS in the q parameter of the permit search.",
        reporter_name="Sam Finder",
        **changes,
    )
    assert received
    return case.id


async def test_reward_approval_by_a_team_member_is_refused_and_changes_nothing(
    room: Room,
) -> None:
    case_id = await assessed_case(room)
    proposed = await room.say(
        f"!reward {case_id} propose diligence=high quality=good seriousness=medium voucher"
    )
    assert "reward proposed" in proposed and "diligence=high" in proposed
    before = await snapshot(room, case_id)
    refused = await room.say(f"!reward {case_id} approve well done", sender=BOB)
    assert "only managers may run !reward approve" in refused and "Nothing was changed" in refused
    assert await snapshot(room, case_id) == before
    approved = await room.say(f"!reward {case_id} approve well done", sender=BOSS)
    assert "reward approved by @boss:example.org" in approved and "mail" in approved
    [mail] = await queued(room, "mail:")
    assert mail["kind"] == "reward"
    d, _, _ = await snapshot(room, case_id)
    assert d.reward_state == "approved" and d.reward_decided_by == BOSS
    await room.say(f"!reward {case_id} details Street 1, 7481 Haaksbergen")
    assert (await snapshot(room, case_id))[0].reward_delivery == "Street 1, 7481 Haaksbergen"
    assert "removed" in await room.say(f"!reward {case_id} sent")
    d, _, _ = await snapshot(room, case_id)
    assert d.reward_state == "sent" and d.reward_delivery is None
    async with room.db.transaction() as conn:
        history = json.dumps([e.data for e in await case_events.history(conn, case_id)])
    assert "Street 1" not in history


async def test_reward_needs_the_three_criteria(room: Room) -> None:
    case_id = await assessed_case(room)
    answer = await room.say(f"!reward {case_id} propose diligence=high a voucher")
    assert "quality=… seriousness=…" in answer
    assert (await snapshot(room, case_id))[0].reward_state is None


async def test_credit_and_consent_record_their_evidence(room: Room) -> None:
    case_id = await assessed_case(room)
    async with room.db.transaction() as conn:
        mail_id = await mails.insert_mail(
            conn,
            direction="in",
            message_id="<answer-1@finder.example>",
            case_id=case_id,
            source="imap",
            raw=b"Subject: x\r\n\r\nyes",
            subject="x",
            from_address="sam@finder.example",
            to_address="security@x.org",
            sent_date=None,
            stored_at=at(3, 9).isoformat(),
            language="en",
            thread_ids=[],
        )
    answer = await room.say(f"!credit {case_id} name Sam Finder https://finder.example")
    assert "credited as Sam Finder (https://finder.example)" in answer
    assert f"mail {mail_id} <answer-1@finder.example>" in answer  # the latest reporter mail
    refused = await room.say(f"!consent {case_id} share-contact yes --evidence 999")
    assert "no incoming mail '999'" in refused
    assert not (await snapshot(room, case_id))[0].share_contact
    await room.say(f"!consent {case_id} share-contact yes --evidence {mail_id}")
    async with room.db.transaction() as conn:
        d = await case_decisions.load(conn, case_id)
        events = [e for e in await case_events.history(conn, case_id) if e.kind == "consent"]
    assert d.share_contact and d.credit_name == "Sam Finder"
    assert d.consent_evidence == f"mail {mail_id} <answer-1@finder.example>"
    assert events[0].data["event_id"].startswith("$event-") and events[0].data["mail_id"] == mail_id
    await room.say(f"!credit {case_id} anonymous")
    assert (await snapshot(room, case_id))[0].credit_name is None


async def test_ibd_share_is_one_encrypted_mail_with_the_label_and_no_contact_without_consent(
    room: Room,
) -> None:
    case_id = await assessed_case(room)
    answer = await room.say(f"!ibd {case_id} TLP:GREEN")
    assert "without the reporter's contact" in answer
    again = await room.say(f"!ibd {case_id}")
    assert "was shared with the IBD" in again and "!ibd update" in again
    [mail] = await queued(room, "ibd:")
    assert mail["kind"] == "ibd" and mail["to"] == "cvd@ibd.example"
    assert mail["encrypt_to"] == IBD_KEY
    headers = dict(mail["unsealed"]["headers"])
    assert headers["Subject"] == f"[{case_id}] Melding kwetsbaarheid voor de IBD TLP:GREEN"
    text = "\n".join(f"{k}: {v}" for k, v in mail["unsealed"]["headers"]) + "\n\n"
    body = message_from_string(text + mail["unsealed"]["body"], policy=policy.default)
    content = body.get_content()
    assert content.startswith("TLP:GREEN") and content.rstrip().endswith("TLP:GREEN")
    assert "sam@finder.example" not in content and "Sam Finder" not in content
    assert "6.1 (Medium)" in content and "Reflected XSS" in content
    await room.say(f"!consent {case_id} share-contact yes")
    assert "update for" in await room.say(f"!ibd {case_id} update")
    [_, update] = await queued(room, "ibd:")
    body = message_from_string(
        "\n".join(f"{k}: {v}" for k, v in update["unsealed"]["headers"])
        + "\n\n"
        + update["unsealed"]["body"],
        policy=policy.default,
    )
    assert "TLP:GREEN" in body["Subject"] and "Update" in body["Subject"]
    assert "Sam Finder <sam@finder.example>" in body.get_content()


async def test_ibd_refuses_without_configuration_and_before_assessment(
    room: Room, tmp_path: Path
) -> None:
    case_id = (await add_case(room.db, room.calendar)).id
    assert "needs a case that is assessed" in await room.say(f"!ibd {case_id}")
    room.dispatcher._services = replace(  # noqa: SLF001 - the same room without the ibd section
        room.dispatcher._services, config=make_config(tmp_path)
    )
    case_id = await assessed_case(room)
    assert "the IBD is not configured" in await room.say(f"!ibd {case_id}")
    assert await queued(room, "ibd:") == []


async def test_publication_after_the_fix_and_the_advisory(room: Room) -> None:
    case_id = await assessed_case(room)
    assert "needs a case that is" in await room.say(f"!publish {case_id} propose 2026-12-01")
    assert "only for a fixed case" in await room.say(f"!advisory {case_id}")
    fixed = await assessed_case(room, CaseState.FIXED, fixed_at=at(3, 9), fix_text="escaped")
    answer = await room.say(f"!publish {fixed} propose 2026-12-01 after the holidays")
    assert "publication on 2026-12-01 proposed" in answer
    [mail] = await queued(room, "mail:")
    assert mail["kind"] == "publication"
    assert "for 2026-12-01" in await room.say(f"!publish {fixed} agreed")
    await room.say(f"!credit {fixed} name Sam Finder")
    assert "credits Sam Finder" in await room.say(f"!advisory {fixed}")
    files = await queued(room, "advisory-")
    assert [f["filename"] for f in files] == [f"{fixed}.csaf.json", f"{fixed}.md"]
    import base64

    csaf = json.loads(base64.b64decode(files[0]["data"]))
    assert csaf["document"]["distribution"]["tlp"]["label"] == "WHITE"
    assert csaf["vulnerabilities"][0]["acknowledgments"][0]["names"] == ["Sam Finder"]
