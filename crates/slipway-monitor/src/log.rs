//! The prediction log: served requests buffered in memory and written as
//! Parquet files to the artifact store.
//!
//! [`PredictionLog::submit`] (the [`PredictionSink`] serving calls) counts
//! the request's rows against the buffer's capacity and pushes it to an
//! inbox the writer task empties every few milliseconds (woken once per
//! batch, not once per request: a wake per request cost more than the rest
//! of the log's work on the request path); when the buffer is full the rows
//! are dropped and counted, never delaying the request. The writer groups rows by deployment,
//! version and hour, and writes a group as one file when it reaches
//! `flush_rows`, when its oldest row is `flush_interval` old, and on
//! [`PredictionLog::flush`] (graceful shutdown). Splitting, encoding and
//! freeing a file's rows run on the log's background thread (the
//! `background` module). A failed write is retried at the next tick, three
//! times at most, then dropped and counted. A crash loses what was
//! buffered: at most `flush_interval` of traffic plus the file being
//! written.

use crate::background::{Background, CHUNK_ROWS};
use crate::columns::{prediction_rows, LogSchema};
use crate::files::{self, PREDICTIONS};
use slipway_artifacts::ArtifactStore;
use slipway_serving::{Prediction, PredictionSink};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};

/// How the log buffers and writes.
#[derive(Debug, Clone, Copy)]
pub struct LogSettings {
    /// Rows held in memory at most.
    pub buffer_rows: u64,
    /// Rows of one deployment, version and hour written as one file.
    pub flush_rows: u64,
    /// Age of the oldest buffered row after which it is written.
    pub flush_interval: Duration,
}

/// Column names from a version's column-based signature, if it has one.
pub type ColumnNames = Arc<dyn Fn(&str, &str) -> Option<Vec<String>> + Send + Sync>;

/// A flush request: which deployment (`None`: all), and whom to tell.
struct Flush(Option<String>, oneshot::Sender<()>);

/// How long the writer lets submitted requests gather after the first one
/// woke it.
const GATHER: Duration = Duration::from_millis(10);

/// Requests submitted and not yet taken by the writer.
#[derive(Default)]
struct Inbox {
    rows: std::sync::Mutex<Vec<Prediction>>,
    /// Wakes the writer when the inbox stops being empty.
    ready: tokio::sync::Notify,
}

impl Inbox {
    fn take(&self) -> Vec<Prediction> {
        let mut rows = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let room = rows.len();
        std::mem::replace(&mut *rows, Vec::with_capacity(room))
    }
}

/// The prediction log of this process.
pub struct PredictionLog {
    inbox: Arc<Inbox>,
    flushes: mpsc::UnboundedSender<Flush>,
    buffered: Arc<AtomicU64>,
    capacity: u64,
}

impl PredictionSink for PredictionLog {
    fn submit(&self, prediction: Prediction) {
        let rows = prediction_rows(&prediction) as u64;
        if rows == 0 {
            return;
        }
        let before = self.buffered.fetch_add(rows, Ordering::Relaxed);
        if before + rows > self.capacity {
            self.buffered.fetch_sub(rows, Ordering::Relaxed);
            metrics::counter!("slipway_prediction_log_dropped_rows_total", "deployment" => prediction.deployment.to_string(), "reason" => "buffer_full")
                .increment(rows);
            return;
        }
        if self.flushes.is_closed() {
            // the writer is gone (shutting down)
            self.buffered.fetch_sub(rows, Ordering::Relaxed);
            metrics::counter!("slipway_prediction_log_dropped_rows_total", "deployment" => prediction.deployment.to_string(), "reason" => "write_error")
                .increment(rows);
            return;
        }
        let first = {
            let mut inbox = self
                .inbox
                .rows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            inbox.push(prediction);
            inbox.len() == 1
        };
        if first {
            self.inbox.ready.notify_one();
        }
    }
}

