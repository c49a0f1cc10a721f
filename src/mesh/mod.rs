//! Istio objects we read (typed subset) and resolution: which objects apply to a workload.

pub mod delegation;
pub mod hosts;
pub mod objects;
pub mod patches;
pub mod policy;
pub mod resolve;
pub mod route_match;
pub mod sidecar_mode;
pub mod target_refs;
