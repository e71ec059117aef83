-- Scrape-time figures of /metrics (dispatcher/metrics.py). Each must stay cheap with
-- millions of deliveries: none reads history, only the backlog or what is new.

-- name: queue_depth
-- Index-only counts over the partial indexes of queued rows (deliveries_queued,
-- service_messages_queued): the cost follows the backlog, not the table's history.
SELECT (SELECT count(*) FROM deliveries WHERE state = 'queued') AS deliveries,
       (SELECT count(*) FROM service_messages WHERE state = 'queued') AS service_messages

-- name: receipts_since
-- Receipts by state with an id above the high-water mark: a primary-key range scan over
-- what arrived since the last scrape. On the first scrape ($1 NULL) only the mark is read
-- (max(id) is one index probe), so counting starts then.
-- $1: the highest receipts.id already counted, or NULL.
SELECT NULL::text AS state, 0::bigint AS n, coalesce(max(id), 0) AS last_id
FROM receipts WHERE $1::bigint IS NULL
UNION ALL
SELECT state::text, count(*), max(id) FROM receipts WHERE id > $1::bigint GROUP BY state

-- name: suppressed_live
-- Suppressed deliveries of running and paused campaigns by reason; the campaigns_active
-- set is small and deliveries_campaign_state finds each campaign's suppressed rows.
SELECT d.suppressed::text AS reason, count(*) AS n
FROM campaigns c
JOIN deliveries d ON d.campaign_id = c.id AND d.state = 'suppressed'
WHERE c.state IN ('running', 'paused')
GROUP BY d.suppressed

-- name: receipts_unmatched
-- Receipts that name no known submit yet, by SMSC: the applier looked and put them off
-- (receipts_unapplied: the backlog only, not history). A steady rise means the SMSC names
-- ids in a form the id format setting does not read (or receipts beat their submits).
SELECT smsc, count(*) AS n
FROM receipts
WHERE applied_at IS NULL AND matched = false
GROUP BY smsc

-- name: receipts_address_mismatch
-- Receipts whose source address (normalised) is not the number their message went to
-- (issue 13), by SMSC, whether applied or refused (SMARTD_RECEIPT_ADDRESS_CHECK). Rare:
-- the partial index receipts_address_mismatch holds only these.
SELECT smsc, count(*) AS n
FROM receipts
WHERE address_mismatch
GROUP BY smsc

-- name: id_formats
-- Each SMSC's id format setting and what was detected under auto (a handful of rows).
SELECT smsc, setting::text AS setting, coalesce(detected::text, '') AS detected
FROM smsc_id_formats
