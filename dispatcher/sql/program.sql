-- The SMART program: subscribers, memberships, consent ledger, 1204, life cycle.
-- Every change for one number starts with lock_subscriber, so changes to one number are
-- serialised and the dispatcher (which takes FOR SHARE on the same row before it marks a
-- message in flight) can never send after a leave or 1204 has committed.

-- name: ensure_subscriber
-- A number first seen through USSD or an event is an active subscriber of the operator.
-- $1: msisdn, $2: language or NULL.
INSERT INTO subscribers (msisdn, language) VALUES ($1, $2)
ON CONFLICT (msisdn) DO NOTHING

-- name: lock_subscriber
-- $1: msisdn.
SELECT msisdn, status, language, language_chosen_at, tariff, owner_since, owner_epoch
FROM subscribers WHERE msisdn = $1
FOR UPDATE

-- name: get_subscriber
-- $1: msisdn.
SELECT msisdn, status, language, language_chosen_at, tariff, owner_since, owner_epoch
FROM subscribers WHERE msisdn = $1

-- name: open_membership
-- $1: msisdn.
SELECT id, joined_at FROM memberships WHERE msisdn = $1 AND left_at IS NULL

-- name: insert_membership
-- $1: msisdn, $2: joined_at, $3: channel.
INSERT INTO memberships (msisdn, joined_at, join_channel) VALUES ($1, $2, $3)
RETURNING id

-- name: close_membership
-- Guarded: only an open period is closed. $1: msisdn, $2: left_at, $3: channel, $4: reason.
UPDATE memberships SET left_at = $2, leave_channel = $3, leave_reason = $4
WHERE msisdn = $1 AND left_at IS NULL
RETURNING id

-- name: append_consent
-- $1: msisdn, $2: consent_event, $3: scopes, $4: channel, $5: evidence (jsonb), $6: occurred_at.
INSERT INTO consent_ledger (msisdn, event, scopes, channel, evidence, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6)

-- name: insert_dnc
-- R9: the number's 1204 block, from $2 on. A block already there is moved to this 1204 (a
-- member who joined after the first one dials it again: eligibility compares the two times).
-- $1: msisdn, $2: blocked_at, $3: channel, $4: evidence.
INSERT INTO dnc_blocks (msisdn, blocked_at, channel, evidence) VALUES ($1, $2, $3, $4)
ON CONFLICT (msisdn) DO UPDATE
SET blocked_at = excluded.blocked_at, channel = excluded.channel, evidence = excluded.evidence
RETURNING msisdn

-- name: dnc_since
-- $1: msisdn. The time of the number's 1204 block, or no row.
SELECT blocked_at FROM dnc_blocks WHERE msisdn = $1

-- name: delete_dnc
-- Only recycling removes a 1204 block (the next owner never dialled it); a SMART join keeps
-- it (migration 0014: it is lifted for SMART partner messages alone). $1: msisdn.
DELETE FROM dnc_blocks WHERE msisdn = $1 RETURNING msisdn

-- name: suppress_deliveries
-- Queued and claimed campaign messages to the number become suppressed in the leave's own
-- transaction (R2, R9). A claimed row the dispatcher already holds fails its guarded
-- claimed → in_flight update, so it is never written to the SMSC.
-- $1: msisdn, $2: reason, $3: now, $4: campaign scopes concerned.
UPDATE deliveries d
SET state = 'suppressed', suppressed = $2, finished_at = $3
FROM campaigns c
WHERE d.msisdn = $1
  AND d.state IN ('queued', 'claimed')
  AND c.id = d.campaign_id
  AND c.scope = ANY($4::campaign_scope[])

-- name: suppress_service_messages
-- Queued program messages that no longer apply (bonus notices, survey questions).
-- $1: msisdn, $2: reason, $3: now, $4: kinds concerned.
UPDATE service_messages
SET state = 'suppressed', suppressed = $2, finished_at = $3
WHERE msisdn = $1 AND state IN ('queued', 'claimed') AND kind = ANY($4::service_kind[])

-- name: close_open_surveys
-- $1: msisdn, $2: now.
UPDATE survey_sessions SET state = 'closed', closed_at = $2
WHERE msisdn = $1 AND state = 'open'

-- name: set_status
-- Guarded: returns a row only when the status changes. $1: msisdn, $2: status, $3: now.
UPDATE subscribers SET status = $2, status_changed_at = $3, updated_at = $3
WHERE msisdn = $1 AND status <> $2
RETURNING msisdn

-- name: start_new_owner
-- R12: the number belongs to someone new from $2 on; their language and tariff are unknown,
-- and the next owner epoch keys their grants and month counters (migration 0014), so they
-- start with nothing used and receive the joining present.
-- $1: msisdn, $2: now.
UPDATE subscribers
SET owner_since = $2, owner_epoch = owner_epoch + 1, language = NULL, language_chosen_at = NULL,
    tariff = NULL,
    updated_at = $2
WHERE msisdn = $1

-- name: choose_language
-- R14: the subscriber chose their language in the *555# menu (created active if unknown).
-- $1: msisdn, $2: language, $3: now.
INSERT INTO subscribers AS s (msisdn, language, language_chosen_at, created_at, updated_at)
VALUES ($1, $2, $3, $3, $3)
ON CONFLICT (msisdn) DO UPDATE SET language = $2, language_chosen_at = $3, updated_at = $3

