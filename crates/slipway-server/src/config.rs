//! The one typed configuration of Slipway.
//!
//! Sources, lowest precedence first: built-in defaults, the TOML file named by
//! `--config` / `SLIPWAY_CONFIG`, then flags and `SLIPWAY_*` environment
//! variables (clap reads both). The TOML file is merged as typed values with
//! figment; nothing is ever written into the process environment.
//! [`Config::validate`] runs once at start-up and names the setting, the value
//! and the allowed range in its errors. Secrets are wrapped in [`Secret`] so
//! `Debug` and `config check` never print them.

use clap::{Args, ValueEnum};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A secret value: printed as `<redacted>` by `Debug`, `Display` and `Serialize`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// Which parts of the platform this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in one process (the laptop default).
    #[default]
    All,
    /// Tracking, registry, artifacts, tokens and deployment management.
    Registry,
    /// Inference only; follows the registry through the shared stores.
    Serving,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default; for log pipelines).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// ONNX Runtime graph optimization level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum GraphOptimization {
    /// No graph optimizations.
    Disable,
    /// Constant folding and other safe rewrites.
    Basic,
    /// Basic plus fusions.
    Extended,
    /// Everything (default).
    #[default]
    All,
}

/// How a setting's type is given on the command line: `Option<T>` and `T`
/// take a `T`, a [`Secret`] a plain string (serialized raw only inside the
/// merge, never printed), a list a comma-separated string.
pub trait Setting {
    /// The type clap parses.
    type Arg: Clone + Send + Sync + Serialize + 'static;
}

macro_rules! plain_setting {
    ($($t:ty),*) => {$(impl Setting for $t { type Arg = $t; })*};
}
plain_setting!(
    u64,
    f64,
    bool,
    String,
    PathBuf,
    SocketAddr,
    Role,
    LogFormat,
    GraphOptimization
);

impl Setting for Secret {
    type Arg = String;
}

impl<T: Setting> Setting for Option<T> {
    type Arg = T::Arg;
}

impl Setting for Vec<String> {
    type Arg = CommaList;
}

impl clap::builder::ValueParserFactory for CommaList {
    type Parser = clap::builder::ValueParser;
    fn value_parser() -> Self::Parser {
        clap::builder::ValueParser::new(|s: &str| s.parse::<CommaList>())
    }
}

/// A comma-separated list on the command line (`a,b,c`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommaList(pub Vec<String>);

impl std::str::FromStr for CommaList {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect(),
        ))
    }
}

impl Serialize for CommaList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// One row of the settings reference (docs/configuration.md).
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// TOML key.
    pub name: &'static str,
    /// Command-line flag.
    pub flag: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// The default, as documented.
    pub default: &'static str,
    /// What the doc comment says.
    pub help: &'static str,
    /// Allowed values.
    pub allowed: &'static str,
}

impl SettingDoc {
    /// The row of docs/configuration.md's table for this setting.
    pub fn markdown_row(&self) -> String {
        format!(
            "| `{}` | `{}` | `{}` | {} | {} {} |",
            self.name,
            self.flag,
            self.env,
            self.default,
            self.help.trim(),
            self.allowed
        )
    }
}

