"""Room messages: mail text cannot mention anyone or carry markup; thread relations; what
the posting helpers queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bot.mailin.intake_posts import mail_post
from bot.matrix.posts import Post, defuse_mentions, message_content, post_to_room
from bot.outbox.payloads import PlainVariant, RoomPost, decode
from storage import outbox
from storage.db import Database

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def test_mentions_are_defused() -> None:
    text = "Hi @room and @alice:example.org, mail me at bob@example.net"
    safe = defuse_mentions(text)
    assert "@room" not in safe
    assert "@alice:example.org" not in safe
    assert "bob@example.net" in safe  # an address is not a mention and stays readable
    assert safe.replace("\u2060", "") == text


def test_untrusted_text_is_escaped() -> None:
    post = mail_post(
        "📨 The report:", '<a href="javascript:alert(1)">x</a><img src=x>\n!fixed', max_chars=1000
    )
    assert "<a " not in post.html and "<img" not in post.html
    assert "&lt;a href=" in post.html
    assert post.body.endswith("!fixed")


def test_thread_content_with_fallback() -> None:
    content = message_content(
        "b", "<p>b</p>", thread_root="$root", reply_to=None, last_in_thread="$last", mentions=[]
    )
    assert content["m.mentions"] == {}
    assert content["msgtype"] == "m.notice"
    assert content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$last"},
    }


def test_thread_reply_to_a_command_is_a_real_reply() -> None:
    content = message_content(
        "b", "b", thread_root="$root", reply_to="$cmd", last_in_thread="$last", mentions=["@a:x"]
    )
    assert content["m.relates_to"]["is_falling_back"] is False
    assert content["m.relates_to"]["m.in_reply_to"] == {"event_id": "$cmd"}
    assert content["m.mentions"] == {"user_ids": ["@a:x"]}


def test_root_has_no_relation() -> None:
    content = message_content(
        "b", "b", thread_root=None, reply_to=None, last_in_thread=None, mentions=[]
    )
    assert "m.relates_to" not in content


async def test_room_posts_carry_every_option_in_the_stored_shape(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "x.sqlite3")
    async with db.transaction() as conn:
        assert await post_to_room(
            conn,
            "!managers:x",
            Post("full", "<p>full</p>"),
            idem_key="escalate:1",
            now=NOW,
            mentions=["@boss:x"],
            unencrypted=Post("bare", "<p>bare</p>"),
        )
        assert await post_to_room(
            conn,
            "!cases:x",
            Post.text("usage"),
            idem_key="reply:$cmd",
            now=NOW,
            thread_root="$thread",
            reply_to="$cmd",
        )
        assert not await post_to_room(
            conn, "!cases:x", Post.text("again"), idem_key="reply:$cmd", now=NOW
        )
        escalation, reply = await outbox.due(conn, "matrix", NOW)
    await db.close()
    assert escalation.case_id is None and reply.case_id is None
    assert decode(escalation.payload) == RoomPost(
        "!managers:x",
        "full",
        "<p>full</p>",
        mentions=("@boss:x",),
        unencrypted=PlainVariant("bare", "<p>bare</p>"),
    )
    # The JSON shape is the one rows have always had.
    assert json.loads(reply.payload) == {
        "kind": "room",
        "room_id": "!cases:x",
        "body": "usage",
        "html": "usage",
        "thread_root": "$thread",
        "reply_to": "$cmd",
        "mentions": [],
    }
