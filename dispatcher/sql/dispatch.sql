-- The dispatch engine: claim, eligibility and caps, in-flight marking, outcomes, receipts,
-- recovery. Every statement handles a whole batch in one round trip.
--
-- Statements given a batch of ids (mark, unclaim, hold back, record, lock, finish) find their
-- rows by primary key and only then check the guards on state and claimed_by, which are
-- written as `state::text = …` / `claimed_by IS NOT DISTINCT FROM …` so that they cannot
-- be index conditions: with `state = 'claimed'` the planner took deliveries_claimed_by
-- (statistics from before the campaign say no row is claimed) and read every row this node
-- had claimed for each chunk of 16, and with `state = 'submitted'` it read
-- deliveries_campaign_state's every submitted row — all the messages waiting for receipts —
-- for each batch: costs that grew with the batch and with the backlog.

-- name: running_campaigns
-- Campaigns to claim from, highest priority first.
SELECT id, kind, scope, texts, apply_caps, variable_defaults, variants
FROM campaigns WHERE state = 'running'
ORDER BY priority DESC, id

-- name: claim_campaign_batch
-- Claims up to $2 queued deliveries of one running campaign, decides each one's eligibility
-- (campaign end, a triggered message gone stale, then suppression_for: R1, R2, R9, R12) and reserves its monthly cap slot
-- (take_cap_slots: R7, invariant 1), all in one statement. Both functions live in migration
-- 0008_eligibility.sql, the one home of each rule; suppression_for is inlined by the planner.
-- A row that already holds a slot (cap_month set: a retry) does not take a second one.
-- A retry returns what its earlier tries left: attempts used, the parts already accepted
-- (their numbers), the total, the concatenation reference, the language sent in and how
-- long the missing parts may follow (R14), and the recipient's text variant (migration 0039;
-- a holdout row is final from its load and never claimed).
-- $1: campaign id, $2: batch size, $3: now, $4: this node's id, $5: the Astana month,
-- $6: info cap, $7: survey cap.
-- Run under plan_claim (no sequential scans).
WITH c AS (
    SELECT id, kind, scope, apply_caps, end_at
    FROM campaigns WHERE id = $1 AND state = 'running'
), batch AS (
    SELECT d.id, d.msisdn, d.cap_month, d.stale_after
    FROM deliveries d, c
    WHERE d.campaign_id = $1 AND d.state = 'queued'
      AND (d.not_before IS NULL OR d.not_before <= $3)
    ORDER BY d.id
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
), verdict AS (
    SELECT b.id, b.msisdn, b.cap_month, f.language,
           CASE
               WHEN c.end_at IS NOT NULL AND c.end_at <= $3 THEN 'outside_campaign_window'
               -- a triggered message claimed after its event's time + max delay (the
               -- window was shut meanwhile): dropped, never sent (migration 0041)
               WHEN b.stale_after < $3 THEN 'stale'
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
), slotted AS (
    -- whether the row got its slot now: a hashed subplan over reserved (plan_claim has no
    -- hash joins, and a nested loop between the two CTEs would be quadratic)
    SELECT v.*, v.msisdn IN (SELECT r.msisdn FROM reserved r) AS slot
    FROM verdict v
), decided AS (
    SELECT v.id, v.language,
           CASE
               WHEN v.reason IS NOT NULL THEN v.reason
               WHEN c.apply_caps AND v.cap_month IS NULL AND NOT v.slot THEN
                   CASE c.kind WHEN 'info' THEN 'cap_info' ELSE 'cap_survey' END
                       ::suppression_reason
           END AS reason,
           CASE WHEN v.slot THEN $5::date ELSE v.cap_month END AS cap_month
    FROM slotted v
    CROSS JOIN c
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
RETURNING d.id, d.msisdn, d.state, d.variables, x.language, d.attempts, d.parts,
          d.concat_ref, d.valid_until, d.language AS sent_language, d.variant,
          ARRAY(SELECT s.part_no FROM submits s WHERE s.delivery_id = d.id) AS sent_parts

-- name: plan_claim
-- The campaign claim's transaction plans by index probes in nested loops only: every table
-- it reads is reached from the batch (up to a few thousand rows). With the statistics of a
-- campaign's start, the planner hashed the batch against a sequential scan of subscribers
-- and another of deliveries (0.1 s of each 0.5 s claim at 200,000 recipients); without
-- sequential scans, it hashed or merged it with whole primary keys read from their start:
-- costs that grew with the tables and the campaign's progress. Scoped to the claim's
-- transaction.
SELECT set_config('enable_seqscan', 'off', true),
       set_config('enable_hashjoin', 'off', true),
       set_config('enable_mergejoin', 'off', true)

-- name: claim_service_batch
-- Claims up to $2 queued program service messages; those bound to the send window only
-- when it is open ($4). Nothing goes to a fully blocked or recycled number (R12), whatever
-- 1204 or membership say (suppression_for, kind 'service'). A retry returns what its
-- earlier tries left, as claim_campaign_batch does.
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
RETURNING sm.id, sm.msisdn, sm.state, sm.body, sm.in_window, sm.campaign_id, sm.language,
          sm.attempts, sm.parts, sm.concat_ref, sm.valid_until,
          ARRAY(SELECT s.part_no FROM submits s WHERE s.service_message_id = sm.id) AS sent_parts

-- name: queue_bonus_notices
-- The monthly grant's notices are a property of its grant rows (migration 0023): queues the
-- next $1 grants of the oldest month whose notices are not all queued, in id order from the
-- month's cursor, as bonus_notice service messages that claim_service_batch then takes like
-- any other, and moves the cursor past them — once each: the month's job_runs row is locked
-- (SKIP LOCKED: one claimer at a time walks a month) and the cursor moves in this statement.
-- Only a recorded run (its grants all committed), and only when the notices may go now: the
-- send window open ($2) or texts that do not wait for it. A grant forfeited (R2, R9, R12
-- recycling) or closed before then gets no notice — where one was queued already, the leave
-- suppressed it — and neither does a join grant made between two runs (month_notice false).
-- The text is the grant's owner's: in their language (R14, pick_language), "used" when
-- another grant of the owner was activated in the grant's month (R3, R4), "topup" when the
-- number is not active (R4). Returns how many it queued.
-- $1: limit, $2: whether the send window is open.
WITH run AS (
    SELECT j.job, j.period, j.notices_cursor, j.notices_upto, j.notice_texts
    FROM job_runs j
    WHERE j.job = 'bonus_grant_month'
      AND j.finished_at IS NOT NULL
      AND j.notices_cursor < j.notices_upto
      AND ($2::boolean OR NOT (j.notice_texts ->> 'in_window')::boolean)
    ORDER BY j.period
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), due AS (
    -- LATERAL … LIMIT (and OFFSET 0 below) keep these per-row index probes: a batch of a few
    -- hundred must not hash the whole of bonus_grants or subscribers (a generic plan did:
    -- 2.5 ms a notice at 1M members).
    SELECT g.id, g.msisdn, g.owner_epoch, g.month, g.state, g.month_notice,
           run.notice_texts -> floor(extract(epoch FROM g.deadline_at))::bigint::text AS t,
           run.notice_texts AS texts
    FROM run
    CROSS JOIN LATERAL (
        -- FOR SHARE: a leave's forfeit (R2) waits for this statement, then its suppression
        -- finds the notice; a forfeit that came first is waited for and its state read.
        SELECT * FROM bonus_grants g
        WHERE g.id > run.notices_cursor AND g.id <= run.notices_upto
        ORDER BY g.id
        LIMIT $1
        FOR SHARE OF g
    ) g
), moved AS (
    UPDATE job_runs j
    SET notices_cursor = (SELECT max(id) FROM due)
    FROM run
    WHERE j.job = run.job AND j.period = run.period AND EXISTS (SELECT 1 FROM due)
), queued AS (
    INSERT INTO service_messages (msisdn, kind, body, in_window, dedupe_key)
    SELECT d.msisdn,
           'bonus_notice',
           d.t -> CASE
                      WHEN EXISTS (
                          SELECT 1 FROM bonus_grants a
                          WHERE a.msisdn = d.msisdn AND a.owner_epoch = d.owner_epoch
                            AND a.activated_month = d.month AND a.id <> d.id
                      ) THEN 'used'
                      WHEN s.status <> 'active' THEN 'topup'
                      ELSE 'plain'
                  END
               ->> pick_language('{ru,kk,en}', s.language,
                                 (d.texts ->> 'default')::language)::text,
           (d.texts ->> 'in_window')::boolean,
           'bonus_notice:' || d.id
    FROM due d
    CROSS JOIN LATERAL (
        SELECT s.status, s.language FROM subscribers s
        WHERE s.msisdn = d.msisdn AND s.owner_epoch = d.owner_epoch
        OFFSET 0
    ) s
    WHERE d.month_notice AND d.state IN ('pending', 'active') AND d.t IS NOT NULL
    RETURNING 1
)
SELECT count(*) FROM queued

-- name: mark_in_flight
-- for: deliveries, service_messages
-- Marks a chunk's claimed messages of one table in flight, in one statement (issue 16: it
-- was BEGIN, three statements and COMMIT per chunk), guarded: a row suppressed since its
-- claim (a leave, a 1204) or held back is not marked, so it is never written to the SMSC.
-- First (a one-time filter above the update: before any row of {table} is touched) it
-- shares the subscribers' row locks, in one order everywhere: a leave or 1204 that is
-- committing (it holds FOR UPDATE) finishes first, and one that starts waits until this
-- statement's transaction ends. The update then finds the suppression such a leave
-- committed even though the statement's snapshot is older: a row updated by a transaction
-- that committed after the snapshot is re-read and its guard re-checked before it is
-- changed (READ COMMITTED's recheck), so a suppressed row fails `state = 'claimed'`.
-- A campaign delivery whose campaign stopped running since the claim is held back in the
-- same update: back to the queue when scheduled or paused (it keeps its cap slot for the
-- resume), suppressed when cancelled or expired (the deliveries_release_cap trigger gives
-- the slot back). Service messages are never held (their campaign_id is a survey's).
-- Returns every row it changed with its new state; those in_flight are to be sent.
-- $1: ids, $2: this node's id, $3: the chunk's msisdns, sorted, $4: now, $5: each
-- delivery's campaign (NULL for a service message).
WITH locked AS MATERIALIZED (
    SELECT msisdn FROM subscribers
    WHERE msisdn = ANY($3::text[])
    ORDER BY msisdn
    FOR SHARE
)
UPDATE {table} m
SET state = CASE
        WHEN x.campaign = 'running' THEN 'in_flight'
        WHEN x.campaign IN ('scheduled', 'paused') THEN 'queued'
        ELSE 'suppressed' END::delivery_state,
    suppressed = CASE
        WHEN x.campaign IN ('running', 'scheduled', 'paused') THEN NULL
        WHEN x.campaign = 'expired' THEN 'outside_campaign_window'
        ELSE 'cancelled' END::suppression_reason,
    claimed_by = CASE WHEN x.campaign = 'running' THEN m.claimed_by END,
    finished_at = CASE WHEN x.campaign IN ('running', 'scheduled', 'paused') THEN NULL
                       ELSE $4::timestamptz END
FROM (
    SELECT u.id, u.campaign_id, coalesce(c.state::text, 'running') AS campaign
    FROM unnest($1::bigint[], $5::bigint[]) AS u (id, campaign_id)
    LEFT JOIN campaigns c ON c.id = u.campaign_id
) x
WHERE m.id = ANY($1::bigint[]) AND m.id = x.id AND m.state::text = 'claimed'
  AND m.claimed_by IS NOT DISTINCT FROM $2::text
  AND ('{table}' <> 'deliveries' OR m.campaign_id = x.campaign_id)
  AND (SELECT count(*) FROM locked) >= 0
RETURNING m.id, m.state::text AS state

-- name: unclaim
-- for: deliveries, service_messages
-- Claimed rows this node will not send now (window closed, bind lost) go back to the
-- queue; a campaign delivery keeps its cap slot. $1: ids, $2: this node's id.
UPDATE {table} SET state = 'queued', claimed_by = NULL, claimed_at = NULL
WHERE id = ANY($1::bigint[]) AND state::text = 'claimed'
  AND claimed_by IS NOT DISTINCT FROM $2::text

-- name: record_chunk
-- for: deliveries, service_messages
-- Records a chunk's outcomes of one table and their accepted parts in one statement, first
-- locking the messages as lock_messages does (the same id order, so it never deadlocks
-- with the receipt applier). A chunk of one table whose messages had no part
-- accepted before (nothing for finish_messages to settle) and no survey is recorded by this
-- one statement alone, without a transaction of its own: five round trips fewer per chunk
-- than BEGIN, four statements and COMMIT, on a path whose latency
-- bounds the engine (a window's slots are held from the mark to the record).
-- The outcomes are applied guarded on in_flight, so a repeat changes nothing. parts is the
-- message's total; the parts accepted are its submits rows, a queued message with some of
-- them waits for its missing parts, keeping its concatenation reference and until when they
-- may follow. An attempt is counted only where the outcome says so (not for throttling, no
-- bind, the window's close). A language left NULL (a service message queued without one)
-- keeps the row's. A response is never dropped: an id an SMSC reused after a restart gets a
-- submits row of its own (the applier matches a receipt to the newest part with its id); only
-- a repeat of the same part's own row (the same message, part and id) is left out, found by
-- a LATERAL probe of submits_message_id per part (a LATERAL with LIMIT is always a nested
-- loop: written as NOT EXISTS, the generic plan became a hash anti join over every submit of
-- the SMSC, a cost that grew with the table at each chunk).
-- $1: ids, $2: new states, $3: last command_status, $4: the message's parts, $5: error
-- text, $6: not_before (retries), $7: language sent in, $8: attempts used (0 or 1),
-- $9: concatenation reference, $10: until when missing parts may follow, $11: now,
-- $12: smsc, $13: the accepted parts' message ids, $14: their messages' ids (in this table),
-- $15: msisdns, $16: part numbers, $17: part totals.
WITH locked AS MATERIALIZED (
    SELECT id FROM {table}
    WHERE id = ANY($1::bigint[]) AND state::text IN ('in_flight', 'submitted')
    ORDER BY id
    FOR UPDATE
), recorded AS (
    UPDATE {table} m
    SET state = u.state::delivery_state,
        last_status = u.status,
        parts = u.parts,
        error = u.error,
        not_before = u.not_before,
        attempts = m.attempts + u.attempts,
        concat_ref = coalesce(u.concat_ref, m.concat_ref),
        valid_until = coalesce(u.valid_until, m.valid_until),
        claimed_by = CASE WHEN u.state = 'queued' THEN NULL ELSE m.claimed_by END,
        submitted_at = CASE WHEN u.state = 'submitted' THEN $11 ELSE m.submitted_at END,
        finished_at = CASE WHEN delivery_state_final(u.state::delivery_state) THEN $11 END,
        language = coalesce(u.language::language, m.language)
    FROM unnest($1::bigint[], $2::text[], $3::int[], $4::smallint[], $5::text[],
                $6::timestamptz[], $7::text[], $8::smallint[], $9::int[], $10::timestamptz[])
         AS u(id, state, status, parts, error, not_before, language, attempts, concat_ref,
              valid_until)
    WHERE m.id = u.id AND m.state::text = 'in_flight' AND m.id IN (SELECT id FROM locked)
    RETURNING m.id
), accepted AS (
    INSERT INTO submits (smsc, message_id, delivery_id, service_message_id, msisdn, part_no,
                         parts, submitted_at)
    SELECT $12, u.message_id,
           CASE WHEN '{table}' = 'deliveries' THEN u.owner END,
           CASE WHEN '{table}' = 'service_messages' THEN u.owner END,
           u.msisdn, u.part_no, u.parts, $11
    FROM unnest($13::text[], $14::bigint[], $15::text[], $16::smallint[], $17::smallint[])
         AS u(message_id, owner, msisdn, part_no, parts)
    LEFT JOIN LATERAL (
        SELECT true AS found FROM submits s
        WHERE s.smsc = $12 AND s.message_id = u.message_id AND s.part_no = u.part_no
          AND CASE WHEN '{table}' = 'deliveries' THEN s.delivery_id
                   ELSE s.service_message_id END = u.owner
        LIMIT 1
    ) repeat ON true
    WHERE repeat.found IS NULL
    RETURNING 1
)
SELECT id FROM recorded

-- name: insert_receipts
-- Receipts as received, committed before deliver_sm_resp (invariant 4). Every copy is kept:
-- the applier recognises a repeat (its part already holds a final receipt), so a new
-- message's receipt under a reused id is never taken for an old one's.
-- $1: smsc, $2: message ids (as-is reading), $3: states, $4: error codes, $5: done times,
-- $6: now, $7: the ids read as decimal, in hex ($2 when not decimal: NULL), $8: the ids read
-- as hex, in decimal, $9: the receipts' subscriber numbers (NULL when not a number, stored
-- as '': the column is in the key, migration 0024).
INSERT INTO receipts (smsc, message_id, state, error_code, done_at, received_at, id_hex, id_dec,
                      msisdn)
SELECT $1, u.message_id, u.state::receipt_state, u.error_code, u.done_at, $6, u.id_hex,
       u.id_dec, coalesce(u.msisdn, '')
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[], $7::text[], $8::text[],
            $9::text[])
     AS u(message_id, state, error_code, done_at, id_hex, id_dec, msisdn)

-- name: register_id_format
-- The engine's id format setting for its SMSC, at start; what was detected stays (it is a
-- fact about the SMSC, which a later setting of auto goes back to).
-- $1: smsc, $2: the setting.
INSERT INTO smsc_id_formats (smsc, setting) VALUES ($1, $2::message_id_format)
ON CONFLICT (smsc) DO UPDATE SET setting = EXCLUDED.setting

-- name: id_format_evidence
-- For each SMSC set to auto: of its latest $1 receipts whose readings differ, how many name
-- a known submit under each reading (smpp.receipts.detect_id_format decides). A backward
-- primary-key scan per SMSC over the latest $2 receipts of all SMSCs at most (an SMSC with
-- few or none must not make it read the whole table), and three probes of
-- submits_message_id per receipt.
-- $1: receipts looked at per SMSC, $2: latest receipts scanned.
SELECT f.smsc, f.detected::text AS detected,
       count(x.id)::int AS receipts,
       count(x.id) FILTER (WHERE EXISTS (
           SELECT FROM submits s WHERE s.smsc = f.smsc AND s.message_id = x.message_id))::int
           AS as_is,
       count(x.id) FILTER (WHERE EXISTS (
           SELECT FROM submits s WHERE s.smsc = f.smsc AND s.message_id = x.id_hex))::int
           AS hex_response,
       count(x.id) FILTER (WHERE EXISTS (
           SELECT FROM submits s WHERE s.smsc = f.smsc AND s.message_id = x.id_dec))::int
           AS decimal_response
FROM smsc_id_formats f
LEFT JOIN LATERAL (
    SELECT r.id, r.message_id, r.id_hex, r.id_dec
    FROM receipts r
    WHERE r.id > (SELECT coalesce(max(id), 0) FROM receipts) - $2
      AND r.smsc = f.smsc
      AND (r.id_hex IS DISTINCT FROM r.message_id OR r.id_dec IS DISTINCT FROM r.message_id)
    ORDER BY r.id DESC
    LIMIT $1
) x ON true
WHERE f.setting = 'auto'
GROUP BY f.smsc, f.detected

-- name: learn_id_format
-- What detection found for an SMSC set to auto, and its receipts still waiting are looked
-- at again at once (receipts_unapplied: the backlog only). Guarded: a change of mind only.
-- $1: smsc, $2: the detected format, $3: now.
WITH learned AS (
    UPDATE smsc_id_formats SET detected = $2::message_id_format, detected_at = $3
    WHERE smsc = $1 AND detected IS DISTINCT FROM $2::message_id_format
    RETURNING smsc
)
UPDATE receipts x SET check_after = NULL
FROM learned l
WHERE x.applied_at IS NULL AND x.smsc = l.smsc AND x.check_after IS NOT NULL

-- name: plan_each_batch
-- The receipt applier's statements join a batch of thousands to receipts and submits, tables
-- that grow from empty on a fresh database. A cached generic plan made while they were
-- small (nested loops over sequential scans) stays in use as they grow: 20 s instead of
-- 0.2 s for a batch of 5,000 in `python -m bench dispatch`. Planning each batch afresh costs
-- a millisecond. Sequential scans are off too: the statistics of a table that grew since the
-- last ANALYZE made the planner read every receipt for the unapplied ones (instead of
-- receipts_unapplied) and every submit for the parts a batch names (instead of the primary
-- key), a cost per batch that grew with the tables. Scoped to the applier's transaction.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('enable_seqscan', 'off', true)

-- name: apply_receipts
-- The receipt applier's first step: applies up to $1 unapplied receipts whose submit is
-- known to their parts, and returns, per message whose parts changed, what those parts
-- say (finish_messages applies it in the same transaction). Unmatched receipts (receipt
-- before submit_sm_resp, or a reading the SMSC's id format has not been found for) are
-- looked at again after $3, and given up after $4.
-- Which reading of the receipt's id is its key: the SMSC's setting, or under auto what was
-- detected; before that, the one reading that names a known submit to the receipt's
-- subscriber (none, or two readings naming different submits: wait — small ids are often
-- valid in both bases, and a receipt that beat its own submit must not take another's).
-- A key names a part: the newest not yet holding a final receipt, the subscriber's own
-- first (an SMSC that restarted reuses ids); never one with a final receipt, so a finished
-- message is never touched. A part of the receipt's own subscriber, even a finished one,
-- comes before any other subscriber's (issue 13): a late repeat of a finished message's
-- receipt settles as that repeat and never finalises another number's message that was
-- given the same id after a restart. When every part with the key holds a final receipt, the
-- receipt is a repeat, or a new message's that beat its submit_sm_resp: it waits for one
-- more look ($3) and settles as a repeat only if no part of its subscriber (or, for a
-- receipt naming no subscriber, of anyone) has been recorded under its key by then; one of
-- another subscriber only waits (until the give-up cutoff). The same subscriber is no proof
-- of a repeat (issue 14): an SMSC that restarted numbers from 1 again, so a list sent in the
-- same order gets each number the id its earlier message had, and a receipt faster than its
-- response was settled as the old message's repeat ("delivered 0" beside the answers).
-- A part counts once: the submit's receipt is set only from NULL or an intermediate state
-- (in the UPDATE's own WHERE, so a concurrent applier's change is rechecked).
-- The part is found per receipt by a LATERAL probe of submits_message_id, not by a join
-- between two CTEs: the planner cannot size CTEs, and a nested loop over two batches of
-- 5,000 took 20 s.
-- The SMSC is trusted less (issue 13): a receipt whose own subscriber (its source address,
-- normalised) is known and is not the number its part went to is an address mismatch —
-- marked on the receipt (address_mismatch, counted by the metrics), returned for the log,
-- and, when $5 is true, refused: it settles unmatched and changes no part.
-- One row per message (tbl, id, ...), or a single row with tbl NULL when none changed; the
-- counts and the mismatches (receipt ids, their subscribers, the parts' numbers) are on
-- every row.
-- $1: batch size, $2: now, $3: next check time for unmatched, $4: give-up cutoff,
-- $5: refuse address mismatches.
WITH r AS (
    -- msisdn '' is a receipt whose source is not a number (migration 0024): NULL below.
    SELECT x.id, x.smsc, x.message_id, x.id_hex, x.id_dec, nullif(x.msisdn, '') AS msisdn,
           x.state, x.received_at, x.check_after IS NOT NULL AS looked,
           CASE WHEN f.setting = 'auto' THEN coalesce(f.detected, 'auto')
                ELSE coalesce(f.setting, 'as-is') END AS format
    FROM receipts x
    LEFT JOIN smsc_id_formats f ON f.smsc = x.smsc
    WHERE x.applied_at IS NULL AND (x.check_after IS NULL OR x.check_after <= $2::timestamptz)
    ORDER BY x.check_after NULLS FIRST, x.id
    LIMIT $1
    FOR UPDATE OF x SKIP LOCKED
), keyed AS (
    SELECT r.id, r.smsc, r.msisdn, r.state, r.received_at, r.looked,
           CASE r.format
               WHEN 'hex-response-decimal-receipt' THEN coalesce(r.id_hex, r.message_id)
               WHEN 'decimal-response-hex-receipt' THEN coalesce(r.id_dec, r.message_id)
               WHEN 'auto' THEN (
                   SELECT CASE WHEN count(DISTINCT k) = 1 THEN min(k) END
                   FROM unnest(ARRAY[r.message_id, r.id_hex, r.id_dec]) AS k
                   WHERE EXISTS (
                       SELECT FROM submits s
                       WHERE s.smsc = r.smsc AND s.message_id = k
                         AND (r.msisdn IS NULL OR s.msisdn = r.msisdn)
                   )
               )
               ELSE r.message_id
           END AS key
    FROM r
), probed AS (
    SELECT k.id, k.state, k.received_at, k.msisdn, p.submit_id, p.submit_msisdn,
           p.submit_id IS NOT NULL
               AND (NOT p.final OR ((p.same_msisdn OR k.msisdn IS NULL) AND k.looked)) AS known,
           p.submit_id IS NOT NULL AND NOT p.final AS fresh,
           p.submit_id IS NOT NULL AND NOT p.final AND k.msisdn IS NOT NULL
               AND NOT p.same_msisdn AS mismatch
    FROM keyed k
    LEFT JOIN LATERAL (
        SELECT s.id AS submit_id, s.msisdn AS submit_msisdn,
               coalesce(s.receipt NOT IN ('accepted', 'enroute'), false) AS final,
               coalesce(s.msisdn = k.msisdn, false) AS same_msisdn
        FROM submits s
        WHERE s.smsc = k.smsc AND s.message_id = k.key
        ORDER BY same_msisdn DESC, final, s.id DESC
        LIMIT 1
    ) p ON true
), checked AS (
    SELECT id, state, received_at, msisdn, submit_id, submit_msisdn, mismatch,
           known AND NOT (mismatch AND $5::boolean) AS known,
           fresh AND NOT (mismatch AND $5::boolean) AS fresh,
           mismatch AND $5::boolean AS refused
    FROM probed
), parts AS (
    UPDATE submits s SET receipt = c.state, receipt_at = c.received_at
    FROM checked c
    WHERE s.id = c.submit_id AND c.fresh
      AND (s.receipt IS NULL OR s.receipt IN ('accepted', 'enroute'))
      AND c.state NOT IN ('accepted', 'enroute')
    RETURNING s.delivery_id, s.service_message_id, s.parts, c.state
), marked AS (
    UPDATE receipts x
    SET applied_at = CASE WHEN c.known OR c.refused OR x.received_at < $4
                          THEN $2::timestamptz END,
        matched = c.known,
        check_after = CASE WHEN NOT c.known AND NOT c.refused THEN $3::timestamptz END,
        address_mismatch = c.mismatch
    FROM checked c
    WHERE x.id = c.id
), per_message AS (
    -- The messages whose parts these receipts changed; finish_messages reads their parts.
    SELECT DISTINCT
           CASE WHEN delivery_id IS NOT NULL THEN 'deliveries' ELSE 'service_messages' END
               AS tbl,
           coalesce(delivery_id, service_message_id) AS id
    FROM parts
), counts AS (
    SELECT count(*) AS seen, count(*) FILTER (WHERE known) AS matched,
           coalesce(array_agg(id ORDER BY id) FILTER (WHERE mismatch), '{}') AS mismatched,
           coalesce(array_agg(msisdn ORDER BY id) FILTER (WHERE mismatch), '{}')
               AS mismatched_sources,
           coalesce(array_agg(submit_msisdn ORDER BY id) FILTER (WHERE mismatch), '{}')
               AS mismatched_numbers
    FROM checked
)
SELECT c.seen, c.matched, c.mismatched, c.mismatched_sources, c.mismatched_numbers, p.tbl, p.id
FROM counts c LEFT JOIN per_message p ON true
ORDER BY p.tbl, p.id

-- name: lock_messages
-- for: deliveries, service_messages
-- The first statement of the receipt applier's finish step (record_chunk takes the same
-- locks in its first CTE): locks the messages being recorded or waiting for receipts, in id
-- order (both take them in this order, so they never deadlock), so that finish_messages, with a snapshot taken after the
-- lock (READ COMMITTED), reads every part's receipt committed by the other. A receipt of an
-- early part that comes while its message is being recorded is then counted by one of the
-- two whichever commits first. $1: ids.
SELECT id FROM {table}
WHERE id = ANY($1::bigint[]) AND state::text IN ('in_flight', 'submitted')
ORDER BY id
FOR UPDATE

-- name: finish_messages
-- for: deliveries, service_messages
-- The per-message step of the receipt applier and of recording (invariant 7, R14), run
-- after lock_messages: computed from the message's submits rows, not incremented, so
-- receipts that came while a part waited for its retry count when it is accepted. A
-- message is delivered once every one of its parts (its total, not those accepted) has a
-- delivered receipt, undelivered or expired as soon as one part is; finished_at is set
-- exactly when the state becomes final (the finished_when_final CHECK). Guarded on
-- submitted: a late receipt of a finished message, or one of a message still waiting for
-- a part, changes nothing. Materialised: inlined, the planner re-ran the aggregate for
-- each message of the batch (a cost growing with the square of the batch). $1: ids, $2: now.
WITH p AS MATERIALIZED (
    SELECT m.id,
           (count(DISTINCT s.part_no) FILTER (WHERE s.receipt = 'delivered'))::int AS delivered,
           coalesce(m.parts, max(s.parts))::int AS parts,
           coalesce(bool_or(s.receipt = 'expired'), false) AS expired,
           coalesce(bool_or(s.receipt NOT IN ('delivered', 'expired', 'accepted', 'enroute')),
                    false) AS failed
    FROM {table} m
    JOIN submits s
      ON CASE WHEN '{table}' = 'deliveries' THEN s.delivery_id ELSE s.service_message_id END
         = m.id
    WHERE m.id = ANY($1::bigint[]) AND m.state::text = 'submitted'
    GROUP BY m.id, m.parts
)
UPDATE {table} m
SET parts_done = p.delivered,
    state = CASE
        WHEN p.failed THEN 'undelivered'
        WHEN p.expired THEN 'expired'
        WHEN p.delivered >= p.parts THEN 'delivered'
        ELSE m.state
    END::delivery_state,
    finished_at = CASE WHEN p.failed OR p.expired OR p.delivered >= p.parts
                       THEN $2::timestamptz END
FROM p
WHERE m.id = ANY($1::bigint[]) AND m.id = p.id AND m.state::text = 'submitted'
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
