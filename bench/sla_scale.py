"""The policy's clock at scale: the SLA tick, the digest build and the bot's memory with
100,000 cases in the database, each against the same run with 1,000 cases.

What grows is the history, not the workload: both databases hold the same recent activity
(600 cases received in the last four months: 100 that fall due at the measured tick, 100 open
ones that do not, 400 closed) plus old, closed cases (400 or 99,400) spread over the three
years before. A well-built tick and digest cost the same on both; a tick that scans every
case, or a digest that counts the whole history, shows up as a ratio far above 1.

* Tick: Wednesday 4 November 2026 10:00 CET, when the 100 due cases (received Monday
  10:00) have passed half time and "one working day left" of their acknowledge promise: 100
  combined warnings queued. Repeated after restoring the state; median of the rounds.
  Target: tick(100,000) / tick(1,000) <= 2.
* Digest: build_digest (every count, list and rate, the chart's data) plus the plain text,
  HTML and PNG chart, as of the same moment. Median of the rounds; ratio reported.
* Memory: a fresh process imports the whole bot (bot.app: nio, gpg, pydantic, Pillow ...),
  opens the 100,000-case database, runs the tick, builds and renders the digest and lists
  the open cases; its peak resident set (ru_maxrss). Target <= 200 MB. The Matrix client is
  not connected: its key store does not grow with the number of cases.

Each measurement runs in its own process; the database is seeded through the storage
functions in one transaction per 5,000 cases.

    python -m bench.sla_scale [--small 1000] [--large 100000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.harness.gpg_agents import stop_agents_under

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 11, 4, 10, 0, tzinfo=AMS).astimezone(UTC)
RECEIVED_DUE = datetime(2026, 11, 2, 10, 0, tzinfo=AMS).astimezone(UTC)
SETTLE_AT = datetime(2026, 11, 2, 10, 5, tzinfo=AMS).astimezone(UTC)
DUE = 100
OPEN_QUIET = 100
RECENT_CLOSED = 400
TARGET_TICK_RATIO = 2.0
TARGET_RSS_MB = 200.0


def progress(text: str) -> None:
    print(f"[sla_scale] {text}", file=sys.stderr, flush=True)


def bench_config(db_path: Path) -> Any:
    from bot.config import Config

    data = {
        "matrix": {
            "homeserver": "http://127.0.0.1:1",
            "user_id": "@cvdbot:example.org",
            "password": "unused",
            "store_path": str(db_path.parent / "store"),
            "case_room": "!cases:example.org",
            "digest_room": "!managers:example.org",
            "team": ["@alice:example.org", "@bob:example.org"],
            "managers": ["@boss:example.org"],
        },
        "imap": {
            "host": "127.0.0.1",
            "port": 1,
            "security": "none",
            "username": "u",
            "password": "p",
        },
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "none", "from_address": "s@x.org"},
        "pgp": {
            "gnupg_home": str(db_path.parent / "gnupg"),
            "key_fingerprint": "A" * 40,
            "passphrase": "p",
        },
        "storage": {"path": str(db_path)},
    }
    return Config.model_validate(data, context={"base_dir": db_path.parent})


# ------------------------------------------------------------------------------ seeding


async def seed(db_path: Path, total: int) -> None:
    from bot.policy.lifecycle import Case, CaseState
    from bot.policy.workdays import WorkingCalendar, case_deadlines
    from bot.services import calendar_rules
    from bot.watch.deadline_warnings import SlaWatch
    from storage import cases
    from storage.db import Database

    config = bench_config(db_path)
    calendar = WorkingCalendar(calendar_rules(config.policy))
    rnd = random.Random(total)
    old = total - DUE - OPEN_QUIET - RECENT_CLOSED
    plans: list[tuple[datetime, str]] = []
    history_start = NOW - timedelta(days=4 * 365)
    history_span = (NOW - timedelta(days=125) - history_start).total_seconds()
    for _ in range(old):
        plans.append((history_start + timedelta(seconds=rnd.uniform(0, history_span)), "closed"))
    for _ in range(RECENT_CLOSED):
        plans.append((NOW - timedelta(days=rnd.uniform(10, 120)), "closed"))
    plans.sort()
    plans += [(RECEIVED_DUE, "quiet")] * OPEN_QUIET + [(RECEIVED_DUE, "due")] * DUE

    db = await Database.open(db_path)
    seqs: dict[int, int] = {}
    for start in range(0, len(plans), 5000):
        async with db.transaction() as conn:
            for received, kind in plans[start : start + 5000]:
                year = received.astimezone(AMS).year
                seq = seqs[year] = seqs.get(year, 0) + 1
                deadlines = case_deadlines(calendar, received)
                case = Case(
                    id=f"CVD-{year}-{seq:04d}",
                    state=CaseState.NEW,
                    subject=f"Report {seq} of {year}: a weakness in a public web form",
                    reporter_address=f"finder{seq}@example.net",
                    reporter_name=None,
                    language="nl" if seq % 3 else "en",
                    received_at=received,
                    acknowledge_due=deadlines.acknowledge.due,
                    assess_due=deadlines.assess.due,
                    fix_due=deadlines.fix.due,
                    thread_root_event_id=f"$root-{year}-{seq}",
                )
                if kind != "due":
                    quiet = kind == "quiet"
                    ack = received + timedelta(hours=0.5 if quiet else rnd.uniform(1, 60))
                    assess = ack + timedelta(hours=0.5 if quiet else rnd.uniform(1, 150))
                    case = replace(
                        case,
                        state=CaseState.ASSESSED,
                        acknowledged_at=ack,
                        assessed_at=assess,
                        severity=rnd.choice(("low", "medium", "high")),
                        assignee=rnd.choice((None, "@alice:example.org", "@bob:example.org")),
                    )
                if kind == "closed":
                    fixed = assess + timedelta(days=rnd.uniform(1, 100))
                    fixed = min(fixed, NOW - timedelta(hours=1))
                    case = replace(case, state=CaseState.FIXED, fixed_at=fixed)
                await cases.insert_case(conn, case, year, seq, received.isoformat())
    async with db.transaction() as conn:
        for year, seq in seqs.items():
            await conn.execute(
                "INSERT INTO case_counters (year, last_seq) VALUES (?, ?)", (year, seq)
            )
        # What the watch concludes for a closed case; the open ones it looks at below.
        await conn.execute("UPDATE cases SET next_sla_check_at = NULL WHERE state = 'fixed'")
    settled = await SlaWatch(db, config, calendar).tick(SETTLE_AT)
    assert settled.checked == DUE + OPEN_QUIET and not settled.warned, settled
    await db.close()


# ------------------------------------------------------------------------------ measuring


async def measure(db_path: Path, rounds: int) -> dict[str, Any]:
    import bot.app  # noqa: F401 - load everything the bot loads, for an honest RSS
    from bot.policy.workdays import WorkingCalendar
    from bot.services import calendar_rules
    from bot.watch.deadline_warnings import SlaWatch
    from bot.watch.digest_contents import build_digest
    from bot.watch.digest_render import chart_png, render_html, render_text
    from storage import case_overview
    from storage.db import Database

    config = bench_config(db_path)
    calendar = WorkingCalendar(calendar_rules(config.policy))
    db = await Database.open(db_path)
    watch = SlaWatch(db, config, calendar)
    async with db.transaction() as conn:
        async with conn.execute(
            "SELECT id, next_sla_check_at FROM cases WHERE next_sla_check_at <= ?",
            (NOW.isoformat(),),
        ) as cur:
            due_rows = [(row[0], row[1]) for row in await cur.fetchall()]
        async with conn.execute("SELECT COUNT(*) FROM cases") as cur:
            row = await cur.fetchone()
    assert row is not None
    total = int(row[0])
    assert len(due_rows) == DUE, len(due_rows)

    ticks = []
    for round_ in range(rounds + 1):  # the first round warms caches and is not counted
        started = time.perf_counter()
        result = await watch.tick(NOW)
        if round_:
            ticks.append(time.perf_counter() - started)
        assert result.checked == DUE and len(result.warned) == DUE, result
        async with db.transaction() as conn:  # back to the state before the tick
            await conn.execute("DELETE FROM sla_warnings")
            await conn.execute("DELETE FROM outbox")
            await conn.execute("DELETE FROM case_events WHERE kind = 'sla_warning'")
            await conn.executemany(
                "UPDATE cases SET next_sla_check_at = ? WHERE id = ?",
                [(at, case_id) for case_id, at in due_rows],
            )

    digests = []
    digest = None
    for round_ in range(rounds + 1):
        started = time.perf_counter()
        async with db.transaction() as conn:
            digest = await build_digest(conn, config, calendar, NOW)
        render_text(digest, calendar.tz, config.matrix.case_room)
        render_html(digest, calendar.tz, config.matrix.case_room)
        chart_png(digest, calendar.tz)
        if round_:
            digests.append(time.perf_counter() - started)
    assert digest is not None
    async with db.transaction() as conn:
        open_cases = await case_overview.open_cases(conn)
    await db.close()
    return {
        "cases": total,
        "due": DUE,
        "tick_s": statistics.median(ticks),
        "tick_samples_s": ticks,
        "digest_s": statistics.median(digests),
        "digest_samples_s": digests,
        "digest_open": digest.open_total,
        "digest_overdue": len(digest.overdue),
        "open_listed": len(open_cases),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ------------------------------------------------------------------------------ driver


def child(mode: str, db_path: Path, total: int, rounds: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.sla_scale",
        "--child",
        mode,
        "--db",
        str(db_path),
        "--cases",
        str(total),
        "--rounds",
        str(rounds),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--child", choices=("seed", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cases", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "seed":
        started = time.perf_counter()
        asyncio.run(seed(args.db, args.cases))
        print(json.dumps({"seed_s": time.perf_counter() - started}))
        return
    if args.child == "measure":
        print(json.dumps(asyncio.run(measure(args.db, args.rounds))))
        return

    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="cvdbot-sla-scale-") as tmp:
        for total in (args.small, args.large):
            db_path = Path(tmp) / f"cases-{total}.sqlite3"
            progress(f"seeding {total} cases")
            seeded = child("seed", db_path, total, args.rounds)
            progress(f"seeded in {seeded['seed_s']:.1f} s; measuring")
            results[total] = child("measure", db_path, total, args.rounds)
            results[total]["seed_s"] = seeded["seed_s"]
            results[total]["db_mb"] = db_path.stat().st_size / 2**20
        # The digest's gpg home sits in tmp; its agent would outlive the directory.
        stop_agents_under(Path(tmp))
    small, large = results[args.small], results[args.large]
    tick_ratio = large["tick_s"] / small["tick_s"]
    digest_ratio = large["digest_s"] / small["digest_s"]
    rows = [
        ("cases", f"{small['cases']:,}", f"{large['cases']:,}", ""),
        ("database", f"{small['db_mb']:.1f} MB", f"{large['db_mb']:.1f} MB", ""),
        (
            f"SLA tick ({DUE} due)",
            f"{small['tick_s'] * 1000:.1f} ms",
            f"{large['tick_s'] * 1000:.1f} ms",
            f"{tick_ratio:.2f} (target <= {TARGET_TICK_RATIO})",
        ),
        (
            "digest build+render",
            f"{small['digest_s'] * 1000:.1f} ms",
            f"{large['digest_s'] * 1000:.1f} ms",
            f"{digest_ratio:.2f}",
        ),
        (
            "peak RSS",
            f"{small['max_rss_mb']:.0f} MB",
            f"{large['max_rss_mb']:.0f} MB",
            f"target <= {TARGET_RSS_MB:.0f} MB",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print(f"\nSLA scale, median of {args.rounds} rounds")
    for row in (("", "small", "large", "ratio"), *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    verdict = tick_ratio <= TARGET_TICK_RATIO and large["max_rss_mb"] <= TARGET_RSS_MB
    print(
        json.dumps(
            {
                "bench": "sla_scale",
                "small": small,
                "large": large,
                "tick_ratio": round(tick_ratio, 2),
                "digest_ratio": round(digest_ratio, 2),
                "targets_met": verdict,
            },
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    main()
