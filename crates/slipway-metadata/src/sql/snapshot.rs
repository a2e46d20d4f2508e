//! Table-level export and import, engine-neutral: what backups, restores and
//! store migration need from the SQL store, and nothing else.
//!
//! [`Snapshot::take`] reads every data table of a store at ONE consistent
//! point while the server keeps serving and writing:
//!
//! - SQLite: `VACUUM INTO` a file in a scratch directory (the copy is a
//!   consistent snapshot of the source and, in WAL mode, neither blocks nor is
//!   blocked by writers), then every table is read from that copy;
//! - PostgreSQL: one `REPEATABLE READ READ ONLY` transaction, whose snapshot
//!   is taken by its first statement; every table is read inside it.
//!
//! Tables and columns are discovered from the live schema (not a list kept
//! here), ordered so that a table comes after the tables its foreign keys
//! reference, and rows come in primary-key order, so two exports of equal
//! data are equal byte for byte. Values are typed by [`ColumnKind`]; the
//! same five kinds exist on both engines, which is what makes an export of
//! one engine importable into the other.
//!
//! [`Import`] writes rows into a store inside ONE transaction: a restore is
//! all or nothing. It converts values to the target column's kind, inserts
//! tables in dependency order, and on PostgreSQL moves serial sequences past
//! the imported ids.
//!
//! Leases (transient claims of running processes) and the migration ledger
//! (owned by the target's own migrations) are neither exported nor imported.
//! This module knows nothing about files, formats or artifacts: that is the
//! backup crate's business.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use futures::stream::BoxStream;
use futures::StreamExt;
use slipway_core::now_millis;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Connection, Executor, Row, Transaction};

use super::util::Dialect;
use super::{sqlite_path, SqlStore};

/// Tables that are never exported nor imported: the migration ledger (the
/// target's migrations own it), leases (claims of running processes) and
/// the backup runs (this store's own operational history: a restored store
/// keeps its own, and a backup never records itself).
pub const EXCLUDED_TABLES: &[&str] = &["slipway_schema_migrations", "leases", "backup_runs"];

/// What can go wrong in an export or import. Messages carry the database's
/// own cause (for operators at a terminal), never credentials.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A statement failed.
    #[error("database error while {context}: {source}")]
    Database {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema cannot be exported or the data does not fit the target.
    #[error("{0}")]
    Schema(String),
    /// The scratch directory could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn db(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> SnapshotError {
    let context = context.into();
    move |source| SnapshotError::Database { context, source }
}

/// The engine-neutral type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnKind {
    /// 64-bit signed integer (SQLite `INTEGER`, PostgreSQL `smallint`/`integer`/`bigint`).
    Integer,
    /// 64-bit float (SQLite `REAL`, PostgreSQL `real`/`double precision`).
    Real,
    /// UTF-8 text.
    Text,
    /// Boolean (PostgreSQL `boolean`; SQLite has none and stores integers).
    Boolean,
    /// Bytes.
    Blob,
}

impl ColumnKind {
    /// The kind's name in exports (`integer`, `real`, `text`, `boolean`, `blob`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Integer => "integer",
            Self::Real => "real",
            Self::Text => "text",
            Self::Boolean => "boolean",
            Self::Blob => "blob",
        }
    }

    /// Parses [`ColumnKind::name`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "integer" => Self::Integer,
            "real" => Self::Real,
            "text" => Self::Text,
            "boolean" => Self::Boolean,
            "blob" => Self::Blob,
            _ => return None,
        })
    }

    fn from_sqlite(declared: &str) -> Option<Self> {
        // SQLite's affinity rules (https://sqlite.org/datatype3.html §3.1),
        // with BOOL mapped to integers, which is how SQLite stores them.
        let t = declared.to_ascii_uppercase();
        if t.contains("INT") || t.contains("BOOL") {
            Some(Self::Integer)
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Some(Self::Text)
        } else if t.contains("BLOB") || t.is_empty() {
            Some(Self::Blob)
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            Some(Self::Real)
        } else {
            None
        }
    }

    fn from_postgres(data_type: &str) -> Option<Self> {
        Some(match data_type {
            "smallint" | "integer" | "bigint" => Self::Integer,
            "real" | "double precision" => Self::Real,
            "text" | "character varying" | "character" | "name" => Self::Text,
            "boolean" => Self::Boolean,
            "bytea" => Self::Blob,
            _ => return None,
        })
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    /// Column name.
    pub name: String,
    /// Its kind.
    pub kind: ColumnKind,
}

