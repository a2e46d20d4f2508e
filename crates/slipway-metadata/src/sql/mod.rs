//! [`SqlStore`]: the [`MetadataStore`](crate::MetadataStore) over SQLite and
//! PostgreSQL through sqlx's `Any` driver, with the same SQL on both
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`).
//!
//! SQLite runs in WAL mode with one writer connection (every write
//! transaction goes through it, so writers queue instead of failing with
//! "database is locked") and a pool of readers. PostgreSQL uses one pool for
//! both. Migrations are embedded and versioned in `slipway_schema_migrations`;
//! on PostgreSQL they run under an advisory lock so replicas can start together.
//!
//! [`snapshot`] reads every table at one consistent point and writes tables
//! back, engine-neutrally (backups, restores, store migration);
//! [`diagnostics`] answers `slipway doctor`'s questions (schema version,
//! database clock, a rolled-back write).

pub mod diagnostics;
mod load;
mod query;
pub mod snapshot;
mod store;
mod util;

use std::time::Duration;

use slipway_core::{now_millis, Error};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

use crate::Result;
use util::{db_err, Dialect};

/// Options of [`SqlStore::connect`].
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Size of the read pool (and of the single pool on PostgreSQL).
    pub max_connections: u32,
    /// How long to wait for a pooled connection before failing.
    pub acquire_timeout: Duration,
    /// SQLite `busy_timeout`, for contention with other processes.
    pub sqlite_busy_timeout: Duration,
    /// Root of default artifact locations: experiment `<id>` gets
    /// `<artifact_root>/<id>`. Defaults to `mlflow-artifacts:`.
    pub artifact_root: String,
    /// Create a missing SQLite file (and its directory). Commands that only
    /// read or manage an existing store turn this off.
    pub create_if_missing: bool,
    /// Apply pending migrations (and create the `Default` experiment) on
    /// connect. Commands that only inspect a store another process serves
    /// (`slipway doctor`, `slipway backup create`) turn this off, so a newer
    /// binary never changes the schema under an older server.
    pub migrate: bool,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            sqlite_busy_timeout: Duration::from_secs(10),
            artifact_root: "mlflow-artifacts:".to_string(),
            create_if_missing: true,
            migrate: true,
        }
    }
}

/// The SQL metadata store (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlStore {
    reader: AnyPool,
    writer: AnyPool,
    dialect: Dialect,
    artifact_root: String,
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "leases",
        sqlite: include_str!("../../migrations/sqlite/0002_leases.sql"),
        postgres: include_str!("../../migrations/postgres/0002_leases.sql"),
    },
    Migration {
        version: 3,
        name: "rollouts",
        sqlite: include_str!("../../migrations/sqlite/0003_rollouts.sql"),
        postgres: include_str!("../../migrations/postgres/0003_rollouts.sql"),
    },
    Migration {
        version: 4,
        name: "sessions",
        sqlite: include_str!("../../migrations/sqlite/0004_sessions.sql"),
        postgres: include_str!("../../migrations/postgres/0004_sessions.sql"),
    },
    Migration {
        version: 5,
        name: "backup_runs",
        sqlite: include_str!("../../migrations/sqlite/0005_backup_runs.sql"),
        postgres: include_str!("../../migrations/postgres/0005_backup_runs.sql"),
    },
];

/// The schema version this build writes: the number of its newest migration.
pub fn schema_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Every migration this build knows, as `(version, name)`, oldest first.
pub fn known_migrations() -> Vec<(i64, &'static str)> {
    MIGRATIONS.iter().map(|m| (m.version, m.name)).collect()
}

/// The file path and query string of a `sqlite://PATH[?query]` URL.
pub(crate) fn sqlite_path(url: &str) -> (&str, Option<&str>) {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

/// Key of the PostgreSQL advisory lock held while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x5_1195_7a9e;

impl SqlStore {
    /// Connects to `sqlite://path/to/file.db` (the file and its directory are
    /// created if missing) or `postgres://...`, applies pending migrations and
    /// creates the `Default` experiment (id `0`) if absent (unless
    /// [`SqlOptions::migrate`] is off).
    pub async fn connect(url: &str, options: SqlOptions) -> Result<SqlStore> {
        sqlx::any::install_default_drivers();
        let artifact_root = options.artifact_root.trim_end_matches('/').to_string();
        let store = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, &options, artifact_root).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await
                .map_err(|e| connect_err(url, e))?;
            SqlStore {
                reader: pool.clone(),
                writer: pool,
                dialect: Dialect::Postgres,
                artifact_root,
            }
        } else {
            return Err(Error::invalid(format!(
                "Unsupported database URL '{}': expected sqlite:// or postgres://",
                redact(url)
            )));
        };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    async fn connect_sqlite(
        url: &str,
        options: &SqlOptions,
        artifact_root: String,
    ) -> Result<SqlStore> {
        let (path, query) = sqlite_path(url);
        if path.is_empty() || path.contains(":memory:") {
            return Err(Error::invalid(
                "In-memory SQLite is not supported by the metadata store; give a file path (sqlite://path/to/file.db)",
            ));
        }
        if !options.create_if_missing && !std::path::Path::new(path).is_file() {
            return Err(Error::new(
                slipway_core::ErrorCode::ResourceDoesNotExist,
                format!("No Slipway metadata database at {path}: start the server once with `slipway up`, or point --data-dir / --metadata-url at an existing store"),
            ));
        }
        if let Some(parent) = std::path::Path::new(path).parent() {
            if options.create_if_missing && !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    tracing::error!(error = %e, path, "cannot create the SQLite directory");
                    Error::internal(format!(
                        "Cannot create the directory of the SQLite database '{path}'"
                    ))
                })?;
            }
        }
        let full = match query {
            Some(q) if q.contains("mode=") => format!("sqlite://{path}?{q}"),
            Some(q) => format!("sqlite://{path}?{q}&mode=rwc"),
            None => format!("sqlite://{path}?mode=rwc"),
        };
        let busy_ms = options
            .sqlite_busy_timeout
            .as_millis()
            .min(i32::MAX as u128) as i64;
        let pragmas = format!(
            "PRAGMA busy_timeout = {busy_ms}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
        );
        let p1 = pragmas.clone();
        let writer = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(options.acquire_timeout.max(Duration::from_secs(60)))
            .after_connect(move |conn, _| {
                let p = p1.clone();
                Box::pin(async move {
                    conn.execute(p.as_str()).await?;
                    Ok(())
                })
            })
            .connect(&full)
            .await
            .map_err(|e| connect_err(url, e))?;
        // Make sure WAL is in place before readers open.
        {
            let mut c = writer.acquire().await.map_err(db_err)?;
            // Through `Executor` rather than `RawSql::execute`, whose future
            // is not `Send` for every lifetime: callers spawn these futures.
            (&mut *c)
                .execute(sqlx::raw_sql("SELECT 1"))
                .await
                .map_err(db_err)?;
        }
        let p2 = pragmas;
        let reader = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _| {
                let p = p2.clone();
                Box::pin(async move {
                    conn.execute(p.as_str()).await?;
                    Ok(())
                })
            })
            .connect(&full)
            .await
            .map_err(|e| connect_err(url, e))?;
        Ok(SqlStore {
            reader,
            writer,
            dialect: Dialect::Sqlite,
            artifact_root,
        })
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// Whether this store runs on PostgreSQL (else SQLite).
    pub fn is_postgres(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        let mut conn = self.writer.acquire().await.map_err(db_err)?;
        if self.dialect == Dialect::Postgres {
            loop {
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db_err)?;
                if got {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let res = self.migrate_locked(&mut conn).await;
            let unlocked = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                .bind(MIGRATION_LOCK_KEY)
                .fetch_one(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Do not hand a connection holding the lock back to the pool.
                let _ = conn.detach().close().await;
            }
            res
        } else {
            self.migrate_locked(&mut conn).await
        }
    }

    async fn migrate_locked(&self, conn: &mut AnyConnection) -> Result<()> {
        let int = if self.dialect == Dialect::Postgres {
            "BIGINT"
        } else {
            "INTEGER"
        };
        let ledger = format!(
            "CREATE TABLE IF NOT EXISTS slipway_schema_migrations (version {int} PRIMARY KEY, name TEXT NOT NULL, applied_at {int} NOT NULL)"
        );
        (&mut *conn)
            .execute(sqlx::raw_sql(&ledger))
            .await
            .map_err(db_err)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM slipway_schema_migrations")
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        for m in MIGRATIONS {
            if applied.contains(&m.version) {
                continue;
            }
            let sql = if self.dialect == Dialect::Postgres {
                m.postgres
            } else {
                m.sqlite
            };
            let mut tx = conn.begin().await.map_err(db_err)?;
            (&mut *tx)
                .execute(sqlx::raw_sql(sql))
                .await
                .map_err(db_err)?;
            sqlx::query("INSERT INTO slipway_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(now_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            tracing::info!(
                version = m.version,
                name = m.name,
                "applied metadata migration"
            );
        }
        let now = now_millis();
        sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES (0, 'Default', $1, 'active', $2, $2) ON CONFLICT DO NOTHING",
        )
        .bind(format!("{}/0", self.artifact_root))
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// Hides the password of `scheme://user:pass@host/...`, if there is one.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let creds = &rest[..at];
            if let Some((user, _password)) = creds.split_once(':') {
                return format!("{scheme}://{user}:***@{}", &rest[at + 1..]);
            }
        }
    }
    url.to_string()
}

/// The error of a failed connection, with its cause (the database's own
/// message carries no credentials) and what to do about the common ones.
fn connect_err(url: &str, e: sqlx::Error) -> Error {
    tracing::error!(error = %e, url = %redact(url), "cannot connect to the metadata database");
    let cause = match &e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    };
    let hint = if cause.contains("does not exist") && cause.contains("database") {
        "; Slipway creates its tables but not the database itself: create it first (e.g. `createdb NAME` or `CREATE DATABASE NAME`)"
    } else if cause.contains("unable to open database file") {
        "; check that the file exists and is readable"
    } else {
        ""
    };
    Error::new(
        slipway_core::ErrorCode::TemporarilyUnavailable,
        format!(
            "Cannot connect to the metadata database {}: {cause}{hint}",
            redact(url)
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_masks_only_a_password_that_exists() {
        assert_eq!(
            super::redact("postgres://u:pw@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact("postgres://postgres@h:5432/db"),
            "postgres://postgres@h:5432/db"
        );
        assert_eq!(
            super::redact("postgres://h/db?x=a@b"),
            "postgres://h/db?x=a@b"
        );
        assert_eq!(super::redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
