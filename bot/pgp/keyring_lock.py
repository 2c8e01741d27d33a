"""One lock for changing the gpg home, shared by the bot and `cvdbot backup`.

gpg appends an imported key to `pubring.kbx` in place (and updates `trustdb.gpg` in place),
so a file copy taken during a reporter-key import could hold half a key block. The bot takes
this lock around every change of its keyring (generate, import, delete: bot/pgp/gpg.py) and
the backup holds it while it copies the gpg home (bot/ops/backup.py): the copy is always of a
keyring between two changes. It is an advisory `flock` on a file in the home, so it works
across processes (the running bot, `cvdbot keys`, the MTA pipe, the backup) and threads, and
the kernel releases it when a process dies. The lock file ends in `.lock`: the backup skips it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "cvdbot-keyring.lock"


@contextmanager
def keyring_lock(home: Path) -> Iterator[None]:
    """Hold the gpg home's change lock for the duration of the block (waiting for it)."""
    fd = os.open(home / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
