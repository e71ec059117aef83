-- The inbox (issue 14): subscribers' SMS as they arrived, each with the campaign that last
-- reached the number (decided at arrival: insert_mo in mo.sql, migration 0034). The only
-- caller is InboxRepository (dispatcher/program/inbox.py). Kinds: mo_kind(outcome).

-- name: inbox_page
-- The operator's view: messages newest first, keyset-paged on id (the primary key's leading
-- column; with a campaign, mo_messages_campaign). Only messages applied (outcome set: their
-- transaction committed them with it). A survey answer's text is '' (R11: mo_handled).
-- $1: ids below this (NULL: from the newest), $2: campaign (NULL: any), $3: kind (NULL:
-- any), $4: page size.
SELECT m.id, m.msisdn, m.destination, m.body, m.outcome, mo_kind(m.outcome) AS kind,
       m.received_at, m.campaign_id, c.name AS campaign_name, c.partner
FROM mo_messages m
LEFT JOIN campaigns c ON c.id = m.campaign_id
WHERE m.outcome IS NOT NULL
  AND ($1::bigint IS NULL OR m.id < $1)
  AND ($2::bigint IS NULL OR m.campaign_id = $2)
  AND ($3::text IS NULL OR mo_kind(m.outcome) = $3)
ORDER BY m.id DESC
LIMIT $4

-- name: inbox_counts
-- The partners' view: per campaign, how many messages of each kind it was answered with
-- (numbers never leave: counts only, R11; the caller hides small ones). Through
-- mo_messages_campaign; messages reached by no campaign are no partner's.
-- $1: campaign (NULL: every campaign).
SELECT m.campaign_id, c.name AS campaign_name, c.partner, mo_kind(m.outcome) AS kind,
       count(*)::int AS n
FROM mo_messages m
JOIN campaigns c ON c.id = m.campaign_id
WHERE m.campaign_id IS NOT NULL AND m.outcome IS NOT NULL
  AND ($1::bigint IS NULL OR m.campaign_id = $1)
GROUP BY m.campaign_id, c.name, c.partner, mo_kind(m.outcome)
ORDER BY m.campaign_id DESC
