//! Model-registry rules that sit on top of the store: where a model
//! version's files are, and which sources a version may point at.
//!
//! A model version's `source` is a URI the registry hands back to clients
//! (`get-download-uri`) and that serving loads from, so it must stay inside
//! what Slipway controls: its own artifact store, or prefixes the operator
//! allows. MLflow's server applies a similar rule to local paths; Slipway
//! applies it to every source.

use slipway_core::Error;

use crate::{MetadataStore, Result};

/// The logged model id in a `models:/m-<id>` source, if it is one.
pub fn logged_model_id(source: &str) -> Option<&str> {
    let rest = source.strip_prefix("models:/")?;
    let id = rest.split('/').next()?;
    (id.starts_with("m-") && slipway_core::ids::is_hex_id(&id[2..])).then_some(id)
}

/// Where a model version's files are: the logged model's artifact URI for
/// `models:/m-<id>` sources, the referenced version's location for
/// `models:/<name>/<version>` sources, the run's artifact URI joined with the
/// path for `runs:/<run_id>/<path>`, otherwise the source itself.
pub async fn resolve_download_uri(
    store: &dyn MetadataStore,
    name: &str,
    version: &str,
) -> Result<String> {
    let mut mv = store.get_model_version(name, version).await?;
    for _ in 0..8 {
        if let Some(id) = mv
            .model_id
            .as_deref()
            .or_else(|| logged_model_id(&mv.source))
        {
            return Ok(store.get_logged_model(id).await?.info.artifact_uri);
        }
        if let Some(rest) = mv.source.strip_prefix("runs:/") {
            let (run_id, path) = rest.split_once('/').unwrap_or((rest, ""));
            let run = store.get_run(run_id).await?;
            let base = run.info.artifact_uri.trim_end_matches('/').to_string();
            let path = path.trim_matches('/');
            return Ok(if path.is_empty() {
                base
            } else {
                format!("{base}/{path}")
            });
        }
        let Some(rest) = mv.source.strip_prefix("models:/") else {
            return Ok(mv.source);
        };
        let mut parts = rest.splitn(2, '/');
        let (Some(n), Some(v)) = (parts.next(), parts.next()) else {
            return Ok(mv.source);
        };
        mv = store.get_model_version(n, v).await?;
    }
    Err(Error::invalid(format!(
        "Model version source of '{name}' version {version} nests too deeply"
    )))
}

/// Which model-version sources are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// The artifact store's own location (`s3://bucket/prefix` or an
    /// absolute directory): sources under it are inside the store.
    pub artifact_root: String,
    /// Further URI prefixes the operator allows (setting
    /// `model_source_prefixes`), e.g. `s3://shared-models/`.
    pub allowed_prefixes: Vec<String>,
}

