"""Fixtures for end-to-end tests against the real servers; marks every test here `integration`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import MakePerson
from tests.harness.bot import CvdDeployment, deploy
from tests.harness.dovecot import DovecotServer
from tests.harness.smtp import SmtpServer
from tests.harness.synapse import SynapseServer

MakeDeployment = Callable[..., Awaitable[CvdDeployment]]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Marked here rather than per file, so a new integration test cannot forget it and
    # `pytest -m "not integration"` stays exactly the unit tests. The hook sees every
    # collected item of the session, hence the path check.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(loop_scope="session")
async def make_deployment(
    synapse: SynapseServer,
    dovecot: DovecotServer,
    smtp: SmtpServer,
    make_person: MakePerson,
    harness_root: Path,
) -> AsyncIterator[MakeDeployment]:
    """`await make_deployment()`: a team member, an invited bot account, mailbox, gpg key.

    The bot process is not started; call `deployment.start_bot()`. It is killed at the end.
    """
    made: list[CvdDeployment] = []

    async def make(*, encrypted: bool = True) -> CvdDeployment:
        team = await make_person("alice")
        workdir = harness_root / "bots" / uuid.uuid4().hex[:8]
        deployment = await deploy(workdir, synapse, dovecot, smtp, team, encrypted=encrypted)
        made.append(deployment)
        return deployment

    yield make
    for deployment in made:
        deployment.shutdown()
