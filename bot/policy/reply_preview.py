"""When a previewed reply may be sent: the rule behind `!reply` and `!send`. Pure, no I/O.

`!reply <text>` shows the team the exact mail the reporter would get and stores it as a
numbered preview of the case; `!send` sends the case's latest preview, once. A preview
cannot be sent when it is older than an hour (what the team read may no longer fit), when a
newer `!reply` superseded it, when it was sent already, or when what it shows no longer
holds: the case's language changed, or the mail would now be protected differently (the
reporter's key came or went) than the preview said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.policy.lifecycle import TransitionError

PREVIEW_VALID_FOR = timedelta(hours=1)


@dataclass(frozen=True)
class ReplyPreview:
    """One `!reply`: the team's text and the exact mail it makes (subject and body)."""

    case_id: str
    number: int  # 1, 2, … per case: `!send N` names the one the sender read
    created_at: datetime
    created_by: str
    language: str
    to_address: str
    text: str
    subject: str
    body: str
    encrypted: bool
    sent_at: datetime | None = None
    sent_by: str | None = None

    @property
    def expires_at(self) -> datetime:
        return self.created_at + PREVIEW_VALID_FOR


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def check_sendable(
    latest: ReplyPreview | None,
    *,
    wanted: int | None,
    now: datetime,
    case_language: str,
    to_address: str | None,
    encrypted_now: bool,
) -> ReplyPreview:
    """The preview `!send` may send now (the latest, or the one numbered `wanted` if that is
    the latest); otherwise TransitionError saying why, and nothing is sent."""
    if latest is None:
        raise TransitionError("there is no reply to send: preview one with !reply <text> first.")
    if wanted is not None and wanted != latest.number:
        if wanted > latest.number or wanted < 1:
            raise TransitionError(f"there is no preview #{wanted}; the latest is #{latest.number}.")
        raise TransitionError(
            f"preview #{wanted} was superseded by #{latest.number} ({latest.created_by}, "
            f"{_when(latest.created_at)}); read #{latest.number} and run !send "
            f"{latest.number} if it is the one to send. Nothing was sent."
        )
    if latest.sent_at is not None:
        raise TransitionError(
            f"preview #{latest.number} was already sent on {_when(latest.sent_at)} by "
            f"{latest.sent_by}; nothing was sent again."
        )
    if now > latest.expires_at:
        raise TransitionError(
            f"preview #{latest.number} is older than an hour (made {_when(latest.created_at)});"
            " run !reply again to see what would be sent now. Nothing was sent."
        )
    if case_language != latest.language:
        raise TransitionError(
            f"the case's language changed to {case_language} after preview #{latest.number} "
            f"({latest.language}); run !reply again. Nothing was sent."
        )
    if to_address != latest.to_address:
        raise TransitionError(
            f"the reporter's address changed after preview #{latest.number}; run !reply "
            "again. Nothing was sent."
        )
    if encrypted_now != latest.encrypted:
        now_text = "would now be encrypted" if encrypted_now else "could now only be signed"
        raise TransitionError(
            f"the reply {now_text}, unlike preview #{latest.number} said (the reporter's key "
            "changed); run !reply again. Nothing was sent."
        )
    return latest
