//! [`ModelWorker`]: one dedicated OS thread per loaded model, fed through a
//! bounded queue, with dynamic batching.
//!
//! * Requests are validated and conformed on the caller's side
//!   ([`ModelWorker::infer`]), then queued; when the queue is full the call
//!   fails at once with [`RuntimeError::QueueFull`] (HTTP 429 + `Retry-After`).
//! * The worker thread takes the oldest request and, when every model input
//!   has a variable first dimension and [`WorkerConfig::max_batch_size`] > 1,
//!   also the requests already waiting (or arriving within
//!   [`WorkerConfig::max_queue_delay`]), as long as their rows fit in
//!   `max_batch_size`. Their inputs are concatenated along dim 0, run once, and
//!   the outputs split back by row. Should the batched run fail, or an output
//!   not carry the batch in dim 0, each request is run on its own so one bad
//!   request cannot fail the others.
//! * Replies travel through a oneshot channel, so async callers never block.
//! * Small runs skip the hand-off: when [`WorkerConfig::inline_max`] is set,
//!   no other request is in flight, nothing is queued, the model is idle and
//!   its cost model predicts the request's run under that bound,
//!   [`ModelWorker::run_prepared`] runs the model on the calling thread (two
//!   context switches and a wake-up cost more than a tiny model). With
//!   company, requests queue and batch as before (a batch of four costs
//!   less per request than four runs of one, hand-offs included); the bound
//!   keeps an async executor from being blocked for long.
//! * Copies of requests (shadows, paired runs) do not queue here: the
//!   caller's own low-priority thread runs them with
//!   [`ModelWorker::run_copies`], taking turns with the worker thread on the
//!   model, so a copy never occupies an executor thread nor this worker's
//!   queue.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::runtime::{ClassLabels, Model, ModelOutput, RuntimeError};
use crate::signature::Signature;
use crate::tensor::{element_count, Tensor, TensorData};
use crate::validate::{conform, Policy, Validated};

/// Worker settings for one model.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Name used in errors, logs and the thread name.
    pub name: String,
    /// Requests that may wait in the queue (beyond the one running).
    pub queue_capacity: usize,
    /// Largest number of rows (dim 0) run at once. 1 disables batching. Also
    /// used as the validation limit for a single request when the policy has
    /// no `max_batch_size` of its own.
    pub max_batch_size: usize,
    /// How long the worker waits for more requests to fill a batch; zero (the
    /// default) batches only what is already waiting.
    pub max_queue_delay: Duration,
    /// Run one inference built from the signature before accepting requests.
    pub warmup: bool,
    /// Validation policy.
    pub policy: Policy,
    /// Runs predicted to take at most this long go on the calling thread
    /// when nothing is queued and the model is idle; zero (the default)
    /// always hands requests to the worker thread.
    pub inline_max: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            name: "model".into(),
            queue_capacity: 64,
            max_batch_size: 32,
            max_queue_delay: Duration::ZERO,
            warmup: true,
            policy: Policy::default(),
            inline_max: Duration::ZERO,
        }
    }
}

/// Result of one inference request.
#[derive(Debug, Clone, PartialEq)]
pub struct InferResult {
    /// Outputs, in the model's output order.
    pub outputs: Vec<ModelOutput>,
    /// Validation report (range flags).
    pub validation: Validated,
}

/// A request's inputs after validation and conversion, ready to queue.
#[derive(Debug)]
pub struct Prepared {
    inputs: Vec<Tensor>,
    validation: Validated,
}

impl Prepared {
    /// The conformed inputs (clone them to send a copy elsewhere).
    pub fn inputs(&self) -> &[Tensor] {
        &self.inputs
    }
}

type Reply = oneshot::Sender<Result<Vec<ModelOutput>, RuntimeError>>;

/// An answer and where it goes (`None`: to the inline caller).
type Answer = (Option<Reply>, Result<Vec<ModelOutput>, RuntimeError>);

struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    /// `None` for a request run on the caller's thread (its result is
    /// returned, not sent).
    reply: Option<Reply>,
    enqueued: Instant,
}

struct Shared {
    name: String,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    stats: WorkerStats,
    /// The model and its cost model; the worker thread and inline callers
    /// take turns.
    model: Mutex<Engine>,
    /// [`WorkerConfig::inline_max`], nanoseconds (0: never inline).
    inline_max_ns: f64,
    /// Requests between [`ModelWorker::run_prepared`] and their answer.
    in_flight: AtomicUsize,
    /// Histograms labelled with the worker's name, resolved once.
    metrics: OnceLock<WorkerMetrics>,
}

/// Metric handles of one worker.
struct WorkerMetrics {
    queue: metrics::Histogram,
    batch_rows: metrics::Histogram,
    compute: metrics::Histogram,
}

/// The model with what its runs cost.
struct Engine {
    model: Box<dyn Model>,
    cost: CostModel,
}

/// An execution's run time as a function of its rows, `t = a + b·rows`,
/// fitted by least squares with exponential forgetting (recent runs weigh
/// most), so it follows the machine's load.
#[derive(Debug, Clone, Copy, Default)]
struct CostModel {
    w: f64,
    r: f64,
    t: f64,
    rr: f64,
    rt: f64,
}

impl CostModel {
    /// Weight kept by the old figures at each new run.
    const DECAY: f64 = 0.98;

    fn observe(&mut self, rows: usize, took: Duration) {
        let (r, t) = (rows as f64, took.as_nanos() as f64);
        let k = Self::DECAY;
        self.w = self.w * k + 1.0;
        self.r = self.r * k + r;
        self.t = self.t * k + t;
        self.rr = self.rr * k + r * r;
        self.rt = self.rt * k + r * t;
    }

