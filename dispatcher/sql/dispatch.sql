-- The dispatch engine: claim, eligibility and caps, in-flight marking, outcomes, receipts,
-- recovery. Every statement handles a whole batch in one round trip.

-- name: running_campaigns
-- Campaigns to claim from, highest priority first.
SELECT id, kind, scope, texts, apply_caps
FROM campaigns WHERE state = 'running'
ORDER BY priority DESC, id

-- name: claim_campaign_batch
-- Claims up to $2 queued deliveries of one running campaign, decides each one's eligibility
-- (campaign end, then suppression_for: R1, R2, R9, R12) and reserves its monthly cap slot
-- (take_cap_slots: R7, invariant 1), all in one statement. Both functions live in migration
-- 0008_eligibility.sql, the one home of each rule; suppression_for is inlined by the planner.
-- A row that already holds a slot (cap_month set: a retry) does not take a second one.
-- $1: campaign id, $2: batch size, $3: now, $4: this node's id, $5: the Astana month,
-- $6: info cap, $7: survey cap.
WITH c AS (
    SELECT id, kind, scope, apply_caps, end_at
    FROM campaigns WHERE id = $1 AND state = 'running'
), batch AS (
    SELECT d.id, d.msisdn, d.cap_month
    FROM deliveries d, c
    WHERE d.campaign_id = c.id AND d.state = 'queued'
      AND (d.not_before IS NULL OR d.not_before <= $3)
    ORDER BY d.id
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
), verdict AS (
    SELECT b.id, b.msisdn, b.cap_month, f.language,
           CASE
               WHEN c.end_at IS NOT NULL AND c.end_at <= $3 THEN 'outside_campaign_window'
               ELSE suppression_for(f.status, f.dnc_since, f.member_since, c.scope,
                                    c.kind::text::traffic_kind)
           END AS reason
    FROM batch b
    CROSS JOIN c
    LEFT JOIN subscriber_facts f ON f.msisdn = b.msisdn
), reserved AS (
    -- One call for the batch; a campaign without caps takes none (the c row is filtered out
    -- before the function, which depends on it, runs).
    SELECT t.msisdn
    FROM c
    CROSS JOIN LATERAL take_cap_slots(
        ARRAY(SELECT v.msisdn FROM verdict v WHERE v.reason IS NULL AND v.cap_month IS NULL),
        $5::date, c.kind, $6::int, $7::int
    ) AS t
    WHERE c.apply_caps
), decided AS (
    SELECT v.id, v.language,
           CASE
               WHEN v.reason IS NOT NULL THEN v.reason
               WHEN c.apply_caps AND v.cap_month IS NULL AND r.msisdn IS NULL THEN
                   CASE c.kind WHEN 'info' THEN 'cap_info' ELSE 'cap_survey' END
                       ::suppression_reason
           END AS reason,
           CASE WHEN r.msisdn IS NOT NULL THEN $5::date ELSE v.cap_month END AS cap_month
    FROM verdict v
    CROSS JOIN c
    LEFT JOIN reserved r ON r.msisdn = v.msisdn
)
UPDATE deliveries d
SET state = CASE WHEN x.reason IS NULL THEN 'claimed' ELSE 'suppressed' END::delivery_state,
    suppressed = x.reason,
    cap_month = x.cap_month,
    claimed_by = $4,
    claimed_at = $3,
    finished_at = CASE WHEN x.reason IS NULL THEN NULL ELSE $3 END
FROM decided x
WHERE d.id = x.id
RETURNING d.id, d.msisdn, d.state, d.variables, x.language

