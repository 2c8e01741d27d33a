"""Mail ingest: from the IMAP inbox to a decrypted thread root in the team member's client.

The bot runs with a history of H closed cases in its database (default 100,000), as a
municipality's bot would after some years.

(a) Burst: N reports (default 200) appended as fast as one IMAP connection allows; the time
from the first append until the team member has decrypted all N case roots. Baseline: the
bare nio client (bench/echo_client.py) sends N encrypted messages into its own room, timed
until the same person has decrypted all N; measured before and after the bot's burst, and
the mean of the two taken, so drift during the run hits both. Target: bot/baseline <= 1.5.

(a') Follow-through of the same burst: from the first append until the team member has
decrypted every post the burst caused (roots, report excerpts, intake checks, the notes in
related cases: every Matrix item the bot sent after the burst began, read from its outbox).
Baseline: the bare client sends that many encrypted messages, right after, in the same run.
Target: bot/baseline <= 1.2.

(c) Memory: the peak resident set of the running `cvdbot run` process (VmHWM in
/proc/PID/status) at the end, after the burst and the single reports. Target <= 200 MB.

(b) Latency of single reports, one at a time: IMAP append to root decrypted, for a plain
report and for a PGP/MIME-encrypted one (encrypted to the bot's key by a reporter's own gpg),
interleaved with single baseline sends and with a bare IMAP IDLE client timing the same
append-to-push path on a mailbox of its own. Push plus one baseline send is the floor: the
least any IMAP-fed bot could do.

    python -m bench.ingest [--reports 200] [--rounds 20] [--history 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioimaplib

from bench.common import (
    Baseline,
    BenchEnv,
    MailAppender,
    Series,
    emit_json,
    is_root_of,
    ms,
    parse_args,
    print_table,
    progress,
    ratio,
    report_message,
    run,
    wait_seen,
)
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from tests.harness.bot import CvdDeployment
from tests.harness.person import Person, ReceivedMessage

TARGET_BURST_RATIO = 1.5
TARGET_FOLLOW_THROUGH_RATIO = 1.2
TARGET_RSS_MB = 200.0
SINGLE_TIMEOUT = 60.0
# Evidence that the bot decrypted a PGP report: a sentence of the report's body.
REPORT_SENTENCE = "reflected cross-site scripting"


@dataclass(frozen=True)
class BurstResult:
    """Seconds from the first append; None: not within the time limit (see `problem`)."""

    roots_s: float  # until every case root was seen
    excerpts_s: float | None  # until every report excerpt was seen too
    idle_s: float | None  # until the bot had sent every post the reports caused
    appends_s: float  # how long the IMAP appends took
    problem: str
    posts: int = 0  # every Matrix post the burst caused
    follow_through_s: float | None = None  # until the team member had decrypted all of them


class BotIntake:
    """Sends reports to the bot and waits until the team member sees them."""

    def __init__(self, team: Person, deployment: CvdDeployment, reporter: Pgp) -> None:
        self._team = team
        self._deployment = deployment
        self._reporter = reporter
        self._appender = MailAppender(
            deployment.dovecot, deployment.mailbox, deployment.mailbox_password
        )
        self._bot_key = deployment.key_fingerprint
        self._serial = 0

    @property
    def room_id(self) -> str:
        return self._deployment.room_id

    def _subject(self, label: str) -> str:
        self._serial += 1
        return f"Benchmark report {label}-{self._serial:04d}"

    def _raw(self, subject: str, *, encrypted: bool) -> bytes:
        message = report_message(subject)
        if encrypted:
            # As a reporter would: encrypted to the key on the bot's policy page, unsigned
            # (the bot would not know a signer's key anyway).
            message = self._reporter.encrypt_mime(message, [self._bot_key], sign=False)
        return bytes(message)

    async def single(self, *, encrypted: bool) -> tuple[float, ReceivedMessage]:
        """Seconds from the IMAP append until the case root is decrypted by the team member."""
        subject = self._subject("pgp" if encrypted else "plain")
        raw = self._raw(subject, encrypted=encrypted)  # prepared before the clock starts
        began = time.perf_counter()
        await asyncio.to_thread(self._appender.append, raw)
        root = await self._team.wait_for_message(
            self.room_id, is_root_of(subject), timeout=SINGLE_TIMEOUT
        )
        elapsed = time.perf_counter() - began
        # Untimed: the report excerpt (which shows whether a PGP report was decrypted), then
        # everything else the report causes, so the next round starts with an idle bot.
        excerpt = await self._team.wait_for_message(
            self.room_id,
            lambda m: m.thread_root == root.event_id and "The report:" in m.body,
            timeout=SINGLE_TIMEOUT,
        )
        if not await self.wait_idle(SINGLE_TIMEOUT):
            raise TimeoutError(f"the bot was still posting {SINGLE_TIMEOUT:.0f} s after a report")
        return elapsed, excerpt

    async def burst(self, count: int, label: str) -> BurstResult:
        raws = [
            self._raw(f"Benchmark report {label}-{index:04d}", encrypted=False)
            for index in range(count)
        ]
        marker = f"Benchmark report {label}-"
        timeout = max(300, count * 2.0)
        appended: list[float] = []
        before = await asyncio.to_thread(self._last_outbox_id)
        sightings = Sightings(self._team, self.room_id)
        began = time.perf_counter()
        appending = asyncio.create_task(asyncio.to_thread(self._appender.append_many, raws))
        appending.add_done_callback(lambda _t: appended.append(time.perf_counter() - began))
        try:
            try:
                await wait_seen(self._team, self.room_id, is_root_of(marker), count, timeout)
            except TimeoutError as exc:
                raise TimeoutError(f"case roots: {exc}; {self._stored(marker)}") from exc
            roots_seen = time.perf_counter() - began
            await appending
            # The bot posts each report's excerpt after all waiting roots. Wait for those
            # too: they are part of its work, and the next measurement must start with an
            # idle bot.
            roots = {m.event_id for m in self._team.messages(self.room_id) if is_root_of(marker)(m)}
            try:
                await wait_seen(
                    self._team,
                    self.room_id,
                    lambda m: m.thread_root in roots and "The report:" in m.body,
                    count,
                    timeout,
                )
            except TimeoutError as exc:
                problem = f"{exc}; {self._stored(marker)}"
                return BurstResult(roots_seen, None, None, appended[0], problem)
            excerpts_seen = time.perf_counter() - began
            # Whatever else the reports caused (intake checks, notes in related cases).
            if not await self.wait_idle(max(0.0, timeout - excerpts_seen)):
                problem = f"the bot's outbox was not empty in time; {self._stored(marker)}"
                return BurstResult(roots_seen, excerpts_seen, None, appended[0], problem)
            idle = time.perf_counter() - began
            # Every post the burst caused, as the bot's outbox recorded them (event IDs),
            # and when the team member had decrypted the last of them.
            caused = await asyncio.to_thread(self._posts_since, before)
            try:
                last_seen = await sightings.wait_all(caused, timeout)
            except TimeoutError as exc:
                return BurstResult(roots_seen, excerpts_seen, idle, appended[0], str(exc))
            return BurstResult(
                roots_seen,
                excerpts_seen,
                idle,
                appended[0],
                "",
                posts=len(caused),
                follow_through_s=last_seen - began,
            )
        finally:
            sightings.stop()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until the bot has sent every post that is due; False after `timeout`."""
        deadline = time.monotonic() + timeout
        while await asyncio.to_thread(self._due_posts) > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def _due_posts(self) -> int:
        # The bot's own database, read-only: a post stays pending until its send returned.
        now = datetime.now(UTC).isoformat()
        with sqlite3.connect(f"file:{self._deployment.db_path}?mode=ro", uri=True) as db:
            (due,) = db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND channel = 'matrix'"
                " AND next_attempt_at <= ?",
                (now,),
            ).fetchone()
        return int(due)

    def _last_outbox_id(self) -> int:
        with sqlite3.connect(f"file:{self._deployment.db_path}?mode=ro", uri=True) as db:
            (last,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()
        return int(last)

    def _posts_since(self, after_id: int) -> set[str]:
        """The event IDs of every Matrix post queued after outbox row `after_id`."""
        with sqlite3.connect(f"file:{self._deployment.db_path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT state, result FROM outbox WHERE channel = 'matrix' AND id > ?",
                (after_id,),
            ).fetchall()
        unsent = [state for state, _ in rows if state != "sent"]
        if unsent:
            raise RuntimeError(f"{len(unsent)} posts of the burst were not sent: {unsent[:5]}")
        return {str(result) for _, result in rows}

    def _stored(self, marker: str) -> str:
        """What the bot's database says, to tell a stalled intake from slow posting."""
        try:
            with sqlite3.connect(f"file:{self._deployment.db_path}?mode=ro", uri=True) as db:
                (cases,) = db.execute(
                    "SELECT COUNT(*) FROM cases WHERE subject LIKE ?", (f"{marker}%",)
                ).fetchone()
                (pending,) = db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
                ).fetchone()
                (sent,) = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'sent'").fetchone()
        except sqlite3.Error as exc:
            return f"the bot's database could not be read ({exc})"
        return f"the bot has opened {cases} of these cases; outbox: {sent} sent, {pending} pending"

    def close(self) -> None:
        self._appender.close()


