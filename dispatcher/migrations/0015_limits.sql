-- Limits the program keeps whatever a caller asks (issue 12): caps cannot be switched off,
-- and a survey's timeout runs from when its question was sent.

-- ---------------------------------------------------------------- caps always on (R7, inv. 1)

-- No setting, role or campaign option lets a partner message leave without a cap slot. A
-- campaign is always capped: apply_caps stays as a column (the claim in dispatch.sql reads
-- it) but may only be true. A campaign created uncapped before this migration is capped
-- from now on: what it still has to send takes slots like any other message.
UPDATE campaigns SET apply_caps = true WHERE NOT apply_caps;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_always_capped CHECK (apply_caps);

-- Rows such a campaign had claimed without a slot go back to the queue: the next claim takes
-- their slot (or suppresses them at the cap).
UPDATE deliveries SET state = 'queued', claimed_by = NULL, claimed_at = NULL
WHERE state = 'claimed' AND cap_month IS NULL;

-- The second line, on the message itself: a delivery is written to the SMSC only while it is
-- in_flight (mark_in_flight; record_outcomes moves nothing but in_flight rows on), so none
-- can leave without holding its month's cap slot, whatever code path marks it. NOT VALID:
-- a row an older process has in flight right now, slotless, is not judged (its outcome
-- moves it out of in_flight); every row marked from now on is.
ALTER TABLE deliveries ADD CONSTRAINT deliveries_in_flight_holds_cap_slot
    CHECK (state <> 'in_flight' OR cap_month IS NOT NULL) NOT VALID;

-- ---------------------------------------------------------------- survey timeout (R13)

-- An open session waiting for its next question (or re-prompt) to be sent has no expiry yet
-- (NULL); the question's submit starts the survey's timeout. A question held overnight for
-- the send window (R8) so still gets the whole timeout after the subscriber receives it.
ALTER TABLE survey_sessions ALTER COLUMN expires_at DROP NOT NULL;

-- When a survey question or re-prompt is submitted to the SMSC — or ends without being sent
-- (suppressed, failed, unknown) — the number's open session of that campaign expires one
-- survey timeout later. A trigger, so the time is taken where the engine records it
-- (record_outcomes, dispatch.sql), whichever code path does; its WHEN clause keeps it off
-- every other service message.
CREATE FUNCTION survey_question_sent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE survey_sessions ss
    SET expires_at = coalesce(NEW.submitted_at, NEW.finished_at, now()) + s.timeout
    FROM surveys s
    WHERE s.campaign_id = NEW.campaign_id AND ss.survey_id = s.id
      AND ss.msisdn = NEW.msisdn AND ss.state = 'open';
    RETURN NULL;
END
$$;

CREATE TRIGGER service_messages_survey_question_sent
    AFTER UPDATE OF state ON service_messages
    FOR EACH ROW
    WHEN (NEW.kind IN ('survey_question', 'survey_reprompt')
          AND OLD.state IN ('queued', 'claimed', 'in_flight')
          AND NEW.state NOT IN ('queued', 'claimed', 'in_flight'))
    EXECUTE FUNCTION survey_question_sent();
