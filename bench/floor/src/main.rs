//! The benchmark floor: the least an HTTP inference server can do.
//!
//! Parses the same Open Inference Protocol V2 JSON request body that Slipway
//! gets (typed, with the tensor data decoded to numbers and its length checked
//! against the shape) and answers with a fixed body read at start-up (the
//! harness writes Slipway's own response for the same request, so both send
//! the same number of bytes). No model runs. Whatever Slipway does beyond this
//! is the cost of validation, batching, inference and encoding.
//!
//! Usage: `slipway-bench-floor ADDR RESPONSE_FILE`.

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;

/// One input tensor of a V2 request.
#[derive(Deserialize)]
struct Tensor {
    #[allow(dead_code)]
    name: String,
    shape: Vec<i64>,
    #[allow(dead_code)]
    datatype: String,
    data: Vec<f64>,
}

/// A V2 inference request (the fields the benchmark sends).
#[derive(Deserialize)]
struct InferRequest {
    inputs: Vec<Tensor>,
}

async fn infer(State(body): State<Arc<Bytes>>, request: Bytes) -> Response {
    let parsed: InferRequest = match serde_json::from_slice(&request) {
        Ok(parsed) => parsed,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    for tensor in &parsed.inputs {
        let elements: i64 = tensor.shape.iter().product();
        if usize::try_from(elements).ok() != Some(tensor.data.len()) {
            return (StatusCode::BAD_REQUEST, "data does not match shape").into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::clone(&body),
    )
        .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(response_file)) = (args.next(), args.next()) else {
        return Err("usage: slipway-bench-floor ADDR RESPONSE_FILE".into());
    };
    let body = Arc::new(Bytes::from(std::fs::read(&response_file)?));
    let app = Router::new()
        .route("/v2/models/{name}/infer", post(infer))
        .route("/health/ready", get(|| async { "ok" }))
        .with_state(body);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("FLOOR_LISTENING=http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
