"""The operator's log output (bot/ops/logs.py): `logging.format: json` writes one JSON object
per line with level, logger and message (and the traceback of an exception), nothing else;
`text` writes one line per record; and what is logged never carries an address."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.ops.logs import NOISY, JsonFormatter, setup_logging
from bot.pgp.gpg import Pgp
from bot.policy.workdays import WorkingCalendar
from bot.services import calendar_rules
from bot.watch.digest import DigestService
from storage.db import Database
from tests.unit.test_sla_watch import at, make_config

SECRET = "the reporter's secret text"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging replaces the root handler and levels: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)


def capture(form: str, verbose: bool = False) -> io.StringIO:
    """Set logging up as the bot does, writing into a buffer instead of stderr."""
    setup_logging(verbose=verbose, form=form)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


def test_json_lines_parse_and_carry_level_logger_and_message(restore_logging: None) -> None:
    stream = capture("json")
    log = logging.getLogger("bot.example")
    log.info("case %s acknowledged", "CVD-2026-0001")
    log.warning("outbox (%s) paused", "smtp")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO"
    assert first["logger"] == "bot.example"
    assert first["message"] == "case CVD-2026-0001 acknowledged"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert (second["level"], second["message"]) == ("WARNING", "outbox (smtp) paused")


def test_json_includes_the_exception_with_its_traceback(restore_logging: None) -> None:
    stream = capture("json")
    try:
        raise RuntimeError("the SMTP server went away")
    except RuntimeError:
        logging.getLogger("bot.outbox").exception("sending failed")
    (line,) = stream.getvalue().splitlines()  # the traceback stays inside the one line
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["message"] == "sending failed"
    assert "Traceback" in entry["exception"]
    assert "RuntimeError: the SMTP server went away" in entry["exception"]


def test_json_adds_nothing_but_the_message(restore_logging: None) -> None:
    """Fields a caller attaches to a record (extra=..., stack info) do not reach the line:
    only what the message itself says is logged, so a review of the messages is complete."""
    stream = capture("json")
    logging.getLogger("bot.mailin").info(
        "mail %d stored", 7, extra={"body": SECRET, "subject": SECRET, "password": SECRET}
    )
    (line,) = stream.getvalue().splitlines()
    assert SECRET not in line
    assert json.loads(line)["message"] == "mail 7 stored"


def test_json_keeps_non_ascii_readable() -> None:
    record = logging.LogRecord("bot", logging.INFO, __file__, 1, "Prüfung %s", ("✉️",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "Prüfung ✉️"
    assert "Prüfung" in JsonFormatter().format(record)


def test_text_format_is_one_line_per_record(restore_logging: None) -> None:
    stream = capture("text")
    logging.getLogger("bot.example").info("case %s closed", "CVD-2026-0002")
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO bot\.example: case CVD-2026-0002 closed",
        line,
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_noisy_libraries_are_quiet_and_debug_only_when_verbose(restore_logging: None) -> None:
    stream = capture("text")
    logging.getLogger("bot.example").debug("not shown")
    logging.getLogger("nio.rooms").info("an event's content")  # nio logs contents
    assert stream.getvalue() == ""
    assert all(logging.getLogger(name).level == logging.WARNING for name in NOISY)
    stream = capture("text", verbose=True)
    logging.getLogger("bot.example").debug("shown")
    logging.getLogger("nio.rooms").debug("still not shown")
    assert stream.getvalue().splitlines()[0].endswith("DEBUG bot.example: shown")
    assert len(stream.getvalue().splitlines()) == 1


async def test_a_digest_mail_that_cannot_be_built_is_logged_without_its_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No bot key: the digest mail cannot be signed. The operator learns which entry of
    `digest.email_to` it was, never the address."""
    config = make_config(tmp_path)
    address = "boss.private@example.org"
    config = config.model_copy(
        update={"digest": config.digest.model_copy(update={"email_to": [address]})}
    )
    calendar = WorkingCalendar(calendar_rules(config.policy))
    db = await Database.open(tmp_path / "cvdbot.sqlite3")
    try:
        service = DigestService(db, config, calendar, Pgp(tmp_path / "gnupg", None, None))
        with caplog.at_level(logging.INFO):
            assert await service.send_if_due(at(2, 8, 30)) is True
    finally:
        await db.close()
    # The bot's own records: asyncio may log another test's leftover task here.
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("bot.")
    ]
    assert errors == [
        "digest mail 1 of 1 (digest.email_to) not built: no bot key configured"
        " (pgp.key_fingerprint)"
    ]
    assert not [r for r in caplog.records if address in r.getMessage()]
