//! Which Istio objects apply to a workload.
