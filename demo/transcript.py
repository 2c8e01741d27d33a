"""Print a room's case threads as a team member's client decrypted them."""

from __future__ import annotations

import textwrap
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.harness.person import ReceivedMessage

TZ = ZoneInfo("Europe/Amsterdam")


def _when(message: ReceivedMessage) -> str:
    return datetime.fromtimestamp(message.timestamp / 1000, TZ).strftime("%H:%M:%S")


def _who(user_id: str) -> str:
    return user_id.split(":")[0].lstrip("@")


def format_transcript(messages: list[ReceivedMessage]) -> str:
    """Each thread root, then its replies indented, in the order the client saw them."""
    roots = [m for m in messages if m.thread_root is None]
    lines: list[str] = []
    for root in roots:
        replies = [m for m in messages if m.thread_root == root.event_id]
        if not replies and not root.body.startswith("New report"):
            lines.append(f"[{_when(root)}] {_who(root.sender)}: {root.body}")
            continue
        lines.append("=" * 78)
        lines.append(f"[{_when(root)}] {_who(root.sender)} (thread root, decrypted):")
        lines.extend("  " + line for line in root.body.splitlines())
        for reply in replies:
            lines.append(f"  └ [{_when(reply)}] {_who(reply.sender)}:")
            for line in reply.body.splitlines() or [""]:
                lines.extend(
                    textwrap.wrap(line, 72, initial_indent="      ", subsequent_indent="      ")
                    or ["      "]
                )
    return "\n".join(lines)
