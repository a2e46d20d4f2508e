//! Monitoring routes of a deployment: the prediction log read back, its
//! reference, drift, ground-truth feedback and performance. The work lives
//! in `slipway_monitor`; these routes translate HTTP.

use crate::error::{ApiError, ApiResult};
use crate::extract::read_body;
use crate::routes::table::{Routes, READ, WRITE};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use slipway_core::Error;
use slipway_monitor::frame::parse_time;
use slipway_monitor::PredictionQuery;
use std::collections::HashMap;

const BASE: &str = "/api/v1/deployments/{name}";

/// Every monitoring route (all roles: they read the shared stores).
pub fn routes() -> Routes {
    Routes::new()
        .get(&format!("{BASE}/predictions"), READ, predictions)
        .get(&format!("{BASE}/reference"), READ, get_reference)
        .put(&format!("{BASE}/reference"), WRITE, put_reference)
        .delete(&format!("{BASE}/reference"), WRITE, delete_reference)
        .get(&format!("{BASE}/drift"), READ, drift)
        .post(&format!("{BASE}/feedback"), WRITE, feedback)
        .get(&format!("{BASE}/performance"), READ, performance)
}

/// Default rows of a predictions read.
const DEFAULT_LIMIT: usize = 1000;
/// Most rows of one predictions read.
const MAX_LIMIT: usize = 100_000;

/// Query parameters, refusing any not in `allowed` and repeated ones.
fn params(raw: Option<String>, allowed: &[&str]) -> Result<HashMap<String, String>, Error> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(Error::invalid(format!(
                "Unknown parameter '{k}'; this endpoint takes {}",
                allowed.join(", ")
            )));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(Error::invalid(format!("Parameter '{k}' is given twice")));
        }
    }
    Ok(out)
}

/// The `version` and `window` query parameters of the drift and performance
/// queries (no others).
fn version_and_window(raw: Option<String>) -> Result<(Option<String>, Option<u64>), Error> {
    let mut p = params(raw, &["version", "window"])?;
    let window = p.get("window").map(|w| parse_window(w)).transpose()?;
    Ok((p.remove("version"), window))
}

/// A report as the JSON body of a 200.
fn to_json<T: serde::Serialize>(report: &T) -> ApiResult<Json<Value>> {
    Ok(Json(
        serde_json::to_value(report).map_err(|e| Error::internal(e.to_string()))?,
    ))
}

/// A window given as seconds (`3600`) or with a unit (`90s`, `15m`, `1h`, `7d`).
pub fn parse_window(s: &str) -> Result<u64, Error> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad_window(s))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad_window(s)),
    };
    n.checked_mul(mult).ok_or_else(|| bad_window(s))
}

fn bad_window(s: &str) -> Error {
    Error::invalid(format!(
        "Parameter 'window' must be seconds or a number with s, m, h or d (e.g. 3600, 15m, 1h), got '{s}'"
    ))
}

fn time_param(p: &HashMap<String, String>, key: &str) -> Result<Option<i64>, Error> {
    p.get(key)
        .map(|v| {
            parse_time(v).ok_or_else(|| {
                Error::invalid(format!(
                    "Parameter '{key}' must be an RFC 3339 time (2026-12-01T14:00:00Z) or milliseconds since the epoch, got '{v}'"
                ))
            })
        })
        .transpose()
}

enum Format {
    Json,
    Csv,
    Parquet,
}

fn format_of(p: &HashMap<String, String>, headers: &HeaderMap) -> Result<Format, Error> {
    if let Some(f) = p.get("format") {
        return match f.as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            other => Err(Error::invalid(format!(
                "Parameter 'format' must be json, csv or parquet, got '{other}'"
            ))),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("text/csv") {
        Format::Csv
    } else if accept.contains("parquet") {
        Format::Parquet
    } else {
        Format::Json
    })
}