    /// Predicted nanoseconds of a run of `rows`; `None` before any run.
    fn predict(&self, rows: usize) -> Option<f64> {
        if self.w <= 0.0 {
            return None;
        }
        let (mr, mt) = (self.r / self.w, self.t / self.w);
        let var = self.rr / self.w - mr * mr;
        let r = rows as f64;
        if var > 1e-9 * (1.0 + mr * mr) {
            let b = ((self.rt / self.w - mr * mt) / var).max(0.0);
            Some((mt - b * mr).max(0.0) + b * r)
        } else {
            // one size seen so far: scale proportionally above it
            Some(mt * (r / mr.max(1.0)).max(1.0))
        }
    }
}

/// A count and a cumulative duration (Triton's `$duration_stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DurationStat {
    /// Times the statistic was collected.
    pub count: u64,
    /// Total duration, nanoseconds.
    pub ns: u64,
}

/// Statistics of one batch size (Triton's `$batch_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchStat {
    /// Rows in the batch.
    pub batch_size: u64,
    /// Assembling the batch's inputs.
    pub compute_input: DurationStat,
    /// Running the model.
    pub compute_infer: DurationStat,
    /// Splitting the outputs back to requests.
    pub compute_output: DurationStat,
}

/// Cumulative statistics of a worker since it started, in the shape of
/// Triton's statistics extension (what `perf_analyzer` reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ModelStats {
    /// Milliseconds since the epoch of the last inference (0: none yet).
    pub last_inference: u64,
    /// Rows inferred successfully.
    pub inference_count: u64,
    /// Model executions that succeeded (one per batch).
    pub execution_count: u64,
    /// Per-request figures.
    pub inference_stats: InferenceStats,
    /// Per-batch-size figures, by batch size.
    pub batch_stats: Vec<BatchStat>,
}

/// Per-request figures of [`ModelStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct InferenceStats {
    /// Requests that succeeded, and their time from queueing to reply.
    pub success: DurationStat,
    /// Requests that failed in the model.
    pub fail: DurationStat,
    /// Time requests waited in the queue.
    pub queue: DurationStat,
    /// Time assembling inputs, per request.
    pub compute_input: DurationStat,
    /// Time running the model, per request.
    pub compute_infer: DurationStat,
    /// Time splitting outputs, per request.
    pub compute_output: DurationStat,
    /// Response cache hits (no cache: always zero).
    pub cache_hit: DurationStat,
}

#[derive(Debug, Default)]
struct WorkerStats {
    inner: std::sync::Mutex<ModelStats>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn add(stat: &mut DurationStat, count: u64, d: Duration) {
    stat.count += count;
    stat.ns = stat.ns.saturating_add(ns(d).saturating_mul(count));
}

/// Timings of one execution, for the statistics.
struct Execution {
    /// Model runs (1 unless a batched run failed and requests ran one by one).
    runs: usize,
    waits: Vec<Duration>,
    rows: usize,
    input: Duration,
    infer: Duration,
    output: Duration,
    /// Per request: whether it succeeded, and its time from queueing to reply.
    outcomes: Vec<(bool, Duration)>,
    /// Answers, sent once the statistics include them (a client that got
    /// its answer sees it counted).
    replies: Vec<Answer>,
}

impl WorkerStats {
    fn record(&self, e: &Execution) {
        let mut s = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let requests = e.outcomes.len() as u64;
        let ok = e.outcomes.iter().filter(|(ok, _)| *ok).count() as u64;
        for (succeeded, total) in &e.outcomes {
            let stat = if *succeeded {
                &mut s.inference_stats.success
            } else {
                &mut s.inference_stats.fail
            };
            add(stat, 1, *total);
        }
        for w in &e.waits {
            add(&mut s.inference_stats.queue, 1, *w);
        }
        add(&mut s.inference_stats.compute_input, requests, e.input);
        add(&mut s.inference_stats.compute_infer, requests, e.infer);
        add(&mut s.inference_stats.compute_output, requests, e.output);
        if ok > 0 {
            s.execution_count += 1;
            s.inference_count += e.rows as u64;
            s.last_inference = u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(0);
            let size = e.rows as u64;
            let pos = match s.batch_stats.binary_search_by_key(&size, |b| b.batch_size) {
                Ok(p) => p,
                Err(p) => {
                    s.batch_stats.insert(
                        p,
                        BatchStat {
                            batch_size: size,
                            ..BatchStat::default()
                        },
                    );
                    p
                }
            };
            let b = &mut s.batch_stats[pos];
            add(&mut b.compute_input, 1, e.input);
            add(&mut b.compute_infer, 1, e.infer);
            add(&mut b.compute_output, 1, e.output);
        }
    }
}

/// A model running on its own thread; cheap to share behind an `Arc`.
pub struct ModelWorker {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
    /// Rows a run may take at once (1: no batching), for
    /// [`ModelWorker::run_copies`].
    batch_rows: usize,
    signature: Signature,
    policy: Policy,
    class_labels: HashMap<String, ClassLabels>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ModelWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelWorker")
            .field("name", &self.shared.name)
            .field("queued", &self.queue_len())
            .finish_non_exhaustive()
    }
}

/// Inputs for a warm-up run: batch 1 (every variable dim = 1), mid-range values
/// where feature ranges are recorded, zeros elsewhere.
pub fn warmup_inputs(sig: &Signature) -> Vec<Tensor> {
    sig.inputs
        .iter()
        .map(|spec| {
            let shape: Vec<i64> = spec
                .shape
                .iter()
                .map(|d| if *d < 0 { 1 } else { *d })
                .collect();
            let n = element_count(&shape).unwrap_or(0);
            let mut data = TensorData::zeros(spec.dtype, n);
            if let Some(r) = sig.ranges.get(&spec.name) {
                let features = if shape.len() >= 2 {
                    shape
                        .last()
                        .and_then(|d| usize::try_from(*d).ok())
                        .unwrap_or(1)
                        .max(1)
                } else {
                    1
                };
                let mid: Vec<f64> = (0..n)
                    .map(|i| match r.bounds(i % features) {
                        (Some(lo), Some(hi)) => (lo + hi) / 2.0,
                        (Some(lo), None) => lo,
                        (None, Some(hi)) => hi.min(0.0),
                        (None, None) => 0.0,
                    })
                    .collect();
                if spec.dtype.is_float() || spec.dtype.is_integer() {
                    data = crate::validate::convert_data(TensorData::Fp64(mid), spec.dtype);
                }
            }
            Tensor {
                name: spec.name.clone(),
                shape,
                data,
            }
        })
        .collect()
}

