-- The bonus ledger (R3-R6, invariant 5). Only dispatcher.program.bonus.BonusLedger runs these.
-- Every "now" is a parameter, so tests drive the ledger with a ManualClock.

-- name: lock_msisdn
-- Serialises the bonus changes of one number (activation, forfeit) for the rest of the
-- transaction. A separate statement on purpose: in READ COMMITTED the next statement takes
-- its snapshot after the lock is held, so it sees what the previous holder committed.
-- Two-int form: its key space does not overlap the bigint keys of jobs and migrations.
-- $1: msisdn.
SELECT pg_advisory_xact_lock(23829, hashtext($1))

-- name: lock_job
-- Transaction-level advisory lock, exclusive: one replica runs a periodic job; others wait,
-- then see it recorded in job_runs. For the monthly grant it also waits for joins granting
-- right now (they hold it shared) and keeps new ones out until commit, so grant_month's
-- anti-join sees every grant of the month. $1: the job's lock key (constant of BonusLedger).
SELECT pg_advisory_xact_lock($1)

-- name: share_job_lock
-- Shared form of lock_job, taken by a join's grant: joins never wait for each other, only
-- for the monthly grant (seconds, at 00:05 on the 1st). $1: the monthly grant's lock key.
SELECT pg_advisory_xact_lock_shared($1)

-- name: grant_one
-- R3: the current month's grant for the number's current owner (R12: the owner epoch, migration
-- 0014), unless the owner's month has one already (also a forfeited one: leaving and
-- rejoining never grants twice; the next owner of a recycled number is someone else).
-- $1: msisdn, $2: month (first day, Astana), $3: units, $4: granted_at, $5: deadline_at.
INSERT INTO bonus_grants (msisdn, owner_epoch, month, units, granted_at, deadline_at)
SELECT s.msisdn, s.owner_epoch, $2, $3, $4, $5
FROM subscribers s WHERE s.msisdn = $1
ON CONFLICT ON CONSTRAINT one_grant_per_month DO NOTHING
RETURNING id

-- name: share_subscriber
-- An activation holds the subscriber row FOR SHARE until it commits: a status change (a
-- block, a recycling) waits for it, and it waits for one in progress. Taken before
-- lock_msisdn, the order membership changes take them in (row, then the number's lock).
-- $1: msisdn.
SELECT status, owner_epoch FROM subscribers WHERE msisdn = $1 FOR SHARE

-- name: forfeit
-- R2/R12: pending and active grants of a number are lost. Credits still owed stop being
-- retried; every grant that had a credit row (sent, or possibly sent) gets a removal in the
-- forfeit outbox, delivered after commit. Run after lock_msisdn, so a concurrent activation
-- has committed its credit row before this statement's snapshot.
-- $1: msisdn, $2: now.
-- Returns what was lost, for the reply to the leaver (R9): the units of the pending grants
-- (never activated, so all of them) and how many active grants (part of whose units may have
-- been used: only the charging system knows how many were left).
WITH gone AS (
    UPDATE bonus_grants
    SET state = 'forfeited', closed_at = $2
    WHERE msisdn = $1 AND state IN ('pending', 'active')
    RETURNING id, units, activated_at
), owed AS (
    UPDATE bonus_credits c
    SET state = 'failed', last_error = 'forfeited before credit'
    FROM gone
    WHERE c.grant_id = gone.id AND c.state = 'pending'
), removals AS (
    INSERT INTO bonus_forfeits (grant_id, msisdn, requested_at, next_attempt_at)
    SELECT c.grant_id, c.msisdn, $2, $2
    FROM bonus_credits c
    JOIN gone ON gone.id = c.grant_id
    ON CONFLICT (grant_id, msisdn) DO NOTHING
)
SELECT coalesce(sum(units) FILTER (WHERE activated_at IS NULL), 0)::int AS pending_units,
       count(*) FILTER (WHERE activated_at IS NOT NULL)::int AS active_grants
FROM gone

-- name: activation_of_month
-- The grant the owner activated in a calendar month, with its credit
-- (one_activation_per_month index). $1: msisdn, $2: month (first day, Astana),
-- $3: owner epoch.
SELECT g.*, c.state AS credit_state, c.lease_until
FROM bonus_grants g
LEFT JOIN bonus_credits c ON c.grant_id = g.id
WHERE g.msisdn = $1 AND g.owner_epoch = $3 AND g.activated_month = $2

-- name: lease_credit
-- Takes the right to send a credit still owed: a guarded update, so of two callers one wins.
-- $1: grant id, $2: now, $3: lease end (no one else sends it before).
UPDATE bonus_credits
SET lease_until = $3, attempts = attempts + 1
WHERE grant_id = $1 AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $2)
RETURNING attempts

