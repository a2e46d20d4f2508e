//! HTTP-level tests of the server, in one test binary with a module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod auth;
mod backups;
mod connections;
mod errors;
mod figures;
mod graphql;
mod helpers;
mod lane;
mod mlflow_ui_routes;
mod scopes;
mod sessions;
mod ui;
