-- Subscribers' SMS (MO) as the SMSC delivered them; the only caller is MoRepository
-- (dispatcher/program/mo.py). A message is recorded and applied in one transaction, before
-- deliver_sm_resp, so the SMSC's resend of an unacknowledged one is recognised by its
-- dedupe key and never applied twice (invariant 4).

-- name: insert_mo
-- An MO message as received; a resend with the same dedupe key returns no row.
-- $1: smsc, $2: msisdn, $3: destination, $4: body, $5: dedupe key, $6: now.
INSERT INTO mo_messages (smsc, msisdn, destination, body, dedupe_key, received_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id, smsc, msisdn, destination, body, dedupe_key, received_at

-- name: mo_handled
-- $1: id, $2: outcome, $3: now.
UPDATE mo_messages SET outcome = $2, handled_at = $3 WHERE id = $1
