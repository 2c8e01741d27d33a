"""A real SMTP server (aiosmtpd) on a fixed loopback port that records every message it accepts.

It can be stopped and started again on the same port, so tests can simulate an outage.
No AUTH, no TLS: loopback only.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.harness.ports import free_port


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message: the envelope as the client gave it and the bytes after DATA."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _RecordingHandler:
    def __init__(self, sink: SmtpServer) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        content = envelope.content
        raw = content if isinstance(content, bytes) else (content or "").encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self._sink._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                message=parsed,
            )
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd in its own thread on 127.0.0.1:<port>, the port fixed at construction."""

    host = "127.0.0.1"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._messages: list[ReceivedMail] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def messages(self) -> list[ReceivedMail]:
        """A copy of everything received so far, in arrival order."""
        with self._cond:
            return list(self._messages)

    def start(self) -> None:
        """Listen on the fixed port; after stop() this rebinds the same port."""
        if self._controller is not None:
            return
        # A Controller closes its event loop when stopped, so every start needs a new one.
        controller = Controller(
            _RecordingHandler(self),
            hostname=self.host,
            port=self.port,
            ready_timeout=10.0,
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Close the listener and drop open connections: clients now get connection refused."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived; return them all (a copy).

        Raises TimeoutError with what did arrive, so a failing test shows the difference.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._timeout_message(count, timeout))
                self._cond.wait(remaining)
            return list(self._messages)

    async def wait_for_async(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Like wait_for, without blocking the event loop (the code under test runs on it)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                if len(self._messages) >= count:
                    return list(self._messages)
            if time.monotonic() >= deadline:
                with self._cond:
                    raise TimeoutError(self._timeout_message(count, timeout))
            await asyncio.sleep(0.02)

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _record(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()

    def _timeout_message(self, count: int, timeout: float) -> str:
        subjects = [str(m.message.get("Subject", "")) for m in self._messages]
        return (
            f"expected {count} mail(s) on {self.host}:{self.port} within {timeout:.1f} s, "
            f"got {len(self._messages)}: {subjects}"
        )
