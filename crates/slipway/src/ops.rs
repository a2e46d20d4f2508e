//! Operations commands: `backup create|list|verify|restore|prune`,
//! `migrate` and `doctor`. They work on the stores directly (no server
//! needed; the server may be running). People get progress on stderr and a
//! summary on stdout; `--json` prints one JSON document on stdout for
//! scripts. Each command takes only its own flags; the store settings come
//! as in `slipway up` (flags, `SLIPWAY_*` variables, `--config` TOML).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use slipway_backup::retention::{PruneOptions, DEFAULT_INCOMPLETE_GRACE_MS};
use slipway_backup::{
    human_bytes, parse_bytes, split_source, CreateOptions, Location, Policy, Progress,
    RestoreOptions, RunTracker, S3Options, Source, StartedBy, SystemClock, Target, VerifyOptions,
};
use slipway_metadata::sql::SqlOptions;
use slipway_server::config::{Config, ServerArgs, StoreArgs};

use crate::table;

/// `slipway backup ...`
#[derive(Subcommand)]
pub enum BackupCommand {
    /// Take a backup of the stores (the server may keep running and writing).
    Create(CreateArgs),
    /// List the backups at a location: size, age, whether complete and verified.
    List(ListArgs),
    /// Restore a backup into a scratch store and check counts, every digest and what every model version and deployment needs; exit non-zero on any problem.
    Verify(VerifyArgs),
    /// Restore a backup into the configured stores (which must be empty unless --force).
    Restore(RestoreArgs),
    /// Delete the backups a retention policy does not keep, and the blobs only they used.
    Prune(PruneArgs),
}

/// Retention counts.
#[derive(Args, Debug, Clone, Default)]
pub struct KeepArgs {
    /// Keep this many newest backups.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep the newest backup of each of this many days (UTC) that have one.
    #[arg(long)]
    keep_daily: Option<u32>,
    /// Keep the newest backup of each of this many ISO weeks.
    #[arg(long)]
    keep_weekly: Option<u32>,
    /// Keep the newest backup of each of this many months.
    #[arg(long)]
    keep_monthly: Option<u32>,
}

impl KeepArgs {
    fn policy(&self) -> Option<Policy> {
        if self.keep_last.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
        {
            return None;
        }
        Some(Policy {
            keep_last: self.keep_last.unwrap_or(0),
            keep_daily: self.keep_daily.unwrap_or(0),
            keep_weekly: self.keep_weekly.unwrap_or(0),
            keep_monthly: self.keep_monthly.unwrap_or(0),
        })
    }
}

/// How to reach an S3 backup location (credentials from the AWS_* variables).
#[derive(Args, Debug, Clone, Default)]
pub struct S3Args {
    /// S3 endpoint URL for S3-compatible servers.
    #[arg(long, env = "SLIPWAY_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "SLIPWAY_S3_REGION")]
    s3_region: Option<String>,
}

impl S3Args {
    fn options(&self) -> S3Options {
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
        }
    }
}

/// `backup create`.
#[derive(Args)]
pub struct CreateArgs {
    /// Where to write: a local directory or s3://bucket/prefix (outside the artifact store).
    #[arg(long = "to", value_name = "DEST")]
    to: String,
    /// Verify the backup right after taking it.
    #[arg(long)]
    verify: bool,
    /// Apply this retention policy after a successful backup (any of --keep-*).
    #[command(flatten)]
    keep: KeepArgs,
    /// Upper bound of artifact bytes copied per second, e.g. 50MiB.
    #[arg(long, value_parser = parse_bytes)]
    max_rate: Option<u64>,
    /// Scratch directory for the SQLite snapshot copy and the metadata files [default: the system temporary directory].
    #[arg(long)]
    scratch_dir: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stores: StoreArgs,
}

/// `backup list`.
#[derive(Args)]
pub struct ListArgs {
    /// The backup location: a local directory or s3://bucket/prefix.
    location: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    s3: S3Args,
}

/// `backup verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The backup: a location (its newest complete backup) or <location>/backups/<id>.
    src: String,
    /// Do not record the result next to the manifest.
    #[arg(long)]
    no_record: bool,
    /// Scratch directory for the scratch store [default: the system temporary directory].
    #[arg(long)]
    scratch_dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    s3: S3Args,
}

