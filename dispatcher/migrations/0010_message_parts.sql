-- Outbound at its edges (issue 11): a long message is retried part by part (R14).
-- parts: the message's total number of parts (it was the number accepted, so a message
-- with a part refused counted as whole once its accepted parts were delivered).
-- concat_ref: the concatenation reference its parts went out with, so a part retried
-- alone joins the others on the handset. valid_until: the last instant its missing parts
-- may still follow the accepted ones (the validity those carry: the window's close).

ALTER TABLE deliveries ADD COLUMN concat_ref integer, ADD COLUMN valid_until timestamptz;
ALTER TABLE service_messages ADD COLUMN concat_ref integer, ADD COLUMN valid_until timestamptz;

-- Messages still waiting for receipts take their total from their submits (every part of
-- a message's submits carries the total).
UPDATE deliveries d
SET parts = (SELECT max(s.parts) FROM submits s WHERE s.delivery_id = d.id)
WHERE d.state = 'submitted'
  AND EXISTS (SELECT FROM submits s WHERE s.delivery_id = d.id);
UPDATE service_messages m
SET parts = (SELECT max(s.parts) FROM submits s WHERE s.service_message_id = m.id)
WHERE m.state = 'submitted'
  AND EXISTS (SELECT FROM submits s WHERE s.service_message_id = m.id);
