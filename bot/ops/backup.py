"""`cvdbot backup` / `cvdbot restore`: the database, the Matrix crypto store and the gpg home,
saved together while the bot runs.

Consistency: every SQLite file (the bot's database and the crypto store's database) is
copied with SQLite's online backup API, which gives a transaction-consistent snapshot while
the bot writes. The gpg home is copied as files while the backup holds the keyring lock
(bot/pgp/keyring_lock.py) that the bot takes for every change of its keyring: a reporter's
key imported during the backup waits the few milliseconds of the copy, so the copy never
holds a half-written `pubring.kbx`, and the restored home is a plain gpg home that works as
it is. The rest of the Matrix store (the session file) changes only at login.

The parts are taken in one run, database first, so the backup is a moment of the bot's
life, not a merge of two. Restored, the bot sends again what that moment held pending (the
README's "Backup and restore" says what that means): posts carry the same transaction IDs
from the same device, and Synapse answers a repeated transaction ID with the event it
already made, but only while it remembers the ID (a limited time; per device, or per access
token on older homeservers); a mail the backup held pending is sent again even if the bot
had sent it after the backup was taken (SMTP has no transaction IDs).

The backup directory gets a manifest (what, when, SHA-256 of each file) and is private
(0700, files 0600): it holds report contents and the bot's secret keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.config import Config
from bot.pgp.keyring_lock import keyring_lock

MANIFEST = "manifest.json"
# gpg-agent's sockets and lock files are runtime state, not keys.
_SKIP_SUFFIXES = (".lock",)
_SKIP_PREFIXES = ("S.gpg-agent", "S.dirmngr", "S.keyboxd", ".#lk")


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class Parts:
    database: Path
    matrix_store: Path
    gnupg_home: Path

    @classmethod
    def of(cls, config: Config) -> Parts:
        return cls(
            Path(config.storage.path), Path(config.matrix.store_path), Path(config.pgp.gnupg_home)
        )


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _copy_sqlite(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.close(fd)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30) as src:
        with sqlite3.connect(target) as dst:
            src.backup(dst)
    os.chmod(target, 0o600)


def _copy_tree(source: Path, target: Path) -> None:
    _private_dir(target)
    for entry in sorted(source.iterdir()):
        if entry.name.startswith(_SKIP_PREFIXES) or entry.name.endswith(_SKIP_SUFFIXES):
            continue
        mode = entry.lstat().st_mode
        if stat.S_ISDIR(mode):
            _copy_tree(entry, target / entry.name)
        elif stat.S_ISREG(mode):
            if entry.name.endswith(("-wal", "-shm", "-journal")):
                continue  # the backup API copy of the main file already holds their content
            if _is_sqlite(entry):
                _copy_sqlite(entry, target / entry.name)
            else:
                shutil.copyfile(entry, target / entry.name)
                os.chmod(target / entry.name, 0o600)


def _digest_files(root: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            sums[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def backup(config: Config, directory: Path) -> dict[str, object]:
    parts = Parts.of(config)
    if not parts.database.exists():
        raise BackupError(f"there is no database at {parts.database} to back up")
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty; back up into a new directory")
    _private_dir(directory)
    _copy_sqlite(parts.database, directory / "cvdbot.sqlite3")
    if parts.matrix_store.is_dir():
        _copy_tree(parts.matrix_store, directory / "matrix-store")
    if parts.gnupg_home.is_dir():
        with keyring_lock(parts.gnupg_home):
            _copy_tree(parts.gnupg_home, directory / "gnupg")
    manifest: dict[str, object] = {
        "made_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "user_id": config.matrix.user_id,
        "files": _digest_files(directory),
    }
    target = directory / MANIFEST
    target.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.chmod(target, 0o600)
    return manifest


def restore(config: Config, directory: Path, *, overwrite: bool = False) -> dict[str, object]:
    """Put a backup back in the configured places. Run it while the bot is stopped."""
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        raise BackupError(f"{directory} has no {MANIFEST}: not a cvdbot backup")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("user_id") != config.matrix.user_id:
        raise BackupError(
            f"the backup belongs to {manifest.get('user_id')}, not {config.matrix.user_id}"
        )
    found = _digest_files(directory)
    damaged = sorted(
        name for name, digest in manifest["files"].items() if found.get(name) != digest
    )
    if damaged:
        raise BackupError(f"the backup is damaged or incomplete: {', '.join(damaged)}")
    parts = Parts.of(config)
    present = [p for p in (parts.database, parts.matrix_store, parts.gnupg_home) if p.exists()]
    if present and not overwrite:
        raise BackupError(
            f"{', '.join(map(str, present))} already exist; stop the bot and move them aside, "
            "or pass --overwrite"
        )
    for path in (parts.matrix_store, parts.gnupg_home):
        if path.exists():
            shutil.rmtree(path)
    for suffix in ("", "-wal", "-shm"):
        side = parts.database.with_name(parts.database.name + suffix)
        if side.exists():
            side.unlink()
    parts.database.parent.mkdir(parents=True, exist_ok=True)
    _copy_sqlite(directory / "cvdbot.sqlite3", parts.database)
    if (directory / "matrix-store").is_dir():
        _copy_tree(directory / "matrix-store", parts.matrix_store)
    if (directory / "gnupg").is_dir():
        _copy_tree(directory / "gnupg", parts.gnupg_home)
    return manifest
