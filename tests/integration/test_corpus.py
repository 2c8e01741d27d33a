"""The intake corpus, end to end: every message of tests/corpus goes through the real IMAP
path into the real Synapse, and each outcome is checked against the manifest.

One bot deployment reads the whole corpus in manifest order. After each append the test
waits until the bot has recorded that IMAP UID, then notes the mail rows and outbox items
that message caused: so every thread post is attributed to exactly the mail that caused it,
and a follow-up's expectations are checked against its own posts, not the whole thread.
What a team member's client decrypts in the room is the evidence; the database and the
SMTP server complete it. All failures are reported together in one assertion.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from nio import DownloadResponse
from nio.crypto.attachments import decrypt_attachment

from bot.mailin.intake_posts import UNSORTED_MAIL
from bot.mailin.parse import attachment_payloads
from bot.pgp.gpg import Pgp
from tests.corpus.build import CorpusEntry, OutsideWorld, fill_cases, load_manifest, needs_key
from tests.harness.bot import CvdDeployment
from tests.harness.person import ReceivedMessage
from tests.integration.conftest import MakeDeployment

# Lowered so the corpus can show truncation and the size limit with small files.
CONFIG_OVERRIDES: dict[str, dict[str, Any]] = {
    "limits": {"max_body_chars_in_thread": 6000, "max_attachment_bytes_in_thread": 16384}
}
SIGNATURE_MARKERS = {"good": "good signature", "bad": "bad signature", "unknown_key": "unknown key"}
DECRYPT_FAILED_MARKER = "could not be decrypted"
INGEST_TIMEOUT = 20.0
DELIVERY_TIMEOUT = 60.0
ACK_ENTRY = "en_pgp_mime_signed_encrypted_key.eml"


def norm(text: str) -> str:
    """Case- and whitespace-insensitive form for snippet matching."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class OutboxRow:
    id: int
    idem_key: str
    case_id: str | None
    channel: str
    state: str
    result: str | None


@dataclass
class Step:
    """What one corpus message did."""

    entry: CorpusEntry
    raw: bytes = b""
    mail_ids: list[int] = field(default_factory=list)
    case_id: str | None = None
    new_cases: list[str] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)
    error: str | None = None


