//! `slipway rollout start|list|status|promote|abort|pause|resume`: rollouts
//! on a running server. `status --watch` redraws the live step, weights and
//! per-check verdicts until the rollout ends.

use crate::remote::{s, Api, Remote};
use crate::table;
use anyhow::Context;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// `slipway rollout ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// Start a rollout on a deployment.
    Start(StartArgs),
    /// List a deployment's rollouts, newest first.
    List {
        /// Deployment name.
        deployment: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a rollout: state, step, weights and the decision record.
    Status {
        /// Deployment name.
        deployment: String,
        /// Rollout id [default: the newest].
        id: Option<String>,
        /// Redraw every second until the rollout ends.
        #[arg(long)]
        watch: bool,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Promote the candidate now (moves the alias).
    Promote(ActArgs),
    /// Stop the rollout; the stable version serves everything.
    Abort(ActArgs),
    /// Hold the current step.
    Pause(ActArgs),
    /// Continue a paused rollout.
    Resume(ActArgs),
}

/// The arguments of `rollout start`.
#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// Deployment name.
    deployment: String,
    /// Candidate version number.
    #[arg(long, conflicts_with = "candidate_alias", required_unless_present_any = ["candidate_alias", "plan"])]
    candidate_version: Option<String>,
    /// Candidate alias (e.g. challenger).
    #[arg(long)]
    candidate_alias: Option<String>,
    /// canary, ab or shadow.
    #[arg(long, default_value = "canary")]
    strategy: String,
    /// Canary weights, comma-separated (e.g. 5,25,50,100).
    #[arg(long, value_delimiter = ',')]
    steps: Option<Vec<f64>>,
    /// A/B: the candidate's weight, percent.
    #[arg(long)]
    weight: Option<f64>,
    /// Shadow: the share of requests copied to the candidate.
    #[arg(long)]
    shadow_fraction: Option<f64>,
    /// Shortest duration of each step, seconds.
    #[arg(long)]
    step_seconds: Option<u64>,
    /// Requests the candidate needs per step.
    #[arg(long)]
    min_requests: Option<u64>,
    /// auto or advisory.
    #[arg(long)]
    mode: Option<String>,
    /// A JSON file with the whole plan (as POST .../rollouts takes); flags override its fields.
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Print the server's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    remote: Remote,
}

/// The arguments of the rollout actions.
#[derive(clap::Args, Debug)]
pub struct ActArgs {
    /// Deployment name.
    deployment: String,
    /// Rollout id.
    id: String,
    #[command(flatten)]
    remote: Remote,
}

fn base(deployment: &str) -> String {
    format!("/api/v1/deployments/{deployment}/rollouts")
}

