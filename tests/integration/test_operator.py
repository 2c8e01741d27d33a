"""Day one for an operator, on the real servers: `cvdbot doctor` (all ok, then each fault
fails exactly its own line), /healthz and /metrics of the running bot while Synapse stops
and returns, and a backup taken during a burst that restores into the same device.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.bot import CvdDeployment
from tests.harness.ports import free_port
from tests.harness.quiescence import outbox_counts, wait_quiescent, wait_quiescent_and_seen
from tests.harness.synapse import SynapseServer
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY, report

CHECK_LINE = re.compile(r"^(ok|warning|failed)\s+(\S+(?: room)?)\s")


def doctor(d: CvdDeployment, *, env: dict[str, str] | None = None, **overrides: dict) -> dict:
    """Run `cvdbot doctor` on the deployment's config with section overrides: {name: verdict}."""
    config = d.config()
    for section, values in overrides.items():
        config[section].update(values)
    path = d.workdir / "doctor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=d.workdir,
        env={**os.environ, **(env or {})},
        check=False,
    )
    verdicts = {}
    for line in result.stdout.splitlines():
        match = CHECK_LINE.match(line)
        if match:
            verdicts[match.group(2)] = match.group(1)
    verdicts["exit"] = result.returncode
    verdicts["output"] = result.stdout + result.stderr
    return verdicts


def verdicts_of(result: dict) -> dict[str, str]:
    """The doctor's lines only: {check name: verdict}."""
    return {name: verdict for name, verdict in result.items() if name not in ("exit", "output")}


def failed(verdicts: dict) -> list[str]:
    return sorted(name for name, verdict in verdicts.items() if verdict == "failed")


