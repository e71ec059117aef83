-- Outbound core (issue 10): deliveries and service_messages share their transitions, and
-- the finish time belongs to the final states.

-- The columns the shared transitions touch are the same in both tables (dispatch.sql writes
-- each transition once, for both): service messages record the language they went out in.
ALTER TABLE service_messages ADD COLUMN language language;

-- The final states of an outbound message, in one place: the CHECKs below, and every
-- statement that computes a state (record, receipts), call it. A plain SQL function, so
-- the planner inlines it. IMMUTABLE: change it only in a migration that re-validates the
-- CHECKs.
CREATE FUNCTION delivery_state_final(state delivery_state) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT state IN ('delivered', 'undelivered', 'expired', 'failed', 'unknown', 'suppressed')
$$;

-- Repair rows written before the CHECK. The receipt applier finished a service message on
-- any part's receipt, so a multi-part one can be 'submitted' with a finish time: cleared.
-- A final row without one gets the best time known: its last receipt, else its submit or
-- claim, else now. Only finished_at is set, so the cap-release trigger (UPDATE OF state)
-- does not fire.
UPDATE deliveries SET finished_at = NULL
WHERE finished_at IS NOT NULL AND NOT delivery_state_final(state);
UPDATE deliveries d
SET finished_at = coalesce(
    (SELECT max(s.receipt_at) FROM submits s WHERE s.delivery_id = d.id),
    d.submitted_at, d.claimed_at, now())
WHERE d.finished_at IS NULL AND delivery_state_final(d.state);

UPDATE service_messages SET finished_at = NULL
WHERE finished_at IS NOT NULL AND NOT delivery_state_final(state);
UPDATE service_messages m
SET finished_at = coalesce(
    (SELECT max(s.receipt_at) FROM submits s WHERE s.service_message_id = m.id),
    m.submitted_at, m.claimed_at, m.created_at)
WHERE m.finished_at IS NULL AND delivery_state_final(m.state);

-- A message has a finish time exactly when it is in a final state (River's finalized_at):
-- a transition that forgets it, or sets it early, is refused by the database.
ALTER TABLE deliveries ADD CONSTRAINT deliveries_finished_when_final
    CHECK ((finished_at IS NOT NULL) = delivery_state_final(state));
ALTER TABLE service_messages ADD CONSTRAINT service_messages_finished_when_final
    CHECK ((finished_at IS NOT NULL) = delivery_state_final(state));
