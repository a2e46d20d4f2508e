//! The command line: `config check` and `token` against a temporary data dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

/// Runs `slipway <args> --data-dir <data_dir>` with no `SLIPWAY_*` variables
/// but `env`.
fn slipway(data_dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_in(
        None,
        args.iter()
            .copied()
            .chain(["--data-dir", data_dir.to_str().unwrap()]),
        env,
    )
}

fn run_in<'a>(
    cwd: Option<&std::path::Path>,
    args: impl IntoIterator<Item = &'a str>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("SLIPWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("slipway runs")
}

/// A data dir holding an empty store, as a first `slipway up` leaves it.
fn store_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/slipway.db", dir.path().display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        slipway_metadata::sql::SqlStore::connect(&url, Default::default())
            .await
            .unwrap()
            .close()
            .await;
    });
    dir
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
    let dir = store_dir();
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

/// Commands that manage a store never create one: in a directory without
/// data they fail, say where they looked, and leave nothing behind.
#[test]
fn token_commands_do_not_create_a_store() {
    let cwd = tempfile::tempdir().unwrap();
    for args in [
        vec!["token", "list"],
        vec!["token", "create", "--name", "x", "--scope", "read"],
        vec!["token", "revoke", "abc"],
    ] {
        let out = run_in(Some(cwd.path()), args.clone(), &[]);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("No Slipway metadata database at ./slipway-data/slipway.db"),
            "{args:?}: {}",
            text(&out)
        );
        let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} created {left:?}");
    }
}

/// Each subcommand lists only its own flags, and optional ones look optional.
#[test]
fn subcommands_take_only_their_own_flags() {
    let help = |args: &[&str]| text(&run_in(None, args.iter().copied(), &[]));
    let deploy = help(&["deploy", "--help"]);
    assert!(deploy.lines().count() < 30, "{deploy}");
    assert!(
        !deploy.contains("--max-batch-size") && !deploy.contains("--listen"),
        "{deploy}"
    );
    let usage = deploy.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert!(
        !usage.contains("--url") && !usage.contains("--token"),
        "{usage}"
    );
    let tokens = help(&["token", "list", "--help"]);
    assert!(
        tokens.contains("--data-dir") && !tokens.contains("--listen"),
        "{tokens}"
    );
    for cmd in [
        ["deployment", "list"],
        ["deployment", "show"],
        ["deployment", "delete"],
    ] {
        let h = help(&[cmd[0], cmd[1], "--help"]);
        assert!(h.contains("--url") && !h.contains("--role"), "{h}");
    }
    for flag in [
        "--traffic",
        "--sticky-header",
        "--shadow",
        "--on-alias-change",
        "--spec",
    ] {
        assert!(deploy.contains(flag), "{flag}: {deploy}");
    }
    for cmd in [
        "start", "list", "status", "promote", "abort", "pause", "resume",
    ] {
        let h = help(&["rollout", cmd, "--help"]);
        assert!(h.contains("--url") && !h.contains("--role"), "{cmd}: {h}");
    }
    let up = help(&["up", "--help"]);
    assert!(
        up.contains("--role") && up.contains("--header-read-timeout-seconds"),
        "{up}"
    );
    // server flags are not global any more
    let misplaced = run_in(None, ["--listen", "127.0.0.1:0", "up"], &[]);
    assert!(!misplaced.status.success());
}

/// `backup create|list|verify|restore` on a store made by `SqlStore`:
/// summaries, JSON, exit statuses, a refused non-empty target; backup
/// commands never create the store they back up.
#[test]
fn backups_are_created_listed_verified_and_restored() {
    let dir = store_dir();
    let dest = tempfile::tempdir().unwrap();
    let to = dest.path().to_str().unwrap();
    let created = slipway(dir.path(), &["backup", "create", "--to", to], &[]);
    assert!(created.status.success(), "{}", text(&created));
    assert!(text(&created).contains("complete in"), "{}", text(&created));
    let json = slipway(dir.path(), &["backup", "create", "--to", to, "--json"], &[]);
    let summary: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON summary");
    assert_eq!(summary["counts"]["experiments"], 1, "{summary}");
    let id = summary["backup_id"].as_str().unwrap().to_string();

    let listed = run_in(None, ["backup", "list", to], &[]);
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(
        text(&listed).contains(&id) && text(&listed).contains("complete"),
        "{}",
        text(&listed)
    );

    let verified = run_in(None, ["backup", "verify", to, "--json"], &[]);
    assert!(verified.status.success(), "{}", text(&verified));
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["backup_id"], id.as_str());

    let target = tempfile::tempdir().unwrap();
    let restored = slipway(target.path(), &["backup", "restore", to], &[]);
    assert!(restored.status.success(), "{}", text(&restored));
    let again = slipway(target.path(), &["backup", "restore", to], &[]);
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    let missing = run_in(None, ["backup", "verify", "/nonexistent/backups"], &[]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no such directory"),
        "{}",
        text(&missing)
    );

    let empty = tempfile::tempdir().unwrap();
    let nothing = slipway(empty.path(), &["backup", "create", "--to", to], &[]);
    assert!(!nothing.status.success());
    assert!(
        !empty.path().join("slipway.db").exists(),
        "backup create never creates a store"
    );
}

