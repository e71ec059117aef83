-- The audit trail (migration 0038); the only caller is dispatcher/kernel/audit.py. Rows are
-- only ever inserted: triggers refuse UPDATE, DELETE and TRUNCATE.

-- name: insert_event
-- One operator action, in the transaction of the action itself. $1 at (the caller's clock;
-- NULL: the database's, for a caller without one),
-- $2 actor (a token's name, or cli:<os user>), $3 the actor's role, $4 action, $5 campaign id
-- or NULL, $6 target (e.g. token:7) or NULL, $7 details (an object: never a secret or a
-- subscriber's number).
INSERT INTO audit_events (at, actor, actor_role, action, campaign_id, target, details)
VALUES (coalesce($1::timestamptz, now()), $2, $3, $4, $5, $6, $7::jsonb)
RETURNING id

-- name: page
-- Keyset paging, newest first. $1 ids below this (NULL: from the newest), $2 page size,
-- $3 campaign id, $4 actor, $5 action, $6 at or after, $7 before (each NULL: any). A
-- campaign's history probes audit_events_campaign; the other filters walk the primary key
-- backwards (operator actions are few: thousands a year).
SELECT id, at, actor, actor_role, action, campaign_id, target, details
FROM audit_events
WHERE ($1::bigint IS NULL OR id < $1)
  AND ($3::bigint IS NULL OR campaign_id = $3)
  AND ($4::text IS NULL OR actor = $4)
  AND ($5::text IS NULL OR action = $5)
  AND ($6::timestamptz IS NULL OR at >= $6)
  AND ($7::timestamptz IS NULL OR at < $7)
ORDER BY id DESC
LIMIT $2
