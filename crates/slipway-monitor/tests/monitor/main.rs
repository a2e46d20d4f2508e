//! Monitoring with real stores (SQLite, a local artifact directory), in one
//! test binary with a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod log;
mod order;
mod reference;
mod retention;
