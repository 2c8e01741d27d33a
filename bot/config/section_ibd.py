"""The optional ``ibd`` section: where the IBD (Informatiebeveiligingsdienst voor gemeenten)
gets the cases the policy promises to share with it, and the key they are encrypted to.

Without it `!ibd` refuses with a clear message and `cvdbot check-config` warns.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator

from bot.config.fields import FROZEN, EmailAddress, full_fingerprint


class IbdConfig(BaseModel):
    """The IBD's address and the fingerprint of its key in the bot's gpg home."""

    model_config = FROZEN

    email: EmailAddress
    key_fingerprint: str

    @field_validator("key_fingerprint", mode="before")
    @classmethod
    def _fingerprint(cls, value: Any) -> Any:
        return full_fingerprint(value, "the IBD key's")
