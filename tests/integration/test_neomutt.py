"""Issue 10, item 1, read in a real mail client: neomutt with gpg, as the reporter.

An encrypted report with its own subject ("SQLi in https://gemeente.example/login"), the
team's `!ack`, and the receipt confirmation the test SMTP server took, delivered into the
reporter's Maildir. neomutt (GPGME, `crypt_protected_headers_read`) runs in a tmux pane
with the reporter's gpg home; its screens are captured as text with `tmux capture-pane`:

- the message list before opening shows `[CVD-…] Receipt confirmation` and not the
  reporter's subject (that is all a relay, or anyone looking over the list, sees);
- the opened message shows the reporter's subject from the protected headers, a good
  signature by the bot's key, and the organisation's name in `From:`.

Marked `neomutt`: pyproject's addopts leave it out of `make test`, because it needs the
neomutt and tmux packages; `make neomutt-check` (or `pytest -m neomutt`) runs it. The
captured screens are printed (`-s` shows them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness.gpg_agents import stop_agents_under
from tests.harness.reporter_pgp import ReporterGpg
from tests.harness.signed_mail import bot_public_key
from tests.harness.smtp import ReceivedMail
from tests.integration.conftest import MakeDeployment
from tests.integration.sample_mails import ENGLISH_BODY
from tests.integration.test_intake import wait_in_thread, wait_root

pytestmark = [pytest.mark.neomutt, pytest.mark.timeout(180)]

REPORTER_SUBJECT = "SQLi in https://gemeente.example/login"
ORGANISATION = "Information security team, Municipality of Haaksbergen"
BOT_ADDRESS = "security@haaksbergen.example"
CASE_ID = re.compile(r"CVD-\d{4}-\d{4,}")
COLUMNS, ROWS = 160, 30


def deliver_to_maildir(maildir: Path, mail: ReceivedMail) -> Path:
    """What the reporter's mail server does with the mail: one new file in a Maildir."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    name = f"{int(time.time())}.{uuid.uuid4().hex}.reporter"
    (maildir / "tmp" / name).write_bytes(mail.raw)
    (maildir / "tmp" / name).rename(maildir / "new" / name)
    return maildir / "new" / name


def unlock_for_the_session(reporter: ReporterGpg) -> None:
    """The reporter has typed the passphrase once this session: their gpg-agent holds it.

    neomutt asks gpg-agent, which would ask a pinentry; presetting the passphrase for the
    key's keygrips (gpg-preset-passphrase, allowed in gpg-agent.conf) is the same state
    without a pinentry dialogue in the test."""
    conf = reporter.home / "gpg-agent.conf"
    lines = conf.read_text().splitlines() if conf.exists() else []
    conf.write_text("\n".join([*lines, "allow-preset-passphrase"]) + "\n")
    subprocess.run(
        ["gpgconf", "--homedir", str(reporter.home), "--reload", "gpg-agent"],
        check=False,
        capture_output=True,
        timeout=30,
    )
    listing = reporter.gpg("--with-colons", "--with-keygrip", "--list-secret-keys").decode()
    grips = [line.split(":")[9] for line in listing.splitlines() if line.startswith("grp:")]
    assert grips, listing
    preset = next(
        p
        for p in (
            Path("/usr/lib/gnupg/gpg-preset-passphrase"),
            Path("/usr/libexec/gpg-preset-passphrase"),
            Path("/usr/lib/gnupg2/gpg-preset-passphrase"),
        )
        if p.exists()
    )
    env = {**os.environ, "GNUPGHOME": str(reporter.home)}
    for grip in grips:
        subprocess.run(
            [str(preset), "--preset", grip],
            input=reporter.passphrase.encode(),
            env=env,
            check=True,
            capture_output=True,
            timeout=30,
        )


def write_muttrc(path: Path, maildir: Path, reporter: ReporterGpg) -> Path:
    path.write_text(
        "\n".join(
            [
                f'set folder="{maildir.parent}"',
                "set mbox_type=Maildir",
                f'set spool_file="{maildir}"',
                'set record=""',
                'set postponed=""',
                f'set from="{reporter.sender}"',
                "set crypt_use_gpgme=yes",
                "set crypt_protected_headers_read=yes",
                "set crypt_verify_sig=yes",
                "set sort=date",
                "set mail_check_stats=no",
                "set help=no",
                "set pager_index_lines=0",
                "set pager_stop=yes",
                "set wait_key=no",
                "set header_cache=''",
                'set index_format="%4C %Z %{%b %d} %-56.56L %s"',
                "ignore *",
                "unignore from: to: subject: date:",
                "",
            ]
        )
    )
    return path


