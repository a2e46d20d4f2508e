-- Browser sessions: only the SHA-256 of the session id is stored; a session
-- lives until expires_at, its deletion (sign-out) or its token's revocation.
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT COLLATE "C" PRIMARY KEY,
    token_id TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_token_id ON sessions (token_id);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