-- name: claim_service_batch
-- Claims up to $2 queued program service messages; those bound to the send window only
-- when it is open ($4). Nothing goes to a fully blocked or recycled number (R12), whatever
-- 1204 or membership say (suppression_for, kind 'service').
-- $1: now, $2: batch size, $3: this node's id, $4: whether the send window is open.
WITH batch AS (
    SELECT sm.id, sm.msisdn
    FROM service_messages sm
    WHERE sm.state = 'queued'
      AND (sm.not_before IS NULL OR sm.not_before <= $1)
      AND ($4::boolean OR NOT sm.in_window)
    ORDER BY sm.id
    LIMIT $2
    FOR UPDATE OF sm SKIP LOCKED
), decided AS (
    -- A service message depends on the status alone (R12), so the other facts are not
    -- looked up (an UPDATE … FROM keeps every table it joins, used or not: EvalPlanQual
    -- needs their rows).
    SELECT b.id, suppression_for(s.status, NULL, NULL, NULL, 'service') AS reason
    FROM batch b LEFT JOIN subscribers s ON s.msisdn = b.msisdn
)
UPDATE service_messages sm
SET state = CASE WHEN x.reason IS NULL THEN 'claimed' ELSE 'suppressed' END::delivery_state,
    suppressed = x.reason,
    claimed_by = $3,
    claimed_at = $1,
    finished_at = CASE WHEN x.reason IS NULL THEN NULL ELSE $1 END
FROM decided x
WHERE sm.id = x.id
RETURNING sm.id, sm.msisdn, sm.state, sm.body, sm.in_window, sm.campaign_id, sm.language

-- name: lock_subscribers_shared
-- Waits for any leave / 1204 in progress on these numbers (they hold FOR UPDATE) and keeps
-- new ones waiting until this transaction ends. Sorted to lock in one order everywhere.
-- $1: msisdns.
SELECT msisdn FROM subscribers
WHERE msisdn = ANY($1::text[])
ORDER BY msisdn
FOR SHARE

-- name: hold_stopped_campaigns
-- What marking a campaign delivery adds to mark_in_flight, run just before it in the same
-- transaction: a claimed row whose campaign stopped running since the claim is not sent.
-- Back to the queue when paused (it keeps its cap slot for the resume), suppressed when
-- cancelled or expired (the deliveries_release_cap trigger gives the slot back). The
-- guarded mark then finds it no longer claimed.
-- $1: delivery ids, $2: this node's id, $3: now.
UPDATE deliveries d
SET state = CASE WHEN c.state IN ('scheduled', 'paused') THEN 'queued'
                 ELSE 'suppressed' END::delivery_state,
    suppressed = CASE
        WHEN c.state IN ('scheduled', 'paused') THEN NULL
        WHEN c.state = 'expired' THEN 'outside_campaign_window'
        ELSE 'cancelled' END::suppression_reason,
    claimed_by = NULL,
    finished_at = CASE WHEN c.state IN ('scheduled', 'paused') THEN NULL ELSE $3::timestamptz END
FROM campaigns c
WHERE d.id = ANY($1::bigint[]) AND d.state = 'claimed' AND d.claimed_by = $2
  AND c.id = d.campaign_id AND c.state <> 'running'

-- name: mark_in_flight
-- for: deliveries, service_messages
-- Guarded: a row suppressed since its claim (a leave, a 1204) or held back is not marked,
-- so it is never written to the SMSC. Runs under lock_subscribers_shared.
-- $1: ids, $2: this node's id.
UPDATE {table} SET state = 'in_flight'
WHERE id = ANY($1::bigint[]) AND state = 'claimed' AND claimed_by = $2
RETURNING id

-- name: unclaim
-- for: deliveries, service_messages
-- Claimed rows this node will not send now (window closed, bind lost) go back to the
-- queue; a campaign delivery keeps its cap slot. $1: ids, $2: this node's id.
UPDATE {table} SET state = 'queued', claimed_by = NULL, claimed_at = NULL
WHERE id = ANY($1::bigint[]) AND state = 'claimed' AND claimed_by = $2

-- name: record_outcomes
-- for: deliveries, service_messages
-- Applies a batch of submit outcomes; guarded on in_flight so a repeat changes nothing.
-- A language left NULL (a service message queued without one) keeps the row's.
-- $1: ids, $2: new states, $3: last command_status, $4: parts accepted, $5: error text,
-- $6: not_before (retries), $7: language sent in, $8: now.
UPDATE {table} m
SET state = u.state::delivery_state,
    last_status = u.status,
    parts = u.parts,
    error = u.error,
    not_before = u.not_before,
    attempts = m.attempts + 1,
    claimed_by = CASE WHEN u.state = 'queued' THEN NULL ELSE m.claimed_by END,
    submitted_at = CASE WHEN u.state = 'submitted' THEN $8 ELSE m.submitted_at END,
    finished_at = CASE WHEN delivery_state_final(u.state::delivery_state) THEN $8 END,
    language = coalesce(u.language::language, m.language)
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::smallint[], $5::text[],
            $6::timestamptz[], $7::text[])
     AS u(id, state, status, parts, error, not_before, language)
