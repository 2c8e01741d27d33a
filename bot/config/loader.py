"""`load_config`: read the YAML file, apply the environment, validate, report every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.config.environment import apply_environment
from bot.config.model import Config
from bot.config.problems import ConfigError, problems_from
from bot.config.yaml_syntax import yaml_load, yaml_problem


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate the configuration at `path`.

    `environ` defaults to the process environment (``os.environ``); pass ``{}`` for none.
    Relative paths in the file are resolved against the file's directory.
    Raises ConfigError listing every problem found.
    """
    if environ is None:
        environ = os.environ
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([(where, "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([(where, "is a directory, not a configuration file")]) from None
    except UnicodeDecodeError:
        raise ConfigError([(where, "is not UTF-8 text")]) from None
    except OSError as exc:
        raise ConfigError([(where, f"cannot be read: {exc.strerror or exc}")]) from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([(where, yaml_problem(exc))]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [(where, "the top level must be a mapping of sections (matrix:, imap:, ...)")]
        )
    problems = apply_environment(data, environ)
    try:
        config = Config.model_validate(data, context={"base_dir": path.parent.absolute()})
    except ValidationError as exc:
        problems.extend(problems_from(exc))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config
