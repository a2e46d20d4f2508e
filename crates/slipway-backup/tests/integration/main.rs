//! Backup conformance: every case runs on SQLite + a local directory and on
//! PostgreSQL + S3 (SeaweedFS), crossing engines in both directions, plus
//! the retention simulation and the fixture of format version 1.
//!
//! PostgreSQL needs `SLIPWAY_TEST_POSTGRES_URL` (a server where the test may
//! create databases), S3 `eval "$(scripts/start-s3.sh)"`; both fail loudly
//! when absent (set `SLIPWAY_TEST_SKIP_POSTGRES=1` / `SLIPWAY_TEST_SKIP_S3=1`
//! to skip those cases).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod corruption;
mod fixture;
mod retention;
mod roundtrip;