async fn predictions(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = params(
        raw,
        &["start", "end", "version", "limit", "order", "format"],
    )?;
    let end_ms = time_param(&p, "end")?.unwrap_or_else(|| slipway_monitor::monitor::now_ms() + 1);
    let start_ms = time_param(&p, "start")?.unwrap_or(end_ms - 3_600_000);
    if start_ms >= end_ms {
        return Err(Error::invalid("Parameter 'start' must be before 'end'").into());
    }
    let limit = match p.get("limit") {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(Error::invalid(format!(
                    "Parameter 'limit' must be between 1 and {MAX_LIMIT}, got '{l}'"
                ))
                .into())
            }
        },
        None => DEFAULT_LIMIT,
    };
    let newest_first = match p.get("order").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(
                Error::invalid(format!("Parameter 'order' must be asc or desc, got '{o}'")).into(),
            )
        }
    };
    let format = format_of(&p, &headers)?;
    let rows = s
        .monitor
        .predictions(
            &name,
            PredictionQuery {
                start_ms,
                end_ms,
                version: p.get("version").cloned(),
                limit,
                newest_first,
            },
        )
        .await?;
    let truncated = HeaderValue::from_static(if rows.truncated { "true" } else { "false" });
    let resp = match format {
        Format::Json => Json(json!({
            "deployment": name,
            "start": slipway_monitor::frame::rfc3339(start_ms * 1000),
            "end": slipway_monitor::frame::rfc3339(end_ms * 1000),
            "count": rows.frame.rows.len(),
            "truncated": rows.truncated,
            "columns": rows.frame.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            "predictions": rows.frame.to_json(),
            "skipped_files": rows.skipped,
        }))
        .into_response(),
        Format::Csv => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            )],
            rows.frame.to_csv(),
        )
            .into_response(),
        Format::Parquet => {
            let frame = rows.frame;
            let bytes = tokio::task::spawn_blocking(move || frame.to_parquet())
                .await
                .map_err(|e| Error::internal(e.to_string()))?
                .map_err(Error::internal)?;
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/vnd.apache.parquet"),
                )],
                bytes,
            )
                .into_response()
        }
    };
    let mut resp = resp;
    resp.headers_mut().insert("x-slipway-truncated", truncated);
    if !rows.skipped.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&rows.skipped.len().to_string()) {
            resp.headers_mut().insert("x-slipway-skipped-files", v);
        }
    }
    Ok(resp)
}

async fn get_reference(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = params(raw, &["version"])?;
    Ok(Json(
        match s
            .monitor
            .reference_info(&name, p.get("version").map(String::as_str))
            .await?
        {
            Ok(info) => json!({"status": "ok", "reference": info}),
            Err(reason) => json!({"status": "no_reference", "reason": reason}),
        },
    ))
}

async fn put_reference(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let csv = if ct.starts_with("text/csv") {
        true
    } else if ct.contains("parquet") || ct.starts_with("application/octet-stream") {
        false
    } else {
        return Err(ApiError(Error::new(
            slipway_core::ErrorCode::InvalidParameterValue,
            format!(
                "Send the reference as Parquet (Content-Type: application/vnd.apache.parquet) or CSV with a header row (Content-Type: text/csv), got Content-Type '{ct}'"
            ),
        )));
    };
    let bytes = read_body(body, &s.config).await?;
    let info = s.monitor.put_reference(&name, bytes, csv).await?;
    Ok((
        StatusCode::OK,
        Json(json!({"status": "ok", "reference": info})),
    )
        .into_response())
}

async fn delete_reference(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let deleted = s.monitor.delete_reference(&name).await?;
    Ok(Json(json!({"deleted": deleted})))
}

async fn drift(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (version, window) = version_and_window(raw)?;
    let report = s.monitor.drift(&name, version.as_deref(), window).await?;
    to_json(&report)
}

async fn feedback(
    State(s): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let bytes = read_body(body, &s.config).await?;
    let items = slipway_monitor::feedback::parse(&bytes)?;
    let receipt = s.monitor.feedback(&name, items).await?;
    to_json(&receipt)
}

async fn performance(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (version, window) = version_and_window(raw)?;
    let report = s
        .monitor
        .performance(&name, version.as_deref(), window)
        .await?;
    to_json(&report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn windows_take_units() {
        assert_eq!(parse_window("3600").unwrap(), 3600);
        assert_eq!(parse_window("15m").unwrap(), 900);
        assert_eq!(parse_window("2d").unwrap(), 172_800);
        assert!(parse_window("1w").is_err());
        assert!(parse_window("-5").is_err());
        assert!(parse_window("").is_err());
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(params(Some("window=1h".into()), &["window"]).is_ok());
        assert!(params(Some("windw=1h".into()), &["window"])
            .unwrap_err()
            .message
            .contains("windw"));
        assert!(params(Some("window=1h&window=2h".into()), &["window"])
            .unwrap_err()
            .message
            .contains("twice"));
    }
}
