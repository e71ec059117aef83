-- Issue 16: the live replicas of one SMSC account divide its grant among themselves.
-- One row per replica (its dispatcher node id) that has announced itself; a row whose node
-- lock (dispatch.sql node_lock) is free belongs to a dead replica and is deleted by the next
-- replica to beat. ``share`` is the submits/s the replica sends at (or less).
CREATE TABLE smsc_members (
    account text NOT NULL,
    node text NOT NULL,
    joined bigserial NOT NULL,
    share double precision NOT NULL DEFAULT 0 CHECK (share >= 0),
    PRIMARY KEY (account, node)
);
