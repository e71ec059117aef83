-- Web console sessions (issue 6). A session is opened by signing in with an API token; the
-- browser holds a random session id in an HttpOnly cookie, the database only its SHA-256
-- (like api_tokens: a leaked table opens no session). Deleting or revoking the token ends
-- its sessions: every request joins the live token (see console.sql, session_of).
CREATE TABLE console_sessions (
    id_hash     bytea PRIMARY KEY,            -- sha256 of the cookie value
    token_id    bigint NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    role        role NOT NULL,                -- the token's role when signing in
    csrf_secret text NOT NULL,                -- per-session CSRF token put in every form
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
-- Sign-in sweeps expired sessions; revocation finds a token's sessions.
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
