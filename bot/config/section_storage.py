"""The ``storage`` section: where the SQLite database lives."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationInfo, field_validator

from bot.config.fields import FROZEN, ConfigPath, resolve_path


class StorageConfig(BaseModel):
    """Where cases, mails and the audit log are kept."""

    model_config = FROZEN

    path: ConfigPath

    @field_validator("path")
    @classmethod
    def _resolve_path(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)
