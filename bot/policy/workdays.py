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

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

Language = Literal["en", "nl"]
LiberationDay = Literal["every_year", "package"]

# The package infers the language of holiday names from the process locale when none is
# given, so every lookup names its language explicitly; otherwise reasons would change with
# LANG. en_US is the package's English; countries without it fall back to their own language.
_PACKAGE_LANGUAGES: dict[Language, str] = {"en": "en_US", "nl": "nl"}

# The package joins the names of holidays sharing a date with this separator (sorted per
# language, so the English and Dutch lists are not in the same order).
_NAME_SEPARATOR = "; "

# Years scanned once per country to learn every holiday name the package can produce, so a
# misspelt working_holidays entry is reported instead of silently ignored.
_NAME_SCAN_YEARS = range(2000, 2041)

_LIBERATION_DAY: tuple[str, str] = ("Liberation Day", "Bevrijdingsdag")
_CLOSING_DAY: tuple[str, str] = ("closing day", "sluitingsdag")
_WEEKEND: dict[int, tuple[str, str]] = {5: ("Saturday", "zaterdag"), 6: ("Sunday", "zondag")}

# Plain English names people use that differ from the package's English names; values are
# normalised package names.
_NAME_ALIASES: dict[str, str] = {
    "whit sunday": "pentecost",
    "whitsunday": "pentecost",
    "pentecost sunday": "pentecost",
    "whit monday": "pentecost monday",
    "whitmonday": "pentecost monday",
    "boxing day": "second day of christmas",
    "second christmas day": "second day of christmas",
    "st stephens day": "second day of christmas",
    "ascension": "ascension day",
    "ascension thursday": "ascension day",
    "easter": "easter sunday",
    "new year": "new years day",
    "kingsday": "kings day",
}

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _normalise_name(name: str) -> str:
    """Fold case, apostrophes, full stops and spacing so "King's Day" matches "kings  day"."""
    folded = name.casefold()
    for mark in ("'", "\u2019", "\u2018", "`", "."):
        folded = folded.replace(mark, "")
    return " ".join(folded.split())


@lru_cache(maxsize=4096)
def _package_holidays(country: str, year: int, language: str) -> tuple[tuple[date, str], ...]:
    """The package's public holidays of one year, memoised across calendars.

    Building a ``holidays`` object costs about a millisecond; deadlines for 100,000 cases
    must not build one per call, so each (country, year, language) is built exactly once.
    """
    table = holidays.country_holidays(country, years=year, language=language)
    return tuple(sorted(table.items()))


@lru_cache(maxsize=64)
def _known_holiday_names(country: str) -> frozenset[str]:
    """Every normalised holiday name, in English and Dutch, the package knows for a country."""
    names: set[str] = set(_NAME_ALIASES)
    names.update(_normalise_name(n) for n in _LIBERATION_DAY)
    for year in _NAME_SCAN_YEARS:
        for language in _PACKAGE_LANGUAGES.values():
            for _, joined in _package_holidays(country, year, language):
                names.update(_normalise_name(n) for n in joined.split(_NAME_SEPARATOR))
    return frozenset(names)


@lru_cache(maxsize=256)
def _translation(country: str, year: int) -> dict[str, str]:
    """English to Dutch holiday names, learnt from the dates that carry a single holiday.

    Only needed to pair the names on a date with two holidays (Hemelvaartsdag on 5 May in
    2005), because the package sorts each language's joined names alphabetically.
    """
    english = dict(_package_holidays(country, year, _PACKAGE_LANGUAGES["en"]))
    dutch = dict(_package_holidays(country, year, _PACKAGE_LANGUAGES["nl"]))
    pairs = {
        english[day]: dutch[day]
        for day in english
        if day in dutch
        and _NAME_SEPARATOR not in english[day]
        and _NAME_SEPARATOR not in dutch[day]
    }
    pairs[_LIBERATION_DAY[0]] = _LIBERATION_DAY[1]
    return pairs


