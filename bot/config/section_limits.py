"""The ``limits`` section: how much of a report is copied into the Matrix thread, and the
size and time limits on every mail a stranger can send (issue 10)."""

from __future__ import annotations

from pydantic import BaseModel

from bot.config.fields import FROZEN, PositiveInt

MIB = 1024 * 1024


class LimitsConfig(BaseModel):
    """How much of a report is copied into the Matrix thread; what a mail may cost."""

    model_config = FROZEN

    max_body_chars_in_thread: PositiveInt = 20000
    max_attachment_bytes_in_thread: PositiveInt = 10 * MIB
    # At most this many attachments of one mail are posted as media; the rest are listed.
    max_attachments_in_thread: PositiveInt = 20
    # A mail larger than this is not read: it is quarantined (stored raw, the team told).
    max_mail_bytes: PositiveInt = 64 * MIB
    # One header field longer than this is cut to it before parsing (noted in the thread).
    max_header_field_bytes: PositiveInt = 64 * 1024
    # Header fields beyond this total size are left out before parsing (noted).
    max_header_bytes: PositiveInt = 1 * MIB
    # MIME parts beyond this many are not read as attachments (noted).
    max_mime_parts: PositiveInt = 5000
    # gpg stops when a decrypted message grows past this many bytes...
    max_decrypted_bytes: PositiveInt = 64 * MIB
    # ... or past this many times the size of the encrypted data (above 1 MiB).
    max_expansion_ratio: PositiveInt = 100
    # Wall-clock seconds one gpg run (decrypt, verify) may take before it is stopped.
    gpg_timeout_seconds: PositiveInt = 30
