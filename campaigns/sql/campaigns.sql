-- Campaign domain queries; the only caller is campaigns/repository.py (CampaignRepository).
-- Every state change is a guarded UPDATE (WHERE state = ANY($allowed_from)): the RETURNING
-- rows say who won, so two processes or two clicks can never both apply the same change.

-- name: insert_campaign
-- $1 name, $2 partner, $3 kind, $4 scope, $5 texts {language: text}, $6 variables (text[]),
-- $7 priority, $8 start_at, $9 end_at, $10 created_by, $11 now, $12 variable defaults
-- {variable: default} (migration 0031), $13 variants [{name, texts, percent}] ('[]': texts
-- alone), $14 holdout percent (migration 0039). apply_caps keeps its default, true: the
-- campaigns_always_capped CHECK (migration 0015) allows nothing else (R7).
-- $13 trigger event, $14 its condition (jsonb), $15 its max delay (all NULL: an audience
-- campaign; migration 0041).
INSERT INTO campaigns (name, partner, kind, scope, texts, variables, priority,
                       start_at, end_at, created_by, created_at, updated_at, variable_defaults,
                       variants, holdout_percent,
                       trigger_event, trigger_condition, trigger_max_delay)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $11, $12::jsonb,
        $13::jsonb, $14, $15, $16::jsonb, $17)
RETURNING *

-- name: insert_survey
-- $1 campaign id, $2 questions [{texts, options}], $3 thanks {language: text}, $4 timeout.
INSERT INTO surveys (campaign_id, questions, thanks, timeout)
VALUES ($1, $2::jsonb, $3::jsonb, $4)
RETURNING *

-- name: get_campaign
-- $1 campaign id.
SELECT * FROM campaigns WHERE id = $1

-- name: get_survey
-- $1 campaign id.
SELECT * FROM surveys WHERE campaign_id = $1

-- name: list_campaigns
-- Keyset paging, newest first. $1 show ids below this (NULL: from the newest), $2 page size,
-- $3 state filter (NULL: all), $4 a LIKE pattern (metacharacters escaped by the caller) that
-- the name or the partner contains, $5 one the name contains, $6 one the partner contains
-- (NULL: any). ILIKE folds case by the database's LC_CTYPE (C.UTF-8 or a UTF-8 locale fold
-- Cyrillic and Kazakh letters too). No index serves a substring: the campaigns table is
-- small (thousands of rows), and the id order still bounds the page.
SELECT * FROM campaigns
WHERE ($1::bigint IS NULL OR id < $1)
  AND ($3::campaign_state IS NULL OR state = $3)
  AND ($4::text IS NULL OR name ILIKE $4 OR partner ILIKE $4)
  AND ($5::text IS NULL OR name ILIKE $5)
  AND ($6::text IS NULL OR partner ILIKE $6)
ORDER BY id DESC
LIMIT $2

