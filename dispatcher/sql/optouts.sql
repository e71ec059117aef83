-- Opt-out attribution (issue 15, migration 0040): each STOP, 1204 and leave with the campaign
-- whose message last reached the number. The only caller is dispatcher/program/optouts.py:
-- record_opt_out inside the leave's or the 1204's own transaction (Membership), the reads
-- for the campaign report and the partners view.

-- name: record_opt_out
-- One opt-out, attributed by last_reach (the inbox's rule, migration 0040) unless that
-- delivery was already blamed for an earlier opt-out of the number (one per delivery:
-- opt_outs_one_per_delivery, probed here on the number's own rows). The caller holds the
-- subscriber row's lock, so one number's opt-outs are written one at a time.
-- $1: msisdn, $2: now, $3: kind, $4: channel, $5: the attribution span.
INSERT INTO opt_outs (msisdn, at, kind, channel, campaign_id, delivery_id)
SELECT $1, $2, $3, $4, r.campaign_id, r.delivery_id
FROM (SELECT 1) AS one
LEFT JOIN last_reach($1, $2::timestamptz, $5::interval) r
       ON NOT EXISTS (SELECT 1 FROM opt_outs o
                      WHERE o.delivery_id = r.delivery_id AND o.msisdn = $1)
RETURNING id, campaign_id, delivery_id

-- name: campaign_opt_outs
-- A campaign's opt-outs by kind (opt_outs_campaign). $1: campaign id.
SELECT kind::text, count(*)::bigint AS n
FROM opt_outs
WHERE campaign_id = $1
GROUP BY kind

-- name: partner_campaigns
-- Per campaign that reached anyone or was blamed for an opt-out in the period: its partner,
-- the recipients it reached (messages the SMSC accepted, not reported undelivered: the
-- report's submitted + delivered; by submitted_at in the period) and its opt-outs by kind
-- (by their time in the period). One scan of the deliveries that reached someone (through
-- deliveries_campaign_state); opt-outs through opt_outs_campaign.
-- $1: since (NULL: from the start), $2: until, exclusive (NULL: up to now).
WITH reached AS (
    SELECT d.campaign_id, count(*)::bigint AS n
    FROM deliveries d
    WHERE d.state IN ('submitted', 'delivered')
      AND ($1::timestamptz IS NULL OR d.submitted_at >= $1::timestamptz)
      AND ($2::timestamptz IS NULL OR d.submitted_at < $2::timestamptz)
    GROUP BY d.campaign_id
), opted AS (
    SELECT o.campaign_id,
           count(*) FILTER (WHERE o.kind = 'stop')::bigint AS stop,
           count(*) FILTER (WHERE o.kind = 'dnc')::bigint AS dnc,
           count(*) FILTER (WHERE o.kind = 'leave')::bigint AS leave
    FROM opt_outs o
    WHERE o.campaign_id IS NOT NULL
      AND ($1::timestamptz IS NULL OR o.at >= $1::timestamptz)
      AND ($2::timestamptz IS NULL OR o.at < $2::timestamptz)
    GROUP BY o.campaign_id
)
SELECT c.id AS campaign_id, c.partner, coalesce(r.n, 0) AS reached,
       coalesce(o.stop, 0) AS stop, coalesce(o.dnc, 0) AS dnc, coalesce(o.leave, 0) AS leave
FROM campaigns c
LEFT JOIN reached r ON r.campaign_id = c.id
LEFT JOIN opted o ON o.campaign_id = c.id
WHERE r.campaign_id IS NOT NULL OR o.campaign_id IS NOT NULL
ORDER BY c.id
