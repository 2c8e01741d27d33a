-- Retention (bot/watch/retention.py): when a closed case's countdown runs out its mails are
-- emptied in place (raw bytes, subject, addresses), keeping only the SHA-256 of what was
-- deleted and when, so the stub can still prove which mails the case had.
ALTER TABLE mails ADD COLUMN sha256 TEXT;                -- of the raw bytes that were deleted
ALTER TABLE mails ADD COLUMN deleted_at TEXT;

-- A reporter's public key to remove from the bot's gpg home: written in the deletion's
-- transaction, removed from the keyring after it (gpg is not part of the transaction), and
-- the row deleted once gpg did it, so a crash in between only repeats the removal.
CREATE TABLE key_deletions (
    fingerprint TEXT PRIMARY KEY,
    queued_at TEXT NOT NULL
);