impl PredictionLog {
    /// Starts the writer task on the current runtime.
    pub fn start(
        store: Arc<ArtifactStore>,
        settings: LogSettings,
        column_names: ColumnNames,
    ) -> Arc<PredictionLog> {
        let (flushes, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicU64::new(0));
        let inbox = Arc::new(Inbox::default());
        let writer = Writer {
            inbox: inbox.clone(),
            background: Background::log(),
            store,
            settings,
            column_names,
            buffered: buffered.clone(),
            groups: HashMap::new(),
            schemas: HashMap::new(),
        };
        tokio::spawn(writer.run(rx));
        Arc::new(PredictionLog {
            inbox,
            flushes,
            buffered,
            capacity: settings.buffer_rows,
        })
    }

    /// Rows buffered now.
    pub fn buffered_rows(&self) -> u64 {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Writes every buffered row (of `deployment`, or all) and waits until
    /// the files are stored.
    pub async fn flush(&self, deployment: Option<&str>) {
        let (tx, rx) = oneshot::channel();
        if self
            .flushes
            .send(Flush(deployment.map(str::to_string), tx))
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    deployment: Arc<str>,
    version: String,
    hour_ms: i64,
}

struct Group {
    rows: Vec<Prediction>,
    count: u64,
    since: Instant,
    attempts: u32,
}

struct Writer {
    inbox: Arc<Inbox>,
    background: Option<&'static Background>,
    store: Arc<ArtifactStore>,
    settings: LogSettings,
    column_names: ColumnNames,
    buffered: Arc<AtomicU64>,
    groups: HashMap<Key, Group>,
    schemas: HashMap<(Arc<str>, String), Arc<LogSchema>>,
}

fn time_ms(p: &Prediction) -> i64 {
    p.time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Flush>) {
        let tick = (self.settings.flush_interval / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Flush(dep, done)) => {
                        // everything submitted before the flush was asked for
                        self.take_inbox().await;
                        self.flush_where(|k| dep.as_deref().is_none_or(|d| *k.deployment == *d)).await;
                        let _ = done.send(());
                    }
                    None => {
                        self.take_inbox().await;
                        self.flush_where(|_| true).await;
                        return;
                    }
                },
                () = self.inbox.ready.notified() => {
                    tokio::time::sleep(GATHER).await;
                    self.take_inbox().await;
                }
                _ = interval.tick() => {
                    let age = self.settings.flush_interval;
                    let due: Vec<Key> = self.groups.iter()
                        .filter(|(_, g)| g.since.elapsed() >= age)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in due {
                        self.write(k).await;
                    }
                    metrics::gauge!("slipway_prediction_log_buffer_rows")
                        .set(self.buffered.load(Ordering::Relaxed) as f64);
                    metrics::gauge!("slipway_prediction_log_buffer_capacity_rows")
                        .set(self.settings.buffer_rows as f64);
                }
            }
        }
    }

    /// Groups what the inbox holds.
    async fn take_inbox(&mut self) {
        let mut last: Option<Key> = None;
        for p in self.inbox.take() {
            let ms = time_ms(&p);
            let hour_ms = ms - ms.rem_euclid(3_600_000);
            // requests in a row mostly share a group: its key is built once
            let key = match last.take() {
                Some(k)
                    if k.hour_ms == hour_ms
                        && *k.deployment == *p.deployment
                        && k.version == p.version =>
                {
                    k
                }
                _ => Key {
                    deployment: p.deployment.clone(),
                    version: p.version.clone(),
                    hour_ms,
                },
            };
            if self.add(&key, p) {
                self.write(key).await;
            } else {
                last = Some(key);
            }
        }
    }

    /// Adds one request to its group; `true` when the group is full.
    fn add(&mut self, key: &Key, p: Prediction) -> bool {
        let n = prediction_rows(&p) as u64;
        let flush_rows = self.settings.flush_rows;
        match self.groups.get_mut(key) {
            Some(g) => {
                g.rows.push(p);
                g.count += n;
                g.count >= flush_rows
            }
            None => {
                let mut g = Group {
                    // room for a file's rows from the start: growing by
                    // doubling copied megabytes on the executor's thread (and
                    // faulted in fresh pages for each copy), holding up
                    // requests behind it
                    rows: Vec::with_capacity(usize::try_from(flush_rows.min(1 << 16)).unwrap_or(0)),
                    count: n,
                    since: Instant::now(),
                    attempts: 0,
                };
                g.rows.push(p);
                let full = g.count >= flush_rows;
                self.groups.insert(key.clone(), g);
                full
            }
        }
    }

    async fn flush_where(&mut self, pick: impl Fn(&Key) -> bool) {
        let keys: Vec<Key> = self.groups.keys().filter(|k| pick(k)).cloned().collect();
        for k in keys {
            self.write(k).await;
        }
    }

    fn names(&self, key: &Key) -> Option<Vec<String>> {
        (self.column_names)(&key.deployment, &key.version)
    }

    /// The version's schema, derived again when `rows` do not fit the one
    /// cached (the model changed under the same version: a new load).
    fn schema_for(&mut self, key: &Key, rows: &[Prediction]) -> Option<Arc<LogSchema>> {
        let cache_key = (key.deployment.clone(), key.version.clone());
        if let Some(s) = self.schemas.get(&cache_key) {
            if rows.iter().any(|p| s.fits(p)) {
                return Some(s.clone());
            }
        }
        let first = rows
            .iter()
            .find(|p| !p.outputs.is_empty())
            .or_else(|| rows.first())?;
        let schema = Arc::new(LogSchema::derive(first, self.names(key).as_deref()));
        if !schema.left_out.is_empty() {
            tracing::info!(deployment = %key.deployment, version = %key.version, left_out = ?schema.left_out, "prediction log leaves tensors out");
        }
        self.schemas.insert(cache_key, schema.clone());
        Some(schema)
    }

    /// Writes one group as one file (rows that do not fit the version's
    /// schema, e.g. of another width, go to a file of their own); keeps
    /// what failed for a retry. Splitting, encoding and freeing the rows
    /// run on the log's own thread: over tens of thousands of rows each
    /// took milliseconds of the executor's thread.
    async fn write(&mut self, key: Key) {
        let Some(group) = self.groups.remove(&key) else {
            return;
        };
        let Some(schema) = self.schema_for(&key, &group.rows) else {
            return;
        };
        let names = self.names(&key);
        let (rows, attempts, count) = (group.rows, group.attempts, group.count);
        let encoded = Background::run(self.background, move || {
            split_and_encode(&schema, names, rows)
        })
        .await;
        let (parts, unfit) = match encoded {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "prediction log encoding task failed");
                self.buffered.fetch_sub(count, Ordering::Relaxed);
                return;
            }
        };
        // a third shape in one group: its rows are not logged
        self.drop_rows(&key, &unfit, "write_error");
        Background::discard(self.background, unfit);
        let mut failed: Vec<Prediction> = Vec::new();
        for part in parts {
            if let Err(rows) = self.store(&key, part).await {
                failed.extend(rows);
            }
        }
        if failed.is_empty() {
            return;
        }
        if attempts + 1 >= 3 {
            self.drop_rows(&key, &failed, "write_error");
            tracing::error!(deployment = %key.deployment, version = %key.version, "prediction log rows dropped after 3 failed writes");
            return;
        }
        let count = failed.iter().map(|p| prediction_rows(p) as u64).sum();
        self.groups.insert(
            key,
            Group {
                rows: failed,
                count,
                since: Instant::now(),
                attempts: attempts + 1,
            },
        );
    }

    fn drop_rows(&self, key: &Key, rows: &[Prediction], reason: &'static str) {
        let n: u64 = rows.iter().map(|p| prediction_rows(p) as u64).sum();
        if n == 0 {
            return;
        }
        self.buffered.fetch_sub(n, Ordering::Relaxed);
        metrics::counter!("slipway_prediction_log_dropped_rows_total", "deployment" => key.deployment.to_string(), "reason" => reason)
            .increment(n);
    }

    /// Stores one encoded file. `Err` gives the rows back for a retry.
    async fn store(&self, key: &Key, part: Part) -> Result<(), Vec<Prediction>> {
        let Part {
            rows,
            count: n,
            encoded,
        } = part;
        let (bytes, min_ms, max_ms) = match encoded {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(deployment = %key.deployment, error = %e, "prediction log rows could not be encoded");
                self.drop_rows(key, &rows, "write_error");
                Background::discard(self.background, rows);
                return Ok(());
            }
        };
        let (date, hour) = files::partition(key.hour_ms);
        let path = format!(
            "{PREDICTIONS}/deployment={}/version={}/date={date}/hour={hour}/{}",
            key.deployment,
            key.version,
            files::file_name(min_ms, max_ms)
        );
        match files::put(&self.store, &path, bytes).await {
            Ok(()) => {
                self.buffered.fetch_sub(n, Ordering::Relaxed);
                metrics::counter!("slipway_prediction_log_rows_total", "deployment" => key.deployment.to_string())
                    .increment(n);
                metrics::counter!("slipway_prediction_log_files_total", "deployment" => key.deployment.to_string())
                    .increment(1);
                tracing::debug!(path, rows = n, "prediction log file written");
                Background::discard(self.background, rows);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(path, error = %e.message, "prediction log file could not be written; retrying");
                Err(rows)
            }
        }
    }
}

