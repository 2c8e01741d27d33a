"""Shared set-up for the benchmarks: real servers, a team member, the bot, the baseline, figures.

`BenchEnv` starts Synapse, Dovecot and an SMTP sink in a throwaway directory, logs in one
team member (an E2EE `Person`), deploys and starts the real `cvdbot run` process, and starts
the baseline (`bench.echo_client`, its own process in its own encrypted room). Progress goes
to stderr; the figures (a table, then one JSON line) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.harness.bot import CvdDeployment, deploy
from tests.harness.dovecot import DovecotServer
from tests.harness.gpg_agents import stop_agents_under
from tests.harness.person import Person, ReceivedMessage
from tests.harness.smtp import SmtpServer
from tests.harness.synapse import SynapseServer
from tests.integration.sample_mails import ENGLISH_BODY, report

_STARTED = time.monotonic()


def progress(text: str) -> None:
    """A progress line on stderr, so stdout carries only the figures."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ figures


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating between ranks as numpy does by default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Series:
    """Samples of one measured thing, in seconds."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p90(self) -> float:
        return percentile(self.samples, 90)

    def as_json(self) -> dict[str, Any]:
        return {
            "n": len(self.samples),
            "median_ms": round(self.median * 1000, 1),
            "p90_ms": round(self.p90 * 1000, 1),
            "min_ms": round(min(self.samples, default=math.nan) * 1000, 1),
            "max_ms": round(max(self.samples, default=math.nan) * 1000, 1),
        }


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 2) if denominator > 0 else math.inf


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def emit_json(record: dict[str, Any]) -> None:
    """The machine-readable result: always the last line of stdout."""
    print(json.dumps(record, sort_keys=True), flush=True)


def parse_args(
    description: str, *, rounds: int, reports: int | None = None, history: int | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"measured rounds (default {rounds})"
    )
    if reports is not None:
        parser.add_argument(
            "--reports",
            type=int,
            default=reports,
            help=f"reports in the burst (default {reports})",
        )
    if history is not None:
        parser.add_argument(
            "--history",
            type=int,
            default=history,
            help=f"closed cases in the bot's database before it starts (default {history})",
        )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=1200.0,
        help="give up after this many seconds (default 1200)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (logs, stores)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or (reports is not None and args.reports < 1):
        parser.error("--rounds and --reports must be at least 1")
    return args


# ------------------------------------------------------------------------------ mail


def report_message(subject: str, body: str = ENGLISH_BODY) -> EmailMessage:
    """A report as a reporter's mail client writes it (see tests/integration/sample_mails)."""
    raw = report(subject=subject, body=body, sender="Sam Finder <sam@finder.example>")
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


class MailAppender:
    """One IMAP connection that appends to an inbox, as a delivering MTA would.

    Blocking (imaplib): call through `asyncio.to_thread` so the team member keeps syncing.
    """

    def __init__(self, dovecot: DovecotServer, username: str, password: str) -> None:
        self._imap = imaplib.IMAP4(dovecot.host, dovecot.port, timeout=30)
        self._imap.login(username, password)

    def append(self, raw: bytes) -> None:
        status, data = self._imap.append("INBOX", None, None, raw)
        if status != "OK":
            raise RuntimeError(f"IMAP APPEND failed: {data!r}")

    def append_many(self, raws: Sequence[bytes]) -> None:
        for raw in raws:
            self.append(raw)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._imap.logout()


# ------------------------------------------------------------------------------ waiting


def is_root_of(subject: str) -> Callable[[ReceivedMessage], bool]:
    return lambda m: m.thread_root is None and "New report" in m.body and subject in m.body


async def wait_seen(
    person: Person,
    room_id: str,
    predicate: Callable[[ReceivedMessage], bool],
    count: int,
    timeout: float,
) -> None:
    """Wait until `person` has decrypted `count` distinct messages matching `predicate`."""
    matched: set[str] = set()

    def enough(message: ReceivedMessage) -> bool:
        # Called for every message on every wake-up; the set keeps the count right.
        if predicate(message):
            matched.add(message.event_id)
        return len(matched) >= count

    try:
        await person.wait_for_message(room_id, enough, timeout=timeout)
    except TimeoutError as exc:
        # The total tells a slow sender from a flood (a sync with more events than the
        # timeline limit skips the oldest, which the person then never sees).
        total = len(person.messages(room_id))
        raise TimeoutError(
            f"saw {len(matched)} of {count} expected messages in {timeout:.0f} s "
            f"({total} messages from others in that room in all)"
        ) from exc


def replies_to(event_id: str) -> Callable[[ReceivedMessage], bool]:
    def check(message: ReceivedMessage) -> bool:
        relates = message.content.get("m.relates_to") or {}
        return bool((relates.get("m.in_reply_to") or {}).get("event_id") == event_id)

    return check


# ------------------------------------------------------------------------------ baseline


