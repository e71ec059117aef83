-- Retention of personal data (R11); the only caller is dispatcher/program/retention.py,
-- run by the housekeeping service. Each statement handles one bounded batch, oldest first,
-- found through an index on its time column (migration 0018), so a pass stays short on a
-- table of millions of rows; the service runs again at once while a batch was full.

-- name: forget_mo
-- Subscribers' SMS received before the cutoff, deleted. A reply still waiting for its
-- survey session is left to unwait_stale (mo.sql); the cutoff is days old, far beyond the
-- one-hour resend horizon the sink looks back over (sink.py MO_RESEND_HORIZON).
-- Uses mo_messages_received. $1: cutoff, $2: batch size. → rows deleted.
WITH old AS (
    SELECT id FROM mo_messages
    WHERE received_at < $1 AND outcome IS DISTINCT FROM 'waiting'
    ORDER BY received_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM mo_messages m USING old WHERE m.id = old.id RETURNING 1
)
SELECT count(*) FROM gone

-- name: forget_sessions
-- Survey sessions closed before the cutoff lose their number ('' stands for erased: the
-- number is in the key, migration 0024) and delivery; the row stays, anonymous, so the
-- results still count sessions per state. Their answers were unlinked at the close (trigger
-- survey_sessions_closed). Uses survey_sessions_closed_at.
-- $1: cutoff, $2: batch size. → sessions erased.
WITH old AS (
    SELECT id FROM survey_sessions
    WHERE msisdn <> '' AND state <> 'open' AND closed_at < $1
    ORDER BY closed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), gone AS (
    UPDATE survey_sessions s SET msisdn = '', delivery_id = NULL
    FROM old WHERE s.id = old.id
    RETURNING 1
)
SELECT count(*) FROM gone
