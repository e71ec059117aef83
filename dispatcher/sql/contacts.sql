-- Contacts reserved by other channels (an IVR dialer, USSD push) against the same monthly
-- caps as SMS (R7), so one ledger holds every channel.

-- name: existing
-- A repeated request with the same reference returns the first answer.
-- $1: reference.
SELECT id, msisdn, month, kind FROM contact_reservations WHERE reference = $1

-- name: eligibility
-- Locks the subscriber row FOR SHARE: a leave or 1204 committing now finishes first.
-- $1: msisdn.
SELECT s.status,
       EXISTS (SELECT 1 FROM dnc_blocks k WHERE k.msisdn = s.msisdn) AS dnc,
       EXISTS (SELECT 1 FROM memberships m WHERE m.msisdn = s.msisdn AND m.left_at IS NULL)
           AS member
FROM subscribers s WHERE s.msisdn = $1
FOR SHARE OF s

-- name: reserve_slot
-- The same guarded upsert as the dispatch claim: the WHERE re-checks the cap on the locked
-- row and the table's CHECK backs it up. Returns the counts when a slot was taken.
-- $1: msisdn, $2: month, $3: info slots (0/1), $4: survey slots (0/1), $5: info cap,
-- $6: survey cap.
INSERT INTO contact_counters AS cc (msisdn, month, info_count, survey_count, info_cap, survey_cap)
SELECT $1, $2::date, $3::int, $4::int, $5::int, $6::int
WHERE $3::int <= $5::int AND $4::int <= $6::int
ON CONFLICT (msisdn, month) DO UPDATE
    SET info_count = cc.info_count + excluded.info_count,
        survey_count = cc.survey_count + excluded.survey_count
    WHERE cc.info_count + excluded.info_count <= cc.info_cap
      AND cc.survey_count + excluded.survey_count <= cc.survey_cap
RETURNING info_count, survey_count, info_cap, survey_cap

-- name: record
-- $1: msisdn, $2: month, $3: kind, $4: channel, $5: reference or NULL, $6: now.
INSERT INTO contact_reservations (msisdn, month, kind, channel, reference, reserved_at)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id
