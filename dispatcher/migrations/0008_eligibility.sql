-- One home for eligibility and one for the cap slot (issue 10, point 3).
--
-- Who may receive what was decided in four places that had drifted apart (the dispatch claim,
-- the contact reservation, the segment audiences, and — for the status part — the monthly
-- grant). Now every one of them asks suppression_for() over the facts of subscriber_facts,
-- and every cap slot, whatever the channel, is taken by take_cap_slots().
-- tests/test_eligibility.py checks the rule and each of its users over every combination.

-- What a message is, as far as eligibility goes: a partner info message or a survey (R7
-- contacts, each counted against a cap: contact_kind) or a program service message
-- (confirmations, bonus notices, survey follow-ups: not counted, and sent more widely).
CREATE TYPE traffic_kind AS ENUM ('info', 'survey', 'service');

-- The facts eligibility depends on, one row per known number: its life-cycle status (R12),
-- since when it has the 1204 block (R9; NULL: none) and since when it is a SMART member
-- (R1, R2; NULL: not a member now); and its language (R14), which every sender reads beside
-- them. A plain view, so a query that joins it is planned as if it joined the three tables
-- itself. Its columns are the tables' own, not expressions over them: a view on the nullable
-- side of a join (the claim's batch LEFT JOIN subscriber_facts) whose columns were computed
-- (say `k.msisdn IS NOT NULL`) would force PostgreSQL to join the three tables before the
-- batch, and lose the claim the plans it had.
CREATE VIEW subscriber_facts AS
SELECT s.msisdn,
       s.status,
       k.blocked_at AS dnc_since,
       m.joined_at AS member_since,
       s.language
FROM subscribers s
LEFT JOIN dnc_blocks k ON k.msisdn = s.msisdn
LEFT JOIN memberships m ON m.msisdn = s.msisdn AND m.left_at IS NULL;

-- The rule (R1, R2, R9, R12): why a message of `kind` in a campaign of `scope` must not reach
-- a number with these facts (subscriber_facts' columns), or NULL when it may. The first
-- reason that applies is reported:
--   service messages: recycled, blocked (R12) and nothing else — a confirmation of a leave
--     or a 1204 must reach the leaver, whatever membership and 1204 now say;
--   info and surveys: not_member for a number this service does not know (status NULL),
--     recycled, blocked, dnc (1204 ends all telemarketing, SMART and operator alike), then
--     not_member for a SMART campaign to a non-member.
-- outgoing_blocked numbers still receive SMS (R12: only a full block stops incoming). A
-- later join lifts a 1204 block by deleting it (R9, Membership.join), so no member has one.
-- A scope that is not 'operator' is held to SMART's rule.
-- One LANGUAGE sql expression, IMMUTABLE, not STRICT: the planner inlines it, so a
-- set-based query pays one CASE per row, as if the rule were written in place.
CREATE FUNCTION suppression_for(
    status subscriber_status,
    dnc_since timestamptz,
    member_since timestamptz,
    scope campaign_scope,
    kind traffic_kind
) RETURNS suppression_reason
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN kind = 'service' THEN
        CASE status
            WHEN 'recycled' THEN 'recycled'::suppression_reason
            WHEN 'blocked' THEN 'blocked'::suppression_reason
        END
    WHEN status IS NULL THEN 'not_member'::suppression_reason
    WHEN status = 'recycled' THEN 'recycled'::suppression_reason
    WHEN status = 'blocked' THEN 'blocked'::suppression_reason
    WHEN dnc_since IS NOT NULL THEN 'dnc'::suppression_reason
    WHEN member_since IS NULL AND scope IS DISTINCT FROM 'operator' THEN
        'not_member'::suppression_reason
END;

-- R7, invariant 1: one monthly cap slot of `kind` for each of `numbers` (distinct; a repeat
-- is an error, not a second slot), in one statement. Returns a row for each number that got
-- its slot, with the counts after it; a number at its cap returns nothing. The upsert's WHERE
-- makes PostgreSQL re-check the cap on the locked, latest row version, and the table's CHECKs
-- back it up: no caller, however concurrent, can pass a cap. A new row copies the caps given
-- (info_limit, survey_limit) so the CHECKs can hold them; a limit of 0 grants nothing.
-- Numbers are taken in one order (byte order), so two calls over overlapping numbers (two
-- campaigns claimed at once) cannot deadlock on their counter rows.
-- Used by the dispatch claim (a batch) and by the contact reservation (one number).
CREATE FUNCTION take_cap_slots(
    numbers text[],
    for_month date,
    kind contact_kind,
    info_limit integer,
    survey_limit integer
) RETURNS TABLE (
    msisdn text,
    info_count integer,
    survey_count integer,
    info_cap integer,
    survey_cap integer
)
LANGUAGE sql VOLATILE
BEGIN ATOMIC
    INSERT INTO contact_counters AS cc (msisdn, month, info_count, survey_count, info_cap,
                                        survey_cap)
    SELECT n.msisdn, for_month, (kind = 'info')::int, (kind = 'survey')::int, info_limit,
           survey_limit
    FROM unnest(numbers) AS n (msisdn)
    WHERE CASE kind WHEN 'info' THEN info_limit ELSE survey_limit END > 0
    ORDER BY n.msisdn COLLATE "C"
    ON CONFLICT (msisdn, month) DO UPDATE
        SET info_count = cc.info_count + excluded.info_count,
            survey_count = cc.survey_count + excluded.survey_count
        WHERE cc.info_count + excluded.info_count <= cc.info_cap
          AND cc.survey_count + excluded.survey_count <= cc.survey_cap
    RETURNING cc.msisdn, cc.info_count::int, cc.survey_count::int, cc.info_cap::int,
              cc.survey_cap::int;
END;
