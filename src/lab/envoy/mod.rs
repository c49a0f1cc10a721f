//! Real Envoy for the lab and the tests: Istio-shaped bootstraps and a launcher.

pub mod bootstrap;
pub mod launcher;