impl ModelWorker {
    /// Starts the worker thread for `model`, validating requests against
    /// `signature` (usually [`Signature::resolve`] of the model's own and the
    /// MLflow one, with ranges). Runs the warm-up inference first, so this
    /// blocks: call it from `spawn_blocking` in async code.
    pub fn start(
        mut model: Box<dyn Model>,
        signature: Signature,
        config: WorkerConfig,
    ) -> Result<ModelWorker, RuntimeError> {
        let mut class_labels = HashMap::new();
        let mut cost = CostModel::default();
        if config.warmup {
            let started = Instant::now();
            let outs = model.run(warmup_inputs(&signature))?;
            for o in outs {
                if let Some(l) = o.class_labels {
                    class_labels.insert(o.tensor.name, l);
                }
            }
            tracing::debug!(model = %config.name, elapsed_ms = started.elapsed().as_millis() as u64, "warm-up done");
            if !config.inline_max.is_zero() {
                // a second run, timed: the first pays for allocations
                let started = Instant::now();
                model.run(warmup_inputs(&signature))?;
                cost.observe(1, started.elapsed());
            }
        }
        let mut policy = config.policy.clone();
        if policy.max_batch_size.is_none() && signature.supports_batching() {
            policy.max_batch_size = Some(config.max_batch_size.max(1));
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            queued: Arc::new(AtomicUsize::new(0)),
            capacity: config.queue_capacity.max(1),
            stats: WorkerStats::default(),
            model: Mutex::new(Engine { model, cost }),
            inline_max_ns: config.inline_max.as_nanos() as f64,
            in_flight: AtomicUsize::new(0),
            metrics: OnceLock::new(),
        });
        let batching = signature.supports_batching() && config.max_batch_size > 1;
        let loop_state = WorkerLoop {
            rx,
            queued: shared.queued.clone(),
            shared: shared.clone(),
            batching,
            max_rows: config.max_batch_size.max(1),
            delay: config.max_queue_delay,
        };
        let thread = std::thread::Builder::new()
            .name(format!("slipway-model-{}", config.name))
            .spawn(move || {
                set_thread_class(ThreadClass::Batch);
                loop_state.run();
            })
            .map_err(|e| RuntimeError::Inference(format!("cannot start worker thread: {e}")))?;
        Ok(ModelWorker {
            tx,
            shared,
            batch_rows: if batching {
                config.max_batch_size.max(1)
            } else {
                1
            },
            signature,
            policy,
            class_labels,
            thread: Some(thread),
        })
    }

    /// The signature requests are validated against.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The effective validation policy (with `max_batch_size` filled in).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Class labels of ZipMap outputs, learned during warm-up (also attached to
    /// every [`ModelOutput`]).
    pub fn class_labels(&self) -> &HashMap<String, ClassLabels> {
        &self.class_labels
    }

    /// Cumulative statistics since the worker started.
    pub fn stats(&self) -> ModelStats {
        self.shared
            .stats
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Requests that may wait before [`RuntimeError::QueueFull`].
    pub fn queue_capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Requests waiting in the queue now.
    pub fn queue_len(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Queues already-conformed inputs (see [`conform`]); never blocks.
    /// Fails with [`RuntimeError::QueueFull`] when the queue is full.
    pub fn submit(
        &self,
        inputs: Vec<Tensor>,
    ) -> Result<oneshot::Receiver<Result<Vec<ModelOutput>, RuntimeError>>, RuntimeError> {
        self.submit_to(&self.tx, &self.shared.queued, inputs)
    }

    fn submit_to(
        &self,
        tx: &SyncSender<Job>,
        queued: &AtomicUsize,
        inputs: Vec<Tensor>,
    ) -> Result<oneshot::Receiver<Result<Vec<ModelOutput>, RuntimeError>>, RuntimeError> {
        let rows = inputs.first().and_then(Tensor::batch_size).unwrap_or(1);
        let (reply, rx) = oneshot::channel();
        queued.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(Job {
            inputs,
            rows,
            reply: Some(reply),
            enqueued: Instant::now(),
        }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => RuntimeError::QueueFull {
                        model: self.shared.name.clone(),
                        capacity: self.shared.capacity,
                        retry_after_secs: 1,
                    },
                    TrySendError::Disconnected(_) => {
                        RuntimeError::WorkerStopped(self.shared.name.clone())
                    }
                })
            }
        }
    }

    /// Checks a declared input name and shape against the contract before
    /// its data is read (see [`crate::validate::check_declared_shape`]).
    pub fn check_shape(&self, name: &str, shape: &[i64]) -> Result<(), RuntimeError> {
        Ok(crate::validate::check_declared_shape(
            &self.signature,
            name,
            shape,
            &self.policy,
        )?)
    }

    /// Validates and converts a request's inputs (linear in their size);
    /// run it off the async executor for large requests, then hand the
    /// result to [`ModelWorker::run_prepared`].
    pub fn prepare(&self, inputs: Vec<Tensor>) -> Result<Prepared, RuntimeError> {
        let (inputs, validation) = conform(&self.signature, inputs, &self.policy)?;
        Ok(Prepared { inputs, validation })
    }

    /// Runs prepared inputs: on the calling thread when the inline policy
    /// allows it (see the module), else queued to the worker thread.
    pub async fn run_prepared(&self, prepared: Prepared) -> Result<InferResult, RuntimeError> {
        let Prepared { inputs, validation } = prepared;
        let flight = InFlight::enter(&self.shared.in_flight);
        let inputs = match self.try_inline(inputs, flight.others) {
            Ok(outputs) => {
                return Ok(InferResult {
                    outputs: outputs?,
                    validation,
                })
            }
            Err(inputs) => inputs,
        };
        let rx = self.submit(inputs)?;
        let outputs = rx
            .await
            .map_err(|_| RuntimeError::WorkerStopped(self.shared.name.clone()))??;
        Ok(InferResult {
            outputs,
            validation,
        })
    }

    /// Runs `inputs` on this thread when inlining is on, no other request
    /// is in flight (`others`; with company, the worker thread batches
    /// them, which costs less per request than runs of one), the model is
    /// idle and a run of this size is predicted to take at most
    /// [`WorkerConfig::inline_max`]; gives the inputs back otherwise.
    fn try_inline(
        &self,
        inputs: Vec<Tensor>,
        others: usize,
    ) -> Result<Result<Vec<ModelOutput>, RuntimeError>, Vec<Tensor>> {
        let s = &self.shared;
        if s.inline_max_ns <= 0.0 || others != 0 || s.queued.load(Ordering::Relaxed) != 0 {
            return Err(inputs);
        }
        let Ok(mut engine) = s.model.try_lock() else {
            return Err(inputs);
        };
        let rows = inputs.first().and_then(Tensor::batch_size).unwrap_or(1);
        if engine
            .cost
            .predict(rows)
            .is_none_or(|ns| ns > s.inline_max_ns)
        {
            return Err(inputs);
        }
        let job = Job {
            inputs,
            rows,
            reply: None,
            enqueued: Instant::now(),
        };
        let replies = s.execute(&mut engine, vec![job]);
        drop(engine);
        replies.into_iter().next().map_or_else(
            || Ok(Err(RuntimeError::WorkerStopped(s.name.clone()))),
            |(_, r)| Ok(r),
        )
    }

    /// Rows one run may take (1 when the model does not batch).
    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Validates, converts and runs copies of requests (a shadow's, or
    /// paired runs) on the calling thread, blocking: waiting requests are
    /// batched up to [`ModelWorker::batch_rows`] and each batch takes the
    /// model between the worker thread's runs. Answers come back in order,
    /// one per copy. Meant for a thread of lower priority than the
    /// executor's and the worker's, so copies wait while the core is busy
    /// with clients' requests instead of delaying them.
    pub fn run_copies(
        &self,
        copies: Vec<Vec<Tensor>>,
    ) -> Vec<Result<Vec<ModelOutput>, RuntimeError>> {
        let mut answers: Vec<Option<Result<Vec<ModelOutput>, RuntimeError>>> =
            Vec::with_capacity(copies.len());
        // (index of the answer, job) of the batch being formed
        let mut batch: Vec<(usize, Job)> = Vec::new();
        let mut rows = 0;
        for inputs in copies {
            let i = answers.len();
            answers.push(None);
            let inputs = match conform(&self.signature, inputs, &self.policy) {
                Ok((inputs, _)) => inputs,
                Err(e) => {
                    answers[i] = Some(Err(e.into()));
                    continue;
                }
            };
            let job_rows = inputs.first().and_then(Tensor::batch_size).unwrap_or(1);
            if !batch.is_empty() && rows + job_rows > self.batch_rows {
                self.run_copy_batch(std::mem::take(&mut batch), &mut answers);
                rows = 0;
            }
            rows += job_rows;
            batch.push((
                i,
                Job {
                    inputs,
                    rows: job_rows,
                    reply: None,
                    enqueued: Instant::now(),
                },
            ));
        }
        if !batch.is_empty() {
            self.run_copy_batch(batch, &mut answers);
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| Err(RuntimeError::WorkerStopped(self.shared.name.clone())))
            })
            .collect()
    }

    fn run_copy_batch(
        &self,
        batch: Vec<(usize, Job)>,
        answers: &mut [Option<Result<Vec<ModelOutput>, RuntimeError>>],
    ) {
        let (slots, jobs): (Vec<usize>, Vec<Job>) = batch.into_iter().unzip();
        let replies = self.shared.execute_locked(jobs);
        for (slot, (_, r)) in slots.into_iter().zip(replies) {
            answers[slot] = Some(r);
        }
    }

    /// Validates, converts and runs one request (see
    /// [`ModelWorker::run_prepared`]). The only work done on the calling
    /// task besides an inline run is validation (linear in the input size).
    pub async fn infer(&self, inputs: Vec<Tensor>) -> Result<InferResult, RuntimeError> {
        let prepared = self.prepare(inputs)?;
        self.run_prepared(prepared).await
    }

    /// Blocking variant of [`ModelWorker::infer`] (must not be called from
    /// within an async runtime).
    pub fn infer_blocking(&self, inputs: Vec<Tensor>) -> Result<InferResult, RuntimeError> {
        let Prepared { inputs, validation } = self.prepare(inputs)?;
        let rx = self.submit(inputs)?;
        let outputs = rx
            .blocking_recv()
            .map_err(|_| RuntimeError::WorkerStopped(self.shared.name.clone()))??;
        Ok(InferResult {
            outputs,
            validation,
        })
    }

    /// Stops accepting requests, lets the queued ones finish and joins the
    /// thread (blocking).
    pub fn shutdown(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

/// A Linux scheduling class for the calling thread (see ADR 0007).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadClass {
    /// `SCHED_BATCH`: waking the thread does not preempt the thread that
    /// woke it. Model threads: on a busy core the executor thread that
    /// queued a request goes on reading and queueing the next ones, and the
    /// model's thread then runs them as one batch (instead of two context
    /// switches per request); where a core is idle it runs at once.
    Batch,
    /// `SCHED_IDLE`: runs only on CPU that no other thread wants, and is
    /// preempted by any of them at once. Copies of requests.
    Idle,
    /// `SCHED_OTHER` at nice +10: about a tenth of a contended core, and
    /// preempted by a waking request thread. Bulk work that nobody waits on
    /// but that must keep up under load (the prediction log's encoding).
    Background,
}

