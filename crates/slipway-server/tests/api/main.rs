//! HTTP-level tests of the server, in one test binary with a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod auth;
mod errors;
mod helpers;
