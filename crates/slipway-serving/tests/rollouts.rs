//! Rollouts with fake models whose errors, latency and answers the test
//! controls: a good candidate is promoted through every step (the alias
//! moves), three bad ones are rolled back naming the failed check, advisory
//! mode records verdicts without changing traffic, thin traffic ends
//! inconclusive, and the API refuses what it must.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{drive, Registry, RUN_THREADS, SCHED_BATCH, SCHED_IDLE};
use serde_json::{json, Value};
use slipway_core::ErrorCode;
use slipway_serving::controller::tick;
use slipway_serving::{Action, DeploymentManager, DeploymentSpec, RolloutPlan};
use std::sync::Arc;
use std::time::Duration;

async fn setup(candidate: Value) -> (Registry, Arc<DeploymentManager>, String, String) {
    let reg = Registry::new().await;
    let v1 = reg.version("m", json!({"weights": [1.0, 0.0]})).await;
    let v2 = reg.version("m", candidate).await;
    reg.alias("m", "champion", &v1).await;
    let mgr = reg.manager(true);
    mgr.put("d", DeploymentSpec::following("m", "champion"))
        .await
        .unwrap();
    (reg, mgr, v1, v2)
}

fn plan(json: Value) -> RolloutPlan {
    serde_json::from_value(json).unwrap()
}

