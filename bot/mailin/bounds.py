"""Size bounds applied to a mail's bytes before the email package parses them.

A header field of megabytes or a header section of thousands of fields is cut down here, in
one linear pass over the bytes, so that nothing later (the parser, the header registry, the
report check) ever sees more than the configured amounts. What was cut is said in
`problems`, which the thread shows. The raw mail is stored whole all the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.config.section_limits import LimitsConfig

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FIELD_NAME = re.compile(rb"[!-9;-~]{1,60}")


@dataclass(frozen=True)
class MailBounds:
    """How much of one mail is read (the ``limits`` config section)."""

    max_header_field_bytes: int = LimitsConfig().max_header_field_bytes
    max_header_bytes: int = LimitsConfig().max_header_bytes
    max_mime_parts: int = LimitsConfig().max_mime_parts

    @classmethod
    def of(cls, limits: LimitsConfig) -> MailBounds:
        return cls(limits.max_header_field_bytes, limits.max_header_bytes, limits.max_mime_parts)


DEFAULT_BOUNDS = MailBounds()


def bound_header_section(raw: bytes, bounds: MailBounds) -> tuple[bytes, list[str]]:
    """`raw` with each header field cut to `max_header_field_bytes` and the fields beyond
    `max_header_bytes` left out; and what was cut, for the team."""
    found = _HEADER_END.search(raw)
    end = found.start() if found is not None else len(raw)
    limit = min(bounds.max_header_field_bytes, bounds.max_header_bytes)
    if end <= limit:
        return raw, []
    fields: list[list[bytes]] = []
    for line in raw[:end].split(b"\n"):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1].append(line)
        else:
            fields.append([line])
    kept: list[bytes] = []
    total = 0
    left_out = 0
    problems: list[str] = []
    for lines in fields:
        field = b"\n".join(lines)
        if len(field) > bounds.max_header_field_bytes:
            problems.append(
                f"the {_name(field)} header field ({len(field)} bytes) was cut to "
                f"{bounds.max_header_field_bytes} bytes (limits.max_header_field_bytes)"
            )
            field = field[: bounds.max_header_field_bytes].rstrip(b"\r")
        if total + len(field) + 1 > bounds.max_header_bytes:
            left_out += 1
            continue
        kept.append(field)
        total += len(field) + 1
    if left_out:
        problems.append(
            f"{left_out} header fields beyond {bounds.max_header_bytes} bytes of header were "
            "left out (limits.max_header_bytes)"
        )
    return b"\n".join(kept) + raw[end:], problems


def _name(field: bytes) -> str:
    """The field's name if it looks like one (printable ASCII, no colon), else "unnamed"."""
    name = field.split(b":", 1)[0].strip()
    return name.decode("ascii") if _FIELD_NAME.fullmatch(name) else "unnamed"