/// `rows` as one Parquet file, a chunk at a time, yielding between chunks;
/// returns it with the earliest and latest time (ms since the epoch).
fn encode_file(schema: &LogSchema, rows: &[Prediction]) -> Result<(Vec<u8>, i64, i64), String> {
    let (mut start, mut min_ms, mut max_ms) = (0, i64::MAX, i64::MIN);
    let bytes = files::to_parquet_stream(
        || {
            if start >= rows.len() {
                return None;
            }
            let mut end = start;
            let mut n = 0;
            while end < rows.len() && n < CHUNK_ROWS {
                n += prediction_rows(&rows[end]);
                end += 1;
            }
            let chunk = &rows[start..end];
            start = end;
            Some(schema.encode(chunk).map(|(batch, a, b)| {
                min_ms = min_ms.min(a);
                max_ms = max_ms.max(b);
                batch
            }))
        },
        std::thread::yield_now,
    )?;
    Ok((bytes, min_ms, max_ms))
}

/// One file's rows and their encoding.
struct Part {
    rows: Vec<Prediction>,
    /// Rows (of the table) in `rows`.
    count: u64,
    encoded: Result<(Vec<u8>, i64, i64), String>,
}

/// A group's rows as files: those that fit `schema`, then those that fit a
/// schema derived from the first that does not; rows of a third shape come
/// back apart (not logged).
fn split_and_encode(
    schema: &LogSchema,
    names: Option<Vec<String>>,
    rows: Vec<Prediction>,
) -> (Vec<Part>, Vec<Prediction>) {
    let encode = |schema: &LogSchema, rows: Vec<Prediction>| Part {
        count: rows.iter().map(|p| prediction_rows(p) as u64).sum(),
        encoded: encode_file(schema, &rows),
        rows,
    };
    // commonly every row fits: checked a chunk at a time, nothing moved
    let all_fit = rows.chunks(CHUNK_ROWS).all(|chunk| {
        let fit = chunk.iter().all(|p| schema.fits(p));
        std::thread::yield_now();
        fit
    });
    if all_fit {
        return (vec![encode(schema, rows)], Vec::new());
    }
    let (fit, rest): (Vec<Prediction>, Vec<Prediction>) =
        rows.into_iter().partition(|p| schema.fits(p));
    let mut parts = Vec::with_capacity(2);
    if !fit.is_empty() {
        parts.push(encode(schema, fit));
    }
    let Some(first) = rest.first() else {
        return (parts, Vec::new());
    };
    let other = LogSchema::derive(first, names.as_deref());
    let (fit, unfit): (Vec<Prediction>, Vec<Prediction>) =
        rest.into_iter().partition(|p| other.fits(p));
    parts.push(encode(&other, fit));
    (parts, unfit)
}
