"""What commands and intake are given to work with: config, calendar, mailer, time zone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, time
from zoneinfo import ZoneInfo

from bot.config import Config, PolicyConfig
from bot.mailout.reporter import ReporterMailer
from bot.policy.workdays import CalendarRules, WorkingCalendar


def calendar_rules(policy: PolicyConfig) -> CalendarRules:
    return CalendarRules(
        timezone=policy.timezone,
        holiday_country=policy.holiday_country,
        business_start=_as_time(policy.business_hours_start),
        business_end=_as_time(policy.business_hours_end),
        closing_days=frozenset(_as_date(day) for day in policy.closing_days),
        working_holidays=frozenset(str(day) for day in policy.working_holidays),
        liberation_day=policy.liberation_day,
    )


def _as_time(value: time | str) -> time:
    return value if isinstance(value, time) else time.fromisoformat(value)


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True)
class Services:
    config: Config
    calendar: WorkingCalendar
    mailer: ReporterMailer
    # The reporter's usable PGP key for an address (fingerprint or None), by the rule the
    # mail channel seals with (bot/mailout/sealing.py). Calls gpg: the dispatcher runs it
    # before a command's transaction, for commands declared with needs_reporter_key.
    reporter_key: Callable[[str], Awaitable[str | None]] | None = None

    @property
    def tz(self) -> ZoneInfo:
        return self.calendar.tz
