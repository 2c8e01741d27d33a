"""One policy deadline and how it was reached, explained in English or Dutch for the thread."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from bot.policy.holiday_names import WEEKEND, Language


@lru_cache(maxsize=256)
def rule_text(count: int, kind: Literal["working", "calendar"], language: Language) -> str:
    words = {
        ("working", "en"): ("working day", "working days"),
        ("working", "nl"): ("werkdag", "werkdagen"),
        ("calendar", "en"): ("calendar day", "calendar days"),
        ("calendar", "nl"): ("kalenderdag", "kalenderdagen"),
    }[(kind, language)]
    return f"{count} {words[0] if count == 1 else words[1]}"


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
        weekend = {names[0 if language == "en" else 1] for names in WEEKEND.values()}
        items = []
        for index, (day, english) in enumerate(self.skipped):
            reason = self.skipped_nl[index] if use_dutch else english
            # The weekday abbreviation already says "Sat"/"Sun"; repeating it is noise.
            text = _format_day(day, language)
            items.append(text if reason in weekend else f"{text} ({reason})")
        return f"{first}\n{phrases['skipped']}: {', '.join(items)}."
