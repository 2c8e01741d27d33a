"""What a team member using Element sees of the bot (issue 12), measured with Element's own SDK.

Opt in (`make element-check`, `pytest -m element`): it needs Node 20 and npm, and
`clients/element` installs matrix-js-sdk 37.5 with its Rust crypto from the npm registry
(`npm ci`, once). Two team members watch the case room through matrix-js-sdk while the bot
opens a case thread and answers in it:

* erin, Element's default settings;
* frank, with "exclude insecure devices" on (OnlySignedDevicesIsolationMode: his client
  neither decrypts from nor shares room keys with a device its owner did not sign).

Both have cross-signing of their own, as Element sets up at first login: erin needs it to
verify the bot's user, frank to send at all with that setting.

erin, a team member, then verifies the bot's user by emoji (SAS) as Element's "Verify" does:
first in a new direct chat, where she presses "They don't match", then in the case room,
comparing her emojis with the bot's log line before she confirms.

Each prints, per message, whether it decrypted and Element's shield for it
(`getEncryptionInfoForEvent`), and the bot's device and user verification status. The same
is done for a bot whose device its owner did not sign: the account has cross-signing keys the
bot does not hold (someone set them up from Element), which the bot logs and leaves alone; and
then after `cvdbot cross-sign --reset` on that account. Alice (the harness's matrix-nio
member, who never had cross-signing, as nio bots had not before issue 12) sends commands, so
her messages show what a device of an account without cross-signing keys gets.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.matrix.cross_signing import CrossSigningKeys
from tests.harness.bot import BotProcess, CvdDeployment
from tests.harness.element import ElementClient, ensure_installed
from tests.harness.published_keys import http
from tests.harness.quiescence import wait_quiescent_and_seen
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report
from tests.integration.test_cross_signing import cross_sign_cli

pytestmark = pytest.mark.element

MakeUser = Callable[[str], tuple[str, str]]


@dataclass
class Watchers:
    """erin (Element defaults, cross-signing of her own) and frank (exclude insecure devices)."""

    erin: ElementClient
    frank: ElementClient
    frank_user: str
    bot_device: str


@pytest_asyncio.fixture(loop_scope="session")
async def element_clients() -> AsyncIterator[list[ElementClient]]:
    ensure_installed()
    started: list[ElementClient] = []
    yield started
    for client in started:
        await client.close()


async def watch(
    d: CvdDeployment,
    people: dict[str, tuple[str, str]],
    started: list[ElementClient],
    logs: Path,
) -> Watchers:
    """Two new members in the case room (erin and frank), each on a matrix-js-sdk device."""
    bot_device = json.loads((d.store_path / "session.json").read_text())["device_id"]
    for user, _ in people.values():
        await d.team.invite(d.room_id, user)
    clients = {}
    for name, (user, password) in people.items():
        clients[name] = await ElementClient.start(
            homeserver=d.synapse.url,
            user=user,
            password=password,
            room_id=d.room_id,
            bot_user=d.bot_user,
            bot_device=bot_device,
            log_path=logs / f"element-{name}.log",
            # Element sets up cross-signing at first login; a client that excludes insecure
            # devices cannot send at all without it ("cross-signing is not set up").
            cross_sign_self=True,
            isolation="signed" if name == "frank" else "all",
        )
        started.append(clients[name])
    for user, _ in people.values():
        await d.team.wait_for_member(d.room_id, user)
    return Watchers(clients["erin"], clients["frank"], people["frank"][0], bot_device)


async def thread_of_one_report(d: CvdDeployment, subject: str) -> tuple[list[str], list[str]]:
    """A report becomes a thread and alice acknowledges it; (bot's event IDs, alice's)."""
    # The bot answers alice only after its sync saw erin and frank join: from then on it
    # shares its room keys with their devices too.
    await d.team.send(d.room_id, "!help")
    await d.team.wait_for_message(d.room_id, lambda m: "!ack" in m.body, timeout=30)
    d.append_mail(report(subject=subject, body=ENGLISH_BODY))
    root = await d.team.wait_for_message(
        d.room_id, lambda m: m.thread_root is None and subject in m.body, timeout=60
    )
    await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
    await d.team.wait_for_message(
        d.room_id,
        lambda m: (
            m.thread_root == root.event_id and m.sender == d.bot_user and "!ack" not in m.body
        ),
        timeout=60,
    )
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    messages = d.team.messages(d.room_id, include_own=True)
    bot = [m.event_id for m in messages if m.sender == d.bot_user]
    alice = [m.event_id for m in messages if m.sender == d.team.user_id]
    return bot, alice


def bot_view(answer: dict[str, Any], d: CvdDeployment) -> set[tuple[Any, ...]]:
    """(decrypted, why not, shield colour, shield reason) over the bot's messages."""
    return {
        (e["decrypted"], e["decryption_failure"], e["shieldColour"], e["shieldReason"])
        for e in answer["events"]
        if e["sender"] == d.bot_user
    }