/// `backup restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The backup: a location (its newest complete backup) or <location>/backups/<id>.
    src: String,
    /// Restore into stores that hold data: replace every metadata table, overwrite artifacts at the same paths.
    #[arg(long)]
    force: bool,
    /// Scratch directory [default: the system temporary directory].
    #[arg(long)]
    scratch_dir: Option<PathBuf>,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stores: StoreArgs,
}

/// `backup prune`.
#[derive(Args)]
pub struct PruneArgs {
    /// The backup location.
    location: String,
    /// The policy (at least one --keep-*; all 0 keeps everything).
    #[command(flatten)]
    keep: KeepArgs,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    stores: StoreArgs,
}

/// `migrate`.
#[derive(Args)]
pub struct MigrateArgs {
    /// TOML file naming the source stores (`data_dir`, or `metadata_url` + `artifact_root`, `s3_endpoint`, `s3_region`).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// TOML file naming the target stores (same keys); they must be empty unless --force.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Migrate into target stores that hold data (replacing their metadata).
    #[arg(long)]
    force: bool,
    /// Keep the intermediate backup in this directory (a location usable with `backup restore`) instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    via: Option<PathBuf>,
    /// Print a JSON summary.
    #[arg(long)]
    json: bool,
}

/// `doctor`.
#[derive(Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: ServerArgs,
}

/// Logging for these commands: warnings only unless SLIPWAY_LOG_LEVEL says
/// otherwise (the chart sets it, so a CronJob logs its JSON lines), text on
/// a terminal, JSON otherwise unless SLIPWAY_LOG_FORMAT says.
fn init_logging() {
    let mut c = Config {
        log_level: std::env::var("SLIPWAY_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
        ..Config::default()
    };
    c.log_format = match std::env::var("SLIPWAY_LOG_FORMAT").as_deref() {
        Ok("json") => slipway_server::config::LogFormat::Json,
        Ok("text") => slipway_server::config::LogFormat::Text,
        _ if std::io::stderr().is_terminal() => slipway_server::config::LogFormat::Text,
        _ => slipway_server::config::LogFormat::Json,
    };
    slipway_server::telemetry::init_logging(&c);
}

/// Prints progress on stderr while an operation runs: a line rewritten in
/// place on a terminal, a line every ten seconds otherwise.
struct Reporter {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    fn start(progress: Arc<Progress>, verb: &'static str) -> Reporter {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(10)
        };
        let task = tokio::spawn(async move {
            let mut shown = false;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => break,
                }
                let line = describe(verb, &progress);
                if tty {
                    eprint!("\r\x1b[2K{line}");
                } else {
                    eprintln!("{line}");
                }
                shown = true;
            }
            if tty && shown {
                eprintln!();
            }
        });
        Reporter { stop, task }
    }

    async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn describe(verb: &str, p: &Progress) -> String {
    let r = p.read();
    let secs = r.elapsed.as_secs();
    let mut line = format!(
        "{verb}: {} [{secs}s]",
        if r.phase.is_empty() {
            "starting"
        } else {
            &r.phase
        }
    );
    if r.rows > 0 {
        line.push_str(&format!(", {} rows", r.rows));
    }
    if r.files.1 > 0 || r.bytes.0 > 0 {
        line.push_str(&format!(
            ", {}/{} files, {} of {} at {}/s",
            r.files.0,
            r.files.1,
            human_bytes(r.bytes.0),
            human_bytes(r.bytes.1),
            human_bytes(r.rate as u64)
        ));
    }
    if r.bytes_reused > 0 {
        line.push_str(&format!(
            ", {} already in earlier backups",
            human_bytes(r.bytes_reused)
        ));
    }
    line
}

async fn open_source(config: &Config) -> anyhow::Result<Source> {
    let store = slipway_server::open_sql_store(
        config,
        SqlOptions {
            create_if_missing: false,
            migrate: false,
            max_connections: 2,
            ..SqlOptions::default()
        },
    )
    .await?;
    let artifacts = slipway_server::open_artifact_store(config).await?;
    slipway_server::check_artifact_store(&artifacts)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Source {
        metadata_url: config.metadata_url(),
        store: Arc::new(store),
        artifacts,
    })
}

