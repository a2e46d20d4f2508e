//! Health, readiness, server info and `/metrics`.

use crate::routes::table::{Access, Routes};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new()
        .get("/health", Access::Public, || async { "OK" })
        .get("/health/live", Access::Public, live)
        .get("/health/ready", Access::Public, ready)
        .get("/metrics", Access::Metrics, metrics)
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "live"}))
}

/// Readiness of this replica: start-up done, metadata store answering,
/// artifact store usable, and no deployment still in its first load (or,
/// with `strict_readiness`, every deployment serving and answering a shallow
/// inference). Returns the reasons it is not ready.
pub async fn readiness(state: &AppState) -> Vec<serde_json::Value> {
    let mut reasons = Vec::new();
    if !state.health.started() {
        reasons.push(json!({"component": "server", "reason": "starting up or shutting down"}));
        return reasons;
    }
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness: metadata store unreachable");
        reasons.push(json!({"component": "metadata store", "reason": "unreachable"}));
    }
    if let Err(e) = state.health.artifact_store(&state.artifacts).await {
        tracing::warn!(error = %e, "readiness: artifact store not usable");
        reasons.push(json!({"component": "artifact store", "reason": e}));
    }
    let serving = state.serving.readiness(state.config.strict_readiness).await;
    for (name, why) in serving.not_ready {
        reasons.push(json!({"component": "deployment", "deployment": name, "reason": why}));
    }
    reasons
}

async fn ready(State(state): State<AppState>) -> Response {
    let reasons = readiness(&state).await;
    if reasons.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reasons": reasons})),
        )
            .into_response()
    }
}

/// Gauges read from the deployments when Prometheus scrapes: readiness,
/// queue depth and capacity of every loaded version, running rollouts'
/// states, static shadows' agreement.
fn sample_gauges(state: &AppState) {
    use slipway_serving::RolloutState;
    let rollouts = state.serving.active_rollout_states();
    for dep in state.serving.list() {
        let name = dep.name.clone();
        let ready = dep.status().state == slipway_serving::DeploymentState::Ready;
        metrics::gauge!("slipway_deployment_ready", "deployment" => name.clone()).set(if ready {
            1.0
        } else {
            0.0
        });
        for v in dep.loaded_versions() {
            let labels = [("deployment", name.clone()), ("version", v.version.clone())];
            metrics::gauge!("slipway_inference_queue_depth", &labels)
                .set(v.worker.queue_len() as f64);
            metrics::gauge!("slipway_inference_queue_capacity", &labels)
                .set(v.worker.queue_capacity() as f64);
        }
        match rollouts.get(&name).and_then(|s| RolloutState::parse(s)) {
            Some(s) => slipway_serving::controller::set_state_gauge(&name, Some(s)),
            None => {
                // ended (the controller replica set the final state): no
                // replica may go on showing it running
                for s in [RolloutState::Progressing, RolloutState::Paused] {
                    metrics::gauge!("slipway_rollout_state", "deployment" => name.clone(), "state" => s.as_str())
                        .set(0.0);
                }
            }
        }
        if let Some((version, agreement)) = dep.shadow_agreement() {
            metrics::gauge!("slipway_shadow_agreement", "deployment" => name.clone(), "version" => version)
                .set(agreement);
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    sample_gauges(&state);
    crate::backups::export_metrics(&state.config, state.store.as_ref()).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /api/3.0/mlflow/server-info`: what the mlflow client probes for capabilities.
pub async fn server_info() -> Json<serde_json::Value> {
    Json(json!({
        "store_type": "SqlStore",
        "workspaces_enabled": false,
        "trace_archival_enabled": false,
        "multipart_uploads_enabled": false,
        "multipart_downloads_enabled": false,
        "presigned_upload_run_id_supported": false,
        "presigned_upload_model_id_supported": false,
        "features_enabled": {"gateway": false},
    }))
}
