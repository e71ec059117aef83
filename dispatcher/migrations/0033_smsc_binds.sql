-- Issue 14: a campaign page says "SMSC not bound" on any replica, the console's included,
-- though only the engines hold SMPP sessions. Each engine (its dispatcher node id) keeps one
-- row saying whether its session is bound, written when that changes (engine/status.py
-- BindReport). A row whose node lock (dispatch.sql node_lock) is free belongs to a dead
-- engine: readers ignore it, and the next engine to write deletes it.
CREATE TABLE smsc_binds (
    node text PRIMARY KEY,
    smsc text NOT NULL,
    bound boolean NOT NULL,
    changed_at timestamptz NOT NULL
);