class CorpusRun:
    """Feeds the corpus to one deployment and checks every expectation."""

    def __init__(self, deployment: CvdDeployment, world: OutsideWorld) -> None:
        self.d = deployment
        self.world = world
        self.steps: list[Step] = []
        self.case_of: dict[str, str] = {}
        self.appended = 0
        self.failures: list[str] = []
        # (file, attachment name, media event, bytes mailed) to download and compare.
        self.pending_downloads: list[tuple[str, str, ReceivedMessage, bytes | None]] = []

    # -- database -------------------------------------------------------------------------

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.d.db_path, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def last_uid(self) -> int:
        if not self.d.db_path.exists():
            return 0
        found = self.rows("SELECT MAX(last_uid) FROM imap_state")
        return int(found[0][0] or 0) if found else 0

    def max_id(self, table: str) -> int:
        return int(self.rows(f"SELECT COALESCE(MAX(id), 0) FROM {table}")[0][0])

    def outbox(self) -> dict[int, OutboxRow]:
        found = self.rows("SELECT id, idem_key, case_id, channel, state, result FROM outbox")
        return {row[0]: OutboxRow(*row) for row in found}

    # -- feeding --------------------------------------------------------------------------

    async def append_and_wait(self, raw: bytes) -> bool:
        """Append one message; True once the bot has read it (its UID is recorded)."""
        self.d.append_mail(raw)
        self.appended += 1
        deadline = time.monotonic() + INGEST_TIMEOUT
        while self.last_uid() < self.appended:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def feed(self, entries: list[CorpusEntry]) -> None:
        stalled = False
        for entry in entries:
            step = Step(entry)
            self.steps.append(step)
            if stalled:
                step.error = "not appended: the bot stopped reading mail earlier"
                continue
            try:
                step.raw = self.world.build(fill_cases(entry.cleartext(), self.case_of), entry.pgp)
            except KeyError as exc:
                step.error = f"not appended: depends on {exc.args[0]}, which got no case"
                continue
            mails_before, outbox_before = self.max_id("mails"), self.max_id("outbox")
            cases_before = {row[0] for row in self.rows("SELECT id FROM cases")}
            if not await self.append_and_wait(step.raw):
                step.error = f"not ingested within {INGEST_TIMEOUT:.0f} s (see the bot log)"
                stalled = True
                continue
            new_mails = self.rows(
                "SELECT id, case_id FROM mails WHERE direction = 'in' AND id > ? ORDER BY id",
                (mails_before,),
            )
            step.mail_ids = [row[0] for row in new_mails]
            step.case_id = next((row[1] for row in new_mails if row[1]), None)
            step.new_cases = sorted(
                {row[0] for row in self.rows("SELECT id FROM cases")} - cases_before
            )
            step.outbox_ids = [
                row[0] for row in self.rows("SELECT id FROM outbox WHERE id > ?", (outbox_before,))
            ]
            if step.case_id is not None:
                self.case_of[entry.file] = step.case_id

    async def wait_delivered(self) -> None:
        """Until every queued Matrix post is sent and the team member has decrypted it."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            rows = [r for r in self.outbox().values() if r.channel == "matrix"]
            pending = [r for r in rows if r.state == "pending"]
            seen = {m.event_id for m in self.d.team.messages(self.d.room_id)}
            unseen = [r for r in rows if r.result and r.result not in seen]
            if not pending and not unseen:
                return
            await asyncio.sleep(0.2)
        self.failures.append(
            f"after {DELIVERY_TIMEOUT:.0f} s: {len(pending)} Matrix posts still pending, "
            f"{len(unseen)} sent but not decrypted by the team member"
        )

    # -- checking -------------------------------------------------------------------------

    def messages(self) -> dict[str, ReceivedMessage]:
        return {m.event_id: m for m in self.d.team.messages(self.d.room_id)}

    def thread_root(self, case_id: str) -> str | None:
        found = self.rows("SELECT thread_root_event_id FROM cases WHERE id = ?", (case_id,))
        return found[0][0] if found else None

    def case_thread(self, case_id: str) -> list[ReceivedMessage]:
        root = self.thread_root(case_id)
        return [m for m in self.messages().values() if root and root in (m.event_id, m.thread_root)]

    def step_posts(self, step: Step, outbox: Mapping[int, OutboxRow]) -> list[ReceivedMessage]:
        """The posts this message caused: queued while it was read, in its own case (or in
        no case, for a mail without one); scheduled posts that happen to be queued then
        belong to other cases or are made for the room."""
        messages = self.messages()
        own_cases = {step.case_id, *step.new_cases}
        posts = []
        for outbox_id in step.outbox_ids:
            row = outbox[outbox_id]
            if row.channel == "matrix" and row.case_id in own_cases and row.result in messages:
                posts.append(messages[row.result])
        return posts

    def check_all(self, markers: MissingMarkers | str) -> None:
        outbox = self.outbox()
        for row in outbox.values():
            if row.state == "failed":
                self.failures.append(f"outbox item {row.idem_key} failed")
        for step in self.steps:
            for problem in self.check_step(step, outbox, markers):
                self.failures.append(f"{step.entry.file}: {problem}")
        expected_cases = sum(1 for s in self.steps if s.entry.expect == "new_case" and not s.error)
        [(total,)] = self.rows("SELECT COUNT(*) FROM cases")
        if total != expected_cases:
            self.failures.append(f"{total} cases opened, the corpus expects {expected_cases}")
        for message in self.messages().values():
            if message.sender != self.d.bot_user:
                continue
            if message.content.get("m.mentions") != {}:
                self.failures.append(
                    f"bot message {message.body[:60]!r} has m.mentions "
                    f"{message.content.get('m.mentions')!r}, not {{}}"
                )
        undecryptable = self.d.team.undecryptable(self.d.room_id)
        if undecryptable:
            self.failures.append(f"{len(undecryptable)} room events could not be decrypted")
        if self.d.smtp.messages:
            self.failures.append(
                f"{len(self.d.smtp.messages)} mails sent by intake alone "
                f"(to {[m.rcpt_tos for m in self.d.smtp.messages]}); intake never mails"
            )

    def check_step(
        self, step: Step, outbox: Mapping[int, OutboxRow], markers: MissingMarkers | str
    ) -> list[str]:
        entry = step.entry
        if step.error:
            return [step.error]
        problems: list[str] = []
        posts = self.step_posts(step, outbox)
        pool = [norm(p.body) for p in posts]

        def shown(snippet: str) -> bool:
            wanted = norm(snippet)
            return any(wanted in body for body in pool)

        if entry.expect == "duplicate":
            if step.mail_ids or step.outbox_ids or step.new_cases:
                problems.append(
                    f"seen again but stored {len(step.mail_ids)} mail rows, queued "
                    f"{len(step.outbox_ids)} posts, opened {step.new_cases}"
                )
            return problems
        if not step.mail_ids:
            return ["no mail row stored"]
        [(stored, is_automatic)] = self.rows(
            "SELECT raw, is_automatic FROM mails WHERE id = ?", (step.mail_ids[0],)
        )
        for snippet in entry.stored_contains:
            if snippet.encode() not in bytes(stored):
                problems.append(f"stored raw mail lacks {snippet!r}")

        if entry.expect == "new_case":
            problems.extend(self.check_new_case(step, posts, shown, markers))
        else:
            if step.new_cases:
                problems.append(f"opened a case ({step.new_cases}) instead of {entry.expect}")
            wanted_case = self.case_of.get(entry.follow_up_of) if entry.follow_up_of else None
            if entry.follow_up_of and wanted_case is None:
                problems.append(f"cannot check: {entry.follow_up_of} got no case")
            elif step.case_id != wanted_case:
                problems.append(f"filed under case {step.case_id}, expected {wanted_case}")
            if entry.expect == "automatic" and not is_automatic:
                problems.append("not recognised as automatic mail")
            if entry.expect == "follow_up" and is_automatic:
                problems.append("a person's follow-up was taken for automatic mail")
            if entry.expect == "automatic" and wanted_case is None:
                # Issue 10, item 5: never dropped; shown once, in the unsorted thread only.
                unsorted = [p for p in posts if UNSORTED_MAIL in p.body]
                if len(unsorted) != 1 or len(posts) != 1:
                    problems.append(f"matched no case and posted {[p.body[:60] for p in posts]}")
            if entry.follow_up_of and wanted_case and not posts:
                problems.append("nothing was posted in the case thread")

        for snippet in entry.thread_contains:
            if not shown(snippet):
                problems.append(f"thread lacks {snippet!r}")
        for snippet in entry.thread_not_contains:
            if shown(snippet):
                problems.append(f"thread shows {snippet!r}")
        if entry.checks_signature:
            for status, marker in SIGNATURE_MARKERS.items():
                if status == entry.signature and not shown(marker):
                    problems.append(f"signature should show {marker!r}")
                if status != entry.signature and shown(marker):
                    problems.append(f"signature shows {marker!r}, expected {entry.signature}")
        problems.extend(self.check_attachments(step, posts))
        return problems

    def check_new_case(
        self,
        step: Step,
        posts: list[ReceivedMessage],
        shown: Callable[[str], bool],
        markers: MissingMarkers | str,
    ) -> list[str]:
        entry = step.entry
        problems: list[str] = []
        if len(step.new_cases) != 1 or step.case_id not in step.new_cases:
            return [f"expected one new case, got {step.new_cases} (filed under {step.case_id})"]
        [(reporter, language)] = self.rows(
            "SELECT reporter_address, language FROM cases WHERE id = ?", (step.case_id,)
        )
        if entry.checks_reporter and reporter != entry.reporter:
            problems.append(f"reporter is {reporter!r}, expected {entry.reporter!r}")
        if entry.language is not None and language != entry.language:
            problems.append(f"language is {language}, expected {entry.language}")
        if not shown(f"New report {step.case_id}"):
            problems.append("no case root was posted")
        if entry.forwarded_by and not shown(f"forwarded by {entry.forwarded_by}"):
            problems.append(f"thread does not say 'forwarded by {entry.forwarded_by}'")
        if entry.related_to:
            other = self.case_of.get(entry.related_to)
            if other is None or not shown(f"possibly related to {other}"):
                problems.append(f"thread does not say 'possibly related to {other}'")
        if entry.missing is not None:
            if isinstance(markers, str):
                problems.append(f"cannot check missing={entry.missing}: {markers}")
            else:
                prefix = norm(markers.prefix)
                lines = [norm(line) for p in posts for line in p.body.splitlines()]
                said = " ".join(line for line in lines if prefix in line)
                for key, label in markers.labels.items():
                    if key in entry.missing and norm(label) not in said:
                        problems.append(f"thread should say {label!r} is missing")
                    if key not in entry.missing and norm(label) in said:
                        problems.append(f"thread says {label!r} is missing, but it is not")
        return problems

    def check_attachments(self, step: Step, posts: list[ReceivedMessage]) -> list[str]:
        entry = step.entry
        if not (entry.attachments_posted or entry.attachments_listed):
            return []
        problems: list[str] = []
        payloads = {info.filename: data for info, data in attachment_payloads(step.raw)}
        thread = self.case_thread(step.case_id) if step.case_id else []
        media = {
            str(m.content.get("filename") or m.body): m
            for m in thread
            if m.content.get("msgtype") in ("m.image", "m.file", "m.video", "m.audio")
        }
        for name in entry.attachments_posted:
            event = media.get(name)
            if event is None:
                problems.append(f"attachment {name} was not posted as media")
            elif "file" not in event.content or "url" in event.content:
                problems.append(f"attachment {name} was posted unencrypted")
            else:
                self.pending_downloads.append((entry.file, name, event, payloads.get(name)))
        bodies = [norm(p.body) for p in posts]
        for name in entry.attachments_listed:
            digest = hashlib.sha256(payloads.get(name, b"")).hexdigest()
            if name in media:
                problems.append(f"attachment {name} is above the limit but was posted")
            if not any(norm(name) in b and digest in b for b in bodies):
                problems.append(f"attachment {name} is not listed with its SHA-256 {digest}")
        return problems

    def dump(self, path: Path) -> None:
        """Every step's posts as the team member read them, for whoever adds a message."""
        outbox = self.outbox()
        with path.open("w", encoding="utf-8") as out:
            for step in self.steps:
                out.write(f"===== {step.entry.file} ({step.entry.expect}) case {step.case_id}\n")
                for post in self.step_posts(step, outbox):
                    out.write(f"--- {post.content.get('msgtype')}\n{post.body}\n")

    async def check_downloads(self) -> None:
        """The encrypted media decrypt to exactly the attachment's bytes."""
        for file, name, event, expected in self.pending_downloads:
            info = event.content["file"]
            response = await self.d.team.client.download(mxc=info["url"])
            if not isinstance(response, DownloadResponse):
                self.failures.append(f"{file}: could not download {name}: {response}")
                continue
            plain = decrypt_attachment(
                response.body, info["key"]["k"], info["hashes"]["sha256"], info["iv"]
            )
            if plain != expected:
                self.failures.append(f"{file}: {name} decrypts to other bytes than were mailed")

    # -- the reporter's key, used ---------------------------------------------------------

    async def check_ack_to_attached_key(self) -> None:
        """!ack on the case whose reporter attached a key: the mail is encrypted to it, and
        the reporter's reply to that mail (In-Reply-To an outgoing mail) joins the thread."""
        case_id = self.case_of.get(ACK_ENTRY)
        root = self.thread_root(case_id) if case_id else None
        if case_id is None or root is None:
            self.failures.append(f"!ack check: {ACK_ENTRY} has no case thread")
            return
        sent_before = len(self.d.smtp.messages)
        await self.d.team.send(self.d.room_id, "!ack", thread_root=root)
        try:
            ack = (await self.d.smtp.wait_for_async(sent_before + 1, timeout=30))[-1]
        except TimeoutError as exc:
            self.failures.append(f"!ack check: no receipt mail was sent ({exc})")
            return
        address = "anna.kowalski@example.org"
        reporter: Pgp = self.world.reporter(address)
        opened = reporter.decrypt_raw(ack.raw)
        if ack.rcpt_tos != [address]:
            self.failures.append(f"!ack check: mail went to {ack.rcpt_tos}")
        if not opened.decrypted or opened.message is None:
            self.failures.append(
                "!ack check: the receipt mail is not encrypted to the reporter's attached key "
                f"(encrypted={opened.encrypted}, error={opened.error})"
            )
        else:
            body = opened.message.get_body(("plain",))
            text = body.get_content() if body is not None else ""
            if case_id not in text and case_id not in str(ack.message["Subject"]):
                self.failures.append("!ack check: decrypted mail does not name the case")
        reply = EmailMessage()
        reply["From"] = f"Anna Kowalski <{address}>"
        reply["To"] = "security@haaksbergen.example"
        reply["Subject"] = "Re: thank you"
        reply["Date"] = format_datetime(datetime.now(UTC))
        reply["Message-ID"] = make_msgid(domain="example.org")
        reply["In-Reply-To"] = str(ack.message["Message-ID"])
        reply.set_content("Thanks. The upload form also accepts .phtml files.\n")
        mails_before = self.max_id("mails")
        if not await self.append_and_wait(bytes(reply)):
            self.failures.append("!ack check: the reply to the receipt mail was not ingested")
            return
        filed = self.rows(
            "SELECT case_id FROM mails WHERE direction = 'in' AND id > ?", (mails_before,)
        )
        if [row[0] for row in filed] != [case_id]:
            self.failures.append(
                f"!ack check: reply In-Reply-To the receipt mail filed as {filed}, "
                f"expected {case_id}"
            )


