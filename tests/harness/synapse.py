"""A real Synapse homeserver on a free loopback port, for tests, benchmarks and the demo.

Plain class (no pytest dependency) so `bench/` and `make demo` can use it too.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import IO, Any

import yaml

from tests.harness.ports import free_port, terminate

log = logging.getLogger(__name__)

# Generous enough that no test, benchmark or demo ever meets a limiter, small enough to stay
# well inside the integer and float ranges Synapse's token buckets use.
_UNLIMITED: dict[str, float] = {"per_second": 100000.0, "burst_count": 1000000}

# Every rate limiter Synapse 1.163 reads from its config (synapse/config/ratelimiting.py).
# Nested keys ("rc_login": {"address": ...}) mirror Synapse's dotted lookups.
_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {"address": _UNLIMITED, "account": _UNLIMITED, "failed_attempts": _UNLIMITED},
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_invites": {"per_room": _UNLIMITED, "per_user": _UNLIMITED, "per_issuer": _UNLIMITED},
    "rc_third_party_invite": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_profile": _UNLIMITED,
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 100000,
        "sleep_delay": 0,
        "reject_limit": 100000,
        "concurrent": 1000,
    },
}

_START_TIMEOUT = 90.0


class SynapseServer:
    """One Synapse process with its config, SQLite database and logs under `workdir`."""

    server_name = "localhost"

    def __init__(self, workdir: Path, log_level: str = "WARNING") -> None:
        self.workdir = Path(workdir).resolve()
        self.log_level = log_level
        self.port = 0
        self.config_path = self.workdir / "homeserver.yaml"
        self.log_path = self.workdir / "homeserver.log"
        self.stdio_path = self.workdir / "homeserver.stdio.log"
        self.start_seconds: float | None = None
        self._shared_secret = ""
        self._admin_token = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdio: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the client API, e.g. ``http://127.0.0.1:41234``."""
        if not self.port:
            raise RuntimeError("SynapseServer has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Generate and patch the config, start Synapse, and block until the client API answers."""
        if self.running:
            return
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            self._generate_config()
        if not self.port:
            # Chosen once: a restart (stop(), start()) keeps the URL that clients were
            # configured with, like a real server coming back.
            self.port = free_port()
        self._patch_config()

        self._stdio = open(self.stdio_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "--config-path",
                str(self.config_path),
            ],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdio,
            stderr=subprocess.STDOUT,
            # Deliberately in our process group: a Ctrl-C or a CI timeout that signals the
            # group takes Synapse down too instead of leaving it orphaned.
        )
        atexit.register(self.stop)
        self._wait_until_ready()
        self.start_seconds = time.monotonic() - began
        log.info("Synapse on %s ready after %.1f s", self.url, self.start_seconds)

    def stop(self) -> None:
        """SIGTERM, wait up to 15 s, then SIGKILL. Safe to call twice."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        terminate(proc)
        if self._stdio is not None:
            self._stdio.close()
            self._stdio = None

    def register(self, localpart: str, password: str, admin: bool = False) -> str:
        """Create a user through the shared-secret admin API and return its full user ID.

        Uses the same nonce + HMAC-SHA1 handshake as `register_new_matrix_user`, but with the
        standard library only so it works wherever the harness is imported.
        """
        nonce = self._request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self._shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce.encode(), localpart.encode(), password.encode()):
            mac.update(part)
            mac.update(b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
            # No device or access token: the clients log in themselves, and a keyless extra
            # device would only clutter the device lists the E2EE code looks at.
            "inhibit_login": True,
        }
        result = self._request("POST", "/_synapse/admin/v1/register", body)
        user_id: str = result["user_id"]
        return user_id

    def login(self, user_id: str, password: str) -> str:
        """Password login without a client library; returns an access token (new device)."""
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
        }
        token: str = self._request("POST", "/_matrix/client/v3/login", body)["access_token"]
        return token

    def admin_token(self) -> str:
        """An access token of a server admin, for the admin API: a user registered once with
        the shared secret's admin flag (its tokens live in the database, so they outlast a
        restart of this server)."""
        if not self._admin_token:
            password = uuid.uuid4().hex
            admin = self.register(f"admin-{uuid.uuid4().hex[:8]}", password, admin=True)
            self._admin_token = self.login(admin, password)
        return self._admin_token

    def delete_device(self, user_id: str, device_id: str) -> None:
        """What a homeserver admin does to a lost or misused device: the admin API's
        `DELETE /_synapse/admin/v2/users/<user>/devices/<device>`. Synapse deletes the device
        with its access tokens, its device keys and the signatures on them."""
        user = urllib.parse.quote(user_id, safe="")
        device = urllib.parse.quote(device_id, safe="")
        path = f"/_synapse/admin/v2/users/{user}/devices/{device}"
        self._request("DELETE", path, token=self.admin_token())

    def log_tail(self, lines: int = 50) -> str:
        """Last lines of Synapse's log and of its stdout/stderr, for failure messages."""
        parts = []
        for path in (self.log_path, self.stdio_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
            else:
                parts.append(f"--- {path}: not written ---")
        return "\n".join(parts)

    def _generate_config(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "synapse.app.homeserver",
                "--server-name",
                self.server_name,
                "--config-path",
                str(self.config_path),
                "--data-directory",
                str(self.workdir),
                "--generate-config",
                "--report-stats=no",
            ],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"synapse --generate-config failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )

    def _patch_config(self) -> None:
        config: dict[str, Any] = yaml.safe_load(self.config_path.read_text())
        self._shared_secret = str(config["registration_shared_secret"])
        log_config = self.workdir / "log.config.yaml"
        log_config.write_text(yaml.safe_dump(self._log_config()))
        config.update(
            {
                "listeners": [
                    {
                        "port": self.port,
                        "bind_addresses": ["127.0.0.1"],
                        "type": "http",
                        "tls": False,
                        "x_forwarded": False,
                        # "client" also mounts /_synapse/admin, which register() needs.
                        "resources": [{"names": ["client"], "compress": False}],
                    }
                ],
                "database": {
                    "name": "sqlite3",
                    "args": {"database": str(self.workdir / "homeserver.db")},
                },
                "media_store_path": str(self.workdir / "media_store"),
                "pid_file": str(self.workdir / "homeserver.pid"),
                "log_config": str(log_config),
                "report_stats": False,
                "enable_metrics": False,
                "trusted_key_servers": [],
                "suppress_key_server_warning": True,
                "presence": {"enabled": False},
                "url_preview_enabled": False,
                "enable_registration": False,
                # Hashing passwords at the production cost makes every register/login take
                # ~0.3 s of CPU on this 2-core machine; tests need neither.
                "bcrypt_rounds": 4,
                **_RATE_LIMITS,
            }
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter"}},
            "handlers": {
                # A plain unbuffered file handler: when start-up fails the tail must already
                # be on disk for the error message.
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filters": ["context"],
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {
                # Start-up and shutdown lines are few and make failures readable.
                "synapse.app": {"level": "INFO"},
                "synapse.storage.SQL": {"level": "WARNING"},
            },
            "root": {"level": self.log_level, "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        url = f"http://127.0.0.1:{self.port}/_matrix/client/versions"
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise RuntimeError(f"Synapse exited during start-up ({code}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(
                    f"Synapse did not answer {url} within {_START_TIMEOUT:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, token: str = ""
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(  # noqa: S310 - always our own http://127.0.0.1 URL
            self.url + path,
            data=data,
            method=method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(f"Synapse {method} {path} -> {exc.code}: {detail}") from exc


def main() -> None:
    """Start a throwaway server by hand: ``python -m tests.harness.synapse /tmp/syn``."""
    logging.basicConfig(level=logging.INFO)
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else "synapse-data")
    server = SynapseServer(workdir)
    server.start()
    print(f"Synapse {server.url} up in {server.start_seconds:.1f} s; Ctrl-C stops it", flush=True)
    try:
        while server.running:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