/// A table as exported: columns in declaration order, primary key,
/// the tables it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// Table name.
    pub name: String,
    /// Columns, in declaration order.
    pub columns: Vec<ColumnSchema>,
    /// Primary-key columns, in key order (empty when the table has none).
    pub primary_key: Vec<String>,
    /// Tables its foreign keys reference (itself excluded).
    pub references: Vec<String>,
}

impl TableSchema {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// A float (may be infinite; NaN never reaches the store, see `is_nan` columns).
    Real(f64),
    /// Text.
    Text(String),
    /// A boolean.
    Boolean(bool),
    /// Bytes.
    Blob(Vec<u8>),
}

/// How the snapshot was taken and when: every write committed before
/// `started_at_ms` is in it, none committed after `taken_at_ms` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPoint {
    /// `sqlite-vacuum-into` or `postgres-repeatable-read`.
    pub method: &'static str,
    /// Wall clock just before the consistent point was fixed, ms since epoch.
    pub started_at_ms: i64,
    /// Wall clock just after, ms since epoch.
    pub taken_at_ms: i64,
}

/// A consistent, read-only view of every data table of a store.
pub struct Snapshot {
    conn: Option<AnyConnection>,
    dialect: Dialect,
    tables: Vec<TableSchema>,
    /// The SELECT of each table, in the order of `tables`.
    selects: Vec<String>,
    schema_version: i64,
    point: SnapshotPoint,
    scratch: Option<PathBuf>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("tables", &self.tables.len())
            .field("schema_version", &self.schema_version)
            .field("point", &self.point)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Takes a snapshot of the store at `url` (`sqlite://…` or
    /// `postgres://…`) without changing it: no migration runs, nothing is
    /// written. SQLite's copy goes to a new file under `scratch_dir`, which
    /// must exist and have room for a compacted copy of the database; it is
    /// deleted by [`Snapshot::close`] (or when the process next uses that
    /// directory: the caller owns it).
    pub async fn take(url: &str, scratch_dir: &Path) -> Result<Snapshot, SnapshotError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            Self::take_sqlite(url, scratch_dir).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::take_postgres(url).await
        } else {
            Err(SnapshotError::Schema(format!(
                "unsupported database URL '{}': expected sqlite:// or postgres://",
                super::redact(url)
            )))
        }
    }

    async fn take_sqlite(url: &str, scratch_dir: &Path) -> Result<Snapshot, SnapshotError> {
        let (path, _) = sqlite_path(url);
        if !Path::new(path).is_file() {
            return Err(SnapshotError::Schema(format!(
                "no Slipway metadata database at {path}"
            )));
        }
        let copy = scratch_dir.join(format!("snapshot-{}.db", slipway_core::ids::new_id()));
        let copy_str = copy.to_str().ok_or_else(|| {
            SnapshotError::Schema(format!(
                "scratch directory {} is not valid UTF-8",
                scratch_dir.display()
            ))
        })?;
        // Read-write without create: a read-only connection cannot always
        // open a WAL database whose -shm file is missing. Nothing is written
        // to the source.
        let mut source = AnyConnection::connect(&format!("sqlite://{path}?mode=rw"))
            .await
            .map_err(db(format!("opening {path}")))?;
        source
            .execute("PRAGMA busy_timeout = 10000")
            .await
            .map_err(db("setting busy_timeout"))?;
        let started_at_ms = now_millis();
        // VACUUM INTO takes no bound parameters: the file name is a literal.
        let stmt = format!("VACUUM INTO '{}'", copy_str.replace('\'', "''"));
        source
            .execute(stmt.as_str())
            .await
            .map_err(db(format!("copying {path} with VACUUM INTO")))?;
        let taken_at_ms = now_millis();
        let _ = source.close().await;
        let mut conn = AnyConnection::connect(&format!("sqlite://{copy_str}?mode=rw"))
            .await
            .map_err(db("opening the snapshot copy"))?;
        let tables = discover(&mut conn, Dialect::Sqlite).await?;
        let schema_version = read_schema_version(&mut conn).await?;
        Ok(Snapshot {
            conn: Some(conn),
            dialect: Dialect::Sqlite,
            selects: tables
                .iter()
                .map(|t| select_sql(t, Dialect::Sqlite))
                .collect(),
            tables,
            schema_version,
            point: SnapshotPoint {
                method: "sqlite-vacuum-into",
                started_at_ms,
                taken_at_ms,
            },
            scratch: Some(copy),
        })
    }

    async fn take_postgres(url: &str) -> Result<Snapshot, SnapshotError> {
        let mut conn = AnyConnection::connect(url)
            .await
            .map_err(db(format!("connecting to {}", super::redact(url))))?;
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(db("starting the snapshot transaction"))?;
        // The snapshot of a REPEATABLE READ transaction is taken by its first
        // statement (not by BEGIN): this one fixes the consistent point.
        let started_at_ms = now_millis();
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(db("taking the snapshot"))?;
        let taken_at_ms = now_millis();
        let tables = discover(&mut conn, Dialect::Postgres).await?;
        let schema_version = read_schema_version(&mut conn).await?;
        Ok(Snapshot {
            conn: Some(conn),
            dialect: Dialect::Postgres,
            selects: tables
                .iter()
                .map(|t| select_sql(t, Dialect::Postgres))
                .collect(),
            tables,
            schema_version,
            point: SnapshotPoint {
                method: "postgres-repeatable-read",
                started_at_ms,
                taken_at_ms,
            },
            scratch: None,
        })
    }

    /// The exported tables, each after the tables it references.
    pub fn tables(&self) -> &[TableSchema] {
        &self.tables
    }

    /// The source's schema version (its newest applied migration).
    pub fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// When and how the consistent point was fixed.
    pub fn point(&self) -> &SnapshotPoint {
        &self.point
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// The rows of `table` in primary-key order, values in the order of
    /// the table's columns, as a stream (memory stays bounded whatever the
    /// table's size).
    pub fn rows(
        &mut self,
        table: &str,
    ) -> Result<BoxStream<'_, Result<Vec<Value>, SnapshotError>>, SnapshotError> {
        let idx = self
            .tables
            .iter()
            .position(|t| t.name == table)
            .ok_or_else(|| SnapshotError::Schema(format!("no table {table} in the snapshot")))?;
        let schema = self.tables[idx].clone();
        let sql: &str = &self.selects[idx];
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| SnapshotError::Schema("snapshot is closed".into()))?;
        let name = schema.name.clone();
        Ok(sqlx::query(sql)
            .fetch(conn)
            .map(move |r| {
                let r = r.map_err(|source| SnapshotError::Database {
                    context: format!("reading table {name}"),
                    source,
                })?;
                decode_row(&r, &schema)
            })
            .boxed())
    }

    /// Ends the snapshot transaction (PostgreSQL) and deletes the copy (SQLite).
    pub async fn close(mut self) {
        if let Some(mut conn) = self.conn.take() {
            if self.dialect == Dialect::Postgres {
                let _ = conn.execute("ROLLBACK").await;
            }
            let _ = conn.close().await;
        }
        if let Some(path) = self.scratch.take() {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Some(path) = self.scratch.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn select_sql(schema: &TableSchema, dialect: Dialect) -> String {
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| {
            let q = quote(&c.name);
            // Widen PostgreSQL's narrower types to what the Any driver decodes
            // as i64 / f64 / String.
            match (dialect, c.kind) {
                (Dialect::Postgres, ColumnKind::Integer) => format!("{q}::BIGINT"),
                (Dialect::Postgres, ColumnKind::Real) => format!("{q}::DOUBLE PRECISION"),
                (Dialect::Postgres, ColumnKind::Text) => format!("{q}::TEXT"),
                _ => q,
            }
        })
        .collect();
    let order: Vec<String> = if schema.primary_key.is_empty() {
        schema.columns.iter().map(|c| quote(&c.name)).collect()
    } else {
        schema.primary_key.iter().map(|c| quote(c)).collect()
    };
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        quote(&schema.name),
        order.join(", ")
    )
}

