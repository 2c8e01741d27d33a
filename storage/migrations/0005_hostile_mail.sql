-- Issue 10: mail that lies and mail that looks automatic.

-- Reporter keys as trust on first use: the first key seen for an address is pinned; a
-- different key later waits as 'pending' until a team member runs !key accept (the old one
-- becomes 'replaced') or !key reject ('rejected'). Only the pinned key is ever encrypted to.
ALTER TABLE reporter_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'pinned'
    CHECK (status IN ('pinned', 'pending', 'rejected', 'replaced'));
ALTER TABLE reporter_keys ADD COLUMN decided_by TEXT;  -- who ran !key accept/reject
ALTER TABLE reporter_keys ADD COLUMN decided_at TEXT;
-- Before this version the newest key of an address won: that one stays pinned.
UPDATE reporter_keys SET status = 'replaced'
 WHERE EXISTS (SELECT 1 FROM reporter_keys AS newer
                WHERE newer.address = reporter_keys.address
                  AND newer.imported_at > reporter_keys.imported_at);

-- When the mailbox received a mail (IMAP INTERNALDATE; the intake time for the pipe):
-- `!open <mail-id>` starts a case's clock there.
ALTER TABLE mails ADD COLUMN received_at TEXT;
-- Why an unsorted mail (automatic or list mail that matched no case) looked automatic.
ALTER TABLE mails ADD COLUMN automatic_reason TEXT;
CREATE INDEX mails_unsorted ON mails (direction, case_id) WHERE case_id IS NULL;

-- A case opened from the folder's backlog on a first start with imap.start_at: all. Its
-- deadlines that had passed before the import get no warnings or escalations.
ALTER TABLE cases ADD COLUMN imported_at TEXT;

-- A new key for an address is announced in every case thread of that address.
CREATE INDEX cases_reporter ON cases (lower(reporter_address));
