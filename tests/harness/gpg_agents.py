"""Stopping the gpg-agents that tests, the demo and the benchmarks leave behind.

gpg starts one agent per GNUPGHOME on first use and the agent outlives the process that
started it; every throw-away home therefore needs its agent stopped when the home goes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_PROC = Path("/proc")


def agent_homes(root: Path) -> set[Path]:
    """The gpg homes under ``root`` that have a running gpg-agent (read from /proc)."""
    base = root.resolve()
    homes: set[Path] = set()
    if not _PROC.is_dir():
        return homes
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # the process ended while we looked, or is not ours to read
        if not argv or Path(argv[0].decode(errors="replace")).name != "gpg-agent":
            continue
        for flag, value in zip(argv, argv[1:], strict=False):
            if flag == b"--homedir":
                home = Path(value.decode(errors="surrogateescape"))
                if home.resolve().is_relative_to(base):
                    homes.add(home)
    return homes


def stop_agents_under(root: Path) -> int:
    """Stop every gpg-agent (and other gpg daemon) of a gpg home under ``root``.

    Returns how many homes had an agent. Agents of homes elsewhere are left alone: other
    test runs and the user's own gpg share the machine.
    """
    homes = agent_homes(root)
    for home in homes:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    return len(homes)
