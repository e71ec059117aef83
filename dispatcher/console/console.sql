-- Queries of the web console (dispatcher/console): its sessions, and the two aggregates its
-- pages need beyond the campaign reports (campaigns/reports.py).

-- name: open_session
-- $1: sha256 of the session id, $2: token id, $3: role, $4: CSRF secret, $5: now,
-- $6: expiry.
INSERT INTO console_sessions (id_hash, token_id, role, csrf_secret, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)

-- name: session_of
-- The live session of a cookie: one primary-key probe joined to its token, so a revoked or
-- expired token ends every console session opened with it at once.
-- $1: sha256 of the session id, $2: now.
SELECT s.csrf_secret, s.role, s.expires_at, t.id AS token_id, t.name
FROM console_sessions s
JOIN api_tokens t ON t.id = s.token_id
WHERE s.id_hash = $1
  AND s.expires_at > $2
  AND t.revoked_at IS NULL
  AND (t.expires_at IS NULL OR t.expires_at > $2)

-- name: close_session
-- Sign-out. $1: sha256 of the session id. The id_hash of the row ended, if there was one.
DELETE FROM console_sessions WHERE id_hash = $1 RETURNING id_hash

-- name: sweep_expired
-- Run at each sign-in (console_sessions_expires keeps it an index range). $1: now.
DELETE FROM console_sessions WHERE expires_at <= $1

-- name: campaign_progress
-- Delivery counts by state for a page of campaigns in one scan
-- (deliveries_campaign_state). $1: campaign ids.
SELECT campaign_id, state::text, count(*) AS n
FROM deliveries
WHERE campaign_id = ANY($1::bigint[])
GROUP BY campaign_id, state

-- name: submits_over_time
-- Submits per time bucket, for the throughput chart; buckets with none are absent.
-- $1: campaign id, $2: bucket width, $3: origin of the buckets (the first submit).
SELECT date_bin($2::interval, submitted_at, $3) AS bucket, count(*) AS n
FROM deliveries
WHERE campaign_id = $1 AND submitted_at IS NOT NULL
GROUP BY bucket
ORDER BY bucket