-- name: draft_has_audience
-- Editing a draft, with its row locked (lock_for_audience): whether deliveries exist (their
-- variables are keyed by the campaign's columns, which then cannot change). $1 campaign id.
SELECT EXISTS (SELECT 1 FROM deliveries WHERE campaign_id = $1)

-- name: update_draft
-- A draft's content replaced (an edit); guarded: only while it is a draft. Neither state
-- nor audience changes. $1 campaign id, $2 name, $3 partner, $4 kind, $5 scope, $6 texts,
-- $7 variables, $8 priority, $9 start_at, $10 end_at, $11 now, $12 variable defaults,
-- $13 variants, $14 holdout percent, $15 trigger event, $16 condition, $17 max delay
-- (migrations 0039, 0041).
UPDATE campaigns
SET name = $2, partner = $3, kind = $4, scope = $5, texts = $6::jsonb, variables = $7,
    priority = $8, start_at = $9, end_at = $10, updated_at = $11,
    variable_defaults = $12::jsonb, variants = $13::jsonb, holdout_percent = $14,
    trigger_event = $15, trigger_condition = $16::jsonb, trigger_max_delay = $17
WHERE id = $1 AND state = 'draft'
RETURNING *

-- name: reassign_arms
-- After a draft's edit (update_draft, same transaction, the row locked): its audience's arms
-- by the split now (migration 0039). A draft's rows are all queued or held out; only those
-- whose arm changed are written: a row moving into the holdout is final from now, one moving
-- out of it is queued again. $1 campaign id, $2 now.
WITH c AS MATERIALIZED (
    SELECT id, holdout_percent, arm_bounds(variants) AS bounds
    FROM campaigns WHERE id = $1 AND state = 'draft'
), arms AS (
    SELECT d.id, d.msisdn, audience_arm(c.id, d.msisdn, c.holdout_percent, c.bounds) AS arm
    FROM deliveries d CROSS JOIN c
    WHERE d.campaign_id = $1 AND (d.state = 'queued' OR d.suppressed = 'holdout')
)
UPDATE deliveries d
SET variant = a.arm,
    state = CASE WHEN a.arm IS NULL THEN 'suppressed' ELSE 'queued' END::delivery_state,
    suppressed = CASE WHEN a.arm IS NULL THEN 'holdout'::suppression_reason END,
    finished_at = CASE WHEN a.arm IS NULL THEN $2::timestamptz END
FROM arms a
WHERE d.id = a.id AND d.msisdn = a.msisdn AND d.variant IS DISTINCT FROM a.arm

-- name: upsert_survey
-- A draft survey's questions, thanks and timeout, replaced (or first set, when an edit makes
-- the draft a survey). A draft has no sessions yet. $1 campaign id, $2 questions, $3 thanks,
-- $4 timeout.
INSERT INTO surveys (campaign_id, questions, thanks, timeout)
VALUES ($1, $2::jsonb, $3::jsonb, $4)
ON CONFLICT (campaign_id) DO UPDATE
SET questions = excluded.questions, thanks = excluded.thanks, timeout = excluded.timeout

-- name: delete_survey
-- An edit made a draft survey an info campaign: its survey goes (a draft has no sessions,
-- so nothing references it). $1 campaign id.
DELETE FROM surveys WHERE campaign_id = $1

-- name: why_refused
-- After a guarded update matched nothing: the campaign's state and what a start needs.
-- $1 campaign id, $2 now.
SELECT state,
       end_at IS NOT NULL AND end_at <= $2 AS window_over,
       trigger_event IS NOT NULL
           OR EXISTS (SELECT 1 FROM deliveries WHERE campaign_id = $1) AS has_audience,
       approved_by IS NOT NULL AS approved
FROM campaigns WHERE id = $1