async fn open_target(config: &Config) -> anyhow::Result<Target> {
    let store = slipway_server::open_sql_store(config, SqlOptions::default()).await?;
    let artifacts = slipway_server::open_artifact_store(config).await?;
    slipway_server::check_artifact_store(&artifacts)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Target { store, artifacts })
}

/// Runs `slipway backup ...`.
pub async fn backup(command: BackupCommand) -> anyhow::Result<ExitCode> {
    init_logging();
    match command {
        BackupCommand::Create(args) => create(args).await,
        BackupCommand::List(args) => list(args).await,
        BackupCommand::Verify(args) => verify(args).await,
        BackupCommand::Restore(args) => restore(args).await,
        BackupCommand::Prune(args) => prune(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let config = args.stores.load()?;
    let source = open_source(&config).await?;
    // From here on the run is recorded in the store, whatever its outcome
    // (but a backup refused because another one runs is not a run).
    let holder = slipway_server::bootstrap::holder_id();
    let mut run = RunTracker::start(StartedBy::Cli, &holder, &args.to, &SystemClock);
    let taken = take_backup(&args, &config, &source, &holder, &mut run).await;
    let (summary, json, code) = match taken {
        Err(e) if is_busy(&e) => return Err(e),
        Err(e) => {
            run.finish(source.store.as_ref(), Some(format!("{e:#}")), &SystemClock)
                .await;
            return Err(e);
        }
        Ok(done) => done,
    };
    let verification_failed = json
        .get("verification")
        .is_some_and(|v| v["ok"] == serde_json::Value::Bool(false));
    let error = verification_failed.then(|| {
        format!(
            "verification failed: {}",
            json["verification"]["problems"]
                .as_array()
                .map(|p| p
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join("; "))
                .unwrap_or_default()
        )
    });
    run.finish(source.store.as_ref(), error, &SystemClock).await;
    if args.json {
        println!("{json}");
    } else {
        let m = &summary.manifest;
        println!(
            "backup {} complete in {:.1} s",
            m.backup_id,
            summary.duration_ms as f64 / 1000.0
        );
        println!(
            "  location:   {}",
            json["path"].as_str().unwrap_or_default()
        );
        let counts = m.counts();
        let n = |t: &str| counts.get(t).copied().unwrap_or(0);
        println!(
            "  metadata:   {} experiments, {} runs, {} metrics, {} registered models, {} model versions, {} deployments",
            n("experiments"),
            n("runs"),
            n("metrics"),
            n("registered_models"),
            n("model_versions"),
            n("deployments")
        );
        let reused = m.artifacts.blobs.saturating_sub(m.artifacts.copied_blobs);
        println!(
            "  artifacts:  {} files ({}) in {} blobs: {} copied now ({}){}",
            m.artifacts.files,
            human_bytes(m.artifacts.bytes),
            m.artifacts.blobs,
            m.artifacts.copied_blobs,
            human_bytes(m.artifacts.copied_bytes),
            if reused > 0 {
                format!(", {reused} already in earlier backups")
            } else {
                String::new()
            }
        );
        if m.artifacts.missing_files > 0 {
            println!(
                "  WARNING:    {} recorded artifact(s) were missing from the store, e.g. {}",
                m.artifacts.missing_files,
                m.artifacts
                    .missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !m.artifacts.changed_during_backup.is_empty() {
            println!(
                "  note:       {} artifact(s) were overwritten during the backup; their new content is in it",
                m.artifacts.changed_during_backup.len()
            );
        }
        if let Some(v) = json.get("verification") {
            print_problems("verification", v);
        }
        if let Some(p) = json.get("prune") {
            println!(
                "  prune:      {} backup(s) removed, {} blob(s) ({}) freed",
                p["removed"].as_array().map_or(0, Vec::len),
                p["removed_blobs"],
                human_bytes(p["freed_bytes"].as_u64().unwrap_or(0))
            );
        }
    }
    Ok(code)
}

/// Whether `e` is a backup refused because another backup or prune of the
/// store holds its lease.
fn is_busy(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<slipway_backup::BackupError>(),
        Some(slipway_backup::BackupError::Busy { .. })
    )
}

/// The backup, its verification and the prune of `backup create`; returns
/// the summary, the JSON document and the exit status.
async fn take_backup(
    args: &CreateArgs,
    config: &Config,
    source: &Source,
    holder: &str,
    run: &mut RunTracker,
) -> anyhow::Result<(slipway_backup::CreateSummary, serde_json::Value, ExitCode)> {
    let dest = Location::open(&args.to, &config.s3_options(), true)?;
    let opts = CreateOptions {
        scratch_dir: args.scratch_dir.clone(),
        max_rate: args.max_rate,
        holder: holder.to_string(),
        ..Default::default()
    };
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), "backup");
    let res = slipway_backup::create(source, &dest, &opts, &progress, &SystemClock).await;
    reporter.finish().await;
    let summary = res.with_context(|| format!("backup to {} failed", dest.uri()))?;
    run.backed_up(&summary);
    let mut json = summary.to_json();
    let mut code = ExitCode::SUCCESS;
    if args.verify {
        let progress = Arc::new(Progress::default());
        let reporter = Reporter::start(progress.clone(), "verify");
        let vopts = VerifyOptions {
            scratch_dir: args.scratch_dir.clone(),
            ..Default::default()
        };
        let report =
            slipway_backup::verify(&dest, &summary.manifest, &vopts, &progress, &SystemClock).await;
        reporter.finish().await;
        let report = report?;
        run.verified(&report);
        if !report.ok() {
            code = ExitCode::FAILURE;
        }
        json["verification"] = report.to_json();
    }
    if let Some(policy) = args.keep.policy() {
        let report = slipway_backup::prune(
            &dest,
            &policy,
            &PruneOptions {
                dry_run: false,
                incomplete_grace_ms: DEFAULT_INCOMPLETE_GRACE_MS,
                lease: Some((source.store.clone(), holder.to_string())),
            },
            &SystemClock,
        )
        .await?;
        run.pruned(&report);
        json["prune"] = report.to_json();
    }
    Ok((summary, json, code))
}

fn print_problems(what: &str, report: &serde_json::Value) {
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    if problems.is_empty() {
        println!("  {what}: OK");
    } else {
        println!("  {what}: FAILED, {} problem(s):", problems.len());
        for p in problems {
            println!("    - {}", p.as_str().unwrap_or_default());
        }
    }
    for w in report["warnings"].as_array().cloned().unwrap_or_default() {
        println!("    warning: {}", w.as_str().unwrap_or_default());
    }
}

fn age(ms: i64) -> String {
    let s = (slipway_core::now_millis() - ms).max(0) / 1000;
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let loc = Location::open(&args.location, &args.s3.options(), false)?;
    let infos = loc.list().await?;
    if args.json {
        let list: Vec<serde_json::Value> = infos
            .iter()
            .map(|b| {
                serde_json::json!({
                    "backup_id": b.id,
                    "complete": b.is_complete(),
                    "created_at": b.created_at_ms.map(slipway_backup::rfc3339),
                    "created_at_ms": b.created_at_ms,
                    "size_bytes": b.manifest.as_ref().map(|m| m.total_bytes()),
                    "format_version": b.manifest.as_ref().map(|m| m.format_version),
                    "counts": b.manifest.as_ref().map(|m| m.counts()),
                    "manifest_error": b.manifest_error,
                    "verification": b.verification.as_ref().map(|v| serde_json::json!({
                        "ok": v.ok,
                        "verified_at": slipway_backup::rfc3339(v.verified_at_ms),
                        "problems": v.problems,
                    })),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "location": loc.uri(), "backups": list })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows = infos
        .iter()
        .map(|b| {
            let status = match (&b.manifest, &b.manifest_error) {
                (Some(_), _) => "complete".to_string(),
                (None, Some(e)) => format!("unreadable manifest ({e})"),
                (None, None) => "incomplete (interrupted or running)".to_string(),
            };
            let verified = match &b.verification {
                None if b.is_complete() => "never".to_string(),
                None => "-".to_string(),
                Some(v) if v.ok => format!("OK {} ago", age(v.verified_at_ms)),
                Some(v) => format!(
                    "FAILED {} ago ({} problems)",
                    age(v.verified_at_ms),
                    v.problems.len()
                ),
            };
            vec![
                b.id.clone(),
                b.created_at_ms
                    .map(slipway_backup::rfc3339)
                    .unwrap_or_default(),
                b.created_at_ms.map(age).unwrap_or_default(),
                b.manifest
                    .as_ref()
                    .map(|m| human_bytes(m.total_bytes()))
                    .unwrap_or_else(|| "-".into()),
                status,
                verified,
            ]
        })
        .collect();
    println!("backups at {}", loc.uri());
    table::print(
        &["ID", "CREATED", "AGE", "SIZE", "STATUS", "VERIFIED"],
        rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (location, id) = split_source(&args.src);
    let loc = Location::open(&location, &args.s3.options(), false)?;
    let manifest = loc.resolve(id.as_deref()).await?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), "verify");
    let opts = VerifyOptions {
        scratch_dir: args.scratch_dir,
        record: !args.no_record,
        ..Default::default()
    };
    let report = slipway_backup::verify(&loc, &manifest, &opts, &progress, &SystemClock).await;
    reporter.finish().await;
    let report = report?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!(
            "backup {}: {} ({} rows restored, {} blobs / {} re-hashed, {} model versions, {} deployments checked in {:.1} s)",
            report.backup_id,
            if report.ok() { "OK" } else { "FAILED" },
            report.rows,
            report.blobs,
            human_bytes(report.bytes),
            report.model_versions,
            report.deployments,
            report.duration_ms as f64 / 1000.0
        );
        for p in &report.problems {
            println!("  problem: {p}");
        }
        for w in &report.warnings {
            println!("  warning: {w}");
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = args.stores.load()?;
    let (location, id) = split_source(&args.src);
    let loc = Location::open(&location, &config.s3_options(), false)?;
    let manifest = loc.resolve(id.as_deref()).await?;
    let target = open_target(&config).await?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), "restore");
    let opts = RestoreOptions {
        force: args.force,
        scratch_dir: args.scratch_dir,
        ..Default::default()
    };
    let res = slipway_backup::restore(&loc, &manifest, &target, &opts, &progress).await;
    reporter.finish().await;
    let summary = res?;
    target.store.close().await;
    if args.json {
        println!("{}", summary.to_json());
    } else {
        println!(
            "restored backup {} in {:.1} s: {} rows, {} artifact files ({})",
            summary.backup_id,
            summary.duration_ms as f64 / 1000.0,
            summary.rows,
            summary.artifacts,
            human_bytes(summary.bytes)
        );
        println!(
            "  into metadata {} and artifacts {}",
            slipway_server::config::redact_url(&config.metadata_url()),
            config.artifact_root()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let Some(policy) = args.keep.policy() else {
        anyhow::bail!(
            "give a policy: --keep-last, --keep-daily, --keep-weekly and/or --keep-monthly"
        );
    };
    let config = args.stores.load()?;
    let source = open_source(&config).await?;
    let loc = Location::open(&args.location, &config.s3_options(), false)?;
    let report = slipway_backup::prune(
        &loc,
        &policy,
        &PruneOptions {
            dry_run: args.dry_run,
            incomplete_grace_ms: DEFAULT_INCOMPLETE_GRACE_MS,
            lease: Some((source.store.clone(), slipway_server::bootstrap::holder_id())),
        },
        &SystemClock,
    )
    .await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        println!(
            "kept {} backup(s); {verb} {} backup(s), {} incomplete one(s) and {} blob(s) ({})",
            report.kept.len(),
            report.removed.len(),
            report.removed_incomplete.len(),
            report.removed_blobs,
            human_bytes(report.freed_bytes)
        );
        for id in &report.removed {
            println!("  {verb} {id}");
        }
        if let Some(why) = &report.sweep_skipped {
            println!("  blobs not swept: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads a TOML store configuration for `migrate` (nothing from the
/// environment but S3 credentials).
fn load_file(path: &std::path::Path, which: &str) -> anyhow::Result<Config> {
    StoreArgs {
        config_file: Some(path.to_path_buf()),
        ..Default::default()
    }
    .load()
    .with_context(|| format!("--{which} {}", path.display()))
}

/// Runs `slipway migrate`.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let from = load_file(&args.from, "from")?;
    let to = load_file(&args.to, "to")?;
    if from.metadata_url() == to.metadata_url() {
        anyhow::bail!(
            "--from and --to name the same metadata store ({})",
            slipway_server::config::redact_url(&to.metadata_url())
        );
    }
    let source = open_source(&from).await?;
    let target = open_target(&to).await?;
    if !args.force {
        if let Some(what) = slipway_backup::restore::describe_contents(&target).await? {
            anyhow::bail!("the target stores are not empty ({what}); migrate into an empty data dir / database and artifact prefix, or pass --force");
        }
    }
    let tmp;
    let via = match &args.via {
        Some(dir) => dir.clone(),
        None => {
            tmp =
                tempfile::tempdir().context("creating a temporary directory for the migration")?;
            tmp.path().to_path_buf()
        }
    };
    let loc = Location::open(
        via.to_str().unwrap_or_default(),
        &S3Options::default(),
        true,
    )?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), "migrate (backup)");
    let opts = CreateOptions {
        holder: slipway_server::bootstrap::holder_id(),
        ..Default::default()
    };
    let res = slipway_backup::create(&source, &loc, &opts, &progress, &SystemClock).await;
    reporter.finish().await;
    let backup = res.context("backing up the source")?;
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), "migrate (verify)");
    let report = slipway_backup::verify(
        &loc,
        &backup.manifest,
        &VerifyOptions::default(),
        &progress,
        &SystemClock,
    )
    .await;
    reporter.finish().await;
    let report = report?;
    if !report.ok() {
        anyhow::bail!(
            "the source does not back up cleanly; nothing was written to the target:\n  {}",
            report.problems.join("\n  ")
        );
    }
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(progress.clone(), "migrate (restore)");
    let ropts = RestoreOptions {
        force: args.force,
        ..Default::default()
    };
    let res = slipway_backup::restore(&loc, &backup.manifest, &target, &ropts, &progress).await;
    reporter.finish().await;
    let restored = res.context("restoring into the target")?;
    target.store.close().await;
    let json = serde_json::json!({
        "from": {"metadata_url": slipway_server::config::redact_url(&from.metadata_url()), "artifact_root": from.artifact_root()},
        "to": {"metadata_url": slipway_server::config::redact_url(&to.metadata_url()), "artifact_root": to.artifact_root()},
        "backup": backup.to_json(),
        "restore": restored.to_json(),
        "via": args.via.as_ref().map(|p| p.display().to_string()),
    });
    if args.json {
        println!("{json}");
    } else {
        println!(
            "migrated {} rows and {} artifact files ({}) from {} to {}",
            restored.rows,
            restored.artifacts,
            human_bytes(restored.bytes),
            json["from"]["metadata_url"].as_str().unwrap_or_default(),
            json["to"]["metadata_url"].as_str().unwrap_or_default()
        );
        if let Some(v) = &args.via {
            println!("  the intermediate backup stays in {}", v.display());
        }
        println!(
            "  writes made to the source after the snapshot ({}) are not in the target",
            slipway_backup::rfc3339(backup.manifest.snapshot.taken_at_ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `slipway doctor`.
pub async fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let checks = slipway_server::doctor::run(args.settings.load()).await;
    let failed = checks
        .iter()
        .any(|c| c.status == slipway_server::doctor::Status::Fail);
    if args.json {
        println!("{}", serde_json::json!({ "ok": !failed, "checks": checks }));
    } else {
        for c in &checks {
            println!("{:<5} {:<17} {}", c.status.label(), c.name, c.detail);
            if let Some(h) = &c.hint {
                println!("{:<5} {:<17} → {h}", "", "");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
