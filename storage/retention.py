"""The SQL of deleting a case's data when its retention countdown ran out (the rules are in
bot/policy/retention.py, the job in bot/watch/retention.py). Every function runs inside the
caller's transaction: the deletion, its audit entry and its posts commit together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.policy.retention import scrub_actor, scrub_event_data


@dataclass(frozen=True)
class DeletedMail:
    id: int
    direction: str
    sha256: str
    stored_at: str


async def cases_due(conn: aiosqlite.Connection, now: datetime, limit: int) -> list[str]:
    """IDs of cases whose countdown has run out (through the partial index)."""
    async with conn.execute(
        "SELECT id FROM cases WHERE delete_after IS NOT NULL AND delete_after <= ?"
        " AND data_deleted_at IS NULL AND hold_reason IS NULL ORDER BY delete_after LIMIT ?",
        (now.isoformat(), limit),
    ) as cur:
        return [str(row[0]) for row in await cur.fetchall()]


async def has_pending_outbox(conn: aiosqlite.Connection, case_id: str) -> bool:
    """Whether a post or mail of the case still waits to be sent (deletion waits for it:
    a post not yet in the room could not be redacted, a mail not yet sent would be lost)."""
    async with conn.execute(
        "SELECT 1 FROM outbox WHERE case_id = ? AND state = 'pending' LIMIT 1", (case_id,)
    ) as cur:
        return await cur.fetchone() is not None


async def sent_matrix_events(conn: aiosqlite.Connection, case_id: str) -> list[str]:
    """The event IDs of everything the bot posted for the case, in the order it was sent."""
    async with conn.execute(
        "SELECT result FROM outbox WHERE case_id = ? AND channel = 'matrix' AND state = 'sent'"
        " AND result LIKE '$%' ORDER BY id",
        (case_id,),
    ) as cur:
        return [str(row[0]) for row in await cur.fetchall()]


async def sent_room_posts(conn: aiosqlite.Connection, key_prefix: str) -> list[tuple[str, str]]:
    """(room, event ID) of the sent room posts whose outbox key starts with `key_prefix` (a
    case's overdue alerts in the managers' room, which quote its subject). Read before
    `scrub_outbox` empties their payloads, which name the room."""
    async with conn.execute(
        "SELECT json_extract(payload, '$.room_id'), result FROM outbox"
        " WHERE substr(idem_key, 1, ?) = ? AND channel = 'matrix' AND state = 'sent'"
        " AND result LIKE '$%' ORDER BY id",
        (len(key_prefix), key_prefix),
    ) as cur:
        rows = await cur.fetchall()
    return [(str(room), str(event)) for room, event in rows if room]


async def delete_mails(conn: aiosqlite.Connection, case_id: str, at: datetime) -> list[DeletedMail]:
    """Empty the case's mails in place (raw bytes with their attachments, subject, addresses,
    references); each row keeps direction, times, language and the SHA-256 of its bytes.
    The Message-ID is replaced as well: it may carry the reporter's domain or name."""
    async with conn.execute(
        "SELECT id, direction, raw, stored_at FROM mails WHERE case_id = ? AND deleted_at IS NULL"
        " ORDER BY id",
        (case_id,),
    ) as cur:
        rows = await cur.fetchall()
    deleted = []
    for row in rows:
        digest = hashlib.sha256(bytes(row["raw"])).hexdigest()
        await conn.execute(
            "UPDATE mails SET raw = X'', subject = '', from_address = NULL, to_address = NULL,"
            " message_id = ?, problems = '[]', thread_ids = '[]', sha256 = ?, deleted_at = ?"
            " WHERE id = ?",
            (f"<deleted-{row['id']}@cvdbot.invalid>", digest, at.isoformat(), row["id"]),
        )
        deleted.append(DeletedMail(int(row["id"]), str(row["direction"]), digest, row["stored_at"]))
    return deleted


