"""Element trusts the bot (issue 12) and undecryptable events never flood the room (issue 10
item 9), on the real Synapse.

A second client reads what the server publishes for the bot's account and checks every
signature with signedjson (Synapse's own checker, over canonical JSON). "Nothing uploaded
again" is counted in Synapse's database: every key upload adds a row to
`e2e_cross_signing_keys`, and every upload of keys or signatures adds rows to the bot
account's `device_lists_stream` (that is how other clients learn of the change).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
import uuid
from typing import Any

import vodozemac

from bot.matrix.cross_signing import KEYS_FILE, CrossSigningKeys
from tests.harness.bot import CvdDeployment
from tests.harness.person import Person
from tests.harness.published_keys import check_published, http
from tests.harness.quiescence import wait_quiescent_and_seen
from tests.harness.synapse import SynapseServer
from tests.integration.conftest import MakeDeployment

MEGOLM = "m.megolm.v1.aes-sha2"


def synapse_counts(d: CvdDeployment) -> tuple[int, int]:
    """(cross-signing key uploads, device-list changes) of the bot account, in Synapse's DB."""
    uri = f"file:{d.synapse.workdir / 'homeserver.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as conn:
        [keys] = conn.execute(
            "SELECT count(*) FROM e2e_cross_signing_keys WHERE user_id = ?", (d.bot_user,)
        ).fetchone()
        [changes] = conn.execute(
            "SELECT count(*) FROM device_lists_stream WHERE user_id = ?", (d.bot_user,)
        ).fetchone()
    return int(keys), int(changes)


