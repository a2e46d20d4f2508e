//! The backup lease: one backup or prune of a store at a time, whichever
//! replica or command runs it, through the metadata store's lease API.
//!
//! The lease lasts [`LEASE_TTL_MS`] and is renewed every third of that by a
//! background task while the work runs; if a renewal fails (the store is
//! unreachable, or another holder took the lease after it expired), the
//! work is abandoned before its manifest is written.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slipway_metadata::MetadataStore;

use crate::error::{BackupError, Result};

/// Name of the lease held while a backup or prune runs.
pub const BACKUP_LEASE: &str = "backup";
/// How long the lease lasts without renewal.
pub(crate) const LEASE_TTL_MS: i64 = 60_000;

/// A held lease, renewed in the background until released.
pub struct HeldLease {
    store: Arc<dyn MetadataStore>,
    name: String,
    holder: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

/// Whether `holder` (`host:pid:...`, as Slipway processes name
/// themselves) is a process on this machine that no longer exists.
fn holder_is_gone(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    !here.is_empty()
        && host == here
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl HeldLease {
    /// Takes the backup lease or fails with [`BackupError::Busy`] naming its holder.
    pub(crate) async fn acquire(store: Arc<dyn MetadataStore>, holder: &str) -> Result<Self> {
        Self::acquire_named(store, BACKUP_LEASE, holder).await
    }

    /// Takes the lease `name` (renewed in the background) or fails with
    /// [`BackupError::Busy`] naming its holder.
    pub async fn acquire_named(
        store: Arc<dyn MetadataStore>,
        name: &str,
        holder: &str,
    ) -> Result<Self> {
        let mut got = store.acquire_lease(name, holder, LEASE_TTL_MS).await?;
        if !got {
            // A holder on this machine whose process is gone (killed
            // mid-backup) cannot renew: take over instead of waiting for
            // its lease to expire.
            if let Some(dead) = store
                .get_lease(name)
                .await?
                .map(|l| l.holder)
                .filter(|h| holder_is_gone(h))
            {
                tracing::warn!(lease = %name, holder = %dead, "taking over a lease whose holder process is gone");
                store.release_lease(name, &dead).await?;
                got = store.acquire_lease(name, holder, LEASE_TTL_MS).await?;
            }
        }
        if !got {
            let current = store
                .get_lease(name)
                .await?
                .map(|l| l.holder)
                .unwrap_or_else(|| "another process".into());
            return Err(BackupError::Busy {
                lease: name.into(),
                holder: current,
            });
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let (store, name, holder, lost) = (
                store.clone(),
                name.to_string(),
                holder.to_string(),
                lost.clone(),
            );
            tokio::spawn(async move {
                let every = Duration::from_millis((LEASE_TTL_MS / 3) as u64);
                loop {
                    tokio::time::sleep(every).await;
                    match store.acquire_lease(&name, &holder, LEASE_TTL_MS).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(lease = %name, "lease taken by another holder");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => {
                            // Keep trying until the lease would have expired.
                            tracing::warn!(lease = %name, error = %e, "could not renew a lease");
                        }
                    }
                }
            })
        };
        Ok(Self {
            store,
            name: name.to_string(),
            holder: holder.to_string(),
            lost,
            renewer,
        })
    }

    /// Fails when the lease was lost.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(BackupError::LeaseLost(self.name.clone()));
        }
        Ok(())
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.store.release_lease(&self.name, &self.holder).await {
            tracing::warn!(lease = %self.name, error = %e, "could not release a lease; it expires on its own");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::holder_is_gone;

    #[test]
    fn only_dead_processes_on_this_machine_are_gone() {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        if host.is_empty() {
            return; // not Linux
        }
        assert!(!holder_is_gone(&format!(
            "{host}:{}:abcd",
            std::process::id()
        )));
        assert!(holder_is_gone(&format!("{host}:4000000000:abcd")));
        assert!(!holder_is_gone("another-host:4000000000:abcd"));
        assert!(!holder_is_gone("replica-a"));
    }
}
