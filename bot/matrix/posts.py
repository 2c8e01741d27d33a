"""Posting to the room: the one thread-aware helper every case message goes through.

A post is queued in the outbox (never sent directly) and built into a Matrix event only when
the outbox sends it, because only then are the thread root and the thread's last event known.
Text that came from a mail is escaped here and can neither mention anyone nor carry markup.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from bot.outbox import payloads
from bot.outbox.payloads import PlainVariant, RoomPost, RootPost, ThreadPost

# U+2060 WORD JOINER keeps "@room" readable but makes it a different string, so no client or
# push rule that still matches bodies can turn mail text into a room-wide ping.
_MENTION = re.compile(r"@(?=(room|channel|everyone|here)\b|[A-Za-z0-9._=/+-]+:[A-Za-z0-9.-])")


@dataclass(frozen=True)
class Post:
    """A message as plain text and HTML; build the HTML with the helpers below.

    `mentions`: the user IDs the post is meant to notify (its `m.mentions`); empty for
    everything else, so no text in it can ping anyone.
    """

    body: str
    html: str
    mentions: tuple[str, ...] = ()

    @classmethod
    def text(cls, text: str) -> Post:
        return cls(text, text_to_html(text))


def defuse_mentions(text: str) -> str:
    return _MENTION.sub("@\u2060", text)


def user_link(user_id: str) -> str:
    """A mention pill: clients render it as the user's name (pair it with `mentions`)."""
    return f'<a href="https://matrix.to/#/{html.escape(user_id)}">{html.escape(user_id)}</a>'


def text_to_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>\n")


def txn_id_for(idem_key: str) -> str:
    return "cvdbot-" + hashlib.sha256(idem_key.encode()).hexdigest()[:40]


async def post_to_case(
    conn: aiosqlite.Connection,
    case_id: str,
    post: Post,
    *,
    idem_key: str,
    now: datetime,
    reply_to: str | None = None,
    mentions: Sequence[str] = (),
) -> bool:
    """Queue a post in the case's thread (`reply_to`: the command event it answers)."""
    payload = ThreadPost(post.body, post.html, reply_to, tuple(mentions))
    return await payloads.enqueue(conn, payload, idem_key=idem_key, case_id=case_id, now=now)


# The outbox key of every case's thread root.
ROOT_KEY_PREFIX = "root:"


async def post_case_root(
    conn: aiosqlite.Connection, case_id: str, post: Post, *, now: datetime
) -> bool:
    return await payloads.enqueue(
        conn,
        RootPost(post.body, post.html),
        idem_key=f"{ROOT_KEY_PREFIX}{case_id}",
        case_id=case_id,
        now=now,
        # New cases are announced before anything else waiting: when mail piles up (after
        # downtime), the team first sees every case, then the details in each thread.
        priority=0,
    )


async def post_to_room(
    conn: aiosqlite.Connection,
    room_id: str,
    post: Post,
    *,
    idem_key: str,
    now: datetime,
    thread_root: str | None = None,
    reply_to: str | None = None,
    mentions: Sequence[str] = (),
    unencrypted: Post | None = None,
) -> bool:
    """Queue a post that belongs to no case: help and refusals outside a thread, deadline
    escalations and the digest in digest_room.

    `unencrypted` is what may go out instead if the room turns out not to be end-to-end
    encrypted: nothing from the reports. Without it the post waits for an encrypted room.
    """
    payload = RoomPost(
        room_id=room_id,
        body=post.body,
        html=post.html,
        thread_root=thread_root,
        reply_to=reply_to,
        mentions=tuple(mentions),
        unencrypted=PlainVariant(unencrypted.body, unencrypted.html) if unencrypted else None,
    )
    return await payloads.enqueue(conn, payload, idem_key=idem_key, case_id=None, now=now)


def message_content(
    body: str,
    html_body: str,
    *,
    thread_root: str | None,
    reply_to: str | None,
    last_in_thread: str | None,
    mentions: list[str],
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html_body,
        # Always present and empty unless a mention is intended: with m.mentions set, clients
        # and servers ignore @room and user IDs that merely appear in the text.
        "m.mentions": {"user_ids": mentions} if mentions else {},
    }
    if thread_root is not None:
        # The reply fallback points at the event answered, or the thread's latest message,
        # so clients without thread support still show the conversation in order.
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_root,
            "is_falling_back": reply_to is None,
            "m.in_reply_to": {"event_id": reply_to or last_in_thread or thread_root},
        }
    elif reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content
