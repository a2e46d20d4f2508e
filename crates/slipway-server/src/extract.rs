//! Request extraction for MLflow routes.
//!
//! The mlflow client sends GET parameters in the query string (repeated keys
//! for lists) and every other method's parameters as a JSON body.
//! [`MlflowRequest`] reads either into one typed struct, enforcing the JSON
//! body limit and naming the field at fault when a value has the wrong type.

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::Method;
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::{Map, Value};
use slipway_core::{Error, ErrorCode};

/// A request message parsed from the query (GET) or the JSON body (others).
pub struct MlflowRequest<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for MlflowRequest<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let query = || query_to_json(parts.uri.query().unwrap_or(""));
        if parts.method == Method::GET {
            return from_value(query()).map(MlflowRequest);
        }
        let bytes = read_body(body, &state.config).await?;
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => from_value(query()).map(MlflowRequest),
            // straight from the bytes into the request struct: a large
            // log-batch never becomes a tree of JSON values
            Some(b'{') => from_slice(&bytes).map(MlflowRequest),
            Some(_) => match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Err(e) => Err(malformed(&e)),
                Ok(_) => Err(ApiError(Error::new(
                    ErrorCode::InvalidParameterValue,
                    "Request body must be a JSON object",
                ))),
            },
        }
    }
}

/// Reads a whole body of at most `max_json_body_bytes` within
/// `body_read_timeout_seconds`: a larger body is 413, a slower one 408.
/// The buffer is sized once from `Content-Length` (when given and within the
/// limit), so a large body costs its size in memory, not twice that.
pub async fn read_body(body: Body, config: &Config) -> Result<bytes::Bytes, ApiError> {
    read_body_into(body, config, bytes::BytesMut::new()).await
}

/// [`read_body`] into `buf` (empty; its capacity is used when large
/// enough, e.g. one whose pages were touched off the executor).
pub async fn read_body_into(
    body: Body,
    config: &Config,
    buf: bytes::BytesMut,
) -> Result<bytes::Bytes, ApiError> {
    let limit = BodyLimit {
        bytes: usize::try_from(config.max_json_body_bytes).unwrap_or(usize::MAX),
        setting: Some("max_json_body_bytes"),
    };
    read_timed(body, config, limit, buf).await
}

/// [`read_body`] with a fixed limit of `limit` bytes in place of
/// `max_json_body_bytes`, for small forms (the sign-in form) that no setting
/// should let grow; the same `body_read_timeout_seconds` deadline applies.
pub async fn read_small_body(
    body: Body,
    config: &Config,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let limit = BodyLimit {
        bytes: limit,
        setting: None,
    };
    read_timed(body, config, limit, bytes::BytesMut::new()).await
}

/// The most bytes a body may have, and the setting that says so (if any).
#[derive(Debug, Clone, Copy)]
struct BodyLimit {
    bytes: usize,
    setting: Option<&'static str>,
}

async fn read_timed(
    body: Body,
    config: &Config,
    limit: BodyLimit,
    buf: bytes::BytesMut,
) -> Result<bytes::Bytes, ApiError> {
    let timeout = std::time::Duration::from_secs(config.body_read_timeout_seconds);
    match tokio::time::timeout(timeout, collect(body, limit, buf)).await {
        Ok(read) => read,
        Err(_) => Err(ApiError(Error::new(
            ErrorCode::RequestTimeout,
            format!(
                "Request body not received within {} s (setting body_read_timeout_seconds)",
                timeout.as_secs()
            ),
        ))),
    }
}

/// Bytes a request task copies from its body before yielding to other tasks.
const YIELD_EVERY_BYTES: usize = 1 << 20;

async fn collect(
    mut body: Body,
    limit: BodyLimit,
    mut buf: bytes::BytesMut,
) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let too_large = || {
        let setting = limit
            .setting
            .map(|name| format!(" (setting {name})"))
            .unwrap_or_default();
        ApiError(Error::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "Request body exceeds the limit of {} bytes{setting}",
                limit.bytes
            ),
        ))
    };
    let limit = limit.bytes;
    let hint = axum::body::HttpBody::size_hint(&body);
    if usize::try_from(hint.lower()).map_or(true, |n| n > limit) {
        return Err(too_large());
    }
    let wanted = hint
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(limit);
    buf.clear();
    buf.reserve(wanted);
    // bytes copied since this task last let others run: a large body arriving
    // fast is ready frame after frame, and tokio's cooperative budget counts
    // polls, not bytes, so without this one upload could hold a worker for
    // tens of megabytes (page faults included) while probes wait
    let mut since_yield = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError(Error::new(
                ErrorCode::InvalidParameterValue,
                format!("Could not read request body: {e}"),
            ))
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&data);
            since_yield += data.len();
            if since_yield >= YIELD_EVERY_BYTES {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
    }
    Ok(buf.freeze())
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError(Error::new(
        ErrorCode::InvalidParameterValue,
        format!("Malformed JSON request body: {e}"),
    ))
}

/// Deserializes a JSON object's bytes into a request struct, naming the
/// field at fault; syntax errors are "malformed", type errors name the field.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return malformed(&inner);
        }
        let msg = if path == "." || path.is_empty() {
            format!("Invalid request: {inner}")
        } else {
            format!("Invalid value for parameter '{path}': {inner}")
        };
        ApiError(Error::invalid(msg))
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// Deserializes a JSON value into a request struct, naming the field at fault.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let msg = if path == "." || path.is_empty() {
            format!("Invalid request: {inner}")
        } else {
            format!("Invalid value for parameter '{path}': {inner}")
        };
        ApiError(Error::invalid(msg))
    })
}

/// Turns `a=1&b=x&b=y` into `{"a": "1", "b": ["x", "y"]}`.
pub fn query_to_json(query: &str) -> Value {
    let mut map = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let v = Value::String(v.into_owned());
        match map.get_mut(k.as_ref()) {
            None => {
                map.insert(k.into_owned(), v);
            }
            Some(Value::Array(items)) => items.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
            }
        }
    }
    Value::Object(map)
}

/// Requires a non-empty string parameter, as MLflow's `_assert_required` does.
pub fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError(Error::invalid(format!(
            "Missing value for required parameter '{name}'."
        )))),
    }
}

/// Reads a list given as a JSON array or a single value (one query key).
pub fn de_one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
        Null(()),
    }
    Ok(match OneOrMany::<T>::deserialize(d)? {
        OneOrMany::Many(v) => v,
        OneOrMany::One(v) => vec![v],
        OneOrMany::Null(()) => Vec::new(),
    })
}

/// Reads a boolean given as `true`/`false` or as the strings `"true"`/`"false"`.
pub fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Str(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom(format!(
                "expected a boolean, got \"{s}\""
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn query_repeats_become_arrays() {
        let v = query_to_json("a=1&b=x&b=y&c=%2Fz");
        assert_eq!(v, serde_json::json!({"a": "1", "b": ["x", "y"], "c": "/z"}));
    }

    #[test]
    fn wrong_type_names_the_field() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            name: Option<String>,
        }
        let e = from_value::<R>(serde_json::json!({"name": ["x"]})).unwrap_err();
        assert!(e.0.message.contains("'name'"), "{}", e.0.message);
        assert_eq!(e.0.code, ErrorCode::InvalidParameterValue);
    }
}
