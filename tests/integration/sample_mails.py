"""Reports as reporters' mail clients write them, for the end-to-end tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def report(
    *,
    subject: str,
    body: str,
    sender: str = "Eva Onderzoeker <eva@researcher.example>",
    message_id: str | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "security@haaksbergen.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(
        idstring=uuid.uuid4().hex[:8], domain="researcher.example"
    )
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(body)
    return bytes(message)


ENGLISH_BODY = """Hello,

I found a reflected cross-site scripting vulnerability on your parking permit portal.
The search parameter is echoed without encoding:

https://parkeren.haaksbergen.example/zoeken?q=<script>alert(1)</script>

Steps to reproduce: open the URL above in any browser; the script runs.
I have not stored or changed any data. Please let me know when it is fixed.

Kind regards,
Sam
"""

DUTCH_BODY = """Beste heer/mevrouw,

Bij het aanvragen van een parkeervergunning heb ik een beveiligingslek gevonden. Het
zoekveld op https://parkeren.haaksbergen.example/zoeken geeft de invoer ongefilterd terug,
waardoor een aanvaller een script kan laten uitvoeren in de browser van een inwoner (XSS).

Stappen om het te reproduceren: open de pagina en zoek op <script>alert(1)</script>.
Ik heb geen gegevens bekeken of gewijzigd. Graag hoor ik wanneer het is opgelost.

Met vriendelijke groet,
Eva
"""