/// A setting's help line: its doc comment and documented default.
fn help_text(doc: &'static str) -> &'static str {
    doc.trim_start()
}

/// Declares every setting once: the [`Config`] field and its default, the
/// clap flag and `SLIPWAY_*` variable of its group's `Args` struct (the doc
/// comment becomes the help text), and its row in [`SETTINGS`], which
/// docs/configuration.md must contain (a test checks).
macro_rules! settings {
    ($(
        $(#[$gmeta:meta])*
        $group:ident {
            $(
                $(#[doc = $doc:literal])+
                $name:ident : $ty:ty = $default:expr ;
                flag $flag:literal, env $env:literal, default $default_doc:literal, allowed $allowed:literal;
            )*
        }
    )*) => {
        /// The effective configuration after merging every source.
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct Config {
            $($(
                $(#[doc = $doc])+
                pub $name: $ty,
            )*)*
        }

        impl Default for Config {
            fn default() -> Self {
                Self { $($( $name: $default, )*)* }
            }
        }

        $(
            $(#[$gmeta])*
            ///
            /// Each field is the setting of the same name in [`Config`]; `None`
            /// when neither the flag nor its variable was given.
            #[derive(Debug, Clone, Default, Args, Serialize)]
            #[allow(missing_docs)]
            pub struct $group {
                $(
                    #[arg(long = $flag, env = $env, help = help_text(concat!($($doc),+, " [default: ", $default_doc, "]")))]
                    #[serde(skip_serializing_if = "Option::is_none")]
                    pub $name: Option<<$ty as Setting>::Arg>,
                )*
            }
        )*

        /// Every setting, in declaration order, for the configuration reference.
        pub const SETTINGS: &[SettingDoc] = &[$($(
            SettingDoc {
                name: stringify!($name),
                flag: concat!("--", $flag),
                env: $env,
                default: $default_doc,
                help: concat!($($doc),+),
                allowed: $allowed,
            },
        )*)*];
    };
}

settings! {
    /// Where the stores are: the settings of every command that opens them.
    StoreSettings {
        /// Directory for the embedded database, local artifacts and the initial admin token.
        data_dir: PathBuf = PathBuf::from("./slipway-data");
            flag "data-dir", env "SLIPWAY_DATA_DIR", default "`./slipway-data`",
            allowed "A directory; `slipway up` creates it, other commands need it to exist.";
        /// Metadata database URL.
        metadata_url: Option<String> = None;
            flag "metadata-url", env "SLIPWAY_METADATA_URL", default "`sqlite://<data_dir>/slipway.db`",
            allowed "`sqlite://PATH` or `postgres://user[:password]@host[:port]/db`. The PostgreSQL database must exist: Slipway creates its tables, not the database.";
        /// Artifact store root: a local directory or an S3 bucket and prefix.
        artifact_root: Option<String> = None;
            flag "artifact-root", env "SLIPWAY_ARTIFACT_ROOT", default "`<data_dir>/artifacts`",
            allowed "A local directory, `file:///abs/path` or `s3://bucket[/prefix]`; an S3 bucket must exist.";
        /// S3 endpoint URL for S3-compatible servers (MinIO, SeaweedFS).
        s3_endpoint: Option<String> = None;
            flag "s3-endpoint", env "SLIPWAY_S3_ENDPOINT", default "unset (AWS)",
            allowed "`http://` or `https://` URL; enables path-style addressing.";
        /// S3 region.
        s3_region: Option<String> = None;
            flag "s3-region", env "SLIPWAY_S3_REGION", default "`$AWS_REGION`, else `us-east-1`",
            allowed "Any region name.";
    }
    /// What the server does: the settings of `slipway up` beyond the stores.
    ServerSettings {
        /// Address to listen on.
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
            flag "listen", env "SLIPWAY_LISTEN", default "`127.0.0.1:8080`",
            allowed "`host:port`; port 0 picks a free port.";
        /// Which parts of the platform this process runs.
        role: Role = Role::All;
            flag "role", env "SLIPWAY_ROLE", default "`all`",
            allowed "`all`, `registry`, `serving`.";
        /// Bytes of large inference bodies decoded at once, on blocking threads; further large requests wait their turn (small ones are decoded on the request task and never wait).
        max_decode_bytes: u64 = 64 << 20;
            flag "max-decode-bytes", env "SLIPWAY_MAX_DECODE_BYTES", default "`67108864` (64 MiB)",
            allowed "1048576 … 4294967295; at least `max_json_body_bytes` is sensible.";
        /// Largest JSON request body accepted by API and inference routes, in bytes.
        max_json_body_bytes: u64 = 16 << 20;
            flag "max-json-body-bytes", env "SLIPWAY_MAX_JSON_BODY_BYTES", default "`16777216` (16 MiB)",
            allowed "1024 … 1073741824.";
        /// Largest single artifact upload, in bytes.
        max_artifact_bytes: u64 = 5 << 30;
            flag "max-artifact-bytes", env "SLIPWAY_MAX_ARTIFACT_BYTES", default "`5368709120` (5 GiB)",
            allowed "1024 … 1099511627776.";
        /// Largest `max_results` a search may ask for.
        max_page_size: u64 = MAX_PAGE_SIZE_LIMIT;
            flag "max-page-size", env "SLIPWAY_MAX_PAGE_SIZE", default "`50000`",
            allowed "1 … 50000; larger `max_results` get 400.";
        /// Admin token supplied by the operator instead of a generated one.
        admin_token: Option<Secret> = None;
            flag "admin-token", env "SLIPWAY_ADMIN_TOKEN", default "unset",
            allowed "At least 16 characters; a secret, never printed.";
        /// File holding the admin token (e.g. a mounted Kubernetes secret).
        admin_token_file: Option<PathBuf> = None;
            flag "admin-token-file", env "SLIPWAY_ADMIN_TOKEN_FILE", default "unset",
            allowed "A readable file holding the token; not together with `admin_token`.";
        /// Whether `/metrics` requires a token.
        metrics_require_token: bool = true;
            flag "metrics-require-token", env "SLIPWAY_METRICS_REQUIRE_TOKEN", default "`true`",
            allowed "`true`: `/metrics` needs a `read` token; `false`: open for Prometheus scrapes.";
        /// Log line format.
        log_format: LogFormat = LogFormat::Json;
            flag "log-format", env "SLIPWAY_LOG_FORMAT", default "`json`",
            allowed "`json`, `text`.";
        /// Log filter.
        log_level: String = "info,ort=warn".into();
            flag "log-level", env "SLIPWAY_LOG_LEVEL", default "`info,ort=warn`",
            allowed "A tracing filter, e.g. `info` or `slipway_server=debug,tower_http=info`.";
        /// Seconds in-flight requests may finish after SIGTERM.
        shutdown_grace_seconds: u64 = 30;
            flag "shutdown-grace-seconds", env "SLIPWAY_SHUTDOWN_GRACE_SECONDS", default "`30`",
            allowed "0 … 3600.";
        /// Seconds a client has to send a complete request head, counted from connecting or from the first byte of the next request on a kept-alive connection.
        header_read_timeout_seconds: u64 = 10;
            flag "header-read-timeout-seconds", env "SLIPWAY_HEADER_READ_TIMEOUT_SECONDS", default "`10`",
            allowed "1 … 3600; slower clients are disconnected.";
        /// Seconds a client has to send a buffered request body (API JSON, inference); for streamed artifact uploads, the longest pause between two chunks.
        body_read_timeout_seconds: u64 = 60;
            flag "body-read-timeout-seconds", env "SLIPWAY_BODY_READ_TIMEOUT_SECONDS", default "`60`",
            allowed "1 … 3600; slower bodies get 408 and the connection is closed.";
        /// Seconds an idle kept-alive connection stays open.
        keep_alive_timeout_seconds: u64 = 75;
            flag "keep-alive-timeout-seconds", env "SLIPWAY_KEEP_ALIVE_TIMEOUT_SECONDS", default "`75`",
            allowed "1 … 3600.";
        /// Connections served at once; further ones wait in the kernel's accept queue until one closes.
        max_connections: u64 = 4096;
            flag "max-connections", env "SLIPWAY_MAX_CONNECTIONS", default "`4096`",
            allowed "1 … 1000000; keep it below the open-file limit (`ulimit -n`).";
        /// Seconds a verified token stays cached, i.e. the longest a revoked token keeps working on another replica.
        token_cache_seconds: u64 = 5;
            flag "token-cache-seconds", env "SLIPWAY_TOKEN_CACHE_SECONDS", default "`5`",
            allowed "0 … 300.";
        /// ONNX Runtime shared library.
        ort_lib: Option<PathBuf> = None;
            flag "ort-lib", env "SLIPWAY_ORT_LIB", default "found in `.venv/lib/python3*/site-packages/onnxruntime/capi/` next to the working directory or the executable (also `ORT_DYLIB_PATH`)",
            allowed "Path to `libonnxruntime.so` (ONNX Runtime ≥ 1.31); must exist.";
        /// Intra-op threads per loaded model (0: ONNX Runtime decides).
        intra_op_threads: u64 = 1;
            flag "intra-op-threads", env "SLIPWAY_INTRA_OP_THREADS", default "`1`",
            allowed "0 … 256.";
        /// Whether the kernel may back the process's memory with transparent huge pages (where the machine's THP mode is `always`). Off by default: resident memory stays close to what is used (about 10 MB less with the demo model on the benchmark machine), with no throughput change measured; on may help large models that touch much memory.
        transparent_huge_pages: bool = false;
            flag "transparent-huge-pages", env "SLIPWAY_TRANSPARENT_HUGE_PAGES", default "`false`",
            allowed "`true`, `false`; Linux only (elsewhere ignored).";
        /// Graph optimization level for loaded models.
        graph_optimization: GraphOptimization = GraphOptimization::All;
            flag "graph-optimization", env "SLIPWAY_GRAPH_OPTIMIZATION", default "`all`",
            allowed "`disable`, `basic`, `extended`, `all`.";
        /// Local cache of model files, named by their SHA-256.
        model_cache_dir: Option<PathBuf> = None;
            flag "model-cache-dir", env "SLIPWAY_MODEL_CACHE_DIR", default "`<data_dir>/model-cache`",
            allowed "A directory.";
        /// Free space `slipway doctor` wants on the model cache's file system beyond what the deployed models take: below it the disk check warns (below the models' own size it fails).
        model_cache_min_free_bytes: u64 = 1_073_741_824;
            flag "model-cache-min-free-bytes", env "SLIPWAY_MODEL_CACHE_MIN_FREE_BYTES", default "`1073741824` (1 GiB)",
            allowed "0 … 1125899906842624 (1 PiB).";
        /// How often deployments re-read their spec and alias, in milliseconds: the longest delay before an alias move is served, on every replica.
        deployment_poll_ms: u64 = 1000;
            flag "deployment-poll-ms", env "SLIPWAY_DEPLOYMENT_POLL_MS", default "`1000`",
            allowed "100 … 600000.";
        /// Requests that may wait per deployment before 429 (default for deployments).
        inference_queue_capacity: u64 = 256;
            flag "inference-queue-capacity", env "SLIPWAY_INFERENCE_QUEUE_CAPACITY", default "`256`",
            allowed "1 … 100000; a deployment's `queue_capacity` overrides it.";
        /// Whether readiness requires every deployment to serve and answer a shallow inference (Triton's strict readiness). Off: a replica is ready once each deployment's first load has finished, and a failed deployment reports itself without taking the others out of service.
        strict_readiness: bool = false;
            flag "strict-readiness", env "SLIPWAY_STRICT_READINESS", default "`false`",
            allowed "`true`, `false`.";
        /// URI prefixes outside Slipway's artifact store that model versions may use as their source.
        model_source_prefixes: Vec<String> = Vec::new();
            flag "model-source-prefixes", env "SLIPWAY_MODEL_SOURCE_PREFIXES", default "none",
            allowed "Comma-separated URI prefixes such as `s3://shared-models/`; sources inside the artifact store (`models:/`, `runs:/`, `mlflow-artifacts:/`, the store's own location) are always accepted, anything else is refused with 400.";
        /// A request alone with its model (no other in flight, nothing queued, the model idle) runs on the request's own thread, skipping the hand-off to the model's worker thread, when the model's measured run time for that many rows is at most this many microseconds. 0 (the default) always hands requests to the worker, which batches them.
        inline_max_micros: u64 = 0;
            flag "inline-max-micros", env "SLIPWAY_INLINE_MAX_MICROS", default "`0`",
            allowed "0 … 10000.";
        /// Largest batch per inference run and per request, in rows (default for deployments).
        max_batch_size: u64 = 64;
            flag "max-batch-size", env "SLIPWAY_MAX_BATCH_SIZE", default "`64`",
            allowed "1 … 65536; a deployment's `max_batch_size` overrides it.";
        /// Share of served requests written to the prediction log (default for deployments; 0 turns the log off).
        prediction_log_fraction: f64 = 1.0;
            flag "prediction-log-fraction", env "SLIPWAY_PREDICTION_LOG_FRACTION", default "`1.0`",
            allowed "0 … 1; a deployment's `monitoring.log_fraction` overrides it.";
        /// Prediction rows held in memory before they are written; when it is full, further rows are dropped and counted (`slipway_prediction_log_dropped_rows_total`), never delaying a request.
        prediction_log_buffer_rows: u64 = 200_000;
            flag "prediction-log-buffer-rows", env "SLIPWAY_PREDICTION_LOG_BUFFER_ROWS", default "`200000`",
            allowed "1000 … 100000000.";
        /// Rows per deployment and version after which a Parquet file is written.
        prediction_log_flush_rows: u64 = 50_000;
            flag "prediction-log-flush-rows", env "SLIPWAY_PREDICTION_LOG_FLUSH_ROWS", default "`50000`",
            allowed "1 … 10000000.";
        /// Seconds after which buffered rows are written even if fewer than `prediction_log_flush_rows`: what a crash (kill -9) can lose at most; a graceful shutdown writes everything.
        prediction_log_flush_seconds: u64 = 10;
            flag "prediction-log-flush-seconds", env "SLIPWAY_PREDICTION_LOG_FLUSH_SECONDS", default "`10`",
            allowed "1 … 3600.";
        /// Days prediction-log and feedback files are kept; older hours are deleted.
        prediction_log_retention_days: u64 = 30;
            flag "prediction-log-retention-days", env "SLIPWAY_PREDICTION_LOG_RETENTION_DAYS", default "`30`",
            allowed "0 (keep forever) … 36500.";
        /// Default drift window, seconds.
        drift_window_seconds: u64 = 3600;
            flag "drift-window-seconds", env "SLIPWAY_DRIFT_WINDOW_SECONDS", default "`3600`",
            allowed "60 … 2678400; a deployment's `monitoring.drift.window_seconds` overrides it.";
        /// Fewest rows in a drift window before drift is judged.
        drift_min_rows: u64 = 100;
            flag "drift-min-rows", env "SLIPWAY_DRIFT_MIN_ROWS", default "`100`",
            allowed "1 … 10000000; `monitoring.drift.min_rows` overrides it.";
        /// Rows of a version's first logged predictions that become its reference when it has no reference file and none was uploaded.
        drift_reference_rows: u64 = 1000;
            flag "drift-reference-rows", env "SLIPWAY_DRIFT_REFERENCE_ROWS", default "`1000`",
            allowed "10 … 10000000; `monitoring.drift.reference_rows` overrides it.";
        /// Values per column a drift window keeps exactly (results then equal scipy and Evidently); beyond it a KLL sketch with exact tails (see docs/monitoring.md for its error bound).
        drift_sample_limit: u64 = 10_000;
            flag "drift-sample-limit", env "SLIPWAY_DRIFT_SAMPLE_LIMIT", default "`10000`",
            allowed "100 … 10000000.";
        /// Default window of `GET .../performance` and the accuracy gauges, seconds.
        performance_window_seconds: u64 = 86_400;
            flag "performance-window-seconds", env "SLIPWAY_PERFORMANCE_WINDOW_SECONDS", default "`86400`",
            allowed "60 … 2678400; `monitoring.performance_window_seconds` overrides it.";
        /// Hours back in the prediction log that feedback request ids are looked up in when a batch arrives (to report unknown ids).
        feedback_lookback_hours: u64 = 24;
            flag "feedback-lookback-hours", env "SLIPWAY_FEEDBACK_LOOKBACK_HOURS", default "`24`",
            allowed "1 … 744.";
        /// Seconds between refreshes of the drift and accuracy gauges and retention runs (one replica at a time, under a lease).
        monitoring_interval_seconds: u64 = 60;
            flag "monitoring-interval-seconds", env "SLIPWAY_MONITORING_INTERVAL_SECONDS", default "`60`",
            allowed "5 … 86400.";
    }
    /// Backups the server takes on a schedule: the settings of `slipway up` that turn them on.
    BackupSettings {
        /// Where scheduled backups go; unset, the server takes none.
        backup_to: Option<String> = None;
            flag "backup-to", env "SLIPWAY_BACKUP_TO", default "unset (no scheduled backups)",
            allowed "A local directory or `s3://bucket[/prefix]` outside the artifact store. Replicas with `role = serving` never take backups; of the others, one per scheduled time does (leases `backup:schedule` and `backup`).";
        /// When scheduled backups run.
        backup_schedule: String = "@daily".into();
            flag "backup-schedule", env "SLIPWAY_BACKUP_SCHEDULE", default "`@daily`",
            allowed "`@every <duration>` (e.g. `@every 6h`, aligned to multiples of the interval since the epoch), `@hourly`, `@daily`, `@weekly`, `@monthly`, or a five-field cron expression in UTC (e.g. `17 3 * * *`).";
        /// Newest scheduled backups kept.
        backup_keep_last: u64 = 7;
            flag "backup-keep-last", env "SLIPWAY_BACKUP_KEEP_LAST", default "`7`",
            allowed "0 … 10000. With the three below: a backup is kept when any rule keeps it; all four 0 keeps every backup.";
        /// Days whose newest backup is kept.
        backup_keep_daily: u64 = 7;
            flag "backup-keep-daily", env "SLIPWAY_BACKUP_KEEP_DAILY", default "`7`",
            allowed "0 … 10000 (days that have a backup, UTC).";
        /// ISO weeks whose newest backup is kept.
        backup_keep_weekly: u64 = 4;
            flag "backup-keep-weekly", env "SLIPWAY_BACKUP_KEEP_WEEKLY", default "`4`",
            allowed "0 … 10000.";
        /// Months whose newest backup is kept.
        backup_keep_monthly: u64 = 6;
            flag "backup-keep-monthly", env "SLIPWAY_BACKUP_KEEP_MONTHLY", default "`6`",
            allowed "0 … 10000.";
        /// Whether each scheduled backup is verified right after it is taken (restored into a scratch store, every blob read back).
        backup_verify: bool = true;
            flag "backup-verify", env "SLIPWAY_BACKUP_VERIFY", default "`true`",
            allowed "`true`, `false`; verifying reads every blob the backup references.";
        /// Scratch space of backups: the SQLite snapshot copy and the metadata files before upload.
        backup_scratch_dir: Option<PathBuf> = None;
            flag "backup-scratch-dir", env "SLIPWAY_BACKUP_SCRATCH_DIR", default "the system temporary directory (`$TMPDIR`, else `/tmp`)",
            allowed "A writable directory with room for a compacted copy of the metadata database.";
        /// The MLflow UI's built web app (`mlflow/server/js/build` of the `mlflow` package), served at `/`.
        mlflow_ui_dir: Option<PathBuf> = None;
            flag "mlflow-ui-dir", env "SLIPWAY_MLFLOW_UI_DIR", default "found in `.venv/lib/python3*/site-packages/mlflow/server/js/build` or `.mlflow-ui/mlflow/server/js/build` next to the working directory or the executable, else where `python3` imports `mlflow` from",
            allowed "A directory holding `index.html`; must exist. Without one, `/` says how to install it (`scripts/ensure-mlflow-ui.sh`).";
        /// How long a browser session lasts after signing in at `/login`, in minutes.
        session_ttl_minutes: u64 = 720;
            flag "session-ttl-minutes", env "SLIPWAY_SESSION_TTL_MINUTES", default "`720` (12 h)",
            allowed "1 … 43200 (30 days); signing out or revoking the token ends a session sooner.";
    }
}

/// Upper bound of `max_json_body_bytes` (1 GiB).
pub const MAX_JSON_BODY_LIMIT: u64 = 1 << 30;
/// Upper bound of `max_artifact_bytes` (1 TiB).
pub const MAX_ARTIFACT_LIMIT: u64 = 1 << 40;
/// Upper bound of `max_page_size` (MLflow's own ceiling for run searches).
pub const MAX_PAGE_SIZE_LIMIT: u64 = 50_000;

/// A configuration error naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file or a value could not be read.
    #[error("configuration could not be read: {0}")]
    Load(String),
    /// A setting has a value outside its allowed range.
    #[error("invalid setting `{setting}` = {value}: {rule}")]
    Invalid {
        /// Setting name, as in the TOML file.
        setting: &'static str,
        /// The offending value.
        value: String,
        /// The allowed range or form.
        rule: String,
    },
}

/// The TOML file and the store settings: what every command that opens a
/// store takes (`slipway token`, `slipway backup`, ...).
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long = "config", env = "SLIPWAY_CONFIG")]
    pub config_file: Option<PathBuf>,
    /// The store settings.
    #[command(flatten)]
    pub store: StoreSettings,
}

/// Everything `slipway up` takes: the stores, the server settings and the
/// scheduled backups.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// The TOML file and the store settings.
    #[command(flatten)]
    pub stores: StoreArgs,
    /// The server settings.
    #[command(flatten)]
    pub server: ServerSettings,
    /// The scheduled-backup settings.
    #[command(flatten)]
    pub backup: BackupSettings,
}

