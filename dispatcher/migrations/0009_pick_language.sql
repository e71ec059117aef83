-- R14 in SQL, for statements that choose a language per row (the monthly bonus notice): the
-- mirror of campaigns.languages.pick_language, checked against it on every combination by
-- tests/test_languages.py. preferred when available, else fallback when available, else the
-- first available (NULL for an empty array, where Python raises).
-- A one-expression SQL function, IMMUTABLE: the planner inlines it, so a set-based statement
-- over millions of rows pays for the expression only, not a function call per row.

CREATE FUNCTION pick_language(available language[], preferred language, fallback language)
RETURNS language
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN preferred = ANY (available) THEN preferred
        WHEN fallback = ANY (available) THEN fallback
        ELSE available[1]
    END
$$;
