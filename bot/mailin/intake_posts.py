"""What the intake posts into a case thread, worded once: the lines about how a report came in
(forwarded, encrypted, signed), the mail excerpts, the intake check and the attachment list.

The fixed phrases are constants so tests and the corpus runner can look for them. Every
piece of mail text is escaped and has its mentions defused before it is put in a post.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import getaddresses

from bot.mailin.attachments import size_text
from bot.mailin.report_check import COMPLETE_TEXT, Evidence, missing_text
from bot.matrix.posts import Post, defuse_mentions, text_to_html
from bot.pgp.gpg import SignatureInfo, format_fingerprint
from bot.text import shorten
from storage.case_intake import RelatedCase

__all__ = [
    "AUTOMATIC_MAIL",
    "FORWARDED_BY",
    "NOT_FROM_REPORTER",
    "QUOTED_HIDDEN",
    "RELATED_TO",
    "SIGNATURE_WORDS",
    "UNDECRYPTABLE",
    "ListedAttachment",
    "attachment_list",
    "check_lines",
    "encryption_line",
    "forwarded_line",
    "intake_check",
    "mail_post",
    "quarantine_notice",
    "signature_line",
]

#: The case room's notice about a mail the intake put aside starts with this.
QUARANTINED = "A mail was put aside (quarantine"

#: Per signature status, the words the thread uses ("good signature", "bad signature", …).
SIGNATURE_WORDS: dict[str, str] = {
    "good": "good signature",
    "bad": "bad signature",
    "unknown_key": "unknown key",
    "expired_key": "expired key",
    "revoked_key": "revoked key",
    "error": "signature could not be checked",
}
UNDECRYPTABLE = "could not be decrypted"
FORWARDED_BY = "forwarded by"
RELATED_TO = "possibly related to"
AUTOMATIC_MAIL = "Automatic mail"
QUOTED_HIDDEN = "quoted history hidden"
NOT_FROM_REPORTER = "Not from the case's reporter"
UNSORTED_MAIL = "Unsorted mail"
#: How far a good signature is trusted (trust on first use, bot/mailin/steps/key_trust.py):
#: never a bare "good signature".
SIGNED_BY_PINNED_KEY = "good signature by a key pinned on"
SIGNED_BY_KEY_WITH_MAIL = "good signature by a key that came with this mail (not yet trusted)"
SIGNED_BY_UNPINNED_KEY = "good signature by a key that is not pinned for the sender (not trusted)"

# A Matrix event may be at most 64 KiB, and end-to-end encryption makes the content about a
# third larger (base64), JSON escaping non-ASCII text six bytes a character. Text beyond this
# budget (body and HTML together, as JSON) is cut even below `max_body_chars_in_thread`.
_EVENT_TEXT_BUDGET = 36_000
_MAX_LINE = 1000
_MAX_WARNINGS = 20


def _uid_address(uid: str) -> str | None:
    found = [spec.lower() for _, spec in getaddresses([uid]) if "@" in spec]
    return found[0] if len(found) == 1 else None


def signature_line(info: SignatureInfo, sender: str | None, trust: str | None = None) -> str:
    """One line for the root or a follow-up: the verdict in SIGNATURE_WORDS' terms; for a
    good signature `trust` says whose key made it (default: not pinned, not trusted)."""
    words = SIGNATURE_WORDS.get(info.status, SIGNATURE_WORDS["error"])
    if info.fingerprint:
        ident = f"fingerprint {format_fingerprint(info.fingerprint)}"
    elif info.key_id:
        ident = f"key ID {info.key_id}"
    else:
        ident = "no key ID"
    who = " ".join((info.signer or "").split()) or None
    if info.status == "good":
        trusted = trust or SIGNED_BY_UNPINNED_KEY
        line = f"✍️ Signature: {trusted}: {who or 'a key without a user ID'} ({ident})"
        signer = _uid_address(who or "")
        if sender and signer and signer != sender:
            line += f"; the key's user ID is not the sender's address {sender}"
        return line
    if info.status == "bad":
        claim = f", claiming to be {who}" if who else ""
        return f"⚠️ Signature: {words}: the content does not match the signature ({ident}{claim})"
    if info.status == "unknown_key":
        return f"✍️ Signature: {words}: signed with a key the bot does not have ({ident})"
    if info.status in ("expired_key", "revoked_key"):
        return f"⚠️ Signature: made with an {words} ({who or 'unknown signer'}, {ident})"
    return f"⚠️ Signature: {words} ({info.detail or 'unknown error'})"


def encryption_line(encryption: str, style: str | None, error: str | None) -> str | None:
    if encryption == "decrypted":
        return f"🔒 Encrypted ({style or 'PGP'}) and decrypted with the bot's key."
    if encryption == "failed":
        return (
            f"🔒 This mail is PGP-encrypted and {UNDECRYPTABLE}: {error or 'unknown error'}. "
            "The raw message is stored."
        )
    return None


def forwarded_line(forwarder: str | None, style: str, note_given: bool) -> str:
    who = forwarder or "an unknown sender"
    line = f"↪️ This report was {FORWARDED_BY} {who} ({style}); the case is for the original sender"
    return line + (" (their note is with the report)." if note_given else ".")


def _line(text: str) -> str:
    """One line of a post from mail-derived parts: defused, and short enough that the
    mail text itself still fits the event."""
    return shorten(defuse_mentions(text), _MAX_LINE)


def _fit(text: str, max_chars: int, overhead: int) -> tuple[str, int]:
    """(text to show, characters cut) within `max_chars` and the event size budget."""
    shown = text[:max_chars]
    while shown:
        size = overhead + len(json.dumps(shown)) + len(json.dumps(text_to_html(shown)))
        if size <= _EVENT_TEXT_BUDGET:
            break
        shown = shown[: int(len(shown) * _EVENT_TEXT_BUDGET / size * 0.95)]
    return shown, len(text) - len(shown)


def mail_post(
    heading: str,
    text: str,
    *,
    max_chars: int,
    info: Sequence[str] = (),
    warnings: Sequence[str] = (),
    quotes_hidden: bool = False,
) -> Post:
    """A mail for the thread: heading, info lines, ⚠️ warnings, then the text as a quote."""
    heading = _line(heading)
    info = [_line(line) for line in info]
    warnings = [_line(line) for line in warnings[:_MAX_WARNINGS]]
    overhead = 2 * sum(len(json.dumps(part)) for part in (heading, *info, *warnings)) + 400
    shown, cut = _fit(text.strip(), max_chars, overhead)
    safe = defuse_mentions(shown.strip()) or "(empty body)"
    tails = []
    if quotes_hidden:
        tails.append(f"[… {QUOTED_HIDDEN}; the full mail is stored]")
    if cut:
        tails.append(f"[… {cut} more characters; the full mail is stored]")
    body = "\n".join([heading, *info, *(f"⚠️ {w}" for w in warnings), safe, *tails])
    info_html = "<br>".join(html.escape(line) for line in info)
    html_body = (
        f"<p>{html.escape(heading)}</p>"
        + (f"<p>{info_html}</p>" if info else "")
        + "".join(f"<p>⚠️ {html.escape(w)}</p>" for w in warnings)
        + f"<blockquote>{text_to_html(safe)}</blockquote>"
        + "".join(f"<p>{html.escape(tail)}</p>" for tail in tails)
    )
    return Post(body, html_body)


def check_lines(evidence: Evidence | None, *, reachable: bool) -> list[str]:
    """The requirements check in words (MISSING_PREFIX and MISSING_LABELS, or complete)."""
    if evidence is None:
        return [f"📋 Report check: not done, the content {UNDECRYPTABLE}."]
    missing = evidence.missing
    if not missing:
        return [f"✅ {COMPLETE_TEXT}"]
    hint = (
        "!ask [text] sends the reporter the request for more information."
        if reachable
        else "The reporter left no address, so they cannot be asked."
    )
    return [f"📋 {missing_text(missing)} {hint}"]


# Many reports about one popular host must not turn every new case into a long list.
MAX_RELATED_LINES = 10


def related_lines(related: Sequence[RelatedCase]) -> list[str]:
    """One line per related open case, the most recent ones, and a count of the rest."""
    shown_cases = list(related)[-MAX_RELATED_LINES:]
    lines = []
    for case in shown_cases:
        shown = ", ".join(case.shared[:5]) + (" …" if len(case.shared) > 5 else "")
        lines.append(f"🔗 This report is {RELATED_TO} {case.case_id} (both name {shown}).")
    hidden = len(related) - len(shown_cases)
    if hidden:
        lines.append(f"🔗 … and {hidden} older open cases name the same hosts.")
    return lines


def intake_check(lines: Sequence[str]) -> Post:
    return Post.text("\n".join(defuse_mentions(line) for line in lines))


@dataclass(frozen=True)
class ListedAttachment:
    name: str
    content_type: str
    size: int
    sha256: str
    posted: bool
    why_not: str | None = None


# A list longer than this names the first ones and counts the rest.
MAX_LISTED_ATTACHMENTS = 50


def attachment_list(items: Sequence[ListedAttachment]) -> Post:
    count = len(items)
    lines = [f"📎 {count} attachment{'s' if count != 1 else ''}:"]
    for item in items[:MAX_LISTED_ATTACHMENTS]:
        where = "posted below" if item.posted else (item.why_not or "not posted")
        lines.append(
            f"• {item.name} ({item.content_type}, {size_text(item.size)}, "
            f"SHA-256 {item.sha256}): {where}"
        )
    if count > MAX_LISTED_ATTACHMENTS:
        lines.append(f"… and {count - MAX_LISTED_ATTACHMENTS} more, kept in the store")
    return Post.text("\n".join(defuse_mentions(line) for line in lines))


def quarantine_notice(
    number: int,
    reason: str,
    size: int,
    sender: str | None,
    subject: str | None,
    imap_uid: int | None,
    *,
    stored: bool = True,
) -> Post:
    """The case room's notice about a quarantined mail: what was wrong, how to find it.
    `stored` False: the server never handed the mail out, only its place is known."""
    where = f", IMAP UID {imap_uid}" if imap_uid is not None else ""
    kept = (
        f"It is stored whole ({size_text(size)}{where}) and will not be read again."
        if stored
        else f"Nothing of it could be stored; it is still in the mailbox (IMAP UID {imap_uid})"
        " and will not be read again by itself: once the server hands it out, pipe it into"
        " `cvdbot ingest`."
    )
    lines = [
        f"⚠️ {QUARANTINED} #{number}) and opened no case: {reason}.",
        kept,
        f"From: {sender or 'unknown'}",
        f"Subject: {shorten(subject, 200) if subject else '(none)'}",
    ]
    return Post.text("\n".join(defuse_mentions(line) for line in lines))
