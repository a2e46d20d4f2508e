//! MLflow features that Slipway does not have — traces, evaluation datasets,
//! the AI gateway and its LLM connections, scorers, prompts' trace metrics,
//! webhooks, review queues and label schemas, the MCP registry — answered the
//! way MLflow's own server answers when there is nothing to show, so the
//! MLflow UI's pages that call them on load render empty instead of failing.
//!
//! Registered under `/ajax-api` only (the UI's prefix): API clients of
//! `/api/...` still get `404 ENDPOINT_NOT_FOUND` for what does not exist.
//! Reads are `read`; the gateway proxy's POST is `write`, as any POST that
//! could change something. The review page's `get-or-create-user` POST is
//! `read`: the page sends it on load for any viewer, and here it creates
//! nothing.

use crate::routes::table::{Routes, READ, WRITE};
use axum::Json;
use serde_json::{json, Value};

/// Routes of this module (absolute paths).
pub fn routes() -> Routes {
    Routes::new()
        // no gateway configured: MLflow "pretends an empty gateway service is running"
        .get("/ajax-api/2.0/mlflow/gateway-proxy", READ, no_endpoints)
        .post("/ajax-api/2.0/mlflow/gateway-proxy", WRITE, no_endpoints)
        // empty search results: protobuf JSON leaves out empty lists
        .post("/ajax-api/3.0/mlflow/traces/search", READ, nothing)
        .get("/ajax-api/3.0/mlflow/traces/search", READ, nothing)
        .post("/ajax-api/3.0/mlflow/traces/metrics", READ, nothing)
        .get("/ajax-api/2.0/mlflow/traces", READ, nothing)
        .post("/ajax-api/3.0/mlflow/datasets/search", READ, nothing)
        .get("/ajax-api/3.0/mlflow/scorers/list", READ, nothing)
        // no user accounts (Slipway authenticates tokens): no current user
        .get("/ajax-api/2.0/mlflow/users/current", READ, nothing)
        // no LLM connections (settings page): no secrets, endpoints, models, bindings
        .get("/ajax-api/3.0/mlflow/gateway/secrets/list", READ, nothing)
        .get("/ajax-api/3.0/mlflow/gateway/endpoints/list", READ, nothing)
        .get(
            "/ajax-api/3.0/mlflow/gateway/model-definitions/list",
            READ,
            nothing,
        )
        .get(
            "/ajax-api/3.0/mlflow/gateway/endpoints/bindings/list",
            READ,
            nothing,
        )
        // no webhooks (settings page)
        .get("/ajax-api/2.0/mlflow/webhooks", READ, nothing)
        // no review queues or label schemas (an experiment's review page)
        .get("/ajax-api/3.0/mlflow/review-queues/list", READ, nothing)
        .get("/ajax-api/3.0/mlflow/label-schemas/list", READ, nothing)
        .post(
            "/ajax-api/3.0/mlflow/review-queues/get-or-create-user",
            READ,
            nothing,
        )
        // no MCP registry: MLflow's FastAPI route answers the list, even empty
        .get("/ajax-api/3.0/mlflow/mcp-servers", READ, no_mcp_servers)
        // no AI assistant: no providers, nothing configured
        .get(
            "/ajax-api/3.0/mlflow/assistant/config",
            READ,
            assistant_config,
        )
        .get(
            "/ajax-api/3.0/mlflow/assistant/providers",
            READ,
            assistant_providers,
        )
}

async fn assistant_config() -> Json<Value> {
    Json(json!({"providers": {}, "projects": {}, "remote_access_allowed": false}))
}

async fn assistant_providers() -> Json<Value> {
    Json(json!({"providers": [], "resolved": null, "gateway_vendor_options": {}}))
}

async fn no_endpoints() -> Json<Value> {
    Json(json!({"endpoints": []}))
}

async fn no_mcp_servers() -> Json<Value> {
    Json(json!({"mcp_servers": [], "next_page_token": null}))
}

async fn nothing() -> Json<Value> {
    Json(json!({}))
}