/// `doctor` exits non-zero on FAIL and names each check; `--json` for scripts.
#[test]
fn doctor_reports_each_check_and_fails_on_a_missing_store() {
    let empty = tempfile::tempdir().unwrap();
    let out = slipway(empty.path(), &["doctor", "--json"], &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["ok"], false);
    let checks = report["checks"].as_array().unwrap();
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("configuration").as_deref(), Some("OK"), "{report}");
    assert_eq!(
        status("metadata store").as_deref(),
        Some("FAIL"),
        "{report}"
    );
    assert!(
        checks
            .iter()
            .all(|c| c["status"] == "OK" || c["hint"].is_string()),
        "{report}"
    );

    let dir = store_dir();
    let ok = slipway(dir.path(), &["doctor"], &[]);
    let t = text(&ok);
    for name in [
        "metadata store",
        "migrations",
        "clock",
        "artifact store",
        "model cache disk",
        "deployments",
        "artifacts",
    ] {
        assert!(
            t.lines().any(|l| l.starts_with("OK") && l.contains(name)),
            "{name}: {t}"
        );
    }
}

/// Malformed `deploy` flags are refused before anything is sent (no server
/// runs here: a request would fail with "contacting the server").
#[test]
fn malformed_deploy_flags_are_refused_before_sending() {
    for (flag, value, want) in [
        (
            "--traffic",
            "90",
            "expected VERSION=WEIGHT or @ALIAS=WEIGHT",
        ),
        ("--shadow", "5:half", "fraction 'half' is not a number"),
        ("--on-alias-change", "{oops", "not JSON"),
    ] {
        let out = run_in(
            None,
            [
                "deploy",
                "d",
                "--model",
                "m",
                "--alias",
                "a",
                flag,
                value,
                "--url",
                "http://127.0.0.1:9",
            ],
            &[("SLIPWAY_TOKEN", "t")],
        );
        assert!(!out.status.success(), "{flag} {value}: {}", text(&out));
        assert!(text(&out).contains(want), "{flag} {value}: {}", text(&out));
        assert!(
            !text(&out).contains("contacting the server"),
            "{flag} {value}: {}",
            text(&out)
        );
    }
}

// ---------------------------------------------------------------------------
// `slipway doctor`: each WARN and FAIL made to happen for real (operations
// block; keep at the end of the file).

/// The admin token of the servers these tests start.
const DOCTOR_ADMIN: &str = "doctor-test-admin-token-0123456789";

