//! kubectl-infermesh: which of five known failure modes hurts a vLLM service behind Istio.
//!
//! Data flows one way (DESIGN.md): sources (`manifest`, `cluster`, `envoy`, `probe`) fill an
//! `Inventory` and `Evidence`; `checks` turn evidence into findings; `verdict` ranks them;
//! `report` renders.

pub mod app;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod duration;
pub mod envoy;
pub mod envoy_sources;
pub mod evidence;
pub mod gather;
pub mod inventory;
pub mod lab;
pub mod manifest;
pub mod mesh;
pub mod probe;
pub mod report;
pub mod verdict;
pub mod workloads;
