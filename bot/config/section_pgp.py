"""The ``pgp`` section: the bot's own OpenPGP key and the gpg home that holds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationInfo, field_validator

from bot.config.fields import FROZEN, ConfigPath, full_fingerprint, resolve_path


class PgpConfig(BaseModel):
    """The bot's own OpenPGP key: decrypts incoming reports, signs outgoing mail."""

    model_config = FROZEN

    gnupg_home: ConfigPath
    key_fingerprint: str
    passphrase: SecretStr

    @field_validator("gnupg_home")
    @classmethod
    def _resolve_gnupg_home(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    @field_validator("key_fingerprint", mode="before")
    @classmethod
    def _fingerprint(cls, value: Any) -> Any:
        return full_fingerprint(value, "the key's")
