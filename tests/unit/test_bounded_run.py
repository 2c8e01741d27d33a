"""The wall-clock limit and the output cap of `run_bounded`, the runner of every gpg call on a
stranger's data (bot/pgp/bounded_run.py). Real processes: each one prints its own PID (the
shell `exec`s the program, so the PID stays the same) and the test checks it is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bot.pgp.bounded_run import MIB, GpgLimits, run_bounded
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_process_past_the_time_limit_is_killed_and_reported() -> None:
    # It never reads its input: the 4 MiB on stdin must not keep the runner waiting either.
    start = time.monotonic()
    run = run_bounded(
        ["sh", "-c", "echo $$ >&2; exec sleep 10"],
        b"x" * (4 * MIB),
        env=dict(os.environ),
        cap=MIB,
        timeout=0.5,
    )
    seconds = time.monotonic() - start
    assert seconds < 2.0, seconds
    assert run.exceeded == "time"
    assert run.returncode == -9, "killed"
    assert gone(int(run.stderr.split()[0]))


def test_output_past_the_cap_stops_the_process_at_once() -> None:
    start = time.monotonic()
    run = run_bounded(
        ["sh", "-c", "echo $$ >&2; exec cat /dev/zero"],
        b"",
        env=dict(os.environ),
        cap=MIB,
        timeout=30,
    )
    seconds = time.monotonic() - start
    assert seconds < 2.0, "stopped by the cap, not the time limit"
    assert run.exceeded == "output"
    assert len(run.stdout) <= MIB
    assert run.returncode == -9
    assert gone(int(run.stderr.split()[0]))


@pytest.mark.parametrize("size", [0, 1, MIB])
def test_a_run_within_the_limits_gives_all_its_output(size: int) -> None:
    """Output of exactly the cap is still within it."""
    data = os.urandom(size)
    run = run_bounded(["cat"], data, env=dict(os.environ), cap=MIB, timeout=10)
    assert (run.exceeded, run.returncode, run.stdout) == (None, 0, data)


def test_gpg_past_its_time_limit_is_killed_and_reported(tmp_path: Path) -> None:
    """Through the real gpg, stalled for real: the bot's gpg-agent socket accepts the
    connection and never answers (a hung agent), so decrypting waits until the limit."""
    home = tmp_path / "gnupg"
    setup = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
    fingerprint = setup.generate_key("CVD team", "security@haaksbergen.example", "pass")
    setup.close()
    armored = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--armor", "--trust-model", "always",
         "--recipient", fingerprint, "--encrypt"],
        input=b"A report.\n", capture_output=True, check=True,
    ).stdout  # fmt: skip
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=True)
    (home / "S.gpg-agent").unlink(missing_ok=True)
    hung_agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung_agent.bind(str(home / "S.gpg-agent"))
    hung_agent.listen(8)
    pgp = Pgp(home, fingerprint, "pass", limits=GpgLimits(timeout_seconds=0.5))
    try:
        start = time.monotonic()
        result = pgp.decrypt_raw(b"From: a@b.example\r\nSubject: x\r\n\r\n" + armored)
        seconds = time.monotonic() - start
    finally:
        hung_agent.close()
        pgp.close()
    assert seconds < 2.0, seconds
    assert result.encrypted and not result.decrypted
    assert result.error == (
        "gpg took longer than 0.5 s (limits.gpg_timeout_seconds) and was stopped"
    )
