"""When the case room is still a safe place for report contents: the trust boundary.

The bot shares its room keys with every device of every member of the case room (see README,
"Trust"), so the room's *membership* is what keeps report contents among the team. The room
stays inside the boundary while all of these hold:

* the bot is joined (kicked, banned or having left, it is no longer in the conversation);
* the room is end-to-end encrypted (Matrix cannot turn encryption off again, but a room
  created without it never had it);
* only the room's own members decide who joins: join rule ``invite`` or ``knock`` (a knock
  still needs a member's approval). ``public`` lets anyone in; ``restricted`` and
  ``knock_restricted`` let every member of another room or space in without an invite;
* its history is not ``world_readable`` (readable by anyone, members or not, and a signal
  that the room is meant to be open).

Pure rules, no I/O; `bot/matrix/case_room_guard.py` applies them after every sync.
"""

from __future__ import annotations

from dataclasses import dataclass

SAFE_JOIN_RULES = frozenset({"invite", "knock"})
UNSAFE_HISTORY = frozenset({"world_readable"})


@dataclass(frozen=True)
class RoomView:
    """What the bot knows of the case room after a sync."""

    joined: bool
    encrypted: bool = False
    join_rule: str = "invite"
    history_visibility: str = "shared"
    # Who made the latest change that matters, and how the bot left (when it did).
    changed_by: str | None = None
    left_as: str | None = None  # "leave" (kicked or left) or "ban"
    left_reason: str | None = None


def boundary_breaks(view: RoomView) -> list[str]:
    """Why the room is outside the trust boundary now; empty while it is inside."""
    if not view.joined:
        if view.left_as == "ban":
            return ["I was banned from the case room"]
        return ["I am not a member of the case room"]
    reasons = []
    if not view.encrypted:
        reasons.append("the case room is not end-to-end encrypted")
    if view.join_rule not in SAFE_JOIN_RULES:
        reasons.append(
            f"the case room's join rule is '{view.join_rule}': people can join without an "
            "invite from its members"
        )
    if view.history_visibility in UNSAFE_HISTORY:
        reasons.append(
            f"the case room's history visibility is '{view.history_visibility}': anyone can "
            "read it, members or not"
        )
    return reasons


def is_trusted(view: RoomView) -> bool:
    return not boundary_breaks(view)
