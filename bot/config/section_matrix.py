"""The ``matrix`` section: the bot's account, its rooms and who may command it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from bot.config.fields import (
    FROZEN,
    ConfigPath,
    MatrixRoomId,
    MatrixUserId,
    Text,
    as_text,
    resolve_path,
)


class MatrixConfig(BaseModel):
    """The bot's Matrix account, its rooms and who may command it."""

    model_config = FROZEN

    homeserver: str
    user_id: MatrixUserId
    password: SecretStr
    device_name: Text = "cvdbot"
    store_path: ConfigPath
    case_room: MatrixRoomId
    digest_room: MatrixRoomId | None = None
    team: list[MatrixUserId] = Field(default_factory=list)
    managers: list[MatrixUserId] = Field(default_factory=list)

    @field_validator("homeserver", mode="before")
    @classmethod
    def _homeserver_url(cls, value: Any) -> Any:
        value = as_text(value)
        if not isinstance(value, str):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL like https://matrix.example.org")
        # Clients join API paths onto this; a trailing slash would double it.
        return value.rstrip("/")

    @field_validator("store_path")
    @classmethod
    def _resolve_store_path(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    @field_validator("managers")
    @classmethod
    def _someone_in_charge(cls, value: list[str], info: ValidationInfo) -> list[str]:
        team = info.data.get("team")
        if team is not None and not team and not value:
            raise ValueError(
                "team and managers are both empty: nobody could run case commands; "
                "name at least one Matrix user in either list"
            )
        return value

    @property
    def team_and_managers(self) -> tuple[str, ...]:
        """Everyone who works cases: who may be assigned, invite the bot, verify it."""
        return (*self.team, *self.managers)

    @property
    def server_name(self) -> str:
        """The bot's own server name: the part of user_id after the first ':'."""
        return self.user_id.split(":", 1)[1]

    @property
    def effective_digest_room(self) -> str:
        """Where the daily digest goes: digest_room, or case_room when none is set."""
        return self.digest_room or self.case_room