@dataclass(frozen=True)
class MissingMarkers:
    """How the thread says what a report lacks: a line with `prefix`, then the labels."""

    prefix: str
    labels: Mapping[str, str]


def missing_markers() -> MissingMarkers | str:
    """bot.mailin.report_check's MISSING_PREFIX and MISSING_LABELS, or why they are unusable."""
    try:
        from bot.mailin import report_check
    except ImportError as exc:
        return f"bot.mailin.report_check is not importable ({exc})"
    labels = getattr(report_check, "MISSING_LABELS", None)
    prefix = getattr(report_check, "MISSING_PREFIX", None)
    if not isinstance(labels, Mapping) or set(labels) != {"contact", "reproduction"}:
        return (
            f"bot.mailin.report_check.MISSING_LABELS is {labels!r}, not a contact/reproduction map"
        )
    if not isinstance(prefix, str) or not prefix:
        return "bot.mailin.report_check.MISSING_PREFIX is not a string"
    return MissingMarkers(prefix, {str(key): str(value) for key, value in labels.items()})


def export_bot_key(d: CvdDeployment) -> str:
    home = d.workdir / "data" / "gnupg"
    return Pgp(home, d.key_fingerprint, "bot-passphrase").export_public_key(d.key_fingerprint)


async def test_corpus_through_imap_into_the_room(
    make_deployment: MakeDeployment, tmp_path: Path
) -> None:
    started = time.monotonic()
    entries = load_manifest()
    assert len(entries) >= 40
    d = await make_deployment()
    d.config_overrides.update(CONFIG_OVERRIDES)
    world = OutsideWorld(tmp_path / "reporters", export_bot_key(d))
    try:
        world.make_keys(entry.cleartext() for entry in entries if needs_key(entry))
        d.start_bot()
        run = CorpusRun(d, world)
        await run.feed(entries)
        fed = time.monotonic()
        await run.wait_delivered()
        run.check_all(missing_markers())
        await run.check_downloads()
        await run.check_ack_to_attached_key()
        if os.environ.get("CORPUS_DUMP"):
            run.dump(Path(os.environ["CORPUS_DUMP"]))
    finally:
        world.close()
    print(
        f"corpus: {len(entries)} messages, fed in {fed - started:.1f} s, "
        f"checked in {time.monotonic() - started:.1f} s; "
        f"{len(run.pending_downloads)} media files decrypted; {len(run.failures)} failures"
    )
    assert not run.failures, f"{len(run.failures)} corpus expectations failed:\n" + "\n".join(
        run.failures
    )
