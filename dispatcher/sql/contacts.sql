-- Contacts reserved by other channels (an IVR dialer, USSD push) against the same monthly
-- caps as SMS (R7), so one ledger holds every channel.

-- name: lock_reference
-- Holds the reference until this transaction ends: a second request under the same new
-- reference (for any number) waits here, then `existing` (a statement of its own, so a
-- fresh READ COMMITTED snapshot) sees the first one's committed row. The unique index is
-- per number since migration 0024, so without this two numbers could both be granted.
-- Class 1935762246 is this lock's own (dispatch.sql uses ..44, smsc.sql ..45). $1: reference.
SELECT pg_advisory_xact_lock(1935762246, hashtext($1))

-- name: existing
-- The reservation made under this reference, if any: a repeat of the same contact (same
-- number, kind and month) returns it; any other use of the reference is refused (409).
-- $1: reference.
SELECT id, msisdn, month, kind FROM contact_reservations WHERE reference = $1

-- name: lock_subscriber
-- Takes the number's subscriber row FOR SHARE: a leave or 1204 committing now (it holds the row
-- FOR UPDATE) finishes first, and one starting now waits for this reservation. A statement of
-- its own: in READ COMMITTED the next statement takes its snapshot after the lock is held, so
-- it sees what the leave committed. $1: msisdn.
SELECT msisdn FROM subscribers WHERE msisdn = $1 FOR SHARE

-- name: suppression
-- Why this contact must not be made, or NULL: suppression_for (migration 0008), the rule the
-- dispatch claim applies to campaign messages. An unknown number is 'not_member'.
-- $1: msisdn, $2: scope, $3: kind (info | survey).
SELECT suppression_for(f.status, f.dnc_since, f.member_since, $2::campaign_scope,
                       $3::traffic_kind)
FROM (SELECT $1::text AS msisdn) AS n
LEFT JOIN subscriber_facts f ON f.msisdn = n.msisdn

-- name: reserve_slot
-- The cap slot, by take_cap_slots (migration 0008), the same upsert the dispatch claim uses.
-- Returns the counts after the slot was taken, or no row at the cap.
-- $1: msisdn, $2: month, $3: kind, $4: info cap, $5: survey cap.
SELECT info_count, survey_count, info_cap, survey_cap
FROM take_cap_slots(ARRAY[$1::text], $2::date, $3::contact_kind, $4::int, $5::int)

-- name: record
-- No row when a concurrent request took the same reference for the same number first (the
-- unique index contact_reservations_reference, per number since migration 0024 so a
-- distributed table can hold it): the caller rolls back, giving its slot back, and answers
-- as a repeat of that one. Another number's use of a reference waits at `lock_reference`
-- and is then refused by `existing`. $1: msisdn, $2: month, $3: kind, $4: channel, $5: reference
-- or NULL, $6: now.
INSERT INTO contact_reservations (msisdn, month, kind, channel, reference, reserved_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (reference, msisdn) WHERE reference IS NOT NULL DO NOTHING
RETURNING id
