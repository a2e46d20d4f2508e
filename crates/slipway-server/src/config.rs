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

/// The effective configuration after merging every source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`host:port`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// Directory for the embedded database, local artifacts and the initial admin token.
    pub data_dir: PathBuf,
    /// Metadata database: `sqlite://<path>` or `postgres://user@host/db`.
    /// Default: `sqlite://<data_dir>/slipway.db`.
    pub metadata_url: Option<String>,
    /// Artifact store root: a local directory or `s3://bucket/prefix`.
    /// Default: `<data_dir>/artifacts`.
    pub artifact_root: Option<String>,
    /// S3 endpoint URL for S3-compatible servers (MinIO, SeaweedFS); AWS when unset.
    pub s3_endpoint: Option<String>,
    /// S3 region (default from `AWS_REGION`, else `us-east-1`).
    pub s3_region: Option<String>,
    /// Which parts of the platform this process runs.
    pub role: Role,
    /// Largest JSON request body accepted by API routes, in bytes.
    pub max_json_body_bytes: u64,
    /// Largest single artifact upload, in bytes.
    pub max_artifact_bytes: u64,
    /// Largest `max_results` a search may ask for; larger requests get 400.
    pub max_page_size: u64,
    /// Admin token supplied by the operator (instead of a generated one).
    pub admin_token: Option<Secret>,
    /// File holding the admin token (e.g. a mounted Kubernetes secret).
    pub admin_token_file: Option<PathBuf>,
    /// Whether `/metrics` requires a token (scope `read`).
    pub metrics_require_token: bool,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`info`, `slipway=debug,tower_http=info`, ...).
    pub log_level: String,
    /// Seconds to let in-flight requests finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// Seconds an authenticated token stays cached (revocation delay).
    pub token_cache_seconds: u64,
    /// ONNX Runtime shared library (default: found from the project's `.venv`).
    pub ort_lib: Option<PathBuf>,
    /// Intra-op threads per loaded model (0: ONNX Runtime decides).
    pub intra_op_threads: u64,
    /// Graph optimization level for loaded models.
    pub graph_optimization: GraphOptimization,
    /// Local cache of model files, by content digest. Default `<data_dir>/model-cache`.
    pub model_cache_dir: Option<PathBuf>,
    /// How often deployments re-resolve their alias, in milliseconds (the
    /// longest delay before an alias move is served, on every replica).
    pub deployment_poll_ms: u64,
    /// Requests that may wait per deployment before 429 (default for deployments).
    pub inference_queue_capacity: u64,
    /// Largest batch per inference and per request (default for deployments).
    pub max_batch_size: u64,
}

/// Upper bound of `max_json_body_bytes` (1 GiB).
pub const MAX_JSON_BODY_LIMIT: u64 = 1 << 30;
/// Upper bound of `max_artifact_bytes` (1 TiB).
pub const MAX_ARTIFACT_LIMIT: u64 = 1 << 40;
/// Upper bound of `max_page_size` (MLflow's own ceiling for run searches).
pub const MAX_PAGE_SIZE_LIMIT: u64 = 50_000;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./slipway-data"),
            metadata_url: None,
            artifact_root: None,
            s3_endpoint: None,
            s3_region: None,
            role: Role::All,
            max_json_body_bytes: 16 << 20,
            max_artifact_bytes: 5 << 30,
            max_page_size: MAX_PAGE_SIZE_LIMIT,
            admin_token: None,
            admin_token_file: None,
            metrics_require_token: true,
            log_format: LogFormat::Json,
            log_level: "info,ort=warn".into(),
            shutdown_grace_seconds: 30,
            token_cache_seconds: 5,
            ort_lib: None,
            intra_op_threads: 1,
            graph_optimization: GraphOptimization::All,
            model_cache_dir: None,
            deployment_poll_ms: 1000,
            inference_queue_capacity: 256,
            max_batch_size: 64,
        }
    }
}

