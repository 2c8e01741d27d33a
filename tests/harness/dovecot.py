"""A private Dovecot IMAP server on a free loopback port (plain-text login, IDLE), for tests.

It runs as root with its own base_dir and config, so it never touches a system instance.
Plain class (no pytest dependency) so benchmarks and the demo can use it too.
"""

from __future__ import annotations

import atexit
import contextlib
import imaplib
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from tests.harness.ports import free_port, port_is_open, terminate

log = logging.getLogger(__name__)

DOVECOT_BINARY = "/usr/sbin/dovecot"
_START_TIMEOUT = 30.0
# Unix socket paths are limited to 108 bytes; Dovecot puts sockets such as
# "<base_dir>/login/imap-urlauth" under base_dir, so a deep workdir needs a short base_dir.
_MAX_BASE_DIR = 60
# The tagged OK of an APPEND (RFC 4315 UIDPLUS): "[APPENDUID <uidvalidity> <uid>] ...".
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


class DovecotServer:
    """One Dovecot master process serving IMAP for passwd-file users, mail under `workdir`."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, mail_user: str | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.port = free_port()
        self.config_path = self.workdir / "dovecot.conf"
        # One passwd-file per user: Dovecot re-checks a passwd-file at most once per second,
        # so a user appended to a shared file right after a login would stay unknown for up
        # to a second. A new user's new file is read at once.
        self.passwd_dir = self.workdir / "passwd.d"
        self.mail_root = self.workdir / "mail"
        self.log_path = self.workdir / "dovecot.log"
        self.stdio_path = self.workdir / "dovecot.stdio.log"
        self.start_seconds: float | None = None
        # Dovecot refuses mail access as root, so mailboxes belong to an unprivileged user.
        # "nobody" rather than "dovecot": the mail user should not be one of Dovecot's own
        # service users.
        self._mail_pw = self._pick_mail_user(mail_user)
        self._base_dir: Path | None = None
        self._short_base_dir = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdio: IO[bytes] | None = None
        self.passwd_dir.mkdir(parents=True, exist_ok=True)
        # The auth worker reads the files as the "dovecot" internal user, not as root.
        self.passwd_dir.chmod(0o755)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def add_user(self, username: str, password: str) -> None:
        """Add a mailbox login; works before and after start().

        Replacing an existing user's password takes effect within a second (Dovecot's
        passwd-file re-check interval).
        """
        for ch in (":", "\n", "\r", "\x00"):
            if ch in username or ch in password:
                raise ValueError(f"username and password must not contain {ch!r}")
        if "/" in username or username.startswith(".") or not username:
            raise ValueError(f"username {username!r} cannot name a passwd file")
        # Written to a temporary file and renamed, so a login racing with add_user never
        # reads a half-written file.
        target = self.passwd_dir / username
        tmp = self.passwd_dir / f".{username}.tmp"
        tmp.write_text(f"{username}:{{PLAIN}}{password}::::::\n")
        tmp.chmod(0o644)
        tmp.replace(target)

    def start(self) -> None:
        """Write the config, start `dovecot -F`, block until the IMAP port accepts connections."""
        if self.running:
            return
        began = time.monotonic()
        self._check_mail_root_reachable()
        self.mail_root.mkdir(parents=True, exist_ok=True)
        os.chown(self.mail_root, self._mail_pw.pw_uid, self._mail_pw.pw_gid)
        self._base_dir = self._make_base_dir()
        self.config_path.write_text(self._config())

        self._stdio = open(self.stdio_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [DOVECOT_BINARY, "-F", "-c", str(self.config_path)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdio,
            stderr=subprocess.STDOUT,
            # Deliberately in our process group: a Ctrl-C or a CI timeout that signals the
            # group takes Dovecot down too instead of leaving it orphaned.
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + _START_TIMEOUT
        while not port_is_open(self.host, self.port, timeout=0.2):
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise RuntimeError(f"Dovecot exited during start-up ({code}):\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeError(
                    f"Dovecot did not listen on {self.host}:{self.port} within "
                    f"{_START_TIMEOUT:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.start_seconds = time.monotonic() - began
        log.info("Dovecot on %s:%d ready after %.2f s", self.host, self.port, self.start_seconds)

    def stop(self) -> None:
        """SIGTERM the master (it stops its children), wait, SIGKILL if needed."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        # After a SIGKILL of the master its children notice and exit by themselves.
        terminate(proc)
        if proc is not None:
            self._end_client_processes()
        if self._stdio is not None:
            self._stdio.close()
            self._stdio = None
        if self._short_base_dir and self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None

    def _end_client_processes(self) -> None:
        """SIGTERM the instance's imap processes that outlived the master (Dovecot leaves a
        logged-in client's process running when its master stops), as a service manager
        stopping the whole unit would: a stop really closes the clients' connections."""
        title = f"dovecot-cvdbot-test-{self.port}/"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(title.encode()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGTERM)

    def append(self, username: str, password: str, raw: bytes, folder: str = "INBOX") -> int:
        """Deliver one RFC 5322 message by IMAP APPEND (creating `folder` if needed); its UID
        (Dovecot answers with APPENDUID), so a test can wait until the bot has read it."""
        with imaplib.IMAP4(self.host, self.port, timeout=30) as imap:
            imap.login(username, password)
            if folder.upper() != "INBOX":
                # CREATE fails harmlessly when the folder already exists.
                imap.create(folder)
            status, data = imap.append(folder, None, None, raw)
            if status != "OK":
                raise RuntimeError(f"IMAP APPEND to {folder} failed: {data!r}")
            imap.logout()
        found = _APPENDUID.search(b" ".join(line for line in data if isinstance(line, bytes)))
        if found is None:
            raise RuntimeError(f"IMAP APPEND to {folder} gave no APPENDUID: {data!r}")
        return int(found.group(1))

    def log_tail(self, lines: int = 50) -> str:
        """Last lines of Dovecot's log and stdout/stderr, for failure messages."""
        parts = []
        for path in (self.log_path, self.stdio_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
            else:
                parts.append(f"--- {path}: not written ---")
        return "\n".join(parts)

    @staticmethod
    def _pick_mail_user(name: str | None) -> pwd.struct_passwd:
        for candidate in [name] if name else ["nobody", "dovecot"]:
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(candidate)
        raise RuntimeError(f"no unprivileged mail user found (tried {name or 'nobody, dovecot'})")

    def _check_mail_root_reachable(self) -> None:
        # The imap processes run as the mail user and must traverse every parent of the mail
        # directory; pytest's own tmp directories (/tmp/pytest-of-root, mode 0700) are not.
        # Failing here with a clear reason beats an opaque "Permission denied" on the first
        # login later.
        uid, gid = self._mail_pw.pw_uid, self._mail_pw.pw_gid
        for parent in [self.workdir, *self.workdir.parents]:
            mode = parent.stat()
            if mode.st_mode & stat.S_IXOTH:
                continue
            if mode.st_uid == uid and mode.st_mode & stat.S_IXUSR:
                continue
            if mode.st_gid == gid and mode.st_mode & stat.S_IXGRP:
                continue
            raise RuntimeError(
                f"Dovecot's mail user {self._mail_pw.pw_name} cannot enter {parent} "
                f"(mode {stat.filemode(mode.st_mode)}); give DovecotServer a workdir whose "
                "parents are world-searchable, e.g. tempfile.mkdtemp() chmod 0755"
            )

    def _make_base_dir(self) -> Path:
        wanted = self.workdir / "run"
        if len(str(wanted)) <= _MAX_BASE_DIR:
            self._short_base_dir = False
            wanted.mkdir(exist_ok=True)
            return wanted
        self._short_base_dir = True
        return Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))

    def _config(self) -> str:
        assert self._base_dir is not None
        uid, gid = self._mail_pw.pw_uid, self._mail_pw.pw_gid
        return f"""\
# Generated by tests/harness/dovecot.py for one private test instance.
base_dir = {self._base_dir}
instance_name = cvdbot-test-{self.port}
protocols = imap
listen = {self.host}
ssl = no
# Plain-text login is acceptable here: the listener is on loopback only.
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Tests that try a wrong password should not wait the default 2 s for the refusal.
auth_failure_delay = 0 secs
log_path = {self.log_path}
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {min(uid, 100)}
first_valid_gid = {min(gid, 100)}
mail_location = maildir:{self.mail_root}/%u
# IDLE: Dovecot notices new mail through inotify at once; this is only the fallback poll.
mailbox_idle_check_interval = 1 secs
# How often an idling client gets "* OK Still here". Short, so a client's IDLE keep-alive
# handling is exercised within a test's lifetime.
imap_idle_notify_interval = 1 secs
# Loopback tests log in often and in parallel; the default (10 per IP) is too small.
mail_max_userip_connections = 1000

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.mail_root}/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"""