-- name: activate_oldest
-- R4: the oldest pending grant still within its deadline becomes active for 7 days, and its
-- credit row is created already leased to this caller. one_activation_per_month backs the
-- "once a calendar month" rule; lock_msisdn ran first, so callers do not race into it.
-- $1: msisdn, $2: now, $3: activated month (first day, Astana), $4: expires_at,
-- $5: lease end, $6: owner epoch.
WITH pick AS (
    SELECT id
    FROM bonus_grants
    WHERE msisdn = $1 AND owner_epoch = $6 AND state = 'pending' AND deadline_at > $2
    ORDER BY granted_at, id
    LIMIT 1
    FOR UPDATE
), act AS (
    UPDATE bonus_grants g
    SET state = 'active', activated_at = $2, activated_month = $3, expires_at = $4
    FROM pick
    WHERE g.id = pick.id AND g.state = 'pending'
    RETURNING g.*
), credit AS (
    INSERT INTO bonus_credits (grant_id, msisdn, attempts, next_attempt_at, lease_until, created_at)
    SELECT id, msisdn, 1, $2, $5, $2
    FROM act
)
SELECT * FROM act

-- name: record_credit_results
-- Outcomes of a batch of credit calls, one round trip; the lease ends. Only a pending credit
-- changes state (a forfeit or expiry may have closed it meanwhile).
-- $1: grant ids, $2: credited (bool[]), $3: permanent failure (bool[]),
-- $4: charging references (text[]), $5: errors (text[]), $6: next attempt (timestamptz[]),
-- $7: now.
UPDATE bonus_credits c
SET state = CASE
        WHEN c.state <> 'pending' THEN c.state
        WHEN r.credited THEN 'credited'
        WHEN r.permanent THEN 'failed'
        ELSE c.state
    END::credit_state,
    credited_at = CASE WHEN c.state = 'pending' AND r.credited THEN $7 ELSE c.credited_at END,
    external_ref = coalesce(r.reference, c.external_ref),
    last_error = r.error,
    next_attempt_at = coalesce(r.next_at, c.next_attempt_at),
    lease_until = NULL
FROM unnest($1::bigint[], $2::bool[], $3::bool[], $4::text[], $5::text[], $6::timestamptz[])
    AS r (grant_id, credited, permanent, reference, error, next_at)
WHERE c.grant_id = r.grant_id
RETURNING c.grant_id, c.state