/// Runs a rollout command.
pub async fn run(command: RolloutCommand) -> anyhow::Result<()> {
    match command {
        RolloutCommand::Start(args) => start(args).await,
        RolloutCommand::List {
            deployment,
            json,
            remote,
        } => {
            let api = remote.connect()?;
            let body = api
                .send(api.request(reqwest::Method::GET, &base(&deployment)))
                .await?;
            if json {
                println!("{body}");
                return Ok(());
            }
            let list = body["rollouts"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no rollouts yet: slipway rollout start {deployment} --candidate-version N --steps 5,25,50,100");
                return Ok(());
            }
            let rows = list
                .iter()
                .map(|r| {
                    vec![
                        s(&r["id"]),
                        s(&r["state"]),
                        s(&r["strategy"]),
                        format!(
                            "{} -> {}",
                            s(&r["stable_version"]),
                            s(&r["candidate_version"])
                        ),
                        s(&r["mode"]),
                        s(&r["reason"]),
                    ]
                })
                .collect();
            table::print(
                &["ID", "STATE", "STRATEGY", "VERSIONS", "MODE", "REASON"],
                rows,
            );
            Ok(())
        }
        RolloutCommand::Status {
            deployment,
            id,
            watch,
            json,
            remote,
        } => {
            let api = remote.connect()?;
            loop {
                let r = fetch(&api, &deployment, id.as_deref()).await?;
                if json {
                    println!("{r}");
                } else {
                    if watch {
                        // clear the screen and go home, as `watch` does
                        print!("\x1b[2J\x1b[H");
                    }
                    print!("{}", summary(&r));
                }
                let active = matches!(r["state"].as_str(), Some("progressing") | Some("paused"));
                if !watch || !active {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        RolloutCommand::Promote(a) => act(a, "promote").await,
        RolloutCommand::Abort(a) => act(a, "abort").await,
        RolloutCommand::Pause(a) => act(a, "pause").await,
        RolloutCommand::Resume(a) => act(a, "resume").await,
    }
}

async fn fetch(api: &Api, deployment: &str, id: Option<&str>) -> anyhow::Result<Value> {
    match id {
        Some(id) => {
            api.send(api.request(reqwest::Method::GET, &format!("{}/{id}", base(deployment))))
                .await
        }
        None => {
            let list = api
                .send(api.request(reqwest::Method::GET, &base(deployment)))
                .await?;
            list["rollouts"]
                .as_array()
                .and_then(|l| l.first().cloned())
                .with_context(|| format!("deployment {deployment} has no rollouts"))
        }
    }
}

async fn start(a: StartArgs) -> anyhow::Result<()> {
    let mut plan = match &a.plan {
        Some(p) => serde_json::from_slice::<Value>(
            &std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{} is not JSON", p.display()))?,
        None => json!({}),
    };
    if let Some(v) = &a.candidate_version {
        plan["candidate"] = json!({"version": v});
    }
    if let Some(al) = &a.candidate_alias {
        plan["candidate"] = json!({"alias": al});
    }
    if plan.get("strategy").is_none() || a.strategy != "canary" {
        plan["strategy"] = json!(a.strategy);
    }
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            plan[k] = v;
        }
    };
    set("steps", a.steps.clone().map(|s| json!(s)));
    set("weight", a.weight.map(|w| json!(w)));
    set("shadow_fraction", a.shadow_fraction.map(|f| json!(f)));
    set("step_seconds", a.step_seconds.map(|x| json!(x)));
    set("min_requests", a.min_requests.map(|x| json!(x)));
    set("mode", a.mode.clone().map(|m| json!(m)));
    if plan["strategy"] == "canary" && plan.get("steps").is_none() {
        plan["steps"] = json!([5, 25, 50, 100]);
    }
    let api = a.remote.connect()?;
    let r = api
        .send(
            api.request(reqwest::Method::POST, &base(&a.deployment))
                .json(&plan),
        )
        .await?;
    if a.json {
        println!("{r}");
    } else {
        print!("{}", summary(&r));
        println!(
            "watch it with: slipway rollout status {} {} --watch",
            a.deployment,
            s(&r["id"])
        );
    }
    Ok(())
}

async fn act(a: ActArgs, action: &str) -> anyhow::Result<()> {
    let api = a.remote.connect()?;
    let r = api
        .send(api.request(
            reqwest::Method::POST,
            &format!("{}/{}/{action}", base(&a.deployment), a.id),
        ))
        .await?;
    print!("{}", summary(&r));
    Ok(())
}

/// A rollout as lines for people.
pub fn summary(r: &Value) -> String {
    let mut out = format!(
        "Rollout {} of {}: {} ({} {}, {} traffic)\n",
        s(&r["id"]),
        s(&r["deployment"]),
        s(&r["state"]),
        s(&r["strategy"]),
        s(&r["mode"]),
        s(&r["traffic"]),
    );
    let steps: Vec<String> = r["steps"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    out.push_str(&format!(
        "  versions: stable {} -> candidate {}\n  step:     {} of [{}]\n  weights:  stable {}%, candidate {}%\n",
        s(&r["stable_version"]),
        s(&r["candidate_version"]),
        s(&r["step"]),
        steps.join(", "),
        s(&r["weights"]["stable"]),
        s(&r["weights"]["candidate"]),
    ));
    out.push_str(&format!("  reason:   {}\n", s(&r["reason"])));
    if let Some(last) = r["record"].as_array().and_then(|a| a.last()) {
        out.push_str(&format!(
            "  last judgement: step {} at {}%: {} (stable {} / candidate {} requests)\n",
            s(&last["step"]),
            s(&last["weight"]),
            s(&last["verdict"]),
            s(&last["stable_requests"]),
            s(&last["candidate_requests"]),
        ));
        let rows: Vec<Vec<String>> = last["checks"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        let num = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.4}"));
                        vec![
                            s(&c["name"]),
                            s(&c["verdict"]),
                            num(&c["stable"]),
                            num(&c["candidate"]),
                            num(&c["threshold"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        for line in table::render(
            &["CHECK", "VERDICT", "STABLE", "CANDIDATE", "THRESHOLD"],
            &rows,
        )
        .lines()
        {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
