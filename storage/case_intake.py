"""What intake records beside the case: how a report came in, the requirements check, the
hosts and URLs it names (for possibly related cases), and reporters' public keys."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aiosqlite

from storage.cases import WORKING_STATES_SQL


@dataclass(frozen=True)
class CaseIntake:
    case_id: str
    forwarded_by: str | None
    forward_style: str | None
    encryption: str
    signature_status: str | None
    signature_fingerprint: str | None
    has_contact: bool | None
    has_target: bool | None
    has_description: bool | None


@dataclass(frozen=True)
class RelatedCase:
    case_id: str
    shared: tuple[str, ...]  # the hosts both cases name


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _bool(value: object) -> bool | None:
    return None if value is None else bool(value)


async def record_case_intake(conn: aiosqlite.Connection, intake: CaseIntake) -> None:
    await conn.execute(
        "INSERT INTO case_intake (case_id, forwarded_by, forward_style, encryption,"
        " signature_status, signature_fingerprint, has_contact, has_target, has_description)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (
            intake.case_id,
            intake.forwarded_by,
            intake.forward_style,
            intake.encryption,
            intake.signature_status,
            intake.signature_fingerprint,
            _flag(intake.has_contact),
            _flag(intake.has_target),
            _flag(intake.has_description),
        ),
    )


async def get_case_intake(conn: aiosqlite.Connection, case_id: str) -> CaseIntake | None:
    async with conn.execute(
        "SELECT case_id, forwarded_by, forward_style, encryption, signature_status,"
        " signature_fingerprint, has_contact, has_target, has_description"
        " FROM case_intake WHERE case_id = ?",
        (case_id,),
    ) as cur:
        row = await cur.fetchone()
    if row is None:
        return None
    return CaseIntake(
        row[0], row[1], row[2], row[3], row[4], row[5], _bool(row[6]), _bool(row[7]), _bool(row[8])
    )


async def update_evidence(
    conn: aiosqlite.Connection,
    case_id: str,
    *,
    has_contact: bool,
    has_target: bool,
    has_description: bool,
) -> None:
    await conn.execute(
        "UPDATE case_intake SET has_contact = ?, has_target = ?, has_description = ?"
        " WHERE case_id = ?",
        (int(has_contact), int(has_target), int(has_description), case_id),
    )


async def add_targets(
    conn: aiosqlite.Connection,
    case_id: str,
    *,
    hosts: Iterable[str],
    urls: Iterable[str],
    mail_id: int | None,
) -> None:
    rows = [(case_id, "host", host, mail_id) for host in hosts]
    rows += [(case_id, "url", url, mail_id) for url in urls]
    await conn.executemany(
        "INSERT INTO case_targets (case_id, kind, value, mail_id) VALUES (?,?,?,?)"
        " ON CONFLICT DO NOTHING",
        rows,
    )


async def related_open_cases(
    conn: aiosqlite.Connection, case_id: str, hosts: Iterable[str]
) -> list[RelatedCase]:
    """Open cases other than `case_id` that name one of `hosts`, oldest first."""
    wanted = list(dict.fromkeys(hosts))
    if not wanted:
        return []
    found: dict[str, list[str]] = {}
    # In chunks: SQLite limits the number of bound parameters of one statement.
    for start in range(0, len(wanted), 200):
        chunk = wanted[start : start + 200]
        marks = ",".join("?" * len(chunk))
        async with conn.execute(
            "SELECT t.case_id, t.value FROM case_targets t JOIN cases c ON c.id = t.case_id"
            f" WHERE t.kind = 'host' AND t.value IN ({marks}) AND t.case_id != ?"
            f" AND c.state IN ({WORKING_STATES_SQL}) ORDER BY c.year, c.seq",
            (*chunk, case_id),
        ) as cur:
            for row in await cur.fetchall():
                shared = found.setdefault(str(row[0]), [])
                if row[1] not in shared:
                    shared.append(str(row[1]))
    return [RelatedCase(case, tuple(values)) for case, values in found.items()]


async def targets_of(conn: aiosqlite.Connection, case_id: str) -> tuple[list[str], list[str]]:
    """The (hosts, URLs) the case's mails name, in the order they were stored (max 100 each)."""
    hosts: list[str] = []
    urls: list[str] = []
    async with conn.execute(
        "SELECT kind, value FROM case_targets WHERE case_id = ? ORDER BY rowid", (case_id,)
    ) as cur:
        for kind, value in await cur.fetchall():
            bucket = hosts if kind == "host" else urls
            if len(bucket) < 100:
                bucket.append(str(value))
    return hosts, urls
