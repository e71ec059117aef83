-- name: enqueue
-- Queue one program service message (R7: never counted against caps).
-- $1: msisdn, $2: service_kind, $3: body, $4: in_window (R8 applies),
-- $5: dedupe_key or NULL (a repeat of the same key is a no-op), $6: campaign id or NULL,
-- $7: not_before (earliest send time) or NULL.
INSERT INTO service_messages (msisdn, kind, body, in_window, dedupe_key, campaign_id, not_before)
VALUES ($1, $2, $3, $4, $5, $6, $7)
-- The key is per number (migration 0024: msisdn is in every unique key).
ON CONFLICT (dedupe_key, msisdn) DO NOTHING
RETURNING id
