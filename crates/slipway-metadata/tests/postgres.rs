//! Runs the conformance suite on PostgreSQL.
//!
//! Needs `SLIPWAY_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`):
//! the test creates a fresh database `slipway_t_<random>` through it, runs the
//! suite there and drops it. Set `SLIPWAY_TEST_SKIP_POSTGRES=1` to skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use slipway_metadata::sql::{SqlOptions, SqlStore};
use slipway_metadata::{conformance, MetadataStore};
use sqlx::{Connection, Executor, PgConnection};

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[host_start..].find('/') {
        Some(i) => &base[..host_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

fn admin_url() -> Option<String> {
    match std::env::var("SLIPWAY_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("SLIPWAY_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
                eprintln!("SKIPPED: PostgreSQL conformance (SLIPWAY_TEST_SKIP_POSTGRES=1)");
                return None;
            }
            panic!(
                "SLIPWAY_TEST_POSTGRES_URL is not set. Point it at a PostgreSQL server where the user may create \
                 databases, e.g. SLIPWAY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test, or set \
                 SLIPWAY_TEST_SKIP_POSTGRES=1 to skip the PostgreSQL tests."
            );
        }
    }
}

struct TempDb {
    admin: String,
    name: String,
    url: String,
}

impl TempDb {
    async fn create(admin: &str) -> TempDb {
        let name = format!("slipway_t_{}", slipway_core::ids::new_id());
        let mut conn = PgConnection::connect(admin)
            .await
            .expect("connect to SLIPWAY_TEST_POSTGRES_URL");
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("create test database");
        conn.close().await.ok();
        TempDb {
            admin: admin.to_string(),
            url: with_database(admin, &name),
            name,
        }
    }

    async fn drop_db(&self) {
        let mut conn = PgConnection::connect(&self.admin)
            .await
            .expect("admin connect");
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop test database");
        conn.close().await.ok();
    }
}

/// Runs `f` on a fresh database, dropping it afterwards even if `f` panics.
/// `f` runs on its own thread and runtime so a panic is caught at `join`.
async fn with_temp_db<F, Fut>(f: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let Some(admin) = admin_url() else { return };
    let db = TempDb::create(&admin).await;
    let url = db.url.clone();
    let res = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f(url));
        })
        .join()
    })
    .await
    .expect("join");
    db.drop_db().await;
    if let Err(panic) = res {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conformance() {
    with_temp_db(|url| async move {
        // Several replicas starting at once migrate safely.
        let (a, b, c) = tokio::join!(
            SqlStore::connect(&url, SqlOptions::default()),
            SqlStore::connect(&url, SqlOptions::default()),
            SqlStore::connect(&url, SqlOptions::default()),
        );
        let (a, b, c) = (
            a.expect("replica a"),
            b.expect("replica b"),
            c.expect("replica c"),
        );
        assert!(a.is_postgres());
        b.close().await;
        c.close().await;
        conformance::run_all(Arc::new(a.clone())).await;
        a.close().await;
        let again = SqlStore::connect(&url, SqlOptions::default())
            .await
            .expect("reconnect");
        assert_eq!(
            again.get_experiment("0").await.expect("default").name,
            "Default"
        );
        again.close().await;
    })
    .await;
}

#[test]
fn database_url_rewrite() {
    assert_eq!(
        with_database("postgres://u@h:5432/test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h:5432", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
}
