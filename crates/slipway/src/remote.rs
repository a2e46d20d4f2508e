//! Commands that talk to a running server over its HTTP API: `deploy`,
//! `deployment list|show|delete` and `predict`. People get tables and
//! progress lines; `--json` prints the server's JSON for scripts.

use crate::table;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to reach a running server.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Remote {
    /// Server URL.
    #[arg(long, env = "SLIPWAY_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API token [default: the data dir's initial-admin-token file].
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory whose initial-admin-token file is used when no token is given.
    #[arg(long, env = "SLIPWAY_DATA_DIR", default_value = "./slipway-data")]
    data_dir: PathBuf,
}

/// A client bound to one server and token.
pub(crate) struct Api {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    pub(crate) fn connect(&self) -> anyhow::Result<Api> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => {
                let path = self.data_dir.join("initial-admin-token");
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .with_context(|| {
                        format!(
                            "no token: pass --token or set SLIPWAY_TOKEN (no readable token file at {})",
                            path.display()
                        )
                    })?
            }
        };
        Ok(Api {
            url: self.url.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }
}

impl Api {
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    /// Sends and returns the JSON body of a 2xx answer; otherwise an error
    /// carrying the server's message.
    pub(crate) async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("contacting the server at {}", self.url))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if !status.is_success() {
            let message = body["message"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or(&text);
            anyhow::bail!("server answered {status}: {message}");
        }
        Ok(body)
    }
}

/// `slipway deploy`.
#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    /// Deployment name (the V2 model name).
    name: String,
    /// Registered model to serve.
    #[arg(long, required_unless_present = "spec")]
    model: Option<String>,
    /// Alias to follow (e.g. champion).
    #[arg(long, conflicts_with = "version", required_unless_present_any = ["version", "spec"])]
    alias: Option<String>,
    /// Fixed version to serve.
    #[arg(long)]
    version: Option<String>,
    /// A fixed split entry, repeated: VERSION=WEIGHT or @ALIAS=WEIGHT (e.g. 3=90 @challenger=10).
    #[arg(long = "traffic", value_name = "SPLIT", value_parser = parse_traffic)]
    traffic: Vec<Value>,
    /// Request header whose value pins each request to a version of the split (e.g. x-user-id).
    #[arg(long, value_name = "HEADER")]
    sticky_header: Option<String>,
    /// Copies of a share of requests to another version: VERSION:FRACTION or @ALIAS:FRACTION (e.g. 5:0.5).
    #[arg(long, value_name = "SHADOW", value_parser = parse_shadow)]
    shadow: Option<Value>,
    /// When the alias moves: swap, or a rollout template (a JSON file, or inline JSON).
    #[arg(long, value_name = "ACTION")]
    on_alias_change: Option<String>,
    /// A JSON file with the whole spec (as PUT /api/v1/deployments/{name} takes); flags override its fields.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Print the server's JSON instead of a summary.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

/// `3` -> `{"version": "3"}`, `@challenger` -> `{"alias": "challenger"}`.
fn version_ref(target: &str) -> Result<Value, String> {
    let target = target.trim();
    match target.strip_prefix('@') {
        Some(alias) if !alias.is_empty() => Ok(json!({ "alias": alias })),
        Some(_) => Err("an alias after '@' is missing".into()),
        None if !target.is_empty() && target.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(json!({ "version": target }))
        }
        None => Err(format!("'{target}' is neither a version number nor @ALIAS")),
    }
}

/// Parses `--traffic VERSION=WEIGHT` / `@ALIAS=WEIGHT` into a split entry.
fn parse_traffic(arg: &str) -> Result<Value, String> {
    let usage = "expected VERSION=WEIGHT or @ALIAS=WEIGHT, e.g. 3=90 or @challenger=10";
    let (target, weight) = arg.split_once('=').ok_or_else(|| usage.to_string())?;
    let mut entry = version_ref(target).map_err(|e| format!("{e}; {usage}"))?;
    let weight: f64 = weight
        .trim()
        .parse()
        .map_err(|_| format!("weight '{weight}' is not a number; {usage}"))?;
    entry["weight"] = json!(weight);
    Ok(entry)
}

