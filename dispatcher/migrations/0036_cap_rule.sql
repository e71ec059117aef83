-- Issue 14/15: the forecast before a start says how many recipients a cap would refuse. The
-- cap rule lived only inside take_cap_slots' upsert (its two WHERE clauses), so a read-only
-- question ("would this number get its slot now?") would have needed a second copy of it.
-- The rule moves into two functions, which take_cap_slots now calls and the forecast
-- (dispatcher/sql/forecast.sql) calls too: one home, as suppression_for is for eligibility.
--   cap_open: a kind whose monthly limit is 0 takes no slot at all (no counter row is made);
--   cap_slot_fits: a number's counter row of the month has room for one more of `kind`
--     (the row's own caps: the limits when the row was made, as the CHECKs hold them).
-- Both LANGUAGE sql IMMUTABLE expressions, inlined by the planner. take_cap_slots keeps its
-- signature and behaviour exactly (tests/test_contacts.py, tests/test_eligibility.py).

CREATE FUNCTION cap_open(kind contact_kind, info_limit integer, survey_limit integer)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE kind WHEN 'info' THEN info_limit ELSE survey_limit END > 0;

CREATE FUNCTION cap_slot_fits(
    kind contact_kind,
    info_count integer,
    survey_count integer,
    info_cap integer,
    survey_cap integer
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN info_count + (kind = 'info')::int <= info_cap
   AND survey_count + (kind = 'survey')::int <= survey_cap;

CREATE OR REPLACE FUNCTION take_cap_slots(
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
    -- The owner is the number's current epoch (an unknown number, which eligibility refuses
    -- before any caller gets here, would count as the first owner). Numbers are taken in
    -- one order (byte order), so two calls over overlapping numbers cannot deadlock.
    INSERT INTO contact_counters AS cc (msisdn, owner_epoch, month, info_count, survey_count,
                                        info_cap, survey_cap)
    SELECT n.msisdn, coalesce(s.owner_epoch, 0), for_month, (kind = 'info')::int,
           (kind = 'survey')::int, info_limit, survey_limit
    FROM unnest(numbers) AS n (msisdn)
    LEFT JOIN subscribers s ON s.msisdn = n.msisdn
    WHERE cap_open(kind, info_limit, survey_limit)
    ORDER BY n.msisdn COLLATE "C"
    ON CONFLICT (msisdn, owner_epoch, month) DO UPDATE
        SET info_count = cc.info_count + excluded.info_count,
            survey_count = cc.survey_count + excluded.survey_count
        WHERE cap_slot_fits(kind, cc.info_count, cc.survey_count, cc.info_cap, cc.survey_cap)
    RETURNING cc.msisdn, cc.info_count::int, cc.survey_count::int, cc.info_cap::int,
              cc.survey_cap::int;
END;

-- The number's current owner (migration 0014) beside its facts, so the forecast finds the
-- month's counter row of the owner without joining subscribers a second time (a hash join of
-- the whole audience). A column of the table, added at the end: the view's other users and
-- their plans are unchanged (a column a query does not read is not joined for).
CREATE OR REPLACE VIEW subscriber_facts AS
SELECT s.msisdn,
       s.status,
       k.blocked_at AS dnc_since,
       m.joined_at AS member_since,
       s.language,
       s.owner_epoch
FROM subscribers s
LEFT JOIN dnc_blocks k ON k.msisdn = s.msisdn
LEFT JOIN memberships m ON m.msisdn = s.msisdn AND m.left_at IS NULL;