def _pair_names(country: str, year: int, english: str, dutch: str) -> list[tuple[str, str]]:
    """Split the joined names of one date into (English, Dutch) pairs of single holidays."""
    en_names = english.split(_NAME_SEPARATOR)
    nl_names = dutch.split(_NAME_SEPARATOR)
    if len(en_names) == 1 and len(nl_names) == 1:
        return [(english, dutch)]
    # A name missing from this year's singles usually stands alone in a neighbouring year.
    for offset in range(11):
        for other in {year - offset, year + offset}:
            translation = _translation(country, other)
            if all(name in translation for name in en_names):
                return [(name, translation[name]) for name in en_names]
    return [(name, name) for name in en_names]


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


@lru_cache(maxsize=256)
def _rule_text(count: int, kind: Literal["working", "calendar"], language: Language) -> str:
    words = {
        ("working", "en"): ("working day", "working days"),
        ("working", "nl"): ("werkdag", "werkdagen"),
        ("calendar", "en"): ("calendar day", "calendar days"),
        ("calendar", "nl"): ("kalenderdag", "kalenderdagen"),
    }[(kind, language)]
    return f"{count} {words[0] if count == 1 else words[1]}"


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


_WEEKDAYS: dict[Language, tuple[str, ...]] = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "nl": ("ma", "di", "wo", "do", "vr", "za", "zo"),
}
_MONTHS: dict[Language, tuple[str, ...]] = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "nl": ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
}
_PHRASES: dict[Language, dict[str, str]] = {
    "en": {
        "from": "from",
        "received": "received",
        "before": "before business hours",
        "after": "after business hours",
        "closed": "on a non-working day",
        "due": "due",
        "skipped": "Skipped",
    },
    "nl": {
        "from": "vanaf",
        "received": "ontvangen",
        "before": "voor kantoortijd",
        "after": "na kantoortijd",
        "closed": "op een niet-werkdag",
        "due": "uiterlijk",
        "skipped": "Overgeslagen",
    },
}


def _format_day(day: date, language: Language) -> str:
    weekday = _WEEKDAYS[language][day.weekday()]
    return f"{weekday} {day.day} {_MONTHS[language][day.month - 1]} {day.year}"


def _format_moment(moment: datetime, language: Language) -> str:
    return f"{_format_day(moment.date(), language)} {moment:%H:%M %Z}"


@dataclass(frozen=True)
class Deadline:
    """One policy deadline and how it was reached, so the bot can explain it in the thread."""

    due: datetime
    clock_start: datetime
    # Non-working days between the receipt and the due day, with English reasons; this
    # includes the days that pushed the clock start forward.
    skipped: tuple[tuple[date, str], ...]
    rule: str
    # The actual receipt time, so the explanation can say why the clock started later.
    received: datetime | None = None
    rule_nl: str = ""
    # Dutch reasons aligned with ``skipped``; empty means the English ones are shown.
    skipped_nl: tuple[str, ...] = ()

    def explain(self, tz: ZoneInfo, language: Language = "en") -> str:
        """One line on the start, the rule and the due time; a second one on skipped days."""
        phrases = _PHRASES[language]
        start = self.clock_start.astimezone(tz)
        rule = self.rule_nl if language == "nl" and self.rule_nl else self.rule
        first = f"{rule} {phrases['from']} {_format_moment(start, language)}"
        if self.received is not None and self.received != self.clock_start:
            received = self.received.astimezone(tz)
            skipped_days = {day for day, _ in self.skipped}
            if received.date() == start.date():
                why = phrases["before"]
            elif received.date() in skipped_days:
                why = phrases["closed"]
            else:
                why = phrases["after"]
            first += f" ({phrases['received']} {_format_moment(received, language)}, {why})"
        first += f"; {phrases['due']} {_format_moment(self.due.astimezone(tz), language)}."
        if not self.skipped:
            return first
        use_dutch = language == "nl" and len(self.skipped_nl) == len(self.skipped)
        weekend = {names[0 if language == "en" else 1] for names in _WEEKEND.values()}
        items = []
        for index, (day, english) in enumerate(self.skipped):
            reason = self.skipped_nl[index] if use_dutch else english
            # The weekday abbreviation already says "Sat"/"Sun"; repeating it is noise.
            text = _format_day(day, language)
            items.append(text if reason in weekend else f"{text} ({reason})")
        return f"{first}\n{phrases['skipped']}: {', '.join(items)}."


