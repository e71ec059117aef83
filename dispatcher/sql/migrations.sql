-- name: lock
-- Session-level advisory lock: replicas starting together apply migrations one at a time.
-- $1: the lock key (constant of dispatcher.migrate).
SELECT pg_advisory_lock($1)

-- name: unlock
-- $1: the lock key.
SELECT pg_advisory_unlock($1)

-- name: create_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied
SELECT version, name, checksum FROM schema_migrations ORDER BY version

-- name: record
-- $1: version, $2: file name, $3: sha256 of the file.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)
