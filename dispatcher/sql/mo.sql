-- Subscribers' SMS (MO) as the SMSC delivered them; the only caller is MoRepository
-- (dispatcher/program/mo.py). A message is recorded and applied in one transaction, before
-- deliver_sm_resp; whether that response was written is recorded after it. An identical MO
-- is the SMSC's resend only where the earlier copy was never acknowledged (the rule and its
-- reasoning: dispatcher/engine/sink.py, RELIABILITY.md), never by its content alone.

-- name: lock_sender
-- The sender's subscriber row, locked for the transaction: MO from one number are applied
-- one at a time, and a survey reply serialises with the opening of that number's session
-- (surveys.open_sessions takes the same lock), so a reply can never fall between "no session
-- yet" and "session opened". Taken first, before any mo_messages row, in every transaction
-- that takes both. An unknown number has no row and no survey in flight: nothing to lock.
-- $1: msisdn.
SELECT msisdn FROM subscribers WHERE msisdn = $1 FOR UPDATE

-- name: unacknowledged_copies
-- Earlier copies of a message not known to be acknowledged, oldest first. Plain read: a copy
-- taken over as a resend is changed by the guarded redelivered below. Uses
-- mo_messages_unacknowledged. $1: dedupe key, $2: oldest received_at considered.
SELECT id, node, resends, ack_lost_at
FROM mo_messages
WHERE dedupe_key = $1 AND received_at >= $2 AND acked_at IS NULL
ORDER BY id

-- name: insert_mo
-- An MO message as received, being answered by this node ($6); $7: when it was acknowledged
-- already (a caller with no SMPP response to wait for), else NULL. It names the campaign that
-- last reached the number (the inbox, issue 14, migration 0034): last_reach (migration 0040,
-- the rule shared with opt-out attribution), the latest campaign message to it the SMSC
-- accepted ($8 - $9 <= submitted_at <= $8, the span's boundary included) and has not
-- reported undelivered; one probe of deliveries_reached on the sender's own rows.
-- $1: smsc, $2: msisdn, $3: destination, $4: body, $5: dedupe key, $6: node, $7: acked_at,
-- $8: now, $9: the attribution span.
INSERT INTO mo_messages (smsc, msisdn, destination, body, dedupe_key, node, acked_at,
                         received_at, campaign_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, (
    SELECT r.campaign_id FROM last_reach($2, $8::timestamptz, $9::interval) r
))
RETURNING id, smsc, msisdn, destination, body, dedupe_key, received_at, campaign_id

-- name: redelivered
-- The SMSC delivered this unacknowledged message again and this node ($2) answers it now.
-- Guarded on the generation read ($3): a concurrent answer or take-over wins, this returns
-- nothing and the caller asks the SMSC to deliver again later. $4: acked_at as in insert_mo.
-- $1: id, $2: node, $3: resends as read, $4: acked_at or NULL.
UPDATE mo_messages
SET node = $2, ack_lost_at = NULL, acked_at = $4, resends = resends + 1
WHERE id = $1 AND resends = $3 AND acked_at IS NULL
RETURNING resends

-- name: answered
-- What became of deliver_sm_resp, a batch: acknowledged ($4 true) or lost ($4 false).
-- Guarded on the generation: the answer to an earlier delivery never overwrites a later one.
-- $1: ids, $2: generations (resends), $3: now, $4: acknowledged flags.
UPDATE mo_messages m
SET acked_at = CASE WHEN u.ok THEN $3::timestamptz END,
    ack_lost_at = CASE WHEN u.ok THEN NULL ELSE $3::timestamptz END
FROM unnest($1::bigint[], $2::int[], $4::bool[]) AS u(id, generation, ok)
WHERE m.id = u.id AND m.resends = u.generation AND m.acked_at IS NULL

-- name: mo_handled
-- A survey answer keeps no text (R11): the answer is in survey_answers, which forgets its
-- session, and so the number, when the session closes.
-- $1: id, $2: outcome, $3: now.
UPDATE mo_messages
SET outcome = $2, handled_at = $3, body = CASE WHEN $2 = 'survey_answer' THEN '' ELSE body END
WHERE id = $1

-- name: waiting_replies
-- Replies that arrived while these numbers' survey question was in flight, oldest first,
-- locked: the transaction opening the sessions applies them. Callers hold the numbers'
-- subscriber rows (lock_sender's lock) first. Uses mo_messages_waiting. $1: msisdns.
SELECT id, msisdn, body FROM mo_messages
WHERE msisdn = ANY($1::text[]) AND outcome = 'waiting'
ORDER BY id
FOR UPDATE

-- name: unwait_stale
-- Waiting replies whose question is no longer in flight and opened no session (it failed,
-- went back to the queue or became unknown) are ignored: the subscriber cannot have answered
-- a question that did not reach them. A question that did reach them opened its session and
-- applied its waiting replies in the same commit, so none of those is left here.
-- $1: now.
UPDATE mo_messages m SET outcome = 'ignored', handled_at = $1
WHERE m.outcome = 'waiting'
  AND NOT EXISTS (
      SELECT 1 FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id
      WHERE d.msisdn = m.msisdn AND d.state = 'in_flight' AND c.kind = 'survey')
RETURNING m.id
