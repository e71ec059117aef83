-- The subscriber import (dispatcher/program/imports.py): the file is COPYed into a
-- temporary table, then applied by one set-based upsert, all in one transaction.

-- name: create_staging
-- Dropped at commit; text columns (the parser has checked every value) cast on upsert.
CREATE TEMP TABLE subscriber_import (
    line     integer NOT NULL,
    msisdn   text NOT NULL,
    status   text NOT NULL,
    language text
) ON COMMIT DROP

-- name: upsert
-- The last row of a number wins (DISTINCT ON … line DESC). A number turning 'recycled'
-- is left out and returned: recycling ends the old owner's membership, consent, 1204
-- block and bonuses (R12), which Membership.set_status does for each. Rows are taken in
-- msisdn order so two imports lock subscribers in the same order. An empty language
-- keeps the known one. Only real changes are written (the WHERE of DO UPDATE), and each
-- status change is recorded in subscriber_events. Members whose number turns 'active' or
-- 'outgoing_blocked' are returned too: one without this month's grant receives it now (R3,
-- Membership.returned).
-- $1: now.
WITH latest AS (
    SELECT DISTINCT ON (msisdn) msisdn, status::subscriber_status AS status,
           language::language AS language
    FROM subscriber_import
    ORDER BY msisdn, line DESC
), recycling AS (
    SELECT l.msisdn
    FROM latest l JOIN subscribers s USING (msisdn)
    WHERE l.status = 'recycled' AND s.status <> 'recycled'
), returning_members AS (
    SELECT l.msisdn
    FROM latest l JOIN subscribers s USING (msisdn)
    WHERE l.status IN ('active', 'outgoing_blocked') AND s.status <> l.status
      AND EXISTS (SELECT 1 FROM memberships m WHERE m.msisdn = l.msisdn AND m.left_at IS NULL)
), upserted AS (
    INSERT INTO subscribers AS s
        (msisdn, status, language, owner_since, status_changed_at, created_at, updated_at)
    SELECT l.msisdn, l.status, l.language, $1, $1, $1, $1
    FROM latest l
    WHERE NOT EXISTS (SELECT 1 FROM recycling r WHERE r.msisdn = l.msisdn)
    ORDER BY l.msisdn
    ON CONFLICT (msisdn) DO UPDATE SET
        status = excluded.status,
        -- R14: a language the subscriber chose in the menu is theirs, not the CRM's.
        language = CASE WHEN s.language_chosen_at IS NULL
                        THEN coalesce(excluded.language, s.language) ELSE s.language END,
        status_changed_at = CASE WHEN s.status <> excluded.status
                                 THEN excluded.status_changed_at ELSE s.status_changed_at END,
        updated_at = excluded.updated_at
    WHERE s.status <> excluded.status
       OR (s.language_chosen_at IS NULL
           AND s.language IS DISTINCT FROM coalesce(excluded.language, s.language))
    RETURNING (xmax = 0) AS inserted
), status_events AS (
    -- R12: every life-cycle change is kept as it came in, like the gateway's events (the
    -- CTE reads the subscribers as they were before this statement).
    INSERT INTO subscriber_events (msisdn, event_type, payload, occurred_at)
    SELECT l.msisdn, 'subscriber_status',
           jsonb_build_object('status', l.status, 'source', 'import'), $1
    FROM latest l LEFT JOIN subscribers s USING (msisdn)
    WHERE s.status IS DISTINCT FROM l.status
    ORDER BY l.msisdn
)
SELECT (SELECT count(*) FROM subscriber_import) AS rows,
       (SELECT count(*) FROM latest) AS numbers,
       (SELECT count(*) FROM upserted WHERE inserted) AS inserted,
       (SELECT count(*) FROM upserted WHERE NOT inserted) AS updated,
       (SELECT coalesce(array_agg(msisdn ORDER BY msisdn), '{}') FROM recycling) AS recycling,
       (SELECT coalesce(array_agg(msisdn ORDER BY msisdn), '{}') FROM returning_members)
           AS returning_members