/// One HTTP/1.1 exchange on a new connection; returns the status and body.
fn http(url: &str, method: &str, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {DOCTOR_ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// Polls `f` every 50 ms until it is true or `secs` pass.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `slipway up` with the demo (the iris model registered through the
/// server's own upload path, digests recorded, and deployed), on `data_dir`,
/// answering one prediction and staying up until the prediction log has
/// written it (flushed after a second), then stopped with SIGTERM.
fn serve_the_demo_once(data_dir: &std::path::Path) {
    use std::io::BufRead;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("SLIPWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("SLIPWAY_ADMIN_TOKEN", DOCTOR_ADMIN)
        .env("SLIPWAY_PREDICTION_LOG_FLUSH_SECONDS", "1");
    let mut child = cmd.spawn().expect("slipway up starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(url) = line.strip_prefix("SLIPWAY_LISTENING=") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the server prints its URL");
    wait_for(120, "readiness", || {
        http(&url, "GET", "/health/ready", None).is_ok_and(|(s, _)| s == 200)
    });
    let infer = r#"{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
    let (status, body) = http(&url, "POST", "/v2/models/iris/infer", Some(infer)).unwrap();
    assert_eq!(status, 200, "{body}");
    let predictions = data_dir.join("artifacts/predictions");
    wait_for(60, "the prediction log's first file", || {
        predictions.is_dir()
            && files_under(&predictions)
                .iter()
                .any(|f| f.ends_with(".parquet"))
    });
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "slipway up exited with {st}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("slipway up did not stop within 60 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `doctor --json` on `data_dir` with `env`: the exit status and each
/// check's (status, detail) by name.
fn doctor(
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (bool, std::collections::BTreeMap<String, (String, String)>) {
    let out = slipway(data_dir, &["doctor", "--json"], env);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&out)));
    assert_eq!(report["ok"], out.status.success(), "{report}");
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert!(
                c["status"] == "OK" || c["hint"].as_str().is_some_and(|h| !h.is_empty()),
                "a finding without a hint: {c}"
            );
            (
                c["name"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["detail"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    (out.status.success(), checks)
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// A deployed model version whose file was altered on disk, one that was
/// deleted, and a file nobody recorded: each is named by the check that
/// must find it, with the status it deserves; the prediction log's own
/// files are never taken for orphans.
#[test]
fn doctor_finds_altered_missing_and_orphaned_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    serve_the_demo_once(dir.path());
    let arts = dir.path().join("artifacts");
    let files = files_under(&arts);
    assert!(
        files.iter().any(|f| f.starts_with("predictions/")),
        "the prediction log wrote nothing: {files:?}"
    );
    let onnx = files
        .iter()
        .find(|f| f.ends_with("model.onnx"))
        .cloned()
        .unwrap_or_else(|| panic!("no model.onnx in {files:?}"));
    let mlmodel = onnx.replace("model.onnx", "MLmodel");

    // A healthy store: every check but `backups` (none taken yet) is OK.
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(ok, "{checks:?}");
    for (name, (status, detail)) in &checks {
        let want = if name == "backups" { "WARN" } else { "OK" };
        assert_eq!(status, want, "{name}: {detail}");
    }
    assert!(
        checks["deployments"].1.contains("1 deployment(s)"),
        "{checks:?}"
    );
    assert!(
        checks["artifacts"].1.contains("monitoring file(s)"),
        "{checks:?}"
    );
    assert!(checks["backups"].1.contains("no backup"), "{checks:?}");

    // The deployed model's bytes altered on disk (same size): FAIL, naming the file.
    let path = arts.join(&onnx);
    let original = std::fs::read(&path).unwrap();
    let mut altered = original.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x5a;
    std::fs::write(&path, &altered).unwrap();
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(!ok, "{checks:?}");
    let (status, detail) = &checks["deployments"];
    assert_eq!(status, "FAIL", "{detail}");
    assert!(
        detail.contains(&format!("{onnx} has SHA-256")) && detail.contains("recorded"),
        "{detail}"
    );
    assert_eq!(checks["artifacts"].0, "OK", "{checks:?}");
    std::fs::write(&path, &original).unwrap();
    assert!(doctor(dir.path(), &[]).0, "intact again");

    // A file the deployed version needs is gone: FAIL for the deployment, and
    // the artifact store lacks a recorded file.
    let mlmodel_path = arts.join(&mlmodel);
    let kept = std::fs::read(&mlmodel_path).unwrap();
    std::fs::remove_file(&mlmodel_path).unwrap();
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(!ok, "{checks:?}");
    assert_eq!(checks["deployments"].0, "FAIL", "{checks:?}");
    assert!(checks["deployments"].1.contains(&mlmodel), "{checks:?}");
    let (status, detail) = &checks["artifacts"];
    assert_eq!(status, "WARN", "{detail}");
    assert!(
        detail.contains(&format!("1 recorded but missing: {mlmodel}")),
        "{detail}"
    );
    std::fs::write(&mlmodel_path, kept).unwrap();

    // A file written beside Slipway's upload path: WARN, named; no FAIL.
    std::fs::create_dir_all(arts.join("0/stray")).unwrap();
    std::fs::write(arts.join("0/stray/notes.txt"), "written by hand").unwrap();
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(ok, "{checks:?}");
    let (status, detail) = &checks["artifacts"];
    assert_eq!(status, "WARN", "{detail}");
    assert!(
        detail.contains("1 without a recorded digest: 0/stray/notes.txt"),
        "{detail}"
    );
    assert_eq!(checks["deployments"].0, "OK", "{checks:?}");
}

/// An ONNX Runtime path that is no library, a free-space threshold above
/// what the disk has, a schema an older binary left (pending migration) or
/// a newer one wrote (unknown migration), and the backups recorded.
#[test]
fn doctor_names_runtime_disk_schema_and_backup_problems() {
    let dir = store_dir();

    let not_a_library = dir.path().join("libonnxruntime.so");
    std::fs::write(&not_a_library, "this is not a shared library").unwrap();
    let (ok, checks) = doctor(
        dir.path(),
        &[("SLIPWAY_ORT_LIB", not_a_library.to_str().unwrap())],
    );
    assert!(!ok, "{checks:?}");
    let (status, detail) = &checks["onnx runtime"];
    assert_eq!(status, "FAIL", "{detail}");
    assert!(detail.contains("libonnxruntime.so"), "{detail}");

    // 1 PiB of headroom wanted: WARN on the disk check, no FAIL.
    let (ok, checks) = doctor(
        dir.path(),
        &[("SLIPWAY_MODEL_CACHE_MIN_FREE_BYTES", "1125899906842624")],
    );
    assert!(ok, "{checks:?}");
    let (status, detail) = &checks["model cache disk"];
    assert_eq!(status, "WARN", "{detail}");
    assert!(detail.contains("1024.0 TiB more"), "{detail}");
    let bad = slipway(
        dir.path(),
        &["doctor"],
        &[("SLIPWAY_MODEL_CACHE_MIN_FREE_BYTES", "lots")],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("model_cache_min_free_bytes")
            || text(&bad).contains("model-cache-min-free-bytes"),
        "{}",
        text(&bad)
    );

    // Backups: none, then one, then a failed one (named).
    let (_, checks) = doctor(dir.path(), &[]);
    assert_eq!(checks["backups"].0, "WARN", "{checks:?}");
    let dest = tempfile::tempdir().unwrap();
    let to = dest.path().to_str().unwrap();
    assert!(slipway(dir.path(), &["backup", "create", "--to", to], &[])
        .status
        .success());
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(ok, "{checks:?}");
    let (status, detail) = &checks["backups"];
    assert_eq!(status, "OK", "{detail}");
    assert!(
        detail.contains("cli to") && detail.contains("1 succeeded, 0 failed"),
        "{detail}"
    );
    let inside = dir.path().join("artifacts/backups");
    let failed = slipway(
        dir.path(),
        &["backup", "create", "--to", inside.to_str().unwrap()],
        &[],
    );
    assert!(!failed.status.success());
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(ok, "a failed backup is a warning: {checks:?}");
    let (status, detail) = &checks["backups"];
    assert_eq!(status, "WARN", "{detail}");
    assert!(
        detail.contains("failed") && detail.contains("inside the artifact store"),
        "{detail}"
    );

    // The schema of an older binary (its newest migration not applied yet):
    // WARN, naming it. Then a newer binary's migration: FAIL.
    let newest = slipway_metadata::sql::known_migrations()
        .last()
        .cloned()
        .unwrap();
    let db = format!("sqlite://{}/slipway.db", dir.path().display());
    let sql = |statements: &[String]| {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(&db).await.unwrap();
            for s in statements {
                sqlx::query(s).execute(&mut c).await.unwrap();
            }
            c.close().await.unwrap();
        })
    };
    sql(&[format!(
        "DELETE FROM slipway_schema_migrations WHERE version = {}",
        newest.0
    )]);
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(ok, "{checks:?}");
    let (status, detail) = &checks["migrations"];
    assert_eq!(status, "WARN", "{detail}");
    assert!(
        detail.contains(&format!("pending: {:04}_{}", newest.0, newest.1)),
        "{detail}"
    );
    sql(&[
        format!(
            "INSERT INTO slipway_schema_migrations (version, name, applied_at) VALUES ({}, '{}', 0)",
            newest.0, newest.1
        ),
        "INSERT INTO slipway_schema_migrations (version, name, applied_at) VALUES (999, 'from_the_future', 0)".to_string(),
    ]);
    let (ok, checks) = doctor(dir.path(), &[]);
    assert!(!ok, "{checks:?}");
    let (status, detail) = &checks["migrations"];
    assert_eq!(status, "FAIL", "{detail}");
    assert!(detail.contains("999"), "{detail}");
}