@dataclass(frozen=True)
class CaseDeadlines:
    """The three deadlines the policy promises for one report."""

    acknowledge: Deadline
    assess: Deadline
    fix: Deadline


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
            if _ISO_DATE.match(text):
                try:
                    dates.add(date.fromisoformat(text))
                except ValueError as exc:
                    raise ValueError(f"working_holidays: {entry!r} is not a valid date") from exc
            else:
                normalised = _normalise_name(text)
                names[_NAME_ALIASES.get(normalised, normalised)] = entry
        if names:
            known = _known_holiday_names(rules.holiday_country)
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
        english = dict(_package_holidays(country, year, _PACKAGE_LANGUAGES["en"]))
        dutch = dict(_package_holidays(country, year, _PACKAGE_LANGUAGES["nl"]))
        table = {
            day: _pair_names(country, year, name, dutch.get(day, name))
            for day, name in english.items()
        }
        if self.rules.liberation_day == "every_year":
            may_5 = date(year, 5, 5)
            entries = table.setdefault(may_5, [])
            if _LIBERATION_DAY[0] not in (en for en, _ in entries):
                entries.append(_LIBERATION_DAY)
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
                if _normalise_name(pair[0]) not in self._waived_names
                and _normalise_name(pair[1]) not in self._waived_names
            ]
            if kept:
                closed[day] = (
                    _NAME_SEPARATOR.join(en for en, _ in kept),
                    _NAME_SEPARATOR.join(nl for _, nl in kept),
                )
        for day in self.rules.closing_days:
            if day.year == year and day not in closed and day.weekday() < 5:
                closed[day] = _CLOSING_DAY
        self._years[year] = closed
        return closed

    def _closed(self, day: date) -> tuple[str, str] | None:
        table = self._years.get(day.year)
        if table is None:
            table = self._year(day.year)
        reason = table.get(day)
        if reason is not None:
            return reason
        return _WEEKEND.get(day.weekday())

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
        rule = (_rule_text(n, "working", "en"), _rule_text(n, "working", "nl"))
        return self._deadline(received, start, due_day, skipped, rule)

    def calendar_day_deadline(self, received: datetime, days: int) -> Deadline:
        """End of business hours on the Nth calendar day after the effective day of receipt."""
        if days < 0:
            raise ValueError(f"cannot count {days} calendar days")
        start = self.clock_start(received)
        due_day = start.date() + timedelta(days=days)
        skipped = self._closed_before_start(received, start)
        rule = (_rule_text(days, "calendar", "en"), _rule_text(days, "calendar", "nl"))
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


def case_deadlines(
    calendar: WorkingCalendar,
    received: datetime,
    *,
    acknowledge_days: int = 2,
    assess_days: int = 5,
    fix_days: int = 90,
) -> CaseDeadlines:
    """The policy's three deadlines for a report received at ``received``."""
    return CaseDeadlines(
        acknowledge=calendar.working_day_deadline(received, acknowledge_days),
        assess=calendar.working_day_deadline(received, assess_days),
        fix=calendar.calendar_day_deadline(received, fix_days),
    )


def format_deadlines_lines(deadlines: CaseDeadlines, tz: ZoneInfo) -> list[str]:
    """Three lines for ``cvdbot deadlines``: name and ISO 8601 due time with offset."""
    return [
        f"{name} {deadline.due.astimezone(tz).isoformat(timespec='seconds')}"
        for name, deadline in (
            ("acknowledge", deadlines.acknowledge),
            ("assess", deadlines.assess),
            ("fix", deadlines.fix),
        )
    ]
