"""Faults around a healthy bot, on the real servers: the mailbox restarted, renumbered or
gone silent; the homeserver down at start, behind a proxy answering 502, silent mid-sync;
the access token lost. After each, the bot works again by itself and is counted exactly:
one case and one thread per report, one answer per command, one mail per promise.

Stopping the session's shared Dovecot or Synapse is always undone in a `finally`.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import sqlite3
import time

from tests.harness.bot import IMAP_LINE, READY_LINE, BotProcess, CvdDeployment
from tests.harness.dovecot import DovecotServer
from tests.harness.person import ReceivedMessage
from tests.harness.ports import free_port
from tests.harness.published_keys import check_published
from tests.harness.quiescence import wait_quiescent_and_seen
from tests.harness.synapse import SynapseServer
from tests.harness.tcp_proxy import TcpProxy
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report


def count(d: CvdDeployment, sql: str, *args: object) -> int:
    with sqlite3.connect(d.db_path) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def roots(d: CvdDeployment) -> list[ReceivedMessage]:
    return [
        m for m in d.team.messages(d.room_id) if m.thread_root is None and "New report" in m.body
    ]


async def wait_root(d: CvdDeployment, subject: str, timeout: float = 60) -> ReceivedMessage:
    return await d.team.wait_for_message(
        d.room_id,
        lambda m: m.thread_root is None and "New report" in m.body and subject in m.body,
        timeout=timeout,
    )


async def wait_log(bot: BotProcess, text: str, occurrences: int = 1, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while bot.log_since_start().count(text) < occurrences:
        assert bot.process is not None and bot.process.poll() is None, (
            f"cvdbot exited ({bot.process.returncode if bot.process else None}):\n" + bot.log_tail()
        )
        assert time.monotonic() < deadline, f"no {text!r} x{occurrences}:\n{bot.log_tail()}"
        await asyncio.sleep(0.1)


def session(d: CvdDeployment) -> dict[str, str]:
    data: dict[str, str] = json.loads((d.store_path / "session.json").read_text())
    return data


def recreate_folder(dovecot: DovecotServer, d: CvdDeployment, folder: str) -> None:
    """DELETE and CREATE the folder: the server gives it a new UIDVALIDITY."""
    with imaplib.IMAP4(dovecot.host, dovecot.port, timeout=30) as imap:
        imap.login(d.mailbox, d.mailbox_password)
        assert imap.delete(folder)[0] == "OK"
        assert imap.create(folder)[0] == "OK"
        imap.logout()


async def test_mailbox_restarted_renumbered_and_silent_loses_no_mail(
    make_deployment: MakeDeployment, dovecot: DovecotServer
) -> None:
    d = await make_deployment()
    folder = "Reports"
    # The bot reaches Dovecot through a proxy that can make the connection go silent.
    proxy = TcpProxy(dovecot.host, dovecot.port)
    proxy.start()
    d.config_overrides["imap"] = {"port": proxy.port, "folder": folder, "idle_renew_seconds": 2}

    def append(raw: bytes) -> None:
        dovecot.append(d.mailbox, d.mailbox_password, raw, folder=folder)

    try:
        first = report(subject="Open redirect on login", body=ENGLISH_BODY)
        append(first)
        bot = d.start_bot()
        await wait_root(d, "Open redirect on login")

        # 1. Dovecot stopped and started: the bot notices the closed connection at once.
        try:
            dovecot.stop()
            await asyncio.sleep(1)
        finally:
            dovecot.start()
        restarted = time.monotonic()
        # Appended while the bot is still reconnecting: read on reconnect from the stored UID.
        append(report(subject="Sent during the mailbox restart", body=ENGLISH_BODY))
        await wait_log(bot, IMAP_LINE, occurrences=2, timeout=30)
        reconnected_after = time.monotonic() - restarted
        append(report(subject="Sent after the mailbox restart", body=ENGLISH_BODY))
        await wait_root(d, "Sent during the mailbox restart")
        await wait_root(d, "Sent after the mailbox restart")
        assert "IMAP connection lost" in bot.log_since_start()
        assert reconnected_after < 20, f"reconnected {reconnected_after:.1f} s after the restart"

        # 2. The folder recreated (new UIDVALIDITY), the first report in it again with the
        # same Message-ID, and a new one: the folder is read again, nothing doubles.
        recreate_folder(dovecot, d, folder)
        append(first)
        append(report(subject="Sent into the recreated folder", body=ENGLISH_BODY))
        await wait_root(d, "Sent into the recreated folder")
        await wait_log(bot, f"UIDVALIDITY of {folder} changed")

        # 3. Silence: the connection stays open but nothing passes (a NAT forgot it). The
        # IDLE renewal gets no answer; the bot reconnects when the network is back.
        connects = bot.log_since_start().count(IMAP_LINE)
        proxy.set_mode("freeze")
        try:
            append(report(subject="Sent while the connection was silent", body=ENGLISH_BODY))
            await wait_log(bot, "no answer to DONE", timeout=20)
        finally:
            proxy.set_mode("forward")
        await wait_log(bot, IMAP_LINE, occurrences=connects + 1, timeout=60)
        await wait_root(d, "Sent while the connection was silent")

        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        assert count(d, "SELECT COUNT(*) FROM cases") == 5
        assert count(d, "SELECT COUNT(*) FROM mails WHERE direction = 'in'") == 5
        assert len(roots(d)) == 5, [m.body.splitlines()[0] for m in roots(d)]
        assert d.team.undecryptable(d.room_id) == []
        assert bot.process is not None and bot.process.poll() is None
    finally:
        proxy.close()


def delete_device_signature(synapse: SynapseServer, user_id: str, device_id: str) -> int:
    """The self-signing key's signature of a device gone from the homeserver (Synapse keeps it
    even when the device is deleted; a server restored from an older backup, or another
    homeserver, may not). Only with Synapse stopped."""
    assert not synapse.running
    with sqlite3.connect(synapse.workdir / "homeserver.db") as conn:
        deleted = conn.execute(
            "DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = ?"
            " AND target_device_id = ?",
            (user_id, device_id),
        ).rowcount
    return int(deleted)


def delete_access_tokens(synapse: SynapseServer, user_id: str) -> int:
    """What a homeserver admin's token purge does: the device and its keys stay, its access
    tokens are gone. Only with Synapse stopped (it caches tokens in memory)."""
    assert not synapse.running
    with sqlite3.connect(synapse.workdir / "homeserver.db") as conn:
        deleted = conn.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,)).rowcount
    return int(deleted)


async def test_homeserver_down_at_start_502_lost_token_and_silent_sync(
    make_deployment: MakeDeployment, synapse: SynapseServer
) -> None:
    d = await make_deployment()
    proxy = TcpProxy("127.0.0.1", synapse.port)
    proxy.start()
    # stall limit 9 s: the sync long-polls 3 s, so a silent sync is abandoned after 13 s.
    d.config_overrides["matrix"] = {"homeserver": proxy.url}
    d.config_overrides["monitoring"] = {"stall_after_seconds": 9}
    try:
        bot = d.start_bot()
        device = session(d)["device_id"]
        keys = check_published(d, d.team)
        d.append_mail(report(subject="Exposed admin panel", body=ENGLISH_BODY))
        root = await wait_root(d, "Exposed admin panel")
        assert bot.stop() == 0

        # The homeserver goes away, and with it the bot's access token; the bot is started
        # while nothing listens (connection refused), then a proxy answers 502, then
        # Synapse is back. The bot waits it out, logs in again as the same device, works.
        old_token = session(d)["access_token"]
        try:
            synapse.stop()
            assert delete_access_tokens(synapse, d.bot_user) == 1
            assert delete_device_signature(synapse, d.bot_user, device) == 1
            proxy.stop()
            d.start_bot(wait=False)
            await wait_log(bot, "the homeserver may be down or restarting", timeout=30)
            assert "ClientConnectorError" in bot.log_since_start()
            proxy.start()
            await wait_log(bot, "HTTP 502", timeout=30)
        finally:
            synapse.start()
        await asyncio.to_thread(bot.wait_for_log, READY_LINE, 90)
        log = bot.log_since_start()
        assert "no longer accepts the access token (HTTP 401, M_UNKNOWN_TOKEN)" in log
        assert f"logged in again to Matrix as the same device {device}" in log
        # The device's signature went too: the bot signed it again, with the same keys.
        assert log.count(f"signed device {device} with the self-signing key") == 1, log
        assert check_published(d, d.team) == keys
        assert session(d)["device_id"] == device and session(d)["access_token"] != old_token
        assert d.bot_devices() == [device]
        await d.team.send(d.room_id, "!status", thread_root=root.event_id)
        await d.team.wait_for_message(
            d.room_id, lambda m: m.thread_root == root.event_id and ": new" in m.body
        )

        # A sync that never returns (the proxy goes silent) is abandoned and retried.
        proxy.set_mode("freeze")
        try:
            await wait_log(bot, "Matrix sync failed (no answer within 13 s", timeout=30)
        finally:
            proxy.set_mode("forward")
        await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
        await d.team.wait_for_message(
            d.room_id, lambda m: m.thread_root == root.event_id and "acknowledged by" in m.body
        )
        await d.smtp.wait_for_async(1, timeout=30)
        await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
        assert bot.process is not None and bot.process.poll() is None, "never exited"
        assert len(roots(d)) == 1
        thread = [m for m in d.team.messages(d.room_id) if m.thread_root == root.event_id]
        assert sum("acknowledged by" in m.body for m in thread) == 1
        assert sum(": new" in m.body for m in thread) == 1
        assert len(d.smtp.messages) == 1
        assert d.team.undecryptable(d.room_id) == []
    finally:
        proxy.close()


async def test_sigterm_ends_a_bot_still_waiting_for_its_homeserver(
    make_deployment: MakeDeployment,
) -> None:
    """A service manager stopping the bot during a homeserver outage at start: it must not
    wait for the homeserver first."""
    d = await make_deployment()
    d.config_overrides["matrix"] = {"homeserver": f"http://127.0.0.1:{free_port()}"}
    bot = d.start_bot(wait=False)
    await wait_log(bot, "the homeserver may be down or restarting", timeout=30)
    began = time.monotonic()
    assert bot.stop(timeout=15) == 0
    assert time.monotonic() - began < 5
    assert "cvdbot stopped" in bot.log_since_start()


async def test_logged_out_token_logs_in_again_as_the_same_device_or_exits_78(
    make_deployment: MakeDeployment, synapse: SynapseServer
) -> None:
    """The homeserver admin deletes the bot's device through the admin API: its access tokens
    and device keys are gone. The bot logs in again as the same device and uploads the same
    keys; the device is signed by its self-signing key as before."""
    d = await make_deployment()
    d.config_overrides["monitoring"] = {"stall_after_seconds": 9}
    bot = d.start_bot()
    device = session(d)["device_id"]
    signed = f"signed device {device} with the self-signing key"
    assert bot.log_since_start().count(signed) == 1, "signed at its first start"
    keys = check_published(d, d.team)
    d.append_mail(report(subject="Directory listing on uploads", body=ENGLISH_BODY))
    await wait_root(d, "Directory listing on uploads")

    synapse.delete_device(d.bot_user, device)
    await wait_log(bot, f"logged in again to Matrix as the same device {device}", timeout=30)
    assert d.bot_devices() == [device]
    # Synapse keeps the self-signing key's signature of a deleted device (it deletes the
    # device's keys, not the signatures on them), so the same keys uploaded again are signed
    # as before: the bot checks and uploads nothing. (The signature gone: the test above.)
    log = bot.log_since_start()
    assert log.count(signed) == 1 and log.count("cross-signing verified") == 1, log
    assert check_published(d, d.team) == keys
    # The bot posts again, as the same device, and the team decrypts it. (A command from a
    # matrix-nio client is not checked here: nio marks a deleted device deleted for good and
    # never encrypts to it again when it reappears; the token purge in the test above keeps
    # the device, and a command is answered there.)
    d.append_mail(report(subject="Posted after the device was deleted", body=ENGLISH_BODY))
    await wait_root(d, "Posted after the device was deleted")
    await wait_quiescent_and_seen(d.db_path, d.team, d.room_id)
    assert len(roots(d)) == 2 and count(d, "SELECT COUNT(*) FROM cases") == 2
    assert d.team.undecryptable(d.room_id) == []
    assert bot.stop() == 0

    # Without a password the bot cannot log in again: it says so and exits 78.
    synapse.delete_device(d.bot_user, device)
    d.config_overrides["matrix"] = {"password": ""}
    d.start_bot(wait=False)
    assert bot.wait_exit(timeout=60) == 78
    assert "matrix.password is empty" in bot.log_since_start()
    # A wrong password is a configuration error too.
    d.config_overrides["matrix"] = {"password": "not-the-password"}
    d.start_bot(wait=False)
    assert bot.wait_exit(timeout=60) == 78
    assert "Matrix login refused (HTTP 403, M_FORBIDDEN)" in bot.log_since_start()
