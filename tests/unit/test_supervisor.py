"""bot/ops/supervisor.py: a loop that dies is logged and restarted; one that keeps dying
ends the process; a configuration error passes straight through."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from bot.ops.supervisor import LoopGaveUpError, end_tasks, supervise


class Fatal(Exception):
    pass


async def test_a_dying_loop_is_logged_and_restarted_until_it_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"boom {runs}")
        await stop.wait()

    caplog.set_level(logging.INFO, logger="bot.ops.supervisor")
    task = asyncio.create_task(supervise("demo", loop, stop, first_backoff=0.01))
    while runs < 3:
        await asyncio.sleep(0.01)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 1)
    assert runs == 3
    died = [r for r in caplog.records if "the demo loop died" in r.getMessage()]
    assert len(died) == 2 and all(r.exc_info for r in died), "logged with the traceback"
    assert sum("restarting the demo loop" in r.getMessage() for r in caplog.records) == 2


async def test_a_loop_that_keeps_dying_gives_up_and_one_that_returns_counts_as_dead() -> None:
    stop = asyncio.Event()
    runs = 0

    async def returns_early() -> None:
        nonlocal runs
        runs += 1

    with pytest.raises(LoopGaveUpError, match="died 4 times"):
        await asyncio.wait_for(
            supervise("early", returns_early, stop, max_restarts=3, first_backoff=0.001), 2
        )
    assert runs == 4


async def test_old_deaths_are_forgiven() -> None:
    stop = asyncio.Event()
    now = [0.0]
    runs = 0

    async def dies_hourly() -> None:
        nonlocal runs
        runs += 1
        now[0] += 3600.0
        if runs == 10:
            stop.set()
            return
        raise RuntimeError("once an hour")

    await asyncio.wait_for(
        supervise(
            "hourly", dies_hourly, stop, max_restarts=2, first_backoff=0.001, clock=lambda: now[0]
        ),
        2,
    )
    assert runs == 10


async def test_fatal_passes_through_and_stop_ends_quietly() -> None:
    stop = asyncio.Event()

    async def fatal() -> None:
        raise Fatal("unencrypted room")

    with pytest.raises(Fatal):
        await supervise("fatal", fatal, stop, fatal=(Fatal,))

    async def ends_on_stop() -> None:
        stop.set()

    await asyncio.wait_for(supervise("stopping", ends_on_stop, stop), 1)


async def test_a_loop_whose_wait_for_swallowed_the_cancel_still_ends() -> None:
    """The CI run where `cvdbot run` did not stop on SIGTERM: the IMAP loop runs until it is
    cancelled, and on Python 3.11 the `wait_for` around an IMAP command returns the answer
    instead of raising when the cancel and the answer arrive together."""
    answers: list[asyncio.Future[None]] = []

    async def until_cancelled() -> None:
        while True:
            answers.append(asyncio.get_running_loop().create_future())
            await asyncio.wait_for(answers[-1], 10)

    if sys.version_info < (3, 12):
        # The race itself: one cancel, arriving with the answer, is lost.
        task = asyncio.create_task(until_cancelled(), name="imap")
        await asyncio.sleep(0)
        answers[-1].set_result(None)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done(), "the cancel was swallowed and the loop went on"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    task = asyncio.create_task(until_cancelled(), name="imap")
    await asyncio.sleep(0)
    answers[-1].set_result(None)  # end_tasks' first cancel meets the answer
    left = await asyncio.wait_for(end_tasks([task], patience=5, again_every=0.05), 5)
    assert left == [] and task.cancelled()


async def test_a_task_that_ignores_cancels_is_named_with_its_stack_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished = asyncio.Event()
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        while not finished.is_set():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                cancels += 1

    task = asyncio.create_task(stubborn(), name="stubborn")
    ended = asyncio.create_task(asyncio.sleep(0), name="ended")
    await asyncio.sleep(0)
    left = await asyncio.wait_for(end_tasks([task, ended], patience=0.2, again_every=0.05), 5)
    assert left == [task] and ended.done()
    assert cancels >= 3, "cancelled again and again while it ran on"
    [record] = [
        r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("bot.")
    ]
    assert "the stubborn task did not end within 0.2 s" in record.getMessage()
    assert "in stubborn" in record.getMessage(), "its stack says where it hangs"
    finished.set()
    await task
