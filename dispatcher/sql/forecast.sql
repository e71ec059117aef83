-- The forecast before a start (issue 15, "Forecast before start"; issue 14): what the claim
-- (dispatch.sql claim_campaign_batch) would decide for each still-queued recipient if it ran
-- now, in one set-based statement, reading only: the same campaign end check, the same
-- eligibility rule (suppression_for, migrations 0008/0014) and the same cap rule (cap_open and
-- cap_slot_fits, migration 0036, which take_cap_slots calls). Nothing is written or locked.
-- The only caller is dispatcher/engine/forecast.py.

-- name: forecast
-- One row per (reason, language, variables, variant): reason NULL for the recipients that would be
-- sent, whose parts the engine's render and encoding then count in Python once per distinct
-- (language, variables), never per row; for not_member, how many of them left the program.
-- (Grouped by the reason as computed, not by language and values nulled for the suppressed:
-- each row's reason is then computed once, not once per grouping key.) Run under
-- plan_forecast, in a read-only transaction.
-- A row that already holds its slot (cap_month set: a retry) takes no second one, as in the
-- claim. Each recipient's text is its variant's (migration 0039); the holdout, recorded final
-- at the audience's load and never claimed, is one more row of its own (reason 'holdout',
-- through deliveries_campaign_state), not one of the claim's reasons.
-- $1 campaign id, $2 now, $3 the Astana month, $4 info cap, $5 survey cap.
WITH c AS (
    SELECT id, kind, scope, end_at FROM campaigns WHERE id = $1
), verdict AS (
    SELECT f.language, d.variables, d.variant,
           CASE
               WHEN c.end_at IS NOT NULL AND c.end_at <= $2 THEN
                   'outside_campaign_window'::suppression_reason
               ELSE coalesce(
                   suppression_for(f.status, f.dnc_since, f.member_since, c.scope,
                                   c.kind::text::traffic_kind),
                   CASE
                       WHEN d.cap_month IS NOT NULL THEN NULL
                       WHEN NOT cap_open(c.kind, $4::int, $5::int)
                            OR NOT coalesce(cap_slot_fits(c.kind, cc.info_count, cc.survey_count,
                                                          cc.info_cap, cc.survey_cap), true) THEN
                           CASE c.kind WHEN 'info' THEN 'cap_info' ELSE 'cap_survey' END
                               ::suppression_reason
                   END)
           END AS reason,
           d.msisdn
    FROM deliveries d
    CROSS JOIN c
    LEFT JOIN subscriber_facts f ON f.msisdn = d.msisdn
    LEFT JOIN contact_counters cc
        ON cc.msisdn = d.msisdn AND cc.owner_epoch = f.owner_epoch AND cc.month = $3::date
    WHERE d.campaign_id = $1 AND d.state = 'queued'
)
SELECT v.reason::text AS reason, v.language::text AS language, v.variables, v.variant,
       count(*) AS n,
       -- of the not_member ones, how many were members and left (R2: STOP, *111*0#, …)
       count(*) FILTER (
           WHERE v.reason = 'not_member'
             AND EXISTS (SELECT 1 FROM memberships m
                         WHERE m.msisdn = v.msisdn AND m.left_at IS NOT NULL)) AS left_program
FROM verdict v
GROUP BY v.reason, v.language, v.variables, v.variant
UNION ALL
SELECT 'holdout', NULL, NULL, NULL, count(*), 0
FROM deliveries
WHERE campaign_id = $1 AND state = 'suppressed' AND suppressed = 'holdout'

-- name: plan_forecast
-- The forecast's transaction hashes its groups in memory: a few thousand (reason, language,
-- values) groups of up to a million rows, which the planner, unable to estimate groups of an
-- expression, otherwise sorted on disk (measured: 1.6 of 6.3 s at 200,000 rows). Scoped to
-- the forecast's read-only transaction.
SELECT set_config('work_mem', '256MB', true),
       set_config('enable_sort', 'off', true)
