//! Monitoring's CPU work off the async executor, on threads in
//! [`ThreadClass::Background`] (nice +10, see ADR 0007): one encodes the
//! prediction log, one runs drift queries (the periodic gauge refresh
//! included). On a busy replica that work shares the core with requests;
//! on the executor, a drift query over minutes of logged rows stopped
//! serving for seconds every `monitoring_interval_seconds`, and the log's
//! encoding held requests for whole time slices. The work yields the core
//! every [`CHUNK_ROWS`] rows: a lower priority alone does not make a running
//! thread give way to a waking request thread before its slice ends.

use slipway_runtime::ThreadClass;
use slipway_serving::Prediction;
use std::sync::OnceLock;
use tokio::sync::oneshot;

/// Rows handled between yields: a fraction of a millisecond of work.
pub(crate) const CHUNK_ROWS: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

/// One thread in [`ThreadClass::Background`] and its queue.
pub(crate) struct Background {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Background {
    /// The prediction log's thread (`None` when it could not start).
    pub(crate) fn log() -> Option<&'static Background> {
        static LOG: OnceLock<Option<Background>> = OnceLock::new();
        LOG.get_or_init(|| Background::start("slipway-log-encoder"))
            .as_ref()
    }

    /// The drift queries' thread (`None` when it could not start).
    pub(crate) fn queries() -> Option<&'static Background> {
        static QUERIES: OnceLock<Option<Background>> = OnceLock::new();
        QUERIES
            .get_or_init(|| Background::start("slipway-monitor-queries"))
            .as_ref()
    }

    fn start(name: &str) -> Option<Background> {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                slipway_runtime::set_thread_class(ThreadClass::Background);
                for job in rx {
                    job();
                }
            });
        match spawned {
            Ok(_) => Some(Background { jobs }),
            Err(e) => {
                tracing::warn!(thread = name, error = %e, "no background thread; its work runs on blocking threads");
                None
            }
        }
    }

    /// Runs `work` on the thread (or, without one, on a blocking thread);
    /// `Err` when it panicked.
    pub(crate) async fn run<T: Send + 'static>(
        this: Option<&Background>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    .map_err(|_| "monitoring work panicked".to_string()),
            );
        });
        let refused = match this {
            Some(b) => b.jobs.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            let _ = tokio::task::spawn_blocking(job).await;
        }
        rx.await
            .map_err(|_| "the monitoring thread stopped".to_string())?
    }

    /// Frees `rows` on the thread, a chunk at a time (tens of thousands of
    /// rows take milliseconds to free).
    pub(crate) fn discard(this: Option<&Background>, mut rows: Vec<Prediction>) {
        if let Some(b) = this {
            let _ = b.jobs.send(Box::new(move || {
                while !rows.is_empty() {
                    rows.truncate(rows.len().saturating_sub(CHUNK_ROWS));
                    std::thread::yield_now();
                }
            }));
        }
    }
}
