//! The `slipway` binary: parses the command line and hands over to the
//! server library. Nothing else lives here.

use anyhow::Context;
use clap::{Parser, Subcommand};
use slipway_server::config::ConfigArgs;
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
    /// Create or update a deployment on a running server.
    Deploy {
        /// Deployment name (the V2 model name).
        name: String,
        /// Registered model to serve.
        #[arg(long)]
        model: String,
        /// Alias to follow (e.g. champion).
        #[arg(long, conflicts_with = "version", required_unless_present = "version")]
        alias: Option<String>,
        /// Fixed version to serve.
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Send JSON or CSV rows to a deployment (MLflow scoring protocol) and print the predictions.
    Predict {
        /// Deployment name.
        name: String,
        /// File with the request: JSON (`{"inputs": [[...]]}`, `dataframe_split`, ...) or CSV with a
        /// header row. Reads standard input when absent.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage API tokens directly in the metadata store.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// How to reach a running server.
#[derive(clap::Args)]
struct Remote {
    /// Server URL [default: http://<listen>].
    #[arg(long, env = "SLIPWAY_URL")]
    url: Option<String>,
    /// Token [default: the data dir's initial-admin-token file].
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Remote {
    fn resolve(&self, config: &slipway_server::config::Config) -> anyhow::Result<(String, String)> {
        let url = self
            .url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let token = match &self.token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(config.initial_token_path())
                .map(|t| t.trim().to_string())
                .with_context(|| {
                    format!(
                        "no token: pass --token or SLIPWAY_TOKEN (could not read {})",
                        config.initial_token_path().display()
                    )
                })?,
        };
        Ok((url.trim_end_matches('/').to_string(), token))
    }
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<String> {
    let resp = req.send().await.context("contacting the server")?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("server answered {status}: {text}");
    }
    Ok(text)
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
            app.start_serving().await?;
            if !no_demo {
                app.install_demo().await?;
            }
            println!(
                "Slipway {} is up (role: {})",
                env!("CARGO_PKG_VERSION"),
                format!("{:?}", app.state().config.role).to_lowercase()
            );
            println!("  URL:          {url}");
            println!("{token_line}");
            println!("  MLflow:       export MLFLOW_TRACKING_URI={url} MLFLOW_TRACKING_TOKEN=<admin token>");
            if let Some(dep) = app.state().serving.get("iris") {
                let token_expr = match &app.new_admin_token {
                    Some(t) => t.clone(),
                    None if app.state().config.initial_token_path().is_file() => {
                        format!(
                            "$(cat {})",
                            app.state().config.initial_token_path().display()
                        )
                    }
                    None => "$SLIPWAY_ADMIN_TOKEN".to_string(),
                };
                let status = dep.status();
                println!(
                    "  Demo model:   iris v{} ({})",
                    status.serving_version.unwrap_or_default(),
                    status.state
                );
                println!("  Predict:      curl -s -H \"Authorization: Bearer {token_expr}\" -H 'Content-Type: application/json' -d '{{\"inputs\":[{{\"name\":\"float_input\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[5.1,3.5,1.4,0.2]}}]}}' {url}/v2/models/iris/infer");
            }
            println!("SLIPWAY_LISTENING={url}");
            app.run_until_stopped().await
        }
        Command::Deploy {
            name,
            model,
            alias,
            version,
            remote,
        } => {
            let (url, token) = remote.resolve(&config)?;
            let mut spec = serde_json::json!({"model": model});
            if let Some(a) = alias {
                spec["alias"] = a.into();
            }
            if let Some(v) = version {
                spec["version"] = v.into();
            }
            let client = reqwest::Client::new();
            let text = send(
                client
                    .put(format!("{url}/api/v1/deployments/{name}"))
                    .bearer_auth(&token)
                    .json(&spec),
            )
            .await?;
            println!("{text}");
            Ok(())
        }
        Command::Predict { name, file, remote } => {
            let (url, token) = remote.resolve(&config)?;
            let body = match file {
                Some(path) => {
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
                }
                None => {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                        .context("reading standard input")?;
                    buf
                }
            };
            let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
            let content_type = if matches!(first, Some(b'{') | Some(b'[')) {
                "application/json"
            } else {
                "text/csv"
            };
            let client = reqwest::Client::new();
            let text = send(
                client
                    .post(format!("{url}/api/v1/deployments/{name}/invocations"))
                    .bearer_auth(&token)
                    .header("content-type", content_type)
                    .body(body),
            )
            .await?;
            println!("{text}");
            Ok(())
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
