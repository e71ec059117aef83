-- Audience uploads insert up to a million deliveries in one statement (issue 16). The foreign
-- key deliveries.campaign_id → campaigns checked each row with a query of its own, after the
-- insert: 11.7 of 51.4 s of a 1M-row upload's INSERT … SELECT (EXPLAIN ANALYZE, trigger
-- deliveries_campaign_id_fkey, 994,381 calls). The same guarantee is kept set-based:
--  * new delivery rows are checked once per statement, as a set (a transition table), and
--    lock their campaigns FOR KEY SHARE as the key's own check did;
--  * a delivery's campaign_id is never changed (it is the recipient's campaign for good);
--  * a campaign with deliveries cannot be deleted, nor its id changed (campaigns are never
--    deleted by the service; this only keeps a hand-written DELETE from orphaning rows).
-- The errors keep the key's SQLSTATE (23503 foreign_key_violation).

ALTER TABLE deliveries DROP CONSTRAINT deliveries_campaign_id_fkey;

CREATE FUNCTION deliveries_campaign_exists() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint[];
    found_ bigint;
BEGIN
    SELECT array_agg(DISTINCT campaign_id) INTO wanted FROM new_deliveries;
    IF wanted IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO found_
    FROM (SELECT 1 FROM campaigns WHERE id = ANY (wanted) FOR KEY SHARE) locked;
    IF found_ <> cardinality(wanted) THEN
        RAISE EXCEPTION 'insert on table "deliveries" violates foreign key constraint "deliveries_campaign_id_fkey"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('A key in (campaign_id)=%s is not present in table "campaigns".', wanted);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER deliveries_campaign_exists
    AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_deliveries
    FOR EACH STATEMENT
    EXECUTE FUNCTION deliveries_campaign_exists();

CREATE FUNCTION deliveries_campaign_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a delivery''s campaign_id does not change'
        USING ERRCODE = 'foreign_key_violation';
END
$$;

-- Fires only for an UPDATE that sets campaign_id (none of the service's do).
CREATE TRIGGER deliveries_campaign_fixed
    BEFORE UPDATE OF campaign_id ON deliveries
    FOR EACH ROW
    WHEN (OLD.campaign_id IS DISTINCT FROM NEW.campaign_id)
    EXECUTE FUNCTION deliveries_campaign_fixed();

CREATE FUNCTION campaigns_keep_deliveries() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM deliveries WHERE campaign_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "campaigns" violates foreign key constraint "deliveries_campaign_id_fkey" on table "deliveries"'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "deliveries".', OLD.id);
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$$;

CREATE TRIGGER campaigns_keep_deliveries
    BEFORE DELETE OR UPDATE OF id ON campaigns
    FOR EACH ROW
    EXECUTE FUNCTION campaigns_keep_deliveries();
