-- The first schema: cases, mails in and out, the per-case audit log, the outbox,
-- and the sync state of the Matrix and IMAP sides. Times are ISO 8601 UTC text.

CREATE TABLE case_counters (
    year INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

CREATE TABLE cases (
    id TEXT PRIMARY KEY,                      -- CVD-2026-0007
    year INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,                      -- see bot/lifecycle.py
    subject TEXT NOT NULL,
    reporter_address TEXT,                    -- NULL: anonymous / no usable address
    reporter_name TEXT,
    language TEXT NOT NULL,                   -- nl | en
    received_at TEXT NOT NULL,
    acknowledge_due TEXT NOT NULL,
    assess_due TEXT NOT NULL,
    fix_due TEXT NOT NULL,
    acknowledged_at TEXT,
    assessed_at TEXT,
    fixed_at TEXT,
    severity TEXT,
    cvss_vector TEXT,
    assessment_text TEXT,
    fix_text TEXT,
    assignee TEXT,
    report_mail_id INTEGER,
    thread_root_event_id TEXT UNIQUE,
    thread_last_event_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (year, seq)
);
CREATE INDEX cases_state ON cases (state);

CREATE TABLE mails (
    id INTEGER PRIMARY KEY,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    message_id TEXT NOT NULL,
    case_id TEXT REFERENCES cases (id),
    source TEXT NOT NULL,                     -- imap | pipe | outbox
    raw BLOB NOT NULL,
    subject TEXT NOT NULL,
    from_address TEXT,
    to_address TEXT,
    sent_date TEXT,                           -- the Date header, when it parsed
    stored_at TEXT NOT NULL,
    language TEXT,
    is_automatic INTEGER NOT NULL DEFAULT 0,
    problems TEXT NOT NULL DEFAULT '[]',      -- JSON list of human-readable parse problems
    thread_ids TEXT NOT NULL DEFAULT '[]',    -- JSON: References + In-Reply-To of this mail
    UNIQUE (direction, message_id)
);
CREATE INDEX mails_case ON mails (case_id);

-- Every change to a case, who made it, and why: the record a team lead or auditor reads.
CREATE TABLE case_events (
    id INTEGER PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases (id),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,                      -- Matrix user id, "mail:<address>", or "cvdbot"
    kind TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX case_events_case ON case_events (case_id, id);

-- Everything that leaves the process goes through here first (see storage/outbox.py).
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    idem_key TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL CHECK (channel IN ('matrix', 'mail')),
    priority INTEGER NOT NULL DEFAULT 1,      -- 0 first: a new case's root before older chatter
    case_id TEXT REFERENCES cases (id),
    payload TEXT NOT NULL,                    -- JSON
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    result TEXT,                              -- event id or Message-ID once sent
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX outbox_due ON outbox (state, channel, priority, id);

-- Matrix events already acted on: a replayed sync never runs a command twice.
CREATE TABLE handled_events (
    event_id TEXT PRIMARY KEY,
    handled_at TEXT NOT NULL
);

CREATE TABLE imap_state (
    folder TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid INTEGER NOT NULL
);

-- Small named values: the Matrix sync token and the like.
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
