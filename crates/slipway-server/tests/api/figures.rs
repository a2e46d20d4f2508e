//! Figures a passing test reports (timeouts observed, connections closed):
//! printed, and written as `FIGURES:` lines to `target/test-figures/`, which
//! scripts/test.sh prints at the end of a run (test runners hide the output
//! of passing tests).

use std::path::PathBuf;

/// Where figures go: `SLIPWAY_TEST_FIGURES_DIR`, else the workspace's
/// `target/test-figures`.
fn dir() -> PathBuf {
    match std::env::var_os("SLIPWAY_TEST_FIGURES_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-figures"),
    }
}

/// Reports `line` as the figure of `test` (one file per test, replaced on
/// each run of it).
pub fn record(test: &str, line: &str) {
    let line = format!("FIGURES: api::{test}: {line}");
    println!("{line}");
    let dir = dir();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("rust-api-{test}.txt")), line + "\n"));
    if let Err(e) = written {
        // the figure is still on stdout; a read-only target dir is no failure
        eprintln!(
            "could not write figures of {test} to {}: {e}",
            dir.display()
        );
    }
}
