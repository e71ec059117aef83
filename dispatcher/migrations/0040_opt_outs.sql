-- Opt-out attribution (issue 15): every STOP, 1204 and leave, whatever its channel, is written
-- in the transaction that applies it (Membership.leave / Membership.dnc_block) with the
-- campaign whose message last reached the number within the attribution span
-- (SMARTD_INBOX_ATTRIBUTION_DAYS, the inbox's setting: one rule for both).

-- What an opt-out was: a STOP by SMS, a 1204 (SMS, IVR event), a leave by USSD.
CREATE TYPE opt_out_kind AS ENUM ('stop', 'dnc', 'leave');

-- One row per opt-out that changed something: a STOP by a number that already left, or a
-- 1204 by a number already blocked and not a member, writes none. A rejoin and a second
-- leave writes a second row. The delivery that reached the number is blamed for one opt-out
-- at most (opt_outs_one_per_delivery): a later opt-out of the same number, reached by no
-- newer message, is written unattributed, so a campaign's opt-outs never exceed the
-- recipients it reached. No foreign keys: a campaign is never deleted, and a key would lock
-- its row for every opt-out; the partner is the campaign's (fixed once it leaves draft).
CREATE TABLE opt_outs (
    id          bigserial,
    msisdn      text NOT NULL,
    at          timestamptz NOT NULL,
    kind        opt_out_kind NOT NULL,
    channel     channel NOT NULL,
    campaign_id bigint,
    delivery_id bigint,
    PRIMARY KEY (id, msisdn),
    CHECK ((campaign_id IS NULL) = (delivery_id IS NULL))
);
CREATE UNIQUE INDEX opt_outs_one_per_delivery ON opt_outs (delivery_id, msisdn)
    WHERE delivery_id IS NOT NULL;
-- A campaign's opt-outs (its report) and the partners view by period.
CREATE INDEX opt_outs_campaign ON opt_outs (campaign_id, at) WHERE campaign_id IS NOT NULL;

-- "Which campaign message last reached this number at $2?": the latest campaign message to
-- number $1 the SMSC accepted in [$2 - $3, $2] (the span's boundary included) and has not
-- reported undelivered. The one home of the rule, used by the inbox (mo.sql insert_mo) and
-- by opt_outs (optouts.sql record_opt_out). A single SELECT in SQL, STABLE: the planner
-- inlines it, so it stays one backward probe of deliveries_reached on the number's rows.
CREATE FUNCTION last_reach(text, timestamptz, interval)
RETURNS TABLE (delivery_id bigint, campaign_id bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT d.id, d.campaign_id FROM deliveries d
    WHERE d.msisdn = $1 AND d.submitted_at IS NOT NULL
      AND d.submitted_at BETWEEN $2 - $3 AND $2
      AND d.state IN ('submitted', 'delivered')
    ORDER BY d.submitted_at DESC, d.id DESC
    LIMIT 1
$$;
