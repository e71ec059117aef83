-- Survey runtime (R13); the only caller is dispatcher/program/surveys.py. Answers never
-- carry the msisdn (R11): survey_answers is keyed by session.

-- name: lock_numbers
-- The numbers' subscriber rows, locked in one order (byte order) for the rest of the
-- transaction opening their sessions: the same lock an MO takes first (mo.sql lock_sender),
-- so a reply is either applied after this commit (it finds the session open) or committed
-- as waiting before this reads the waiting replies. Survey recipients are subscribers (the
-- eligibility rule refuses a survey to an unknown number), so every row exists.
-- $1: msisdns.
SELECT msisdn FROM subscribers
WHERE msisdn = ANY($1::text[])
ORDER BY msisdn
FOR UPDATE

-- name: question_in_flight
-- Whether a survey's first question is being written to this number now (marked in flight,
-- its submit_sm_resp not yet recorded): a reply may be its answer, arriving before the
-- recording transaction opened the session. Read under the number's lock (lock_sender).
-- Uses deliveries_in_flight. $1: msisdn.
SELECT EXISTS (
    SELECT 1 FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
    WHERE d.msisdn = $1 AND d.state = 'in_flight' AND c.kind = 'survey'
)

-- name: supersede_open
-- A new survey reaching a number closes the number's open session of another survey, so
-- a reply always goes to the survey the subscriber saw last (one open per msisdn).
-- Batched: $1 campaign ids, $2 msisdns (parallel arrays), $3 now.
UPDATE survey_sessions ss
SET state = 'closed', closed_at = $3
FROM unnest($1::bigint[], $2::text[]) AS n(campaign_id, msisdn)
JOIN surveys s ON s.campaign_id = n.campaign_id
WHERE ss.msisdn = n.msisdn AND ss.state = 'open' AND ss.survey_id <> s.id

-- name: open_sessions
-- Open sessions when first questions were accepted by the SMSC, one statement per batch.
-- A repeat (same survey and number), or a second survey for one number in the same batch,
-- changes nothing. The timeout comes from the survey row (default 24 h).
-- $1 campaign ids, $2 delivery ids, $3 msisdns, $4 languages the first question went out
-- in (NULL: the subscriber's known language) — parallel arrays; $5 now.
INSERT INTO survey_sessions (survey_id, delivery_id, msisdn, opened_at, expires_at, language)
SELECT s.id, n.delivery_id, n.msisdn, $5::timestamptz, $5::timestamptz + s.timeout,
       coalesce(n.language, sub.language)
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::language[])
     AS n(campaign_id, delivery_id, msisdn, language)
JOIN surveys s ON s.campaign_id = n.campaign_id
LEFT JOIN subscribers sub ON sub.msisdn = n.msisdn
ON CONFLICT DO NOTHING
RETURNING id

-- name: lock_open_session
-- The number's open, unexpired session with its survey, locked against a concurrent reply.
-- A session whose next question waits to be sent has no expiry yet (NULL). Uses
-- survey_sessions_one_open. $1 msisdn, $2 now.
SELECT ss.id, ss.survey_id, ss.question_no, ss.reprompted, ss.language::text,
       s.campaign_id, s.questions, s.thanks, s.timeout
FROM survey_sessions ss JOIN surveys s ON s.id = ss.survey_id
WHERE ss.msisdn = $1 AND ss.state = 'open' AND (ss.expires_at IS NULL OR ss.expires_at > $2)
FOR UPDATE OF ss

-- name: record_answer
-- $1 session id, $2 question number, $3 option number, $4 now.
INSERT INTO survey_answers (session_id, question_no, option_no, answered_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING

-- name: advance
-- Guarded: only from the question just answered. The timeout restarts with each question,
-- from when it is SENT (R13): until then the session has no expiry (NULL), and the
-- service_messages_survey_question_sent trigger (migration 0015) sets it when the question's
-- message is submitted, so a question held overnight for the window still gets it all.
-- $1 session id, $2 question answered.
UPDATE survey_sessions
SET question_no = $2 + 1, reprompted = false, expires_at = NULL
WHERE id = $1 AND state = 'open' AND question_no = $2
RETURNING id

-- name: mark_reprompted
-- The re-prompt is a question sent again: its timeout runs from its submit, like advance's.
-- $1 session id, $2 question number.
UPDATE survey_sessions
SET reprompted = true, expires_at = NULL
WHERE id = $1 AND state = 'open' AND question_no = $2 AND NOT reprompted
RETURNING id

-- name: close_session
-- $1 session id, $2 final state (completed | closed), $3 now.
UPDATE survey_sessions
SET state = $2::survey_session_state, closed_at = $3
WHERE id = $1 AND state = 'open'
RETURNING id

-- name: timeout_sweep
-- Open sessions past their expiry → timed_out. Uses survey_sessions_expiry. $1 now.
UPDATE survey_sessions
SET state = 'timed_out', closed_at = $1
WHERE state = 'open' AND expires_at <= $1
RETURNING id
