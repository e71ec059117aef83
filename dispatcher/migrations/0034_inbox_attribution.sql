-- The inbox (issue 14): each subscriber's SMS (MO: a reply, STOP, 1204) names the campaign
-- that last reached its number, decided once, when it arrives (insert_mo in mo.sql), so the
-- inbox shows what was known then and reads it by campaign through an index instead of
-- searching each number's deliveries on every page. A message no campaign reached within
-- the attribution span (SMARTD_INBOX_ATTRIBUTION_DAYS) names none. No foreign key: a
-- campaign is never deleted, and the key would lock its row for every MO (a reference table
-- under Citus, where this table is distributed by msisdn; the key stays (id, msisdn)).
ALTER TABLE mo_messages ADD COLUMN campaign_id bigint;
CREATE INDEX mo_messages_campaign ON mo_messages (campaign_id, id) WHERE campaign_id IS NOT NULL;

-- "Which campaign last reached this number?": one backward index probe per MO, on the
-- number's own shard (deliveries are distributed by msisdn too).
CREATE INDEX deliveries_reached ON deliveries (msisdn, submitted_at)
    WHERE submitted_at IS NOT NULL;

-- An MO's kind in the inbox, from what it came to (mo_messages.outcome): a STOP to the short
-- code, anything to 1204, else a reply (a survey answer, HELP, any other text).
CREATE FUNCTION mo_kind(outcome text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE outcome WHEN 'left' THEN 'stop' WHEN 'dnc' THEN 'dnc' ELSE 'reply' END
$$;
