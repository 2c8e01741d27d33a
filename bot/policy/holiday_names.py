"""Public holidays and their names in English and Dutch, from the ``holidays`` package:
memoised per (country, year, language), with the name matching ``working_holidays`` needs.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Literal

import holidays

Language = Literal["en", "nl"]

# The package infers the language of holiday names from the process locale when none is
# given, so every lookup names its language explicitly; otherwise reasons would change with
# LANG. en_US is the package's English; countries without it fall back to their own language.
PACKAGE_LANGUAGES: dict[Language, str] = {"en": "en_US", "nl": "nl"}

# The package joins the names of holidays sharing a date with this separator (sorted per
# language, so the English and Dutch lists are not in the same order).
NAME_SEPARATOR = "; "

# Years scanned once per country to learn every holiday name the package can produce, so a
# misspelt working_holidays entry is reported instead of silently ignored.
_NAME_SCAN_YEARS = range(2000, 2041)

LIBERATION_DAY: tuple[str, str] = ("Liberation Day", "Bevrijdingsdag")
CLOSING_DAY: tuple[str, str] = ("closing day", "sluitingsdag")
WEEKEND: dict[int, tuple[str, str]] = {5: ("Saturday", "zaterdag"), 6: ("Sunday", "zondag")}

# Plain English names people use that differ from the package's English names; values are
# normalised package names.
NAME_ALIASES: dict[str, str] = {
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

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def normalise_name(name: str) -> str:
    """Fold case, apostrophes, full stops and spacing so "King's Day" matches "kings  day"."""
    folded = name.casefold()
    for mark in ("'", "\u2019", "\u2018", "`", "."):
        folded = folded.replace(mark, "")
    return " ".join(folded.split())


@lru_cache(maxsize=4096)
def package_holidays(country: str, year: int, language: str) -> tuple[tuple[date, str], ...]:
    """The package's public holidays of one year, memoised across calendars.

    Building a ``holidays`` object costs about a millisecond; deadlines for 100,000 cases
    must not build one per call, so each (country, year, language) is built exactly once.
    """
    table = holidays.country_holidays(country, years=year, language=language)
    return tuple(sorted(table.items()))


@lru_cache(maxsize=64)
def known_holiday_names(country: str) -> frozenset[str]:
    """Every normalised holiday name, in English and Dutch, the package knows for a country."""
    names: set[str] = set(NAME_ALIASES)
    names.update(normalise_name(n) for n in LIBERATION_DAY)
    for year in _NAME_SCAN_YEARS:
        for language in PACKAGE_LANGUAGES.values():
            for _, joined in package_holidays(country, year, language):
                names.update(normalise_name(n) for n in joined.split(NAME_SEPARATOR))
    return frozenset(names)


@lru_cache(maxsize=256)
def _translation(country: str, year: int) -> dict[str, str]:
    """English to Dutch holiday names, learnt from the dates that carry a single holiday.

    Only needed to pair the names on a date with two holidays (Hemelvaartsdag on 5 May in
    2005), because the package sorts each language's joined names alphabetically.
    """
    english = dict(package_holidays(country, year, PACKAGE_LANGUAGES["en"]))
    dutch = dict(package_holidays(country, year, PACKAGE_LANGUAGES["nl"]))
    pairs = {
        english[day]: dutch[day]
        for day in english
        if day in dutch and NAME_SEPARATOR not in english[day] and NAME_SEPARATOR not in dutch[day]
    }
    pairs[LIBERATION_DAY[0]] = LIBERATION_DAY[1]
    return pairs


def pair_names(country: str, year: int, english: str, dutch: str) -> list[tuple[str, str]]:
    """Split the joined names of one date into (English, Dutch) pairs of single holidays."""
    en_names = english.split(NAME_SEPARATOR)
    nl_names = dutch.split(NAME_SEPARATOR)
    if len(en_names) == 1 and len(nl_names) == 1:
        return [(english, dutch)]
    # A name missing from this year's singles usually stands alone in a neighbouring year.
    for offset in range(11):
        for other in {year - offset, year + offset}:
            translation = _translation(country, other)
            if all(name in translation for name in en_names):
                return [(name, translation[name]) for name in en_names]
    return [(name, name) for name in en_names]