/// Parses `--shadow VERSION:FRACTION` / `@ALIAS:FRACTION` (the fraction
/// defaults to 1: every request copied).
fn parse_shadow(arg: &str) -> Result<Value, String> {
    let usage = "expected VERSION:FRACTION or @ALIAS:FRACTION, e.g. 5:0.5 or @challenger:1";
    let (target, fraction) = match arg.rsplit_once(':') {
        Some((t, f)) => (t, Some(f)),
        None => (arg, None),
    };
    let mut shadow = version_ref(target).map_err(|e| format!("{e}; {usage}"))?;
    let fraction: f64 = match fraction {
        Some(f) => f
            .trim()
            .parse()
            .map_err(|_| format!("fraction '{f}' is not a number; {usage}"))?,
        None => 1.0,
    };
    shadow["fraction"] = json!(fraction);
    Ok(shadow)
}

/// `--on-alias-change`: `swap`, inline JSON (`{...}`), or a JSON file.
fn on_alias_change(arg: &str) -> anyhow::Result<Value> {
    let arg = arg.trim();
    if arg == "swap" {
        return Ok(json!("swap"));
    }
    if arg.starts_with('{') {
        return serde_json::from_str(arg)
            .with_context(|| "--on-alias-change: the inline rollout template is not JSON");
    }
    let text = std::fs::read(arg).with_context(|| {
        format!("--on-alias-change: '{arg}' is neither 'swap', inline JSON, nor a readable file")
    })?;
    serde_json::from_slice(&text).with_context(|| format!("--on-alias-change: {arg} is not JSON"))
}

/// The spec `slipway deploy` sends: `--spec`'s JSON, overridden by the flags.
fn deploy_spec(args: &DeployArgs) -> anyhow::Result<Value> {
    let mut spec = match &args.spec {
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice::<Value>(&text)
                .with_context(|| format!("{} is not JSON", p.display()))?
        }
        None => json!({}),
    };
    let Some(obj) = spec.as_object_mut() else {
        anyhow::bail!(
            "the spec must be a JSON object, e.g. {{\"model\": \"m\", \"alias\": \"champion\"}}"
        );
    };
    if let Some(m) = &args.model {
        obj.insert("model".into(), json!(m));
    }
    // an alias or a version on the command line replaces the file's choice
    if let Some(a) = &args.alias {
        obj.remove("version");
        obj.insert("alias".into(), json!(a));
    }
    if let Some(v) = &args.version {
        obj.remove("alias");
        obj.insert("version".into(), json!(v));
    }
    if !args.traffic.is_empty() {
        obj.insert("traffic".into(), json!(args.traffic));
    }
    if let Some(h) = &args.sticky_header {
        obj.insert("sticky_header".into(), json!(h));
    }
    if let Some(sh) = &args.shadow {
        obj.insert("shadow".into(), sh.clone());
    }
    if let Some(o) = &args.on_alias_change {
        obj.insert("on_alias_change".into(), on_alias_change(o)?);
    }
    if !obj.contains_key("model") {
        anyhow::bail!("no model: pass --model or give \"model\" in --spec");
    }
    Ok(spec)
}

