"""`cvdbot keys --config PATH generate|export|fingerprint`: the bot's own OpenPGP key.

`generate` makes the key pair in `pgp.gnupg_home`, protected with `pgp.passphrase`, and prints
the fingerprint to put in `pgp.key_fingerprint` (so it works before that key is configured);
`export` prints the public key, ASCII-armored, for the website and security.txt;
`fingerprint` shows the configured key's fingerprint in groups of four, as people compare it.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config, ConfigError, load_config
from bot.pgp.gpg import Pgp, PgpError, format_fingerprint

__all__ = ["add_key_commands", "cmd_keys"]

EX_OK = 0
EX_FAILED = 1
EX_USAGE = 2

DEFAULT_NAME = "CVD team"
# Lets `generate` load a configuration that has no key yet; never used as a key.
_NO_KEY_YET = "0" * 40


@dataclass(frozen=True)
class _Loaded:
    config: Config
    fingerprint: str | None  # None: pgp.key_fingerprint is not configured yet


def add_key_commands(parser: argparse.ArgumentParser) -> None:
    """The `generate`, `export` and `fingerprint` subcommands below `cvdbot keys`."""
    sub = parser.add_subparsers(dest="keys_command", required=True)
    generate = sub.add_parser(
        "generate",
        help="create the bot's key pair in pgp.gnupg_home and print its fingerprint",
        description="Create the bot's key pair (a signing key with an encryption subkey) in "
        "pgp.gnupg_home, protected with pgp.passphrase, and print the fingerprint to put in "
        "pgp.key_fingerprint. Refuses when the configured key already exists.",
    )
    generate.add_argument("--name", default=DEFAULT_NAME, help=f"default: {DEFAULT_NAME!r}")
    generate.add_argument("--email", help="the key's address (default: smtp.from_address)")
    generate.add_argument(
        "--key-type",
        default="ed25519/cv25519",
        help="ed25519/cv25519 (default), rsa3072 or rsa4096",
    )
    generate.add_argument(
        "--expire",
        default="0",
        help="when the key expires, as gpg reads it: 0 (never, the default), 2y, 18m, "
        "YYYY-MM-DD. An expired key stops the bot from signing.",
    )
    export = sub.add_parser(
        "export",
        help="print the public key, ASCII-armored (for the website and security.txt)",
    )
    export.add_argument("--output", help="write it to this file instead of standard output")
    sub.add_parser("fingerprint", help="show the configured key's fingerprint, grouped")
    parser.set_defaults(func=cmd_keys)


def _load(path: str, *, key_optional: bool) -> _Loaded | None:
    try:
        config = load_config(Path(path), os.environ)
        return _Loaded(config, config.pgp.key_fingerprint)
    except ConfigError as exc:
        only_key = all(where.startswith("pgp.key_fingerprint") for where, _ in exc.problems)
        if not (key_optional and only_key):
            print(f"{path}: the configuration has problems:\n{exc.format()}", file=sys.stderr)
            return None
    # The configuration is fine except for the key that is about to be made.
    environ = {**os.environ, "CVDBOT_PGP__KEY_FINGERPRINT": _NO_KEY_YET}
    return _Loaded(load_config(Path(path), environ), None)


def cmd_keys(args: argparse.Namespace) -> int:
    command: str = args.keys_command
    loaded = _load(args.config, key_optional=command == "generate")
    if loaded is None:
        return EX_USAGE
    try:
        if command == "generate":
            return _generate(args, loaded)
        if loaded.fingerprint is None:
            print("pgp.key_fingerprint is not configured", file=sys.stderr)
            return EX_USAGE
        if command == "export":
            return _export(args, loaded.config, loaded.fingerprint)
        return _fingerprint(loaded.config, loaded.fingerprint)
    except PgpError as exc:
        print(f"cvdbot keys {command}: {exc}", file=sys.stderr)
        return EX_FAILED


def _generate(args: argparse.Namespace, loaded: _Loaded) -> int:
    config = loaded.config
    passphrase = config.pgp.passphrase.get_secret_value()
    pgp = Pgp(config.pgp.gnupg_home, loaded.fingerprint, passphrase)
    try:
        if loaded.fingerprint is not None and pgp.fingerprint_ok():
            print(
                f"The configured key {format_fingerprint(loaded.fingerprint)} is already in "
                f"{config.pgp.gnupg_home}; nothing was generated. To replace it, remove "
                "pgp.key_fingerprint from the configuration first.",
                file=sys.stderr,
            )
            return EX_FAILED
        email = args.email or config.smtp.from_address
        fingerprint = pgp.generate_key(
            args.name, email, passphrase, key_type=args.key_type, expire_date=args.expire
        )
        summary = pgp.key_summary(fingerprint)
    finally:
        pgp.close()
    print(f"Generated the bot's key in {config.pgp.gnupg_home}:")
    print(f"  {summary}")
    print("Put its fingerprint in the configuration:")
    print("  pgp:")
    print(f'    key_fingerprint: "{format_fingerprint(fingerprint)}"')
    print(f"Then publish the public key: cvdbot keys --config {args.config} export")
    return EX_OK


def _export(args: argparse.Namespace, config: Config, fingerprint: str) -> int:
    pgp = Pgp(config.pgp.gnupg_home, fingerprint, None)
    armored = pgp.export_public_key(fingerprint)
    if args.output:
        Path(args.output).write_text(armored, encoding="ascii")
        print(f"Wrote the public key {format_fingerprint(fingerprint)} to {args.output}")
    else:
        sys.stdout.write(armored)
    return EX_OK


def _fingerprint(config: Config, fingerprint: str) -> int:
    pgp = Pgp(config.pgp.gnupg_home, fingerprint, None)
    print(format_fingerprint(fingerprint))
    print(pgp.key_summary(fingerprint))
    if not pgp.fingerprint_ok():
        print(
            f"Warning: the secret key is missing from {config.pgp.gnupg_home}, or the key has "
            "expired or been revoked: the bot cannot decrypt or sign with it.",
            file=sys.stderr,
        )
        return EX_FAILED
    return EX_OK
