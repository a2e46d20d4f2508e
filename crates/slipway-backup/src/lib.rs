//! Backups of a Slipway installation: metadata and artifacts together, in a
//! versioned, engine-neutral format (see [`format`] and
//! docs/adr/0004-backup-format.md).
//!
//! - [`create()`]: one consistent snapshot of the metadata (SQLite `VACUUM
//!   INTO`, PostgreSQL `REPEATABLE READ`; see
//!   `slipway_metadata::sql::snapshot`) while the server keeps serving, and
//!   the artifacts it references copied into content-addressed blobs, each
//!   checked against the SHA-256 recorded at upload. Blobs already at the
//!   location are not copied again (incremental). The manifest is written
//!   last, atomically: until it exists the backup is incomplete and nothing
//!   uses it.
//! - [`verify()`]: restores the metadata into a scratch store, compares row
//!   counts, re-hashes every blob, checks that every model version and
//!   deployment has the files it needs; names every problem.
//! - [`restore()`]: into empty stores (or over existing ones when forced),
//!   artifacts first, then all metadata in one transaction.
//! - [`retention`]: which backups a keep-last/daily/weekly/monthly policy
//!   keeps, and a prune that never deletes a blob a kept backup references.
//! - [`schedule`]: `@every 6h`, `@daily` or five-field cron expressions.
//! - [`runs`]: every backup run (command line, CronJob, schedule) recorded
//!   in the store it backed up, which servers export as metrics.
//!
//! This crate knows the stores only through `slipway-metadata` (SQL access
//! for snapshots and imports, the `MetadataStore` trait for leases) and
//! `slipway-artifacts`; it knows nothing about HTTP or the command line.

pub mod create;
pub mod error;
pub mod format;
mod lease;
pub mod location;
pub mod restore;
pub mod retention;
pub mod runs;
pub mod schedule;
mod transfer;
pub mod verify;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use create::{create, CreateOptions, CreateSummary, Source};
pub use error::{BackupError, Result};
pub use format::{Manifest, FORMAT_VERSION};
pub use lease::{HeldLease, BACKUP_LEASE};
pub use location::{split_source, BackupInfo, Location, S3Options};
pub use restore::{restore, RestoreOptions, RestoreSummary, Target};
pub use retention::{prune, Policy, PruneReport};
pub use runs::{RunTracker, StartedBy};
pub use schedule::Schedule;
pub use verify::{verify, VerifyOptions, VerifyReport};

/// Runs `futures` with at most `n` in flight; results in completion order.
/// (Futures built before, not by a closure inside the stream: that keeps
/// the callers' futures `Send`.)
pub(crate) async fn bounded<F: std::future::Future>(futures: Vec<F>, n: usize) -> Vec<F::Output> {
    use futures::StreamExt;
    futures::stream::iter(futures)
        .buffer_unordered(n.max(1))
        .collect()
        .await
}

/// A source of the current time, injectable for tests.
pub trait Clock: Send + Sync {
    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        slipway_core::now_millis()
    }
}

/// A new backup id for a backup started at `now_ms`:
/// `YYYYMMDDTHHMMSSZ-<milliseconds, 3 digits><6 hex>`, sortable by time.
pub fn new_backup_id(now_ms: i64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let suffix: [u8; 3] = rand::random();
    format!(
        "{}-{:03}{}",
        t.format("%Y%m%dT%H%M%SZ"),
        now_ms.rem_euclid(1000),
        hex::encode(suffix)
    )
}

/// The start time encoded in a backup id, ms since epoch.
pub fn id_time_ms(id: &str) -> Option<i64> {
    let stamp = id.get(..16)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// RFC 3339 UTC text of a time in ms since epoch.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Progress of a long operation, updated as it runs and read by whoever
/// shows it (the command line prints it on stderr). Cheap to share.
#[derive(Debug)]
pub struct Progress {
    phase: Mutex<String>,
    started: Instant,
    /// Files to go through in the current phase.
    pub files_total: AtomicU64,
    /// Files done (copied, reused, checked).
    pub files_done: AtomicU64,
    /// Bytes to go through.
    pub bytes_total: AtomicU64,
    /// Bytes done.
    pub bytes_done: AtomicU64,
    /// Bytes skipped because the location already had them.
    pub bytes_reused: AtomicU64,
    /// Metadata rows exported or imported.
    pub rows: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            phase: Mutex::new(String::new()),
            started: Instant::now(),
            files_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            bytes_reused: AtomicU64::new(0),
            rows: AtomicU64::new(0),
        }
    }
}

