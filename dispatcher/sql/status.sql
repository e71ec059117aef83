-- What a campaign is waiting for (issue 14): the SMSC binds of the live engines and the
-- program messages the engine claims before any campaign. The only caller is
-- dispatcher/engine/status.py.

-- name: record_bind
-- An engine's bind changed (or it started): its row, and the rows of engines whose node
-- lock is free (dead) go. $1: node, $2: smsc, $3: bound, $4: now.
WITH gone AS (
    DELETE FROM smsc_binds b
    WHERE b.node <> $1
      AND NOT node_alive(b.node)
)
INSERT INTO smsc_binds AS b (node, smsc, bound, changed_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (node) DO UPDATE SET smsc = EXCLUDED.smsc, bound = EXCLUDED.bound,
                                 changed_at = EXCLUDED.changed_at

-- name: forget_bind
-- A clean stop. $1: node.
DELETE FROM smsc_binds WHERE node = $1

-- name: binds
-- The live engines (their node lock held: node_alive, migration 0037) and how many
-- of them are bound.
SELECT count(*) AS live, count(*) FILTER (WHERE b.bound) AS bound
FROM smsc_binds b
WHERE node_alive(b.node)

-- name: service_ahead
-- Program service messages the engine claims before any campaign's, counted up to $3 each:
-- those queued and due, by claim_service_batch's filter (service_messages_queued; bound to
-- the window only while it is open, $2), and the monthly grant's notices not yet queued,
-- which claim_service queues from the grant rows as it goes (queue_bonus_notices' filter,
-- through the bonus_grants primary key between the month's cursor and its last id).
-- $1: now, $2: window open, $3: count limit (of each).
SELECT (
    SELECT count(*) FROM (
        SELECT 1 FROM service_messages sm
        WHERE sm.state = 'queued'
          AND (sm.not_before IS NULL OR sm.not_before <= $1)
          AND ($2::boolean OR NOT sm.in_window)
        LIMIT $3
    ) queued
) + (
    SELECT count(*) FROM (
        SELECT 1
        FROM job_runs j
        JOIN bonus_grants g ON g.id > j.notices_cursor AND g.id <= j.notices_upto
        WHERE j.job = 'bonus_grant_month'
          AND j.finished_at IS NOT NULL
          AND j.notices_cursor < j.notices_upto
          AND ($2::boolean OR NOT (j.notice_texts ->> 'in_window')::boolean)
          AND g.month_notice AND g.state IN ('pending', 'active')
        LIMIT $3
    ) notices
) AS ahead
