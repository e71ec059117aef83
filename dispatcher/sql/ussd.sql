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

-- name: get_context
-- What a USSD request needs to know before it acts, in one round trip (issue 16): the
-- session (NULL columns when none is open), the number's language, status and whether it
-- is a member now (NULL/false for a number not known yet). The session is this number's
-- only (the key is (session_id, msisdn), migration 0024): an id the gateway reused for
-- another number opens nothing here, and under Citus the read stays on one shard.
-- $1: session_id, $2: msisdn.
SELECT s.session_id, s.msisdn, s.menu, s.pages,
       sub.language, sub.status,
       EXISTS (SELECT 1 FROM memberships m WHERE m.msisdn = $2 AND m.left_at IS NULL) AS member
FROM (SELECT 1) AS one
LEFT JOIN ussd_sessions s ON s.session_id = $1 AND s.msisdn = $2
LEFT JOIN subscribers sub ON sub.msisdn = $2

-- name: put_session
-- Opens the session, or moves an open one to another menu, with the pages of the answer
-- still to show (R14: "0" shows the next).
-- $1: session_id, $2: msisdn, $3: menu, $4: now, $5: pages still to show.
INSERT INTO ussd_sessions (session_id, msisdn, menu, created_at, updated_at, pages)
VALUES ($1, $2, $3, $4, $4, $5)
ON CONFLICT (session_id, msisdn) DO UPDATE
SET menu = EXCLUDED.menu, updated_at = EXCLUDED.updated_at, pages = EXCLUDED.pages

-- name: open_menu
-- A menu dialled by its code (*555#) in one round trip (issue 16): a code means the same in
-- any session, so nothing is read first. Opens the session on the menu (or moves it there)
-- with the pages still to show in the number's language (R14): $5 in kk, $6 in ru, $7 in en,
-- $8 in the default language (a number without one, or not known yet); returns the
-- number's language (NULL: none), the one the caller shows the first page in.
-- $1: session_id, $2: msisdn, $3: menu, $4: now.
WITH sub AS (
    SELECT language FROM subscribers WHERE msisdn = $2
), opened AS (
    INSERT INTO ussd_sessions (session_id, msisdn, menu, created_at, updated_at, pages)
    SELECT $1, $2, $3, $4, $4,
           CASE (SELECT language FROM sub)
               WHEN 'kk' THEN $5::text[]
               WHEN 'ru' THEN $6::text[]
               WHEN 'en' THEN $7::text[]
               ELSE $8::text[]
           END
    ON CONFLICT (session_id, msisdn) DO UPDATE
    SET menu = EXCLUDED.menu, updated_at = EXCLUDED.updated_at, pages = EXCLUDED.pages
)
SELECT (SELECT language FROM sub) AS language

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
