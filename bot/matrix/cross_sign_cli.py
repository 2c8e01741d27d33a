"""`cvdbot cross-sign --config PATH [--reset]`: the bot account's cross-signing keys.

Without `--reset` it does what every `cvdbot run` does at start: creates and publishes the
keys when the account has none, checks them otherwise (uploading nothing when all is in
order), and prints the master key's fingerprint. With `--reset` it replaces whatever keys the
account has (also keys someone made in Element) with new ones of the bot's own, using
`matrix.password` for the server's user-interactive auth, and signs the bot's device again.

It uses the device the bot's first start saved in `matrix.store_path`; it never logs in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig

from bot.config import Config
from bot.matrix.client import MatrixFatalError, cross_signing_for, load_session, pickle_key
from bot.matrix.cross_signing import CrossSigningError, Outcome, fingerprint

EX_OK = 0
EX_FAILED = 1  # keys the bot does not hold, or the server refused
EX_CONFIG = 78  # no device yet: `cvdbot run` has never started with this store


def add_cross_sign_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reset",
        action="store_true",
        help="replace the account's cross-signing keys (also ones made in Element) with new "
        "keys of the bot's own, and sign the bot's device again",
    )


async def _cross_sign(config: Config, reset: bool) -> int:
    session = load_session(config.matrix)
    if session is None:
        print(
            f"no Matrix device in {config.matrix.store_path} yet: start `cvdbot run` once "
            "(it creates the device and its cross-signing keys)",
            file=sys.stderr,
        )
        return EX_CONFIG
    store = Path(config.matrix.store_path)
    client = AsyncClient(
        config.matrix.homeserver,
        session.user_id,
        device_id=session.device_id,
        store_path=str(store),
        config=AsyncClientConfig(
            encryption_enabled=True, store_sync_tokens=False, pickle_key=pickle_key(store)
        ),
    )
    try:
        client.restore_login(session.user_id, session.device_id, session.access_token)
        status = await cross_signing_for(client, config.matrix).ensure(reset=reset)
    except CrossSigningError as exc:
        print(f"cross-signing failed: {exc}", file=sys.stderr)
        return EX_FAILED
    finally:
        await client.close()
    print(status.describe())
    if status.outcome is Outcome.FOREIGN:
        return EX_FAILED
    assert status.master_key is not None
    print(f"master key fingerprint: {fingerprint(status.master_key)}")
    print(f"device {session.device_id} is signed by the account's self-signing key")
    return EX_OK


def cmd_cross_sign(config: Config, args: argparse.Namespace) -> int:
    os.umask(0o077)
    try:
        return asyncio.run(_cross_sign(config, bool(args.reset)))
    except MatrixFatalError as exc:
        print(str(exc), file=sys.stderr)
        return EX_CONFIG
