-- Subscribers' replies (issue 11): an MO is recognised as the SMSC's resend only where the
-- earlier copy was never acknowledged, never by its content alone (dispatcher/engine/sink.py
-- states the rule; RELIABILITY.md "MO and the SMSC's resends" the reasoning).

-- Two identical messages are two rows: the key no longer refuses a repeat, it finds the
-- earlier copies to ask whether they were acknowledged.
ALTER TABLE mo_messages DROP CONSTRAINT mo_messages_dedupe_key_key;

-- Who answered (or is answering) the latest delivery of this message to us, and how that
-- went: acked_at when deliver_sm_resp was handed to an open connection, ack_lost_at when it
-- could not be (the connection was gone: the SMSC will deliver again). Both NULL: being
-- answered by `node`, or `node` died before it could answer. `resends` counts the SMSC's
-- resends recognised as this message; it also tells one delivery's answer from the next's.
ALTER TABLE mo_messages
    ADD COLUMN node        text,
    ADD COLUMN acked_at    timestamptz,
    ADD COLUMN ack_lost_at timestamptz,
    ADD COLUMN resends     integer NOT NULL DEFAULT 0;

-- Rows from before this migration were answered (the SMSC had no reason to resend them).
UPDATE mo_messages SET acked_at = coalesce(handled_at, received_at);

-- The resend check looks only at copies not known to be acknowledged: a small set.
CREATE INDEX mo_messages_unacknowledged ON mo_messages (dedupe_key, received_at)
    WHERE acked_at IS NULL;

-- Survey replies waiting for their session (a reply that arrived while the first question
-- was in flight) are found by number when the session opens.
CREATE INDEX mo_messages_waiting ON mo_messages (msisdn) WHERE outcome = 'waiting';

-- "Is a survey question in flight to this number?" (the reply that may wait for it).
CREATE INDEX deliveries_in_flight ON deliveries (msisdn) WHERE state = 'in_flight';
