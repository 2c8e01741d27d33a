"""Guess whether a report is written in Dutch or English, to answer the reporter in kind.

A stop-word count is enough here: reports are prose around technical terms, and the only
choice is nl/en. Short or ambiguous text keeps the configured default.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["Language", "detect_language", "strip_quotes_and_signature"]

Language = Literal["nl", "en"]

# Words that occur in both languages ("is", "in", "over", "was", "we", "me", "of", "had",
# "door", "want", "men", "via", "net", "toe", "ten") are deliberately absent: they would
# count for both sides and mostly for the wrong one.
_DUTCH = frozenset(
    """
    de het een en van ik niet dat die dit deze zijn er op te met voor aan ook als maar om
    bij nog naar dan wel geen kan kunt kunnen worden wordt werd heb hebt hebben heeft ben
    bent hij zij ze wij jullie u uw je jouw mijn onze ons hun wat wie waar hoe waarom welke
    omdat dus zo nu al veel meer hier daar zou zouden moet moeten mag graag bedankt dank
    groet groeten vriendelijke beste geachte hallo goedemorgen goedemiddag bijlage zie
    gevonden tot uit onder tussen zonder mee hierbij waarbij echter alleen andere iets
    niets iemand gaat gaan zelf elke alle wanneer tijdens sinds betreft melden melding
    kwetsbaarheid kwetsbaarheden beveiligingslek lek gegevens pagina inloggen mogelijk
    aanvaller gebruiker gebruikers waardoor hiermee daarmee nadat voordat
    """.split()
)
_ENGLISH = frozenset(
    """
    the and to a an i you your it its this that these those with from for on at by be are
    been being were has have having does did not but or if can could would should will
    may might must there their they them what which who when where how why because so
    also only some any all about into than then just my our he she his her him hello dear
    regards thanks thank please found attached vulnerability vulnerabilities issue
    affected allows allow user users attacker possible without between after before
    while us yours sincerely
    """.split()
)

# Both start only where their first character class starts a run (the look-behinds):
# otherwise a long run of such characters is scanned again from every position in it,
# which is quadratic in the run's length (a 100 KB one-line body took minutes).
_URL_RE = re.compile(
    r"(?<![a-z0-9+.-])(?:[a-z][a-z0-9+.-]*://|www\.)\S+",
    re.IGNORECASE,
)
_EMAIL_RE = re.compile(r"(?<!\S)\S+@\S+")
# Payloads such as <script> or <a href=...> are neither language; their tag and
# attribute names ("a", "on...") must not count as English.
_TAG_RE = re.compile(r"<[^<>\n]{0,300}>")
# Text in quotation marks is usually quoted from a page or an error message, which
# says nothing about the reporter's own language.
_QUOTED_RE = re.compile(
    r"\"[^\"\n]{0,300}\"|\u201c[^\u201d\n]{0,300}\u201d|\u201e[^\u201d\n]{0,300}\u201d"
)
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
# A whitespace-separated chunk with one of these inside is code, a path, a CVSS vector or
# a payload ("AV:N/AC:L/.../I:H/A:H" would otherwise count "i" and "a" as English).
_TECHNICAL_CHARS = frozenset("/:=\\{}[]<>|_@#$%^*~`+&")
_EDGE_PUNCTUATION = ".,:;!?\"'()"
# A reply's quoted history starts at one of these lines; what follows is someone else's text.
_SEPARATOR_RE = re.compile(
    r"^\s*-{2,}\s*(?:original message|oorspronkelijk bericht|forwarded message"
    r"|doorgestuurd bericht)\s*-{2,}",
    re.IGNORECASE,
)
# "On Tue, ... Jan wrote:" / "Op di 3 feb. 2026 om 10:12 schreef Jan <...>:", which mail
# clients sometimes wrap onto a second line.
_ATTRIBUTION_RE = re.compile(r"^\s*(?:on|op)\s.{0,200}\b(?:wrote|schreef)\b", re.IGNORECASE)
# Outlook's header block of the quoted mail: "From:"/"Van:" followed by "Sent:"/"Verzonden:".
_OUTLOOK_FROM_RE = re.compile(r"^\s*\**(?:from|van):\**\s", re.IGNORECASE)
_OUTLOOK_SENT_RE = re.compile(
    r"^\s*\**(?:sent|date|verzonden|verstuurd|datum):\**\s", re.IGNORECASE
)

# Below this many counted words a guess is no better than the default.
_MIN_HITS = 2
# The winning language must have at least this share of the counted words.
_MIN_SHARE = 0.65


def _starts_history(lines: list[str], index: int) -> bool:
    line = lines[index]
    if _SEPARATOR_RE.match(line):
        return True
    following = [later for later in lines[index + 1 : index + 4] if later.strip()]
    if _ATTRIBUTION_RE.match(line):
        # Only a real attribution: it ends the line with ":" or quoted text follows.
        ending = (line + " " + following[0]) if following else line
        return ending.rstrip().endswith(":") or any(
            later.lstrip().startswith(">") for later in following[:2]
        )
    if _OUTLOOK_FROM_RE.match(line):
        # A lone "From:" line may be part of the report itself (a spoofing report quoting
        # headers); Outlook's history always has the date line right after it.
        return any(_OUTLOOK_SENT_RE.match(later) for later in following)
    return False


def strip_quotes_and_signature(text: str) -> str:
    """The author's own words: quoted lines, reply history and signature removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line.rstrip() in ("--", "-- ", "__"):
            break
        if _starts_history(lines, index):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    return "\n".join(kept)


def _counts(text: str) -> tuple[int, int]:
    text = strip_quotes_and_signature(text)
    text = _URL_RE.sub(" ", text)
    text = _EMAIL_RE.sub(" ", text)
    text = _TAG_RE.sub(" ", text)
    text = _QUOTED_RE.sub(" ", text)
    prose = " ".join(
        chunk
        for chunk in text.split()
        if not _TECHNICAL_CHARS.intersection(chunk.strip(_EDGE_PUNCTUATION))
    )
    dutch = english = 0
    for word in _WORD_RE.findall(prose.lower()):
        if word in _DUTCH:
            dutch += 1
        elif word in _ENGLISH:
            english += 1
    return dutch, english


def detect_language(text: str, default: Language = "nl") -> Language:
    """'nl' or 'en' for the author's own text; `default` when too short or too mixed."""
    dutch, english = _counts(text)
    total = dutch + english
    if total < _MIN_HITS:
        return default
    if dutch >= _MIN_HITS and dutch / total >= _MIN_SHARE:
        return "nl"
    if english >= _MIN_HITS and english / total >= _MIN_SHARE:
        return "en"
    return default
