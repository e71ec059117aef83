-- A number is not an owner (issue 12: R3, R7, R9, R12).
--
-- Grants and month counters were keyed by (msisdn, month), so the new owner of a recycled
-- number inherited the old owner's month: no joining present (the month "had" a grant) and
-- the old owner's partner messages counted against the new owner's cap. Every recycling now
-- starts a new owner: subscribers.owner_epoch counts them (0: the first owner we know of),
-- and the unique keys of grants, activations and month counters carry it, so the database
-- itself keeps one owner's month apart from the next one's.

ALTER TABLE subscribers ADD COLUMN owner_epoch integer NOT NULL DEFAULT 0
    CHECK (owner_epoch >= 0);

-- Numbers recycled before this migration: one epoch per recycling the consent ledger records
-- (owner_since alone says nothing: an import sets it for every new number). The current
-- owner gets the grants made since owner_since (the last recycling) and the counters of the
-- months after it; the counters of the month of the recycling stay the old owner's (they
-- cannot be told apart), so the new owner starts that month's count afresh.
UPDATE subscribers s SET owner_epoch = r.recyclings
FROM (SELECT msisdn, count(*)::int AS recyclings
      FROM consent_ledger WHERE event = 'recycled' GROUP BY msisdn) AS r
WHERE r.msisdn = s.msisdn AND s.owner_since IS NOT NULL;

-- R3/R4: one grant and one activation per OWNER and month. Existing rows belong to epoch 0,
-- which every existing subscriber has. The constraint and index keep their names.
ALTER TABLE bonus_grants ADD COLUMN owner_epoch integer NOT NULL DEFAULT 0;
UPDATE bonus_grants g SET owner_epoch = s.owner_epoch
FROM subscribers s
WHERE s.msisdn = g.msisdn AND s.owner_epoch > 0 AND g.granted_at >= s.owner_since;
ALTER TABLE bonus_grants DROP CONSTRAINT one_grant_per_month;
ALTER TABLE bonus_grants ADD CONSTRAINT one_grant_per_month UNIQUE (msisdn, owner_epoch, month);
DROP INDEX one_activation_per_month;
CREATE UNIQUE INDEX one_activation_per_month ON bonus_grants (msisdn, owner_epoch, activated_month)
    WHERE activated_month IS NOT NULL;

-- R7: the month's counters belong to the owner too. take_cap_slots keeps its signature (the
-- dispatch claim and the contact reservation call it unchanged) and finds the owner itself.
ALTER TABLE contact_counters ADD COLUMN owner_epoch integer NOT NULL DEFAULT 0;
UPDATE contact_counters cc SET owner_epoch = s.owner_epoch
FROM subscribers s
WHERE s.msisdn = cc.msisdn AND s.owner_epoch > 0
  AND cc.month > date_trunc('month', s.owner_since AT TIME ZONE 'Asia/Almaty')::date;
ALTER TABLE contact_counters DROP CONSTRAINT contact_counters_pkey;
ALTER TABLE contact_counters ADD PRIMARY KEY (msisdn, owner_epoch, month);

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
    WHERE CASE kind WHEN 'info' THEN info_limit ELSE survey_limit END > 0
    ORDER BY n.msisdn COLLATE "C"
    ON CONFLICT (msisdn, owner_epoch, month) DO UPDATE
        SET info_count = cc.info_count + excluded.info_count,
            survey_count = cc.survey_count + excluded.survey_count
        WHERE cc.info_count + excluded.info_count <= cc.info_cap
          AND cc.survey_count + excluded.survey_count <= cc.survey_cap
    RETURNING cc.msisdn, cc.info_count::int, cc.survey_count::int, cc.info_cap::int,
              cc.survey_cap::int;
END;

-- A slot given back goes to the counter of the number's current owner — if it is theirs. A
-- slot the old owner still held when the number was recycled (a message in flight then, which
-- fails or is suppressed later) was taken by a claim before the new owner got the number
-- (claimed_at <= owner_since): it stays on the old owner's counter, and the new owner's is
-- never lowered by it. (claimed_at is NULL only for a row put back in the queue by unclaim or
-- recovery; recycling suppresses every queued row, so such a row is the current owner's.)
-- Recycling suppresses the old owner's queued and claimed rows before it starts the new
-- owner, so their slots go back to the old owner's counter, as before.
CREATE OR REPLACE FUNCTION deliveries_release_cap() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contact_counters cc
    SET info_count = cc.info_count - (c.kind = 'info')::int,
        survey_count = cc.survey_count - (c.kind = 'survey')::int
    FROM campaigns c, subscribers s
    WHERE c.id = NEW.campaign_id AND s.msisdn = NEW.msisdn
      AND cc.msisdn = NEW.msisdn AND cc.owner_epoch = s.owner_epoch
      AND cc.month = OLD.cap_month
      AND (OLD.claimed_at IS NULL OR s.owner_since IS NULL OR OLD.claimed_at > s.owner_since);
    NEW.cap_month := NULL;
    RETURN NEW;
END
$$;

-- R9: a 1204 block stays when its subscriber later joins SMART. Joining is explicit consent
-- to SMART partner messages and surveys, and to nothing else: the block is lifted for a
-- SMART campaign to a member who joined after the 1204, and holds for every operator
-- campaign until an explicit operator opt-in removes it. (A 1204 while a member ends the
-- membership, so an open membership with a 1204 row always began after it.) Everything
-- else is migration 0008's rule unchanged; same signature, still inlined.
CREATE OR REPLACE FUNCTION suppression_for(
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
    WHEN dnc_since IS NOT NULL
         AND NOT (scope IS DISTINCT FROM 'operator'
                  AND coalesce(member_since > dnc_since, false)) THEN
        'dnc'::suppression_reason
    WHEN member_since IS NULL AND scope IS DISTINCT FROM 'operator' THEN
        'not_member'::suppression_reason
END;
