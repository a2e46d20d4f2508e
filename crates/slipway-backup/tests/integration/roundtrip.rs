//! A populated store, backed up and restored into a new store of either
//! engine: the restored store equals the original row for row and file for
//! file; a second backup copies nothing; restores refuse non-empty targets.

use slipway_backup::{
    create, restore, verify, BackupError, CreateOptions, RestoreOptions, SystemClock, VerifyOptions,
};
use slipway_metadata::MetadataStore;

use crate::common::{self, export, files, location, populate, progress, stores, Kind};

async fn round_trip(src_kind: Kind, dest_kind: Kind, dst_kind: Kind) {
    if [src_kind, dest_kind, dst_kind].contains(&Kind::Remote) && !common::remote_available() {
        return;
    }
    let src = stores(src_kind).await;
    let big = if [src_kind, dest_kind, dst_kind].contains(&Kind::Remote) {
        9 << 20
    } else {
        1 << 20
    };
    populate(&src, big).await;
    let (loc, _guard) = location(dest_kind);
    let opts = CreateOptions::default();

    let first = create(&src.source(), &loc, &opts, &progress(), &SystemClock)
        .await
        .unwrap();
    let a = &first.manifest.artifacts;
    assert_eq!(a.missing_files, 0, "{a:?}");
    assert_eq!(a.files, 9, "{a:?}");
    assert_eq!(a.blobs, 7, "two pairs of paths share content: {a:?}");
    assert_eq!(a.copied_blobs, a.blobs);
    assert_eq!(first.manifest.counts()["runs"], 12);
    assert!(!first.manifest.counts().contains_key("leases"));

    let report = verify(
        &loc,
        &first.manifest,
        &VerifyOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.model_versions, 4);
    assert_eq!(report.deployments, 1);
    assert_eq!(report.blobs, 7);

    // Incremental: nothing new to copy.
    let second = create(&src.source(), &loc, &opts, &progress(), &SystemClock)
        .await
        .unwrap();
    assert_eq!(second.manifest.artifacts.copied_blobs, 0);
    assert_eq!(second.manifest.artifacts.copied_bytes, 0);
    assert_eq!(second.manifest.artifacts.blobs, 7);
    let listed = loc.list().await.unwrap();
    assert_eq!(listed.iter().filter(|b| b.is_complete()).count(), 2);
    assert!(listed[0].verification.as_ref().is_some_and(|v| v.ok));

    let dst = stores(dst_kind).await;
    let summary = restore(
        &loc,
        &second.manifest,
        &dst.target(),
        &RestoreOptions::default(),
        &progress(),
    )
    .await
    .unwrap();
    assert_eq!(summary.artifacts, 9);
    assert_eq!(
        export(&src).await,
        export(&dst).await,
        "restored rows differ"
    );
    assert_eq!(
        files(&src.artifacts).await,
        files(&dst.artifacts).await,
        "restored files differ"
    );
    assert_eq!(
        dst.store
            .get_setting("restored_from")
            .await
            .unwrap()
            .as_deref(),
        Some(second.manifest.backup_id.as_str())
    );
    assert!(
        dst.store.get_lease("some-lease").await.unwrap().is_none(),
        "leases are not restored"
    );
    // Ids continue after the restored ones (PostgreSQL sequences moved).
    let max: i64 = export(&src).await["experiments"]
        .iter()
        .filter_map(|r| match r[0] {
            slipway_metadata::sql::snapshot::Value::Integer(i) => Some(i),
            _ => None,
        })
        .max()
        .unwrap();
    let next: i64 = dst
        .store
        .create_experiment("after-restore", None, &[])
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        next > max,
        "new experiment id {next} collides with restored ids (max {max})"
    );
    // The registry resolves through the restored stores.
    let mv = dst
        .store
        .get_model_version_by_alias("rm-1", "champion")
        .await
        .unwrap();
    assert_eq!(mv.version, "2");

    // A non-empty target is refused, unless forced.
    let e = restore(
        &loc,
        &first.manifest,
        &dst.target(),
        &RestoreOptions::default(),
        &progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, BackupError::TargetNotEmpty(_)), "{e}");
    assert!(e.to_string().contains("--force"), "{e}");
    let forced = RestoreOptions {
        force: true,
        ..Default::default()
    };
    restore(&loc, &first.manifest, &dst.target(), &forced, &progress())
        .await
        .unwrap();
    assert_eq!(export(&src).await, export(&dst).await);
}

