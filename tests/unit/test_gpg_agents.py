"""Tests for tests/harness/gpg_agents.py: test runs stop the gpg-agents they start, only those."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.harness.gpg_agents import agent_homes, stop_agents_under


def launch_agent(home: Path) -> None:
    home.mkdir(mode=0o700, parents=True)
    subprocess.run(["gpgconf", "--homedir", str(home), "--launch", "gpg-agent"], check=True)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_stops_the_agents_under_a_root_and_leaves_others_running(tmp_path: Path) -> None:
    inside, elsewhere = tmp_path / "run" / "a" / "gnupg", tmp_path / "other" / "gnupg"
    launch_agent(inside)
    launch_agent(elsewhere)
    try:
        assert agent_homes(tmp_path / "run") == {inside}
        assert stop_agents_under(tmp_path / "run") == 1
        assert wait_until(lambda: not agent_homes(tmp_path / "run"))
        assert agent_homes(tmp_path / "other") == {elsewhere}
    finally:
        subprocess.run(["gpgconf", "--homedir", str(elsewhere), "--kill", "all"], check=False)
        subprocess.run(["gpgconf", "--homedir", str(inside), "--kill", "all"], check=False)


def test_nothing_to_stop(tmp_path: Path) -> None:
    assert stop_agents_under(tmp_path) == 0
