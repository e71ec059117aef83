-- Survey runtime (R13); the only caller is campaigns/surveys.py. Answers never carry the
-- msisdn (R11): survey_answers is keyed by session.

-- name: supersede_open
-- A new survey reaching a number closes the number's open session of another survey, so
-- a reply always goes to the survey the subscriber saw last (one open per msisdn).
-- $1 msisdn, $2 campaign id of the new survey, $3 now.
UPDATE survey_sessions
SET state = 'closed', closed_at = $3
WHERE msisdn = $1 AND state = 'open'
  AND survey_id <> (SELECT id FROM surveys WHERE campaign_id = $2)
RETURNING id

-- name: open_session
-- Open the session when the first question was accepted by the SMSC. A repeat (same
-- survey and number) changes nothing and returns no row. The timeout comes from the
-- survey row (default 24 h). $1 campaign id, $2 delivery id, $3 msisdn, $4 now,
-- $5 language the first question went out in (NULL: the subscriber's known language).
INSERT INTO survey_sessions (survey_id, delivery_id, msisdn, opened_at, expires_at, language)
SELECT s.id, $2, $3, $4::timestamptz, $4::timestamptz + s.timeout,
       coalesce($5::language, (SELECT language FROM subscribers WHERE msisdn = $3))
FROM surveys s
WHERE s.campaign_id = $1
ON CONFLICT DO NOTHING
RETURNING id

-- name: lock_open_session
-- The number's open, unexpired session with its survey, locked against a concurrent reply.
-- Uses survey_sessions_one_open. $1 msisdn, $2 now.
SELECT ss.id, ss.survey_id, ss.question_no, ss.reprompted, ss.language::text,
       s.campaign_id, s.questions, s.thanks, s.timeout
FROM survey_sessions ss JOIN surveys s ON s.id = ss.survey_id
WHERE ss.msisdn = $1 AND ss.state = 'open' AND ss.expires_at > $2
FOR UPDATE OF ss

-- name: record_answer
-- $1 session id, $2 question number, $3 option number, $4 now.
INSERT INTO survey_answers (session_id, question_no, option_no, answered_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING

-- name: advance
-- Guarded: only from the question just answered. The timeout restarts with each question.
-- $1 session id, $2 question answered, $3 new expiry.
UPDATE survey_sessions
SET question_no = $2 + 1, reprompted = false, expires_at = $3
WHERE id = $1 AND state = 'open' AND question_no = $2
RETURNING id

-- name: mark_reprompted
-- $1 session id, $2 question number, $3 new expiry.
UPDATE survey_sessions
SET reprompted = true, expires_at = $3
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
