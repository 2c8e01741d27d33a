-- The rest of the case lifecycle (bot/policy/lifecycle.py): outcomes, closing, and the
-- retention countdown after which a case's personal data and report text are deleted and
-- only a stub stays. The history of every step is in case_events.
ALTER TABLE cases ADD COLUMN outcome TEXT;              -- rejected | duplicate | withdrawn | spam | fixed
ALTER TABLE cases ADD COLUMN outcome_at TEXT;
ALTER TABLE cases ADD COLUMN outcome_reason TEXT;       -- !reject's reason
ALTER TABLE cases ADD COLUMN outcome_text TEXT;
ALTER TABLE cases ADD COLUMN duplicate_of TEXT;
ALTER TABLE cases ADD COLUMN closed_at TEXT;
ALTER TABLE cases ADD COLUMN delete_after TEXT;         -- NULL: not closed, held, or deleted
ALTER TABLE cases ADD COLUMN hold_reason TEXT;
ALTER TABLE cases ADD COLUMN data_deleted_at TEXT;

-- The retention job reads only the cases whose countdown runs.
CREATE INDEX cases_delete_after ON cases (delete_after) WHERE delete_after IS NOT NULL;