/// Checks a model-version source: accepted are `models:/m-<id>` and
/// `models:/<name>/<version>`, `runs:/<run_id>/<path>`,
/// `mlflow-artifacts:/<path>`, URIs under the artifact store's own location,
/// and the operator's prefixes — each without `.`/`..` segments, backslashes
/// or control characters. Anything else (other schemes such as `file://` or
/// `http://`, relative or absolute local paths) is refused with a message
/// that says what is accepted.
pub fn validate_source(source: &str, policy: &SourcePolicy) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::invalid(format!(
            "Invalid model version source '{}': {why}. Accepted: models:/m-<id>, models:/<name>/<version>, runs:/<run_id>/<path>, mlflow-artifacts:/<path>{}{}",
            printable(source),
            if policy.artifact_root.is_empty() {
                String::new()
            } else {
                format!(", or a path under the artifact store {}", policy.artifact_root)
            },
            if policy.allowed_prefixes.is_empty() {
                String::new()
            } else {
                format!(
                    ", or a URI under {} (setting model_source_prefixes)",
                    policy.allowed_prefixes.join(", ")
                )
            }
        )))
    };
    if source.is_empty() {
        return refuse("it is empty");
    }
    if source.chars().any(char::is_control) || source.contains('\\') {
        return refuse("control characters and backslashes are not allowed");
    }
    let lower = source.to_ascii_lowercase();
    if lower.contains("%2e") || lower.contains("%2f") || lower.contains("%5c") {
        return refuse("percent-encoded '.', '/' or '\\' is not allowed");
    }
    let (scheme_path, query_free) = match source.split_once(['?', '#']) {
        Some((p, _)) => (p, false),
        None => (source, true),
    };
    if !query_free {
        return refuse("query strings and fragments are not allowed");
    }
    if scheme_path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return refuse("'.' and '..' path segments are not allowed");
    }
    if let Some(rest) = source.strip_prefix("models:/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [id] if logged_model_id(source).is_some() && !id.is_empty() => Ok(()),
            [name, version] if !name.is_empty() && version.parse::<u64>().is_ok() => Ok(()),
            _ => refuse("a models:/ source names a logged model (models:/m-<id>) or a registered version (models:/<name>/<version>)"),
        };
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let run_id = rest.split('/').next().unwrap_or("");
        if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return refuse("a runs:/ source starts with a run id");
        }
        return Ok(());
    }
    if let Some(rest) = source.strip_prefix("mlflow-artifacts:") {
        let path = rest.trim_start_matches('/');
        if path.is_empty() || rest.starts_with("//") && !rest.starts_with("///") {
            // `mlflow-artifacts://host/...` would name another server
            return refuse("an mlflow-artifacts: source is a path in this server's store");
        }
        return Ok(());
    }
    let under = |prefix: &str| {
        let prefix = prefix.trim_end_matches('/');
        !prefix.is_empty()
            && (source == prefix
                || source
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/')))
    };
    let root = policy.artifact_root.as_str();
    let local_root = (!root.contains("://")).then(|| format!("file://{root}"));
    if under(root) || local_root.as_deref().is_some_and(under) {
        return Ok(());
    }
    if policy.allowed_prefixes.iter().any(|p| under(p)) {
        return Ok(());
    }
    if source.contains("://") || source.starts_with("file:") {
        return refuse("it is outside Slipway's artifact store and the allowed prefixes");
    }
    refuse("local paths are not accepted")
}

fn printable(s: &str) -> String {
    s.chars().take(300).flat_map(char::escape_default).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy() -> SourcePolicy {
        SourcePolicy {
            artifact_root: "s3://bucket/slipway".into(),
            allowed_prefixes: vec!["s3://shared/models/".into()],
        }
    }

    #[test]
    fn accepts_sources_inside_the_store() {
        for ok in [
            "models:/m-0123456789abcdef0123456789abcdef",
            "models:/iris/3",
            "runs:/0123456789abcdef/model",
            "mlflow-artifacts:/1/0123/artifacts/model",
            "mlflow-artifacts:///1/x",
            "s3://bucket/slipway/1/abc/artifacts/model",
            "s3://shared/models/fraud/v2",
        ] {
            validate_source(ok, &policy()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let local = SourcePolicy {
            artifact_root: "/var/lib/slipway/artifacts".into(),
            allowed_prefixes: vec![],
        };
        validate_source("/var/lib/slipway/artifacts/1/x/model", &local).unwrap();
        validate_source("file:///var/lib/slipway/artifacts/1/x", &local).unwrap();
    }

    #[test]
    fn refuses_everything_else_naming_the_rule() {
        for (bad, why) in [
            ("file:///etc/passwd", "outside"),
            ("http://169.254.169.254/latest/meta-data/", "outside"),
            ("https://example.com/model.onnx", "outside"),
            ("../../etc", "'..'"),
            ("mlflow-artifacts:/1/../../x", "'..'"),
            ("s3://bucket/slipway/../other", "'..'"),
            ("s3://bucket/slipwayx/model", "outside"),
            ("s3://bucket2/slipway/model", "outside"),
            ("/etc/passwd", "local paths"),
            ("model", "local paths"),
            ("", "empty"),
            ("models:/", "models:/"),
            ("models:/iris/latest", "models:/"),
            ("runs:/../x", "'..'"),
            ("mlflow-artifacts://evil.example/x", "this server"),
            ("s3://bucket/slipway/a%2e%2e/b", "percent-encoded"),
            ("s3://bucket/slipway/a?x=1", "query"),
        ] {
            let e = validate_source(bad, &policy()).unwrap_err();
            assert!(e.message.contains(why), "{bad:?}: {}", e.message);
            assert!(e.message.contains("Accepted:"), "{}", e.message);
        }
    }
}