-- name: start
-- draft → scheduled (start_at in the future) or running; needs an audience (a triggered
-- campaign's come from events), an open campaign window and, while approval is required
-- ($4, SMARTD_APPROVAL_REQUIRED), an approval of its current content (the
-- campaigns_started_approved CHECK, migration 0038, holds it to that too). $1 campaign id,
-- $2 now, $3 allowed-from states, $4 approval required.
UPDATE campaigns
SET state = CASE WHEN start_at > $2 THEN 'scheduled' ELSE 'running' END::campaign_state,
    started_at = CASE WHEN start_at > $2 THEN NULL ELSE $2 END,
    updated_at = $2,
    approval_required = $4
WHERE id = $1
  AND state = ANY($3::campaign_state[])
  AND (end_at IS NULL OR end_at > $2)
  AND (trigger_event IS NOT NULL OR EXISTS (SELECT 1 FROM deliveries WHERE campaign_id = $1))
  AND (NOT $4::boolean OR approved_by IS NOT NULL)
RETURNING *

-- name: pause
-- scheduled | running → paused. $1 campaign id, $2 now, $3 allowed-from states.
UPDATE campaigns SET state = 'paused', updated_at = $2
WHERE id = $1 AND state = ANY($3::campaign_state[])
RETURNING *

-- name: resume
-- paused → running, or back to scheduled while start_at is still ahead.
-- $1 campaign id, $2 now, $3 allowed-from states.
UPDATE campaigns
SET state = CASE WHEN start_at > $2 THEN 'scheduled' ELSE 'running' END::campaign_state,
    started_at = CASE WHEN start_at > $2 THEN started_at ELSE coalesce(started_at, $2) END,
    updated_at = $2
WHERE id = $1 AND state = ANY($3::campaign_state[])
RETURNING *

-- name: cancel
-- → cancelled, and every still-queued delivery → suppressed 'cancelled', in one statement
-- (so one transaction). Rows already claimed belong to an engine batch; the engine checks
-- the campaign state before it submits. $1 campaign id, $2 now, $3 allowed-from states.
WITH cancelled AS (
    UPDATE campaigns SET state = 'cancelled', finished_at = $2, updated_at = $2
    WHERE id = $1 AND state = ANY($3::campaign_state[])
    RETURNING *
), suppressed AS (
    UPDATE deliveries d SET state = 'suppressed', suppressed = 'cancelled', finished_at = $2
    FROM cancelled c
    WHERE d.campaign_id = c.id AND d.state = 'queued'
    RETURNING d.id
)
SELECT cancelled.*, (SELECT count(*) FROM suppressed) AS suppressed_now FROM cancelled

-- name: activate_due
-- Engine, periodically: scheduled campaigns whose start_at has come → running.
-- $1 now. Campaigns past end_at are left to expire_due.
UPDATE campaigns
SET state = 'running', started_at = coalesce(started_at, $1), updated_at = $1
WHERE state = 'scheduled'
  AND (start_at IS NULL OR start_at <= $1)
  AND (end_at IS NULL OR end_at > $1)
RETURNING id

-- name: expire_due
-- Engine, periodically: campaigns past end_at → expired, their queued deliveries →
-- suppressed 'outside_campaign_window', in one statement. $1 now.
-- Returns one row per expired campaign with the number of deliveries suppressed.
WITH expired AS (
    UPDATE campaigns SET state = 'expired', finished_at = $1, updated_at = $1
    WHERE state IN ('scheduled', 'running', 'paused') AND end_at <= $1
    RETURNING id
), suppressed AS (
    UPDATE deliveries d
    SET state = 'suppressed', suppressed = 'outside_campaign_window', finished_at = $1
    FROM expired e
    WHERE d.campaign_id = e.id AND d.state = 'queued'
    RETURNING d.campaign_id
)
SELECT e.id, (SELECT count(*) FROM suppressed s WHERE s.campaign_id = e.id) AS suppressed
FROM expired e

-- name: complete_finished
-- Engine, periodically: running or paused campaigns with nothing left to send or in
-- progress → completed (issue 14: one paused after its last claim stayed "paused" at 100%
-- for good, every recipient final). The NOT EXISTS probes deliveries_campaign_state
-- (campaign_id, state). A triggered campaign (migration 0041) runs until its end or a
-- cancel: an empty queue only means no event matched lately. $1 now.
UPDATE campaigns c
SET state = 'completed', finished_at = $1, updated_at = $1
WHERE c.state IN ('running', 'paused')
  AND c.trigger_event IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM deliveries d
      WHERE d.campaign_id = c.id AND d.state IN ('queued', 'claimed', 'in_flight')
  )
RETURNING id

-- name: lock_for_audience
-- An audience upload holds the campaign row FOR NO KEY UPDATE for its transaction: a
-- concurrent start or cancel waits for the upload to commit or roll back, and so does another
-- upload or segment to the same campaign — uploads to one campaign run one at a time, which
-- lets insert_uploaded find duplicates by an anti-join instead of ON CONFLICT. (FOR KEY SHARE,
-- taken by deliveries_campaign_exists, migration 0021, does not conflict with it.)
-- $1 campaign id.
SELECT * FROM campaigns WHERE id = $1 FOR NO KEY UPDATE

-- name: create_upload_table
-- Rows of one upload (of one batch: AudienceLoad.load), COPYed here first (no indexes, no
-- WAL), dropped at commit. The rows are in file order: one COPY into an empty table of this
-- one session fills its pages from the first, in the order it reads them, so a row's ctid
-- is its place in the batch (insert_uploaded keeps the first of duplicate rows by it; a
-- line-number column cost the parser a number formatted per row, which the block fast
-- path of campaigns/audience.py cannot write).
CREATE TEMP TABLE audience_upload (msisdn text NOT NULL, vars text[])
ON COMMIT DROP

-- name: clear_upload_table
-- Between two batches of one upload (AudienceLoad.load): the next batch replaces the last.
TRUNCATE audience_upload

