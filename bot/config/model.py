"""The whole configuration file as one model: one field per section.

Adding a section means a ``section_*.py`` module and a field here (optional sections get a
default and a place in ``_OPTIONAL_SECTIONS``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from bot.config.fields import FROZEN
from bot.config.section_digest import DigestConfig
from bot.config.section_ibd import IbdConfig
from bot.config.section_limits import LimitsConfig
from bot.config.section_mail import ImapConfig, SmtpConfig
from bot.config.section_matrix import MatrixConfig
from bot.config.section_ops import LoggingConfig, MonitoringConfig
from bot.config.section_pgp import PgpConfig
from bot.config.section_policy import PolicyConfig
from bot.config.section_storage import StorageConfig

_OPTIONAL_SECTIONS = ("policy", "digest", "limits", "monitoring", "logging", "ibd")


class Config(BaseModel):
    """The whole configuration file."""

    model_config = FROZEN

    matrix: MatrixConfig
    imap: ImapConfig
    smtp: SmtpConfig
    pgp: PgpConfig
    storage: StorageConfig
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    digest: DigestConfig = Field(default_factory=DigestConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    # Optional: without it !ibd refuses and check-config warns (bot/config/section_ibd.py).
    ibd: IbdConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_optional_sections(cls, data: Any) -> Any:
        # `digest:` with nothing under it is YAML null; treat it like a left-out section.
        if isinstance(data, dict):
            return {
                key: value
                for key, value in data.items()
                if not (key in _OPTIONAL_SECTIONS and value is None)
            }
        return data