macro_rules! cases {
    ($($name:ident: $src:ident -> $dest:ident -> $dst:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            round_trip(Kind::$src, Kind::$dest, Kind::$dst).await;
        }
    )*};
}

cases! {
    sqlite_via_local_dir_to_sqlite: Local -> Local -> Local;
    sqlite_via_s3_to_postgres: Local -> Remote -> Remote;
    postgres_via_s3_to_sqlite: Remote -> Remote -> Local;
    postgres_via_local_dir_to_postgres: Remote -> Local -> Remote;
}

/// The newest complete backup is found; an incomplete one is never used.
#[tokio::test]
async fn an_incomplete_backup_is_never_taken_for_a_complete_one() {
    let src = stores(Kind::Local).await;
    populate(&src, 1000).await;
    let (loc, _g) = location(Kind::Local);
    let done = create(
        &src.source(),
        &loc,
        &CreateOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    let cut = create(
        &src.source(),
        &loc,
        &CreateOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    // Interrupted before its manifest: everything but the manifest is there.
    loc.delete(&format!("backups/{}/manifest.json", cut.manifest.backup_id))
        .await
        .unwrap();
    let latest = loc.resolve(None).await.unwrap();
    assert_eq!(latest.backup_id, done.manifest.backup_id);
    let e = loc
        .resolve(Some(&cut.manifest.backup_id))
        .await
        .unwrap_err();
    assert!(matches!(e, BackupError::Incomplete { .. }), "{e}");
    let infos = loc.list().await.unwrap();
    assert_eq!(infos.iter().filter(|i| !i.is_complete()).count(), 1);
}

/// A recorded artifact missing from the store is listed, and verify names
/// the model version that needs it.
#[tokio::test]
async fn missing_artifacts_are_reported() {
    let src = stores(Kind::Local).await;
    let prefix = populate(&src, 1000).await;
    let gone = format!("{prefix}/model.onnx");
    src.artifacts
        .delete(&slipway_artifacts::ArtifactPath::parse(&gone).unwrap())
        .await
        .unwrap();
    let (loc, _g) = location(Kind::Local);
    let b = create(
        &src.source(),
        &loc,
        &CreateOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    assert_eq!(b.manifest.artifacts.missing, vec![gone.clone()]);
    let report = verify(
        &loc,
        &b.manifest,
        &VerifyOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap();
    assert!(!report.ok());
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("model version") && p.contains(&gone)),
        "{:?}",
        report.problems
    );
}

/// A backup location inside the artifact store is refused (it would back itself up).
#[tokio::test]
async fn refuses_a_location_inside_the_artifact_store() {
    let src = stores(Kind::Local).await;
    let inside = format!("{}/backups", src.artifacts.location());
    let loc = slipway_backup::Location::open(&inside, &common::s3(), true).unwrap();
    let e = create(
        &src.source(),
        &loc,
        &CreateOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("inside the artifact store"), "{e}");
}

/// Only one backup of a store runs at a time.
#[tokio::test]
async fn a_second_concurrent_backup_is_refused() {
    let src = stores(Kind::Local).await;
    src.store
        .acquire_lease(slipway_backup::BACKUP_LEASE, "other-replica", 60_000)
        .await
        .unwrap();
    let (loc, _g) = location(Kind::Local);
    let e = create(
        &src.source(),
        &loc,
        &CreateOptions::default(),
        &progress(),
        &SystemClock,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, BackupError::Busy { .. }), "{e}");
    assert!(e.to_string().contains("other-replica"), "{e}");
}
