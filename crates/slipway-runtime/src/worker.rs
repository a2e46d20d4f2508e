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

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
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

type Reply = oneshot::Sender<Result<Vec<ModelOutput>, RuntimeError>>;

struct Job {
    inputs: Vec<Tensor>,
    rows: usize,
    reply: Reply,
    enqueued: Instant,
}

struct Shared {
    name: String,
    queued: AtomicUsize,
    capacity: usize,
}

/// A model running on its own thread; cheap to share behind an `Arc`.
pub struct ModelWorker {
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
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
        if config.warmup {
            let started = Instant::now();
            let outs = model.run(warmup_inputs(&signature))?;
            for o in outs {
                if let Some(l) = o.class_labels {
                    class_labels.insert(o.tensor.name, l);
                }
            }
            tracing::debug!(model = %config.name, elapsed_ms = started.elapsed().as_millis() as u64, "warm-up done");
        }
        let mut policy = config.policy.clone();
        if policy.max_batch_size.is_none() && signature.supports_batching() {
            policy.max_batch_size = Some(config.max_batch_size.max(1));
        }
        let (tx, rx) = mpsc::sync_channel::<Job>(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            name: config.name.clone(),
            queued: AtomicUsize::new(0),
            capacity: config.queue_capacity.max(1),
        });
        let batching = signature.supports_batching() && config.max_batch_size > 1;
        let loop_state = WorkerLoop {
            model,
            rx,
            shared: shared.clone(),
            batching,
            max_rows: config.max_batch_size.max(1),
            delay: config.max_queue_delay,
        };
        let thread = std::thread::Builder::new()
            .name(format!("slipway-model-{}", config.name))
            .spawn(move || loop_state.run())
            .map_err(|e| RuntimeError::Inference(format!("cannot start worker thread: {e}")))?;
        Ok(ModelWorker {
            tx,
            shared,
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
        let rows = inputs.first().and_then(Tensor::batch_size).unwrap_or(1);
        let (reply, rx) = oneshot::channel();
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Job {
            inputs,
            rows,
            reply,
            enqueued: Instant::now(),
        }) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
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

    fn prepare(&self, inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, Validated), RuntimeError> {
        Ok(conform(&self.signature, inputs, &self.policy)?)
    }

    /// Validates, converts, queues and awaits one request. The only work done
    /// on the calling task is validation (linear in the input size).
    pub async fn infer(&self, inputs: Vec<Tensor>) -> Result<InferResult, RuntimeError> {
        let (inputs, validation) = self.prepare(inputs)?;
        let rx = self.submit(inputs)?;
        let outputs = rx
            .await
            .map_err(|_| RuntimeError::WorkerStopped(self.shared.name.clone()))??;
        Ok(InferResult {
            outputs,
            validation,
        })
    }

    /// Blocking variant of [`ModelWorker::infer`] (must not be called from
    /// within an async runtime).
    pub fn infer_blocking(&self, inputs: Vec<Tensor>) -> Result<InferResult, RuntimeError> {
        let (inputs, validation) = self.prepare(inputs)?;
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

struct WorkerLoop {
    model: Box<dyn Model>,
    rx: mpsc::Receiver<Job>,
    shared: Arc<Shared>,
    batching: bool,
    max_rows: usize,
    delay: Duration,
}

impl WorkerLoop {
    fn take(&self, job: Job) -> Option<Job> {
        self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        // the caller went away (request cancelled): skip the work
        if job.reply.is_closed() {
            None
        } else {
            Some(job)
        }
    }

    fn run(mut self) {
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
            self.execute(jobs);
        }
        tracing::debug!(model = %self.shared.name, "worker stopped");
    }

    fn run_model(&mut self, inputs: Vec<Tensor>) -> Result<Vec<ModelOutput>, RuntimeError> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.model.run(inputs))) {
            Ok(r) => r,
            Err(_) => Err(RuntimeError::Inference("the model panicked".into())),
        }
    }

    /// Runs the jobs and records queue wait per request, rows per run and
    /// compute time (`slipway_inference_queue_seconds`,
    /// `slipway_inference_batch_rows`, `slipway_inference_compute_seconds`,
    /// labelled by worker name).
    fn execute(&mut self, jobs: Vec<Job>) {
        let started = Instant::now();
        let enqueued: Vec<Instant> = jobs.iter().map(|j| j.enqueued).collect();
        let rows: usize = jobs.iter().map(|j| j.rows).sum();
        self.execute_inner(jobs);
        let model = self.shared.name.clone();
        for at in enqueued {
            metrics::histogram!("slipway_inference_queue_seconds", "model" => model.clone())
                .record(started.saturating_duration_since(at).as_secs_f64());
        }
        metrics::histogram!("slipway_inference_batch_rows", "model" => model.clone())
            .record(rows as f64);
        metrics::histogram!("slipway_inference_compute_seconds", "model" => model)
            .record(started.elapsed().as_secs_f64());
    }

    fn execute_inner(&mut self, jobs: Vec<Job>) {
        if jobs.len() == 1 {
            for job in jobs {
                let r = self.run_model(job.inputs);
                let _ = job.reply.send(r);
            }
            return;
        }
        match self.run_batched(&jobs) {
            Some(split) => {
                for (job, out) in jobs.into_iter().zip(split) {
                    let _ = job.reply.send(Ok(out));
                }
            }
            None => {
                for job in jobs {
                    let r = self.run_model(job.inputs);
                    let _ = job.reply.send(r);
                }
            }
        }
    }

    /// Runs the jobs as one batch; `None` when they cannot be batched or the
    /// batched run failed (the caller then runs them one by one).
    fn run_batched(&mut self, jobs: &[Job]) -> Option<Vec<Vec<ModelOutput>>> {
        let n_inputs = jobs[0].inputs.len();
        let mut batched = Vec::with_capacity(n_inputs);
        for i in 0..n_inputs {
            let parts: Vec<&Tensor> = jobs
                .iter()
                .map(|j| j.inputs.get(i))
                .collect::<Option<_>>()?;
            batched.push(Tensor::concat(&parts).ok()?);
        }
        let total: usize = jobs.iter().map(|j| j.rows).sum();
        let outputs = match self.run_model(batched) {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(model = %self.shared.name, error = %e, "batched run failed; running requests one by one");
                return None;
            }
        };
        if outputs.iter().any(|o| o.tensor.batch_size() != Some(total)) {
            return None;
        }
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
        tracing::trace!(model = %self.shared.name, requests = jobs.len(), rows = total, "ran batch");
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
