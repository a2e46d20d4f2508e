-- One row per finished backup run, whoever ran it (`slipway backup create`,
-- the chart's CronJob, a server's schedule): the server exports the
-- slipway_backup_* metrics from these rows at scrape time. Operational
-- history of this store, so never part of a backup nor replaced by a restore.
CREATE TABLE IF NOT EXISTS backup_runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    result TEXT COLLATE "C" NOT NULL,
    started_by TEXT COLLATE "C" NOT NULL,
    holder TEXT NOT NULL,
    location TEXT NOT NULL,
    backup_id TEXT,
    size_bytes BIGINT,
    copied_bytes BIGINT NOT NULL,
    pruned BIGINT NOT NULL,
    verified BIGINT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS backup_runs_finished_at ON backup_runs (finished_at);
CREATE INDEX IF NOT EXISTS backup_runs_result ON backup_runs (result, finished_at);
