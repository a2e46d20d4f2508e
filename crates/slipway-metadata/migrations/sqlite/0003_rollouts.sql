CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY,
    deployment TEXT NOT NULL,
    state TEXT NOT NULL,
    active INTEGER NOT NULL,
    body TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_by_deployment ON rollouts (deployment, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_active ON rollouts (deployment) WHERE active = 1;
CREATE TABLE IF NOT EXISTS rollout_stats (
    rollout_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    replica TEXT NOT NULL,
    payload TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, step, replica)
);
