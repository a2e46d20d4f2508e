//! First-start bootstrap of the admin token.
//!
//! No default credential exists. If the operator supplies an admin token
//! (`admin_token` or `admin_token_file`), its hash is stored under the name
//! `admin (supplied)`. Otherwise, on the very first start only, a token is
//! generated, its hash stored, and the secret written to
//! `<data_dir>/initial-admin-token` (mode 0600) and returned so the caller can
//! show it once. Later starts find the `admin_bootstrapped` setting and mint
//! nothing.

use crate::auth::{create_token, hash_token};
use crate::config::Config;
use anyhow::Context;
use slipway_metadata::{MetadataStore, TokenRecord};
use std::io::Write;

const BOOTSTRAPPED: &str = "admin_bootstrapped";
const SUPPLIED_NAME: &str = "admin (supplied)";

/// Ensures an admin token exists; returns a newly generated secret, if any.
pub async fn ensure_admin_token(
    store: &dyn MetadataStore,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    if let Some(secret) = config.supplied_admin_token()? {
        let hash = hash_token(secret.expose());
        if store.find_token_by_hash(&hash).await?.is_none() {
            // Revoke earlier supplied tokens: the operator rotated it.
            for old in store.list_tokens().await? {
                if old.name == SUPPLIED_NAME && old.revoked_at.is_none() {
                    store.revoke_token(&old.id).await?;
                }
            }
            store
                .create_token(&TokenRecord {
                    id: crate::auth::generate_id(),
                    name: SUPPLIED_NAME.into(),
                    secret_hash: hash,
                    scopes: vec!["admin".into()],
                    created_at: slipway_core::now_millis(),
                    revoked_at: None,
                })
                .await?;
        }
        store.set_setting(BOOTSTRAPPED, "supplied").await?;
        return Ok(None);
    }
    if store.get_setting(BOOTSTRAPPED).await?.is_some() {
        return Ok(None);
    }
    let (secret, _) = create_token(store, "initial admin", &["admin".to_string()]).await?;
    write_token_file(config, &secret)?;
    store.set_setting(BOOTSTRAPPED, "generated").await?;
    Ok(Some(secret))
}

fn write_token_file(config: &Config, secret: &str) -> anyhow::Result<()> {
    let path = config.initial_token_path();
    std::fs::create_dir_all(&config.data_dir)?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
