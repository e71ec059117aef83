-- name: insert_token
-- $1: name, $2: role, $3: sha256 of the token, $4: expiry or NULL.
INSERT INTO api_tokens (name, role, token_hash, expires_at)
VALUES ($1, $2, $3, $4)
RETURNING id, name, role, created_at, expires_at, last_used_at, revoked_at

-- name: authenticate
-- Finds a live token by its hash and stamps its use; the unique index on token_hash makes
-- this one index probe. last_used_at is written at most once a minute per token, so a busy
-- gateway does not turn every request into a write.
-- $1: sha256 of the presented token, $2: now.
WITH found AS (
    SELECT id, name, role, expires_at, last_used_at
    FROM api_tokens
    WHERE token_hash = $1
      AND revoked_at IS NULL
      AND (expires_at IS NULL OR expires_at > $2)
), touched AS (
    UPDATE api_tokens t SET last_used_at = $2
    FROM found
    WHERE t.id = found.id
      AND (found.last_used_at IS NULL OR found.last_used_at < $2 - interval '1 minute')
)
SELECT id, name, role, expires_at FROM found

-- name: list_tokens
SELECT id, name, role, created_at, expires_at, last_used_at, revoked_at
FROM api_tokens ORDER BY id

-- name: revoke_token
-- $1: token id, $2: now. Guarded: revoking twice reports nothing the second time.
UPDATE api_tokens SET revoked_at = $2
WHERE id = $1 AND revoked_at IS NULL
RETURNING id