impl StoreArgs {
    /// Merges defaults, the TOML file and the store flags into a validated
    /// [`Config`] (server settings from the file or their defaults).
    pub fn load(&self) -> Result<Config, ConfigError> {
        merge(self, None)
    }
}

impl ServerArgs {
    /// Merges defaults, the TOML file and every flag into a validated [`Config`].
    pub fn load(&self) -> Result<Config, ConfigError> {
        merge(&self.stores, Some((&self.server, &self.backup)))
    }
}

fn merge(
    stores: &StoreArgs,
    server: Option<(&ServerSettings, &BackupSettings)>,
) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &stores.config_file {
        if !path.exists() {
            return Err(ConfigError::Load(format!(
                "config file {} does not exist (from --config / SLIPWAY_CONFIG)",
                path.display()
            )));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Serialized::defaults(&stores.store));
    if let Some((server, backup)) = server {
        figment = figment
            .merge(Serialized::defaults(server))
            .merge(Serialized::defaults(backup));
    }
    let config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    config.validate()?;
    Ok(config)
}

fn invalid(
    setting: &'static str,
    value: impl fmt::Display,
    rule: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        setting,
        value: value.to_string(),
        rule: rule.into(),
    }
}

fn check_range(setting: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(
            setting,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

impl Config {
    /// Checks every setting; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "max_json_body_bytes",
            self.max_json_body_bytes,
            1024,
            MAX_JSON_BODY_LIMIT,
        )?;
        check_range(
            "max_artifact_bytes",
            self.max_artifact_bytes,
            1024,
            MAX_ARTIFACT_LIMIT,
        )?;
        check_range("max_page_size", self.max_page_size, 1, MAX_PAGE_SIZE_LIMIT)?;
        check_range(
            "shutdown_grace_seconds",
            self.shutdown_grace_seconds,
            0,
            3600,
        )?;
        check_range("token_cache_seconds", self.token_cache_seconds, 0, 300)?;
        check_range(
            "max_decode_bytes",
            self.max_decode_bytes,
            1 << 20,
            u64::from(u32::MAX),
        )?;
        check_range(
            "header_read_timeout_seconds",
            self.header_read_timeout_seconds,
            1,
            3600,
        )?;
        check_range(
            "body_read_timeout_seconds",
            self.body_read_timeout_seconds,
            1,
            3600,
        )?;
        check_range(
            "keep_alive_timeout_seconds",
            self.keep_alive_timeout_seconds,
            1,
            3600,
        )?;
        check_range("max_connections", self.max_connections, 1, 1_000_000)?;
        check_range("intra_op_threads", self.intra_op_threads, 0, 256)?;
        check_range("deployment_poll_ms", self.deployment_poll_ms, 100, 600_000)?;
        check_range(
            "model_cache_min_free_bytes",
            self.model_cache_min_free_bytes,
            0,
            1 << 50,
        )?;
        check_range(
            "inference_queue_capacity",
            self.inference_queue_capacity,
            1,
            100_000,
        )?;
        check_range("max_batch_size", self.max_batch_size, 1, 65_536)?;
        check_range("inline_max_micros", self.inline_max_micros, 0, 10_000)?;
        if !(0.0..=1.0).contains(&self.prediction_log_fraction) {
            return Err(ConfigError::Invalid {
                setting: "prediction_log_fraction",
                value: self.prediction_log_fraction.to_string(),
                rule: "must be between 0 and 1".into(),
            });
        }
        check_range(
            "prediction_log_buffer_rows",
            self.prediction_log_buffer_rows,
            1000,
            100_000_000,
        )?;
        check_range(
            "prediction_log_flush_rows",
            self.prediction_log_flush_rows,
            1,
            10_000_000,
        )?;
        check_range(
            "prediction_log_flush_seconds",
            self.prediction_log_flush_seconds,
            1,
            3600,
        )?;
        check_range(
            "prediction_log_retention_days",
            self.prediction_log_retention_days,
            0,
            36_500,
        )?;
        check_range(
            "drift_window_seconds",
            self.drift_window_seconds,
            60,
            2_678_400,
        )?;
        check_range("drift_min_rows", self.drift_min_rows, 1, 10_000_000)?;
        check_range(
            "drift_reference_rows",
            self.drift_reference_rows,
            10,
            10_000_000,
        )?;
        check_range(
            "drift_sample_limit",
            self.drift_sample_limit,
            100,
            10_000_000,
        )?;
        check_range(
            "performance_window_seconds",
            self.performance_window_seconds,
            60,
            2_678_400,
        )?;
        check_range(
            "feedback_lookback_hours",
            self.feedback_lookback_hours,
            1,
            744,
        )?;
        check_range(
            "monitoring_interval_seconds",
            self.monitoring_interval_seconds,
            5,
            86_400,
        )?;
        check_range("session_ttl_minutes", self.session_ttl_minutes, 1, 43_200)?;
        if let Some(dir) = &self.mlflow_ui_dir {
            if !dir.join("index.html").is_file() {
                return Err(invalid(
                    "mlflow_ui_dir",
                    dir.display(),
                    "must be a directory holding index.html (the `mlflow` package's mlflow/server/js/build)",
                ));
            }
        }
        if let Some(lib) = &self.ort_lib {
            if !lib.is_file() {
                return Err(invalid(
                    "ort_lib",
                    lib.display(),
                    "file does not exist (path to libonnxruntime.so)",
                ));
            }
        }
        let url = self.metadata_url();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "metadata_url",
                &url,
                "must start with sqlite:// or postgres://",
            ));
        }
        let root = self.artifact_root();
        if root.contains("://") && !root.starts_with("s3://") && !root.starts_with("file://") {
            return Err(invalid(
                "artifact_root",
                &root,
                "must be a local directory or s3://bucket/prefix",
            ));
        }
        if root.starts_with("s3://")
            && root
                .trim_start_matches("s3://")
                .split('/')
                .next()
                .unwrap_or("")
                .is_empty()
        {
            return Err(invalid(
                "artifact_root",
                &root,
                "an s3:// root needs a bucket name",
            ));
        }
        if let Some(ep) = &self.s3_endpoint {
            if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                return Err(invalid(
                    "s3_endpoint",
                    ep,
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if self.admin_token.is_some() && self.admin_token_file.is_some() {
            return Err(invalid(
                "admin_token_file",
                "(set)",
                "give either admin_token or admin_token_file, not both",
            ));
        }
        if let Some(t) = &self.admin_token {
            if t.expose().len() < 16 {
                return Err(invalid(
                    "admin_token",
                    "<redacted>",
                    "must be at least 16 characters",
                ));
            }
        }
        if let Some(path) = &self.admin_token_file {
            if !path.is_file() {
                return Err(invalid(
                    "admin_token_file",
                    path.display(),
                    "file does not exist",
                ));
            }
        }
        match self.backup_schedule.parse::<slipway_backup::Schedule>() {
            Err(e) => return Err(invalid("backup_schedule", &self.backup_schedule, e)),
            Ok(s) if s.next_after(slipway_core::now_millis()).is_none() => {
                return Err(invalid(
                    "backup_schedule",
                    &self.backup_schedule,
                    "never runs (no such date)",
                ))
            }
            Ok(_) => {}
        }
        for (name, v) in [
            ("backup_keep_last", self.backup_keep_last),
            ("backup_keep_daily", self.backup_keep_daily),
            ("backup_keep_weekly", self.backup_keep_weekly),
            ("backup_keep_monthly", self.backup_keep_monthly),
        ] {
            check_range(name, v, 0, 10_000)?;
        }
        if let Some(to) = &self.backup_to {
            let to = to.trim().trim_end_matches('/');
            if to.is_empty()
                || (to.contains("://") && !to.starts_with("s3://") && !to.starts_with("file://"))
            {
                return Err(invalid(
                    "backup_to",
                    to,
                    "must be a local directory or s3://bucket/prefix",
                ));
            }
            let root = self.artifact_root();
            let root = root.trim_end_matches('/');
            if to == root || to.starts_with(&format!("{root}/")) {
                return Err(invalid(
                    "backup_to",
                    to,
                    format!("must not lie inside the artifact store {root}"),
                ));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return Err(invalid(
                "log_level",
                &self.log_level,
                "must be a tracing filter such as `info` or `slipway=debug`",
            ));
        }
        Ok(())
    }

    /// The metadata URL, with the default derived from `data_dir`.
    pub fn metadata_url(&self) -> String {
        self.metadata_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("slipway.db").display()))
    }

    /// The artifact root, with the default derived from `data_dir`.
    pub fn artifact_root(&self) -> String {
        self.artifact_root
            .clone()
            .unwrap_or_else(|| self.data_dir.join("artifacts").display().to_string())
    }

    /// The model cache directory, with the default derived from `data_dir`.
    pub fn model_cache_dir(&self) -> PathBuf {
        self.model_cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("model-cache"))
    }

    /// The retention policy of scheduled backups.
    pub fn backup_policy(&self) -> slipway_backup::Policy {
        let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        slipway_backup::Policy {
            keep_last: n(self.backup_keep_last),
            keep_daily: n(self.backup_keep_daily),
            keep_weekly: n(self.backup_keep_weekly),
            keep_monthly: n(self.backup_keep_monthly),
        }
    }

    /// How to reach S3 for backup locations (the store settings' endpoint and region).
    pub fn s3_options(&self) -> slipway_backup::S3Options {
        slipway_backup::S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
        }
    }

    /// Where a generated admin token is written once.
    pub fn initial_token_path(&self) -> PathBuf {
        self.data_dir.join("initial-admin-token")
    }

    /// The operator-supplied admin token, read from `admin_token` or `admin_token_file`.
    pub fn supplied_admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        if let Some(t) = &self.admin_token {
            return Ok(Some(t.clone()));
        }
        if let Some(path) = &self.admin_token_file {
            let text = read_secret_file(path)?;
            if text.len() < 16 {
                return Err(invalid(
                    "admin_token_file",
                    path.display(),
                    "token must be at least 16 characters",
                ));
            }
            return Ok(Some(Secret::new(text)));
        }
        Ok(None)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut value = match toml::Value::try_from(self) {
            Ok(v) => v,
            Err(e) => return format!("# could not render configuration: {e}\n"),
        };
        if let toml::Value::Table(t) = &mut value {
            t.insert(
                "metadata_url".into(),
                toml::Value::String(redact_url(&self.metadata_url())),
            );
            t.insert(
                "artifact_root".into(),
                toml::Value::String(self.artifact_root()),
            );
        }
        toml::to_string_pretty(&value).unwrap_or_default()
    }
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            invalid(
                "admin_token_file",
                path.display(),
                format!("cannot be read: {e}"),
            )
        })
}