/// A reading of [`Progress`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressReading {
    /// The current phase (`metadata`, `artifacts`, ...).
    pub phase: String,
    /// Time since the operation started.
    pub elapsed: Duration,
    /// Files done / total.
    pub files: (u64, u64),
    /// Bytes done / total.
    pub bytes: (u64, u64),
    /// Bytes reused.
    pub bytes_reused: u64,
    /// Rows.
    pub rows: u64,
    /// Bytes per second moved so far.
    pub rate: f64,
}

impl Progress {
    /// Enters a new phase; resets the file and byte counters.
    pub fn phase(&self, name: &str) {
        if let Ok(mut p) = self.phase.lock() {
            *p = name.to_string();
        }
        self.files_total.store(0, Ordering::Relaxed);
        self.files_done.store(0, Ordering::Relaxed);
        self.bytes_total.store(0, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        self.bytes_reused.store(0, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The current state.
    pub fn read(&self) -> ProgressReading {
        let elapsed = self.started.elapsed();
        let done = self.bytes_done.load(Ordering::Relaxed);
        ProgressReading {
            phase: self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            elapsed,
            files: (
                self.files_done.load(Ordering::Relaxed),
                self.files_total.load(Ordering::Relaxed),
            ),
            bytes: (done, self.bytes_total.load(Ordering::Relaxed)),
            bytes_reused: self.bytes_reused.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            rate: done as f64 / elapsed.as_secs_f64().max(0.001),
        }
    }
}

/// Caps the bytes per second of artifact copies (shared by concurrent copies).
#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: u64,
    started: Instant,
    sent: AtomicU64,
}

impl RateLimit {
    /// A limit of `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            started: Instant::now(),
            sent: AtomicU64::new(0),
        }
    }

    /// Accounts for `n` bytes, sleeping until they fit under the limit.
    pub async fn consume(&self, n: u64) {
        let total = self.sent.fetch_add(n, Ordering::Relaxed) + n;
        let due = Duration::from_secs_f64(total as f64 / self.bytes_per_sec as f64);
        let elapsed = self.started.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
    }
}

/// Parses a byte count with an optional unit: `500`, `64k`, `10MB`,
/// `10MiB`, `1G` (k/M/G/T are powers of 1024, with or without `B`/`iB`).
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a byte count such as 500, 64k, 10MiB or 1G"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{s}' (use k, M, G or T)"
            ))
        }
    };
    let v = n * mult as f64;
    if !(v.is_finite() && v >= 1.0) {
        return Err(format!("'{s}' must be at least one byte"));
    }
    Ok(v as u64)
}

/// Bytes for people: `1.5 GiB`, `12.0 MiB`, `532 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Compile-time check: the operations' futures are `Send`, so servers can
/// spawn them.
#[allow(dead_code)]
fn futures_are_send(
    source: &Source,
    dest: &Location,
    manifest: &Manifest,
    target: &Target,
    progress: &Progress,
) {
    fn is_send<T: Send>(_: &T) {}
    let clock = SystemClock;
    is_send(&create(
        source,
        dest,
        &CreateOptions::default(),
        progress,
        &clock,
    ));
    is_send(&verify(
        dest,
        manifest,
        &VerifyOptions::default(),
        progress,
        &clock,
    ));
    is_send(&restore(
        dest,
        manifest,
        target,
        &RestoreOptions::default(),
        progress,
    ));
    is_send(&prune(
        dest,
        &Policy::default(),
        &retention::PruneOptions::default(),
        &clock,
    ));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_sort_by_time_and_encode_it() {
        let a = new_backup_id(1_700_000_000_000);
        let b = new_backup_id(1_700_000_001_000);
        assert!(a < b, "{a} {b}");
        // Within one second, the milliseconds order them.
        let c = new_backup_id(1_700_000_001_999);
        assert!(b < c, "{b} {c}");
        assert!(format::is_backup_id(&a));
        assert_eq!(id_time_ms(&a), Some(1_700_000_000_000));
        assert_eq!(id_time_ms("garbage"), None);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("500").unwrap(), 500);
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        assert!(parse_bytes("fast").is_err() && parse_bytes("0").is_err());
        assert_eq!(human_bytes(532), "532 B");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }
}
