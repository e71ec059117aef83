-- Data that is personal (R11, issue 13): survey answers cannot be linked to a number once
-- their session has closed, and the tables holding numbers with replies have a retention
-- sweep (dispatcher/sql/retention.sql) that finds its rows by time through an index.

-- ---------------------------------------------------------------- unlinkable answers

-- An answer names its survey itself; the session (and through it the number and the
-- delivery) only while the session is open: the reply flow needs it then (one answer per
-- question, PRIMARY KEY before this migration, now a unique index that lets closed sessions'
-- answers share a NULL session).
ALTER TABLE survey_answers ADD COLUMN survey_id bigint REFERENCES surveys (id);
UPDATE survey_answers a SET survey_id = s.survey_id
FROM survey_sessions s WHERE s.id = a.session_id;
ALTER TABLE survey_answers ALTER COLUMN survey_id SET NOT NULL;
ALTER TABLE survey_answers DROP CONSTRAINT survey_answers_pkey;
ALTER TABLE survey_answers ALTER COLUMN session_id DROP NOT NULL;
CREATE UNIQUE INDEX survey_answers_session_question ON survey_answers (session_id, question_no);
CREATE INDEX survey_answers_survey ON survey_answers (survey_id);

-- Unlinking: the session reference goes, and the answer's time is kept to the day (an exact
-- time would find the reply, and its number, among mo_messages).
CREATE FUNCTION survey_answer_unlinked(answered_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT date_trunc('day', answered_at, 'UTC') $$;

-- Every answer names its survey, and one given to a session already closed is stored
-- unlinked, whatever code path inserts it.
CREATE FUNCTION survey_answer_filed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    session record;
BEGIN
    SELECT survey_id, state INTO session FROM survey_sessions WHERE id = NEW.session_id;
    NEW.survey_id := coalesce(NEW.survey_id, session.survey_id);
    IF session.state IS DISTINCT FROM 'open' THEN
        NEW.session_id := NULL;
        NEW.answered_at := survey_answer_unlinked(NEW.answered_at);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER survey_answers_filed
    BEFORE INSERT ON survey_answers
    FOR EACH ROW WHEN (NEW.session_id IS NOT NULL)
    EXECUTE FUNCTION survey_answer_filed();

-- A session leaving 'open' (completed, closed, timed out: whichever statement does it)
-- unlinks its answers in the same transaction.
CREATE FUNCTION survey_session_closed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE survey_answers
    SET session_id = NULL, answered_at = survey_answer_unlinked(answered_at)
    WHERE session_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER survey_sessions_closed
    AFTER UPDATE OF state ON survey_sessions
    FOR EACH ROW WHEN (OLD.state = 'open' AND NEW.state <> 'open')
    EXECUTE FUNCTION survey_session_closed();

-- Answers of sessions closed before this migration.
UPDATE survey_answers a
SET session_id = NULL, answered_at = survey_answer_unlinked(a.answered_at)
FROM survey_sessions s
WHERE s.id = a.session_id AND s.state <> 'open';

-- ---------------------------------------------------------------- retention

-- A session past its retention keeps its survey and state (the results count sessions per
-- state) but loses its number and delivery: the number is erased, not the row.
ALTER TABLE survey_sessions ALTER COLUMN msisdn DROP NOT NULL;

-- The sweeps find old rows by time, in bounded batches, on tables of millions of rows.
CREATE INDEX mo_messages_received ON mo_messages (received_at);
CREATE INDEX survey_sessions_closed_at ON survey_sessions (closed_at)
    WHERE msisdn IS NOT NULL AND state <> 'open';

-- Survey replies already applied keep no text: the answer is in survey_answers, unlinked at
-- the session's close (new ones are stored so by mo.sql mo_handled).
UPDATE mo_messages SET body = '' WHERE outcome = 'survey_answer' AND body <> '';

-- ---------------------------------------------------------------- the SMSC is trusted less

-- A receipt matched to a part sent to another number than the receipt's own source address
-- (once normalised): counted by the applier, refused where SMARTD_RECEIPT_ADDRESS_CHECK says
-- so. Rare: the metric counts them through a partial index.
ALTER TABLE receipts ADD COLUMN address_mismatch boolean NOT NULL DEFAULT false;
CREATE INDEX receipts_address_mismatch ON receipts (smsc) WHERE address_mismatch;
