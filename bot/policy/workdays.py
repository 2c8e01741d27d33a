"""Working-day calendar and CVD deadlines: pure date arithmetic, no I/O and no config imports.

The rule (the README copies this text):

* Working time is counted in the policy's timezone (default Europe/Amsterdam) with business
  hours (default 09:00-17:00 local wall-clock time).
* Non-working days are Saturday, Sunday, the public holidays of the ``holidays`` package for
  the policy's country (for NL: Nieuwjaarsdag, Goede Vrijdag, Eerste/Tweede Paasdag,
  Koningsdag, Hemelvaartsdag, Eerste/Tweede Pinksterdag, Eerste/Tweede Kerstdag, and
  Bevrijdingsdag on 5 May in lustrum years only), plus the configured ``closing_days``, minus
  the configured ``working_holidays`` (holiday names, Dutch or English and case-insensitive,
  or ISO dates, of holidays that are working days after all; a holiday on a weekend stays
  closed because of the weekend). Koningsdag moves to Saturday 26 April when 27 April is a
  Sunday. ``liberation_day: every_year`` makes 5 May a non-working day every year.
* A report received outside business hours or on a non-working day counts as received at the
  start of the next business period: before 09:00 on a working day, that day at 09:00; at or
  after 17:00, or on a non-working day, the next working day at 09:00.
* A working-day deadline (acknowledge: 2, assess: 5) falls at the end of business hours
  (17:00 local) on the Nth working day after the effective day of receipt. Received Monday
  10:00: acknowledge by Wednesday 17:00. Received Friday 17:30: the clock starts Monday 09:00,
  acknowledge by Wednesday 17:00, assess by the Monday after that at 17:00.
* The fix deadline falls at the end of business hours on the 90th calendar day after the
  effective day of receipt, whether or not that day is a working day.
* Every datetime in and out is timezone-aware; results are in UTC and the local wall-clock
  time is what counts, so 17:00 in Amsterdam is 16:00 UTC in winter and 15:00 UTC in summer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from bot.policy.deadline import Deadline, rule_text
from bot.policy.holiday_names import (
    CLOSING_DAY,
    ISO_DATE,
    LIBERATION_DAY,
    NAME_ALIASES,
    NAME_SEPARATOR,
    PACKAGE_LANGUAGES,
    WEEKEND,
    Language,
    known_holiday_names,
    normalise_name,
    package_holidays,
    pair_names,
)
from bot.policy.promises import BY_NAME, PROMISES, Counting

__all__ = [
    "CalendarRules",
    "CaseDeadlines",
    "Deadline",
    "Language",
    "LiberationDay",
    "WorkingCalendar",
    "case_deadlines",
    "format_deadlines_lines",
]

LiberationDay = Literal["every_year", "package"]

# Ten years of days: no deadline is further away than that.
_MAX_DAYS = 3700


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


@dataclass(frozen=True)
class CalendarRules:
    """What counts as working time; built by the config layer from the ``policy`` section."""

    timezone: str = "Europe/Amsterdam"
    holiday_country: str = "NL"
    business_start: time = time(9, 0)
    business_end: time = time(17, 0)
    closing_days: frozenset[date] = frozenset()
    # Holiday names ("Good Friday", "Goede Vrijdag") or ISO dates ("2026-04-03").
    working_holidays: frozenset[str] = frozenset()
    liberation_day: LiberationDay = "package"


@dataclass(frozen=True)
class CaseDeadlines:
    """The deadline of every promise (bot/policy/promises.py) for one report, by name:
    ``deadlines["fix"]`` or ``deadlines.fix``."""

    by_promise: Mapping[str, Deadline]

    def __getitem__(self, promise: str) -> Deadline:
        return self.by_promise[promise]

    def __getattr__(self, promise: str) -> Deadline:
        # Only reached for names that are not attributes; guard the dataclass's own field so
        # copying or unpickling a half-built object cannot recurse.
        if promise.startswith("_") or promise == "by_promise":
            raise AttributeError(promise)
        try:
            return self.by_promise[promise]
        except KeyError:
            raise AttributeError(promise) from None

    def case_fields(self) -> dict[str, Any]:
        """The due times as `Case` keyword arguments: ``Case(..., **deadlines.case_fields())``."""
        return {promise.due_field: self[promise.name].due for promise in PROMISES}


class WorkingCalendar:
    """Answers "is this a working day" and computes deadlines under one set of rules.

    Holidays are resolved once per year and kept in a dict, so a lookup is a dict access plus
    a weekday check. Two threads racing to build the same year build equal dicts, so the
    cache needs no lock.
    """

    def __init__(self, rules: CalendarRules) -> None:
        self.rules = rules
        try:
            self.tz = ZoneInfo(rules.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {rules.timezone!r}") from exc
        for name, value in (
            ("business_start", rules.business_start),
            ("business_end", rules.business_end),
        ):
            if value.tzinfo is not None:
                raise ValueError(f"{name} must be a wall-clock time without timezone")
        if not rules.business_start < rules.business_end:
            raise ValueError("business_start must be before business_end")
        if rules.liberation_day not in ("every_year", "package"):
            raise ValueError(
                f"liberation_day must be 'every_year' or 'package', not {rules.liberation_day!r}"
            )
        try:
            # Costs no holiday computation; only checks that the country exists. The package
            # signals an unknown country with a RuntimeError subclass.
            holidays.country_holidays(rules.holiday_country)
        except RuntimeError as exc:
            raise ValueError(
                f"the holidays package has no country {rules.holiday_country!r}"
            ) from exc

        self._years: dict[int, dict[date, tuple[str, str]]] = {}
        self._waived_dates: frozenset[date] = frozenset()
        self._waived_names: frozenset[str] = frozenset()
        self._parse_working_holidays(rules)

    def _parse_working_holidays(self, rules: CalendarRules) -> None:
        dates: set[date] = set()
        names: dict[str, str] = {}  # normalised name -> the entry as written, for errors
        for entry in rules.working_holidays:
            text = entry.strip()
            if ISO_DATE.match(text):
                try:
                    dates.add(date.fromisoformat(text))
                except ValueError as exc:
                    raise ValueError(f"working_holidays: {entry!r} is not a valid date") from exc
            else:
                normalised = normalise_name(text)
                names[NAME_ALIASES.get(normalised, normalised)] = entry
        if names:
            known = known_holiday_names(rules.holiday_country)
            unknown = sorted(repr(entry) for name, entry in names.items() if name not in known)
            if unknown:
                raise ValueError(
                    f"working_holidays: no holiday called {', '.join(unknown)} in "
                    f"{rules.holiday_country} (names are compared case-insensitively, "
                    "in English or Dutch)"
                )
        for day in sorted(dates):
            if not self._holidays_on(day):
                raise ValueError(f"working_holidays: {day.isoformat()} is not a public holiday")
            if day in rules.closing_days:
                raise ValueError(f"{day.isoformat()} is both a closing day and a working holiday")
        self._waived_dates = frozenset(dates)
        self._waived_names = frozenset(names)

    def _holidays_on(self, day: date) -> list[tuple[str, str]]:
        """All holidays on a date as (English, Dutch) pairs, before working_holidays apply."""
        return self._holiday_table(day.year).get(day, [])

    def _holiday_table(self, year: int) -> dict[date, list[tuple[str, str]]]:
        country = self.rules.holiday_country
        english = dict(package_holidays(country, year, PACKAGE_LANGUAGES["en"]))
        dutch = dict(package_holidays(country, year, PACKAGE_LANGUAGES["nl"]))
        table = {
            day: pair_names(country, year, name, dutch.get(day, name))
            for day, name in english.items()
        }
        if self.rules.liberation_day == "every_year":
            may_5 = date(year, 5, 5)
            entries = table.setdefault(may_5, [])
            if LIBERATION_DAY[0] not in (en for en, _ in entries):
                entries.append(LIBERATION_DAY)
        return table

    def _year(self, year: int) -> dict[date, tuple[str, str]]:
        """Closed weekdays and holidays of one year with their (English, Dutch) reasons."""
        closed: dict[date, tuple[str, str]] = {}
        for day, entries in self._holiday_table(year).items():
            if day in self._waived_dates:
                continue
            kept = [
                pair
                for pair in entries
                if normalise_name(pair[0]) not in self._waived_names
                and normalise_name(pair[1]) not in self._waived_names
            ]
            if kept:
                closed[day] = (
                    NAME_SEPARATOR.join(en for en, _ in kept),
                    NAME_SEPARATOR.join(nl for _, nl in kept),
                )
        for day in self.rules.closing_days:
            if day.year == year and day not in closed and day.weekday() < 5:
                closed[day] = CLOSING_DAY
        self._years[year] = closed
        return closed

    def _closed(self, day: date) -> tuple[str, str] | None:
        table = self._years.get(day.year)
        if table is None:
            table = self._year(day.year)
        reason = table.get(day)
        if reason is not None:
            return reason
        return WEEKEND.get(day.weekday())

    def closed_reason(self, day: date, language: Language = "en") -> str | None:
        """None on a working day; otherwise the holiday name, "Saturday"/"Sunday" or
        "closing day" (Dutch names with ``language="nl"``)."""
        reason = self._closed(day)
        if reason is None:
            return None
        return reason[0] if language == "en" else reason[1]

    def is_working_day(self, day: date) -> bool:
        return self._closed(day) is None

    def to_local(self, moment: datetime) -> datetime:
        return _require_aware(moment, "moment").astimezone(self.tz)

    def _at(self, day: date, wall_clock: time) -> datetime:
        return datetime.combine(day, wall_clock, tzinfo=self.tz)

    def _walk(self, day: date, n: int) -> tuple[date, list[tuple[date, tuple[str, str]]]]:
        if n < 0:
            raise ValueError(f"cannot count {n} working days")
        skipped: list[tuple[date, tuple[str, str]]] = []
        counted = 0
        current = day
        while counted < n:
            current += timedelta(days=1)
            reason = self._closed(current)
            if reason is None:
                counted += 1
            else:
                skipped.append((current, reason))
        return current, skipped

    def add_working_days(self, day: date, n: int) -> tuple[date, list[tuple[date, str]]]:
        """The Nth working day after ``day`` (``day`` itself is not counted; n=0 gives
        ``day``) and the non-working days passed on the way, with English reasons."""
        target, skipped = self._walk(day, n)
        return target, [(d, reason[0]) for d, reason in skipped]

    def clock_start(self, received: datetime) -> datetime:
        """The effective receipt in local time: the receipt itself during business hours,
        else the start of the next business period."""
        local = self.to_local(received)
        day = local.date()
        if self.is_working_day(day):
            wall_clock = local.time()
            if wall_clock < self.rules.business_start:
                return self._at(day, self.rules.business_start)
            if wall_clock < self.rules.business_end:
                return local
        next_day, _ = self._walk(day, 1)
        return self._at(next_day, self.rules.business_start)

    def _closed_before_start(
        self, received: datetime, start: datetime
    ) -> list[tuple[date, tuple[str, str]]]:
        """Non-working days from the receipt day up to (not including) the clock-start day."""
        day = self.to_local(received).date()
        found = []
        while day < start.date():
            reason = self._closed(day)
            if reason is not None:
                found.append((day, reason))
            day += timedelta(days=1)
        return found

    def _deadline(
        self,
        received: datetime,
        start: datetime,
        due_day: date,
        skipped: list[tuple[date, tuple[str, str]]],
        rule: tuple[str, str],
    ) -> Deadline:
        due = self._at(due_day, self.rules.business_end)
        return Deadline(
            due=due.astimezone(UTC),
            clock_start=start.astimezone(UTC),
            skipped=tuple((day, reason[0]) for day, reason in skipped),
            rule=rule[0],
            received=received.astimezone(UTC),
            rule_nl=rule[1],
            skipped_nl=tuple(reason[1] for _, reason in skipped),
        )

    def working_day_deadline(self, received: datetime, n: int) -> Deadline:
        """End of business hours on the Nth working day after the effective day of receipt."""
        start = self.clock_start(received)
        due_day, counted = self._walk(start.date(), n)
        skipped = self._closed_before_start(received, start) + counted
        rule = (rule_text(n, "working", "en"), rule_text(n, "working", "nl"))
        return self._deadline(received, start, due_day, skipped, rule)

    def calendar_day_deadline(self, received: datetime, days: int) -> Deadline:
        """End of business hours on the Nth calendar day after the effective day of receipt."""
        if days < 0:
            raise ValueError(f"cannot count {days} calendar days")
        start = self.clock_start(received)
        due_day = start.date() + timedelta(days=days)
        skipped = self._closed_before_start(received, start)
        rule = (rule_text(days, "calendar", "en"), rule_text(days, "calendar", "nl"))
        return self._deadline(received, start, due_day, skipped, rule)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Business time on working days between two moments (zero when end <= start)."""
        begin = self.to_local(start)
        finish = self.to_local(end)
        total = timedelta(0)
        if finish <= begin:
            return total
        # Compare and subtract in UTC: Python subtracts same-zone aware datetimes by wall
        # clock, which would be an hour off across a DST change.
        begin_utc = begin.astimezone(UTC)
        finish_utc = finish.astimezone(UTC)
        day = begin.date()
        while day <= finish.date():
            if self._closed(day) is None:
                opens = self._at(day, self.rules.business_start).astimezone(UTC)
                closes = self._at(day, self.rules.business_end).astimezone(UTC)
                low = max(opens, begin_utc)
                high = min(closes, finish_utc)
                if high > low:
                    total += high - low
            day += timedelta(days=1)
        return total

    def deadline(self, received: datetime, counting: Counting, days: int) -> Deadline:
        """A promise's deadline: ``days`` working or calendar days from the receipt."""
        if counting == "working":
            return self.working_day_deadline(received, days)
        return self.calendar_day_deadline(received, days)

    # -------------------------------------------------------------- working-time arithmetic

    def business_day(self) -> timedelta:
        """The length of one working day (business hours are wall-clock times on one date)."""
        day = datetime(2000, 1, 3)
        return datetime.combine(day, self.rules.business_end) - datetime.combine(
            day, self.rules.business_start
        )

    def business_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """Business hours of a day in UTC; None on a non-working day."""
        if not self.is_working_day(day):
            return None
        opens = self._at(day, self.rules.business_start).astimezone(UTC)
        closes = self._at(day, self.rules.business_end).astimezone(UTC)
        return opens, closes

    def in_business_hours(self, moment: datetime) -> bool:
        interval = self.business_interval(self.to_local(moment).date())
        return interval is not None and interval[0] <= moment.astimezone(UTC) < interval[1]

    def advance_working(self, start: datetime, amount: timedelta) -> datetime:
        """The moment at which `amount` of working time has passed since `start`."""
        remaining = amount
        begin = start.astimezone(UTC)
        day = self.to_local(start).date()
        for _ in range(_MAX_DAYS):
            interval = self.business_interval(day)
            if interval is not None:
                low, high = max(interval[0], begin), interval[1]
                if high > low:
                    if high - low >= remaining:
                        return low + remaining
                    remaining -= high - low
            day += timedelta(days=1)
        raise ValueError("no working time found within ten years")

    def rewind_working(self, end: datetime, amount: timedelta) -> datetime:
        """The moment from which exactly `amount` of working time is left until `end`."""
        remaining = amount
        finish = end.astimezone(UTC)
        day = self.to_local(end).date()
        for _ in range(_MAX_DAYS):
            interval = self.business_interval(day)
            if interval is not None:
                low, high = interval[0], min(interval[1], finish)
                if high > low:
                    if high - low >= remaining:
                        return high - remaining
                    remaining -= high - low
            day -= timedelta(days=1)
        raise ValueError("no working time found within ten years")


def case_deadlines(
    calendar: WorkingCalendar,
    received: datetime,
    days: Mapping[str, int] | None = None,
) -> CaseDeadlines:
    """Every promise's deadline for a report received at ``received``.

    ``days`` maps a promise name to its number of days (`promise_days(config.policy)`);
    a promise left out gets its default.
    """
    unknown = sorted(set(days or {}) - set(BY_NAME))
    if unknown:
        raise ValueError(f"no such promise: {', '.join(unknown)}")
    wanted = {promise.name: promise.default_days for promise in PROMISES}
    wanted.update(days or {})
    return CaseDeadlines(
        {
            promise.name: calendar.deadline(received, promise.counting, wanted[promise.name])
            for promise in PROMISES
        }
    )


def format_deadlines_lines(deadlines: CaseDeadlines, tz: ZoneInfo) -> list[str]:
    """One line per promise for ``cvdbot deadlines``: name and ISO 8601 due time with offset."""
    return [
        f"{promise.name} {deadlines[promise.name].due.astimezone(tz).isoformat(timespec='seconds')}"
        for promise in PROMISES
    ]
