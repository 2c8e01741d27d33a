-- What the mail intake learns about a report beyond the case itself: how it came in
-- (forwarded, encrypted, signed), what the policy's requirements check found, the hosts and
-- URLs it names (to spot possibly related cases), and the reporters' public keys.

-- One row per case, written when the case is opened.
CREATE TABLE case_intake (
    case_id TEXT PRIMARY KEY REFERENCES cases (id),
    forwarded_by TEXT,                        -- address of whoever forwarded the report
    forward_style TEXT,                       -- "attached message", "Outlook", "Gmail", ...
    encryption TEXT NOT NULL DEFAULT 'none',  -- none | decrypted | failed
    signature_status TEXT,                    -- see bot/pgp.py SignatureStatus; NULL: unsigned
    signature_fingerprint TEXT,
    -- The requirements check (bot/report_check.py): each piece of evidence found so far in
    -- the report and the reporter's follow-ups, 0 or 1. NULL: not checked (undecryptable).
    has_contact INTEGER,
    has_target INTEGER,
    has_description INTEGER
);

-- Host names, IP addresses and URLs a case's mails name; `value` is normalised
-- (bot/report_check.py) so that equal hosts compare equal.
CREATE TABLE case_targets (
    case_id TEXT NOT NULL REFERENCES cases (id),
    kind TEXT NOT NULL CHECK (kind IN ('host', 'url')),
    value TEXT NOT NULL,
    mail_id INTEGER REFERENCES mails (id),
    PRIMARY KEY (case_id, kind, value)
);
CREATE INDEX case_targets_value ON case_targets (kind, value);

-- Public keys reporters sent (attached, pasted or in an Autocrypt header), imported into the
-- gpg home only because one of the key's user IDs was the sending address.
CREATE TABLE reporter_keys (
    address TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    mail_id INTEGER REFERENCES mails (id),
    case_id TEXT REFERENCES cases (id),
    imported_at TEXT NOT NULL,
    PRIMARY KEY (address, fingerprint)
);
