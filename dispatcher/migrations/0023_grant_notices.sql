-- The monthly grant's notice is a property of the grant row (issue 16): the grant job writes
-- one row per member (bonus_grants) instead of two (the grant and a service_messages row),
-- and the engine's service claim queues a batch of due notices as service messages when they
-- can go (dispatch.sql queue_bonus_notices), so each is still sent once, in the window, as a
-- service message like any other (R7: not counted against a cap; R8; R12).
--  * bonus_grants.notice_due: the grant's notice is not queued yet. Set by the monthly grant
--    only (a join's or a return's grant queues its notice at once, as before); cleared in the
--    statement that queues it, so it is queued once. The partial index holds only the due
--    ones: empty outside a month's first days.
--  * job_runs.notice_texts: the texts of the run's notices, rendered by the grant job (one
--    home of the wording: dispatcher/program/texts.py) per deadline (epoch seconds) →
--    {"in_window", "default", "plain"|"used"|"topup" → {language → text}}; the claim picks
--    the variant and language from the grant's owner when it queues the notice.
ALTER TABLE bonus_grants ADD COLUMN notice_due boolean NOT NULL DEFAULT false;
CREATE INDEX bonus_grants_notice_due ON bonus_grants (id) WHERE notice_due;

ALTER TABLE job_runs ADD COLUMN notice_texts jsonb;