def cross_sign_cli(d: CvdDeployment, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "cross-sign", "--config", str(d.config_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cross_signing_published_kept_and_reset(make_deployment: MakeDeployment) -> None:
    d = await make_deployment()
    bot = d.start_bot()
    bot.wait_for_log("cross-signing created")
    first = check_published(d, d.team)
    stored = json.loads((d.store_path / KEYS_FILE).read_text())
    assert stored["master_key"] == first.master
    assert (d.store_path / KEYS_FILE).stat().st_mode & 0o077 == 0
    counts = synapse_counts(d)
    assert counts[0] == 3  # master, self-signing, user-signing: uploaded once

    # A restart checks and uploads nothing.
    bot.stop()
    d.start_bot()
    bot.wait_for_log("cross-signing verified")
    assert check_published(d, d.team) == first
    # Alice's client must know the bot joined before it sends, or it shares the room key
    # with nobody on the bot's side (a harness matter, see Person).
    await d.team.wait_for_member(d.room_id, d.bot_user)
    await d.team.send(d.room_id, "!help")  # one round trip: the bot is past its start
    await d.team.wait_for_message(d.room_id, lambda m: "!ack" in m.body, timeout=30)
    assert synapse_counts(d) == counts
    bot.stop()

    # Someone sets up cross-signing for the bot's account in Element: keys the bot does not
    # hold. The bot says so and leaves them alone.
    token = d.synapse.login(d.bot_user, d.bot_password)
    foreign = CrossSigningKeys.generate()
    path = "/_matrix/client/v3/keys/device_signing/upload"
    body = foreign.upload_body(d.bot_user)
    status, answer = http(d.synapse, "POST", path, token, body)
    assert status == 401, answer  # replacing keys needs the password
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": d.bot_user},
        "password": d.bot_password,
        "session": answer["session"],
    }
    status, answer = http(d.synapse, "POST", path, token, {**body, "auth": auth})
    assert status == 200, answer
    d.start_bot()
    bot.wait_for_log("cross-signing keys this bot does not hold")
    bot.stop()
    refused = cross_sign_cli(d)
    assert refused.returncode == 1, refused.stderr
    assert "--reset" in refused.stdout
    counts = synapse_counts(d)

    # --reset: new keys of the bot's own, the device signed again.
    reset = cross_sign_cli(d, "--reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    after = check_published(d, d.team)
    assert after.master not in (first.master, foreign.master_public)
    assert " ".join(after.master[i : i + 4] for i in range(0, 43, 4)) in reset.stdout
    assert synapse_counts(d)[0] == counts[0] + 3
    counts = synapse_counts(d)
    # And the next check uploads nothing.
    again = cross_sign_cli(d)
    assert again.returncode == 0 and "cross-signing verified" in again.stdout
    assert synapse_counts(d) == counts


def send_undecryptable(
    synapse: SynapseServer, room_id: str, token: str, device_id: str, sender_key: str
) -> str:
    """An encrypted message whose room key is never shared with anyone."""
    session = vodozemac.GroupSession()
    ciphertext = session.encrypt(
        json.dumps(
            {"type": "m.room.message", "room_id": room_id, "content": {"body": "!status"}}
        ).encode()
    )
    content = {
        "algorithm": MEGOLM,
        "sender_key": sender_key,
        "ciphertext": ciphertext.to_base64(),
        "session_id": session.session_id,
        "device_id": device_id,
    }
    status, answer = http(
        synapse,
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.encrypted/{uuid.uuid4().hex}",
        token,
        content,
    )
    assert status == 200, answer
    return str(answer["event_id"])


async def wait_for_verdicts(d: CvdDeployment, verdicts: dict[str, str], timeout: float) -> None:
    assert d.bot is not None
    deadline = time.monotonic() + timeout
    while True:
        log = d.bot.log_since_start()
        missing = [
            event_id
            for event_id, verdict in verdicts.items()
            if not any(event_id in line and verdict in line for line in log.splitlines())
        ]
        if not missing:
            return
        assert time.monotonic() < deadline, f"no verdict for {missing}:\n{d.bot.log_tail()}"
        await asyncio.sleep(0.2)


async def test_undecryptable_events_one_notice_per_device_none_for_history(
    make_deployment: MakeDeployment, make_user: Any, harness_root: Any
) -> None:
    d = await make_deployment()
    alice = d.team
    alice_key = alice.client.olm.account.identity_keys["curve25519"]
    # Sent while the bot is only invited: history, never a notice.
    history = send_undecryptable(
        d.synapse, d.room_id, alice.client.access_token, alice.device_id, alice_key
    )
    # Carol, with two devices: her phone (a real E2EE client) and a laptop session.
    carol_id, carol_password = make_user("carol")
    phone = await Person.create(
        d.synapse.url, carol_id, carol_password, harness_root / "people" / carol_id.strip("@")
    )
    try:
        await alice.invite(d.room_id, carol_id)
        await phone.join(d.room_id)
        laptop_token = d.synapse.login(carol_id, carol_password)
        _, whoami = http(d.synapse, "GET", "/_matrix/client/v3/account/whoami", laptop_token)
        laptop = whoami["device_id"]
        laptop_key = vodozemac.Curve25519SecretKey().public_key().to_base64()
        phone_key = phone.client.olm.account.identity_keys["curve25519"]

        d.start_bot()
        # Three unreadable messages from the phone, one from the laptop.
        phone_events = [
            send_undecryptable(
                d.synapse, d.room_id, phone.client.access_token, phone.device_id, phone_key
            )
            for _ in range(3)
        ]
        laptop_event = send_undecryptable(d.synapse, d.room_id, laptop_token, laptop, laptop_key)
        await wait_for_verdicts(
            d,
            {
                history: "sent before the bot joined",
                phone_events[0]: "notice posted",
                phone_events[1]: "no notice",
                phone_events[2]: "no notice",
                laptop_event: "notice posted",
            },
            timeout=60,
        )
        # One notice per device is queued after its verdict; wait for both, then for the
        # room to be whole (a third notice would be counted).
        for device in (phone.device_id, laptop):
            await alice.wait_for_message(
                d.room_id,
                lambda m, device=device: "could not decrypt" in m.body and device in m.body,
                timeout=30,
            )
        await wait_quiescent_and_seen(d.db_path, alice, d.room_id)
        notices = [m.body for m in alice.messages(d.room_id) if "could not decrypt" in m.body]
        assert len(notices) == 2, notices
        assert sum(f"device {phone.device_id}" in n for n in notices) == 1
        assert sum(f"device {laptop}" in n for n in notices) == 1
        assert all(carol_id in n and alice.user_id not in n for n in notices)
    finally:
        await phone.close()
