//! The `slipway` binary: parses the command line and hands over to the
//! server library ([`slipway_server`]), to [`ops`] for backups, store
//! migration and `doctor`, or, for commands that talk to a running server,
//! to [`remote`]. Each subcommand takes only its own flags: `up`, `config
//! check` and `doctor` the server settings, `token` and `backup` the store
//! settings, the remote commands a URL and a token.

mod ops;
mod remote;
mod rollout;
mod table;

use anyhow::Context;
use clap::{Parser, Subcommand};
use slipway_server::config::{ServerArgs, StoreArgs};
use slipway_server::{auth, telemetry, Application};
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the request path allocates many small,
/// short-lived buffers, and profiles showed glibc's malloc/free at ~20% of
/// the serving CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Slipway: MLflow-compatible tracking and registry, artifact store and model serving in one binary.
#[derive(Parser)]
#[command(name = "slipway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the platform (role from --role; `all` by default).
    Up {
        /// Do not register and deploy the demo model.
        #[arg(long, env = "SLIPWAY_NO_DEMO")]
        no_demo: bool,
        /// Restore this backup into the configured stores before starting, when they are empty (a location's newest complete backup, or <location>/backups/<id>); stores restored by an earlier start are left alone.
        #[arg(long, env = "SLIPWAY_RESTORE_FROM", value_name = "SRC")]
        restore_from: Option<String>,
        #[command(flatten)]
        settings: ServerArgs,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create or update a deployment on a running server and wait until it serves.
    Deploy(remote::DeployArgs),
    /// List, show or delete deployments on a running server.
    Deployment {
        #[command(subcommand)]
        command: remote::DeploymentCommand,
    },
    /// Send JSON or CSV rows to a deployment (MLflow scoring protocol) and print the predictions.
    Predict(remote::PredictArgs),
    /// Start, watch and act on rollouts (canary, A/B, shadow) on a running server.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// Manage API tokens directly in the metadata store.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Back up, list, verify, restore and prune backups of metadata and artifacts.
    Backup {
        #[command(subcommand)]
        command: ops::BackupCommand,
    },
    /// Copy every entity and artifact from one store configuration to another (SQLite + local directory ↔ PostgreSQL + S3) through the backup format.
    Migrate(ops::MigrateArgs),
    /// Check the configuration, the stores, migrations, clocks, ONNX Runtime, disk and deployments; exit non-zero on FAIL.
    Doctor(ops::DoctorArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted); exit non-zero if invalid.
    Check {
        #[command(flatten)]
        settings: ServerArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret once.
    Create {
        /// Name of the token (who or what uses it).
        #[arg(long)]
        name: String,
        /// Scopes: read, write, predict, admin (repeat or comma-separate).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// List tokens (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        stores: StoreArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// Token id, as shown by `token list`.
        id: String,
        #[command(flatten)]
        stores: StoreArgs,
    },
}

fn main() -> ExitCode {
    // before anything is allocated: the setting (`transparent_huge_pages`,
    // off by default) is applied again once the configuration is read
    slipway_runtime::worker::set_transparent_huge_pages(false);
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { settings },
        } => {
            let config = settings.load()?;
            print!("{}", config.to_redacted_toml());
            println!("# configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Command::Up {
            no_demo,
            restore_from,
            settings,
        } => done(up(settings, no_demo, restore_from).await),
        Command::Deploy(args) => done(remote::deploy(args).await),
        Command::Deployment { command } => done(remote::deployment(command).await),
        Command::Predict(args) => done(remote::predict(args).await),
        Command::Rollout { command } => done(rollout::run(command).await),
        Command::Token { command } => done(token(command).await),
        Command::Backup { command } => ops::backup(command).await,
        Command::Migrate(args) => ops::migrate(args).await,
        Command::Doctor(args) => ops::doctor(args).await,
    }
}

async fn up(
    settings: ServerArgs,
    no_demo: bool,
    restore_from: Option<String>,
) -> anyhow::Result<()> {
    let config = settings.load()?;
    telemetry::init_logging(&config);
    if let Some(src) = &restore_from {
        let progress = slipway_backup::Progress::default();
        match slipway_server::backups::restore_before_start(&config, src, &progress).await? {
            slipway_server::backups::StartRestore::Restored(s) => {
                println!(
                    "Restored backup {} ({} rows, {} artifact files) in {:.1} s",
                    s.backup_id,
                    s.rows,
                    s.artifacts,
                    s.duration_ms as f64 / 1000.0
                );
            }
            slipway_server::backups::StartRestore::AlreadyRestored(id) => {
                tracing::info!(backup_id = %id, "stores already restored from this backup; starting");
            }
        }
    }
    let mut app = Application::build(config).await?;
    let url = format!("http://{}", app.addr());
    // answer health checks while deployments load; readiness waits for them
    app.start_http();
    app.start_serving().await?;
    // A restored installation is what the backup holds: no demo added.
    if !no_demo && restore_from.is_none() {
        app.install_demo().await?;
    }
    let state = app.state();
    println!(
        "Slipway {} is up (role: {})",
        env!("CARGO_PKG_VERSION"),
        format!("{:?}", state.config.role).to_lowercase()
    );
    println!("  URL:          {url}");
    if state.config.role != slipway_server::config::Role::Serving {
        let mlflow_ui = if state.mlflow_ui.is_some() {
            "MLflow UI"
        } else {
            "MLflow UI not installed: run scripts/ensure-mlflow-ui.sh"
        };
        println!(
            "  UI:           {url}/ ({mlflow_ui}), console {url}/console/ (sign in with the admin token)"
        );
    }
    let origin = app.admin_token_origin();
    println!("  Admin token:  {}", origin.describe());
    println!(
        "  MLflow:       export MLFLOW_TRACKING_URI={url} MLFLOW_TRACKING_TOKEN=<admin token>"
    );
    if let Some(dep) = state.serving.get(slipway_server::demo::DEMO_NAME) {
        let status = dep.status();
        println!(
            "  Demo model:   iris v{} ({})",
            status.serving_version.unwrap_or_default(),
            status.state
        );
        println!("  Predict:      curl -s -H \"Authorization: Bearer {}\" -H 'Content-Type: application/json' -d '{{\"inputs\":[{{\"name\":\"float_input\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[5.1,3.5,1.4,0.2]}}]}}' {url}/v2/models/iris/infer", origin.shell_expression());
    }
    println!("SLIPWAY_LISTENING={url}");
    app.run_until_stopped().await
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scopes,
            stores,
        } => {
            let store = slipway_server::open_existing_metadata_store(&stores.load()?).await?;
            let (secret, rec) = auth::create_token(store.as_ref(), &name, &scopes)
                .await
                .context("creating token")?;
            println!("id:     {}", rec.id);
            println!("scopes: {}", rec.scopes.join(","));
            println!("token:  {secret}");
            println!("(the token is shown once; only its hash is stored)");
        }
        TokenCommand::List { json, stores } => {
            let store = slipway_server::open_existing_metadata_store(&stores.load()?).await?;
            let tokens = store.list_tokens().await?;
            if json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(slipway_server::routes::tokens::token_json)
                    .collect();
                println!("{}", serde_json::json!({ "tokens": list }));
                return Ok(());
            }
            let rows = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.name.clone(),
                        t.scopes.join(","),
                        if t.revoked_at.is_some() {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                    ]
                })
                .collect();
            table::print(&["ID", "NAME", "SCOPES", "STATUS"], rows);
        }
        TokenCommand::Revoke { id, stores } => {
            let store = slipway_server::open_existing_metadata_store(&stores.load()?).await?;
            store.revoke_token(&id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
