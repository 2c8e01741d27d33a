"""A FETCH that keeps failing: asked again until it has failed long enough, then passed.

The real-server case (Dovecot hanging up on a mail it cannot read) is in
`tests/integration/test_imap_faults.py`; this is the rule itself, with a server that answers
NO, which the Dovecot here never does.
"""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace
from typing import Any

import aioimaplib
import pytest

import bot.mailin.imap as imap_module
from bot.mailin.imap import FetchRefused, ImapSource

REFUSED = r"UID 7: the server refused to hand it out \(NO \[UNAVAILABLE\] Mail store\? locked\)"


class RefusingServer:
    """Answers every FETCH with NO, as a server with a mail store briefly locked might."""

    def __init__(self) -> None:
        self.protocol = SimpleNamespace(closed=asyncio.Event(), goodbye="")
        self.fetches = 0

    async def uid(self, command: str, *args: str) -> aioimaplib.Response:
        assert command == "fetch"
        self.fetches += 1
        return aioimaplib.Response("NO", [b"[UNAVAILABLE] Mail store\x07 locked"])


class Intake:
    """Records what `MailIntake.unread` would quarantine and announce."""

    def __init__(self) -> None:
        self.passed: list[dict[str, Any]] = []

    async def unread(self, **kwargs: Any) -> None:
        self.passed.append(kwargs)


def source(intake: Intake) -> ImapSource:
    imap = ImapSource.__new__(ImapSource)
    imap._fetch_failed = {}
    imap._intake = intake  # type: ignore[assignment]
    return imap


async def test_a_refused_fetch_is_asked_again_then_passed_once_it_failed_long_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, intake = RefusingServer(), Intake()
    reader = source(intake)
    monkeypatch.setattr(imap_module, "FETCH_PASS_AFTER_SECONDS", 0.2)
    for _ in range(2):  # fewer than FETCH_PASS_AFTER_TRIES: the session ends, asked again
        with pytest.raises(FetchRefused, match=REFUSED):
            await reader._fetch(server, 1, 7)  # type: ignore[arg-type]
    assert intake.passed == []
    await asyncio.sleep(0.25)
    assert await reader._fetch(server, 1, 7) is None  # type: ignore[arg-type]
    [passed] = intake.passed
    assert passed["imap_uid"] == 7 and passed["uidvalidity"] == 1
    assert passed["reason"].startswith("the mail server would not hand it out (3 tries in 1 min;")
    assert "NO [UNAVAILABLE] Mail store? locked" in passed["reason"]
    assert server.fetches == 3 and reader._fetch_failed == {}


async def test_three_quick_refusals_are_not_enough_without_the_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A network that drops three FETCHes in a row within seconds does not cost a mail."""
    server, intake = RefusingServer(), Intake()
    reader = source(intake)
    for _ in range(5):
        with pytest.raises(FetchRefused):
            await reader._fetch(server, 1, 7)  # type: ignore[arg-type]
    assert intake.passed == [] and reader._fetch_failed[(1, 7)][1] == 5


async def test_a_task_left_behind_by_a_cancelled_session_is_never_logged_as_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An IDLE push wait or a FETCH left running when its session is cancelled ends later
    with its own error; asyncio would log that as an ERROR from the garbage collector (one
    such record from another test failed a CI run). Shown first without `_quiet`."""

    async def times_out() -> None:
        raise TimeoutError

    def unretrieved() -> list[str]:
        gc.collect()
        return [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]

    bare = asyncio.ensure_future(times_out())
    await asyncio.sleep(0.01)
    del bare
    assert len(unretrieved()) == 1, "the control: asyncio logs a bare task"
    caplog.clear()
    quiet = imap_module._quiet(asyncio.ensure_future(times_out()))
    await asyncio.sleep(0.01)
    assert quiet.done()
    del quiet
    assert unretrieved() == []
