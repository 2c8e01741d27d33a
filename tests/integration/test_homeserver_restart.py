"""The homeserver stopped and started again in the middle of a burst of reports, on the real
servers: after it, the bot is quiescent and every report has exactly one case and one thread,
nothing the bot posted is doubled, and the team member's client can decrypt every post.

The shared session Synapse is stopped by this test; it is always started again in `finally`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections import Counter

from tests.harness.bot import BotProcess, CvdDeployment
from tests.harness.person import ReceivedMessage
from tests.harness.quiescence import wait_mail_read, wait_quiescent, wait_seen
from tests.harness.synapse import SynapseServer
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report

BURST = 10


def sent_events(d: CvdDeployment) -> list[str]:
    """The event ID of every Matrix post the bot's outbox marked sent."""
    with sqlite3.connect(d.db_path) as conn:
        rows = conn.execute(
            "SELECT result FROM outbox WHERE channel = 'matrix' AND state = 'sent' ORDER BY id"
        ).fetchall()
    return [str(row[0]) for row in rows]


def count(d: CvdDeployment, sql: str) -> int:
    with sqlite3.connect(d.db_path) as conn:
        return int(conn.execute(sql).fetchone()[0])


def is_root(m: ReceivedMessage) -> bool:
    return m.thread_root is None and "New report" in m.body


async def wait_log(bot: BotProcess, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in bot.log_since_start():
        assert bot.process is not None and bot.process.poll() is None, bot.log_tail()
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{bot.log_tail()}"
        await asyncio.sleep(0.1)


async def test_synapse_restarted_mid_burst_one_thread_each_every_post_decryptable(
    make_deployment: MakeDeployment, synapse: SynapseServer
) -> None:
    d = await make_deployment()
    # The sync long-polls 3 s, so the restarted homeserver is noticed within seconds.
    d.config_overrides["monitoring"] = {"stall_after_seconds": 9}
    bot = d.start_bot()
    tag = uuid.uuid4().hex[:6]
    subjects = [f"Burst {tag} report {i:02d}" for i in range(BURST)]
    for subject in subjects:
        d.append_mail(report(subject=subject, body=ENGLISH_BODY))

    # 1. The first thread roots are out: the homeserver goes away mid-burst, comes back.
    await d.team.wait_for_message(d.room_id, is_root, timeout=60)
    pending = count(d, "SELECT COUNT(*) FROM outbox WHERE channel = 'matrix' AND state = 'pending'")
    try:
        synapse.stop()
        await asyncio.sleep(3)
    finally:
        synapse.start()
    assert pending > 0, "the burst was over before Synapse stopped"
    await wait_quiescent(d.db_path, timeout=60)
    assert "Matrix sync failed" in bot.log_since_start(), "the outage was never noticed"

    # 2. The outage cuts off the sharing of a room key. A restarted bot has no outbound
    # room key (nio keeps none across restarts), so its first post must share a new one:
    # with the homeserver gone, that share fails. A key whose sharing failed must never
    # encrypt a post, or the team cannot read what follows once the homeserver is back.
    assert bot.stop() == 0
    d.start_bot()
    late = [f"Burst {tag} late report {i}" for i in range(2)]
    try:
        synapse.stop()
        uids = [d.append_mail(report(subject=subject, body=ENGLISH_BODY)) for subject in late]
        await wait_log(bot, "room key not shared with every device", timeout=30)
    finally:
        synapse.start()
    subjects += late

    await wait_mail_read(d.db_path, max(uids))
    await wait_quiescent(d.db_path, timeout=60)
    events = sent_events(d)
    await wait_seen(d.db_path, d.team, d.room_id, timeout=30)

    assert bot.process is not None and bot.process.poll() is None
    posts = [m for m in d.team.messages(d.room_id) if m.sender == d.bot_user]
    roots = [m for m in posts if is_root(m)]
    assert count(d, "SELECT COUNT(*) FROM cases") == len(subjects)
    assert count(d, "SELECT COUNT(*) FROM mails WHERE direction = 'in'") == len(subjects)
    assert Counter(s for s in subjects for r in roots if s in r.body) == dict.fromkeys(
        subjects, 1
    ), [r.body.splitlines()[0] for r in roots]
    assert len(roots) == len(subjects)
    # Nothing doubled: every post the team saw is one the outbox sent once, and no thread
    # has the same text twice.
    assert sorted(m.event_id for m in posts) == sorted(events)
    assert len(set(events)) == len(events)
    repeated = [k for k, n in Counter((m.thread_root, m.body) for m in posts).items() if n > 1]
    assert repeated == []
    assert d.team.undecryptable(d.room_id) == []
