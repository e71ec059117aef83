-- The monthly grant's notice is a property of the grant row (issue 16): the grant job writes
-- one row per member (bonus_grants) instead of two (the grant and a service_messages row),
-- and the engine's service claim queues the run's notices as service messages a batch at a
-- time when they can go (dispatch.sql queue_bonus_notices), so each is still sent once, in
-- the window, as a service message like any other (R7: counted against no cap; R8; R12).
-- Nothing is written per grant to mark its notice queued: a cursor per month walks the run's
-- grants in id order.
--  * bonus_grants.month_notice: the grant was made by the monthly job and its notice is
--    derived (a join's or a return's grant queues its own notice at once, as before). Never
--    updated, not indexed.
--  * job_runs.notice_texts: the texts of the run's notices, rendered by the grant job (one
--    home of the wording: dispatcher/program/texts.py): "in_window", "default" (language),
--    and per deadline (epoch seconds) {"plain"|"used"|"topup" → {language → text}}; the
--    claim picks the variant and language of the grant's owner when it queues the notice.
--  * job_runs.notices_upto: the highest grant id the month's runs made (set when a run is
--    recorded, so all its slices are committed); notices_cursor: the highest grant id whose
--    notice is queued (or that needs none). Ids between the two are the month's grants (join
--    grants wait for the job's lock; one made between two runs has month_notice false).
ALTER TABLE bonus_grants ADD COLUMN month_notice boolean NOT NULL DEFAULT false;

ALTER TABLE job_runs
    ADD COLUMN notice_texts jsonb,
    ADD COLUMN notices_cursor bigint,
    ADD COLUMN notices_upto bigint;
