"""Shared pytest fixtures: real Synapse, Dovecot and SMTP servers on free loopback ports.

Every server fixture is lazy: a test run that requests none of them (the unit tests)
starts nothing. Synapse and Dovecot live for the whole session; SMTP is fresh per test.
Set CVDBOT_TEST_KEEP=1 to keep the working directories (configs, logs, mail, stores).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from tests.harness.dovecot import DovecotServer
from tests.harness.gpg_agents import stop_agents_under
from tests.harness.smtp import SmtpServer
from tests.harness.synapse import SynapseServer

if TYPE_CHECKING:
    from tests.harness.person import Person

KEEP = os.environ.get("CVDBOT_TEST_KEEP") == "1"

_root_key = pytest.StashKey[Path]()
_timings_key = pytest.StashKey[dict[str, float]]()

MakeUser = Callable[[str], tuple[str, str]]
MakeMailbox = Callable[[str], tuple[str, str]]
MakePerson = Callable[..., Awaitable["Person"]]


@pytest.fixture(scope="session")
def harness_root(request: pytest.FixtureRequest) -> Iterator[Path]:
    """One directory for every server of the session.

    Not pytest's tmp_path: that lives under /tmp/pytest-of-<user> (mode 0700), which
    Dovecot's unprivileged mail processes cannot enter.
    """
    root = Path(tempfile.mkdtemp(prefix="cvdbot-test-"))
    root.chmod(0o755)
    request.config.stash[_root_key] = root
    yield root
    stop_agents_under(root)
    if not KEEP:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _stop_gpg_agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the session, stop the gpg-agent of every home made under tmp_path.

    Tests stop the agents they know about; this catches the rest (a gpg home made by code
    under test, a test that failed before its cleanup), so a run leaves no agent behind.
    """
    yield
    stop_agents_under(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def synapse(harness_root: Path, request: pytest.FixtureRequest) -> Iterator[SynapseServer]:
    """The session's homeserver; `synapse.url`, `synapse.register(...)`."""
    # CVDBOT_TEST_SYNAPSE_LOG=INFO (or DEBUG) when a test needs Synapse's side of the story.
    level = os.environ.get("CVDBOT_TEST_SYNAPSE_LOG", "WARNING")
    server = SynapseServer(harness_root / "synapse", log_level=level)
    try:
        server.start()
        _timings(request)["synapse"] = server.start_seconds or 0.0
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot(harness_root: Path, request: pytest.FixtureRequest) -> Iterator[DovecotServer]:
    """The session's IMAP server; add mailboxes with `add_user` or `make_mailbox`."""
    server = DovecotServer(harness_root / "dovecot")
    try:
        server.start()
        _timings(request)["dovecot"] = server.start_seconds or 0.0
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A fresh, running SMTP sink per test (tests may stop and start it)."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def make_user(synapse: SynapseServer) -> MakeUser:
    """`make_user("alice") -> ("@alice-1a2b3c4d:localhost", password)`, a new user each call."""

    def make(prefix: str) -> tuple[str, str]:
        localpart = f"{prefix}-{uuid.uuid4().hex[:8]}".lower()
        password = uuid.uuid4().hex
        return synapse.register(localpart, password), password

    return make


@pytest.fixture(scope="session")
def make_mailbox(dovecot: DovecotServer) -> MakeMailbox:
    """`make_mailbox("security") -> ("security-1a2b3c4d@example.org", password)` on Dovecot."""

    def make(prefix: str) -> tuple[str, str]:
        username = f"{prefix}-{uuid.uuid4().hex[:8]}@example.org"
        password = uuid.uuid4().hex
        dovecot.add_user(username, password)
        return username, password

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def make_person(
    synapse: SynapseServer, make_user: MakeUser, harness_root: Path
) -> AsyncIterator[MakePerson]:
    """`await make_person("alice", auto_join=True) -> Person`, registered, logged in, syncing.

    Every person made in a test is closed when the test ends.
    """
    from tests.harness.person import Person

    people: list[Person] = []

    async def make(prefix: str, *, auto_join: bool = False) -> Person:
        user_id, password = make_user(prefix)
        store = harness_root / "people" / user_id.strip("@").replace(":", "_")
        person = await Person.create(synapse.url, user_id, password, store, auto_join=auto_join)
        people.append(person)
        return person

    yield make
    for person in people:
        await person.close()


def _timings(request: pytest.FixtureRequest) -> dict[str, float]:
    stash = request.config.stash
    if _timings_key not in stash:
        stash[_timings_key] = {}
    return stash[_timings_key]


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    timings = config.stash.get(_timings_key, {})
    if timings:
        started = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
        terminalreporter.write_line(f"harness: server start-up: {started}")
    root = config.stash.get(_root_key, None)
    if root is not None and KEEP:
        terminalreporter.write_line(f"harness: CVDBOT_TEST_KEEP=1, kept {root}")