WHERE m.id = u.id AND m.state = 'in_flight'
RETURNING m.id

-- name: insert_submits
-- One row per accepted part: what receipts are matched against.
-- $1: smsc, $2: message ids, $3: delivery ids (NULL for service), $4: service ids (NULL for
-- deliveries), $5: msisdns, $6: part numbers, $7: part totals, $8: now.
INSERT INTO submits (smsc, message_id, delivery_id, service_message_id, msisdn, part_no, parts,
                     submitted_at)
SELECT $1, u.message_id, u.delivery_id, u.service_id, u.msisdn, u.part_no, u.parts, $8
FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::smallint[], $7::smallint[])
     AS u(message_id, delivery_id, service_id, msisdn, part_no, parts)
ON CONFLICT (smsc, message_id) DO NOTHING

-- name: insert_receipts
-- Receipts as received, committed before deliver_sm_resp (invariant 4); a repeat of the same
-- (smsc, message id, state) is recognised by the unique key and ignored.
-- $1: smsc, $2: message ids, $3: states, $4: error codes, $5: done times, $6: now.
INSERT INTO receipts (smsc, message_id, state, error_code, done_at, received_at)
SELECT $1, u.message_id, u.state::receipt_state, u.error_code, u.done_at, $6
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[])
     AS u(message_id, state, error_code, done_at)
ON CONFLICT ON CONSTRAINT receipts_once DO NOTHING

-- name: plan_each_batch
-- The receipt applier's statements join a batch of thousands to receipts and submits, tables
-- that grow from empty on a fresh database. A cached generic plan made while they were
-- small (nested loops over sequential scans) stays in use as they grow: 20 s instead of
-- 0.2 s for a batch of 5,000 in `python -m bench dispatch`. Planning each batch afresh costs
-- a millisecond. Scoped to the applier's transaction.
SET LOCAL plan_cache_mode = force_custom_plan

-- name: apply_receipts
-- The receipt applier's first step: applies up to $1 unapplied receipts whose submit is
-- known to their parts, and returns, per message whose parts changed, what those parts
-- say (finish_messages applies it in the same transaction). Unmatched receipts (receipt
-- before submit_sm_resp) are looked at again after $3, and given up after $4.
-- A part counts once: the submit's receipt is set only from NULL or an intermediate state.
-- Whether a receipt's submit is known is a column of the batch (EXISTS on the unique
-- index), not a join between two CTEs: the planner cannot size CTEs, and a nested loop over
-- two batches of 5,000 took 20 s.
-- One row per message (tbl, id, ...), or a single row with tbl NULL when none changed; the
-- counts are on every row.
-- $1: batch size, $2: now, $3: next check time for unmatched, $4: give-up cutoff.
WITH r AS (
    SELECT id, smsc, message_id, state, received_at
    FROM receipts
    WHERE applied_at IS NULL AND (check_after IS NULL OR check_after <= $2::timestamptz)
    ORDER BY check_after NULLS FIRST, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), checked AS (
    SELECT r.id,
           EXISTS (SELECT FROM submits s WHERE s.smsc = r.smsc AND s.message_id = r.message_id)
               AS known
    FROM r
), parts AS (
    UPDATE submits s SET receipt = r.state, receipt_at = r.received_at
    FROM r
    WHERE s.smsc = r.smsc AND s.message_id = r.message_id
      AND (s.receipt IS NULL OR s.receipt IN ('accepted', 'enroute'))
      AND r.state NOT IN ('accepted', 'enroute')
    RETURNING s.delivery_id, s.service_message_id, s.parts, r.state
), marked AS (
    UPDATE receipts x
    SET applied_at = CASE WHEN c.known OR x.received_at < $4 THEN $2::timestamptz END,
        matched = c.known,
        check_after = CASE WHEN NOT c.known THEN $3::timestamptz END
    FROM checked c
    WHERE x.id = c.id
), per_message AS (
    SELECT CASE WHEN delivery_id IS NOT NULL THEN 'deliveries' ELSE 'service_messages' END
               AS tbl,
           coalesce(delivery_id, service_message_id) AS id,
           (count(*) FILTER (WHERE state = 'delivered'))::int AS delivered,
           max(parts)::int AS parts,
           bool_or(state = 'expired') AS expired,
           bool_or(state NOT IN ('delivered', 'expired')) AS failed
    FROM parts
    GROUP BY 1, 2
), counts AS (
    SELECT count(*) AS seen, count(*) FILTER (WHERE known) AS matched FROM checked
)
SELECT c.seen, c.matched, p.tbl, p.id, p.delivered, p.parts, p.expired, p.failed
FROM counts c LEFT JOIN per_message p ON true
ORDER BY p.tbl, p.id