def bot_api(d: CvdDeployment, method: str, path: str) -> dict:
    """A client-server API call as the bot's account, with its stored token."""
    token = json.loads((d.store_path / "session.json").read_text())["access_token"]
    request = urllib.request.Request(
        f"{d.synapse.url}{path}",
        data=b"{}" if method == "POST" else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def unprotected_key(home: Path) -> str:
    home.mkdir(mode=0o700, parents=True)
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
         "--passphrase", "", "--quick-gen-key", "Open key <security@haaksbergen.example>",
         "ed25519", "sign", "never"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    listing = subprocess.run(
        ["gpg", "--homedir", str(home), "--with-colons", "-K"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


async def test_doctor_is_all_ok_and_each_fault_fails_exactly_its_line(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    d.start_bot().stop()  # the first start creates the bot's device
    plain = await d.team.create_plain_room(invite=[d.bot_user], name="not for cases")
    # The bot only accepts invites to its configured rooms: join this one as the account.
    bot_api(d, "POST", f"/_matrix/client/v3/join/{quote(plain, safe='')}")
    assert plain in bot_api(d, "GET", "/_matrix/client/v3/joined_rooms")["joined_rooms"]
    elsewhere = await d.team.create_encrypted_room(invite=[], name="the bot is not here")

    healthy = doctor(d)
    assert healthy["exit"] == 0, healthy["output"]
    # Every line is ok: no warning either, and no line the pattern did not read.
    lines = [line for line in healthy["output"].splitlines() if line.strip()]
    count = len(verdicts_of(healthy))
    assert lines[count:] == [f"{count} checks: 0 failed, 0 warnings"], healthy["output"]
    assert set(verdicts_of(healthy).values()) == {"ok"}, healthy["output"]
    assert {"homeserver", "login", "case room", "imap", "smtp", "gpg", "calendar",
            "database"} <= set(verdicts_of(healthy)), healthy["output"]  # fmt: skip

    faults = {
        "imap": doctor(d, env={"CVDBOT_IMAP__PASSWORD": "wrong"}),
        "smtp": doctor(d, smtp={"port": free_port()}),
        "gpg": doctor(
            d,
            pgp={
                "gnupg_home": str(d.workdir / "open-gnupg"),
                "key_fingerprint": unprotected_key(d.workdir / "open-gnupg"),
                "passphrase": "anything",
            },
        ),
    }
    unencrypted = doctor(d, matrix={"case_room": plain})
    absent = doctor(d, matrix={"case_room": elsewhere})
    for name, verdicts in faults.items():
        assert verdicts["exit"] == 1, verdicts["output"]
        assert failed(verdicts) == [name], verdicts["output"]
    assert "has no passphrase" in faults["gpg"]["output"]
    assert unencrypted["exit"] == 1, unencrypted["output"]
    assert failed(unencrypted) == ["case room"], unencrypted["output"]
    assert "not end-to-end encrypted" in unencrypted["output"]
    assert absent["exit"] == 1, absent["output"]
    assert failed(absent) == ["case room"], absent["output"]
    assert "not in" in absent["output"]
    # Nothing changed: the same single device, the mailbox untouched by the checks.
    assert len(d.bot_devices()) == 1


def outbox_pending(db_path: Path, channel: str) -> int:
    with sqlite3.connect(db_path) as conn:
        query = "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND channel = ?"
        return int(conn.execute(query, (channel,)).fetchone()[0])


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


async def wait_status(url: str, status: int, within: float) -> tuple[float, str]:
    """Probe every half second until `status`: the seconds it took and the body."""
    start = time.monotonic()
    while True:
        code, body = await asyncio.to_thread(fetch, url)
        if code == status:
            return time.monotonic() - start, body
        assert time.monotonic() - start < within, f"{url} still {code}: {body}"
        await asyncio.sleep(0.5)


async def test_healthz_follows_synapse_and_metrics_parse_without_content(
    make_deployment: MakeDeployment, synapse: SynapseServer
) -> None:
    d = await make_deployment()
    port = free_port()
    stall = 6
    d.config_overrides["monitoring"] = {"listen": f"127.0.0.1:{port}", "stall_after_seconds": stall}
    d.config_overrides["logging"] = {"format": "json"}
    d.start_bot()
    base = f"http://127.0.0.1:{port}"
    await wait_status(f"{base}/healthz", 200, 30)
    subject = "Secret path traversal in archive"
    d.append_mail(report(subject=subject, body=ENGLISH_BODY, sender="Ria <ria@finder.example>"))
    await d.team.wait_for_message(d.room_id, lambda m: subject in m.body, timeout=60)

    code, text = await asyncio.to_thread(fetch, f"{base}/metrics")
    assert code == 200
    families = {family.name: family for family in text_string_to_metric_families(text)}
    cases = {s.labels["state"]: s.value for s in families["cvdbot_cases"].samples}
    assert cases["new"] == 1
    assert {"cvdbot_outbox_backlog", "cvdbot_overdue_promises", "cvdbot_mails_sent",
            "cvdbot_decrypt_failures", "cvdbot_last_activity_age_seconds",
            "cvdbot_outbox_oldest_age_seconds"} <= set(families)  # fmt: skip
    for secret in ("Secret path", "ria@finder.example", "Ria", "traversal"):
        assert secret not in text

    # stop() returns once Synapse has exited: the last completed sync is no later than that,
    # so /healthz must fail within the limit; 4 s covers the probe's half-second step and
    # the probe itself on a loaded CI machine, and is still far from the 20 s waited.
    synapse.stop()
    try:
        went_down, body = await wait_status(f"{base}/healthz", 503, stall + 20)
    finally:
        synapse.start()
    assert went_down <= stall + 4, f"unhealthy only after {went_down:.1f} s"
    failed = [line.split(":")[0] for line in body.splitlines() if line.startswith("FAILED")]
    # The outbox may fail too (posts queued just before the stop cannot leave); the mailbox
    # has nothing to do with the homeserver.
    assert "FAILED sync" in failed and "FAILED imap" not in failed, body
    await wait_status(f"{base}/healthz", 200, 60)

    d.bot.stop()  # type: ignore[union-attr]
    log_lines = [line for line in d.bot.log_since_start().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
    assert log_lines and all(json.loads(line)["level"] for line in log_lines)
    everything = d.bot.log_since_start()  # type: ignore[union-attr]
    for secret in ("Secret path", "ria@finder.example", "traversal"):
        assert secret not in everything


async def test_backup_during_a_burst_restores_the_same_device_and_sends_nothing_twice(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    bot = d.start_bot()
    device = json.loads((d.store_path / "session.json").read_text())["device_id"]
    burst = 12
    for number in range(burst):
        d.append_mail(report(subject=f"Burst report {number:02d}", body=ENGLISH_BODY))
    first = await d.team.wait_for_message(d.room_id, lambda m: "Burst report" in m.body, timeout=60)
    # A receipt mail that left before the backup: the backup knows it was sent.
    await d.team.send(d.room_id, "!ack", thread_root=first.event_id)
    await d.smtp.wait_for_async(1, timeout=30)
    while outbox_pending(d.db_path, "mail"):  # marked sent just after SMTP took it
        await asyncio.sleep(0.05)
    backup_dir = d.workdir / "backup"
    made = subprocess.run(
        [sys.executable, "-m", "bot", "backup", "--config", str(d.config_path), str(backup_dir)],
        capture_output=True, text=True, timeout=60, cwd=d.workdir, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert oct(backup_dir.stat().st_mode & 0o777) == "0o700"
    # The backup is of a moment inside the burst: not every report is a case yet, or posts
    # and mails were still waiting to be sent.
    with sqlite3.connect(backup_dir / "cvdbot.sqlite3") as conn:
        backed_cases = conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
        backed_pending = conn.execute(
            "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
        ).fetchone()[0]
    assert backed_cases < burst or backed_pending > 0, "the backup was taken after the burst"
    # Let the original bot finish the burst, then lose everything and restore.
    await wait_quiescent(d.db_path, timeout=90)
    sent_before = outbox_counts(d.db_path)["sent"]
    bot.stop()
    shutil.rmtree(d.workdir / "data")
    restored = subprocess.run(
        [sys.executable, "-m", "bot", "restore", "--config", str(d.config_path), str(backup_dir)],
        capture_output=True, text=True, timeout=60, cwd=d.workdir, check=False,
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    d.start_bot()
    assert json.loads((d.store_path / "session.json").read_text())["device_id"] == device
    assert d.bot_devices() == [device]
    # Quiescent: the restored bot has taken in the rest of the burst and sent what the
    # backup held pending.
    deadline = time.monotonic() + 90
    while True:
        with sqlite3.connect(d.db_path) as conn:
            cases = conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0]
        if cases == burst:
            break
        assert time.monotonic() < deadline, f"{cases} cases"
        await asyncio.sleep(0.5)
    counts = await wait_quiescent_and_seen(d.db_path, d.team, d.room_id, timeout=90)
    assert counts["sent"] == sent_before, "the restored bot has the same outbox, all sent"
    roots = [m for m in d.team.messages(d.room_id) if "New report" in m.body]
    subjects = sorted(re.search(r"Burst report \d\d", m.body).group(0) for m in roots)  # type: ignore[union-attr]
    assert subjects == [f"Burst report {n:02d}" for n in range(burst)], "one root per report"
    # Nothing twice, counting every post of the bot (each thread's posts are distinct) and
    # every mail SMTP accepted.
    posts = [m for m in d.team.messages(d.room_id) if m.sender == d.bot_user]
    repeated = [key for key, n in Counter((m.thread_root, m.body) for m in posts).items() if n > 1]
    assert repeated == [], repeated
    with sqlite3.connect(d.db_path) as conn:
        sent_posts = {
            row[0]
            for row in conn.execute(
                "SELECT result FROM outbox WHERE channel = 'matrix' AND state = 'sent'"
            )
        }
    assert {m.event_id for m in posts} == sent_posts
    mails = d.smtp.messages
    assert [mail.rcpt_tos for mail in mails] == [["eva@researcher.example"]]
    message_ids = Counter(mail.message["Message-ID"] for mail in mails)
    assert [mid for mid, n in message_ids.items() if n > 1] == []
    letters = Counter((tuple(mail.rcpt_tos), mail.message["Subject"]) for mail in mails)
    assert [letter for letter, n in letters.items() if n > 1] == []
    assert d.team.undecryptable(d.room_id) == []
