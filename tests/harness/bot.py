"""cvdbot as its users run it: a real `cvdbot run` process with a config file.

`CvdDeployment` sets up what an operator would have: a bot account, an encrypted case room
made by a team member, a mailbox, an SMTP server and a gpg home with the bot's key. Plain
classes, so tests, benchmarks and `make demo` share them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from tests.harness.dovecot import DovecotServer
from tests.harness.gpg_agents import stop_agents_under
from tests.harness.person import Person
from tests.harness.smtp import SmtpServer
from tests.harness.synapse import SynapseServer

READY_LINE = "is joined and encrypted: ready"
IMAP_LINE = "IMAP connected"


class BotProcess:
    """One `python -m bot run` child process, its log in a file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self, *, failpoints: str = "", extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ)
        env.pop("CVDBOT_FAILPOINTS", None)
        if failpoints:
            env["CVDBOT_FAILPOINTS"] = failpoints
        env.update(extra_env or {})
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()

    def log_since_start(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            return handle.read().decode("utf-8", "replace")

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_since_start():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"cvdbot exited ({self.process.returncode}) before logging {text!r}:\n"
                    + self.log_tail()
                )
            time.sleep(0.05)
        raise TimeoutError(f"cvdbot did not log {text!r} in {timeout} s:\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_for_log(READY_LINE, timeout)
        self.wait_for_log(IMAP_LINE, timeout)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, as an operator's service manager would; SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError("cvdbot did not stop on SIGTERM:\n" + self.log_tail()) from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class CvdDeployment:
    """Everything one bot needs, plus the people who use it."""

    workdir: Path
    synapse: SynapseServer
    dovecot: DovecotServer
    smtp: SmtpServer
    team: Person
    bot_user: str
    bot_password: str
    room_id: str
    mailbox: str
    mailbox_password: str
    key_fingerprint: str
    managers: list[str] = field(default_factory=list)
    extra_team: list[str] = field(default_factory=list)
    config_overrides: dict[str, Any] = field(default_factory=dict)
    bot: BotProcess | None = None

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    @property
    def db_path(self) -> Path:
        return self.workdir / "data" / "cvdbot.sqlite3"

    @property
    def store_path(self) -> Path:
        return self.workdir / "data" / "matrix-store"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "matrix": {
                "homeserver": self.synapse.url,
                "user_id": self.bot_user,
                "password": self.bot_password,
                "store_path": "data/matrix-store",
                "case_room": self.room_id,
                "team": [self.team.user_id, *self.extra_team],
                "managers": self.managers,
            },
            "imap": {
                "host": "127.0.0.1",
                "port": self.dovecot.port,
                "security": "none",
                "username": self.mailbox,
                "password": self.mailbox_password,
                # Tests append mail right after the bot logs that it is ready, possibly before
                # its first look at the folder: with "now" that mail would count as history.
                "start_at": "all",
            },
            "smtp": {
                "host": "127.0.0.1",
                "port": self.smtp.port,
                "security": "none",
                "from_address": "security@haaksbergen.example",
            },
            "pgp": {
                "gnupg_home": "data/gnupg",
                "key_fingerprint": self.key_fingerprint,
                "passphrase": "bot-passphrase",
            },
            "storage": {"path": "data/cvdbot.sqlite3"},
        }
        for section, values in self.config_overrides.items():
            config.setdefault(section, {}).update(values)
        return config

    def write_config(self) -> Path:
        self.config_path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        return self.config_path

    def start_bot(self, *, failpoints: str = "", wait: bool = True) -> BotProcess:
        self.write_config()
        if self.bot is None:
            self.bot = BotProcess(self.config_path, self.workdir / "cvdbot.log")
        self.bot.start(failpoints=failpoints)
        if wait:
            self.bot.wait_ready()
        return self.bot

    def append_mail(self, raw: bytes) -> int:
        """Deliver a mail to the bot's INBOX; its IMAP UID (see quiescence.wait_mail_read)."""
        return self.dovecot.append(self.mailbox, self.mailbox_password, raw)

    def ingest_cli(self, raw: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "ingest", "--config", str(self.config_path), "-"],
            input=raw,
            capture_output=True,
            timeout=60,
            check=False,
        )

    def bot_devices(self) -> list[str]:
        """The bot account's device IDs on the homeserver, asked with its own token."""
        session = json.loads((self.store_path / "session.json").read_text())
        request = urllib.request.Request(
            f"{self.synapse.url}/_matrix/client/v3/devices",
            headers={"Authorization": f"Bearer {session['access_token']}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return [device["device_id"] for device in json.load(response)["devices"]]

    def shutdown(self) -> None:
        if self.bot is not None:
            self.bot.kill()
        # The bot's gpg home, and any other home a test made in the workdir.
        stop_agents_under(self.workdir)


def make_bot_key(gnupg_home: Path) -> str:
    # The lowest key-protection work factor: 3 s less per key and per signature in tests.
    # Production homes keep gpg's default (see bot/pgp/gpg.py).
    pgp = Pgp(gnupg_home, None, None, s2k_count=MIN_S2K_COUNT)
    return pgp.generate_key("CVD team (test)", "security@haaksbergen.example", "bot-passphrase")


async def deploy(
    workdir: Path,
    synapse: SynapseServer,
    dovecot: DovecotServer,
    smtp: SmtpServer,
    team: Person,
    *,
    encrypted: bool = True,
) -> CvdDeployment:
    """A bot account invited into a room the team member made (encrypted unless told)."""
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)
    bot_password = uuid.uuid4().hex
    bot_user = synapse.register(f"cvdbot-{uuid.uuid4().hex[:8]}", bot_password)
    if encrypted:
        room_id = await team.create_encrypted_room(invite=[bot_user], name="CVD cases")
    else:
        from nio import RoomCreateResponse, RoomPreset

        response = await team.client.room_create(
            name="CVD cases (plain)", invite=[bot_user], preset=RoomPreset.private_chat
        )
        assert isinstance(response, RoomCreateResponse), response
        room_id = response.room_id
        await team.wait_for_room(room_id)
    mailbox = f"security-{uuid.uuid4().hex[:8]}@example.org"
    mailbox_password = uuid.uuid4().hex
    dovecot.add_user(mailbox, mailbox_password)
    fingerprint = make_bot_key(workdir / "data" / "gnupg")
    return CvdDeployment(
        workdir=workdir,
        synapse=synapse,
        dovecot=dovecot,
        smtp=smtp,
        team=team,
        bot_user=bot_user,
        bot_password=bot_password,
        room_id=room_id,
        mailbox=mailbox,
        mailbox_password=mailbox_password,
        key_fingerprint=fingerprint,
    )
