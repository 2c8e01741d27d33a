"""Intake paths besides a live IMAP append: the MTA pipe, restarts, undecryptable events."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
import uuid

from tests.harness.bot import CvdDeployment
from tests.harness.quiescence import wait_mail_read, wait_quiescent_and_seen
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report


def count(deployment: CvdDeployment, sql: str) -> int:
    with sqlite3.connect(deployment.db_path) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def test_pipe_ingest_stores_once_and_the_bot_posts_it(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    d.write_config()
    raw = report(subject="Exposed .git directory", body=ENGLISH_BODY)
    first = d.ingest_cli(raw)
    assert first.returncode == 0, first.stderr
    assert first.stdout.decode().startswith("new_case CVD-")
    again = d.ingest_cli(raw)
    assert again.returncode == 0 and again.stdout.decode().startswith("duplicate CVD-")
    assert count(d, "SELECT COUNT(*) FROM mails") == 1

    garbage = d.ingest_cli(b"\x00\x01\x02 this is not a mail \xff")
    assert garbage.returncode == 65, garbage.stderr
    assert b"not a mail message" in garbage.stderr

    d.start_bot()  # the running bot posts what the pipe stored while it was down
    case_id = first.stdout.decode().split()[1]
    root = await d.team.wait_for_message(
        d.room_id, lambda m: m.thread_root is None and case_id in m.body, timeout=60
    )
    assert "Exposed .git directory" in root.body


async def test_pipe_ingest_says_tempfail_when_it_cannot_store(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    # A database path below a regular file cannot be created: the MTA must retry later.
    (d.workdir / "not-a-dir").write_text("x")
    d.config_overrides = {"storage": {"path": str(d.workdir / "not-a-dir" / "db.sqlite3")}}
    d.write_config()
    result = d.ingest_cli(report(subject="x", body=ENGLISH_BODY))
    assert result.returncode == 75, result.stderr


async def test_restart_neither_skips_nor_repeats_imap_mail(make_deployment: MakeDeployment) -> None:
    d = await make_deployment()
    bot = d.start_bot()
    d.append_mail(report(subject="First report", body=ENGLISH_BODY))
    await d.team.wait_for_message(d.room_id, lambda m: "First report" in m.body, timeout=60)
    assert bot.stop() == 0
    late = d.append_mail(report(subject="Arrived while the bot was down", body=ENGLISH_BODY))
    d.start_bot()
    await d.team.wait_for_message(
        d.room_id, lambda m: "Arrived while the bot was down" in m.body, timeout=60
    )
    await wait_mail_read(d.db_path, late)
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert count(d, "SELECT COUNT(*) FROM cases") == 2
    assert count(d, "SELECT COUNT(*) FROM mails WHERE direction = 'in'") == 2
    roots = [m for m in d.team.messages(d.room_id) if m.body.startswith("New report")]
    assert len(roots) == 2


async def test_undecryptable_message_is_reported_in_the_room(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    d.start_bot()
    # An encrypted event whose session nobody has: what a client sends before it shared its
    # room key, or after a key backup went wrong.
    token = d.team.client.access_token
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": "S7yCgmPQoTLQ7O5Z5s8IUq5Gm6nz0jJ5yO5RVn2Ygzo",
        "ciphertext": "AwgAEnB5HpUfGgXn0oBcVhGHzH8CFtQ0q1YnYqk",
        "session_id": "XzXWkAxFKiQ4M7LZrMzQ6c6LqXh3N7fWqI2x9Y1iX8c",
        "device_id": d.team.device_id,
    }
    request = urllib.request.Request(
        f"{d.synapse.url}/_matrix/client/v3/rooms/{d.room_id}/send/m.room.encrypted/"
        f"{uuid.uuid4().hex}",
        data=json.dumps(content).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    notice = await d.team.wait_for_message(
        d.room_id, lambda m: "could not decrypt a message" in m.body, timeout=60
    )
    assert d.team.user_id in notice.body
    assert notice.content["m.mentions"] == {}