class Baseline:
    """The bare nio client (bench/echo_client.py) as a child process in its own room."""

    def __init__(
        self, process: asyncio.subprocess.Process, room_id: str, user_id: str, log: Path
    ) -> None:
        self._process = process
        self.room_id = room_id
        self.user_id = user_id
        self.log_path = log

    @classmethod
    async def start(cls, env: BenchEnv) -> Baseline:
        password = uuid.uuid4().hex
        user_id = env.synapse.register(f"baseline-{uuid.uuid4().hex[:8]}", password)
        room_id = await env.team.create_encrypted_room(invite=[user_id], name="baseline")
        workdir = env.workdir / "baseline"
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / "echo_client.log"
        with log.open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.echo_client",
                "--homeserver",
                env.synapse.url,
                "--user",
                user_id,
                "--room",
                room_id,
                "--store",
                str(workdir / "store"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "BENCH_BASELINE_PASSWORD": password},
            )
        baseline = cls(process, room_id, user_id, log)
        await baseline._expect("ready", timeout=60)
        # The team member encrypts only for members it has synced.
        await env.team.wait_for_member(room_id, user_id)
        return baseline

    async def burst(self, count: int, tag: str, timeout: float = 300) -> None:
        """Ask for `count` encrypted messages "TAG nnnn"; returns when all were accepted."""
        assert self._process.stdin is not None
        self._process.stdin.write(f"burst {count} {tag}\n".encode())
        await self._process.stdin.drain()
        await self._expect(f"sent {tag}", timeout)

    async def _expect(self, line: str, timeout: float) -> None:
        assert self._process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"baseline did not say {line!r} in {timeout:.0f} s")
            raw = await asyncio.wait_for(self._process.stdout.readline(), remaining)
            if not raw:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"baseline exited before saying {line!r}:\n{tail}")
            if raw.decode().strip() == line:
                return

    async def stop(self) -> None:
        process = self._process
        if process.returncode is not None:
            return
        assert process.stdin is not None
        with contextlib.suppress(Exception):
            process.stdin.write(b"quit\n")
            await process.stdin.drain()
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


# ------------------------------------------------------------------------------ environment


class BenchEnv:
    """Real servers, one team member, and (on request) the bot and the baseline."""

    def __init__(self, keep: bool = False) -> None:
        # Not under a 0700 directory: Dovecot's unprivileged mail processes must enter it.
        self.workdir = Path(tempfile.mkdtemp(prefix="cvdbot-bench-"))
        self.workdir.chmod(0o755)
        self.keep = keep
        self.synapse = SynapseServer(self.workdir / "synapse")
        self.dovecot = DovecotServer(self.workdir / "dovecot")
        self.smtp = SmtpServer()
        self._team: Person | None = None
        self.deployment: CvdDeployment | None = None
        self.baseline: Baseline | None = None

    @property
    def team(self) -> Person:
        assert self._team is not None
        return self._team

    async def __aenter__(self) -> BenchEnv:
        progress(f"starting Synapse, Dovecot and SMTP in {self.workdir}")
        try:
            await asyncio.gather(
                asyncio.to_thread(self.synapse.start), asyncio.to_thread(self.dovecot.start)
            )
            self.smtp.start()
            password = uuid.uuid4().hex
            user_id = self.synapse.register(f"alice-{uuid.uuid4().hex[:8]}", password)
            self._team = await Person.create(
                self.synapse.url, user_id, password, self.workdir / "people" / "alice"
            )
        except BaseException:
            await self._teardown(failed=True)
            raise
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        await self._teardown(failed=exc is not None)

    async def start_bot(
        self, before_start: Callable[[CvdDeployment], Awaitable[None]] | None = None
    ) -> CvdDeployment:
        """Deploy cvdbot (its account, the encrypted case room, mailbox, key) and run it;
        `before_start` may prepare its database first."""
        deployment = await deploy(
            self.workdir / "bot", self.synapse, self.dovecot, self.smtp, self.team
        )
        self.deployment = deployment
        if before_start is not None:
            await before_start(deployment)
        progress("starting cvdbot")
        # start_bot blocks until the bot logs that it is ready; the team keeps syncing.
        await asyncio.to_thread(deployment.start_bot)
        await self.team.wait_for_member(deployment.room_id, deployment.bot_user)
        return deployment

    async def start_baseline(self) -> Baseline:
        progress("starting the baseline client")
        self.baseline = await Baseline.start(self)
        return self.baseline

    async def open_case(self, deployment: CvdDeployment, subject: str) -> ReceivedMessage:
        """Mail a report to the bot and wait for its thread root; the root message."""
        await asyncio.to_thread(deployment.append_mail, bytes(report_message(subject)))
        return await self.team.wait_for_message(
            deployment.room_id, is_root_of(subject), timeout=120
        )

    async def _teardown(self, *, failed: bool) -> None:
        if self.baseline is not None:
            with contextlib.suppress(Exception):
                await self.baseline.stop()
        if self.deployment is not None and self.deployment.bot is not None:
            bot = self.deployment.bot
            if failed:
                print(f"--- cvdbot log (tail) ---\n{bot.log_tail(40)}", file=sys.stderr)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(bot.stop)
        if self._team is not None:
            with contextlib.suppress(Exception):
                await self._team.close()
        self.smtp.stop()
        self.dovecot.stop()
        self.synapse.stop()
        # The bot's and the reporter's gpg homes live in the workdir, kept or not.
        stop_agents_under(self.workdir)
        if self.keep or failed:
            progress(f"kept the working directory {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def run(main: Callable[[argparse.Namespace], Any], args: argparse.Namespace) -> None:
    """Run a benchmark's `async main(args)` within its time limit; exit 1 on failure."""

    # The bench's own nio clients warn about routine key exchange; keep stderr for progress.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("nio").setLevel(logging.ERROR)

    async def bounded() -> None:
        await asyncio.wait_for(main(args), args.time_limit)

    try:
        asyncio.run(bounded())
    except (TimeoutError, RuntimeError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