fn decode_row(row: &AnyRow, schema: &TableSchema) -> Result<Vec<Value>, SnapshotError> {
    let mut out = Vec::with_capacity(schema.columns.len());
    for (i, c) in schema.columns.iter().enumerate() {
        let bad = |e: sqlx::Error| {
            SnapshotError::Schema(format!(
                "table {} column {}: value is not {}: {e}",
                schema.name,
                c.name,
                c.kind.name()
            ))
        };
        let v = match c.kind {
            ColumnKind::Integer => row
                .try_get::<Option<i64>, _>(i)
                .map_err(bad)?
                .map_or(Value::Null, Value::Integer),
            ColumnKind::Real => row
                .try_get::<Option<f64>, _>(i)
                .map_err(bad)?
                .map_or(Value::Null, Value::Real),
            ColumnKind::Text => row
                .try_get::<Option<String>, _>(i)
                .map_err(bad)?
                .map_or(Value::Null, Value::Text),
            ColumnKind::Boolean => row
                .try_get::<Option<bool>, _>(i)
                .map_err(bad)?
                .map_or(Value::Null, Value::Boolean),
            ColumnKind::Blob => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(bad)?
                .map_or(Value::Null, Value::Blob),
        };
        out.push(v);
    }
    Ok(out)
}

