"""Intake steps "classify" and "match to a case": the bot's own mail come back, a follow-up
or automatic mail (bounce, auto-reply, list) of a known case, or a new report."""

from __future__ import annotations

from enum import StrEnum

import aiosqlite

from bot.mailin.bounces import returned_mail
from bot.mailin.parse import ParsedMail, find_case_ids, find_case_tags
from bot.mailin.steps.incoming import IncomingMail
from storage import cases, mails


class Route(StrEnum):
    OWN_MAIL = "own_mail"  # never a case, whatever it names
    FOLLOW_UP = "follow_up"  # from a person, about a known case
    AUTOMATIC = "automatic"  # a bounce or auto-reply about a known case
    UNMATCHED_AUTOMATIC = "unmatched_automatic"  # automatic, and about no case we know
    NEW_CASE = "new_case"  # from a person (or a forwarder), about no known case


def is_own_sender(parsed: ParsedMail, own_address: str) -> bool:
    """Sent by the bot itself: its From address and the header it sets (From alone is any
    web form that writes in the security address's name). Checked before gpg, so keys in
    the bot's own mail are never imported; its Message-IDs are checked in `classify`."""
    return parsed.bot_header and parsed.from_address == own_address


async def classify(
    conn: aiosqlite.Connection, mail: IncomingMail, *, own_sender: bool
) -> tuple[Route, str | None]:
    """Where the mail goes, and the case it belongs to (if any)."""
    own = own_sender or await mails.is_own_message_id(conn, mail.parsed.message_id)
    case_id = await match_case(conn, mail)
    if own:
        return Route.OWN_MAIL, case_id
    if case_id is not None:
        return (Route.AUTOMATIC if mail.parsed.is_automatic else Route.FOLLOW_UP), case_id
    if mail.parsed.is_automatic:
        return Route.UNMATCHED_AUTOMATIC, None
    mail.mentioned_cases = await mentioned_cases(conn, mail)
    return Route.NEW_CASE, None


async def mentioned_cases(conn: aiosqlite.Connection, mail: IncomingMail) -> list[str]:
    """Known cases a new report names without the tag: shown, never joined."""
    found = []
    for candidate in find_case_ids(f"{mail.subject} {mail.parsed.subject}"):
        if await cases.get_case(conn, candidate) is not None:
            found.append(candidate)
    return found


async def match_case(conn: aiosqlite.Connection, mail: IncomingMail) -> str | None:
    """The known case this mail is about: a case tag ``[CVD-…]`` in its subject (the
    decrypted one first), a Message-ID it answers, or, for a bounce, the mail it returns."""
    candidates = find_case_tags(mail.subject)
    if mail.subject != mail.parsed.subject:
        candidates += find_case_tags(mail.parsed.subject)
    for candidate in candidates:
        if await cases.get_case(conn, candidate) is not None:
            return candidate
    ids = mail.parsed.references + mail.parsed.in_reply_to
    found = await mails.case_for_message_ids(conn, ids)
    if found is not None or not mail.parsed.is_automatic:
        return found
    # A bounce names the mail it returns only in its parts or quoted headers.
    returned = returned_mail(mail.text, mail.payloads)
    found = await mails.case_for_message_ids(conn, returned.message_ids)
    if found is not None:
        return found
    for candidate in returned.case_ids:
        if await cases.get_case(conn, candidate) is not None:
            return candidate
    return None
