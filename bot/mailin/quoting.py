"""A reply without its quoted history: what the team needs to read of a follow-up mail.

Mail clients quote the earlier conversation in two ways. Outlook puts it below a header
block ("From: … Sent: …" / "Van: … Verzonden: …", or "-----Original Message-----");
everything from there on is history. Gmail, Thunderbird and Apple Mail prefix it with "> "
after an attribution line ("On … wrote:" / "Op … schreef …:"). A quoted run at the end goes;
a run between new paragraphs (an interleaved answer) becomes one "> […]" line so the answer
still reads as one. The full text stays stored; this only decides what the thread shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["QUOTE_PLACEHOLDER", "Stripped", "strip_quoted"]

QUOTE_PLACEHOLDER = "> […]"

# Attribution lines of Gmail, Thunderbird, Apple Mail and Outlook on the web, in English,
# Dutch, German and French; Gmail wraps a long one over two lines.
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"on\b.{3,300}\b(?:wrote|writes)\s*:"
    r"|op\b.{3,300}\b(?:schreef|geschreven)\b.{0,200}:"
    r"|am\b.{3,300}\bschrieb\b.{0,200}:"
    r"|le\b.{3,300}\ba écrit\s*:"
    r"|.{1,200}\b(?:wrote|schreef|schrieb)\s*:"
    r")\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(r"^\s*(?:on|op|am|le)\s.{3,}$", re.IGNORECASE)
# Outlook (desktop, web, mobile) and Lotus-style separators above the quoted mail.
_SEPARATOR = re.compile(
    r"^\s*-{3,}\s*(?:original message|oorspronkelijk bericht|ursprüngliche nachricht"
    r"|message d'origine)\s*-{3,}\s*$",
    re.IGNORECASE,
)
# Outlook's line above the header block of the quoted mail (only history when a "From:"
# follows: on its own it may be a signature divider).
_UNDERLINE = re.compile(r"^\s*_{10,}\s*$")
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|van|von|de)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:sent|date|verzonden|verstuurd|datum|gesendet|envoyé|to|aan|an|à|subject"
    r"|onderwerp|betreff|objet|cc)\s*:\*?",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^-- ?$")


@dataclass(frozen=True)
class Stripped:
    text: str
    removed: bool  # whether any quoted history was left out


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _is_blank(line: str) -> bool:
    return not line.strip()


def _outlook_header_at(lines: list[str], index: int) -> bool:
    """Whether an Outlook-style header block ("From: …" + "Sent:/To:/Subject: …") starts."""
    if not _HEADER_FROM.match(lines[index]):
        return False
    following = [line for line in lines[index + 1 : index + 5] if not _is_blank(line)]
    return sum(1 for line in following[:3] if _HEADER_NEXT.match(line)) >= 2


def _history_start(lines: list[str]) -> int | None:
    """Index of the first line of top-posted (Outlook-style, unquoted) history, if any."""
    for index, line in enumerate(lines):
        if _is_quoted(line):
            continue
        if _SEPARATOR.match(line):
            return index
        if _UNDERLINE.match(line):
            following = [later for later in lines[index + 1 : index + 4] if not _is_blank(later)]
            if following and _HEADER_FROM.match(following[0]):
                return index
        if _outlook_header_at(lines, index):
            return index
    return None


def _collapse_quotes(lines: list[str]) -> tuple[list[str], bool]:
    """Drop trailing quoted runs; turn interleaved ones (and their attribution) into one line."""
    out: list[str] = []
    removed = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if not _is_quoted(line):
            out.append(line)
            index += 1
            continue
        end = index
        while end < len(lines) and (_is_quoted(lines[end]) or _is_blank(lines[end])):
            end += 1
        removed = True
        # The attribution line belongs to the quote it introduces.
        while out and _is_blank(out[-1]):
            out.pop()
        if (
            len(out) >= 2
            and out[-1].rstrip().endswith(":")
            and _ATTRIBUTION_START.match(out[-2])
            and not _ATTRIBUTION.match(out[-2])
            and _ATTRIBUTION.match(out[-2] + " " + out[-1].strip())
        ):
            # Gmail wraps a long attribution: "On Mon, 2 Feb 2026 at 10:12, Sam Finder <"
            # and "sam@finder.example> wrote:".
            del out[-2:]
        elif out and _ATTRIBUTION.match(out[-1]):
            out.pop()
        if any(not _is_blank(rest) and not _SIGNATURE.match(rest) for rest in lines[end:]):
            if out:
                out.append("")
            out.append(QUOTE_PLACEHOLDER)
            out.append("")
        index = end
    return out, removed


def strip_quoted(text: str) -> Stripped:
    """The new text of a reply. When nothing new is left, the text is returned whole."""
    lines = text.split("\n")
    removed = False
    start = _history_start(lines)
    if start is not None:
        lines = lines[:start]
        removed = True
    lines, collapsed = _collapse_quotes(lines)
    removed = removed or collapsed
    new_text = "\n".join(lines).strip("\n")
    new_text = re.sub(r"\n{3,}", "\n\n", new_text)
    if not new_text.strip() or new_text.strip() == QUOTE_PLACEHOLDER:
        return Stripped(text, False)
    return Stripped(new_text, removed)
