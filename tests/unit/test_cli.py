"""The command line as an operator uses it: check-config, deadlines, digest flags (no servers)."""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
from pathlib import Path

from bot import cli as cli_module
from bot.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def cvdbot(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sample_config_is_valid() -> None:
    result = cvdbot("check-config", "--config", "config.sample.yaml")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_config_warns_without_the_ibd_section(tmp_path: Path) -> None:
    sample = (ROOT / "config.sample.yaml").read_text()
    assert "warning" not in cvdbot("check-config", "--config", "config.sample.yaml").stderr
    start = sample.index("\nibd:")
    end = sample.index("\n\n", start)
    config = tmp_path / "no-ibd.yaml"
    config.write_text(sample[:start] + sample[end:])
    result = cvdbot("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "warning: ibd: not configured, so !ibd refuses" in result.stderr


def test_broken_config_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(
        (ROOT / "config.sample.yaml")
        .read_text()
        .replace("port: 993", "port: 99999")
        .replace('security: "starttls"', 'security: "none"')
        .replace('user_id: "@cvdbot:example.org"', 'user_id: "cvdbot"')
        .replace('timezone: "Europe/Amsterdam"', 'timezone: "Mars/Olympus"')
    )
    result = cvdbot("check-config", "--config", str(config))
    assert result.returncode == 2
    for key in ("imap.port", "smtp.security", "matrix.user_id", "policy.timezone"):
        assert key in result.stderr, result.stderr
    assert "change-me" not in result.stderr, "secrets are never shown"


def test_deadlines_for_a_friday_evening_report() -> None:
    result = cvdbot(
        "deadlines", "--config", "config.sample.yaml", "--received", "2026-11-27T17:30:00+01:00"
    )
    assert result.returncode == 0, result.stderr
    # Friday after hours: the clock starts Monday 30 Nov 09:00; 2 working days -> Wed 2 Dec,
    # 5 -> Fri 4 Dec... counted from Monday: Tue 1, Wed 2 | Thu 3, Fri 4, Mon 7 Dec.
    # 90 calendar days after Mon 30 Nov 2026 is Sun 28 Feb 2027.
    assert result.stdout.splitlines() == [
        "acknowledge 2026-12-02T17:00:00+01:00",
        "assess 2026-12-07T17:00:00+01:00",
        "fix 2027-02-28T17:00:00+01:00",
    ]


def test_deadlines_reads_a_time_without_offset_as_local() -> None:
    result = cvdbot("deadlines", "--config", "config.sample.yaml", "--received", "2026-04-24T10:00")
    # Fri 24 Apr 2026 10:00 CEST; Mon 27 Apr is King's Day, so the two working days after
    # Friday are Tue 28 and Wed 29 Apr.
    assert result.stdout.splitlines()[0] == "acknowledge 2026-04-29T17:00:00+02:00"


def test_bad_received_time_is_a_usage_error() -> None:
    result = cvdbot("deadlines", "--config", "config.sample.yaml", "--received", "yesterday")
    assert result.returncode == 2
    assert "ISO 8601" in result.stderr


def test_the_docstring_names_exactly_the_subcommands() -> None:
    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    named = " ".join((cli_module.__doc__ or "").split(":", 1)[1].split()).rstrip(".").split(", ")
    assert sorted(named) == sorted(subparsers.choices)


def test_digest_print_is_an_optional_switch() -> None:
    parser = build_parser()
    plain = parser.parse_args(["digest", "--config", "c.yaml"])
    documented = parser.parse_args(
        ["digest", "--config", "c.yaml", "--print", "--at", "2026-12-01"]
    )
    assert plain.func is documented.func
    assert (plain.print, documented.print, documented.at) == (False, True, "2026-12-01")


def _config_with_newer_database(tmp_path: Path) -> Path:
    """The sample config pointed at a database that a newer cvdbot (version 9999) wrote."""
    database = tmp_path / "newer.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 'x')")
    conn.close()
    config = tmp_path / "config.yaml"
    config.write_text(
        (ROOT / "config.sample.yaml")
        .read_text()
        .replace('path: "data/cvdbot.sqlite3"', f'path: "{database}"')
    )
    return config


def test_run_and_digest_refuse_a_newer_database_with_ex_config(tmp_path: Path) -> None:
    config = _config_with_newer_database(tmp_path)
    for args in (["run"], ["digest", "--print"]):
        result = cvdbot(*args, "--config", str(config))
        assert result.returncode == 78, (args, result.stderr)
        assert "schema version 9999" in result.stderr, result.stderr


def test_ingest_defers_on_a_newer_database(tmp_path: Path) -> None:
    # EX_TEMPFAIL, so the MTA keeps the report until the right cvdbot is installed.
    config = _config_with_newer_database(tmp_path)
    mail = b"From: a@example.org\nSubject: hi\nMessage-ID: <1@example.org>\n\nhello\n"
    result = cvdbot("ingest", "--config", str(config), "-", stdin=mail)
    assert result.returncode == 75, result.stderr
    assert "schema version 9999" in result.stderr, result.stderr