/// `slipway deployment ...`.
#[derive(clap::Subcommand, Debug)]
pub enum DeploymentCommand {
    /// List deployments with their state and serving version.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one deployment.
    Show {
        /// Deployment name.
        name: String,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a deployment (in-flight requests finish first).
    Delete {
        /// Deployment name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// `slipway predict`.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Deployment name.
    name: String,
    /// File with the request: JSON (`{"inputs": [[...]]}`, `dataframe_split`, ...) or CSV with
    /// a header row. Reads standard input when absent.
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    remote: Remote,
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the deployment follows: `alias champion` or `version 3`.
fn follows(spec: &Value) -> String {
    match (spec["alias"].as_str(), spec["version"].as_str()) {
        (Some(a), _) => format!("alias {a}"),
        (None, Some(v)) => format!("version {v}"),
        _ => "-".into(),
    }
}

fn summary(view: &Value) -> String {
    let st = &view["status"];
    let mut out = format!("Deployment {}: {}\n", s(&view["name"]), s(&st["state"]));
    out.push_str(&format!(
        "  model:    {} ({})\n",
        s(&view["spec"]["model"]),
        follows(&view["spec"])
    ));
    out.push_str(&format!(
        "  serving:  version {}\n",
        s(&st["serving_version"])
    ));
    if st["target_version"] != st["serving_version"] && !st["target_version"].is_null() {
        out.push_str(&format!(
            "  target:   version {}\n",
            s(&st["target_version"])
        ));
    }
    let split: Vec<String> = view["traffic"]["split"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| format!("v{} {}%", s(&r["version"]), s(&r["weight"])))
                .collect()
        })
        .unwrap_or_default();
    if split.len() > 1 {
        let sticky = match view["traffic"]["sticky_header"].as_str() {
            Some(h) => format!(" (sticky by {h})"),
            None => String::new(),
        };
        out.push_str(&format!("  traffic:  {}{sticky}\n", split.join(", ")));
    }
    for m in view["traffic"]["mirrors"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  shadow:   v{} gets copies of {} of requests\n",
            s(&m["version"]),
            s(&m["fraction"])
        ));
    }
    if let Some(e) = st["error"].as_str() {
        out.push_str(&format!("  error:    {e}\n"));
    }
    out
}

/// Creates or updates the deployment, printing its state while it loads.
pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let spec = deploy_spec(&args)?;
    let api = args.remote.connect()?;
    let path = format!("/api/v1/deployments/{}", args.name);
    let started = Instant::now();
    let put = api.send(api.request(reqwest::Method::PUT, &path).json(&spec));
    tokio::pin!(put);
    let mut last = String::new();
    let view = loop {
        tokio::select! {
            res = &mut put => break res?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                // the PUT answers once the version is loaded (or has failed);
                // meanwhile show what the server reports
                if let Ok(v) = api.send(api.request(reqwest::Method::GET, &path)).await {
                    let line = format!("{} version {}", s(&v["status"]["state"]), s(&v["status"]["target_version"]));
                    if line != last {
                        eprintln!("{}: {line} ({:.1} s)", args.name, started.elapsed().as_secs_f64());
                        last = line;
                    }
                }
            }
        }
    };
    if args.json {
        println!("{view}");
    } else {
        print!("{}", summary(&view));
        eprintln!("(took {:.1} s)", started.elapsed().as_secs_f64());
    }
    match view["status"]["state"].as_str() {
        Some("failed") => anyhow::bail!(
            "deployment {} is not serving: {}",
            args.name,
            s(&view["status"]["error"])
        ),
        _ => Ok(()),
    }
}