class Sightings:
    """When the team member first had each message of a room decrypted (looked at every
    10 ms, while its own sync loop runs)."""

    def __init__(self, person: Person, room_id: str) -> None:
        self._person = person
        self._room_id = room_id
        self.first_seen: dict[str, float] = {}
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        looked = 0
        while True:
            messages = self._person.messages(self._room_id)
            now = time.perf_counter()
            for message in messages[looked:]:
                self.first_seen.setdefault(message.event_id, now)
            looked = len(messages)
            await asyncio.sleep(0.01)

    async def wait_all(self, event_ids: set[str], timeout: float) -> float:
        """When the last of `event_ids` was first seen (perf_counter)."""
        deadline = time.monotonic() + timeout
        while not event_ids <= self.first_seen.keys():
            if time.monotonic() >= deadline:
                missing = len(event_ids - self.first_seen.keys())
                raise TimeoutError(f"{missing} of {len(event_ids)} posts were never seen")
            await asyncio.sleep(0.05)
        return max(self.first_seen[event_id] for event_id in event_ids)

    def stop(self) -> None:
        self._task.cancel()


class BaselineSends:
    """Asks the baseline client for messages and waits until the team member sees them."""

    def __init__(self, team: Person, baseline: Baseline) -> None:
        self._team = team
        self._baseline = baseline
        self._serial = 0

    async def send(self, count: int) -> float:
        self._serial += 1
        tag = f"baseline-{self._serial:04d}"
        began = time.perf_counter()
        sending = asyncio.create_task(self._baseline.burst(count, tag))
        await wait_seen(
            self._team,
            self._baseline.room_id,
            lambda m: m.body.startswith(f"{tag} "),
            count,
            timeout=max(120, count * 2.0),
        )
        elapsed = time.perf_counter() - began
        await sending
        return elapsed


