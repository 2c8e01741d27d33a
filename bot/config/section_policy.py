"""The ``policy`` section: the CVD policy's promises and the calendar they are counted in.

Validates time zone, holiday country and names, business hours and deadline warning points.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
import zoneinfo
from datetime import date
from typing import Annotated, Any, Literal

import holidays
from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator

from bot.config.fields import (
    FROZEN,
    ISO_DATE_RE,
    ClockTime,
    IsoDate,
    PositiveInt,
    as_text,
    iso_date,
)

DEFAULT_WARNINGS = ("50%", "1 working day left", "overdue")
# The forms bot/watch/warning_points.py understands: a share of the time used, working
# time left, or the deadline passed.
WARNING_POINT_RE = re.compile(
    r"^(?:([1-9][0-9]?)%|([1-9][0-9]*) working (day|hour)s? left|overdue)$"
)


def _warning_points(value: list[str]) -> list[str]:
    points = [" ".join(str(item).split()).lower() for item in value]
    bad = [
        repr(item)
        for item, point in zip(value, points, strict=True)
        if not WARNING_POINT_RE.match(point)
    ]
    if bad:
        raise ValueError(
            f'{", ".join(bad)}: a warning point is a share of the time used ("50%"), working '
            'time left ("1 working day left", "4 working hours left") or "overdue"'
        )
    if "overdue" not in points:
        raise ValueError('must include "overdue": an overdue case is what reaches the managers')
    if len(set(points)) != len(points):
        raise ValueError("names a warning point twice")
    return points


@functools.lru_cache(maxsize=8)
def _holiday_names(country: str) -> frozenset[str]:
    """Case-folded names the holidays package uses for `country`, native and English.

    Without an explicit language the package picks one from LANG, so both are accepted.
    """
    probe = holidays.country_holidays(country)
    languages: set[str | None] = {
        lang for lang in (probe.default_language, "en_US") if lang in probe.supported_languages
    } or {None}
    names: set[str] = set()
    for language in languages:
        calendar = holidays.country_holidays(country, years=range(2000, 2051), language=language)
        for joined in calendar.values():
            # Two holidays on one day come back as "A; B".
            names.update(part.strip().casefold() for part in str(joined).split(";"))
    return frozenset(names)


class PolicyConfig(BaseModel):
    """The CVD policy's promises and the calendar they are counted in."""

    model_config = FROZEN

    timezone: str = "Europe/Amsterdam"
    holiday_country: str = "NL"
    acknowledge_within_working_days: PositiveInt = 2
    assess_within_working_days: PositiveInt = 5
    fix_within_days: PositiveInt = 90
    default_language: Literal["nl", "en"] = "nl"
    business_hours_start: ClockTime = "09:00"
    business_hours_end: ClockTime = "17:00"
    closing_days: list[IsoDate] = Field(default_factory=list)
    working_holidays: list[date | str] = Field(default_factory=list)
    liberation_day: Literal["every_year", "package"] = "package"
    # Progress updates: a case assessed and not yet fixed whose reporter has had no mail for
    # this many calendar days is warned about in its thread and listed in the digest.
    update_every_days: PositiveInt = 30
    # "Always shared with the IBD": a case assessed and not shared with the IBD within this
    # many working days is warned about in its thread and listed in the digest.
    share_ibd_within_working_days: PositiveInt = 2
    # Days after !close before a case's personal data and report text are deleted.
    retention_days_after_close: PositiveInt = 90
    # When the case thread is warned about a deadline (bot/watch/warning_points.py parses these).
    warnings: Annotated[list[str], AfterValidator(_warning_points)] = Field(
        default_factory=lambda: list(DEFAULT_WARNINGS)
    )

    @field_validator("timezone", mode="before")
    @classmethod
    def _known_zone(cls, value: Any) -> Any:
        value = as_text(value)
        if not isinstance(value, str):
            return value
        known = zoneinfo.available_timezones()
        # available_timezones() is empty when no tz database is found; then let ZoneInfo
        # decide rather than rejecting every zone.
        if known and value not in known:
            close = difflib.get_close_matches(value, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"must be an IANA time zone like Europe/Amsterdam{hint}")
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone like Europe/Amsterdam") from None
        return value

    @field_validator("holiday_country", mode="before")
    @classmethod
    def _known_country(cls, value: Any) -> Any:
        value = as_text(value)
        if not isinstance(value, str):
            return value
        code = value.upper()
        if code not in holidays.list_supported_countries():
            raise ValueError("must be a country code the holidays package knows, like NL, BE or DE")
        return code

    @field_validator("business_hours_end")
    @classmethod
    def _end_after_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("business_hours_start")
        if start is not None and value <= start:
            raise ValueError(f"must be later than business_hours_start ({start})")
        return value

    @field_validator("working_holidays", mode="before")
    @classmethod
    def _holiday_entries(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, list):
            return value
        country = info.data.get("holiday_country")
        known = _holiday_names(country) if country else None
        entries: list[date | str] = []
        bad: list[str] = []
        unknown: list[str] = []
        for entry in value:
            if isinstance(entry, date) or (isinstance(entry, str) and ISO_DATE_RE.match(entry)):
                try:
                    entries.append(iso_date(entry))
                except ValueError:
                    bad.append(repr(entry))
            elif isinstance(entry, str) and entry.strip():
                name = entry.strip()
                if known is not None and name.casefold() not in known:
                    unknown.append(repr(name))
                entries.append(name)
            else:
                bad.append(repr(entry))
        # One field gets one message, so every bad entry is named in it.
        reasons = []
        if bad:
            reasons.append(
                f"{', '.join(bad)}: not a holiday name or a real date written YYYY-MM-DD"
            )
        if unknown:
            reasons.append(
                f"{', '.join(unknown)}: not a holiday in {country} as the holidays package "
                "names it (its Dutch or English name, e.g. 'Good Friday' or 'Goede vrijdag')"
            )
        if reasons:
            raise ValueError("; ".join(reasons))
        return entries

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The policy's time zone as a tzinfo."""
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def business_hours_start_time(self) -> dt.time:
        return dt.time.fromisoformat(self.business_hours_start)

    @property
    def business_hours_end_time(self) -> dt.time:
        return dt.time.fromisoformat(self.business_hours_end)

    @property
    def working_holiday_dates(self) -> frozenset[date]:
        """The working_holidays given as dates."""
        return frozenset(item for item in self.working_holidays if isinstance(item, date))

    @property
    def working_holiday_names(self) -> frozenset[str]:
        """The working_holidays given as names, case-folded for matching."""
        return frozenset(item.casefold() for item in self.working_holidays if isinstance(item, str))
