"""Named crash points for the crash-safety tests and the fault-injection suite.

`CVDBOT_FAILPOINTS=intake.after_commit,command.after_commit` makes the process kill itself
with SIGKILL when it reaches one of those points, exactly as a power cut would. Unset (the
normal case) a failpoint costs one set lookup.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Mapping

log = logging.getLogger(__name__)

KNOWN = frozenset(
    {
        "intake.before_store",  # a mail is read and decrypted, nothing stored yet
        "intake.after_commit",  # a report is stored, its thread not yet posted
        "command.after_commit",  # a command is accepted, its reply and mail not yet sent
        "outbox.after_send",  # a message left the process, not yet marked sent
        "outbox.after_send.matrix",  # the same, only for a Matrix post
        "outbox.after_send.mail",  # the same, only for a mail
    }
)


class Failpoints:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        raw = (environ if environ is not None else os.environ).get("CVDBOT_FAILPOINTS", "")
        self.armed = frozenset(name.strip() for name in raw.split(",") if name.strip())
        unknown = self.armed - KNOWN
        if unknown:
            raise ValueError(f"unknown failpoints: {', '.join(sorted(unknown))}")

    def hit(self, name: str) -> None:
        if name in self.armed:
            log.warning("failpoint %s reached: killing the process", name)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
