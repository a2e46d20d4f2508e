-- Slipway metadata schema, SQLite dialect. Types: INTEGER (i64), REAL (f64), TEXT.
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    last_update_time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);
CREATE TABLE IF NOT EXISTS runs (
    run_uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    deleted_time INTEGER,
    artifact_uri TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_experiment_idx ON runs(experiment_id, start_time);
CREATE TABLE IF NOT EXISTS metrics (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    ts INTEGER NOT NULL,
    step INTEGER NOT NULL,
    is_nan INTEGER NOT NULL,
    model_id TEXT,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_uuid, key, ts, step, value, is_nan)
);
CREATE TABLE IF NOT EXISTS latest_metrics (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    ts INTEGER NOT NULL,
    step INTEGER NOT NULL,
    is_nan INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX IF NOT EXISTS latest_metrics_key_idx ON latest_metrics(key, value);
CREATE TABLE IF NOT EXISTS params (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX IF NOT EXISTS params_key_idx ON params(key, value);
CREATE TABLE IF NOT EXISTS tags (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX IF NOT EXISTS tags_key_idx ON tags(key, value);
CREATE TABLE IF NOT EXISTS datasets (
    dataset_uuid TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema_json TEXT,
    profile TEXT,
    UNIQUE (experiment_id, name, digest)
);
CREATE TABLE IF NOT EXISTS dataset_inputs (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    dataset_uuid TEXT NOT NULL REFERENCES datasets(dataset_uuid) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid)
);
CREATE TABLE IF NOT EXISTS input_tags (
    run_uuid TEXT NOT NULL,
    dataset_uuid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_uuid, dataset_uuid, key),
    FOREIGN KEY (run_uuid, dataset_uuid) REFERENCES dataset_inputs(run_uuid, dataset_uuid) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS run_model_inputs (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
);
CREATE TABLE IF NOT EXISTS run_model_outputs (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
);
CREATE TABLE IF NOT EXISTS registered_models (
    name TEXT PRIMARY KEY,
    creation_time INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    description TEXT,
    user_id TEXT,
    next_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registered_model_tags (
    name TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    version INTEGER NOT NULL,
    creation_time INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    description TEXT,
    user_id TEXT,
    current_stage TEXT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    run_link TEXT,
    status TEXT NOT NULL,
    status_message TEXT,
    model_id TEXT,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS model_version_tags (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS registered_model_aliases (
    name TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS logged_models (
    model_id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
    name TEXT NOT NULL,
    artifact_uri TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    status TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    model_type TEXT,
    source_run_id TEXT,
    status_message TEXT,
    creator_id TEXT
);
CREATE TABLE IF NOT EXISTS logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models(model_id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE IF NOT EXISTS logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models(model_id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);
CREATE TABLE IF NOT EXISTS logged_model_metrics (
    model_id TEXT NOT NULL,
    key TEXT NOT NULL,
    ts INTEGER NOT NULL,
    step INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    value REAL NOT NULL,
    is_nan INTEGER NOT NULL,
    experiment_id INTEGER NOT NULL,
    dataset_name TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (model_id, key, ts, step, run_id)
);
CREATE TABLE IF NOT EXISTS artifact_digests (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
