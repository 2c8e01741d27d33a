"""Log output for the operator: `logging.format: text` (one line per record) or `json`
(one JSON object per line, for a log collector).

What is logged is decided where it is logged: at INFO and above, never report text,
subjects, addresses or secrets; a case is named by its ID (tests/unit/test_ops_logs.py and
the integration test of the monitoring endpoint check the running bot's log for that).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log event contents at DEBUG or chatter at INFO.
NOISY = ("nio", "peewee", "aiosqlite", "aioimaplib", "gnupg", "mail.log", "aiohttp.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(*, verbose: bool = False, form: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if form == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
