"""The `cvdbot` command line: run, check-config, ingest, deadlines, digest, advisory, export,
doctor, backup, restore, keys, cross-sign."""

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


def _setup_logging(verbose: bool = False, config: Config | None = None) -> None:
    from bot.ops.logs import setup_logging

    setup_logging(verbose=verbose, form=config.logging.format if config else "text")


def _load(path: str) -> Config:
    try:
        return load_config(Path(path), os.environ)
    except ConfigError as exc:
        print(f"{path}: the configuration has problems:\n{exc.format()}", file=sys.stderr)
        raise SystemExit(EX_USAGE) from exc


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(f"{args.config}: configuration is valid")
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return EX_OK


def config_warnings(config: Config) -> list[str]:
    """What a valid configuration still lacks for a promise of the policy."""
    warnings = []
    if config.ibd is None:
        warnings.append(
            "ibd: not configured, so !ibd refuses; the policy promises to share every report "
            "with the IBD (set ibd.email and ibd.key_fingerprint)"
        )
    return warnings


def cmd_run(args: argparse.Namespace) -> int:
    from bot.app import App

    config = _load(args.config)
    _setup_logging(args.verbose, config)

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
    _setup_logging(args.verbose, config)
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


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.ops.doctor import run_checks

    config = _load(args.config)
    if args.verbose:
        _setup_logging(args.verbose, config)
    checks = asyncio.run(run_checks(config))
    for check in checks:
        print(check.line())
    failed = sum(check.verdict == "failed" for check in checks)
    warned = sum(check.verdict == "warning" for check in checks)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return EX_OK if failed == 0 else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from bot.ops.backup import BackupError, backup

    config = _load(args.config)
    try:
        manifest = backup(config, Path(args.dir))
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"cvdbot backup: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {len(manifest['files'])} files to {args.dir}")  # type: ignore[arg-type]
    return EX_OK


def cmd_restore(args: argparse.Namespace) -> int:
    from bot.ops.backup import BackupError, restore

    config = _load(args.config)
    try:
        manifest = restore(config, Path(args.dir), overwrite=args.overwrite)
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"cvdbot restore: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup made at {manifest['made_at']}; start the bot with `cvdbot run`")
    return EX_OK


def cmd_export(args: argparse.Namespace) -> int:
    from bot.app import make_pgp
    from bot.case_export import (
        UnknownCase,
        build_record,
        load_case,
        render_json,
        render_markdown,
    )
    from bot.policy.lifecycle import parse_case_id
    from storage.db import Database, DatabaseTooNewError

    config = _load(args.config)
    case_id = parse_case_id(args.case_id)
    if case_id is None:
        print(f"cvdbot: {args.case_id!r} is not a case ID (CVD-YYYY-NNNN)", file=sys.stderr)
        return EX_USAGE
    pgp = make_pgp(config)

    async def main() -> str:
        db = await Database.open(config.storage.path)
        try:
            async with db.transaction() as conn:
                stored = await load_case(conn, case_id)
        finally:
            await db.close()
        # gpg (decrypting the stored mails) runs after the transaction: it may wait for its
        # agent, and the running bot must not wait for it.
        record = build_record(stored, pgp)
        return render_json(record) if args.format == "json" else render_markdown(record)

    try:
        print(asyncio.run(main()), end="")
    except UnknownCase:
        print(f"cvdbot: there is no case {case_id}", file=sys.stderr)
        return EX_USAGE
    except DatabaseTooNewError as exc:
        print(f"cvdbot: {exc}", file=sys.stderr)
        return EX_CONFIG
    finally:
        pgp.close()
    return EX_OK


def cmd_cross_sign(args: argparse.Namespace) -> int:
    from bot.matrix.cross_sign_cli import cmd_cross_sign as run_cross_sign

    config = _load(args.config)
    _setup_logging(args.verbose)
    return run_cross_sign(config, args)


def cmd_advisory(args: argparse.Namespace) -> int:
    from bot.advisory.from_case import NoAdvisory, advisories
    from bot.policy.lifecycle import parse_case_id
    from storage.db import Database, DatabaseTooNewError

    config = _load(args.config)
    case_id = parse_case_id(args.case_id)
    if case_id is None:
        print(f"{args.case_id!r} is not a case ID (CVD-YYYY-NNNN)", file=sys.stderr)
        return EX_USAGE

    async def main() -> str:
        db = await Database.open(config.storage.path)
        try:
            async with db.transaction() as conn:
                found = await advisories(conn, config, case_id, datetime.now(UTC))
        finally:
            await db.close()
        return found.csaf if args.format == "csaf" else found.markdown

    try:
        print(asyncio.run(main()), end="")
    except NoAdvisory as exc:
        print(f"cvdbot advisory: {exc}", file=sys.stderr)
        return EX_USAGE
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
    with_config(
        "doctor", "check the deployment: homeserver, rooms, IMAP, SMTP, gpg, calendar, database"
    ).set_defaults(func=cmd_doctor)
    backup = with_config("backup", "save database, Matrix crypto store and gpg home (live)")
    backup.add_argument("dir", help="a new, empty directory for the backup")
    backup.set_defaults(func=cmd_backup)
    restore = with_config("restore", "put a backup back in place (with the bot stopped)")
    restore.add_argument("dir", help="the backup directory")
    restore.add_argument(
        "--overwrite", action="store_true", help="replace the database, store and gpg home"
    )
    restore.set_defaults(func=cmd_restore)
    export = with_config(
        "export",
        "write one case (audit log, mails in and out with their decoded text, decisions) "
        "to standard output, for the records before its data is deleted",
    )
    export.add_argument("case_id", metavar="CASE-ID", help="e.g. CVD-2026-0007")
    export.add_argument(
        "--format",
        choices=("json", "markdown"),
        default="json",
        help="json (default) or markdown; run twice for both",
    )
    export.set_defaults(func=cmd_export)
    from bot.matrix.cross_sign_cli import add_cross_sign_arguments

    cross_sign = with_config(
        "cross-sign",
        "create (or with --reset replace) the bot account's cross-signing keys, sign the "
        "bot's device and print the master key fingerprint",
    )
    add_cross_sign_arguments(cross_sign)
    cross_sign.set_defaults(func=cmd_cross_sign)
    advisory = with_config("advisory", "print a fixed case's advisory (CSAF 2.0 or Markdown)")
    advisory.add_argument("case_id", metavar="CASE-ID", help="e.g. CVD-2026-0007")
    advisory.add_argument("--format", choices=("csaf", "markdown"), default="csaf")
    advisory.set_defaults(func=cmd_advisory)
    from bot.pgp.keys_cli import add_key_commands

    add_key_commands(with_config("keys", "the bot's OpenPGP key: generate, export, fingerprint"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
