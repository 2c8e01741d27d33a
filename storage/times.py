"""How times are stored: ISO 8601 text in UTC, so that text order in SQL is time order."""

from __future__ import annotations

from datetime import UTC, datetime


def to_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def from_text(text: str | None) -> datetime | None:
    """The stored time, or None for NULL or ''."""
    return datetime.fromisoformat(text) if text else None
