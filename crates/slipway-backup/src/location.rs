//! A backup location (a local directory or `s3://bucket/prefix`) and what
//! is in it: backup ids, manifests, verification records, blobs.
//!
//! Writes go through [`ArtifactStore`], so every file appears atomically
//! (a local rename, or a single S3 PUT / completed multipart upload): a
//! reader never sees half a manifest or half a blob.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use slipway_artifacts::{ArtifactError, ArtifactPath, ArtifactStore, ArtifactStoreConfig};

use crate::error::{BackupError, Result};
use crate::format::{
    self, backup_dir, is_backup_id, is_sha256_hex, Manifest, VerificationRecord, BACKUPS_DIR,
    BLOBS_DIR, MANIFEST_FILE, VERIFICATION_FILE,
};

/// How to reach S3 for `s3://` locations (credentials come from the
/// standard `AWS_*` variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint URL of an S3-compatible server; `None` for AWS (or `SLIPWAY_S3_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Region; `None` for `AWS_REGION` or `us-east-1`.
    pub region: Option<String>,
}

/// A backup location.
#[derive(Debug, Clone)]
pub struct Location {
    store: ArtifactStore,
    uri: String,
}

/// One backup found at a location.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    /// The backup id.
    pub id: String,
    /// Its manifest; `None` for an incomplete (interrupted or running) backup.
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be read, when it exists but is unusable.
    pub manifest_error: Option<String>,
    /// The last verification, if any.
    pub verification: Option<VerificationRecord>,
    /// When it started (from the manifest, else from the id), ms since epoch.
    pub created_at_ms: Option<i64>,
}

impl BackupInfo {
    /// Whether the backup is complete (has a readable manifest).
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some()
    }
}

/// Splits `SRC` into a location and an optional backup id: a path ending in
/// `backups/<id>` names that backup, anything else a location (whose newest
/// complete backup is meant).
pub fn split_source(src: &str) -> (String, Option<String>) {
    let trimmed = src.trim_end_matches('/');
    let mut parts = trimmed.rsplitn(3, '/');
    if let (Some(id), Some(dir), Some(root)) = (parts.next(), parts.next(), parts.next()) {
        if dir == BACKUPS_DIR && is_backup_id(id) && !root.is_empty() {
            return (root.to_string(), Some(id.to_string()));
        }
    }
    (trimmed.to_string(), None)
}

pub(crate) fn key(k: &str) -> Result<ArtifactPath> {
    ArtifactPath::parse(k).map_err(|e| BackupError::format(k, e.to_string()))
}

impl Location {
    /// Opens `uri`: a local directory (absolute, relative or `file://`) or
    /// `s3://bucket[/prefix]`. With `create`, a missing local directory is
    /// created (a backup destination); without, it must exist.
    pub fn open(uri: &str, s3: &S3Options, create: bool) -> Result<Location> {
        let uri = uri.trim();
        if uri.is_empty() {
            return Err(BackupError::Location {
                location: uri.into(),
                reason: "empty".into(),
            });
        }
        if !uri.starts_with("s3://") {
            let path = uri.strip_prefix("file://").unwrap_or(uri);
            if uri.contains("://") && !uri.starts_with("file://") {
                return Err(BackupError::Location {
                    location: uri.into(),
                    reason: "use a local directory or s3://bucket/prefix".into(),
                });
            }
            if !create && !Path::new(path).is_dir() {
                return Err(BackupError::Location {
                    location: uri.into(),
                    reason: "no such directory".into(),
                });
            }
        }
        let cfg = ArtifactStoreConfig {
            root: uri.to_string(),
            s3_endpoint: s3.endpoint.clone(),
            s3_region: s3.region.clone(),
            ..ArtifactStoreConfig::default()
        };
        let store = ArtifactStore::open(&cfg).map_err(|e| BackupError::Location {
            location: uri.into(),
            reason: e.to_string(),
        })?;
        Ok(Location {
            uri: store.location().to_string(),
            store,
        })
    }

    /// Wraps an artifact store as a location (tests: an in-memory store).
    pub fn from_store(store: ArtifactStore) -> Location {
        Location {
            uri: store.location().to_string(),
            store,
        }
    }

    /// The location, for messages (`s3://bucket/prefix` or a directory).
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The store under the location.
    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    /// Writes a small file atomically.
    pub async fn put(&self, k: &str, data: Vec<u8>) -> Result<()> {
        self.store
            .put_bytes(&key(k)?, Bytes::from(data))
            .await
            .map(|_| ())
            .map_err(BackupError::artifacts(format!(
                "writing {k} at {}",
                self.uri
            )))
    }

    /// Reads a small file; `None` when it does not exist.
    pub async fn get(&self, k: &str) -> Result<Option<Bytes>> {
        match self.store.get_bytes(&key(k)?).await {
            Ok(b) => Ok(Some(b)),
            Err(ArtifactError::NotFound(_)) => Ok(None),
            Err(e) => Err(BackupError::Artifacts {
                context: format!("reading {k} at {}", self.uri),
                source: Box::new(e),
            }),
        }
    }

