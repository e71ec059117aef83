-- name: lock_account
-- One replica of an account beats at a time (inside its transaction), so the shares it reads
-- are the ones it publishes against. $1: account.
SELECT pg_advisory_xact_lock(1935762245, hashtext($1))

-- name: forget_dead
-- Rows of replicas whose node lock is held by no session (node_alive, migration 0037):
-- their process or their connection is gone, so their part of the grant is free.
-- $1: account.
DELETE FROM smsc_members m
WHERE m.account = $1
  AND NOT node_alive(m.node)

-- name: join
-- Announce a replica (share 0 until it takes one); nothing when it is already known.
-- $1: account, $2: node.
INSERT INTO smsc_members (account, node) VALUES ($1, $2) ON CONFLICT DO NOTHING

-- name: members
-- $1: account.
SELECT node, joined, share FROM smsc_members WHERE account = $1 ORDER BY joined

-- name: publish
-- $1: account, $2: node, $3: share.
UPDATE smsc_members SET share = $3 WHERE account = $1 AND node = $2

-- name: leave
-- $1: account, $2: node.
DELETE FROM smsc_members WHERE account = $1 AND node = $2
