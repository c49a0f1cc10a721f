//! Envoy as a source: the admin client, `/stats` and `config_dump` parsers, the counters per
//! failure mode, and a launcher with Istio-shaped bootstraps for the lab and the tests.

pub mod admin;
pub mod bootstrap;
pub mod config_dump;
pub mod counters;
pub mod launcher;
pub mod stats;
