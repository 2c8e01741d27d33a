"""Command round trip: a team member sends `!status` in a case thread until the reply is read.

Measured against a bare matrix-nio E2EE echo client (bench/echo_client.py) in its own
encrypted room on the same Synapse, rounds interleaved (bot, baseline, bot, ...) so that
drift on a shared machine hits both. Target: median bot/baseline <= 1.3.

    python -m bench.command_roundtrip [--rounds 50]
"""

from __future__ import annotations

import argparse
import time

from bench.common import (
    BenchEnv,
    Series,
    emit_json,
    ms,
    parse_args,
    print_table,
    progress,
    ratio,
    replies_to,
    run,
)
from tests.harness.person import Person

WARMUP_ROUNDS = 3
TARGET_MEDIAN_RATIO = 1.3
REPLY_TIMEOUT = 30.0


async def round_trip(person: Person, room_id: str, thread_root: str) -> float:
    """Seconds from sending `!status` until the decrypted reply is in the person's client."""
    began = time.perf_counter()
    event_id = await person.send(room_id, "!status", thread_root=thread_root)
    await person.wait_for_message(room_id, replies_to(event_id), timeout=REPLY_TIMEOUT)
    return time.perf_counter() - began


async def main(args: argparse.Namespace) -> None:
    async with BenchEnv(keep=args.keep) as env:
        deployment = await env.start_bot()
        baseline = await env.start_baseline()
        root = await env.open_case(deployment, "Benchmark case for !status")
        team = env.team
        # The baseline thread: any message of the team member's in the baseline room.
        baseline_root = await team.send(baseline.room_id, "Benchmark thread for !status")

        async def bot_round() -> float:
            return await round_trip(team, deployment.room_id, root.event_id)

        async def baseline_round() -> float:
            return await round_trip(team, baseline.room_id, baseline_root)

        progress(f"warming up ({WARMUP_ROUNDS} rounds each)")
        for _ in range(WARMUP_ROUNDS):
            await bot_round()
            await baseline_round()
        bot, base = Series("cvdbot"), Series("baseline")
        progress(f"measuring {args.rounds} rounds each, interleaved")
        for index in range(args.rounds):
            bot.samples.append(await bot_round())
            base.samples.append(await baseline_round())
            if (index + 1) % 10 == 0:
                progress(f"  {index + 1}/{args.rounds}")
        undecryptable = len(team.undecryptable())

    median_ratio = ratio(bot.median, base.median)
    p90_ratio = ratio(bot.p90, base.p90)
    print_table(
        f"!status round trip, {args.rounds} rounds each (interleaved)",
        ["", "median", "p90", "min", "max"],
        [
            [s.name, ms(s.median), ms(s.p90), ms(min(s.samples)), ms(max(s.samples))]
            for s in (bot, base)
        ]
        + [["ratio bot/baseline", f"{median_ratio:.2f}", f"{p90_ratio:.2f}", "", ""]],
    )
    met = median_ratio <= TARGET_MEDIAN_RATIO
    print(
        f"target: median ratio <= {TARGET_MEDIAN_RATIO}: {'met' if met else 'MISSED'}"
        + (f"; {undecryptable} undecryptable events" if undecryptable else "")
    )
    emit_json(
        {
            "bench": "command_roundtrip",
            "rounds": args.rounds,
            "bot": bot.as_json(),
            "baseline": base.as_json(),
            "ratio_median": median_ratio,
            "ratio_p90": p90_ratio,
            "target_ratio_median": TARGET_MEDIAN_RATIO,
            "target_met": met,
            "undecryptable": undecryptable,
        }
    )


if __name__ == "__main__":
    run(main, parse_args(__doc__.splitlines()[0], rounds=50))