/// Drives traffic and controller ticks until the rollout ends (or `max` rounds).
async fn run_until_done(mgr: &DeploymentManager, id: &str, per_round: usize, max: usize) -> Value {
    for _ in 0..max {
        drive(mgr, "d", per_round).await;
        mgr.sync_once().await.unwrap();
        tick(mgr).await.unwrap();
        let rec = mgr.rollout("d", id).await.unwrap();
        if !rec.active {
            return slipway_serving::controller::view(&rec);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("rollout {id} did not finish");
}

fn canary(candidate: &str) -> RolloutPlan {
    plan(
        json!({"candidate": {"version": candidate}, "strategy": "canary", "steps": [20, 50, 100],
                "step_seconds": 1, "min_requests": 60, "paired_fraction": 1.0,
                "thresholds": {"min_samples": 40}}),
    )
}

#[tokio::test]
async fn a_good_candidate_is_promoted_through_every_step() {
    let (reg, mgr, _v1, v2) = setup(json!({"weights": [1.0, 0.01]})).await;
    let started = mgr.start_rollout("d", canary(&v2)).await.unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["state"], "progressing");
    let end = run_until_done(&mgr, &id, 200, 60).await;
    assert_eq!(end["state"], "promoted", "{end:#}");
    let record = end["record"].as_array().unwrap();
    let passed: Vec<u64> = record
        .iter()
        .filter(|r| r["verdict"] == "pass")
        .map(|r| r["step"].as_u64().unwrap())
        .collect();
    assert_eq!(passed, vec![0, 1], "every step judged and passed: {end:#}");
    for r in record.iter().filter(|r| r["verdict"] == "pass") {
        let names: Vec<&str> = r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        for want in [
            "error_rate",
            "p99_latency",
            "agreement",
            "sample_ratio",
            "distribution:label",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
    // the registry's alias moved; the deployment serves the candidate
    let alias = reg
        .store
        .get_model_version_by_alias("m", "champion")
        .await
        .unwrap();
    assert_eq!(alias.version, v2);
    mgr.sync_once().await.unwrap();
    assert_eq!(mgr.get("d").unwrap().active().unwrap().version, v2);
}

async fn rolled_back_for(candidate: Value, check: &str) {
    let (reg, mgr, v1, v2) = setup(candidate).await;
    let started = mgr.start_rollout("d", canary(&v2)).await.unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    let end = run_until_done(&mgr, &id, 200, 60).await;
    assert_eq!(end["state"], "rolled_back", "{end:#}");
    let last = end["record"].as_array().unwrap().last().unwrap();
    let failed: Vec<&str> = last["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&check),
        "{check} should fail: {failed:?} {end:#}"
    );
    assert!(
        end["reason"].as_str().unwrap().contains(check),
        "{}",
        end["reason"]
    );
    // the alias did not move; everything goes to the stable version again
    assert_eq!(
        reg.store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap()
            .version,
        v1
    );
    mgr.sync_once().await.unwrap();
    let served = drive(&mgr, "d", 100).await;
    assert_eq!(served.get(&v1).copied(), Some(100), "{served:?}");
    let mv = reg.store.get_model_version("m", &v2).await.unwrap();
    assert!(mv
        .tags
        .iter()
        .any(|t| t.key == "slipway.rollout" && t.value.starts_with("rolled_back")));
}

#[tokio::test]
async fn a_failing_candidate_is_rolled_back() {
    rolled_back_for(
        json!({"weights": [1.0, 0.0], "fail_every": 4}),
        "error_rate",
    )
    .await;
}

#[tokio::test]
async fn a_slow_candidate_is_rolled_back() {
    rolled_back_for(
        json!({"weights": [1.0, 0.0], "latency_ms": 12}),
        "p99_latency",
    )
    .await;
}

#[tokio::test]
async fn a_candidate_that_predicts_differently_is_rolled_back() {
    rolled_back_for(json!({"weights": [1.0, 0.0], "flip": true}), "agreement").await;
}

#[tokio::test]
async fn advisory_mode_judges_without_changing_traffic() {
    let (reg, mgr, v1, v2) = setup(json!({"weights": [1.0, 0.0], "flip": true})).await;
    let mut p = canary(&v2);
    p.mode = slipway_serving::Mode::Advisory;
    let id = mgr.start_rollout("d", p).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut served_by_candidate = 0;
    let mut end = Value::Null;
    for _ in 0..60 {
        let served = drive(&mgr, "d", 200).await;
        served_by_candidate += served.get(&v2).copied().unwrap_or(0);
        mgr.sync_once().await.unwrap();
        tick(&mgr).await.unwrap();
        let rec = mgr.rollout("d", &id).await.unwrap();
        if !rec.active {
            end = slipway_serving::controller::view(&rec);
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        served_by_candidate, 0,
        "advisory never sends client traffic to the candidate"
    );
    assert_eq!(end["advice"], "roll back", "{end:#}");
    assert!(end["reason"]
        .as_str()
        .unwrap()
        .contains("nothing was changed"));
    let failed = end["record"].as_array().unwrap().last().unwrap()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "agreement" && c["verdict"] == "fail");
    assert!(failed, "{end:#}");
    assert_eq!(
        reg.store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap()
            .version,
        v1
    );
}

#[tokio::test]
async fn too_little_traffic_ends_inconclusive() {
    let (reg, mgr, v1, v2) = setup(json!({"weights": [1.0, 0.0]})).await;
    let p = plan(
        json!({"candidate": {"version": v2}, "strategy": "ab", "weight": 10,
                        "step_seconds": 1, "max_duration_seconds": 2, "min_requests": 10000}),
    );
    let id = mgr.start_rollout("d", p).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let end = run_until_done(&mgr, &id, 50, 60).await;
    assert_eq!(end["state"], "inconclusive", "{end:#}");
    assert!(
        end["reason"].as_str().unwrap().contains("no verdict"),
        "{}",
        end["reason"]
    );
    assert_eq!(
        reg.store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap()
            .version,
        v1
    );
}

#[tokio::test]
async fn the_api_refuses_what_it_must_and_people_can_act() {
    let (reg, mgr, v1, v2) = setup(json!({"weights": [1.0, 0.0]})).await;
    // candidate equal to stable
    let e = mgr.start_rollout("d", canary(&v1)).await.unwrap_err();
    assert_eq!(e.code.http_status(), 400);
    assert!(
        e.message.contains("already the stable version"),
        "{}",
        e.message
    );
    // unknown version
    let e = mgr.start_rollout("d", canary("99")).await.unwrap_err();
    assert!(
        e.message.contains("candidate") && e.message.contains("does not exist"),
        "{}",
        e.message
    );
    // unknown deployment
    assert_eq!(
        mgr.start_rollout("nope", canary(&v2))
            .await
            .unwrap_err()
            .code,
        ErrorCode::ResourceDoesNotExist
    );
    let id = mgr.start_rollout("d", canary(&v2)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // a second active rollout: 409
    let v3 = reg.version("m", json!({"weights": [2.0, 0.0]})).await;
    let e = mgr.start_rollout("d", canary(&v3)).await.unwrap_err();
    assert_eq!(e.code.http_status(), 409, "{}", e.message);
    // pause holds, resume continues, promote moves the alias at once
    let paused = mgr.rollout_action("d", &id, Action::Pause).await.unwrap();
    assert_eq!(paused["state"], "paused");
    let resumed = mgr.rollout_action("d", &id, Action::Resume).await.unwrap();
    assert_eq!(resumed["state"], "progressing");
    let promoted = mgr.rollout_action("d", &id, Action::Promote).await.unwrap();
    assert_eq!(promoted["state"], "promoted");
    assert_eq!(
        reg.store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap()
            .version,
        v2
    );
    let e = mgr
        .rollout_action("d", &id, Action::Abort)
        .await
        .unwrap_err();
    assert_eq!(e.code.http_status(), 409);
    // abort of a new one: the stable keeps serving
    let id2 = mgr.start_rollout("d", canary(&v3)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let aborted = mgr.rollout_action("d", &id2, Action::Abort).await.unwrap();
    assert_eq!(aborted["state"], "aborted");
    let list = mgr.rollouts("d").await.unwrap();
    assert_eq!(
        list.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![id2, id]
    );
}

#[tokio::test]
async fn a_split_with_a_sticky_header_keeps_each_key_on_one_version() {
    let reg = Registry::new().await;
    let v1 = reg.version("m", json!({"weights": [1.0, 0.0]})).await;
    let v2 = reg.version("m", json!({"weights": [2.0, 0.0]})).await;
    reg.alias("m", "champion", &v1).await;
    reg.alias("m", "challenger", &v2).await;
    let mgr = reg.manager(true);
    let spec: DeploymentSpec = serde_json::from_value(json!({
        "model": "m", "alias": "champion",
        "traffic": [{"alias": "champion", "weight": 70}, {"alias": "challenger", "weight": 30}],
        "sticky_header": "x-user-id"
    }))
    .unwrap();
    mgr.put("d", spec).await.unwrap();
    let dep = mgr.get("d").unwrap();
    assert_eq!(dep.sticky_header().as_deref(), Some("x-user-id"));
    let pick = |key: &str| {
        dep.route(Some(key.as_bytes()))
            .unwrap()
            .version
            .version
            .clone()
    };
    let first: Vec<String> = (0..1000).map(|i| pick(&format!("user-{i}"))).collect();
    let to_v2 = first.iter().filter(|v| **v == v2).count();
    assert!((240..360).contains(&to_v2), "30% of keys: {to_v2}");
    // a fresh manager (another replica, or a restart) assigns every key alike
    let other = reg.manager(true);
    other.sync_once().await.unwrap();
    let dep2 = other.get("d").unwrap();
    for (i, v) in first.iter().enumerate() {
        assert_eq!(
            &dep2
                .route(Some(format!("user-{i}").as_bytes()))
                .unwrap()
                .version
                .version,
            v
        );
    }
    // without the header: random by weight
    let served = drive(&mgr, "d", 2000).await;
    let share = served.get(&v2).copied().unwrap_or(0) as f64 / 2000.0;
    assert!((0.26..0.34).contains(&share), "{share}");
}

/// A split whose entries resolve to one version at deploy time is refused,
/// naming both entries; references to another model are refused, naming
/// the `model` field; a canary without a step below 100 is refused. An alias
/// that later moves onto another entry's version merges their weights.
#[tokio::test]
async fn splits_and_candidates_that_name_the_wrong_thing_are_refused() {
    let reg = Registry::new().await;
    let v1 = reg.version("m", json!({"weights": [1.0, 0.0]})).await;
    let v2 = reg.version("m", json!({"weights": [2.0, 0.0]})).await;
    let other = reg.version("other", json!({"weights": [3.0, 0.0]})).await;
    reg.alias("m", "champion", &v1).await;
    reg.alias("m", "challenger", &v1).await;
    let mgr = reg.manager(true);
    let put = |traffic: Value| {
        let mgr = &mgr;
        async move {
            let spec: DeploymentSpec = serde_json::from_value(
                json!({"model": "m", "alias": "champion", "traffic": traffic}),
            )
            .unwrap();
            mgr.put("d", spec).await
        }
    };
    // a version and an alias of it
    let e = put(json!([{"version": v1, "weight": 90}, {"alias": "challenger", "weight": 10}]))
        .await
        .unwrap_err();
    assert_eq!(e.code.http_status(), 400, "{}", e.message);
    assert!(
        e.message.contains("'traffic[0]' (version 1)")
            && e.message.contains("'traffic[1]' (alias challenger)")
            && e.message.contains(&format!("both resolve to version {v1}")),
        "{}",
        e.message
    );
    // two aliases of one version
    let e =
        put(json!([{"alias": "champion", "weight": 50}, {"alias": "challenger", "weight": 50}]))
            .await
            .unwrap_err();
    assert!(
        e.message.contains("traffic[0]") && e.message.contains("traffic[1]"),
        "{}",
        e.message
    );
    // a version of another model
    let e = put(json!([{"model": "other", "version": other, "weight": 100}]))
        .await
        .unwrap_err();
    assert_eq!(e.code.http_status(), 400, "{}", e.message);
    assert!(
        e.message.contains("'traffic[0].model' names model") && e.message.contains("'other'"),
        "{}",
        e.message
    );
    assert!(mgr.get("d").is_none(), "nothing deployed");

    // distinct versions deploy; the alias then moves onto the other entry's version
    reg.alias("m", "challenger", &v2).await;
    put(json!([{"version": v1, "weight": 90}, {"alias": "challenger", "weight": 10}]))
        .await
        .unwrap();
    let dep = mgr.get("d").unwrap();
    let served = drive(&mgr, "d", 400).await;
    assert!(served.get(&v2).copied().unwrap_or(0) > 0, "{served:?}");
    reg.alias("m", "challenger", &v1).await;
    mgr.sync_once().await.unwrap();
    let split = dep.traffic_view()["split"].clone();
    assert_eq!(
        split,
        json!([{"version": v1, "role": "stable", "weight": 100.0}]),
        "the weights merge onto the one version"
    );
    let served = drive(&mgr, "d", 200).await;
    assert_eq!(served.get(&v1).copied(), Some(200), "{served:?}");

    // rollouts: a candidate of another model, a canary with no partial step
    let e = mgr
        .start_rollout(
            "d",
            plan(json!({"candidate": {"model": "other", "version": other}, "strategy": "ab"})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code.http_status(), 400, "{}", e.message);
    assert!(
        e.message.contains("'candidate.model' names model 'other'"),
        "{}",
        e.message
    );
    let e = mgr
        .start_rollout(
            "d",
            plan(json!({"candidate": {"model": "m", "version": v2}, "strategy": "canary", "steps": [100]})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code.http_status(), 400, "{}", e.message);
    assert!(
        e.message.contains("'steps'") && e.message.contains("below 100"),
        "{}",
        e.message
    );
}

/// A shadow's copies run off the request path, on the copy threads in the
/// `SCHED_IDLE` class (clients' requests run on model threads in
/// `SCHED_BATCH`), and are compared with the answers clients got; a shadow
/// that cannot keep up has its copies dropped and counted, never making
/// clients wait.
#[tokio::test]
async fn shadow_copies_run_at_the_lowest_priority_and_are_dropped_when_behind() {
    let reg = Registry::new().await;
    let v1 = reg
        .version("m", json!({"weights": [1.0, 0.0], "record_threads": true}))
        .await;
    let flipped = reg
        .version(
            "m",
            json!({"weights": [1.0, 0.0], "flip": true, "record_threads": true}),
        )
        .await;
    let slow = reg
        .version("m", json!({"weights": [1.0, 0.0], "latency_ms": 200}))
        .await;
    reg.alias("m", "champion", &v1).await;
    let mgr = reg.manager(true);
    let shadow = |version: &str, batch: usize| -> DeploymentSpec {
        serde_json::from_value(
            json!({"model": "m", "alias": "champion", "max_batch_size": batch,
                                      "shadow": {"version": version, "fraction": 1.0}}),
        )
        .unwrap()
    };
    mgr.put("d", shadow(&flipped, 32)).await.unwrap();
    mgr.put("slow", shadow(&slow, 4)).await.unwrap();
    let pair_of = |name: &str| {
        mgr.get(name).unwrap().routing().unwrap().mirrors[0]
            .pair
            .clone()
    };

    drive(&mgr, "d", 300).await;
    let pair = pair_of("d");
    let mut snap = pair.snapshot();
    for _ in 0..200 {
        if snap.mirrored + snap.dropped >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        snap = pair.snapshot();
    }
    assert_eq!(
        (snap.mirrored, snap.dropped, snap.errors),
        (300, 0, 0),
        "{snap:?}"
    );
    assert_eq!(
        (snap.rows, snap.agreed),
        (300, 0),
        "a flipped model agrees on nothing"
    );
    let threads = RUN_THREADS.lock().unwrap().clone();
    let copies = threads
        .iter()
        .filter(|(name, _)| name.starts_with("slipway-copies-"))
        .count();
    let served = threads
        .iter()
        .filter(|(name, _)| name.starts_with("slipway-model-"))
        .count();
    assert_eq!(
        (copies, served),
        (threads.len() - served, 300),
        "{threads:?}"
    );
    assert!(copies > 0, "{threads:?}");
    for (name, policy) in &threads {
        let want = if name.starts_with("slipway-copies-") {
            SCHED_IDLE
        } else {
            SCHED_BATCH
        };
        assert_eq!(*policy, want, "{name} runs in scheduling policy {policy}");
    }

    // 200 ms per run of at most 4 rows: the queue (1,024 copies) fills and
    // the rest are dropped while clients are answered at once
    drive(&mgr, "slow", 1500).await;
    let snap = pair_of("slow").snapshot();
    assert!(
        snap.dropped > 0 && snap.dropped + snap.mirrored <= 1500,
        "{snap:?}"
    );
}
