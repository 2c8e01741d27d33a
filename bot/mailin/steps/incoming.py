"""The context every intake step works on: one mail as it is read (`IncomingMail`), and what
stays the same from mail to mail (`IntakeSetup`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import Config
from bot.mailin.attachments import Layer
from bot.mailin.bounds import MailBounds
from bot.mailin.forwarded import ForwardedReport
from bot.mailin.intake_posts import encryption_line, signature_line
from bot.mailin.parse import AttachmentInfo, ParsedMail
from bot.mailin.reporter_keys import KeyOutcome
from bot.pgp.gpg import Pgp, SignatureInfo
from bot.policy.clock import Clock
from bot.policy.workdays import WorkingCalendar

# A case's subject is a title; the whole subject stays with the stored mail.
MAX_CASE_SUBJECT = 300


@dataclass(frozen=True)
class IntakeSetup:
    """The bot's side of the intake: configuration, calendar, gpg and clock."""

    config: Config
    calendar: WorkingCalendar
    pgp: Pgp | None  # None for `!open`, which never runs gpg
    clock: Clock

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.config.policy.timezone)

    @property
    def own_address(self) -> str:
        return self.config.smtp.from_address.lower()

    @property
    def bounds(self) -> MailBounds:
        return MailBounds.of(self.config.limits)

    @property
    def max_body_chars(self) -> int:
        return self.config.limits.max_body_chars_in_thread

    def ignored_domains(self, parsed: ParsedMail, reporter: str | None) -> list[str]:
        """Mail domains of the bot, the sender and the reporter: where people write from,
        not what they report (unless a subdomain of it is named)."""
        addresses = [self.own_address, parsed.from_address, reporter]
        return [address.rsplit("@", 1)[1] for address in addresses if address and "@" in address]


@dataclass
class IncomingMail:
    """A mail as the team should read it: decrypted where it could be, with notes.

    `parse` fills the first fields; `unwrap` the encryption, signature, forward and keys.
    """

    raw: bytes
    source: str
    received_at: datetime | None  # when the mailbox got it (IMAP INTERNALDATE), if known
    parsed: ParsedMail
    text: str
    subject: str
    notes: list[str]
    encryption: str = "none"  # none | decrypted | failed
    encryption_style: str | None = None
    decrypt_error: str | None = None
    signature: SignatureInfo | None = None
    layer: Layer = "outer"
    payloads: list[tuple[AttachmentInfo, bytes]] = field(default_factory=list)
    forwarded: ForwardedReport | None = None
    keys: list[KeyOutcome] = field(default_factory=list)
    signing_key_came_with_mail: bool = False
    signature_trust: str | None = None  # set by key_trust.signature_trust before posting
    keyring_key: str | None = None  # the sender's key the keyring held before this mail
    imported: bool = False  # from the folder's backlog on a first start (imap.start_at: all)
    mentioned_cases: list[str] = field(default_factory=list)  # known cases named, untagged

    @classmethod
    def parsed_from(
        cls, raw: bytes, parsed: ParsedMail, *, source: str, received_at: datetime | None
    ) -> IncomingMail:
        notes = list(parsed.problems)
        return cls(raw, source, received_at, parsed, parsed.text, parsed.subject, notes)

    @property
    def sender(self) -> str | None:
        return self.parsed.from_address

    @property
    def actor(self) -> str:
        """Who the audit log says did what this mail caused."""
        return f"mail:{self.parsed.from_address or 'unknown'}"

    @property
    def thread_ids(self) -> list[str]:
        """The Message-IDs this mail answers, without repeats."""
        return list(dict.fromkeys(self.parsed.references + self.parsed.in_reply_to))

    def protection_lines(self) -> list[str]:
        lines = []
        line = encryption_line(self.encryption, self.encryption_style, self.decrypt_error)
        if line:
            lines.append(line)
        if self.signature is not None:
            lines.append(signature_line(self.signature, self.sender, self.signature_trust))
        return lines