/// Command-line flags and `SLIPWAY_*` variables. Every field is optional so
/// that only what the operator gave overrides the TOML file and the defaults.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ConfigArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long = "config", env = "SLIPWAY_CONFIG", global = true)]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SLIPWAY_LISTEN", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./slipway-data].
    #[arg(long, env = "SLIPWAY_DATA_DIR", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Metadata database URL [default: sqlite://<data-dir>/slipway.db].
    #[arg(long, env = "SLIPWAY_METADATA_URL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// Artifact root: a directory or s3://bucket/prefix [default: <data-dir>/artifacts].
    #[arg(long, env = "SLIPWAY_ARTIFACT_ROOT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_root: Option<String>,
    /// S3 endpoint URL for S3-compatible servers.
    #[arg(long, env = "SLIPWAY_S3_ENDPOINT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: $AWS_REGION or us-east-1].
    #[arg(long, env = "SLIPWAY_S3_REGION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// Role of this process: all, registry or serving [default: all].
    #[arg(long, env = "SLIPWAY_ROLE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Largest JSON request body, bytes [default: 16777216].
    #[arg(long, env = "SLIPWAY_MAX_JSON_BODY_BYTES", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_json_body_bytes: Option<u64>,
    /// Largest artifact upload, bytes [default: 5368709120].
    #[arg(long, env = "SLIPWAY_MAX_ARTIFACT_BYTES", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_artifact_bytes: Option<u64>,
    /// Largest max_results of a search [default: 50000].
    #[arg(long, env = "SLIPWAY_MAX_PAGE_SIZE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_page_size: Option<u64>,
    /// Admin token to use instead of a generated one.
    #[arg(
        long,
        env = "SLIPWAY_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    #[serde(skip)]
    pub admin_token: Option<Secret>,
    /// File holding the admin token.
    #[arg(long, env = "SLIPWAY_ADMIN_TOKEN_FILE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// Whether /metrics requires a token [default: true].
    #[arg(long, env = "SLIPWAY_METRICS_REQUIRE_TOKEN", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_require_token: Option<bool>,
    /// Log format: json or text [default: json].
    #[arg(long, env = "SLIPWAY_LOG_FORMAT", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter [default: info,ort=warn].
    #[arg(long, env = "SLIPWAY_LOG_LEVEL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Seconds to drain in-flight requests on SIGTERM [default: 30].
    #[arg(long, env = "SLIPWAY_SHUTDOWN_GRACE_SECONDS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Seconds a verified token stays cached [default: 5].
    #[arg(long, env = "SLIPWAY_TOKEN_CACHE_SECONDS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_cache_seconds: Option<u64>,
    /// ONNX Runtime library path [default: from the project's .venv].
    #[arg(long, env = "SLIPWAY_ORT_LIB", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ort_lib: Option<PathBuf>,
    /// Intra-op threads per model, 0 = ONNX Runtime decides [default: 1].
    #[arg(long, env = "SLIPWAY_INTRA_OP_THREADS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intra_op_threads: Option<u64>,
    /// Graph optimization: disable, basic, extended, all [default: all].
    #[arg(long, env = "SLIPWAY_GRAPH_OPTIMIZATION", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_optimization: Option<GraphOptimization>,
    /// Model file cache [default: <data-dir>/model-cache].
    #[arg(long, env = "SLIPWAY_MODEL_CACHE_DIR", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_cache_dir: Option<PathBuf>,
    /// Alias re-resolution interval, ms [default: 1000].
    #[arg(long, env = "SLIPWAY_DEPLOYMENT_POLL_MS", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_poll_ms: Option<u64>,
    /// Queue capacity per deployment [default: 256].
    #[arg(long, env = "SLIPWAY_INFERENCE_QUEUE_CAPACITY", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_queue_capacity: Option<u64>,
    /// Largest batch per inference [default: 64].
    #[arg(long, env = "SLIPWAY_MAX_BATCH_SIZE", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_size: Option<u64>,
}

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

impl ConfigArgs {
    /// Merges defaults, the TOML file and these flags into a validated [`Config`].
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &self.config_file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist (from --config / SLIPWAY_CONFIG)",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Serialized::defaults(self));
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        if let Some(token) = &self.admin_token {
            config.admin_token = Some(token.clone());
        }
        config.validate()?;
        Ok(config)
    }
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
        check_range("intra_op_threads", self.intra_op_threads, 0, 256)?;
        check_range("deployment_poll_ms", self.deployment_poll_ms, 100, 600_000)?;
        check_range(
            "inference_queue_capacity",
            self.inference_queue_capacity,
            1,
            100_000,
        )?;
        check_range("max_batch_size", self.max_batch_size, 1, 65_536)?;
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
        let args = ConfigArgs {
            config_file: Some(file.clone()),
            log_level: Some("warn".into()),
            ..Default::default()
        };
        let c = args.load().unwrap();
        assert_eq!(c.max_page_size, 500);
        assert_eq!(c.log_level, "warn");
        std::fs::write(&file, "no_such_setting = 1\n").unwrap();
        let args = ConfigArgs {
            config_file: Some(file),
            ..Default::default()
        };
        assert!(args
            .load()
            .unwrap_err()
            .to_string()
            .contains("no_such_setting"));
    }

    #[test]
    fn every_setting_is_documented() {
        let doc = include_str!("../../../docs/configuration.md");
        let value = serde_json::to_value(Config::default()).unwrap();
        for key in value.as_object().unwrap().keys() {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "docs/configuration.md lacks setting `{key}`"
            );
        }
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