/// Hides the password of a database URL (`postgres://u:secret@h/db` → `postgres://u:***@h/db`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        assert!(Config::default().metadata_url().starts_with("sqlite://"));
    }

    #[test]
    fn errors_name_the_setting() {
        let c = Config {
            max_page_size: 0,
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("max_page_size") && e.contains("between 1 and 50000"),
            "{e}"
        );
        let c = Config {
            metadata_url: Some("mysql://x".into()),
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("metadata_url"));
    }

    #[test]
    fn toml_file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slipway.toml");
        std::fs::write(&file, "max_page_size = 500\nlog_level = \"debug\"\n").unwrap();
        let args = ServerArgs {
            stores: StoreArgs {
                config_file: Some(file.clone()),
                ..Default::default()
            },
            server: ServerSettings {
                log_level: Some("warn".into()),
                ..Default::default()
            },
            backup: BackupSettings {
                backup_keep_daily: Some(3),
                ..Default::default()
            },
        };
        let c = args.load().unwrap();
        assert_eq!(c.max_page_size, 500);
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.backup_keep_daily, 3);
        assert_eq!(c.backup_policy().keep_daily, 3);
        std::fs::write(&file, "no_such_setting = 1\n").unwrap();
        let args = StoreArgs {
            config_file: Some(file),
            ..Default::default()
        };
        assert!(args
            .load()
            .unwrap_err()
            .to_string()
            .contains("no_such_setting"));
    }

    /// docs/configuration.md holds the table generated from the one
    /// declaration of the settings; on failure the expected table is printed.
    #[test]
    fn every_setting_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        let value = serde_json::to_value(Config::default()).unwrap();
        assert_eq!(value.as_object().unwrap().len(), SETTINGS.len());
        let table: Vec<String> = SETTINGS.iter().map(SettingDoc::markdown_row).collect();
        let missing: Vec<&String> = table
            .iter()
            .filter(|row| !doc.contains(row.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/configuration.md is out of date; its table should be:\n{}\n\nmissing rows:\n{}",
            table.join("\n"),
            missing
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    #[test]
    fn backup_settings_are_checked() {
        let bad = |c: Config, setting: &str, why: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(setting) && e.contains(why), "{e}");
        };
        bad(
            Config {
                backup_schedule: "every day".into(),
                ..Config::default()
            },
            "backup_schedule",
            "five fields",
        );
        bad(
            Config {
                backup_schedule: "0 0 30 2 *".into(),
                ..Config::default()
            },
            "backup_schedule",
            "never runs",
        );
        bad(
            Config {
                backup_keep_last: 10_001,
                ..Config::default()
            },
            "backup_keep_last",
            "between 0 and 10000",
        );
        bad(
            Config {
                artifact_root: Some("s3://bucket/slipway".into()),
                backup_to: Some("s3://bucket/slipway/backups".into()),
                ..Config::default()
            },
            "backup_to",
            "inside the artifact store",
        );
        bad(
            Config {
                backup_to: Some("gs://x".into()),
                ..Config::default()
            },
            "backup_to",
            "s3://",
        );
        Config {
            backup_to: Some("s3://backups/slipway".into()),
            backup_schedule: "@every 6h".into(),
            ..Config::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config {
            admin_token: Some(Secret::new("supersecretsupersecret")),
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("supersecret"));
        assert!(!c.to_redacted_toml().contains("supersecret"));
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
