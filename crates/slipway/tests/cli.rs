//! The command line: `config check` and `token` against a temporary data dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn slipway(data_dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.arg("--data-dir").arg(data_dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("SLIPWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("slipway runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn config_check_prints_redacted_config_and_fails_on_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let ok = slipway(
        dir.path(),
        &["config", "check"],
        &[
            ("SLIPWAY_ADMIN_TOKEN", "a-very-secret-admin-token"),
            ("SLIPWAY_METADATA_URL", "postgres://u:pw@db/x"),
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    let out = text(&ok);
    assert!(out.contains("max_page_size = 50000"), "{out}");
    assert!(
        !out.contains("a-very-secret-admin-token") && !out.contains(":pw@"),
        "{out}"
    );

    let bad = slipway(
        dir.path(),
        &["config", "check"],
        &[("SLIPWAY_MAX_PAGE_SIZE", "0")],
    );
    assert!(!bad.status.success());
    assert!(text(&bad).contains("max_page_size"), "{}", text(&bad));

    let bad = slipway(
        dir.path(),
        &["config", "check"],
        &[("SLIPWAY_LISTEN", "not-an-address")],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad).to_lowercase().contains("listen"),
        "{}",
        text(&bad)
    );
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let created = slipway(
        dir.path(),
        &["token", "create", "--name", "ci", "--scope", "read,write"],
        &[],
    );
    assert!(created.status.success(), "{}", text(&created));
    let out = text(&created);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(out.contains("token:  slw_"), "{out}");

    let listed = text(&slipway(dir.path(), &["token", "list"], &[]));
    assert!(
        listed.contains(&id) && listed.contains("read,write") && listed.contains("active"),
        "{listed}"
    );
    assert!(
        !listed.contains("slw_"),
        "secrets must never be listed: {listed}"
    );

    let revoked = slipway(dir.path(), &["token", "revoke", &id], &[]);
    assert!(revoked.status.success(), "{}", text(&revoked));
    assert!(text(&slipway(dir.path(), &["token", "list"], &[])).contains("revoked"));

    let unknown = slipway(dir.path(), &["token", "revoke", "nope"], &[]);
    assert!(!unknown.status.success());

    let bad_scope = slipway(
        dir.path(),
        &["token", "create", "--name", "x", "--scope", "root"],
        &[],
    );
    assert!(!bad_scope.status.success());
    assert!(
        text(&bad_scope).contains("Unknown scope 'root'"),
        "{}",
        text(&bad_scope)
    );
}
