"""The ``limits`` section: how much of a report is copied into the Matrix thread."""

from __future__ import annotations

from pydantic import BaseModel

from bot.config.fields import FROZEN, PositiveInt


class LimitsConfig(BaseModel):
    """How much of a report is copied into the Matrix thread."""

    model_config = FROZEN

    max_body_chars_in_thread: PositiveInt = 20000
    max_attachment_bytes_in_thread: PositiveInt = 10 * 1024 * 1024
