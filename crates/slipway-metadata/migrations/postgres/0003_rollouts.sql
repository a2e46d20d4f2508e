CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT COLLATE "C" PRIMARY KEY,
    deployment TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    active BIGINT NOT NULL,
    body TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_by_deployment ON rollouts (deployment, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_active ON rollouts (deployment) WHERE active = 1;
CREATE TABLE IF NOT EXISTS rollout_stats (
    rollout_id TEXT COLLATE "C" NOT NULL,
    step BIGINT NOT NULL,
    replica TEXT COLLATE "C" NOT NULL,
    payload TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, step, replica)
);
