-- When did each outbox channel last send something? /healthz (bot/ops/health.py,
-- `judge_outbox`) asks this on every probe to tell a long burst that is being worked off
-- from a stalled outbox. Sent rows are kept as history, so without this index the question
-- would read all of them; with it, it is one step to the end of the index.
CREATE INDEX outbox_sent_at ON outbox (channel, sent_at) WHERE state = 'sent';
