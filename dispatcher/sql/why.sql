-- A subscriber's message history and the answer to "why did number X not get campaign Y"
-- (issue 14; dispatcher/program/why.py). Read-only, for operator roles.
--
-- A number's campaign messages are found campaign by campaign: one probe of the unique key
-- deliveries_one_per_recipient (campaign_id, msisdn) per campaign, so the history needs no
-- index of its own on deliveries (the biggest table; its inserts are the audience upload's
-- cost). Service messages and failed receipts are found by number through migration 0030's
-- indexes.

-- name: campaign_of
-- $1: campaign id.
SELECT id, name, partner, kind::text AS kind, scope::text AS scope, state::text AS state,
       start_at, end_at, started_at, finished_at
FROM campaigns WHERE id = $1

-- name: messages
-- The number's messages, newest first: campaign deliveries and program service messages
-- (source 'campaign' | 'service'). `at` orders them: the last thing that happened to the
-- message (its end, its submit, its claim), else when it was queued (a service message's
-- creation, the campaign's start or creation for a delivery not yet claimed).
-- $1: msisdn, $2: limit, $3: offset.
SELECT * FROM (
    SELECT 'campaign' AS source, d.id, c.id AS campaign_id, c.name AS campaign_name,
           c.partner, c.kind::text AS campaign_kind, c.state::text AS campaign_state,
           c.kind::text AS kind, d.state::text AS state, d.suppressed::text AS suppressed,
           d.parts, d.parts_done, d.attempts, d.cap_month, d.not_before, d.claimed_at,
           d.submitted_at, d.finished_at, d.last_status, d.error, d.language::text AS language,
           coalesce(d.finished_at, d.submitted_at, d.claimed_at, c.started_at, c.created_at)
               AS at
    FROM campaigns c
    JOIN deliveries d ON d.campaign_id = c.id AND d.msisdn = $1
    UNION ALL
    SELECT 'service', m.id, c.id, c.name, c.partner, c.kind::text, c.state::text,
           m.kind::text, m.state::text, m.suppressed::text, m.parts, m.parts_done, m.attempts,
           NULL::date, m.not_before, m.claimed_at, m.submitted_at, m.finished_at,
           m.last_status, m.error, m.language::text,
           coalesce(m.finished_at, m.submitted_at, m.claimed_at, m.created_at)
    FROM service_messages m
    LEFT JOIN campaigns c ON c.id = m.campaign_id
    WHERE m.msisdn = $1
) AS x
ORDER BY at DESC, source, id DESC
LIMIT $2 OFFSET $3

-- name: delivery
-- The number's delivery in a campaign, the columns of `messages` and a triggered message's
-- stale_after. $1: campaign id, $2: msisdn.
SELECT 'campaign' AS source, d.id, c.id AS campaign_id, c.name AS campaign_name, c.partner,
       c.kind::text AS campaign_kind, c.state::text AS campaign_state, c.kind::text AS kind,
       d.state::text AS state, d.suppressed::text AS suppressed, d.parts, d.parts_done,
       d.attempts, d.cap_month, d.not_before, d.claimed_at, d.submitted_at, d.finished_at,
       d.last_status, d.error, d.language::text AS language, d.stale_after,
       coalesce(d.finished_at, d.submitted_at, d.claimed_at, c.started_at, c.created_at) AS at
FROM campaigns c
JOIN deliveries d ON d.campaign_id = c.id AND d.msisdn = $2
WHERE c.id = $1

-- name: parts
-- The parts the SMSC accepted of these messages, each with the receipt the applier matched
-- to it and, for a part not delivered, that receipt's error code: the number's own failed
-- receipts (receipts_msisdn_failed, migration 0030, whose predicate `state <> 'delivered'`
-- is repeated here for a generic plan) under any reading of their id, the newest in the
-- part's receipt state. $1: msisdn, $2: delivery ids, $3: service message ids.
SELECT s.delivery_id, s.service_message_id, s.part_no, s.parts, s.submitted_at, s.smsc,
       s.receipt::text AS receipt, s.receipt_at, r.error_code
FROM submits s
LEFT JOIN LATERAL (
    SELECT x.error_code
    FROM receipts x
    WHERE x.msisdn = $1 AND x.state <> 'delivered' AND x.smsc = s.smsc
      AND x.state = s.receipt AND s.message_id IN (x.message_id, x.id_hex, x.id_dec)
    ORDER BY x.id DESC
    LIMIT 1
) r ON true
WHERE s.msisdn = $1
  AND (s.delivery_id = ANY($2::bigint[]) OR s.service_message_id = ANY($3::bigint[]))
ORDER BY s.delivery_id, s.service_message_id, s.part_no, s.id

-- name: rejections
-- The rows of the campaign's uploads rejected with this number (migration 0029).
-- $1: campaign id, $2: the number (E.164 digits).
SELECT r.upload_no, r.line, r.value, r.reason, u.uploaded_at
FROM audience_rejections r
JOIN audience_uploads u ON u.campaign_id = r.campaign_id AND u.upload_no = r.upload_no
WHERE r.campaign_id = $1 AND r.number = $2
ORDER BY r.upload_no, r.line

-- name: cap_users
-- The campaign messages holding the number's cap slots of a month and kind (cap_month is
-- kept while a message holds its slot; migration 0006 clears it when the slot goes back):
-- the current owner's only (R12: a slot claimed before the number passed to its owner is the
-- old owner's). $1: msisdn, $2: month, $3: kind.
SELECT c.id, c.name, c.partner, d.state::text AS state, d.claimed_at, d.submitted_at
FROM campaigns c
JOIN deliveries d ON d.campaign_id = c.id AND d.msisdn = $1
LEFT JOIN subscribers s ON s.msisdn = d.msisdn
WHERE c.kind = $3::contact_kind AND d.cap_month = $2::date
  AND (s.owner_since IS NULL OR d.claimed_at IS NULL OR d.claimed_at > s.owner_since)