-- name: claim_due_credits
-- Credits owed for grants still active whose retry time has come and that nobody is sending;
-- SKIP LOCKED lets replicas share the work. The lease keeps them from being sent twice at
-- once; the grant id keeps a resend harmless.
-- $1: now, $2: batch size, $3: lease end.
WITH due AS (
    SELECT c.grant_id
    FROM bonus_credits c
    JOIN bonus_grants g ON g.id = c.grant_id
    WHERE c.state = 'pending'
      AND c.next_attempt_at <= $1
      AND (c.lease_until IS NULL OR c.lease_until <= $1)
      AND g.state = 'active' AND g.expires_at > $1
    ORDER BY c.next_attempt_at
    LIMIT $2
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE bonus_credits c
SET lease_until = $3, attempts = c.attempts + 1
FROM due
JOIN bonus_grants g ON g.id = due.grant_id
WHERE c.grant_id = due.grant_id
RETURNING c.grant_id, g.msisdn, g.units, g.expires_at, c.attempts

-- name: claim_due_forfeits
-- Removals to deliver. One waits while a credit of its grant is in flight, so the credit
-- lands first and the removal after it.
-- $1: now, $2: batch size, $3: lease end.
WITH due AS (
    SELECT f.grant_id
    FROM bonus_forfeits f
    WHERE f.done_at IS NULL AND f.failed_at IS NULL
      AND f.next_attempt_at <= $1
      AND (f.lease_until IS NULL OR f.lease_until <= $1)
      AND NOT EXISTS (
          SELECT 1 FROM bonus_credits c WHERE c.grant_id = f.grant_id AND c.lease_until > $1
      )
    ORDER BY f.next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE bonus_forfeits f
SET lease_until = $3, attempts = f.attempts + 1
FROM due
WHERE f.grant_id = due.grant_id
RETURNING f.grant_id, f.msisdn, f.attempts

-- name: record_forfeit_results
-- Outcomes of a batch of removals, one round trip; the lease ends.
-- $1: grant ids, $2: done (bool[]), $3: permanent failure (bool[]), $4: errors (text[]),
-- $5: next attempt (timestamptz[]), $6: now.
UPDATE bonus_forfeits f
SET done_at = CASE WHEN r.done THEN $6::timestamptz END,
    failed_at = CASE WHEN r.permanent THEN $6::timestamptz END,
    last_error = r.error,
    next_attempt_at = coalesce(r.next_at, f.next_attempt_at),
    lease_until = NULL
FROM unnest($1::bigint[], $2::bool[], $3::bool[], $4::text[], $5::timestamptz[])
    AS r (grant_id, done, permanent, error, next_at)
WHERE f.grant_id = r.grant_id AND f.done_at IS NULL AND f.failed_at IS NULL

-- name: standing
-- What is true of the bonus of the number's current owner (R3, R4, R6): its status, whether
-- it is a member, whether it has this month's grant, whether this month's activation is
-- used — on every row, with the grants the owner can still use or activate now (R6), one a
-- row, oldest first (one_grant_per_month index prefix); one row with a NULL id when there
-- is none; no row for a number never seen. One round trip for the balance (issue 16).
-- $1: msisdn, $2: month (first day, Astana), $3: now.
-- The standing is a materialized CTE: computed once for the one subscriber row, its EXISTS
-- probe the indexes by number (pulled up into the join, a generic plan may hash a whole
-- table for them instead: 2.6 ms a call, seen in bench load --cpu).
WITH st AS MATERIALIZED (
    SELECT s.msisdn, s.status, s.owner_epoch,
           EXISTS (SELECT 1 FROM memberships m
                   WHERE m.msisdn = s.msisdn AND m.left_at IS NULL) AS member,
           EXISTS (SELECT 1 FROM bonus_grants g
                   WHERE g.msisdn = s.msisdn AND g.owner_epoch = s.owner_epoch
                     AND g.month = $2) AS month_granted,
           EXISTS (SELECT 1 FROM bonus_grants g
                   WHERE g.msisdn = s.msisdn AND g.owner_epoch = s.owner_epoch
                     AND g.activated_month = $2) AS activated_this_month
    FROM subscribers s WHERE s.msisdn = $1
)
SELECT st.status, st.member, st.month_granted, st.activated_this_month,
       g.*, c.state AS credit_state, c.lease_until
FROM st
LEFT JOIN bonus_grants g
       ON g.msisdn = st.msisdn AND g.owner_epoch = st.owner_epoch
      AND ((g.state = 'active' AND g.expires_at > $3)
           OR (g.state = 'pending' AND g.deadline_at > $3))
LEFT JOIN bonus_credits c ON c.grant_id = g.id
ORDER BY g.granted_at, g.id

-- name: job_done
-- Whether a periodic job finished for a period. $1: job name, $2: period ('2026-11').
SELECT finished_at FROM job_runs WHERE job = $1 AND period = $2 AND finished_at IS NOT NULL

-- name: record_job
-- $1: job name, $2: period, $3: started_at, $4: finished_at, $5: result (an object: counts of
-- the run), $6, $7: the lowest and highest grant id the run made (NULL for another job, or a
-- run that granted nothing): the range of the month's notices (migration 0023: the cursor,
-- set by record_notice_texts already, starts before the month's first grant; a later run
-- only raises the end), which is also the range the sweep's cancel_cursor walks (0026).
INSERT INTO job_runs AS j (job, period, started_at, finished_at, result, notices_cursor,
                           notices_upto, cancel_cursor)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::bigint - 1, $7::bigint, $6::bigint - 1)