class Pane:
    """One tmux server of our own (its own socket) with one pane running a command."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"tmux {args}: {done.stderr}"
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "cvd")

    def wait_screen(self, done: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while not done(screen):
            if time.monotonic() > deadline:
                raise AssertionError(f"neomutt never showed {what}; the screen:\n{screen}")
            time.sleep(0.2)
            screen = self.screen()
        return screen


@contextmanager
def neomutt_in_tmux(workdir: Path, muttrc: Path, gnupg_home: Path) -> Iterator[Pane]:
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GNUPGHOME": str(gnupg_home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm-256color",
        "TZ": "Europe/Amsterdam",
    }
    pane = Pane(workdir / "tmux.sock", env)
    pane.tmux(
        "new-session",
        "-d",
        "-s",
        "cvd",
        "-x",
        str(COLUMNS),
        "-y",
        str(ROWS),
        f"neomutt -n -F {muttrc}",
    )
    try:
        yield pane
    finally:
        subprocess.run(
            ["tmux", "-S", str(pane.socket), "kill-server"],
            env=env,
            capture_output=True,
            timeout=30,
            check=False,
        )


def show(title: str, screen: str) -> None:
    """The captured screen in the test output, a run of empty rows as one marker line."""
    print(f"--- {title} ---")
    empty = 0
    for line in [line.rstrip() for line in screen.splitlines()]:
        if not line:
            empty += 1
            continue
        if empty:
            print(f"    ({empty} empty rows)")
            empty = 0
        print(line)


async def test_the_reporter_reads_the_receipt_in_neomutt(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    missing = [tool for tool in ("neomutt", "tmux") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"`make neomutt-check` needs {' and '.join(missing)} (apt-get install)")
    d = await make_deployment()
    reporter = ReporterGpg(tmp_path / "reporter-gnupg", "Sam Finder", "sam@finder.example")
    try:
        reporter.import_key(bot_public_key(d))
        # The reporter compared the fingerprint with the one on the website and certified it.
        reporter.gpg("--quick-lsign-key", d.key_fingerprint)
        d.start_bot()
        key = ("sam.asc", "application/pgp-keys", reporter.public_key().encode())
        inner = reporter.inner_part(ENGLISH_BODY, subject=REPORTER_SUBJECT, attachments=[key])
        d.append_mail(reporter.pgp_mime_encrypted(inner, [d.key_fingerprint]))
        root = await wait_root(d.team, d.room_id, REPORTER_SUBJECT)
        case = CASE_ID.search(root.body).group(0)  # type: ignore[union-attr]
        await d.team.send(d.room_id, "!ack", thread_root=root.event_id)
        sent = await wait_in_thread(d.team, d.room_id, root, "receipt confirmation mail went")
        assert "not encrypted" not in sent.body, sent.body
        [ack] = await d.smtp.wait_for_async(1, timeout=30)
        assert ack.rcpt_tos == [reporter.address]

        maildir = tmp_path / "Mail" / "inbox"
        deliver_to_maildir(maildir, ack)
        unlock_for_the_session(reporter)
        muttrc = write_muttrc(tmp_path / "muttrc", maildir, reporter)
        with neomutt_in_tmux(tmp_path, muttrc, reporter.home) as pane:
            index = pane.wait_screen(lambda s: case in s, "the message list")
            show("neomutt: the message list, before opening", index)
            pane.tmux("send-keys", "-t", "cvd", "Enter")
            pager = pane.wait_screen(lambda s: " 1/1: " in s, "the opened message")
            show("neomutt: the message, opened", pager)
            pane.tmux("send-keys", "-t", "cvd", "i")
            after = pane.wait_screen(lambda s: "Subject:" not in s, "the list")
            show("neomutt: the message list, after opening", after)

        # Before opening: the case tag and the fixed phrase, nothing of the report.
        assert f"[{case}] Receipt confirmation" in index
        assert "SQLi" not in index and "gemeente.example" not in index
        # Opened: decrypted, the signature good, the sender named, the reporter's subject
        # from the protected headers. neomutt 20220429 (Debian 12) shows it in the pager's
        # status line and from then on in the list; its header block keeps the outer line.
        assert "[-- The following data is PGP/MIME signed and encrypted --]" in pager
        assert "Dear Sam Finder," in pager
        assert f"Good signature from: CVD team (test) <{BOT_ADDRESS}>" in pager
        assert f'From: "{ORGANISATION}" <{BOT_ADDRESS}>' in pager
        assert f"[{case}] Receipt confirmation: {REPORTER_SUBJECT}" in pager
        assert f"[{case}] Receipt confirmation: {REPORTER_SUBJECT}" in after
    finally:
        reporter.close()
        stop_agents_under(tmp_path)
