-- USSD menu sessions: a gateway session that dialled *555# and may answer with a menu
-- choice. The only caller is UssdSessions (dispatcher/program/ussd.py). A session is keyed
-- by the gateway's session id and the number that opened it (migration 0024).

-- name: get_session
-- The latest session under the gateway's id: the key is (session_id, msisdn) (migration
-- 0024), so an id the gateway reused for another number has a row per number; the desk
-- ignores another number's. $1: session_id.
SELECT session_id, msisdn, menu, pages FROM ussd_sessions WHERE session_id = $1
ORDER BY updated_at DESC
LIMIT 1

-- name: put_session
-- Opens the session, or moves an open one to another menu, with the pages of the answer
-- still to show (R14: "0" shows the next).
-- $1: session_id, $2: msisdn, $3: menu, $4: now, $5: pages still to show.
INSERT INTO ussd_sessions (session_id, msisdn, menu, created_at, updated_at, pages)
VALUES ($1, $2, $3, $4, $4, $5)
ON CONFLICT (session_id, msisdn) DO UPDATE
SET menu = EXCLUDED.menu, updated_at = EXCLUDED.updated_at, pages = EXCLUDED.pages

-- name: end_session
-- $1: session_id.
DELETE FROM ussd_sessions WHERE session_id = $1

-- name: expire_sessions
-- Menu sessions the gateway abandoned. $1: cutoff (last touched before it). → rows deleted
-- (counted from RETURNING, not the command tag).
WITH gone AS (
    DELETE FROM ussd_sessions WHERE updated_at < $1 RETURNING 1
)
SELECT count(*) FROM gone
