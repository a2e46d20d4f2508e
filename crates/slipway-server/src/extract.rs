//! Request extraction for MLflow routes.
//!
//! The mlflow client sends GET parameters in the query string (repeated keys
//! for lists) and every other method's parameters as a JSON body.
//! [`MlflowRequest`] reads either into one typed struct, enforcing the JSON
//! body limit and naming the field at fault when a value has the wrong type.

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
        let limit = state.config.max_json_body_bytes as usize;
        let (parts, body) = req.into_parts();
        let query_value = query_to_json(parts.uri.query().unwrap_or(""));
        let value = if parts.method == Method::GET {
            query_value
        } else {
            let bytes = read_body(body, limit).await?;
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                query_value
            } else {
                serde_json::from_slice::<Value>(&bytes).map_err(|e| {
                    ApiError(Error::new(
                        ErrorCode::InvalidParameterValue,
                        format!("Malformed JSON request body: {e}"),
                    ))
                })?
            }
        };
        if !value.is_object() {
            return Err(ApiError(Error::new(
                ErrorCode::InvalidParameterValue,
                "Request body must be a JSON object",
            )));
        }
        from_value(value).map(MlflowRequest)
    }
}

/// Reads a body up to `limit` bytes; a larger body is 413 with MLflow's error JSON.
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .map(|s| s.to_string().contains("length limit"))
            .unwrap_or(false)
            || e.to_string().contains("length limit");
        if too_large {
            ApiError(Error::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "Request body exceeds the limit of {limit} bytes (setting max_json_body_bytes)"
                ),
            ))
        } else {
            ApiError(Error::new(
                ErrorCode::InvalidParameterValue,
                format!("Could not read request body: {e}"),
            ))
        }
    })
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
