//! Istio objects we read (typed subset) and resolution: which objects apply to a workload.

pub mod hosts;
pub mod objects;
pub mod patches;
pub mod policy;
pub mod resolve;
pub mod sidecar_mode;