/// `deployment list|show|delete`.
pub async fn deployment(command: DeploymentCommand) -> anyhow::Result<()> {
    match command {
        DeploymentCommand::List { json, remote } => {
            let api = remote.connect()?;
            let body = api
                .send(api.request(reqwest::Method::GET, "/api/v1/deployments"))
                .await?;
            if json {
                println!("{body}");
                return Ok(());
            }
            let list = body["deployments"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no deployments yet: slipway deploy NAME --model MODEL --alias champion");
                return Ok(());
            }
            let rows = list
                .iter()
                .map(|d| {
                    vec![
                        s(&d["name"]),
                        s(&d["spec"]["model"]),
                        follows(&d["spec"]),
                        s(&d["status"]["serving_version"]),
                        s(&d["status"]["state"]),
                        s(&d["status"]["error"]),
                    ]
                })
                .collect();
            table::print(
                &["NAME", "MODEL", "FOLLOWS", "SERVING", "STATE", "ERROR"],
                rows,
            );
        }
        DeploymentCommand::Show { name, json, remote } => {
            let api = remote.connect()?;
            let view = api
                .send(api.request(reqwest::Method::GET, &format!("/api/v1/deployments/{name}")))
                .await?;
            if json {
                println!("{view}");
            } else {
                print!("{}", summary(&view));
            }
        }
        DeploymentCommand::Delete { name, remote } => {
            let api = remote.connect()?;
            api.send(api.request(
                reqwest::Method::DELETE,
                &format!("/api/v1/deployments/{name}"),
            ))
            .await?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

/// Sends rows to a deployment's scoring endpoint and prints the answer.
pub async fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let api = args.remote.connect()?;
    let body = match &args.file {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
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
    let answer = api
        .send(
            api.request(
                reqwest::Method::POST,
                &format!("/api/v1/deployments/{}/invocations", args.name),
            )
            .header("content-type", content_type)
            .body(body),
        )
        .await?;
    println!("{answer}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        deploy: DeployArgs,
    }

    fn spec(args: &[&str]) -> anyhow::Result<Value> {
        let cli = Cli::try_parse_from(std::iter::once("deploy").chain(args.iter().copied()))?;
        deploy_spec(&cli.deploy)
    }

    #[test]
    fn flags_build_the_spec() {
        let got = spec(&[
            "fraud",
            "--model",
            "fm",
            "--alias",
            "champion",
            "--traffic",
            "3=90",
            "--traffic",
            "@challenger=10",
            "--sticky-header",
            "x-user-id",
            "--shadow",
            "5:0.5",
            "--on-alias-change",
            r#"{"strategy": "canary", "steps": [5, 100]}"#,
        ])
        .unwrap();
        assert_eq!(
            got,
            json!({"model": "fm", "alias": "champion",
                   "traffic": [{"version": "3", "weight": 90.0}, {"alias": "challenger", "weight": 10.0}],
                   "sticky_header": "x-user-id",
                   "shadow": {"version": "5", "fraction": 0.5},
                   "on_alias_change": {"strategy": "canary", "steps": [5, 100]}})
        );
        let got = spec(&[
            "d",
            "--model",
            "fm",
            "--version",
            "2",
            "--shadow",
            "@next",
            "--on-alias-change",
            "swap",
        ])
        .unwrap();
        assert_eq!(
            got,
            json!({"model": "fm", "version": "2", "shadow": {"alias": "next", "fraction": 1.0}, "on_alias_change": "swap"})
        );
    }

    #[test]
    fn a_spec_file_is_overridden_by_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spec.json");
        std::fs::write(
            &file,
            r#"{"model": "fm", "version": "1", "max_batch_size": 8, "sticky_header": "x-a"}"#,
        )
        .unwrap();
        let template = dir.path().join("template.json");
        std::fs::write(&template, r#"{"strategy": "shadow", "step_seconds": 60}"#).unwrap();
        let f = file.to_str().unwrap();
        let got = spec(&["d", "--spec", f]).unwrap();
        assert_eq!(
            got,
            json!({"model": "fm", "version": "1", "max_batch_size": 8, "sticky_header": "x-a"})
        );
        let got = spec(&[
            "d",
            "--spec",
            f,
            "--alias",
            "champion",
            "--sticky-header",
            "x-b",
            "--on-alias-change",
            template.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!(
            got,
            json!({"model": "fm", "alias": "champion", "max_batch_size": 8, "sticky_header": "x-b",
                   "on_alias_change": {"strategy": "shadow", "step_seconds": 60}})
        );
    }

    #[test]
    fn bad_flags_say_what_is_expected() {
        for (args, want) in [
            (
                vec!["d", "--model", "m", "--alias", "a", "--traffic", "3"],
                "VERSION=WEIGHT",
            ),
            (
                vec!["d", "--model", "m", "--alias", "a", "--traffic", "x=10"],
                "'x' is neither",
            ),
            (
                vec!["d", "--model", "m", "--alias", "a", "--traffic", "3=ten"],
                "weight 'ten'",
            ),
            (
                vec!["d", "--model", "m", "--alias", "a", "--traffic", "@=10"],
                "alias after '@'",
            ),
            (
                vec!["d", "--model", "m", "--alias", "a", "--shadow", "5:half"],
                "fraction 'half'",
            ),
            (
                vec![
                    "d",
                    "--model",
                    "m",
                    "--alias",
                    "a",
                    "--on-alias-change",
                    "{oops",
                ],
                "not JSON",
            ),
            (
                vec![
                    "d",
                    "--model",
                    "m",
                    "--alias",
                    "a",
                    "--on-alias-change",
                    "/no/such/file",
                ],
                "neither 'swap'",
            ),
            (vec!["d", "--alias", "a"], "--model"),
            (vec!["d", "--model", "m"], "--alias"),
        ] {
            let e = spec(&args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
    }
}
