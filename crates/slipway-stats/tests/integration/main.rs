//! Integration tests of slipway-stats, one binary with a module per concern.

mod false_alarm;
mod golden;
mod properties;
mod rng;
mod sketch_bounds;
mod windows;
