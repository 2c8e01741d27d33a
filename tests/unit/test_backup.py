"""`cvdbot backup` and the bot agree on one lock for the gpg home (bot/pgp/keyring_lock.py):
the backup copies the home only while it holds the lock, the bot's keyring changes take it,
and the home restored from such a copy works (the bot's key signs with its passphrase).
Real gpg and SQLite files, no servers."""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config import Config
from bot.ops import backup as backup_module
from bot.ops.backup import backup, restore
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from bot.pgp.keyring_lock import LOCK_NAME
from tests.harness.gpg_agents import stop_agents_under
from tests.unit.test_sla_watch import make_config

PASSPHRASE = "backup-wachtwoord"


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_agents_under(tmp_path)


def lock_is_held(home: Path) -> bool:
    """Whether someone holds the keyring lock right now (asked without waiting)."""
    fd = os.open(home / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        assert exc.errno in (errno.EAGAIN, errno.EACCES)
        return True
    finally:
        os.close(fd)
    return False


def deployment(root: Path) -> tuple[Config, str]:
    """A config whose database exists and whose gpg home holds the bot's key."""
    config = make_config(root)
    home = Path(config.pgp.gnupg_home)
    pgp = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
    fingerprint = pgp.generate_key("CVD team", "security@gemeente.example", PASSPHRASE)
    pgp.close()
    pgp_section = config.pgp.model_copy(
        update={"key_fingerprint": fingerprint, "passphrase": SecretStr(PASSPHRASE)}
    )
    config = config.model_copy(update={"pgp": pgp_section})
    with sqlite3.connect(config.storage.path) as conn:
        conn.execute("CREATE TABLE cases (id TEXT)")
        conn.execute("INSERT INTO cases VALUES ('CVD-2026-0001')")
    return config, fingerprint


def spy(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, home: Path) -> list[bool]:
    """Wrap `target.name` to record whether the keyring lock is held when it is called."""
    seen: list[bool] = []
    original: Callable[..., Any] = getattr(target, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        seen.append(lock_is_held(home))
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapped)
    return seen


def test_the_gpg_home_is_copied_while_the_backup_holds_the_keyring_lock(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = deployment(root)
    home = Path(config.pgp.gnupg_home)
    (root / "store").mkdir()
    (root / "store" / "session.json").write_text("{}")
    copies: dict[str, bool] = {}
    original = backup_module._copy_tree

    def copy_tree(source: Path, target: Path) -> None:
        copies.setdefault(source.name, lock_is_held(home))
        original(source, target)

    monkeypatch.setattr(backup_module, "_copy_tree", copy_tree)
    assert not lock_is_held(home)
    backup(config, root / "backup")
    # The gpg home and its folders under the lock; the Matrix store needs none.
    assert copies == {
        "store": False,
        "gpg": True,
        "openpgp-revocs.d": True,
        "private-keys-v1.d": True,
    }
    assert not lock_is_held(home)  # released after the copy
    assert (root / "backup" / "gnupg" / "pubring.kbx").exists()
    assert not (root / "backup" / "gnupg" / LOCK_NAME).exists()


def test_the_bots_keyring_changes_take_the_lock(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Pgp(root / "reporter", None, None, s2k_count=MIN_S2K_COUNT)
    reporter = other.generate_key("Rita", "rita@reporter.example", "reporter-pass")
    armored = other.export_public_key(reporter)
    other.close()
    home = root / "bot"
    pgp = Pgp(home, None, None)
    imports = spy(monkeypatch, pgp._gpg, "import_keys", home)
    deletions = spy(monkeypatch, pgp._gpg, "delete_keys", home)
    generations = spy(monkeypatch, pgp._gpg, "gen_key", home)
    assert pgp.import_keys(armored) == [reporter]
    assert pgp.delete_public_key(reporter) is True
    pgp.generate_key("CVD team", "security@gemeente.example", PASSPHRASE)
    pgp.close()
    assert (imports, deletions, generations) == ([True], [True], [True])


def test_a_restored_gpg_home_signs_with_the_bots_key(root: Path) -> None:
    config, fingerprint = deployment(root)
    backup(config, root / "backup")
    stop_agents_under(root)
    home = Path(config.pgp.gnupg_home)
    os.rename(home, root / "lost")
    os.rename(config.storage.path, root / "lost.sqlite3")
    restore(config, root / "backup")
    pgp = Pgp(home, fingerprint, PASSPHRASE)
    try:
        check = pgp.check_own_key(time.time())
    finally:
        pgp.close()
    assert check.ok and not check.warning, check.detail
    with sqlite3.connect(config.storage.path) as conn:
        assert conn.execute("SELECT id FROM cases").fetchall() == [("CVD-2026-0001",)]