async def until_status(
    client: ElementClient, done: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> tuple[dict[str, Any], float]:
    """Polls the client's view of the bot until `done`; (the status, seconds it took)."""
    started = time.monotonic()
    while True:
        status = await client.command("status")
        waited = time.monotonic() - started
        if done(status) or waited > timeout:
            return status, waited
        await asyncio.sleep(0.2)


def element_sas(shown: dict[str, Any]) -> str:
    """The SAS erin's client shows, in the form of the bot's log line."""
    assert shown.get("emoji") and shown.get("decimal"), shown
    emojis = ", ".join(f"{emoji} {name}" for emoji, name in shown["emoji"])
    return f"{emojis} | {' '.join(str(d) for d in shown['decimal'])}"


async def sas_line(bot: BotProcess, nth: int, timeout: float = 20) -> str:
    """The SAS of the bot's `nth` "compare these with Element" log line, once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        lines = re.findall(r"compare these with Element: (.*)", bot.log_since_start())
        if len(lines) >= nth:
            return lines[nth - 1].strip()
        assert time.monotonic() < deadline, f"the bot logged {len(lines)} SAS lines"
        await asyncio.sleep(0.1)


def record(what: str, answer: dict[str, Any]) -> None:
    """Printed under `-s` (`make element-check`): the README quotes these values."""
    print(f"\n{what}: {json.dumps(answer)}")


async def frank_sends_help(d: CvdDeployment, w: Watchers, answer: str) -> list[str]:
    """frank asks the bot for help (his client shares its room key only with devices their
    owner signed); waits for one more bot message with `answer`, then returns all of them."""

    def posts() -> list[str]:
        messages = d.team.messages(d.room_id)
        return [m.body for m in messages if m.sender == d.bot_user and answer in m.body]

    before = len(posts())
    sent = await w.frank.command("send !help")
    assert sent.get("event_id"), sent
    deadline = time.monotonic() + 30
    while len(posts()) == before:
        assert time.monotonic() < deadline, f"the bot posted no {answer!r} for frank"
        await asyncio.sleep(0.2)
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    return posts()


async def test_element_sees_a_cross_signed_bot(
    make_deployment: MakeDeployment, make_user: MakeUser, element_clients: list[ElementClient]
) -> None:
    d = await make_deployment()
    people = {name: make_user(name) for name in ("erin", "frank")}
    # erin is on the team (the bot answers verification requests only from the team).
    d.extra_team.append(people["erin"][0])
    bot = d.start_bot()
    bot.wait_for_log("cross-signing created")
    w = await watch(d, people, element_clients, d.workdir)
    bot_events, alice_events = await thread_of_one_report(d, "XSS in parking permit search")

    erin = await w.erin.report(bot_events + alice_events)
    record("cross-signed bot, erin (Element defaults)", erin)
    frank = await w.frank.report(bot_events)
    record("cross-signed bot, frank (exclude insecure devices)", frank)
    # Every message of the bot decrypts for both, in its thread, with no shield at all.
    assert len(bot_events) >= 3
    assert bot_view(erin, d) == bot_view(frank, d) == {(True, None, "NONE", None)}
    assert sum(e["thread_root"] is not None for e in erin["events"] if e["sender"] == d.bot_user)
    # Alice's nio device (an account without cross-signing, what the bot was before): red.
    alice = {
        (e["decrypted"], e["shieldColour"], e["shieldReason"])
        for e in erin["events"]
        if e["sender"] == d.team.user_id
    }
    assert alice == {(True, "RED", "UNSIGNED_DEVICE")}
    unverified = {
        "signedByOwner": True,
        "crossSigningVerified": False,
        "localVerified": False,
        "isVerified": False,
    }
    assert erin["bot_device"] == frank["bot_device"] == unverified
    assert erin["bot_user"] == {
        "isVerified": False,
        "isCrossSigningVerified": False,
        "wasCrossSigningVerified": False,
        "needsUserApproval": False,
    }
    # frank's client shares its room key with the bot: his command is answered.
    helps = await frank_sends_help(d, w, "list the commands")
    assert len(helps) == 2
    assert not [m for m in d.team.messages(d.room_id) if "could not decrypt" in m.body]
    # ... but not with alice's nio device, which its owner never signed.
    assert [e for e in d.team.undecryptable(d.room_id) if e.sender == w.frank_user]

    # Pinning the identity Element saw first changes nothing: it was pinned already.
    pinned = await w.erin.command("pin")
    record("erin pins the bot's identity", pinned)
    assert pinned["error"] is None
    assert pinned["bot_device"] == erin["bot_device"] and pinned["bot_user"] == erin["bot_user"]
    # erin verifies the bot's user by emoji. First as Element's "Verify" on the bot's
    # profile does: a new direct chat, the bot invited, the request sent at once. The bot
    # joins (an invite to a direct chat from a team member) and answers; erin presses "They
    # don't match": a cancel, nothing changes.
    shown = await w.erin.command("sas-start dm")
    record("erin starts a verification in a new direct chat; the bot is ready; her SAS", shown)
    assert shown["room_id"] != d.room_id
    bot.wait_for_log(f"joined {shown['room_id']} on the invite of {w.erin.ready['user']}")
    assert await sas_line(bot, 1) == element_sas(shown)
    refused = await w.erin.command("sas-mismatch")
    record("erin: they don't match", refused)
    assert (refused["verified"], refused["cancellation"]) == (False, "m.mismatched_sas")
    bot.wait_for_log("cancelled by them: m.mismatched_sas")
    assert refused["bot_user"]["isVerified"] is False
    assert refused["bot_device"]["isVerified"] is False
    assert "verified by" not in bot.log_since_start()

    # Then in the case room (any room both are in works), and the SAS matches.
    started = time.monotonic()
    shown = await w.erin.command("sas-start")
    record("erin starts again in the case room; her SAS", shown)
    # What the operator reads aloud from the bot's log is what erin's Element shows.
    logged = await sas_line(bot, 2)
    print(f"\nthe bot's log line: {logged}")
    assert logged == element_sas(shown)
    confirmed = await w.erin.command("sas-confirm")
    record("erin: they match", confirmed)
    assert confirmed["verified"] is True and confirmed["phase"] == "Done", confirmed
    bot.wait_for_log(f"verified by {w.erin.ready['user']} (device {w.erin.ready['device']})")
    # Her client signs the bot's master key with her user-signing key: the bot's user and
    # then its device count as verified.
    status, seconds = await until_status(
        w.erin, lambda s: bool(s["bot_user"]["isVerified"] and s["bot_device"]["isVerified"])
    )
    record(
        f"erin verified the bot by emoji ({time.monotonic() - started:.1f} s from request to "
        f"verified, {seconds:.1f} s after done)",
        status,
    )
    assert status["bot_user"] == {
        "isVerified": True,
        "isCrossSigningVerified": True,
        "wasCrossSigningVerified": True,
        "needsUserApproval": False,
    }
    # The device is verified both ways: by the SAS itself (local) and through the master key.
    assert status["bot_device"] == {
        "signedByOwner": True,
        "crossSigningVerified": True,
        "localVerified": True,
        "isVerified": True,
    }
    after = await w.erin.report(bot_events)
    record("erin after verifying", after)
    # Element's event shield has no green: a verified sender's messages show none, as before.
    assert bot_view(after, d) == {(True, None, "NONE", None)}


async def test_element_before_and_after_the_bot_signs_its_device(
    make_deployment: MakeDeployment, make_user: MakeUser, element_clients: list[ElementClient]
) -> None:
    """Before: the account has cross-signing keys the bot does not hold, so its device is
    not signed by its owner. After: `cvdbot cross-sign --reset`."""
    d = await make_deployment()
    token = d.synapse.login(d.bot_user, d.bot_password)
    foreign = CrossSigningKeys.generate()
    path = "/_matrix/client/v3/keys/device_signing/upload"
    # The first upload needs no password (Synapse asks for it only to replace keys).
    status_code, answer = http(d.synapse, "POST", path, token, foreign.upload_body(d.bot_user))
    assert status_code == 200, answer
    bot = d.start_bot()
    bot.wait_for_log("cross-signing keys this bot does not hold")
    people = {name: make_user(name) for name in ("erin", "frank")}
    w = await watch(d, people, element_clients, d.workdir)
    bot_events, _ = await thread_of_one_report(d, "SQL injection in the waste calendar")

    erin = await w.erin.report(bot_events)
    record("unsigned bot device, erin (Element defaults)", erin)
    frank = await w.frank.report(bot_events)
    record("unsigned bot device, frank (exclude insecure devices)", frank)
    assert bot_view(erin, d) == {(True, None, "RED", "UNSIGNED_DEVICE")}
    assert {e["decrypted"] for e in frank["events"]} == {False}
    unsigned = {
        "signedByOwner": False,
        "crossSigningVerified": False,
        "localVerified": False,
        "isVerified": False,
    }
    assert erin["bot_device"] == frank["bot_device"] == unsigned
    # frank's client withholds its room key from the bot: one notice naming his device.
    notices = await frank_sends_help(d, w, "could not decrypt")
    assert len(notices) == 1 and w.frank.ready["device"] in notices[0], notices

    # The operator runs `cvdbot cross-sign --reset`: the bot's own keys, its device signed.
    bot.stop()
    reset = cross_sign_cli(d, "--reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    d.start_bot()
    status, seconds = await until_status(w.erin, lambda s: bool(s["bot_device"]["signedByOwner"]))
    record(f"after --reset, erin ({seconds:.1f} s later)", status)
    # Element saw the other master key first: the new one needs the user's approval.
    assert status["bot_device"] == {**unsigned, "signedByOwner": True}
    assert status["bot_user"] == {
        "isVerified": False,
        "isCrossSigningVerified": False,
        "wasCrossSigningVerified": False,
        "needsUserApproval": True,
    }
    erin_after = await w.erin.report(bot_events)
    record("after --reset, erin's view of the same messages", erin_after)
    frank_after = await w.frank.report(bot_events)
    record("after --reset, frank's view of the same messages", frank_after)
    # The red shield is gone, and frank now decrypts the messages he could not before.
    assert bot_view(erin_after, d) == bot_view(frank_after, d) == {(True, None, "NONE", None)}
    pinned = await w.erin.command("pin")
    record("after --reset, erin accepts the new identity (pin)", pinned)
    assert pinned["error"] is None and pinned["bot_user"]["needsUserApproval"] is False
    # And frank's client shares its room key with the bot again: his command is answered.
    helps = await frank_sends_help(d, w, "list the commands")
    assert len(helps) == 2  # alice's !help before, frank's now
    notices = [m.body for m in d.team.messages(d.room_id) if "could not decrypt" in m.body]
    assert len(notices) == 1
