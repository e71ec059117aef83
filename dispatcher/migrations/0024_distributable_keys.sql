-- Issue 16, point 6: a schema Citus can distribute by msisdn (README, "Past one PostgreSQL
-- (Citus)"; tests/test_distributable_schema.py reads the catalog and holds it so).
--
-- Citus enforces a unique key only within a shard, so a distributed table's primary and
-- unique keys must contain its distribution column, and a foreign key between two
-- distributed tables must pair theirs. Every per-subscriber table's keys now carry msisdn.
--
-- Order of the key columns: the bigserial id first, msisdn second. Every statement that
-- finds a row by its id alone (the claim, mark_in_flight, record_outcomes, the receipt
-- applier's updates of submits and receipts, lock_messages, finish_messages) probes the
-- leading column of the same primary key index as before: no plan changes and no second
-- index to keep up on the big tables (deliveries, submits, receipts). The index entries grow
-- by the number (about 12 bytes). A unique key found by another column keeps that column
-- first for the same reason (event_id, reference, dedupe_key).
--
-- Rebuilding a primary key reads the table once (deliveries, submits and receipts are the
-- big ones) and re-checks each foreign key re-created here; it holds the tables' locks for
-- that time, so on a service with months of history this migration is run at a quiet hour.

-- ---------------------------------------------------------------- keys on the subscriber

-- Foreign keys on an id alone go first: their target keys are rebuilt below.
ALTER TABLE submits DROP CONSTRAINT submits_delivery_id_fkey,
                    DROP CONSTRAINT submits_service_message_id_fkey;
ALTER TABLE survey_sessions DROP CONSTRAINT survey_sessions_delivery_id_fkey;
ALTER TABLE bonus_credits DROP CONSTRAINT bonus_credits_grant_id_fkey;
ALTER TABLE bonus_forfeits DROP CONSTRAINT bonus_forfeits_grant_id_fkey;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey, ADD PRIMARY KEY (id, msisdn);
ALTER TABLE service_messages DROP CONSTRAINT service_messages_pkey, ADD PRIMARY KEY (id, msisdn);
ALTER TABLE submits DROP CONSTRAINT submits_pkey, ADD PRIMARY KEY (id, msisdn);
ALTER TABLE bonus_grants DROP CONSTRAINT bonus_grants_pkey, ADD PRIMARY KEY (id, msisdn);
ALTER TABLE bonus_credits DROP CONSTRAINT bonus_credits_pkey, ADD PRIMARY KEY (grant_id, msisdn);
ALTER TABLE bonus_forfeits DROP CONSTRAINT bonus_forfeits_pkey,
    ADD PRIMARY KEY (grant_id, msisdn);
ALTER TABLE subscriber_events DROP CONSTRAINT subscriber_events_pkey,
    ADD PRIMARY KEY (id, msisdn);
ALTER TABLE memberships DROP CONSTRAINT memberships_pkey, ADD PRIMARY KEY (id, msisdn);
ALTER TABLE consent_ledger DROP CONSTRAINT consent_ledger_pkey, ADD PRIMARY KEY (id, msisdn);
ALTER TABLE contact_reservations DROP CONSTRAINT contact_reservations_pkey,
    ADD PRIMARY KEY (id, msisdn);
ALTER TABLE mo_messages DROP CONSTRAINT mo_messages_pkey, ADD PRIMARY KEY (id, msisdn);

-- A USSD menu session is the gateway's session id of one number: a session id the gateway
-- reuses for another number is that number's session (ussd.sql reads the latest one and
-- the desk ignores another number's, as before).
ALTER TABLE ussd_sessions DROP CONSTRAINT ussd_sessions_pkey,
    ADD PRIMARY KEY (session_id, msisdn);

-- The same message's part, grant or delivery, on the same subscriber: every row that names
-- one already carries its number (the engine writes the message's own into submits; a
-- credit and a removal copy the grant's).
ALTER TABLE submits
    ADD CONSTRAINT submits_delivery_id_fkey FOREIGN KEY (delivery_id, msisdn)
        REFERENCES deliveries (id, msisdn),
    ADD CONSTRAINT submits_service_message_id_fkey FOREIGN KEY (service_message_id, msisdn)
        REFERENCES service_messages (id, msisdn);
-- Retention erases a closed session's number and delivery together (retention.sql), so
-- the key is either whole or NULL.
ALTER TABLE survey_sessions
    ADD CONSTRAINT survey_sessions_delivery_id_fkey FOREIGN KEY (delivery_id, msisdn)
        REFERENCES deliveries (id, msisdn);
ALTER TABLE bonus_credits
    ADD CONSTRAINT bonus_credits_grant_id_fkey FOREIGN KEY (grant_id, msisdn)
        REFERENCES bonus_grants (id, msisdn);
ALTER TABLE bonus_forfeits
    ADD CONSTRAINT bonus_forfeits_grant_id_fkey FOREIGN KEY (grant_id, msisdn)
        REFERENCES bonus_grants (id, msisdn);

-- ---------------------------------------------------------------- idempotency keys

-- A caller's key is recognised per number: the repeat of an operator event, a contact
-- reservation or a service message comes for the same subscriber (the dedupe keys name a
-- grant, a session or an MO of that number). A reservation reference reused for another
-- number is still refused by contacts.sql `existing` (the index's leading column), once
-- the first has committed.
DROP INDEX subscriber_events_event_id;
CREATE UNIQUE INDEX subscriber_events_event_id ON subscriber_events (event_id, msisdn)
    WHERE event_id IS NOT NULL;
DROP INDEX contact_reservations_reference;
CREATE UNIQUE INDEX contact_reservations_reference ON contact_reservations (reference, msisdn)
    WHERE reference IS NOT NULL;
ALTER TABLE service_messages DROP CONSTRAINT service_messages_dedupe_key_key,
    ADD CONSTRAINT service_messages_dedupe_key_key UNIQUE (dedupe_key, msisdn);

-- ---------------------------------------------------------------- receipts

-- A receipt is stored on its subscriber (migration 0011 added the source address, NULL
-- when it is not a number): '' now stands for "no number", so the column can be in the key
-- and, under Citus, place the receipt beside its submit. The applier reads '' as NULL.
UPDATE receipts SET msisdn = '' WHERE msisdn IS NULL;
ALTER TABLE receipts ALTER COLUMN msisdn SET DEFAULT '',
                     ALTER COLUMN msisdn SET NOT NULL;
ALTER TABLE receipts DROP CONSTRAINT receipts_pkey, ADD PRIMARY KEY (id, msisdn);

-- ---------------------------------------------------------------- the clock

-- The survey timeout starts at the question's submit or its end; the message has one of
-- the two whenever this trigger fires (the WHEN clause: it left queued/claimed/in_flight,
-- so it is submitted, or final with finished_at by its CHECK). The now() fallback read the
-- server's clock, not the engine's: gone.
CREATE OR REPLACE FUNCTION survey_question_sent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE survey_sessions ss
    SET expires_at = coalesce(NEW.submitted_at, NEW.finished_at) + s.timeout
    FROM surveys s
    WHERE s.campaign_id = NEW.campaign_id AND ss.survey_id = s.id
      AND ss.msisdn = NEW.msisdn AND ss.state = 'open';
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------- surveys (R11)

-- A closed session past its retention loses its number (retention.sql forget_sessions): it
-- was set NULL, which no key can hold; '' now stands for "erased" (the session is kept,
-- anonymous, for the results' counts per state). Under Citus the erasure moves the row to
-- the '' value (a delete and an insert: a distribution column is never updated in place).
-- Two erased sessions of one survey do not collide: the one-session-per-survey-and-number
-- key covers numbers only.
ALTER TABLE survey_answers DROP CONSTRAINT survey_answers_session_id_fkey;
ALTER TABLE survey_sessions DROP CONSTRAINT survey_sessions_survey_id_msisdn_key;
UPDATE survey_sessions SET msisdn = '' WHERE msisdn IS NULL;
ALTER TABLE survey_sessions ALTER COLUMN msisdn SET NOT NULL;
ALTER TABLE survey_sessions DROP CONSTRAINT survey_sessions_pkey, ADD PRIMARY KEY (id, msisdn);
CREATE UNIQUE INDEX survey_sessions_survey_msisdn ON survey_sessions (survey_id, msisdn)
    WHERE msisdn <> '';
DROP INDEX survey_sessions_closed_at;
CREATE INDEX survey_sessions_closed_at ON survey_sessions (closed_at)
    WHERE msisdn <> '' AND state <> 'open';

-- Answers carry no number (R11), so they cannot sit beside their session: they are
-- distributed by survey_id (their results are counted per survey). The foreign key to the
-- session on its id alone would cross shards; the trigger survey_answer_filed (0018) keeps
-- what it guaranteed: an answer names a session only when that session is open at the
-- insert (a session id that names none is stored unlinked), and sessions are never deleted.
-- One answer per session and question, as before; the key carries survey_id, which the
-- session determines.
DROP INDEX survey_answers_session_question;
CREATE UNIQUE INDEX survey_answers_session_question
    ON survey_answers (session_id, question_no, survey_id);

-- The close unlinks the session's answers; naming the survey routes it to the answers' shard.
CREATE OR REPLACE FUNCTION survey_session_closed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE survey_answers
    SET session_id = NULL, answered_at = survey_answer_unlinked(answered_at)
    WHERE session_id = NEW.id AND survey_id = NEW.survey_id;
    RETURN NULL;
END
$$;
