"""Keeps the bot's long-running loops alive, or ends the process so a service manager can.

Each loop (the Matrix sync, the outbox, the mailbox) runs under `supervise`: if it raises
an unexpected exception, the traceback is logged and the loop starts again after a short
back-off. A loop that keeps dying (more than `max_restarts` times within `window` seconds)
is not restarted again: `LoopGaveUpError` ends the process with a non-zero exit code, and
systemd or Docker starts a fresh one. Never a half-alive bot that runs without its mailbox
or its homeserver. Exceptions listed as `fatal` (a configuration problem) pass straight
through.

Stopping is the other half: `end_tasks` cancels the loops and waits until they have ended,
cancelling again while one runs on (see its docstring for why once is not enough).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)


class LoopGaveUpError(Exception):
    """A loop died too often: the process should end and be started again."""


async def supervise(
    name: str,
    run: Callable[[], Awaitable[Any]],
    stop: asyncio.Event,
    *,
    fatal: tuple[type[BaseException], ...] = (),
    max_restarts: int = 5,
    window: float = 600.0,
    first_backoff: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run `run()` until `stop` is set, restarting it after it dies.

    A loop that returns while `stop` is not set has died too (it was meant to run forever).
    """
    deaths: list[float] = []
    while True:
        try:
            await run()
        except fatal:
            raise
        except Exception:
            log.exception("the %s loop died", name)
        else:
            if stop.is_set():
                return
            log.error("the %s loop ended although the bot was not stopping", name)
        if stop.is_set():
            return
        now = clock()
        deaths = [moment for moment in deaths if now - moment < window] + [now]
        if len(deaths) > max_restarts:
            raise LoopGaveUpError(
                f"the {name} loop died {len(deaths)} times within {window:.0f} s; "
                "ending the process so the service manager starts it again"
            )
        # Deaths long ago are forgiven: the back-off grows only with the recent ones.
        backoff = min(first_backoff * 2 ** (len(deaths) - 1), 60.0)
        log.warning("restarting the %s loop in %.0f s", name, backoff)
        try:
            await asyncio.wait_for(stop.wait(), backoff)
            return  # stopping while waiting to restart
        except TimeoutError:
            pass


async def end_tasks(
    tasks: Iterable[asyncio.Task[Any]], *, patience: float = 10.0, again_every: float = 0.5
) -> list[asyncio.Task[Any]]:
    """Cancel the tasks and wait until every one has ended; those still running after
    `patience` seconds are logged with their stacks and returned.

    A task is cancelled again every `again_every` seconds while it runs on. Once is not
    enough on Python 3.11: `asyncio.wait_for` (which aioimaplib wraps around every IMAP
    command) swallows a cancellation that arrives just as the awaited answer does (CPython
    gh-86296), and a loop that runs until cancelled then goes on, so the bot never stopped
    on SIGTERM. Exceptions of the ended tasks are taken here: the bot is stopping.
    """
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(again_every, left))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit
    for task in pending:
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.error(
            "the %s task did not end within %g s of the stop:\n%s",
            task.get_name(),
            patience,
            stack.getvalue().rstrip(),
        )
    return sorted(pending, key=lambda task: task.get_name())
