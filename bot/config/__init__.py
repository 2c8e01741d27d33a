"""The bot's configuration: YAML file plus ``CVDBOT_*`` environment overrides, validated.

`load_config` reads the file, applies the environment on top, validates everything at once
and raises `ConfigError` listing every problem with its key path (``imap.port: ...``).
One module per section (``section_*.py``); the loader, environment and error report apart.
"""

from bot.config.environment import ENV_PREFIX, NON_CONFIG_ENV
from bot.config.loader import load_config
from bot.config.model import Config
from bot.config.problems import ConfigError
from bot.config.section_digest import DigestConfig
from bot.config.section_ibd import IbdConfig
from bot.config.section_limits import LimitsConfig
from bot.config.section_mail import ImapConfig, SmtpConfig
from bot.config.section_matrix import MatrixConfig
from bot.config.section_pgp import PgpConfig
from bot.config.section_policy import DEFAULT_WARNINGS, WARNING_POINT_RE, PolicyConfig
from bot.config.section_storage import StorageConfig

__all__ = [
    "DEFAULT_WARNINGS",
    "ENV_PREFIX",
    "NON_CONFIG_ENV",
    "WARNING_POINT_RE",
    "Config",
    "ConfigError",
    "DigestConfig",
    "IbdConfig",
    "ImapConfig",
    "LimitsConfig",
    "MatrixConfig",
    "PgpConfig",
    "PolicyConfig",
    "SmtpConfig",
    "StorageConfig",
    "load_config",
]
