-- Bonus ledger v2: leases for charging calls in flight, and the forfeit outbox (R2, R4, R12).

-- A credit whose charging call is in flight carries a lease: nobody else sends it until the
-- lease ends (the call returned, or the process died and the lease ran out). A retry after
-- the lease re-sends the same idempotency key (the grant id), so a crash between the
-- charging call and the commit never credits twice (invariant 5).
ALTER TABLE bonus_credits ADD COLUMN lease_until timestamptz;
ALTER TABLE bonus_credits ALTER COLUMN next_attempt_at SET DEFAULT now();
-- The retry job scans only credits still owed, in due order.
CREATE INDEX bonus_credits_due ON bonus_credits (next_attempt_at) WHERE state = 'pending';

-- Removals of forfeited units that reached (or may have reached) the charging system. A row is
-- written in the transaction that forfeits the grant; a worker delivers it after commit and
-- retries until the charging system confirms, so a forfeit is never lost. The grant id is the
-- idempotency key: delivering twice removes once.
CREATE TABLE bonus_forfeits (
    grant_id        bigint PRIMARY KEY REFERENCES bonus_grants (id),
    msisdn          text NOT NULL,
    requested_at    timestamptz NOT NULL,
    attempts        smallint NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    done_at         timestamptz,        -- the charging system confirmed the removal
    failed_at       timestamptz,        -- the charging system refused it for good (4xx)
    last_error      text,
    CHECK (done_at IS NULL OR failed_at IS NULL)
);
CREATE INDEX bonus_forfeits_due ON bonus_forfeits (next_attempt_at)
    WHERE done_at IS NULL AND failed_at IS NULL;

-- One activation per number and calendar month (R4), as a partial unique index: grants never
-- activated (activated_month NULL, most rows) cannot conflict, so they need no entry. Saves
-- one index insertion per grant in the monthly job; same name, same guarantee.
ALTER TABLE bonus_grants DROP CONSTRAINT one_activation_per_month;
CREATE UNIQUE INDEX one_activation_per_month ON bonus_grants (msisdn, activated_month)
    WHERE activated_month IS NOT NULL;