-- name: hint_language
-- R14: the USSD gateway's language hint fills a language we do not know (a number first
-- seen, or a new owner); it never replaces one we know, chosen or imported.
-- $1: msisdn, $2: language, $3: now.
INSERT INTO subscribers AS s (msisdn, language, created_at, updated_at)
VALUES ($1, $2, $3, $3)
ON CONFLICT (msisdn) DO UPDATE SET language = $2, updated_at = $3
WHERE s.language IS NULL

-- name: set_tariff
-- $1: msisdn, $2: tariff, $3: now.
UPDATE subscribers SET tariff = $2, updated_at = $3 WHERE msisdn = $1

-- name: record_event
-- Operator events are recorded once: a repeated event_id (of the number's own: the key is
-- per number since migration 0024) returns no row. A recorded event queues, in the same
-- statement, the message of every running triggered campaign of its type whose condition
-- its payload meets (trigger_matches, migration 0041), once per number and campaign (the
-- deliveries_one_per_recipient key: a later matching event of the number queues nothing),
-- stale after the event's time + the campaign's max delay, in the arm audience_arm gives
-- the number (migration 0039: a holdout number is recorded final, suppressed 'holdout',
-- never sent, and not counted as queued); the claim applies caps,
-- membership, 1204 and the window as to any delivery. The campaigns are few, found by the
-- campaigns_triggered index; FOR SHARE: a cancel or expiry that is committing finishes
-- first and the campaign, no longer running, is skipped (no queued row is left behind in a
-- campaign that ended), and one that starts waits for this transaction (its sweep finds the
-- row). A number first seen here becomes an active subscriber (ensure_subscriber's rule),
-- so a top-up, which changes nothing of the subscriber and takes no lock, is this one
-- statement: one round trip, its own transaction (bench/events.py).
-- → the event's id (NULL: a repeat) and how many messages it queued.
-- $1: msisdn, $2: event type, $3: event_id or NULL, $4: payload (jsonb), $5: occurred_at,
-- $6: now.
WITH ensured AS (
    INSERT INTO subscribers (msisdn) VALUES ($1)
    ON CONFLICT (msisdn) DO NOTHING
), recorded AS (
    INSERT INTO subscriber_events (msisdn, event_type, event_id, payload, occurred_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (event_id, msisdn) WHERE event_id IS NOT NULL DO NOTHING
    RETURNING id
), matched AS (
    SELECT c.id, c.trigger_max_delay,
           audience_arm(c.id, $1, c.holdout_percent, arm_bounds(c.variants)) AS arm
    FROM campaigns c
    WHERE c.state = 'running' AND c.trigger_event = $2
      AND (c.end_at IS NULL OR c.end_at > $6)
      AND trigger_matches(c.trigger_condition, $4::jsonb)
      AND EXISTS (SELECT 1 FROM recorded)
    FOR SHARE OF c
), queued AS (
    INSERT INTO deliveries (campaign_id, msisdn, stale_after, variant, state, suppressed,
                            finished_at)
    SELECT m.id, $1, $5::timestamptz + m.trigger_max_delay, m.arm,
           CASE WHEN m.arm IS NULL THEN 'suppressed' ELSE 'queued' END::delivery_state,
           CASE WHEN m.arm IS NULL THEN 'holdout'::suppression_reason END,
           CASE WHEN m.arm IS NULL THEN $6::timestamptz END
    FROM matched m
    ON CONFLICT ON CONSTRAINT deliveries_one_per_recipient DO NOTHING
    RETURNING variant
)
SELECT (SELECT id FROM recorded) AS id,
       (SELECT count(*) FROM queued WHERE variant IS NOT NULL) AS queued

-- name: memberships_of
-- $1: msisdn, $2: owner_since or NULL (earlier periods belong to a previous owner).
SELECT id, joined_at, join_channel, left_at, leave_channel, leave_reason
FROM memberships WHERE msisdn = $1 AND joined_at >= coalesce($2::timestamptz, '-infinity')
ORDER BY joined_at

-- name: dnc_of
-- $1: msisdn.
SELECT blocked_at, channel FROM dnc_blocks WHERE msisdn = $1

-- name: counters_of
-- The month's counters of the number's current owner. $1: msisdn, $2: month.
SELECT cc.info_count, cc.survey_count, cc.info_cap, cc.survey_cap
FROM contact_counters cc
JOIN subscribers s ON s.msisdn = cc.msisdn AND s.owner_epoch = cc.owner_epoch
WHERE cc.msisdn = $1 AND cc.month = $2

-- name: grants_of
-- The grants of the number's current owner. $1: msisdn.
SELECT g.id, g.msisdn, g.month, g.units, g.state, g.granted_at, g.deadline_at, g.activated_at,
       g.activated_month, g.expires_at, g.closed_at
FROM bonus_grants g
JOIN subscribers s ON s.msisdn = g.msisdn AND s.owner_epoch = g.owner_epoch
WHERE g.msisdn = $1
ORDER BY g.month

-- name: consent_of
-- $1: msisdn, $2: owner_since (the recycle event itself is shown).
SELECT event, scopes, channel, evidence, occurred_at
FROM consent_ledger WHERE msisdn = $1 AND occurred_at >= coalesce($2::timestamptz, '-infinity')
ORDER BY occurred_at, id