ORDER BY d.claimed_at, c.id

-- name: cap_reservations
-- Contacts other channels reserved against the same month's cap (R7, contacts.sql).
-- $1: msisdn, $2: month, $3: kind.
SELECT channel::text AS channel, reference, reserved_at
FROM contact_reservations
WHERE msisdn = $1 AND month = $2::date AND kind = $3::contact_kind AND released_at IS NULL
ORDER BY reserved_at, id

-- name: counters
-- The current owner's counters of a month. $1: msisdn, $2: month.
SELECT cc.info_count, cc.survey_count, cc.info_cap, cc.survey_cap
FROM contact_counters cc
LEFT JOIN subscribers s ON s.msisdn = cc.msisdn
WHERE cc.msisdn = $1 AND cc.month = $2::date AND cc.owner_epoch = coalesce(s.owner_epoch, 0)

-- name: service_ahead
-- Program service messages the engine claims before any campaign message (engine.py
-- _claim): those queued and due now; counted up to $3. $1: now, $2: whether the window is
-- open.
SELECT count(*)::int FROM (
    SELECT 1 FROM service_messages
    WHERE state = 'queued' AND (not_before IS NULL OR not_before <= $1)
      AND ($2::boolean OR NOT in_window)
    LIMIT $3
) AS x

-- name: ahead_in_campaign
-- Queued recipients of the campaign claimed before this one (the claim takes them in id
-- order); counted up to $3. $1: campaign id, $2: the delivery's id.
SELECT count(*)::int FROM (
    SELECT 1 FROM deliveries
    WHERE campaign_id = $1 AND state = 'queued' AND id < $2
    LIMIT $3
) AS x

-- name: recent_campaigns
-- The console's campaign picker: the newest campaigns. $1: how many.
SELECT id, name, partner, state::text AS state FROM campaigns ORDER BY id DESC LIMIT $1
