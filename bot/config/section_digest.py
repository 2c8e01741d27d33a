"""The ``digest`` section: when the managers' daily digest goes out and to whom."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from bot.config.fields import FROZEN, ClockTime, EmailAddress, PositiveInt


class DigestConfig(BaseModel):
    """The managers' daily digest."""

    model_config = FROZEN

    time: ClockTime = "08:30"
    email_to: list[EmailAddress] = Field(default_factory=list)
    # How far ahead the digest's "due soon" list looks.
    due_within_working_days: PositiveInt = 3

    @property
    def time_of_day(self) -> dt.time:
        """`time` as a datetime.time (in the policy's time zone)."""
        return dt.time.fromisoformat(self.time)
