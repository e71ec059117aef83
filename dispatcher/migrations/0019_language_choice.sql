-- R14 (issue 12): a subscriber chooses their language in the *555# menu, and a USSD screen
-- that does not fit pages with a "next" choice.

-- When the subscriber chose their language themselves (the *555# menu). A chosen language
-- is theirs: a gateway's language hint only fills a language we do not know, and a
-- subscriber import does not override a choice. A new owner of the number (R12) starts with
-- neither (start_new_owner).
ALTER TABLE subscribers ADD COLUMN language_chosen_at timestamptz;

-- The pages of a USSD answer still to show: "0" in the session shows the next one.
ALTER TABLE ussd_sessions ADD COLUMN pages text[] NOT NULL DEFAULT '{}';
