-- Free replies and progress updates (commands/replies.py, bot/policy/reply_preview.py,
-- bot/policy/update_due.py).

-- Each !reply: the exact mail previewed in the thread, numbered per case. !send sends the
-- case's latest preview once; sent_at is set in the same transaction as the queued mail.
-- Holds the reporter's address and the team's words: personal data, deleted with the case.
CREATE TABLE reply_previews (
    case_id TEXT NOT NULL REFERENCES cases (id),
    number INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,            -- the !reply message
    language TEXT NOT NULL,
    to_address TEXT NOT NULL,
    text TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    encrypted INTEGER NOT NULL,               -- what the preview said: 1 encrypted, 0 signed only
    sent_at TEXT,
    sent_by TEXT,
    PRIMARY KEY (case_id, number)
);

-- The update warning point (bot/watch/update_warnings.py): one row per quiet period
-- (identified by the mail, or receipt, it began with) whose thread was warned, recorded in
-- the same transaction as the post, so each period is warned exactly once across restarts.
CREATE TABLE update_warnings (
    case_id TEXT NOT NULL REFERENCES cases (id),
    quiet_since TEXT NOT NULL,
    warned_at TEXT NOT NULL,
    PRIMARY KEY (case_id, quiet_since)
);

-- The update point is watched from the SLA tick: assessed cases with nothing scheduled
-- (e.g. a paused fix clock) are looked at once, which plans their update check.
UPDATE cases SET next_sla_check_at = '' WHERE state = 'assessed' AND next_sla_check_at IS NULL;
