"""The container image's HEALTHCHECK: asks the running bot's /healthz on `monitoring.listen`.

`python -m bot.ops.healthcheck --config PATH` reads the same file and `CVDBOT_*`
environment as `cvdbot run`, then exits 0 when /healthz answers 200 and 1 when it answers
anything else or nothing within the time limit; it prints the endpoint's answer (part names
and ages, never case content). Without `monitoring.listen` there is nothing to ask: it says
so and exits 0, and Docker only sees whether the process runs. It is the image's probe, not
a `cvdbot` command, and it changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.config import ConfigError, load_config

TIMEOUT_SECONDS = 5.0
MAX_BODY = 4096

# A bot that listens on every address is asked on loopback, from inside its container.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104


def probe_url(listen: str) -> str:
    """The /healthz URL for a `monitoring.listen` value ("host:port", "[v6]:port")."""
    host, _, port = listen.rpartition(":")
    bare = host.strip("[]")
    bare = _WILDCARDS.get(bare, bare)
    if ":" in bare:
        bare = f"[{bare}]"
    return f"http://{bare}:{port}/healthz"


def probe(url: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(healthy, what the endpoint said or why it could not be asked)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            body = response.read(MAX_BODY).decode("utf-8", "replace")
            return response.status == 200, body
    except urllib.error.HTTPError as exc:
        return False, exc.read(MAX_BODY).decode("utf-8", "replace") or f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return False, f"{url}: no answer ({exc})"


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.ops.healthcheck", description=__doc__)
    parser.add_argument("--config", required=True, help="the config file cvdbot runs with")
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config), os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"{args.config}: the configuration has problems:\n{exc.format()}")
        return 1
    listen = config.monitoring.listen
    if listen is None:
        print("monitoring.listen is not set: no /healthz to ask; only the process is watched")
        return 0
    healthy, said = probe(probe_url(listen))
    print(said.rstrip())
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