ON CONFLICT (job, period) DO UPDATE
SET finished_at = EXCLUDED.finished_at, result = EXCLUDED.result,
    notices_cursor = coalesce(j.notices_cursor, EXCLUDED.notices_cursor),
    notices_upto = greatest(j.notices_upto, EXCLUDED.notices_upto),
    cancel_cursor = coalesce(j.cancel_cursor, EXCLUDED.cancel_cursor)

-- name: record_notice_texts
-- The texts of the monthly grant's notices (migration 0023), merged into the month's
-- job_runs row before the grants: "in_window", "default" and, under the run's deadline key
-- (epoch seconds of deadline_at), the variants. Committed on its own, before the grants;
-- the month's first call also starts its notice cursor (and the sweep's cancel_cursor,
-- migration 0026) at the highest grant id so far, so
-- every grant of the month's runs is after it — also those of a run whose record failed
-- after some slices committed (the catch-up run's record then covers them).
-- $1: job name, $2: period, $3: started_at, $4: the texts (an object).
INSERT INTO job_runs AS j (job, period, started_at, notice_texts, notices_cursor,
                           cancel_cursor)
SELECT $1, $2, $3, $4::jsonb, top.id, top.id
FROM (SELECT coalesce(max(id), 0) AS id FROM bonus_grants) top
ON CONFLICT (job, period) DO UPDATE
SET notice_texts = coalesce(j.notice_texts, '{}'::jsonb) || EXCLUDED.notice_texts,
    notices_cursor = coalesce(j.notices_cursor, EXCLUDED.notices_cursor),
    cancel_cursor = coalesce(j.cancel_cursor, EXCLUDED.cancel_cursor)

-- name: grant_month
-- R3: the month's units for every current member in one set-based statement. Its notice is
-- a property of the grant row (month_notice, migration 0023), queued by the engine's service
-- claim when it can go (dispatch.sql queue_bonus_notices): one row written per member, not
-- two. Returns the count and the lowest and highest id (record_job: the notices' range).
-- The anti-join skips
-- members granted already (joined this month, an earlier run), so a re-run grants nothing
-- twice; it replaces ON CONFLICT, whose speculative insertion cost ~40% more per row, and is
-- race-free because lock_job holds off join grants (one_grant_per_month still backs it: a
-- conflict would abort the run, not grant twice). Members whose number is fully blocked or
-- recycled get nothing (R12); outgoing-blocked numbers still receive SMS and keep their grant.
-- The grant is about membership and status only — not 1204 (a 1204 ends the membership) nor
-- campaign scope — so it does not call suppression_for (migration 0008), the one home of
-- eligibility: its status test is that function's rule for a service message (the grant's
-- notice is one), written as a plain IN so the planner estimates it from the column's
-- statistics. tests/test_eligibility.py checks that the two agree.
-- The members are cut into $5 slices by a hash of the msisdn, run in parallel transactions
-- (one per connection) while the job's lock is held; every slice filters both sides of its
-- joins, so each hashes only its share of subscribers.
-- $1: month (first day, Astana), $2: units, $3: now (granted_at), $4: deadline_at,
-- $5: number of slices, $6: this slice (0 .. $5 - 1).
-- Grants belong to the owner (R12: migration 0014's owner epoch), so the anti-join compares it.
WITH granted AS (
    INSERT INTO bonus_grants (msisdn, owner_epoch, month, units, granted_at, deadline_at,
                              month_notice)
    SELECT m.msisdn, s.owner_epoch, $1, $2, $3, $4, true
    FROM memberships m
    JOIN subscribers s ON s.msisdn = m.msisdn
    WHERE m.left_at IS NULL
      AND m.joined_at <= $3
      AND s.status IN ('active', 'outgoing_blocked')
      -- "$5 = 1 OR": with one slice the filter folds away, so the planner's row estimate (and
      -- its hash joins) is not spoilt by the 0.5% guess it makes for an expression.
      AND ($5 = 1 OR (hashtext(m.msisdn) & 2147483647) % $5 = $6)
      AND ($5 = 1 OR (hashtext(s.msisdn) & 2147483647) % $5 = $6)
      AND NOT EXISTS (
          SELECT 1 FROM bonus_grants g
          WHERE g.msisdn = m.msisdn AND g.owner_epoch = s.owner_epoch AND g.month = $1
      )
    RETURNING id
)
-- every grant carries its notice (month_notice): as many notices as grants
SELECT count(*) AS granted, count(*) AS notices, min(id) AS first_id, max(id) AS last_id
FROM granted

-- name: cancel_overdue
-- R4: pending grants past their 30-day deadline are cancelled, a batch at a time (short
-- locks; SKIP LOCKED lets a concurrent activation or forfeit keep its row). The grants of
-- joins and returns, found by bonus_grants_pending; the monthly job's are walked by
-- cancel_month_overdue (migration 0026).
-- $1: now, $2: batch size.
WITH due AS (
    SELECT id FROM bonus_grants
    WHERE state = 'pending' AND NOT month_notice AND deadline_at <= $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), done AS (
    UPDATE bonus_grants g
    SET state = 'cancelled', closed_at = $1
    FROM due
    WHERE g.id = due.id AND g.state = 'pending'
    RETURNING g.id
)
SELECT count(*) FROM done

-- name: cancel_month_overdue
-- R4 for the monthly job's grants (month_notice; not in bonus_grants_pending, migration
-- 0026): the next $2 grants of the oldest month whose walk is not done, in id order from its
-- cancel_cursor up to notices_upto (the month's recorded runs). Pending ones past their
-- deadline are cancelled; activated, forfeited and cancelled ones, and join grants (the
-- index finds those), are passed over; the walk stops at the first of the job's grants
-- still pending within its deadline: a month's runs were granted in id order, so every
-- later one is within its deadline too. One walker per month (its job_runs row FOR UPDATE
-- SKIP LOCKED); a grant locked by an activation or forfeit is waited for, then its state
-- re-read (the guarded update), so none is passed over while it could still be pending.
-- $1: now, $2: batch size. Returns how many grants the cursor passed and how many it
-- cancelled (the caller repeats while a batch comes back full).
WITH run AS (
    SELECT j.job, j.period, j.cancel_cursor, j.notices_upto
    FROM job_runs j
    WHERE j.job = 'bonus_grant_month'
      AND j.finished_at IS NOT NULL
      AND j.cancel_cursor < j.notices_upto
    ORDER BY j.period
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), batch AS (
    SELECT g.id, g.msisdn, g.state, g.month_notice, g.deadline_at
    FROM run
    CROSS JOIN LATERAL (
        SELECT id, msisdn, state, month_notice, deadline_at FROM bonus_grants g
        WHERE g.id > run.cancel_cursor AND g.id <= run.notices_upto
        ORDER BY g.id
        LIMIT $2
    ) g
), stop AS (
    SELECT min(id) AS id FROM batch
    WHERE month_notice AND state = 'pending' AND deadline_at > $1
), passed AS (
    SELECT b.* FROM batch b, stop WHERE stop.id IS NULL OR b.id < stop.id
), done AS (
    UPDATE bonus_grants g
    SET state = 'cancelled', closed_at = $1
    FROM passed p
    WHERE g.id = p.id AND g.msisdn = p.msisdn
      AND p.month_notice AND p.state = 'pending' AND g.state = 'pending'
    RETURNING g.id
), moved AS (
    -- an empty range (nothing left between the cursor and the end) ends the month's walk
    UPDATE job_runs j
    SET cancel_cursor = CASE WHEN EXISTS (SELECT 1 FROM batch)
                             THEN (SELECT max(id) FROM passed) ELSE run.notices_upto END
    FROM run
    WHERE j.job = run.job AND j.period = run.period
      AND (EXISTS (SELECT 1 FROM passed) OR NOT EXISTS (SELECT 1 FROM batch))
)
SELECT (SELECT count(*) FROM passed)::int AS passed, (SELECT count(*) FROM done)::int AS cancelled

-- name: expire_active
-- R4: active grants past their 7 days expire; a credit still owed for one is given up (the
-- units would arrive already expired).
-- $1: now, $2: batch size.
WITH due AS (
    SELECT id FROM bonus_grants
    WHERE state = 'active' AND expires_at <= $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), done AS (
    UPDATE bonus_grants g
    SET state = 'expired', closed_at = $1
    FROM due
    WHERE g.id = due.id AND g.state = 'active'
    RETURNING g.id
), unpaid AS (
    UPDATE bonus_credits c
    SET state = 'failed', last_error = 'expired before credit'
    FROM done
    WHERE c.grant_id = done.id AND c.state = 'pending'
)
SELECT count(*) FROM done
