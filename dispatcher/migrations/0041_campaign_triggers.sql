-- Triggered campaigns (issue 15): a campaign whose recipients come from operator events
-- (POST /gateway/events) instead of an audience file. The trigger is three columns of the
-- campaign (campaigns/triggers.py validates them at create): the event type, an optional
-- condition {"field", "op", "value"} on the event's payload, and the longest a queued message
-- may wait (for the send window) before it is dropped as stale.
ALTER TABLE campaigns
    ADD COLUMN trigger_event text
        CHECK (trigger_event IN ('top_up', 'tariff_change', 'subscriber_status')),
    ADD COLUMN trigger_condition jsonb
        CHECK (trigger_condition IS NULL OR jsonb_typeof(trigger_condition) = 'object'),
    ADD COLUMN trigger_max_delay interval,
    ADD CONSTRAINT campaigns_trigger_whole CHECK (
        (trigger_event IS NULL) = (trigger_max_delay IS NULL)
        AND (trigger_event IS NOT NULL OR trigger_condition IS NULL)
    );

-- The events path selects the running triggered campaigns of an event's type on every
-- accepted event: a handful of rows, reached by this index whatever the campaigns table holds.
CREATE INDEX campaigns_triggered ON campaigns (trigger_event)
    WHERE state = 'running' AND trigger_event IS NOT NULL;

-- A triggered delivery is dropped (suppressed 'stale') when its claim comes after this time:
-- the event's time + the campaign's trigger_max_delay. NULL for an audience's deliveries.
ALTER TABLE deliveries ADD COLUMN stale_after timestamptz;

-- Used by dispatch.sql from the next transaction on (a value added by ALTER TYPE cannot be
-- used in the transaction that adds it, so nothing below names it).
ALTER TYPE suppression_reason ADD VALUE 'stale';

-- Whether an event's payload meets a trigger's condition (NULL: every event of the type).
-- One comparison of the payload's field with the constant, both jsonb: numbers compare as
-- numbers (1000 = 1000.0), texts by equality; a missing field or one of another JSON type
-- than the constant never matches (the gateway gives each field one type, and the trigger's
-- validation gives the constant the field's type). 'in': the field equals one element of the
-- constant array. The same rule in Python: campaigns/triggers.py matches().
CREATE FUNCTION trigger_matches(cond jsonb, payload jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN cond IS NULL THEN true
        ELSE coalesce((
            SELECT CASE cond ->> 'op'
                WHEN 'in' THEN jsonb_typeof(v) IN ('number', 'string')
                               AND jsonb_typeof(w) = 'array'
                               AND w @> jsonb_build_array(v)
                ELSE jsonb_typeof(v) = jsonb_typeof(w)
                     AND jsonb_typeof(v) IN ('number', 'string')
                     AND CASE cond ->> 'op'
                             WHEN '=' THEN v = w
                             WHEN '!=' THEN v <> w
                             WHEN '<' THEN v < w
                             WHEN '<=' THEN v <= w
                             WHEN '>' THEN v > w
                             WHEN '>=' THEN v >= w
                         END
            END
            FROM (SELECT payload -> (cond ->> 'field') AS v, cond -> 'value' AS w) x
        ), false)
    END
$$;
