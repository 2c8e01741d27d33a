"""Mail text cannot ping, inject markup or run a command in the team's room.

Hostile mails (plain text, HTML-only, and a follow-up) carry `@room`, the Matrix user ID of
a real team member, a javascript: link, an <img onerror>, a matrix.to pill, a disguised
link and lines starting with `!fixed`. What the team member's client decrypts is checked:
every bot message has `m.mentions: {}`, no pingable `@room` or user ID in its text, no
live markup in its HTML; the hostile text did arrive (escaped); the cases stay `new` and
no mail is sent.
"""

from __future__ import annotations

import asyncio
import html
import sqlite3
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html.parser import HTMLParser
from typing import Any

from tests.harness.bot import CvdDeployment
from tests.harness.person import ReceivedMessage
from tests.integration.conftest import MakeDeployment

# Elements that would make mail text live in a client: links and pills, media, scripts,
# frames, forms, styles.
FORBIDDEN_TAGS = frozenset(
    {
        "a",
        "img",
        "script",
        "iframe",
        "frame",
        "object",
        "embed",
        "svg",
        "math",
        "form",
        "input",
        "button",
        "style",
        "link",
        "meta",
        "base",
        "video",
        "audio",
        "source",
    }
)


class _Markup(HTMLParser):
    """The tags, attributes and text of a formatted_body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend((name, value or "") for name, value in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def markup_problems(formatted: str, user_id: str) -> list[str]:
    parser = _Markup()
    parser.feed(formatted)
    parser.close()
    problems = [f"live <{tag}> element" for tag in parser.tags if tag in FORBIDDEN_TAGS]
    for name, value in parser.attributes:
        if name.startswith("on"):
            problems.append(f"event handler attribute {name}")
        if "javascript:" in value.lower().replace(" ", ""):
            problems.append(f"javascript: URL in attribute {name}")
        if name in ("href", "src") and ("matrix.to" in value or value.startswith("mxc:")):
            problems.append(f"{name}={value!r}")
    text = "".join(parser.text)
    if "@room" in text:
        problems.append("pingable @room in the HTML text")
    if user_id in text:
        problems.append("the team member's user ID verbatim in the HTML text")
    return problems


def mail(
    subject: str,
    *,
    text: str | None = None,
    html_body: str | None = None,
    sender: str = "Mallory <mallory@attacker.example>",
    message_id: str | None = None,
) -> tuple[bytes, str]:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "security@haaksbergen.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain="attacker.example")
    if text is not None:
        message.set_content(text)
    if html_body is not None:
        if text is None:
            message.set_content(html_body, subtype="html")
        else:
            message.add_alternative(html_body, subtype="html")
    return bytes(message), str(message["Message-ID"])


def rows(d: CvdDeployment, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(d.db_path, timeout=10) as conn:
        return conn.execute(sql).fetchall()


async def wait_ingested(d: CvdDeployment, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            d.db_path.exists()
            and rows(d, "SELECT COALESCE(MAX(last_uid), 0) FROM imap_state")[0][0] >= count
        ):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the bot did not read {count} mails in {timeout} s")


async def wait_delivered(d: CvdDeployment, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outbox = rows(d, "SELECT state, result FROM outbox WHERE channel = 'matrix'")
        seen = {m.event_id for m in d.team.messages(d.room_id)}
        if all(state == "sent" and result in seen for state, result in outbox):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("bot posts were not all delivered and decrypted")


async def test_mail_text_cannot_mention_inject_or_run_a_command(
    make_deployment: MakeDeployment,
) -> None:
    d = await make_deployment()
    user = d.team.user_id
    d.start_bot()
    hostile_lines = (
        f"Hello @room and {user},\n"
        "please look at this:\n"
        '<a href="javascript:alert(1)">click</a>\n'
        "<img src=x onerror=alert(1)>\n"
        "!fixed\n"
        "!fixed all done, close it\n"
        "[click me](javascript:alert(1))\n"
        f"https://matrix.to/#/{user}\n"
        "@room @everyone @channel\n"
    )
    plain, plain_id = mail(
        f"@room {user} !fixed <img src=x onerror=alert(1)>",
        text=hostile_lines,
        sender=f'"@room {user}" <mallory@attacker.example>',
    )
    only_command, _ = mail("!fixed", text="!fixed\n")
    html_only, _ = mail(
        "Urgent: @room",
        html_body=(
            "<html><body><p>@room, urgent!</p>"
            '<p><a href="javascript:alert(1)">click</a></p>'
            "<p><img src=x onerror=alert(1)></p>"
            f'<p><a href="https://matrix.to/#/{user}">{user}</a></p>'
            '<p><a href="https://evil.example/login">https://www.haaksbergen.example/</a></p>'
            "<script>alert(document.cookie)</script>"
            "<p>!fixed</p></body></html>"
        ),
    )
    for raw in (plain, only_command, html_only):
        d.append_mail(raw)
    await wait_ingested(d, 3)
    [(case_id,)] = rows(d, f"SELECT case_id FROM mails WHERE message_id = '{plain_id}'")
    follow_up, _ = mail(
        f"Re: [{case_id}] @room",
        text=f"!fixed\n@room {user} <img src=x onerror=alert(1)>\n",
    )
    d.append_mail(follow_up)
    await wait_ingested(d, 4)
    await wait_delivered(d)
    # Time for any command the posts might have triggered to run and answer.
    await asyncio.sleep(3)
    # A control: the team member's own command is run, so the bot is listening.
    [(root,)] = rows(d, f"SELECT thread_root_event_id FROM cases WHERE id = '{case_id}'")
    status_event = await d.team.send(d.room_id, "!status", thread_root=root)
    await d.team.wait_for_message(
        d.room_id, lambda m: m.thread_root == root and f"{case_id}: new" in m.body, timeout=30
    )

    bot_messages: list[ReceivedMessage] = [
        m for m in d.team.messages(d.room_id) if m.sender == d.bot_user
    ]
    assert len(bot_messages) >= 7, [m.body[:60] for m in bot_messages]
    problems: list[str] = []
    for message in bot_messages:
        where = repr(message.body[:50])
        if message.content.get("m.mentions") != {}:
            problems.append(f"{where}: m.mentions is {message.content.get('m.mentions')!r}")
        if "@room" in message.body:
            problems.append(f"{where}: pingable @room in the body")
        if user in message.body:
            problems.append(f"{where}: {user} verbatim in the body")
        if message.formatted_body is not None:
            problems.extend(f"{where}: {p}" for p in markup_problems(message.formatted_body, user))
    assert not problems, "\n".join(problems)

    # The hostile text did reach the room, as text: the checks above are not vacuous.
    bodies = "\n".join(m.body for m in bot_messages)
    formatted = "\n".join(m.formatted_body or "" for m in bot_messages)
    assert "onerror=alert(1)" in bodies
    assert 'href="javascript:alert(1)"' in bodies or "javascript:alert(1)" in bodies
    assert html.escape("<img src=x onerror=alert(1)>") in formatted
    assert "!fixed" in bodies
    assert "room" in bodies and user.split(":")[0].lstrip("@") in bodies
    assert "urgent" in bodies.lower()

    # Nothing ran: no post of the bot's was taken as a command (a refused or failed command
    # is still recorded as handled and answered), and no case moved.
    handled = {event_id for (event_id,) in rows(d, "SELECT event_id FROM handled_events")}
    assert handled == {status_event}, "only the team member's !status was run"
    assert rows(d, "SELECT COUNT(*) FROM outbox WHERE idem_key LIKE 'reply:%'") == [(1,)]
    states = rows(d, "SELECT id, state FROM cases")
    assert len(states) == 3 and all(state == "new" for _, state in states), states
    kinds = {kind for (kind,) in rows(d, "SELECT DISTINCT kind FROM case_events")}
    assert not kinds & {"acknowledged", "assessed", "fixed"}, kinds
    assert d.smtp.messages == []
