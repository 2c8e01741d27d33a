"""The optional ``ibd`` section: where the IBD (Informatiebeveiligingsdienst voor gemeenten)
gets the cases the policy promises to share with it, and the key they are encrypted to.

Without it `!ibd` refuses with a clear message and `cvdbot check-config` warns.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator

from bot.config.fields import FINGERPRINT_RE, FROZEN, EmailAddress, as_text


class IbdConfig(BaseModel):
    """The IBD's address and the fingerprint of its key in the bot's gpg home."""

    model_config = FROZEN

    email: EmailAddress
    key_fingerprint: str

    @field_validator("key_fingerprint", mode="before")
    @classmethod
    def _fingerprint(cls, value: Any) -> Any:
        value = as_text(value)
        if not isinstance(value, str):
            return value
        compact = value.replace(" ", "").upper().removeprefix("0X")
        if not FINGERPRINT_RE.match(compact):
            raise ValueError(
                "must be the IBD key's full fingerprint (40 hex digits), not a short key ID"
            )
        return compact