async def deleted_mails(conn: aiosqlite.Connection, case_id: str) -> list[DeletedMail]:
    """The stub's record of the mails that were deleted."""
    async with conn.execute(
        "SELECT id, direction, sha256, stored_at FROM mails WHERE case_id = ?"
        " AND deleted_at IS NOT NULL ORDER BY id",
        (case_id,),
    ) as cur:
        return [
            DeletedMail(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in await cur.fetchall()
        ]


async def delete_intake_details(conn: aiosqlite.Connection, case_id: str) -> int:
    """Hosts and URLs the report named, who forwarded it, the signer's fingerprint, and the
    fix clock's pause reason (the team's words). Returns the number of hosts/URLs deleted."""
    cur = await conn.execute("DELETE FROM case_targets WHERE case_id = ?", (case_id,))
    targets = cur.rowcount
    await conn.execute(
        "UPDATE case_intake SET forwarded_by = NULL, forward_style = NULL,"
        " signature_fingerprint = NULL WHERE case_id = ?",
        (case_id,),
    )
    await conn.execute("UPDATE cases SET fix_pause_reason = NULL WHERE id = ?", (case_id,))
    return targets


async def delete_decisions_text(conn: aiosqlite.Connection, case_id: str) -> None:
    """The reporter's words and identity kept with the later steps: `!reply` previews (the
    address and the team's text), the credit name and URL, the reward's texts and delivery
    details, the publication text. The decisions' states and times stay for the record."""
    await conn.execute("DELETE FROM reply_previews WHERE case_id = ?", (case_id,))
    await conn.execute(
        "UPDATE case_decisions SET credit_name = NULL, credit_url = NULL,"
        " credit_evidence = NULL, consent_evidence = NULL, reward_criteria = NULL,"
        " reward_proposal = NULL, reward_decision = NULL, reward_delivery = NULL,"
        " publish_text = NULL, publish_evidence = NULL WHERE case_id = ?",
        (case_id,),
    )


async def delete_reporter_keys(
    conn: aiosqlite.Connection, case_id: str, address: str | None, at: datetime
) -> list[str]:
    """Forget the reporter keys that came with this case, unless a case whose data is not
    deleted has the same reporter address (it still needs the key). The fingerprints to
    remove from the keyring are queued in key_deletions; returns them."""
    if address is not None:
        async with conn.execute(
            "SELECT 1 FROM cases WHERE reporter_address = ? COLLATE NOCASE AND id != ?"
            " AND data_deleted_at IS NULL LIMIT 1",
            (address, case_id),
        ) as cur:
            if await cur.fetchone() is not None:
                # Still in use: unlink the key from this case's deleted mail only.
                await conn.execute(
                    "UPDATE reporter_keys SET case_id = NULL, mail_id = NULL WHERE case_id = ?",
                    (case_id,),
                )
                return []
    async with conn.execute(
        "SELECT DISTINCT fingerprint FROM reporter_keys WHERE case_id = ?"
        " OR (? IS NOT NULL AND address = ? COLLATE NOCASE)",
        (case_id, address, address),
    ) as cur:
        fingerprints = [str(row[0]) for row in await cur.fetchall()]
    removed = []
    for fingerprint in fingerprints:
        # A key another live reporter address also sent stays (same key, two addresses).
        async with conn.execute(
            "SELECT 1 FROM reporter_keys k JOIN cases c ON c.reporter_address = k.address"
            " COLLATE NOCASE WHERE k.fingerprint = ? AND c.data_deleted_at IS NULL"
            " AND c.id != ? LIMIT 1",
            (fingerprint, case_id),
        ) as cur:
            shared = await cur.fetchone() is not None
        if shared:
            continue
        await conn.execute("DELETE FROM reporter_keys WHERE fingerprint = ?", (fingerprint,))
        await conn.execute(
            "INSERT INTO key_deletions (fingerprint, queued_at) VALUES (?, ?)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            (fingerprint, at.isoformat()),
        )
        removed.append(fingerprint)
    await conn.execute(
        "UPDATE reporter_keys SET case_id = NULL, mail_id = NULL WHERE case_id = ?", (case_id,)
    )
    return removed


async def queued_key_deletions(conn: aiosqlite.Connection) -> list[str]:
    async with conn.execute("SELECT fingerprint FROM key_deletions ORDER BY queued_at") as cur:
        return [str(row[0]) for row in await cur.fetchall()]


async def key_deleted(conn: aiosqlite.Connection, fingerprint: str) -> None:
    await conn.execute("DELETE FROM key_deletions WHERE fingerprint = ?", (fingerprint,))


async def scrub_audit_log(conn: aiosqlite.Connection, case_id: str) -> int:
    """Every audit entry of the case without report text or personal data (the rule is
    bot/policy/retention.py); who, when and which step stay. Returns the entries kept."""
    async with conn.execute(
        "SELECT id, actor, data FROM case_events WHERE case_id = ?", (case_id,)
    ) as cur:
        rows = list(await cur.fetchall())
    for row in rows:
        data = json.loads(row["data"])
        scrubbed = scrub_event_data(data) if isinstance(data, dict) else {}
        await conn.execute(
            "UPDATE case_events SET actor = ?, data = ? WHERE id = ?",
            (scrub_actor(row["actor"]), json.dumps(scrubbed), row["id"]),
        )
    return len(rows)


async def scrub_outbox(conn: aiosqlite.Connection, case_id: str, placeholder: str) -> int:
    """Replace the stored payloads (post texts, mails) of everything already sent or given up
    for the case, and of sent room posts that name it (escalations, digests), with
    `placeholder`; their errors too (an SMTP error may quote the address). The rows, their
    idempotency keys and their results stay, so nothing is ever sent twice."""
    cur = await conn.execute(
        "UPDATE outbox SET payload = ?, last_error = NULL WHERE state != 'pending'"
        " AND (case_id = ? OR (case_id IS NULL AND instr(payload, ?) > 0))",
        (placeholder, case_id, case_id),
    )
    return cur.rowcount
