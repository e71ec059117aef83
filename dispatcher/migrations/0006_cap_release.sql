-- A cap slot is held by a delivery from its claim until its fate is known. When a delivery
-- that holds one ends without reaching anyone — suppressed after its claim (a leave, a 1204,
-- a cancel) or failed permanently — the slot goes back, whichever code path made the change.
-- A BEFORE trigger with a WHEN clause costs nothing on the hot path of other updates.

CREATE FUNCTION deliveries_release_cap() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE contact_counters cc
    SET info_count = cc.info_count - (c.kind = 'info')::int,
        survey_count = cc.survey_count - (c.kind = 'survey')::int
    FROM campaigns c
    WHERE c.id = NEW.campaign_id AND cc.msisdn = NEW.msisdn AND cc.month = OLD.cap_month;
    NEW.cap_month := NULL;
    RETURN NEW;
END
$$;

CREATE TRIGGER deliveries_release_cap
    BEFORE UPDATE OF state ON deliveries
    FOR EACH ROW
    WHEN (OLD.cap_month IS NOT NULL AND NEW.state IN ('suppressed', 'failed')
          AND OLD.state NOT IN ('suppressed', 'failed'))
    EXECUTE FUNCTION deliveries_release_cap();
