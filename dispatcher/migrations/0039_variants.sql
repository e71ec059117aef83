-- Issue 15, "Variants and a control group": a campaign may carry up to 4 text variants with
-- split percentages and a holdout (control group) percentage. Each recipient's arm is decided
-- when the audience is loaded, from (campaign id, msisdn) alone, so it is visible before the
-- start and the same however often it is computed (a partner can recompute it: the formula is
-- in README.md). Holdout recipients are recorded, never sent, and take no cap slot: their row
-- is final from the start (suppressed 'holdout'), so no claim ever reads it.

ALTER TYPE suppression_reason ADD VALUE 'holdout';

-- variants: [{"name": "A", "texts": {language: text}, "percent": 50}, ...], 1–4 of them, the
-- percentages of the non-holdout part summing to 100; '[]' for a campaign of one text, whose
-- `texts` is then its only variant. With variants, `texts` is variant A's (index 0), so old
-- readers of `texts` keep working.
ALTER TABLE campaigns
    ADD COLUMN variants jsonb NOT NULL DEFAULT '[]'
        CONSTRAINT campaigns_variants_list CHECK (jsonb_typeof(variants) = 'array'
                                                  AND jsonb_array_length(variants) <= 4),
    ADD COLUMN holdout_percent smallint NOT NULL DEFAULT 0
        CONSTRAINT campaigns_holdout_percent CHECK (holdout_percent BETWEEN 0 AND 50);

-- A recipient's variant (0-based index into campaigns.variants; 0 for a campaign of one
-- text), NULL for a holdout recipient, who is never sent: a NULL variant is only ever a
-- suppressed row (the reason, 'holdout', cannot be named in this migration's transaction).
-- A constant default: no table rewrite.
ALTER TABLE deliveries
    ADD COLUMN variant smallint DEFAULT 0
        CONSTRAINT deliveries_variant_index CHECK (variant BETWEEN 0 AND 3),
    ADD CONSTRAINT deliveries_holdout_never_sent CHECK (variant IS NOT NULL OR state = 'suppressed');

-- Two independent draws per recipient, from md5('<campaign id>:<msisdn>'): its first 32 bits
-- decide the holdout, its next 32 bits the variant, each taken modulo 10,000 (a bucket).
-- Independent, so a change of the holdout percent moves numbers in or out of the holdout
-- without reshuffling the variants, and a change of the split leaves the holdout as it was.
-- md5, not hashtext: anyone can recompute it (a partner checking the split; README.md).
CREATE FUNCTION audience_bucket(campaign_id bigint, msisdn text, draw integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (('x' || substr(md5(campaign_id::text || ':' || msisdn), 1 + 8 * draw, 8))::bit(32)::bigint
        % 10000)::integer;

-- Where variants 2, 3, 4 start among the buckets of the variant draw: by the cumulative
-- percentages (× 100); '{}' for a campaign of one text. Computed once per statement from the
-- campaign row.
CREATE FUNCTION arm_bounds(variants jsonb) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
    SELECT s.upto * 100
    FROM (
        SELECT e.i, sum((e.v ->> 'percent')::integer) OVER (ORDER BY e.i) AS upto
        FROM jsonb_array_elements(variants) WITH ORDINALITY AS e (v, i)
    ) s
    WHERE s.i < jsonb_array_length(variants)
    ORDER BY s.i
);

-- A recipient's arm: NULL for the holdout, else the variant's index — how many variant starts
-- its variant bucket has reached (width_bucket over the sorted bounds). A campaign of one
-- text and no holdout is variant 0 without hashing (the CASE decides first). One expression
-- of its arguments, which the planner inlines into the statement: 1M rows cost a second, not
-- the ~30 s of a function call per row.
CREATE FUNCTION audience_arm(campaign_id bigint, msisdn text, holdout_percent integer,
                             bounds integer[])
RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    WHEN holdout_percent = 0 AND cardinality(bounds) = 0 THEN 0
    WHEN holdout_percent > 0
         AND audience_bucket(campaign_id, msisdn, 0) < holdout_percent * 100 THEN NULL
    ELSE width_bucket(audience_bucket(campaign_id, msisdn, 1), bounds)
END::smallint;
