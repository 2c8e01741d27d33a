"""`cvdbot doctor`'s gpg line (bot/ops/doctor.py) against the real gpg, no servers: the bot's
key with the right passphrase is ok, a key that expires within 30 days is a warning with
what to do, a wrong passphrase fails (even right after a correct use cached the unlock in
the agent), and a missing gpg home fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import Config
from bot.ops.doctor import Check, _gpg_check
from bot.pgp.gpg import MIN_S2K_COUNT, Pgp
from tests.harness.gpg_agents import stop_agents_under
from tests.unit.test_sla_watch import make_config

PASSPHRASE = "doctor-wachtwoord"
ADDRESS = "security@gemeente.example"


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    stop_agents_under(tmp_path)


def bot_key(home: Path, expire_date: str = "0") -> str:
    pgp = Pgp(home, None, None, s2k_count=MIN_S2K_COUNT)
    try:
        return pgp.generate_key("CVD team", ADDRESS, PASSPHRASE, expire_date=expire_date)
    finally:
        pgp.close()


def config_for(tmp_path: Path, home: Path, fingerprint: str, passphrase: str) -> Config:
    config = make_config(tmp_path)
    pgp = config.pgp.model_copy(
        update={
            "gnupg_home": home,
            "key_fingerprint": fingerprint,
            "passphrase": SecretStr(passphrase),
        }
    )
    return config.model_copy(update={"pgp": pgp})


def test_a_key_without_expiry_and_the_right_passphrase_is_ok(homes: Path) -> None:
    home = homes / "gnupg"
    fingerprint = bot_key(home)
    check = _gpg_check(config_for(homes, home, fingerprint, PASSPHRASE))
    assert check.verdict == "ok", check.line()
    assert check.detail.endswith("(no expiry): signs with the configured passphrase")


def test_a_key_expiring_within_30_days_is_a_warning(homes: Path) -> None:
    home = homes / "gnupg"
    fingerprint = bot_key(home, expire_date="10d")
    check = _gpg_check(config_for(homes, home, fingerprint, PASSPHRASE))
    assert check == Check("gpg", "warning", check.detail, "extend the key's expiry date"), (
        check.line()
    )
    assert check.detail.endswith(": expires within 30 days")
    assert check.line().endswith("-> extend the key's expiry date")


def test_a_key_expiring_in_60_days_is_ok(homes: Path) -> None:
    home = homes / "gnupg"
    fingerprint = bot_key(home, expire_date="60d")
    assert _gpg_check(config_for(homes, home, fingerprint, PASSPHRASE)).verdict == "ok"


def test_a_wrong_passphrase_fails_even_after_a_right_one_unlocked_the_key(homes: Path) -> None:
    home = homes / "gnupg"
    fingerprint = bot_key(home)
    wrong = config_for(homes, home, fingerprint, "not-the-passphrase")
    assert _gpg_check(wrong).verdict == "failed"
    # The right passphrase: the agent now holds the unlocked key in its cache.
    assert _gpg_check(config_for(homes, home, fingerprint, PASSPHRASE)).verdict == "ok"
    check = _gpg_check(wrong)
    assert check.verdict == "failed", check.line()
    assert check.detail.endswith(": cannot sign with the configured passphrase")
    assert check.fix == "see README, 'The bot's PGP key'"
    assert "not-the-passphrase" not in check.line()


def test_a_missing_gpg_home_fails(homes: Path) -> None:
    check = _gpg_check(config_for(homes, homes / "nowhere", "A" * 40, PASSPHRASE))
    assert check == Check(
        "gpg", "failed", f"no gpg home at {homes / 'nowhere'}", "import the bot's key there"
    )