/// Puts the calling thread in `class`. Needs no privilege; a failure (or
/// another OS) leaves the default class and says so at debug level.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn set_thread_class(class: ThreadClass) {
    let policy = match class {
        ThreadClass::Batch => libc::SCHED_BATCH,
        ThreadClass::Idle => libc::SCHED_IDLE,
        ThreadClass::Background => {
            // SAFETY: setpriority takes plain integers; on Linux, who = 0
            // with PRIO_PROCESS is the calling thread (nice is per thread).
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
            if rc != 0 {
                tracing::debug!(?class, error = %std::io::Error::last_os_error(), "thread keeps the default priority");
            }
            return;
        }
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` (a valid, initialised
    // sched_param that outlives the call); pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc != 0 {
        tracing::debug!(?class, error = %std::io::Error::last_os_error(), "thread keeps the default scheduling class");
    }
}

/// Puts the calling thread in `class` (Linux only; elsewhere nothing).
#[cfg(not(target_os = "linux"))]
pub fn set_thread_class(_class: ThreadClass) {}

/// Whether the kernel may back this process's memory with transparent huge
/// pages (where the machine's THP mode is `always`; under `madvise` nothing
/// here asks for them). Off, a fault maps 4 KiB instead of zeroing 2 MiB:
/// the allocator's partly used spans stop counting as resident in whole
/// huge pages (measured with the demo model on 2026-12-07: 68 → 58 MB
/// resident idle, 170 → 158 MB after 5 s at c=64, throughput unchanged).
/// A failure leaves the kernel's default and says so at debug level.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn set_transparent_huge_pages(enabled: bool) {
    let disable: libc::c_ulong = if enabled { 0 } else { 1 };
    // SAFETY: prctl(PR_SET_THP_DISABLE, flag, 0, 0, 0) takes plain integers
    // and changes only this process's flag.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, disable, 0, 0, 0) };
    if rc != 0 {
        tracing::debug!(enabled, error = %std::io::Error::last_os_error(), "transparent huge pages left to the kernel's default");
    }
}

/// Transparent huge pages for this process (Linux only; elsewhere nothing).
#[cfg(not(target_os = "linux"))]
pub fn set_transparent_huge_pages(_enabled: bool) {}

/// A request counted in [`Shared::in_flight`] until dropped.
struct InFlight<'a> {
    counter: &'a AtomicUsize,
    /// Requests in flight when this one entered.
    others: usize,
}

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let others = counter.fetch_add(1, Ordering::Relaxed);
        Self { counter, others }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

struct WorkerLoop {
    rx: mpsc::Receiver<Job>,
    /// The count of jobs waiting in `rx`.
    queued: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    batching: bool,
    max_rows: usize,
    delay: Duration,
}

impl WorkerLoop {
    fn take(&self, job: Job) -> Option<Job> {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        // the caller went away (request cancelled): skip the work
        if job.reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
            None
        } else {
            Some(job)
        }
    }

    fn run(self) {
        let mut pending: Option<Job> = None;
        loop {
            let first = match pending.take() {
                Some(j) => j,
                None => match self.rx.recv() {
                    Ok(j) => match self.take(j) {
                        Some(j) => j,
                        None => continue,
                    },
                    Err(_) => break,
                },
            };
            let mut jobs = vec![first];
            if self.batching {
                let mut rows = jobs[0].rows;
                let deadline = Instant::now() + self.delay;
                while rows < self.max_rows {
                    let next = if self.delay.is_zero() {
                        self.rx.try_recv().ok()
                    } else {
                        let left = deadline.saturating_duration_since(Instant::now());
                        self.rx.recv_timeout(left).ok()
                    };
                    let Some(job) = next else { break };
                    let Some(job) = self.take(job) else { continue };
                    if rows + job.rows > self.max_rows {
                        pending = Some(job);
                        break;
                    }
                    rows += job.rows;
                    jobs.push(job);
                }
            }
            let replies = self.shared.execute_locked(jobs);
            for (reply, r) in replies {
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
        }
        tracing::debug!(model = %self.shared.name, "worker stopped");
    }
}

impl Shared {
    fn metrics(&self) -> &WorkerMetrics {
        self.metrics.get_or_init(|| WorkerMetrics {
            queue: metrics::histogram!("slipway_inference_queue_seconds", "model" => self.name.clone()),
            batch_rows: metrics::histogram!("slipway_inference_batch_rows", "model" => self.name.clone()),
            compute: metrics::histogram!("slipway_inference_compute_seconds", "model" => self.name.clone()),
        })
    }

    /// Takes the model (waiting for the thread or caller using it) and runs
    /// the jobs on it (see [`Shared::execute`]).
    fn execute_locked(&self, jobs: Vec<Job>) -> Vec<Answer> {
        let mut engine = self
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.execute(&mut engine, jobs)
    }

    /// Runs the jobs on `engine` and records queue wait per request, rows
    /// per run and compute time (`slipway_inference_queue_seconds`,
    /// `slipway_inference_batch_rows`, `slipway_inference_compute_seconds`,
    /// labelled by worker name), the statistics of [`ModelStats`] and the
    /// run's cost; returns the answers, to be sent once the statistics
    /// include them (a client that got its answer sees it counted).
    fn execute(&self, engine: &mut Engine, jobs: Vec<Job>) -> Vec<Answer> {
        let started = Instant::now();
        let enqueued: Vec<Instant> = jobs.iter().map(|j| j.enqueued).collect();
        let rows: usize = jobs.iter().map(|j| j.rows).sum();
        let mut exec = Execution {
            runs: 0,
            waits: enqueued
                .iter()
                .map(|at| started.saturating_duration_since(*at))
                .collect(),
            rows,
            input: Duration::ZERO,
            infer: Duration::ZERO,
            output: Duration::ZERO,
            outcomes: Vec::with_capacity(jobs.len()),
            replies: Vec::with_capacity(jobs.len()),
        };
        self.execute_inner(&mut engine.model, jobs, &mut exec);
        if exec.runs == 1 {
            // one run over all rows: what the next run of that size costs
            engine.cost.observe(rows, exec.infer);
        }
        let m = self.metrics();
        for w in &exec.waits {
            m.queue.record(w.as_secs_f64());
        }
        m.batch_rows.record(rows as f64);
        m.compute.record(started.elapsed().as_secs_f64());
        self.stats.record(&exec);
        exec.replies
    }

    fn reply(
        reply: Option<Reply>,
        enqueued: Instant,
        r: Result<Vec<ModelOutput>, RuntimeError>,
        exec: &mut Execution,
    ) {
        exec.outcomes.push((r.is_ok(), enqueued.elapsed()));
        exec.replies.push((reply, r));
    }

    fn run_model(
        model: &mut Box<dyn Model>,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<ModelOutput>, RuntimeError> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| model.run(inputs))) {
            Ok(r) => r,
            Err(_) => Err(RuntimeError::Inference("the model panicked".into())),
        }
    }

    fn run_each(&self, model: &mut Box<dyn Model>, jobs: Vec<Job>, exec: &mut Execution) {
        for Job {
            inputs,
            reply,
            enqueued,
            ..
        } in jobs
        {
            let t = Instant::now();
            let r = Self::run_model(model, inputs);
            exec.infer += t.elapsed();
            exec.runs += 1;
            Self::reply(reply, enqueued, r, exec);
        }
    }

    fn execute_inner(&self, model: &mut Box<dyn Model>, jobs: Vec<Job>, exec: &mut Execution) {
        if jobs.len() == 1 {
            self.run_each(model, jobs, exec);
            return;
        }
        match self.run_batched(model, &jobs, exec) {
            Some(split) => {
                for (job, out) in jobs.into_iter().zip(split) {
                    Self::reply(job.reply, job.enqueued, Ok(out), exec);
                }
            }
            None => self.run_each(model, jobs, exec),
        }
    }

    /// Runs the jobs as one batch; `None` when they cannot be batched or the
    /// batched run failed (the caller then runs them one by one).
    fn run_batched(
        &self,
        model: &mut Box<dyn Model>,
        jobs: &[Job],
        exec: &mut Execution,
    ) -> Option<Vec<Vec<ModelOutput>>> {
        let t = Instant::now();
        let n_inputs = jobs[0].inputs.len();
        let mut batched = Vec::with_capacity(n_inputs);
        for i in 0..n_inputs {
            let parts: Vec<&Tensor> = jobs
                .iter()
                .map(|j| j.inputs.get(i))
                .collect::<Option<_>>()?;
            batched.push(Tensor::concat(&parts).ok()?);
        }
        exec.input += t.elapsed();
        let total: usize = jobs.iter().map(|j| j.rows).sum();
        let t = Instant::now();
        exec.runs += 1;
        let outputs = match Self::run_model(model, batched) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(model = %self.name, error = %e, "batched run failed; running requests one by one");
                return None;
            }
        };
        exec.infer += t.elapsed();
        if outputs.iter().any(|o| o.tensor.batch_size() != Some(total)) {
            return None;
        }
        let t = Instant::now();
        let mut split = Vec::with_capacity(jobs.len());
        let mut start = 0;
        for job in jobs {
            let end = start + job.rows;
            let mut outs = Vec::with_capacity(outputs.len());
            for o in &outputs {
                outs.push(ModelOutput {
                    tensor: o.tensor.slice_rows(start, end).ok()?,
                    class_labels: o.class_labels.clone(),
                });
            }
            split.push(outs);
            start = end;
        }
        exec.output += t.elapsed();
        tracing::trace!(model = %self.name, requests = jobs.len(), rows = total, "ran batch");
        Some(split)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;
    use crate::signature::TensorSpec;
    use crate::tensor::DataType;

    /// Echo model (y = x) that signals when a run starts and waits for a
    /// release; optionally fails batches of more than one request's rows.
    struct Gate {
        sig: Signature,
        started: mpsc::Sender<usize>,
        release: mpsc::Receiver<()>,
        fail_rows_over: Option<usize>,
        panic_on_negative: bool,
        seen: Arc<Mutex<Vec<usize>>>,
    }

    impl Model for Gate {
        fn signature(&self) -> &Signature {
            &self.sig
        }
        fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>, RuntimeError> {
            let rows = inputs[0].batch_size().unwrap();
            self.seen.lock().unwrap().push(rows);
            let _ = self.started.send(rows);
            let _ = self.release.recv_timeout(Duration::from_secs(10));
            if self.panic_on_negative && inputs[0].data.get_f64(0).unwrap() < 0.0 {
                panic!("negative input");
            }
            if self.fail_rows_over.is_some_and(|m| rows > m) {
                return Err(RuntimeError::Inference("too many rows".into()));
            }
            let mut t = inputs[0].clone();
            t.name = "y".into();
            Ok(vec![ModelOutput::plain(t)])
        }
    }

    struct Harness {
        worker: ModelWorker,
        started: mpsc::Receiver<usize>,
        release: mpsc::Sender<()>,
        seen: Arc<Mutex<Vec<usize>>>,
    }

    fn harness(
        queue_capacity: usize,
        fail_rows_over: Option<usize>,
        panic_on_negative: bool,
    ) -> Harness {
        let sig = Signature::new(
            vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 2])],
            vec![TensorSpec::new("y", DataType::Fp32, vec![-1, 2])],
        );
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let model = Gate {
            sig: sig.clone(),
            started: started_tx,
            release: release_rx,
            fail_rows_over,
            panic_on_negative,
            seen: seen.clone(),
        };
        let config = WorkerConfig {
            name: "gate".into(),
            queue_capacity,
            max_batch_size: 8,
            warmup: false,
            ..WorkerConfig::default()
        };
        let worker = ModelWorker::start(Box::new(model), sig, config).unwrap();
        Harness {
            worker,
            started,
            release,
            seen,
        }
    }

    fn x(v: f32) -> Vec<Tensor> {
        vec![Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![v, v + 0.5])).unwrap()]
    }

    #[test]
    fn queue_full_is_distinct() {
        let h = harness(1, None, false);
        let a = h.worker.submit(x(1.0)).unwrap();
        assert_eq!(h.started.recv().unwrap(), 1); // A is running, queue empty
        let b = h.worker.submit(x(2.0)).unwrap(); // fills the queue
        assert_eq!(h.worker.queue_len(), 1);
        let err = h.worker.submit(x(3.0)).unwrap_err();
        assert!(
            matches!(err, RuntimeError::QueueFull { capacity: 1, .. }),
            "{err}"
        );
        assert_eq!(err.http_status(), 429);
        assert_eq!(err.retry_after_secs(), Some(1));
        h.release.send(()).unwrap();
        h.release.send(()).unwrap();
        let ra = a.blocking_recv().unwrap().unwrap();
        let rb = b.blocking_recv().unwrap().unwrap();
        assert_eq!(ra[0].tensor.data, TensorData::Fp32(vec![1.0, 1.5]));
        assert_eq!(rb[0].tensor.data, TensorData::Fp32(vec![2.0, 2.5]));
        h.worker.shutdown();
    }

    #[test]
    fn waiting_requests_are_batched_and_split() {
        let h = harness(8, None, false);
        let a = h.worker.submit(x(1.0)).unwrap();
        assert_eq!(h.started.recv().unwrap(), 1);
        let rest: Vec<_> = (2..5)
            .map(|i| h.worker.submit(x(i as f32)).unwrap())
            .collect();
        for _ in 0..2 {
            h.release.send(()).unwrap();
        }
        assert_eq!(
            a.blocking_recv().unwrap().unwrap()[0].tensor.data,
            TensorData::Fp32(vec![1.0, 1.5])
        );
        for (i, rx) in rest.into_iter().enumerate() {
            let v = (i + 2) as f32;
            let out = rx.blocking_recv().unwrap().unwrap();
            assert_eq!(out[0].tensor.shape, vec![1, 2]);
            assert_eq!(out[0].tensor.data, TensorData::Fp32(vec![v, v + 0.5]));
        }
        assert_eq!(*h.seen.lock().unwrap(), vec![1, 3]);
    }

    #[test]
    fn statistics_count_requests_rows_and_executions() {
        let h = harness(8, None, false);
        let a = h.worker.submit(x(1.0)).unwrap();
        assert_eq!(h.started.recv().unwrap(), 1);
        let b = h.worker.submit(x(2.0)).unwrap();
        let c = h.worker.submit(x(3.0)).unwrap();
        for _ in 0..2 {
            h.release.send(()).unwrap();
        }
        for rx in [a, b, c] {
            rx.blocking_recv().unwrap().unwrap();
        }
        let s = h.worker.stats();
        assert_eq!(s.inference_stats.success.count, 3);
        assert_eq!(s.inference_stats.queue.count, 3);
        assert_eq!(s.inference_count, 3, "rows");
        assert_eq!(s.execution_count, 2, "one single run and one batch of two");
        let sizes: Vec<u64> = s.batch_stats.iter().map(|b| b.batch_size).collect();
        assert_eq!(sizes, vec![1, 2]);
        assert!(s.last_inference > 0 && s.inference_stats.success.ns > 0);
        assert_eq!(s.inference_stats.fail.count, 0);
    }

    #[test]
    fn copies_are_validated_batched_and_answered_in_order() {
        let Harness {
            worker,
            started,
            release,
            ..
        } = harness(8, None, false);
        let bad = vec![Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![0.0; 3])).unwrap()];
        let two =
            vec![Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![1.0, 1.5, 2.0, 2.5])).unwrap()];
        let copies: Vec<Vec<Tensor>> = [x(1.0), bad, two]
            .into_iter()
            .chain((0..8).map(|i| x(10.0 + i as f32)))
            .collect();
        let answers = std::thread::scope(|s| {
            let run = s.spawn(|| worker.run_copies(copies));
            // the valid copies fill a batch of 8 rows (1 + 2 + five of one
            // row), the last three rows make a second
            assert_eq!(started.recv().unwrap(), 8);
            release.send(()).unwrap();
            assert_eq!(started.recv().unwrap(), 3);
            release.send(()).unwrap();
            run.join().unwrap()
        });
        assert_eq!(answers.len(), 11);
        let data = |i: usize| match &answers[i] {
            Ok(out) => out[0].tensor.data.clone(),
            Err(e) => panic!("copy {i}: {e}"),
        };
        assert_eq!(data(0), TensorData::Fp32(vec![1.0, 1.5]));
        let Err(e) = &answers[1] else {
            panic!("a copy of the wrong shape ran")
        };
        assert!(e.to_string().contains("dimension 1 must be 2"), "{e}");
        assert_eq!(data(2), TensorData::Fp32(vec![1.0, 1.5, 2.0, 2.5]));
        for i in 0..8 {
            let v = 10.0 + i as f32;
            assert_eq!(data(3 + i), TensorData::Fp32(vec![v, v + 0.5]));
        }
        assert_eq!(worker.stats().execution_count, 2);
    }

    #[test]
    fn failed_batch_falls_back_to_single_runs() {
        let h = harness(8, Some(1), false);
        let a = h.worker.submit(x(1.0)).unwrap();
        assert_eq!(h.started.recv().unwrap(), 1);
        let b = h.worker.submit(x(2.0)).unwrap();
        let c = h.worker.submit(x(3.0)).unwrap();
        for _ in 0..4 {
            h.release.send(()).unwrap();
        }
        a.blocking_recv().unwrap().unwrap();
        assert_eq!(
            b.blocking_recv().unwrap().unwrap()[0].tensor.data,
            TensorData::Fp32(vec![2.0, 2.5])
        );
        assert_eq!(
            c.blocking_recv().unwrap().unwrap()[0].tensor.data,
            TensorData::Fp32(vec![3.0, 3.5])
        );
        assert_eq!(*h.seen.lock().unwrap(), vec![1, 2, 1, 1]);
    }

    #[test]
    fn panic_is_an_error_and_worker_survives() {
        let h = harness(4, None, true);
        for _ in 0..2 {
            h.release.send(()).unwrap();
        }
        let err = h.worker.infer_blocking(x(-1.0)).unwrap_err();
        assert!(matches!(err, RuntimeError::Inference(_)), "{err}");
        assert_eq!(err.http_status(), 500);
        let ok = h.worker.infer_blocking(x(1.0)).unwrap();
        assert_eq!(ok.outputs[0].tensor.name, "y");
        let bad = vec![Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![0.0; 3])).unwrap()];
        assert_eq!(h.worker.infer_blocking(bad).unwrap_err().http_status(), 400);
    }

    /// Echo model that records the thread each run happens on and sleeps
    /// `delay` per run.
    struct Where {
        sig: Signature,
        threads: Arc<Mutex<Vec<std::thread::ThreadId>>>,
        delay: Duration,
    }

    impl Model for Where {
        fn signature(&self) -> &Signature {
            &self.sig
        }
        fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>, RuntimeError> {
            self.threads
                .lock()
                .unwrap()
                .push(std::thread::current().id());
            std::thread::sleep(self.delay);
            let mut t = inputs[0].clone();
            t.name = "y".into();
            Ok(vec![ModelOutput::plain(t)])
        }
    }

    fn where_worker(
        delay: Duration,
        inline_max: Duration,
    ) -> (ModelWorker, Arc<Mutex<Vec<std::thread::ThreadId>>>) {
        let sig = Signature::new(
            vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 2])],
            vec![TensorSpec::new("y", DataType::Fp32, vec![-1, 2])],
        );
        let threads = Arc::new(Mutex::new(Vec::new()));
        let model = Where {
            sig: sig.clone(),
            threads: threads.clone(),
            delay,
        };
        let config = WorkerConfig {
            name: "where".into(),
            inline_max,
            ..WorkerConfig::default()
        };
        let worker = ModelWorker::start(Box::new(model), sig, config).unwrap();
        threads.lock().unwrap().clear(); // the warm-up runs
        (worker, threads)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_fast_model_runs_on_the_calling_thread() {
        let (worker, threads) = where_worker(Duration::ZERO, Duration::from_millis(5));
        for i in 0..5 {
            let out = block_on(worker.infer(x(i as f32))).unwrap();
            assert_eq!(
                out.outputs[0].tensor.data,
                TensorData::Fp32(vec![i as f32, i as f32 + 0.5])
            );
        }
        let me = std::thread::current().id();
        assert!(
            threads.lock().unwrap().iter().all(|t| *t == me),
            "every run inline"
        );
        let s = worker.stats();
        assert_eq!((s.inference_stats.success.count, s.execution_count), (5, 5));
        assert_eq!(
            s.inference_stats.queue.count, 5,
            "queue wait recorded (zero)"
        );
    }

    #[test]
    fn slow_models_and_inline_off_use_the_worker_thread() {
        let me = std::thread::current().id();
        // predicted 20 ms > 1 ms
        let (worker, threads) = where_worker(Duration::from_millis(20), Duration::from_millis(1));
        block_on(worker.infer(x(1.0))).unwrap();
        assert!(threads.lock().unwrap().iter().all(|t| *t != me));
        // off
        let (worker, threads) = where_worker(Duration::ZERO, Duration::ZERO);
        block_on(worker.infer(x(1.0))).unwrap();
        assert!(threads.lock().unwrap().iter().all(|t| *t != me));
    }

    #[test]
    fn a_busy_model_queues_instead_of_running_inline() {
        let (worker, threads) =
            where_worker(Duration::from_millis(300), Duration::from_millis(500));
        let worker = Arc::new(worker);
        // one request queued to the worker thread holds the model for 300 ms
        let queued = worker.submit(x(1.0)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while threads.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::yield_now(); // until the worker thread runs it
        }
        let w = worker.clone();
        let me = std::thread::current().id();
        let r = block_on(async move { w.infer(x(2.0)).await });
        r.unwrap();
        queued.blocking_recv().unwrap().unwrap();
        let t = threads.lock().unwrap().clone();
        assert_eq!(t.len(), 2);
        assert!(
            t.iter().all(|t| *t != me),
            "the second waited for the worker: {t:?}"
        );
    }

    #[test]
    fn the_cost_model_fits_rows() {
        let mut c = CostModel::default();
        assert_eq!(c.predict(1), None);
        c.observe(1, Duration::from_micros(10));
        assert!((c.predict(1).unwrap() - 10_000.0).abs() < 1.0);
        assert!(
            (c.predict(4).unwrap() - 40_000.0).abs() < 1.0,
            "one size: proportional"
        );
        for _ in 0..50 {
            c.observe(1, Duration::from_micros(10));
            c.observe(101, Duration::from_micros(110));
        }
        let p = c.predict(51).unwrap();
        assert!((p - 60_000.0).abs() < 1_000.0, "t = 9 µs + 1 µs/row: {p}");
    }

    #[test]
    fn warmup_inputs_use_ranges() {
        let mut sig = Signature::new(
            vec![TensorSpec::new("x", DataType::Fp32, vec![-1, 2])],
            vec![],
        );
        sig.ranges =
            crate::signature::FeatureRanges::from_json(r#"{"x": {"min": [2, 0], "max": [4, 10]}}"#)
                .unwrap();
        let w = warmup_inputs(&sig);
        assert_eq!(w[0].shape, vec![1, 2]);
        assert_eq!(w[0].data, TensorData::Fp32(vec![3.0, 5.0]));
    }
}
