-- Campaigns (issue 5): where an audience came from, and the language a survey speaks.

-- A segment audience ('smart_members' | 'active_subscribers') instead of an uploaded file;
-- NULL for file audiences. Shown in reports; the deliveries themselves are the audience.
ALTER TABLE campaigns ADD COLUMN segment text
    CHECK (segment IN ('smart_members', 'active_subscribers'));

-- The language of a survey session's first question, so follow-up questions, the re-prompt
-- and the thank-you go out in the same language (R14).
ALTER TABLE survey_sessions ADD COLUMN language language;