-- name: upload_work_mem
-- The upload's sort (below) stays in memory up to ~1M rows; only for this transaction.
SET LOCAL work_mem = '128MB'

-- name: analyze_upload
-- Statistics of the upload table before insert_uploaded: without them the planner guesses
-- 200 distinct numbers and may probe the unique index once per row (a nested-loop anti-join,
-- measured +2 s for 1M rows) instead of hashing the campaign's existing numbers.
ANALYZE audience_upload

-- name: insert_uploaded
-- Queue the uploaded rows (of one batch: AudienceLoad.load): of the numbers the campaign does
-- not have yet (NOT EXISTS), the first occurrence in the file (DISTINCT ON, by ctid: the
-- order COPY wrote the batch in, see create_upload_table). Uploads
-- to one campaign run one at a time (lock_for_audience), so no other transaction adds to it
-- meanwhile; a plain INSERT then does what ON CONFLICT DO NOTHING did without its speculative
-- insertion per row, and deliveries_one_per_recipient still backs it (a conflict would fail
-- the upload, never queue a number twice).
-- Inserted in msisdn order: the DISTINCT ON's sort is the statement's outermost ORDER BY,
-- above the anti-join (a hash anti-join returns rows in hash order: with the sort below it,
-- the console's browser flow saw its deliveries claimed out of order), so the ids, and the
-- order the engine claims deliveries in, follow the numbers within a batch, with one sort;
-- and the msisdn indexes grow by appending instead of splitting pages at random (measured:
-- about half the index time for 1M rows). The sort compares bytes (COLLATE "C": the numbers
-- are digits, so the order is the same; the locale's comparison made the sort of 1M rows 7
-- of 51 s loaded).
-- Each row's arm (migration 0039: audience_arm of the campaign's holdout and split, variant
-- 0 without a hash for a campaign of one text and no holdout): a holdout row is recorded final at once,
-- suppressed 'holdout', so no claim reads it and it never takes a cap slot.
-- $1 campaign id, $2 variable names (the campaign's declared columns, in vars order), $3 now.
-- → rows queued (counted from RETURNING: Citus promises no count in a command tag).
WITH c AS MATERIALIZED (
    -- the split, computed once; its columns reach audience_arm as plain values, so the
    -- planner inlines it (a subquery as its argument would make it a call per row: ~30 s
    -- for 1M rows instead of ~3)
    SELECT holdout_percent, arm_bounds(variants) AS bounds FROM campaigns WHERE id = $1
), queued AS (
    INSERT INTO deliveries (campaign_id, msisdn, variables, variant, state, suppressed,
                            finished_at)
    SELECT a.campaign_id, a.msisdn, a.variables, a.arm,
           CASE WHEN a.arm IS NULL THEN 'suppressed' ELSE 'queued' END::delivery_state,
           CASE WHEN a.arm IS NULL THEN 'holdout'::suppression_reason END,
           CASE WHEN a.arm IS NULL THEN coalesce($3::timestamptz, now()) END
    FROM (
        SELECT DISTINCT ON (f.msisdn COLLATE "C")
               $1::bigint AS campaign_id, f.msisdn,
               CASE WHEN f.vars IS NULL THEN NULL ELSE jsonb_object($2::text[], f.vars) END
                   AS variables,
               audience_arm($1, f.msisdn, c.holdout_percent, c.bounds) AS arm
        FROM audience_upload f CROSS JOIN c
        WHERE NOT EXISTS (SELECT 1 FROM deliveries d
                          WHERE d.campaign_id = $1 AND d.msisdn = f.msisdn)
        ORDER BY f.msisdn COLLATE "C", f.ctid
    ) a
    RETURNING 1
)
SELECT count(*) FROM queued

-- name: insert_segment
-- Segment audience: every subscriber the campaign may reach, by suppression_for (migrations
-- 0008, 0014) for the campaign's scope and kind: not blocked, not recycled, no 1204 (for a
-- SMART campaign, none that a later join lifted; outgoing-blocked numbers still receive SMS).
-- smart_members ($2 true): current SMART members only (suppression_for never says
-- not_member of a member). active_subscribers ($2 false): membership is left to the claim,
-- as for an uploaded file: a SMART campaign reports the non-members it reached as
-- not_member. The claim applies the whole rule again when sending.
-- Each row's arm as insert_uploaded gives it (migration 0039).
-- $1 campaign id, $2 members only, $3 now. → rows queued (RETURNING).
WITH c AS MATERIALIZED (
    -- the campaign and its split, computed once (see insert_uploaded)
    SELECT id, scope, kind, holdout_percent, arm_bounds(variants) AS bounds
    FROM campaigns WHERE id = $1
), queued AS (
    INSERT INTO deliveries (campaign_id, msisdn, variant, state, suppressed, finished_at)
    SELECT a.id, a.msisdn, a.arm,
           CASE WHEN a.arm IS NULL THEN 'suppressed' ELSE 'queued' END::delivery_state,
           CASE WHEN a.arm IS NULL THEN 'holdout'::suppression_reason END,
           CASE WHEN a.arm IS NULL THEN $3::timestamptz END
    FROM (
    SELECT c.id, f.msisdn, audience_arm(c.id, f.msisdn, c.holdout_percent, c.bounds) AS arm
    FROM c CROSS JOIN subscriber_facts f
    WHERE (NOT $2::boolean OR f.member_since IS NOT NULL)
      AND coalesce(suppression_for(f.status, f.dnc_since, f.member_since, c.scope,
                                   c.kind::text::traffic_kind), 'not_member') = 'not_member'
    ) a
    ON CONFLICT ON CONSTRAINT deliveries_one_per_recipient DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM queued

-- name: set_segment
-- $1 campaign id, $2 segment name, $3 now.
UPDATE campaigns SET segment = $2, updated_at = $3 WHERE id = $1

-- name: audience_changed
-- An upload or a segment changes the audience, so the content a checker approved: a new
-- content_version, which clears the approval (trigger campaigns_content_version, migration
-- 0038). A scheduled campaign under maker-checker ($2, or started under it) goes back to
-- draft, to be approved again. The row is locked (lock_for_audience). $1 campaign id,
-- $2 approval required. → the state after.
UPDATE campaigns
SET content_version = content_version + 1,
    state = CASE WHEN state = 'scheduled' AND (approval_required OR $2::boolean)
                 THEN 'draft' ELSE state END::campaign_state
WHERE id = $1
RETURNING state, approval_required

-- name: approve
-- A checker approves the content version they saw. Guarded: a draft, not yet approved, of
-- that version, and not by its creator (the campaigns_not_self_approved CHECK holds that
-- too). The row is locked first (lock_for_audience), so of two approvers one wins and the
-- other sees the approval. $1 campaign id, $2 approver, $3 their role, $4 now, $5 content
-- version.
UPDATE campaigns
SET approved_by = $2, approved_role = $3, approved_at = $4, approved_version = $5,
    updated_at = $4
WHERE id = $1
  AND state = 'draft'
  AND approved_by IS NULL
  AND content_version = $5
  AND created_by IS DISTINCT FROM $2
RETURNING *

-- name: delivery_counts
-- The report in one scan of the campaign's deliveries (deliveries_campaign_state).
-- $1 campaign id, $2 start of the throughput window (submitted since).
SELECT state::text, suppressed::text, count(*) AS n,
       count(*) FILTER (WHERE submitted_at >= $2) AS recent,
       min(submitted_at) AS first_submitted, max(submitted_at) AS last_submitted
FROM deliveries
WHERE campaign_id = $1
GROUP BY state, suppressed

-- name: survey_counts
-- Survey results, counts only (R11: survey_answers holds no msisdn, and no session once
-- that closed), in one round trip and without touching deliveries: rows with a question_no
-- count the answers per question and option (survey_answers_survey), rows with a state count
-- the sessions per state (the (survey_id, msisdn) unique index). $1 survey id.
SELECT a.question_no, a.option_no, NULL::text AS state, count(*) AS n
FROM survey_answers a
WHERE a.survey_id = $1
GROUP BY a.question_no, a.option_no
UNION ALL
SELECT NULL, NULL, state::text, count(*)
FROM survey_sessions
WHERE survey_id = $1
GROUP BY state

-- name: begin_upload
-- An audience upload's record (migration 0029), numbered on from the campaign's last one;
-- its counts are set by finish_upload in the same transaction. The campaign row is locked
-- (lock_for_audience), so no other upload to it takes the same number.
-- $1 campaign id, $2 now, $3 uploaded by. → upload_no.
INSERT INTO audience_uploads (campaign_id, upload_no, uploaded_at, uploaded_by,
                              lines, accepted, duplicates, rejected)
SELECT $1, coalesce(max(upload_no), 0) + 1, $2, $3, 0, 0, 0, 0
FROM audience_uploads WHERE campaign_id = $1
RETURNING upload_no

-- name: finish_upload
-- $1 campaign id, $2 upload_no, $3 lines, $4 accepted, $5 duplicates, $6 rejected.
UPDATE audience_uploads SET lines = $3, accepted = $4, duplicates = $5, rejected = $6
WHERE campaign_id = $1 AND upload_no = $2

-- name: audience_uploads
-- A campaign's uploads, oldest first. $1 campaign id.
SELECT upload_no, uploaded_at, uploaded_by, lines, accepted, duplicates, rejected
FROM audience_uploads WHERE campaign_id = $1 ORDER BY upload_no

-- name: rejected_rows
-- Every rejected row of a campaign's uploads (of one, $2 not null), in upload and line
-- order, read through a cursor. $1 campaign id, $2 upload_no or NULL.
SELECT upload_no, line, value, number, reason
FROM audience_rejections
WHERE campaign_id = $1 AND ($2::integer IS NULL OR upload_no = $2)
ORDER BY upload_no, line

-- name: variant_report
-- Variants and a control group (issue 15): per arm (variant index; NULL the holdout) counts
-- only (R11: the caller suppresses small cells) — recipients, sent (a part reached the SMSC),
-- delivered, survey respondents (a session past question 1 or completed), opt-outs (a leave:
-- STOP, *555*2#, 1204 — consent_ledger 'left' or 'dnc_blocked') and bonus activations
-- (bonus_grants.activated_at, R4). Opt-outs and activations are counted for every recipient
-- of the arm from the campaign's start on, the holdout's and the variants' alike: the same
-- window for each arm (intention to treat), so an arm's rate compares with the holdout's.
-- Each is a probe of the number's own rows (consent_ledger_msisdn, one_grant_per_month,
-- the survey's (survey_id, msisdn) key): one scan of the campaign's deliveries.
-- $1 campaign id, $2 opt-out span, $3 activation span, $4 until (now: a window not yet
-- over counts what has happened so far).
WITH c AS (
    SELECT c.id, c.started_at, s.id AS survey_id
    FROM campaigns c LEFT JOIN surveys s ON s.campaign_id = c.id
    WHERE c.id = $1
)
SELECT d.variant,
       count(*) AS recipients,
       count(*) FILTER (WHERE d.submitted_at IS NOT NULL) AS sent,
       count(*) FILTER (WHERE d.state = 'delivered') AS delivered,
       count(*) FILTER (WHERE c.survey_id IS NOT NULL AND EXISTS (
           SELECT 1 FROM survey_sessions ss
           WHERE ss.survey_id = c.survey_id AND ss.msisdn = d.msisdn
             AND (ss.state = 'completed' OR ss.question_no > 1))) AS responded,
       count(*) FILTER (WHERE c.started_at IS NOT NULL AND EXISTS (
           SELECT 1 FROM consent_ledger l
           WHERE l.msisdn = d.msisdn AND l.event IN ('left', 'dnc_blocked')
             AND l.occurred_at >= c.started_at
             AND l.occurred_at < least(c.started_at + $2::interval, $4::timestamptz)))
           AS opted_out,
       count(*) FILTER (WHERE c.started_at IS NOT NULL AND EXISTS (
           SELECT 1 FROM bonus_grants g
           WHERE g.msisdn = d.msisdn
             AND g.activated_at >= c.started_at
             AND g.activated_at < least(c.started_at + $3::interval, $4::timestamptz)))
           AS activated
FROM deliveries d CROSS JOIN c
WHERE d.campaign_id = $1
GROUP BY d.variant
