-- Slipway metadata schema, PostgreSQL dialect. Types: BIGINT, DOUBLE PRECISION, TEXT COLLATE "C" (byte order, like SQLite).
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id BIGSERIAL PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    artifact_location TEXT COLLATE "C" NOT NULL,
    lifecycle_stage TEXT COLLATE "C" NOT NULL,
    creation_time BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS experiment_tags (
    experiment_id BIGINT NOT NULL REFERENCES experiments(experiment_id) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (experiment_id, key)
);
CREATE TABLE IF NOT EXISTS runs (
    run_uuid TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    experiment_id BIGINT NOT NULL REFERENCES experiments(experiment_id),
    user_id TEXT COLLATE "C" NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    start_time BIGINT NOT NULL,
    end_time BIGINT,
    deleted_time BIGINT,
    artifact_uri TEXT COLLATE "C" NOT NULL,
    lifecycle_stage TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_experiment_idx ON runs(experiment_id, start_time);
CREATE TABLE IF NOT EXISTS metrics (
    run_uuid TEXT COLLATE "C" NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    ts BIGINT NOT NULL,
    step BIGINT NOT NULL,
    is_nan BIGINT NOT NULL,
    model_id TEXT COLLATE "C",
    dataset_name TEXT COLLATE "C",
    dataset_digest TEXT COLLATE "C",
    PRIMARY KEY (run_uuid, key, ts, step, value, is_nan)
);
CREATE TABLE IF NOT EXISTS latest_metrics (
    run_uuid TEXT COLLATE "C" NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    ts BIGINT NOT NULL,
    step BIGINT NOT NULL,
    is_nan BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX IF NOT EXISTS latest_metrics_key_idx ON latest_metrics(key, value);
CREATE TABLE IF NOT EXISTS params (
    run_uuid TEXT COLLATE "C" NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX IF NOT EXISTS params_key_idx ON params(key, value);
CREATE TABLE IF NOT EXISTS tags (
    run_uuid TEXT COLLATE "C" NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX IF NOT EXISTS tags_key_idx ON tags(key, value);
CREATE TABLE IF NOT EXISTS datasets (
    dataset_uuid TEXT COLLATE "C" PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments(experiment_id) ON DELETE CASCADE,
    name TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    source_type TEXT COLLATE "C" NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    schema_json TEXT COLLATE "C",
    profile TEXT COLLATE "C",
    UNIQUE (experiment_id, name, digest)
);
CREATE TABLE IF NOT EXISTS dataset_inputs (
    run_uuid TEXT COLLATE "C" NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    dataset_uuid TEXT COLLATE "C" NOT NULL REFERENCES datasets(dataset_uuid) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid)
);
CREATE TABLE IF NOT EXISTS input_tags (
    run_uuid TEXT COLLATE "C" NOT NULL,
    dataset_uuid TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid, key),
    FOREIGN KEY (run_uuid, dataset_uuid) REFERENCES dataset_inputs(run_uuid, dataset_uuid) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS run_model_inputs (
    run_uuid TEXT COLLATE "C" NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    model_id TEXT COLLATE "C" NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
);
CREATE TABLE IF NOT EXISTS run_model_outputs (
    run_uuid TEXT COLLATE "C" NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    model_id TEXT COLLATE "C" NOT NULL,
    step BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
);
CREATE TABLE IF NOT EXISTS registered_models (
    name TEXT COLLATE "C" PRIMARY KEY,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description TEXT COLLATE "C",
    user_id TEXT COLLATE "C",
    next_version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS registered_model_tags (
    name TEXT COLLATE "C" NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT COLLATE "C" NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    version BIGINT NOT NULL,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    description TEXT COLLATE "C",
    user_id TEXT COLLATE "C",
    current_stage TEXT COLLATE "C" NOT NULL,
    source TEXT COLLATE "C" NOT NULL,
    run_id TEXT COLLATE "C",
    run_link TEXT COLLATE "C",
    status TEXT COLLATE "C" NOT NULL,
    status_message TEXT COLLATE "C",
    model_id TEXT COLLATE "C",
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_version_tags (
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS registered_model_aliases (
    name TEXT COLLATE "C" NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    alias TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS logged_models (
    model_id TEXT COLLATE "C" PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments(experiment_id),
    name TEXT COLLATE "C" NOT NULL,
    artifact_uri TEXT COLLATE "C" NOT NULL,
    creation_time BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    lifecycle_stage TEXT COLLATE "C" NOT NULL,
    model_type TEXT COLLATE "C",
    source_run_id TEXT COLLATE "C",
    status_message TEXT COLLATE "C",
    creator_id TEXT COLLATE "C"
);
CREATE TABLE IF NOT EXISTS logged_model_params (
    model_id TEXT COLLATE "C" NOT NULL REFERENCES logged_models(model_id) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE IF NOT EXISTS logged_model_tags (
    model_id TEXT COLLATE "C" NOT NULL REFERENCES logged_models(model_id) ON DELETE CASCADE,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE IF NOT EXISTS logged_model_metrics (
    model_id TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    ts BIGINT NOT NULL,
    step BIGINT NOT NULL,
    run_id TEXT COLLATE "C" NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    is_nan BIGINT NOT NULL,
    experiment_id BIGINT NOT NULL,
    dataset_name TEXT COLLATE "C",
    dataset_digest TEXT COLLATE "C",
    PRIMARY KEY (model_id, key, ts, step, run_id)
);
CREATE TABLE IF NOT EXISTS artifact_digests (
    path TEXT COLLATE "C" PRIMARY KEY,
    sha256 TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    scopes TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT COLLATE "C" PRIMARY KEY,
    spec TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
