-- The monthly grant writes fewer things per member (issue 16, point 3: 1,000,000 members in
-- <= 10 s). Measured per 1M grants on the bench's host (README, "Benchmarks: python -m bench
-- program"): each bonus_grants row costs its heap tuple, its three index entries and its
-- CHECKs; two of those go here, the guarantees stay.
--
--  * bonus_grants_pending no longer holds the monthly job's grants (month_notice): each had
--    an entry there (~1 s and ~60 MiB of WAL a month) only for the hourly sweep to find them
--    30 days later. Those grants sit in one id range per month (job_runs: the notices' range,
--    migration 0023), granted together, so their deadlines grow with their ids: the sweep
--    walks that range by the primary key with a cursor of its own, job_runs.cancel_cursor
--    (bonus.sql cancel_month_overdue), stopping at the first grant still in its deadline.
--    The index keeps the other grants (on joining, on return to active), found as before.
--  * The month's CHECK computed EXTRACT(day ...), a numeric since PostgreSQL 14, for every
--    row inserted (~0.7 s for 1M rows): date_part on the date as a timestamp is the same
--    test in float8 arithmetic.
DROP INDEX bonus_grants_pending;
CREATE INDEX bonus_grants_pending ON bonus_grants (deadline_at)
    WHERE state = 'pending' AND NOT month_notice;

ALTER TABLE bonus_grants DROP CONSTRAINT bonus_grants_month_check,
    ADD CONSTRAINT bonus_grants_month_check CHECK (date_part('day', month::timestamp) = 1);

-- The highest grant id of the month's runs the sweep has passed: the month's grants above it
-- and up to notices_upto are still to be cancelled when overdue (or need nothing: activated,
-- forfeited, not the job's). Starts where the notices' cursor starts (record_notice_texts);
-- for the months granted before this migration, just below their first grant.
ALTER TABLE job_runs ADD COLUMN cancel_cursor bigint;
UPDATE job_runs j
SET cancel_cursor = coalesce(
        (SELECT min(g.id) - 1 FROM bonus_grants g
         WHERE g.month_notice AND g.month = to_date(j.period, 'YYYY-MM')),
        j.notices_upto)
WHERE j.job = 'bonus_grant_month';
