"""Room messages: mail text cannot mention anyone or carry markup; thread relations."""

from __future__ import annotations

from bot.mailin.intake_posts import mail_post
from bot.matrix.posts import defuse_mentions, message_content


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