class ImapPushProbe:
    """The IMAP part of the floor: a bare IDLE client on a mailbox of its own, timed from the
    APPEND until the server pushes EXISTS. Dovecot delays that push on purpose (it batches
    changes for NOTIFY_DELAY_MSECS, 500 ms), and every IMAP IDLE client, the bot included,
    waits for it."""

    def __init__(self, imap: aioimaplib.IMAP4, appender: MailAppender) -> None:
        self._imap = imap
        self._appender = appender

    @classmethod
    async def open(cls, env: BenchEnv) -> ImapPushProbe:
        username, password = f"probe-{uuid.uuid4().hex[:8]}@example.org", uuid.uuid4().hex
        env.dovecot.add_user(username, password)
        imap = aioimaplib.IMAP4(host=env.dovecot.host, port=env.dovecot.port, timeout=30)
        await imap.wait_hello_from_server()
        for response in (await imap.login(username, password), await imap.select("INBOX")):
            if response.result != "OK":
                raise RuntimeError(f"IMAP probe: {response.result} {response.lines}")
        appender = await asyncio.to_thread(MailAppender, env.dovecot, username, password)
        return cls(imap, appender)

    async def measure(self) -> float:
        raw = bytes(report_message(f"IMAP probe {uuid.uuid4().hex[:8]}"))
        idle = await self._imap.idle_start(timeout=SINGLE_TIMEOUT)
        began = time.perf_counter()
        appending = asyncio.create_task(asyncio.to_thread(self._appender.append, raw))
        try:
            while True:
                pushed = await self._imap.wait_server_push(timeout=SINGLE_TIMEOUT)
                if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    raise TimeoutError("the IMAP server pushed no EXISTS")
                if any(b"EXISTS" in line for line in pushed if isinstance(line, bytes)):
                    break
            elapsed = time.perf_counter() - began
        finally:
            self._imap.idle_done()
            await asyncio.wait_for(idle, 10)
            await appending
        return elapsed

    async def close(self) -> None:
        self._appender.close()
        try:
            await asyncio.wait_for(self._imap.logout(), 5)
        except (OSError, TimeoutError, aioimaplib.Abort):
            pass