async fn read_schema_version(conn: &mut AnyConnection) -> Result<i64, SnapshotError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM slipway_schema_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(db(
            "reading the schema version (is this a Slipway database?)",
        ))?;
    Ok(v.unwrap_or(0))
}

/// Every data table of the database `conn` is connected to, each after the
/// tables it references.
async fn discover(
    conn: &mut AnyConnection,
    dialect: Dialect,
) -> Result<Vec<TableSchema>, SnapshotError> {
    let names: Vec<String> = match dialect {
        Dialect::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name",
        ),
        Dialect::Postgres => sqlx::query_scalar(
            "SELECT table_name::TEXT FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
        ),
    }
    .fetch_all(&mut *conn)
    .await
    .map_err(db("listing tables"))?;
    let mut tables = Vec::new();
    for name in names {
        if EXCLUDED_TABLES.contains(&name.as_str()) {
            continue;
        }
        tables.push(describe(conn, dialect, &name).await?);
    }
    order_by_dependencies(tables)
}

async fn describe(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &str,
) -> Result<TableSchema, SnapshotError> {
    let (columns, primary_key, references) = match dialect {
        Dialect::Sqlite => {
            let rows = sqlx::query("SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid")
                .bind(table)
                .fetch_all(&mut *conn)
                .await
                .map_err(db(format!("describing table {table}")))?;
            let mut columns = Vec::new();
            let mut pk: Vec<(i64, String)> = Vec::new();
            for r in rows {
                let name: String = r.try_get(0).map_err(db("reading table info"))?;
                let declared: String = r.try_get(1).map_err(db("reading table info"))?;
                let pos: i64 = r.try_get(2).map_err(db("reading table info"))?;
                let kind = ColumnKind::from_sqlite(&declared)
                    .ok_or_else(|| unsupported(table, &name, &declared))?;
                if pos > 0 {
                    pk.push((pos, name.clone()));
                }
                columns.push(ColumnSchema { name, kind });
            }
            pk.sort();
            let refs: Vec<String> =
                sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                    .bind(table)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db(format!("reading foreign keys of {table}")))?;
            (columns, pk.into_iter().map(|(_, n)| n).collect(), refs)
        }
        Dialect::Postgres => {
            let rows = sqlx::query(
                "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(db(format!("describing table {table}")))?;
            let mut columns = Vec::new();
            for r in rows {
                let name: String = r.try_get(0).map_err(db("reading column info"))?;
                let data_type: String = r.try_get(1).map_err(db("reading column info"))?;
                let kind = ColumnKind::from_postgres(&data_type)
                    .ok_or_else(|| unsupported(table, &name, &data_type))?;
                columns.push(ColumnSchema { name, kind });
            }
            let pk: Vec<String> = sqlx::query_scalar(
                "SELECT k.column_name::TEXT FROM information_schema.table_constraints t \
                 JOIN information_schema.key_column_usage k ON k.constraint_name = t.constraint_name \
                   AND k.table_schema = t.table_schema AND k.table_name = t.table_name \
                 WHERE t.table_schema = current_schema() AND t.table_name = $1 AND t.constraint_type = 'PRIMARY KEY' \
                 ORDER BY k.ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(db(format!("reading the primary key of {table}")))?;
            let refs: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT f.relname::TEXT FROM pg_constraint k \
                 JOIN pg_class t ON t.oid = k.conrelid JOIN pg_class f ON f.oid = k.confrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 WHERE k.contype = 'f' AND n.nspname = current_schema() AND t.relname = $1",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(db(format!("reading foreign keys of {table}")))?;
            (columns, pk, refs)
        }
    };
    let mut references: Vec<String> = references.into_iter().filter(|r| r != table).collect();
    references.sort();
    references.dedup();
    Ok(TableSchema {
        name: table.to_string(),
        columns,
        primary_key,
        references,
    })
}

fn unsupported(table: &str, column: &str, ty: &str) -> SnapshotError {
    SnapshotError::Schema(format!(
        "table {table} column {column} has type '{ty}', which the export does not know; \
         use integer, real, text, boolean or blob columns (or teach sql/snapshot.rs the type)"
    ))
}

/// Orders tables so that each comes after those it references (ties by
/// name). A reference cycle is an error: no insert order would satisfy it.
fn order_by_dependencies(tables: Vec<TableSchema>) -> Result<Vec<TableSchema>, SnapshotError> {
    let names: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    let mut pending: BTreeMap<String, TableSchema> =
        tables.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .values()
            .filter(|t| {
                t.references
                    .iter()
                    .all(|r| done.contains(r) || !names.contains(r))
            })
            .map(|t| t.name.clone())
            .collect();
        if ready.is_empty() {
            return Err(SnapshotError::Schema(format!(
                "foreign keys form a cycle among {}",
                pending.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        for name in ready {
            if let Some(t) = pending.remove(&name) {
                done.insert(name);
                out.push(t);
            }
        }
    }
    Ok(out)
}

/// How many rows each data table of a store holds, and whether it holds
/// anything a restore would overwrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Rows per data table (excluded tables not listed), by name.
    pub rows: BTreeMap<String, i64>,
    /// Whether the only experiment row is the untouched `Default`
    /// experiment every store is created with.
    pub fresh_default_experiment: bool,
}

impl Contents {
    /// Tables holding data, with their row counts, not counting the
    /// `Default` experiment every store is created with.
    pub fn non_empty(&self) -> Vec<(String, i64)> {
        self.rows
            .iter()
            .map(|(t, n)| {
                let fresh = t == "experiments" && self.fresh_default_experiment;
                (t.clone(), if fresh { n - 1 } else { *n })
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Whether only what a fresh store holds is there.
    pub fn is_empty(&self) -> bool {
        self.non_empty().is_empty()
    }
}

impl SqlStore {
    async fn writer_conn(&self) -> Result<sqlx::pool::PoolConnection<Any>, SnapshotError> {
        self.writer
            .acquire()
            .await
            .map_err(db("acquiring a database connection"))
    }

    /// The data tables of this store, each after those it references.
    pub async fn table_schemas(&self) -> Result<Vec<TableSchema>, SnapshotError> {
        let mut conn = self.writer_conn().await?;
        discover(&mut conn, self.dialect).await
    }

    /// Row counts of every data table.
    pub async fn contents(&self) -> Result<Contents, SnapshotError> {
        let mut conn = self.writer_conn().await?;
        let tables = discover(&mut conn, self.dialect).await?;
        let mut rows = BTreeMap::new();
        for t in tables {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(&t.name)))
                .fetch_one(&mut *conn)
                .await
                .map_err(db(format!("counting rows of {}", t.name)))?;
            rows.insert(t.name, n);
        }
        // A Default experiment that was renamed or deleted is data.
        let fresh: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM experiments WHERE experiment_id = 0 AND name = 'Default' AND lifecycle_stage = 'active'",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db("checking the Default experiment"))?;
        Ok(Contents {
            rows,
            fresh_default_experiment: fresh == 1,
        })
    }

    /// Starts an import: one transaction over this store in which every
    /// data table is emptied first (leases, backup runs and the migration
    /// ledger are kept). Nothing is visible to other connections until
    /// [`Import::commit`]; dropping the import rolls it back.
    pub async fn begin_import(&self) -> Result<Import, SnapshotError> {
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(db("starting the import transaction"))?;
        let tables = discover(&mut tx, self.dialect).await?;
        for t in tables.iter().rev() {
            sqlx::query(&format!("DELETE FROM {}", quote(&t.name)))
                .execute(&mut *tx)
                .await
                .map_err(db(format!("emptying table {}", t.name)))?;
        }
        Ok(Import {
            tx,
            dialect: self.dialect,
            tables: tables.into_iter().map(|t| (t.name.clone(), t)).collect(),
            rows: 0,
        })
    }
}

/// An import in progress: one open transaction. See [`SqlStore::begin_import`].
pub struct Import {
    tx: Transaction<'static, Any>,
    dialect: Dialect,
    tables: HashMap<String, TableSchema>,
    rows: u64,
}

impl std::fmt::Debug for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import")
            .field("tables", &self.tables.len())
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

/// Rows per multi-row INSERT (bounded by SQLite's 32766 and PostgreSQL's
/// 65535 bound parameters for the widest tables).
const INSERT_BATCH: usize = 200;

impl Import {
    /// The target's table `name`, if it has one.
    pub fn target_table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }

    /// Rows inserted so far.
    pub fn rows_inserted(&self) -> u64 {
        self.rows
    }

    /// Inserts `rows` (values in the order of `columns`) into `table`.
    /// Every column must exist in the target (columns of the target that
    /// `columns` lacks get their defaults); values are converted to the
    /// target column's kind, and a value that does not fit is an error
    /// naming the table and column.
    pub async fn insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<(), SnapshotError> {
        let schema = self.tables.get(table).ok_or_else(|| {
            SnapshotError::Schema(format!(
                "the target store has no table {table} (the backup comes from a newer schema)"
            ))
        })?;
        let kinds: Vec<ColumnKind> = columns
            .iter()
            .map(|c| {
                schema.column(c).map(|c| c.kind).ok_or_else(|| {
                    SnapshotError::Schema(format!(
                        "the target table {table} has no column {c} (the backup comes from a newer schema)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote(table),
            columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for chunk in rows.chunks(INSERT_BATCH) {
            let mut sql = head.clone();
            let mut n = 0usize;
            for (i, row) in chunk.iter().enumerate() {
                if row.len() != columns.len() {
                    return Err(SnapshotError::Schema(format!(
                        "table {table}: a row has {} values for {} columns",
                        row.len(),
                        columns.len()
                    )));
                }
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for j in 0..row.len() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    n += 1;
                    sql.push_str(&format!("${n}"));
                }
                sql.push(')');
            }
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for ((v, kind), col) in row.iter().zip(&kinds).zip(columns) {
                    q = bind(q, v, *kind).map_err(|why| {
                        SnapshotError::Schema(format!("table {table} column {col}: {why}"))
                    })?;
                }
            }
            q.execute(&mut *self.tx)
                .await
                .map_err(db(format!("inserting into {table}")))?;
            self.rows += chunk.len() as u64;
        }
        Ok(())
    }

    /// Writes a setting (a small key/value fact) in the import's transaction,
    /// e.g. which backup the store was restored from.
    pub async fn set_setting(&mut self, key: &str, value: &str) -> Result<(), SnapshotError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.tx)
        .await
        .map_err(db(format!("writing setting {key}")))?;
        Ok(())
    }

    /// Moves PostgreSQL's serial sequences past the imported ids and commits.
    pub async fn commit(mut self) -> Result<u64, SnapshotError> {
        if self.dialect == Dialect::Postgres {
            let serials = sqlx::query(
                "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')",
            )
            .fetch_all(&mut *self.tx)
            .await
            .map_err(db("listing serial columns"))?;
            for r in serials {
                let t: String = r.try_get(0).map_err(db("reading serial columns"))?;
                let c: String = r.try_get(1).map_err(db("reading serial columns"))?;
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
                    quote(&c),
                    quote(&t)
                );
                sqlx::query(&sql)
                    .bind(quote(&t))
                    .bind(&c)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(db(format!("moving the sequence of {t}.{c}")))?;
            }
        }
        self.tx
            .commit()
            .await
            .map_err(db("committing the import"))?;
        Ok(self.rows)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

fn bind<'q>(q: AnyQuery<'q>, v: &'q Value, kind: ColumnKind) -> Result<AnyQuery<'q>, String> {
    Ok(match (kind, v) {
        (ColumnKind::Integer, Value::Null) => q.bind(None::<i64>),
        (ColumnKind::Real, Value::Null) => q.bind(None::<f64>),
        (ColumnKind::Text, Value::Null) => q.bind(None::<String>),
        (ColumnKind::Boolean, Value::Null) => q.bind(None::<bool>),
        (ColumnKind::Blob, Value::Null) => q.bind(None::<Vec<u8>>),
        (ColumnKind::Integer, Value::Integer(i)) => q.bind(*i),
        (ColumnKind::Integer, Value::Boolean(b)) => q.bind(i64::from(*b)),
        (ColumnKind::Real, Value::Real(f)) => q.bind(*f),
        (ColumnKind::Real, Value::Integer(i)) => q.bind(*i as f64),
        (ColumnKind::Text, Value::Text(s)) => q.bind(s.as_str()),
        (ColumnKind::Boolean, Value::Boolean(b)) => q.bind(*b),
        (ColumnKind::Boolean, Value::Integer(i)) if *i == 0 || *i == 1 => q.bind(*i == 1),
        (ColumnKind::Blob, Value::Blob(b)) => q.bind(b.as_slice()),
        (kind, v) => return Err(format!("{v:?} does not fit a {} column", kind.name())),
    })
}

/// Compile-time check: the futures are `Send`.
#[allow(dead_code)]
fn futures_are_send(store: &SqlStore, snap: &mut Snapshot, import: &mut Import) {
    fn is_send<T: Send>(_: &T) {}
    is_send(&Snapshot::take("sqlite://x", Path::new("/tmp")));
    is_send(&SqlStore::connect(
        "sqlite://x",
        super::SqlOptions::default(),
    ));
    is_send(&store.contents());
    is_send(&store.begin_import());
    is_send(&import.insert("t", &[], &[]));
    is_send(&snap.rows("t"));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(name: &str, refs: &[&str]) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns: vec![],
            primary_key: vec![],
            references: refs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tables_come_after_what_they_reference() {
        let order = order_by_dependencies(vec![
            t("tags", &["runs"]),
            t("runs", &["experiments"]),
            t("experiments", &[]),
            t("alone", &[]),
            t("ext", &["not_exported"]),
        ])
        .unwrap();
        let names: Vec<_> = order.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["alone", "experiments", "ext", "runs", "tags"]);
        let e = order_by_dependencies(vec![t("a", &["b"]), t("b", &["a"])]).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
    }

    #[test]
    fn column_kinds_from_both_engines() {
        assert_eq!(
            ColumnKind::from_sqlite("INTEGER"),
            Some(ColumnKind::Integer)
        );
        assert_eq!(
            ColumnKind::from_sqlite("varchar(20)"),
            Some(ColumnKind::Text)
        );
        assert_eq!(ColumnKind::from_sqlite("REAL"), Some(ColumnKind::Real));
        assert_eq!(ColumnKind::from_sqlite("NUMERIC"), None);
        assert_eq!(
            ColumnKind::from_postgres("double precision"),
            Some(ColumnKind::Real)
        );
        assert_eq!(ColumnKind::from_postgres("jsonb"), None);
        for k in [
            ColumnKind::Integer,
            ColumnKind::Real,
            ColumnKind::Text,
            ColumnKind::Boolean,
            ColumnKind::Blob,
        ] {
            assert_eq!(ColumnKind::parse(k.name()), Some(k));
        }
    }

    #[test]
    fn fresh_contents_are_empty() {
        let mut rows = BTreeMap::new();
        rows.insert("experiments".to_string(), 1);
        rows.insert("runs".to_string(), 0);
        let mut c = Contents {
            rows,
            fresh_default_experiment: true,
        };
        assert!(c.is_empty());
        c.rows.insert("runs".to_string(), 3);
        assert_eq!(c.non_empty(), vec![("runs".to_string(), 3)]);
        c.fresh_default_experiment = false;
        assert_eq!(c.non_empty().len(), 2);
    }
}
