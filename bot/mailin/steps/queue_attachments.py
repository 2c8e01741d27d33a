"""Intake step "queue posts", attachments: the list posted into the thread, and each
attachment small enough queued to follow as encrypted media."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from bot.mailin.attachments import display_name, listable, postable
from bot.mailin.intake_posts import ListedAttachment, attachment_list
from bot.mailin.parse import AttachmentInfo
from bot.mailin.steps.incoming import IncomingMail, IntakeSetup
from bot.matrix.posts import post_to_case
from bot.outbox import payloads


async def queue_attachments(
    conn: aiosqlite.Connection,
    setup: IntakeSetup,
    case_id: str,
    mail_id: int,
    mail: IncomingMail,
    now: datetime,
) -> None:
    """List the attachments, and queue each small enough as encrypted media."""
    if mail.encryption == "failed":
        return  # only ciphertext: the raw mail is stored, nothing to show
    limit = setup.config.limits.max_attachment_bytes_in_thread
    most = setup.config.limits.max_attachments_in_thread
    listed: list[ListedAttachment] = []
    media: list[tuple[int, AttachmentInfo, str]] = []
    for index, (info, _data) in enumerate(mail.payloads):
        if not listable(info):
            continue
        name = display_name(info, index)
        why_not = None
        if not postable(info):
            why_not = "an OpenPGP key, not posted"
        elif info.size == 0:
            why_not = "empty, not posted"
        elif info.size > limit:
            why_not = f"larger than the thread's limit of {limit} bytes; kept in the store"
        elif len(media) >= most:
            why_not = f"more than {most} attachments (limits.max_attachments_in_thread); kept"
        else:
            media.append((index, info, name))
        listed.append(
            ListedAttachment(
                name, info.content_type, info.size, info.sha256, why_not is None, why_not
            )
        )
    if not listed:
        return
    await post_to_case(
        conn, case_id, attachment_list(listed), idem_key=f"attachments:{mail_id}", now=now
    )
    for index, info, name in media:
        media_post = payloads.MediaPost(
            mail_id=mail_id,
            layer=mail.layer,
            index=index,
            sha256=info.sha256,
            filename=name,
            content_type=info.content_type,
            size=info.size,
        )
        await payloads.enqueue(
            conn, media_post, idem_key=f"media:{mail_id}:{index}", case_id=case_id, now=now
        )
