//! Real Envoy for the lab and the tests: Istio-shaped bootstraps, a launcher, and the pair of
//! Envoys in front of the lab server.

pub mod bootstrap;
pub mod launcher;
pub mod pair;