def make_reporter(env: BenchEnv, deployment: CvdDeployment) -> Pgp:
    """A reporter's own gpg home holding the bot's public key."""
    bot = Pgp(deployment.workdir / "data" / "gnupg", deployment.key_fingerprint, None)
    reporter = Pgp(env.workdir / "reporter-gnupg", None, None, s2k_count=MIN_S2K_COUNT)
    reporter.import_keys(bot.export_public_key(deployment.key_fingerprint))
    return reporter


async def seed_history(deployment: CvdDeployment, total: int) -> None:
    """`total` fixed cases received over the four years before this one, in the bot's
    database before it first starts (the cases' own columns; their mails and posts are not
    made up). Nothing is due on them, so they cause no posts."""
    from bot.policy.lifecycle import Case, CaseState
    from storage import cases
    from storage.db import Database

    if total <= 0:
        return
    progress(f"seeding {total:,} cases of history")
    rnd = random.Random(total)
    this_year = datetime.now(UTC).year
    first = datetime(this_year - 4, 1, 1, tzinfo=UTC)
    span = (datetime(this_year, 1, 1, tzinfo=UTC) - first).total_seconds()
    received = sorted(first + timedelta(seconds=rnd.uniform(0, span)) for _ in range(total))
    db = await Database.open(deployment.db_path)
    seqs: dict[int, int] = {}
    try:
        for start in range(0, total, 5000):
            async with db.transaction() as conn:
                for at in received[start : start + 5000]:
                    seq = seqs[at.year] = seqs.get(at.year, 0) + 1
                    ack = at + timedelta(hours=rnd.uniform(1, 60))
                    assess = ack + timedelta(hours=rnd.uniform(1, 150))
                    case = Case(
                        id=f"CVD-{at.year}-{seq:04d}",
                        state=CaseState.FIXED,
                        subject=f"Report {seq} of {at.year}: a weakness in a public web form",
                        reporter_address=f"finder{seq}@example.net",
                        reporter_name=None,
                        language="nl" if seq % 3 else "en",
                        received_at=at,
                        acknowledge_due=at + timedelta(days=3),
                        assess_due=at + timedelta(days=10),
                        fix_due=at + timedelta(days=90),
                        thread_root_event_id=f"$root-{at.year}-{seq}",
                        acknowledged_at=ack,
                        assessed_at=assess,
                        severity=rnd.choice(("low", "medium", "high")),
                        fixed_at=assess + timedelta(days=rnd.uniform(1, 100)),
                    )
                    await cases.insert_case(conn, case, at.year, seq, at.isoformat())
        async with db.transaction() as conn:
            for year, seq in seqs.items():
                await conn.execute(
                    "INSERT INTO case_counters (year, last_seq) VALUES (?, ?)", (year, seq)
                )
            await conn.execute("UPDATE cases SET next_sla_check_at = NULL")
    finally:
        await db.close()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set as the kernel counts it (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


async def main(args: argparse.Namespace) -> None:
    single: dict[str, Series] = {}
    base_follow: float | None = None
    async with BenchEnv(keep=args.keep) as env:
        deployment = await env.start_bot(lambda d: seed_history(d, args.history))
        baseline = BaselineSends(env.team, await env.start_baseline())
        intake = await asyncio.to_thread(
            BotIntake, env.team, deployment, make_reporter(env, deployment)
        )
        probe = await ImapPushProbe.open(env)
        try:
            progress("warming up")
            await intake.single(encrypted=False)
            _, excerpt = await intake.single(encrypted=True)
            if REPORT_SENTENCE not in excerpt.body:
                raise RuntimeError("the bot did not decrypt the PGP report")
            await baseline.send(1)
            await probe.measure()

            progress(f"burst: {args.reports} messages from the baseline")
            base_before = await baseline.send(args.reports)
            progress(f"burst: {args.reports} reports to the bot")
            burst = await intake.burst(args.reports, "burst")
            base_after = None
            # Only with an idle bot: its leftover posts would slow the baseline and the
            # single reports alike.
            if burst.idle_s is not None and burst.follow_through_s is not None:
                progress(f"burst: {args.reports} messages from the baseline again")
                base_after = await baseline.send(args.reports)
                progress(f"follow-through: {burst.posts} messages from the baseline")
                base_follow = await baseline.send(burst.posts)
                single = await measure_singles(args.rounds, intake, baseline, probe)
        finally:
            intake.close()
            await probe.close()
        undecryptable = len(env.team.undecryptable())
        assert deployment.bot is not None and deployment.bot.process is not None
        rss_mb = peak_rss_mb(deployment.bot.process.pid)

    record: dict[str, Any] = {
        "bench": "ingest",
        "reports": args.reports,
        "rounds": args.rounds,
        "history_cases": args.history,
        "burst": report_burst(args.reports, burst, base_before, base_after),
        "follow_through": report_follow_through(burst, base_follow),
        "single": report_singles(args.rounds, single) if single else None,
        "memory": report_memory(args.history, rss_mb),
        "undecryptable": undecryptable,
    }
    if undecryptable:
        print(f"{undecryptable} events could not be decrypted by the team member")
    emit_json(record)
    if burst.idle_s is None or burst.follow_through_s is None:
        raise RuntimeError(
            "the bot did not finish posting the burst in time, so the second baseline burst "
            f"and the single reports were skipped: {burst.problem}"
        )


async def measure_singles(
    rounds: int, intake: BotIntake, baseline: BaselineSends, probe: ImapPushProbe
) -> dict[str, Series]:
    plain, pgp = Series("plain report"), Series("PGP report")
    base, push = Series("baseline send"), Series("IMAP push alone")
    progress(f"single reports: {rounds} rounds of plain, PGP, baseline, IMAP push")
    for index in range(rounds):
        plain.samples.append((await intake.single(encrypted=False))[0])
        pgp.samples.append((await intake.single(encrypted=True))[0])
        base.samples.append(await baseline.send(1))
        push.samples.append(await probe.measure())
        if (index + 1) % 5 == 0:
            progress(f"  {index + 1}/{rounds}")
    # The least any IMAP-fed bot can do: wait for the push, then send one message.
    floor = Series(
        "floor: push + send", [a + b for a, b in zip(push.samples, base.samples, strict=True)]
    )
    return {"plain": plain, "pgp": pgp, "baseline_send": base, "imap_push": push, "floor": floor}


def report_burst(
    reports: int, burst: BurstResult, base_before: float, base_after: float | None
) -> dict[str, Any]:
    # The mean of the bursts before and after the bot's, so drift hits both sides.
    base = base_before if base_after is None else (base_before + base_after) / 2
    burst_ratio = ratio(burst.roots_s, base)
    met = burst_ratio <= TARGET_BURST_RATIO
    around = f"(before {base_before:.2f} s" + (
        f", after {base_after:.2f} s)" if base_after is not None else "; none after)"
    )
    print_table(
        f"(a) burst of {reports}: first append/send until all roots decrypted",
        ["", "seconds", "per item", "ratio to baseline"],
        [
            ["cvdbot", f"{burst.roots_s:.2f}", ms(burst.roots_s / reports), f"{burst_ratio:.2f}"],
            ["baseline (mean)", f"{base:.2f}", ms(base / reports), around],
        ],
    )
    print(f"the {reports} IMAP appends themselves took {burst.appends_s:.2f} s")
    if burst.excerpts_s is not None:
        print(f"all report excerpts (posted after the roots) seen after {burst.excerpts_s:.2f} s")
    if burst.idle_s is not None:
        print(f"the bot's outbox was empty (every post sent) after {burst.idle_s:.2f} s")
    if burst.problem:
        print(f"NOT within the time limit: {burst.problem}")
    print(f"target: burst ratio <= {TARGET_BURST_RATIO}: {'met' if met else 'MISSED'}")
    return {
        "bot_s": round(burst.roots_s, 3),
        "bot_excerpts_s": None if burst.excerpts_s is None else round(burst.excerpts_s, 3),
        "bot_idle_s": None if burst.idle_s is None else round(burst.idle_s, 3),
        "baseline_before_s": round(base_before, 3),
        "baseline_after_s": None if base_after is None else round(base_after, 3),
        "baseline_s": round(base, 3),
        "appends_s": round(burst.appends_s, 3),
        "ratio": burst_ratio,
        "target_ratio": TARGET_BURST_RATIO,
        "target_met": met,
    }


def report_follow_through(burst: BurstResult, base: float | None) -> dict[str, Any] | None:
    if burst.follow_through_s is None or base is None:
        return None
    follow_ratio = ratio(burst.follow_through_s, base)
    met = follow_ratio <= TARGET_FOLLOW_THROUGH_RATIO
    print_table(
        f"(a') follow-through: first append/send until all {burst.posts} posts decrypted",
        ["", "seconds", "per post", "ratio to baseline"],
        [
            [
                "cvdbot",
                f"{burst.follow_through_s:.2f}",
                ms(burst.follow_through_s / burst.posts),
                f"{follow_ratio:.2f}",
            ],
            [f"baseline ({burst.posts} sends)", f"{base:.2f}", ms(base / burst.posts), ""],
        ],
    )
    verdict = "met" if met else "MISSED"
    print(f"target: follow-through ratio <= {TARGET_FOLLOW_THROUGH_RATIO}: {verdict}")
    return {
        "posts": burst.posts,
        "bot_s": round(burst.follow_through_s, 3),
        "baseline_s": round(base, 3),
        "ratio": follow_ratio,
        "target_ratio": TARGET_FOLLOW_THROUGH_RATIO,
        "target_met": met,
    }


def report_memory(history: int, rss_mb: float) -> dict[str, Any]:
    met = rss_mb <= TARGET_RSS_MB
    print(
        f"\n(c) peak RSS of the running cvdbot with {history:,} cases of history: "
        f"{rss_mb:.0f} MB (target <= {TARGET_RSS_MB:.0f} MB: {'met' if met else 'MISSED'})"
    )
    return {"peak_rss_mb": round(rss_mb, 1), "target_mb": TARGET_RSS_MB, "target_met": met}


def report_singles(rounds: int, series: dict[str, Series]) -> dict[str, Any]:
    base, floor = series["baseline_send"], series["floor"]
    plain, pgp = series["plain"], series["pgp"]
    print_table(
        f"(b) single reports, {rounds} rounds: IMAP append until root decrypted",
        ["", "median", "p90", "median / baseline send", "median / floor"],
        [
            [
                s.name,
                ms(s.median),
                ms(s.p90),
                f"{ratio(s.median, base.median):.2f}",
                f"{ratio(s.median, floor.median):.2f}",
            ]
            for s in series.values()
        ],
    )
    pgp_ratio = ratio(pgp.median, plain.median)
    print(f"PGP/plain: median {pgp_ratio:.2f}, p90 {ratio(pgp.p90, plain.p90):.2f}")
    return {
        **{name: s.as_json() for name, s in series.items()},
        "ratio_plain_baseline_median": ratio(plain.median, base.median),
        "ratio_pgp_baseline_median": ratio(pgp.median, base.median),
        "ratio_plain_floor_median": ratio(plain.median, floor.median),
        "ratio_pgp_floor_median": ratio(pgp.median, floor.median),
        "ratio_pgp_plain_median": pgp_ratio,
        "ratio_pgp_plain_p90": ratio(pgp.p90, plain.p90),
    }


if __name__ == "__main__":
    run(main, parse_args(__doc__.splitlines()[0], rounds=20, reports=200, history=100_000))
