"""Intake time per input size: does the cost grow linearly with what a stranger sends?

Three series through the one intake entry (`MailIntake.receive`, as `cvdbot ingest` and the
IMAP loop call it) with real gpg and a real SQLite file: a plain-text body of 1 KB to 10 MB,
a mail of 1 to 3,000 MIME parts, and a Subject of 100 to 200,000 characters (the header
limits raised for this series, so that the whole field is read rather than cut). Each size
is the median of `--rounds` runs into a fresh database. Reported per series: the time of
each size, its ratio to the smallest size measured in the same run, and the time per unit
(per KB, per part, per 1,000 characters) relative to the largest size's: a linear cost keeps
that last figure near 1 (a quadratic one grows with the size).

    python -m bench.input_sizes [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bot.app import make_intake
from bot.config import load_config
from bot.failpoints import Failpoints
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from bot.policy.clock import SystemClock
from storage.db import Database
from tests.harness import hostile_mails

ROOT = Path(__file__).resolve().parents[1]
SERIES: list[tuple[str, str, list[int], Callable[[int], bytes]]] = [
    ("body", "KB", [1, 10, 100, 1_000, 10_000], lambda kb: hostile_mails.body_of(kb * 1024)),
    ("parts", "part", [1, 10, 100, 1_000, 3_000], hostile_mails.many_parts),
    ("subject", "char", [100, 1_000, 10_000, 100_000, 200_000], hostile_mails.long_subject),
]


async def _one(base: Path, env: dict[str, str], raw: bytes, number: int) -> float:
    config = load_config(
        ROOT / "config.sample.yaml",
        {**env, "CVDBOT_STORAGE__PATH": str(base / f"db{number}.sqlite3")},
    )
    db = await Database.open(config.storage.path)
    try:
        intake = make_intake(db, config, SystemClock(), Failpoints({}))
        start = time.perf_counter()
        result = await intake.receive(raw, source="pipe")
        elapsed = time.perf_counter() - start
        assert result.outcome.value == "new_case", result
        return elapsed
    finally:
        await db.close()


async def main(rounds: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="cvdbot-bench-sizes-"))
    pgp = Pgp(base / "gnupg", None, None, s2k_count=MIN_S2K_COUNT)
    fingerprint = pgp.generate_key("CVD team", "security@haaksbergen.example", "pw")
    env = {
        "CVDBOT_PGP__GNUPG_HOME": str(base / "gnupg"),
        "CVDBOT_PGP__KEY_FINGERPRINT": fingerprint,
        "CVDBOT_PGP__PASSPHRASE": "pw",
        # The whole 200,000-character Subject is read, not cut at the default 64 KiB.
        "CVDBOT_LIMITS__MAX_HEADER_FIELD_BYTES": str(1024 * 1024),
    }
    number = 0
    try:
        for name, unit, sizes, build in SERIES:
            print(f"\n{name}: median of {rounds} intakes per size")
            times: list[float] = []
            for size in sizes:
                raw = build(size)
                samples = []
                for _ in range(rounds):
                    number += 1
                    samples.append(await _one(base, env, raw, number))
                times.append(statistics.median(samples))
            per_unit_last = times[-1] / sizes[-1]
            for size, seconds in zip(sizes, times, strict=True):
                ratio = seconds / times[0]
                per_unit = (seconds / size) / per_unit_last
                print(
                    f"  {size:>9,} {unit:<5} {seconds * 1000:9.1f} ms  x{ratio:8.1f} of the "
                    f"smallest   time per {unit} vs largest: {per_unit:6.2f}"
                )
    finally:
        pgp.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    sys.exit(asyncio.run(main(parser.parse_args().rounds)))
