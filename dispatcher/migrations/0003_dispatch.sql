-- The dispatch engine (issue 5): receipt matching retries and the recipient's language.

-- A receipt that came before its submit_sm_resp waits unmatched; the applier looks at it
-- again after check_after instead of at every pass, and gives up on it after a while.
ALTER TABLE receipts ADD COLUMN check_after timestamptz;
ALTER TABLE receipts ADD COLUMN matched boolean;
DROP INDEX receipts_unapplied;
CREATE INDEX receipts_unapplied ON receipts (check_after NULLS FIRST, id) WHERE applied_at IS NULL;

-- The language a message went out in (R14), for reports and survey follow-ups.
ALTER TABLE deliveries ADD COLUMN language language;

-- Recovery looks up rows by the node that holds them.
CREATE INDEX deliveries_claimed_by ON deliveries (claimed_by)
    WHERE state IN ('claimed', 'in_flight');
CREATE INDEX service_messages_claimed_by ON service_messages (claimed_by)
    WHERE state IN ('claimed', 'in_flight');
CREATE INDEX submits_service_message ON submits (service_message_id)
    WHERE service_message_id IS NOT NULL;