-- name: finish_messages
-- for: deliveries, service_messages
-- The receipt applier's per-message step (invariant 7): a message is delivered once every
-- part is, undelivered or expired as soon as one part is; finished_at is set exactly when
-- the state becomes final (the finished_when_final CHECK). The expressions read the row
-- itself (m.parts_done, not a copy), so a concurrent applier's parts are added, not lost.
-- Guarded on submitted: a late receipt of a finished message changes nothing.
-- $1: ids, $2: parts delivered by these receipts, $3: the message's part total (submits),
-- $4: a part expired, $5: a part failed, $6: now.
UPDATE {table} m
SET parts_done = m.parts_done + p.delivered,
    state = CASE
        WHEN p.failed THEN 'undelivered'
        WHEN p.expired THEN 'expired'
        WHEN m.parts_done + p.delivered >= coalesce(m.parts, p.parts) THEN 'delivered'
        ELSE m.state
    END::delivery_state,
    finished_at = CASE
        WHEN p.failed OR p.expired OR m.parts_done + p.delivered >= coalesce(m.parts, p.parts)
        THEN $6::timestamptz END
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::boolean[], $5::boolean[])
     AS p(id, delivered, parts, expired, failed)
WHERE m.id = p.id AND m.state = 'submitted'
RETURNING m.id

-- name: claimers
-- Nodes holding claimed or in-flight rows (recovery checks which of them are gone).
SELECT claimed_by FROM deliveries WHERE state IN ('claimed', 'in_flight') AND claimed_by IS NOT NULL
UNION
SELECT claimed_by FROM service_messages
WHERE state IN ('claimed', 'in_flight') AND claimed_by IS NOT NULL

-- name: node_lock
-- A live node holds this session lock for its lifetime; a dead node's is free, since
-- PostgreSQL drops a session's locks with its connection (kill -9 included).
-- $1: node id.
SELECT pg_advisory_lock(1935762244, hashtext($1))

-- name: node_try_lock
-- $1: node id.
SELECT pg_try_advisory_lock(1935762244, hashtext($1))

-- name: node_unlock
-- $1: node id.
SELECT pg_advisory_unlock(1935762244, hashtext($1))

-- name: node_dead
-- Inside a transaction: true when the node's lock is free (it is dead). The probe is taken
-- shared until the transaction ends, so probes never block each other; recovery's exclusive
-- try meanwhile finds the lock busy and simply retries at its next pass.
-- $1: node id.
SELECT pg_try_advisory_xact_lock_shared(1935762244, hashtext($1))

-- name: recover
-- for: deliveries, service_messages
-- After a node died: what it claimed goes back to the queue; what it had marked in flight
-- may have reached the SMSC, so it becomes unknown — never resent, still counted against
-- the cap (invariant 2). $1: the dead node, $2: now.
WITH requeued AS (
    UPDATE {table} SET state = 'queued', claimed_by = NULL, claimed_at = NULL
    WHERE claimed_by = $1 AND state = 'claimed'
    RETURNING id
), unknown AS (
    UPDATE {table} SET state = 'unknown', finished_at = $2, error = 'node died in flight'
    WHERE claimed_by = $1 AND state = 'in_flight'
    RETURNING id
)
SELECT (SELECT count(*) FROM requeued) AS requeued, (SELECT count(*) FROM unknown) AS unknown
