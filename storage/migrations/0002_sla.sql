-- The policy's clock: what the SLA watch needs to be cheap and exactly-once.
-- Times are ISO 8601 UTC text, as everywhere.

-- When the SLA watch must look at a case again. '' (the default, so every new case and every
-- case that existed before this migration) means "as soon as possible"; NULL means "nothing
-- to watch" (fixed, or only a paused fix clock left). The tick reads only rows that are due,
-- through the index, so its cost follows the cases falling due, not the number of cases.
ALTER TABLE cases ADD COLUMN next_sla_check_at TEXT DEFAULT '';
CREATE INDEX cases_next_sla_check ON cases (next_sla_check_at);

-- The fix clock: paused while waiting for the reporter or a supplier (!pause / !resume),
-- and extended by agreement with the reporter (!extend). The history of both is in the
-- audit log (case_events); these columns are the current state.
ALTER TABLE cases ADD COLUMN fix_paused_at TEXT;
ALTER TABLE cases ADD COLUMN fix_pause_reason TEXT;
ALTER TABLE cases ADD COLUMN fix_paused_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN fix_extension_days INTEGER NOT NULL DEFAULT 0;

-- Open promises by deadline: partial indexes hold only the promises not yet kept, so the
-- digest's "overdue" and "due soon" lists read the open cases, not the whole history.
CREATE INDEX cases_open_acknowledge ON cases (acknowledge_due) WHERE acknowledged_at IS NULL;
CREATE INDEX cases_open_assess ON cases (assess_due) WHERE assessed_at IS NULL;
CREATE INDEX cases_open_fix ON cases (fix_due) WHERE fixed_at IS NULL;
-- The digest's "new" and "closed" lists and the on-time rates read a recent time window.
CREATE INDEX cases_created ON cases (created_at);
CREATE INDEX cases_acknowledged ON cases (acknowledged_at);
CREATE INDEX cases_assessed ON cases (assessed_at);
CREATE INDEX cases_fixed ON cases (fixed_at);
CREATE INDEX cases_acknowledge_due ON cases (acknowledge_due);
CREATE INDEX cases_assess_due ON cases (assess_due);
CREATE INDEX cases_fix_due ON cases (fix_due);

-- Each SLA warning point passed, per case and promise, recorded in the same transaction as
-- the post that announces it: a warning is posted exactly once, across restarts. An !extend
-- forgets the fix's points that lie in the future again under the new deadline.
CREATE TABLE sla_warnings (
    case_id TEXT NOT NULL REFERENCES cases (id),
    promise TEXT NOT NULL,                    -- acknowledge | assess | fix
    point TEXT NOT NULL,                      -- e.g. 50%, 1 working day left, overdue
    due TEXT NOT NULL,                        -- the deadline the point belonged to
    warned_at TEXT NOT NULL,
    PRIMARY KEY (case_id, promise, point)
);

-- The managers' daily digests queued: one per digest moment (a working day at digest.time),
-- recorded in the same transaction as its posts and mails. `until` is when it was built:
-- the next digest lists what is new from there on, so no case is missed after downtime.
CREATE TABLE digests (
    moment TEXT PRIMARY KEY,
    since TEXT NOT NULL,
    until TEXT NOT NULL,
    queued_at TEXT NOT NULL
);
