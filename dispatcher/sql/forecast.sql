-- The forecast before a start (issue 15, "Forecast before start"; issue 14): what the claim
-- (dispatch.sql claim_campaign_batch) would decide for each still-queued recipient if it ran
-- now, in one set-based statement, reading only: the same campaign end check, the same
-- eligibility rule (suppression_for, migrations 0008/0014) and the same cap rule (cap_open and
-- cap_slot_fits, migration 0036, which take_cap_slots calls). Nothing is written or locked.
-- The only caller is dispatcher/engine/forecast.py.

-- name: forecast
-- One row per suppression reason (language and variables NULL; for not_member, how many of
-- them left the program), and per distinct (language,
-- variables) among the recipients that would be sent (reason NULL): the engine's render and
-- encoding then count their parts in Python, once per distinct pair, never per row.
-- A row that already holds its slot (cap_month set: a retry) takes no second one, as in the
-- claim. $1 campaign id, $2 now, $3 the Astana month, $4 info cap, $5 survey cap.
WITH c AS (
    SELECT id, kind, scope, end_at FROM campaigns WHERE id = $1
), verdict AS (
    SELECT f.language, d.variables,
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
    LEFT JOIN subscribers s ON s.msisdn = d.msisdn
    LEFT JOIN contact_counters cc
        ON cc.msisdn = d.msisdn AND cc.owner_epoch = s.owner_epoch AND cc.month = $3::date
    WHERE d.campaign_id = $1 AND d.state = 'queued'
)
SELECT v.reason::text AS reason,
       CASE WHEN v.reason IS NULL THEN v.language::text END AS language,
       CASE WHEN v.reason IS NULL THEN v.variables END AS variables,
       count(*) AS n,
       -- of the not_member ones, how many were members and left (R2: STOP, *111*0#, …)
       count(*) FILTER (
           WHERE v.reason = 'not_member'
             AND EXISTS (SELECT 1 FROM memberships m
                         WHERE m.msisdn = v.msisdn AND m.left_at IS NOT NULL)) AS left_program
FROM verdict v
GROUP BY 1, 2, 3
