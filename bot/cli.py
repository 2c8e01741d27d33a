"""The `cvdbot` command line: run, check-config, ingest, deadlines, digest, keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.config import Config, ConfigError, load_config

log = logging.getLogger("cvdbot")

EX_OK = 0
EX_USAGE = 2
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_CONFIG = 78  # e.g. a database written by a newer cvdbot: fix the installation, not the input


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # nio logs event contents at DEBUG and noisy warnings about unverified devices at INFO.
    for noisy in ("nio", "peewee", "aiosqlite", "aioimaplib", "gnupg", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(path: str) -> Config:
    try:
        return load_config(Path(path), os.environ)
    except ConfigError as exc:
        print(f"{path}: the configuration has problems:\n{exc.format()}", file=sys.stderr)
        raise SystemExit(EX_USAGE) from exc


def cmd_check_config(args: argparse.Namespace) -> int:
    _load(args.config)
    print(f"{args.config}: configuration is valid")
    return EX_OK


def cmd_run(args: argparse.Namespace) -> int:
    from bot.app import App

    config = _load(args.config)
    _setup_logging(args.verbose)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("cvdbot starting")
        return await App(config, environ=os.environ).run(stop)

    return asyncio.run(main())


def cmd_ingest(args: argparse.Namespace) -> int:
    from bot.app import make_intake
    from bot.failpoints import Failpoints
    from bot.mailin.intake import IntakeFailed
    from bot.mailin.parse import NotAMailError
    from bot.policy.clock import SystemClock
    from storage.db import Database, DatabaseTooNewError

    config = _load(args.config)
    _setup_logging(args.verbose)
    if args.file in (None, "-"):
        raw = sys.stdin.buffer.read()
    else:
        raw = Path(args.file).read_bytes()

    async def main() -> int:
        try:
            db = await Database.open(config.storage.path)
        except (OSError, sqlite3.Error) as exc:
            log.error("cannot open the database (%s); the MTA should retry", exc)
            return EX_TEMPFAIL
        except DatabaseTooNewError as exc:
            # A configuration problem, yet EX_TEMPFAIL, not EX_CONFIG: MTAs bounce on 78
            # (Postfix maps it to 5.3.5), which would send the report back to its reporter.
            # Deferred, it is delivered once the right cvdbot is installed.
            log.error("%s; the MTA should keep the mail and retry", exc)
            return EX_TEMPFAIL
        try:
            intake = make_intake(db, config, SystemClock(), Failpoints(os.environ))
            result = await intake.receive(raw, source="pipe")
        except NotAMailError as exc:
            log.error("not a mail message: %s", exc)
            return EX_DATAERR
        except IntakeFailed as exc:
            # The MTA delivers it again; a second failure quarantines it (stored, exit 0).
            log.error("the intake failed (%s); the MTA should retry", exc)
            return EX_TEMPFAIL
        except (OSError, sqlite3.Error) as exc:
            log.error("could not store the mail (%s); the MTA should retry", exc)
            return EX_TEMPFAIL
        finally:
            await db.close()
        print(f"{result.outcome.value} {result.case_id or '-'}")
        return EX_OK

    return asyncio.run(main())


def cmd_deadlines(args: argparse.Namespace) -> int:
    from bot.app import make_calendar
    from bot.policy.promises import promise_days
    from bot.policy.workdays import case_deadlines, format_deadlines_lines

    config = _load(args.config)
    calendar = make_calendar(config)
    try:
        received = datetime.fromisoformat(args.received)
    except ValueError:
        print(f"--received: {args.received!r} is not an ISO 8601 time", file=sys.stderr)
        return EX_USAGE
    if received.tzinfo is None:
        # A time without offset is read as the policy's local time, as a person means it.
        received = received.replace(tzinfo=ZoneInfo(config.policy.timezone))
    deadlines = case_deadlines(calendar, received.astimezone(UTC), promise_days(config.policy))
    for line in format_deadlines_lines(deadlines, calendar.tz):
        print(line)
    return EX_OK


def cmd_digest(args: argparse.Namespace) -> int:
    from bot.app import make_calendar
    from bot.watch.digest_contents import build_digest
    from bot.watch.digest_render import render_text
    from storage.db import Database, DatabaseTooNewError

    config = _load(args.config)
    if args.at is None:
        at = datetime.now(UTC)
    else:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            print(f"--at: {args.at!r} is not an ISO 8601 time", file=sys.stderr)
            return EX_USAGE
        if at.tzinfo is None:
            at = at.replace(tzinfo=ZoneInfo(config.policy.timezone))
    calendar = make_calendar(config)

    async def main() -> str:
        db = await Database.open(config.storage.path)
        try:
            async with db.transaction() as conn:
                digest = await build_digest(conn, config, calendar, at.astimezone(UTC))
        finally:
            await db.close()
        return render_text(digest, calendar.tz, config.matrix.case_room)

    try:
        print(asyncio.run(main()))
    except DatabaseTooNewError as exc:
        print(f"cvdbot: {exc}", file=sys.stderr)
        return EX_CONFIG
    return EX_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvdbot",
        description="Coordinated Vulnerability Disclosure from an encrypted Matrix room.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", required=True, help="path to the YAML configuration")
        command.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        return command

    with_config("run", "run the bot until SIGTERM or SIGINT").set_defaults(func=cmd_run)
    with_config("check-config", "validate the configuration and list every problem").set_defaults(
        func=cmd_check_config
    )
    ingest = with_config("ingest", "store one RFC 5322 message (MTA pipe transport)")
    ingest.add_argument("file", nargs="?", help="the message file, or - for standard input")
    ingest.set_defaults(func=cmd_ingest)
    deadlines = with_config("deadlines", "print each promise's deadline for a receipt time")
    deadlines.add_argument(
        "--received", required=True, help="receipt time, ISO 8601 (local time if no offset)"
    )
    deadlines.set_defaults(func=cmd_deadlines)
    digest = with_config("digest", "print the managers' digest (the bot sends it at digest.time)")
    # Printing is all this command does; --print stays accepted because the documented
    # form is `cvdbot digest --config PATH --print`.
    digest.add_argument(
        "--print",
        action="store_true",
        help="print the digest as plain text (optional: printing is what this command does)",
    )
    digest.add_argument("--at", help="as of this time, ISO 8601 (local time if no offset)")
    digest.set_defaults(func=cmd_digest)
    from bot.pgp.keys_cli import add_key_commands

    add_key_commands(with_config("keys", "the bot's OpenPGP key: generate, export, fingerprint"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
