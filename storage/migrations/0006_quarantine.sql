-- Mail the intake could not handle (issue 10). Every intake counts an attempt per mail
-- first and clears it when done, so a mail that stopped the process (or raised) twice is
-- recognised on its third arrival and put aside instead of being read again.
CREATE TABLE intake_attempts (
    digest TEXT PRIMARY KEY,                  -- SHA-256 of the raw mail, hex
    attempts INTEGER NOT NULL,                -- attempts begun and not finished
    last_error TEXT,                          -- why the last one failed, for the team
    updated_at TEXT NOT NULL
);

-- Mails put aside: stored raw, never parsed again, announced once in the case room.
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,                     -- imap | pipe
    imap_uid INTEGER,
    raw BLOB NOT NULL,
    size INTEGER NOT NULL,
    reason TEXT NOT NULL,
    received_at TEXT,
    stored_at TEXT NOT NULL
);