    /// Deletes `k` and everything under `k/`.
    pub async fn delete(&self, k: &str) -> Result<u64> {
        self.store
            .delete(&key(k)?)
            .await
            .map_err(BackupError::artifacts(format!(
                "deleting {k} at {}",
                self.uri
            )))
    }

    /// Ids of every backup directory, complete or not, oldest first.
    pub async fn backup_ids(&self) -> Result<Vec<String>> {
        let entries = self
            .store
            .list_dir(Some(&key(BACKUPS_DIR)?))
            .await
            .map_err(BackupError::artifacts(format!(
                "listing backups at {}",
                self.uri
            )))?;
        let mut ids: Vec<String> = entries
            .into_iter()
            .filter(|e| e.is_dir && is_backup_id(&e.path))
            .map(|e| e.path)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The manifest of backup `id`; `None` while it has none (incomplete).
    pub async fn manifest(&self, id: &str) -> Result<Option<Manifest>> {
        let file = format!("{}/{MANIFEST_FILE}", backup_dir(id));
        match self.get(&file).await? {
            None => Ok(None),
            Some(bytes) => {
                let m = format::read_manifest(&bytes, &file)?;
                if m.backup_id != id {
                    return Err(BackupError::format(
                        &file,
                        format!(
                            "names backup {} but lies in {}",
                            m.backup_id,
                            backup_dir(id)
                        ),
                    ));
                }
                Ok(Some(m))
            }
        }
    }

    /// The last verification record of backup `id`.
    pub async fn verification(&self, id: &str) -> Result<Option<VerificationRecord>> {
        let file = format!("{}/{VERIFICATION_FILE}", backup_dir(id));
        match self.get(&file).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| BackupError::format(&file, e.to_string())),
        }
    }

    /// Every backup at the location, oldest first (by start time), complete or not.
    pub async fn list(&self) -> Result<Vec<BackupInfo>> {
        let mut out = Vec::new();
        for id in self.backup_ids().await? {
            let (manifest, manifest_error) = match self.manifest(&id).await {
                Ok(m) => (m, None),
                Err(e @ (BackupError::Format { .. } | BackupError::Unsupported(_))) => {
                    (None, Some(e.to_string()))
                }
                Err(e) => return Err(e),
            };
            let verification = if manifest.is_some() {
                self.verification(&id).await.unwrap_or(None)
            } else {
                None
            };
            let created_at_ms = manifest
                .as_ref()
                .map(|m| m.created_at_ms)
                .or_else(|| crate::id_time_ms(&id));
            out.push(BackupInfo {
                id,
                manifest,
                manifest_error,
                verification,
                created_at_ms,
            });
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(out)
    }

    /// The manifest of backup `id`, or of the newest complete backup when
    /// `id` is `None`. An incomplete backup is an error saying so.
    pub async fn resolve(&self, id: Option<&str>) -> Result<Manifest> {
        match id {
            Some(id) => match self.manifest(id).await? {
                Some(m) => Ok(m),
                None if self.backup_ids().await?.iter().any(|i| i == id) => {
                    Err(BackupError::Incomplete {
                        id: id.to_string(),
                        location: self.uri.clone(),
                    })
                }
                None => Err(BackupError::NotFound(format!(
                    "no backup {id} at {}",
                    self.uri
                ))),
            },
            None => {
                // The newest by the time in the manifest (ids order by
                // time too, but a clock is more trustworthy than a name).
                let mut newest: Option<Manifest> = None;
                for id in self.backup_ids().await? {
                    if let Some(m) = self.manifest(&id).await? {
                        let newer = newest.as_ref().is_none_or(|n| {
                            (m.created_at_ms, &m.backup_id) > (n.created_at_ms, &n.backup_id)
                        });
                        if newer {
                            newest = Some(m);
                        }
                    }
                }
                newest.ok_or_else(|| {
                    BackupError::NotFound(format!("no complete backup at {}", self.uri))
                })
            }
        }
    }

    /// Every blob at the location: SHA-256 → size.
    pub async fn blobs(&self) -> Result<HashMap<String, u64>> {
        let prefix = ObjectPath::from(BLOBS_DIR);
        let metas: Vec<object_store::ObjectMeta> = match self
            .store
            .object_store()
            .list(Some(&prefix))
            .try_collect()
            .await
        {
            Ok(m) => m,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => {
                return Err(BackupError::ObjectStore {
                    context: format!("listing blobs at {}", self.uri),
                    source: Box::new(e),
                })
            }
        };
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_string();
                is_sha256_hex(&name).then_some((name, m.size))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_name_a_location_or_one_backup() {
        assert_eq!(split_source("s3://b/p"), ("s3://b/p".into(), None));
        assert_eq!(
            split_source("s3://b/p/backups/20261201T000000Z-abc/"),
            ("s3://b/p".into(), Some("20261201T000000Z-abc".into()))
        );
        assert_eq!(
            split_source("/var/backups/backups/20261201T000000Z-abc"),
            ("/var/backups".into(), Some("20261201T000000Z-abc".into()))
        );
        assert_eq!(split_source("/srv/backups"), ("/srv/backups".into(), None));
    }
}
