//! What `slipway doctor` asks the database, answered without changing it:
//! which migrations are applied, the database's clock, and whether a write
//! transaction can be opened (it is rolled back).

use slipway_core::now_millis;

use super::snapshot::SnapshotError;
use super::util::Dialect;
use super::SqlStore;

fn db(context: &'static str) -> impl FnOnce(sqlx::Error) -> SnapshotError {
    move |source| SnapshotError::Database {
        context: context.to_string(),
        source,
    }
}

/// The database's clock against this process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// Database time minus local time at the midpoint of the round trip, in ms.
    pub skew_ms: i64,
    /// The round trip, in ms (the skew is known to about half of it).
    pub round_trip_ms: i64,
}

impl SqlStore {
    /// Versions of the applied migrations, oldest first (empty for a
    /// database Slipway never migrated).
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, SnapshotError> {
        let mut conn = self
            .reader
            .acquire()
            .await
            .map_err(db("acquiring a connection"))?;
        let exists: i64 = match self.dialect {
            Dialect::Sqlite => sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'slipway_schema_migrations'",
            ),
            Dialect::Postgres => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'slipway_schema_migrations'",
            ),
        }
        .fetch_one(&mut *conn)
        .await
        .map_err(db("looking for the migration ledger"))?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_scalar("SELECT version FROM slipway_schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(db("reading the migration ledger"))
    }

    /// Reads the database's clock. SQLite runs in this process, so its
    /// clock is this machine's (skew 0 within the round trip).
    pub async fn clock(&self) -> Result<ClockReading, SnapshotError> {
        let mut conn = self
            .reader
            .acquire()
            .await
            .map_err(db("acquiring a connection"))?;
        let sql = match self.dialect {
            Dialect::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
            }
            Dialect::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
            }
        };
        let before = now_millis();
        let db_now: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(db("reading the database clock"))?;
        let after = now_millis();
        Ok(ClockReading {
            skew_ms: db_now - (before + after) / 2,
            round_trip_ms: after - before,
        })
    }

    /// Opens a write transaction, writes a probe setting and rolls back:
    /// proves the credentials may write without leaving anything behind.
    pub async fn probe_write(&self) -> Result<(), SnapshotError> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(db("starting a write transaction"))?;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind("doctor_probe")
        .bind(now_millis().to_string())
        .execute(&mut *tx)
        .await
        .map_err(db("writing in a transaction"))?;
        tx.rollback().await.map_err(db("rolling the probe back"))
    }
}
