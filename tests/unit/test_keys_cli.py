"""`cvdbot keys`: generate the bot's key before it is configured, export it, show it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def cvdbot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_generate_export_fingerprint(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "config.sample.yaml").read_text())
    del data["pgp"]["key_fingerprint"]  # a fresh setup: there is no key yet
    data["pgp"]["gnupg_home"] = str(tmp_path / "gnupg")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    try:
        made = cvdbot("keys", "--config", str(config), "generate", "--name", "CVD test")
        assert made.returncode == 0, made.stderr
        grouped = re.search(r'key_fingerprint: "([0-9A-F ]{49})"', made.stdout)
        assert grouped is not None, made.stdout
        assert "CVD test <security@example.org>" in made.stdout

        data["pgp"]["key_fingerprint"] = grouped.group(1)
        config.write_text(yaml.safe_dump(data))
        shown = cvdbot("keys", "--config", str(config), "fingerprint")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines()[0] == grouped.group(1)

        exported = cvdbot("keys", "--config", str(config), "export")
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        assert "PRIVATE" not in exported.stdout
        listed = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--show-keys"],
            input=exported.stdout.encode(),
            capture_output=True,
            check=True,
        ).stdout.decode()
        assert grouped.group(1).replace(" ", "") in listed

        again = cvdbot("keys", "--config", str(config), "generate")
        assert again.returncode == 1 and "already in" in again.stderr
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(tmp_path / "gnupg"), "--kill", "gpg-agent"], check=False
        )


def test_other_config_problems_are_listed_not_ignored(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "config.sample.yaml").read_text())
    del data["pgp"]["key_fingerprint"]
    data["imap"]["port"] = 99999
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    result = cvdbot("keys", "--config", str(config), "generate")
    assert result.returncode == 2
    assert "imap.port" in result.stderr
    assert not (tmp_path / "data").exists()
