-- The policy's promises beyond the fix (bot/policy/decisions.py): the reporter's credit and
-- consent, the reward decision, the share with the IBD and the joint publication decision.
-- One row per case once anything is decided; no row means the defaults (anonymous, contact
-- details not shared, nothing proposed, not shared). Each change is also in case_events,
-- with its evidence (the command's event ID and the reporter's mail it rests on).
CREATE TABLE case_decisions (
    case_id TEXT PRIMARY KEY REFERENCES cases (id),
    credit_name TEXT,                        -- NULL: anonymous
    credit_url TEXT,
    credit_evidence TEXT,
    credit_at TEXT,
    share_contact INTEGER NOT NULL DEFAULT 0,
    consent_evidence TEXT,
    consent_at TEXT,
    reward_state TEXT CHECK (reward_state IN ('proposed', 'approved', 'declined', 'sent')),
    reward_criteria TEXT,
    reward_proposal TEXT,
    reward_decision TEXT,
    reward_decided_by TEXT,
    reward_delivery TEXT,                    -- personal data for delivery; NULL once sent
    reward_at TEXT,
    ibd_shared_at TEXT,
    ibd_tlp TEXT,
    ibd_updated_at TEXT,
    publish_state TEXT CHECK (publish_state IN ('proposed', 'agreed', 'declined', 'none')),
    publish_date TEXT,
    publish_text TEXT,
    publish_evidence TEXT,
    publish_at TEXT
);
-- The digest's "pending reward decisions".
CREATE INDEX case_decisions_reward ON case_decisions (reward_state)
    WHERE reward_state IN ('proposed', 'approved');
