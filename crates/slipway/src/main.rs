//! The `slipway` binary: parses the command line and hands over to the
//! server library. Nothing else lives here.

use anyhow::Context;
use clap::{Parser, Subcommand};
use slipway_server::config::ConfigArgs;
use slipway_server::{auth, telemetry, Application};
use std::process::ExitCode;

/// Slipway: MLflow-compatible tracking and registry, artifact store and model serving in one binary.
#[derive(Parser)]
#[command(name = "slipway", version, about)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
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
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API tokens directly in the metadata store.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted); exit non-zero if invalid.
    Check,
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
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id, as shown by `token list`.
        id: String,
    },
}

fn main() -> ExitCode {
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.load()?;
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
            println!("# configuration is valid");
            Ok(())
        }
        Command::Up { no_demo } => {
            telemetry::init_logging(&config);
            let app = Application::build(config).await?;
            let url = format!("http://{}", app.addr());
            let token_line = match &app.new_admin_token {
                Some(t) => format!(
                    "  Admin token:  {t}\n                (shown once; also written to {})",
                    app.state().config.initial_token_path().display()
                ),
                None => format!(
                    "  Admin token:  not shown again (first start wrote it to {}; more with `slipway token`)",
                    app.state().config.initial_token_path().display()
                ),
            };
            let _ = no_demo;
            println!(
                "Slipway {} is up ({:?} role)",
                env!("CARGO_PKG_VERSION"),
                app.state().config.role
            );
            println!("  URL:          {url}");
            println!("{token_line}");
            println!("  MLflow:       export MLFLOW_TRACKING_URI={url} MLFLOW_TRACKING_TOKEN=<admin token>");
            println!("SLIPWAY_LISTENING={url}");
            app.run_until_stopped().await
        }
        Command::Token { command } => {
            let store = slipway_server::open_metadata_store(&config).await?;
            match command {
                TokenCommand::Create { name, scopes } => {
                    let (secret, rec) = auth::create_token(store.as_ref(), &name, &scopes)
                        .await
                        .context("creating token")?;
                    println!("id:     {}", rec.id);
                    println!("scopes: {}", rec.scopes.join(","));
                    println!("token:  {secret}");
                    println!("(the token is shown once; only its hash is stored)");
                }
                TokenCommand::List => {
                    println!("{:<18} {:<24} {:<28} STATUS", "ID", "NAME", "SCOPES");
                    for t in store.list_tokens().await? {
                        let status = if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        };
                        println!(
                            "{:<18} {:<24} {:<28} {}",
                            t.id,
                            t.name,
                            t.scopes.join(","),
                            status
                        );
                    }
                }
                TokenCommand::Revoke { id } => {
                    store.revoke_token(&id).await?;
                    println!("revoked {id}");
                }
            }
            Ok(())
        }
    }
}
