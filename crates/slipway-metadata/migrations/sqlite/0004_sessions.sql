-- Browser sessions: only the SHA-256 of the session id is stored; a session
-- lives until expires_at, its deletion (sign-out) or its token's revocation.
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_token_id ON sessions (token_id);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
