"""Short display forms shared by the room posts and the mails: a shortened line, a duration."""

from __future__ import annotations

from datetime import timedelta


def shorten(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def duration(span: timedelta) -> str:
    """'2d 3h', '3h 5m', '5m': the size of a span, whole minutes, sign ignored."""
    minutes = abs(int(span.total_seconds())) // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"
