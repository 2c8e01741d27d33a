"""The ``imap`` and ``smtp`` sections: the mailbox reports arrive in, the server mail leaves by."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator

from bot.config.fields import FROZEN, EmailAddress, Host, Port, Security, Text, check_security


class ImapConfig(BaseModel):
    """The mailbox that receives vulnerability reports."""

    model_config = FROZEN

    host: Host
    port: Port
    security: Security
    username: Text
    password: SecretStr
    folder: Text = "INBOX"
    # Where a first start (no stored position for the folder) begins: "now" takes only mail
    # that arrives from then on; "all" imports the backlog, its cases marked imported.
    start_at: Literal["now", "all"] = "now"
    # How often IDLE is ended and re-issued; also the longest a silently dead connection
    # (a NAT that forgot it, a server gone without a word) can go unnoticed.
    idle_renew_seconds: float = Field(default=240.0, ge=1.0, le=1740.0)

    @field_validator("security")
    @classmethod
    def _clear_text_only_on_loopback(cls, value: str, info: ValidationInfo) -> str:
        return check_security(value, info)


class SmtpConfig(BaseModel):
    """The server that sends mail to reporters and managers."""

    model_config = FROZEN

    host: Host
    port: Port
    security: Security
    username: Text | None = None
    # validate_default so that a username without any password is caught too.
    password: SecretStr | None = Field(default=None, validate_default=True)
    from_address: EmailAddress

    @field_validator("security")
    @classmethod
    def _clear_text_only_on_loopback(cls, value: str, info: ValidationInfo) -> str:
        return check_security(value, info)

    @field_validator("password")
    @classmethod
    def _credentials_in_pairs(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        # Checked on `password` because `username` has been validated by then.
        if "username" not in info.data:
            return value
        username = info.data["username"]
        if username is not None and value is None:
            raise ValueError("smtp.username is set, so the password is needed as well")
        if username is None and value is not None:
            raise ValueError("a password without smtp.username cannot be used; set both")
        return value

    @property
    def from_domain(self) -> str:
        """Domain of from_address, lower-cased (used for Message-IDs)."""
        return self.from_address.rsplit("@", 1)[1].lower()
