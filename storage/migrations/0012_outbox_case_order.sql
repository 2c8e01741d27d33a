-- A case's outgoing items leave in the order they were queued, per channel (storage/outbox.py,
-- `due`): an item is due only when no earlier item of its case and channel is still pending.
-- This index answers "is there an earlier pending item of this case?" without scanning the
-- sent history; it holds only pending rows, so it stays small however long the history is.
CREATE INDEX outbox_pending_case ON outbox (case_id, channel, id) WHERE state = 'pending';
