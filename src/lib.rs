//! kubectl-infermesh: which known failure mode hurts an LLM inference service behind a service mesh or gateway.
//!
//! The pipeline, one stage per folder (`docs/architecture.md` is the map):
//! `sources` gather facts into `evidence`, `checks` turn evidence into findings, `verdict` ranks
//! them and plans the probe runs that can prove a suspicion, `report` renders; `app` and `cli` wire
//! the stages on top. `lab` is the vLLM-compatible server and Envoy launcher for tests and demos.
//!
//! The import rule (enforced by `tests/layers.rs`): a module imports only from its own stage or the
//! stages below it, in this order from the ground up:
//! `units` < `evidence` < `sources`, `checks` < `verdict` < `report` < `cli` < `app`.
//! `sources` and `checks` stand side by side and never import each other; `lab` imports at most
//! `units`, `evidence` and `sources`, and only `app` and tests import it. Test modules may set up
//! from any stage.

pub mod app;
pub mod checks;
pub mod cli;
pub mod evidence;
pub mod lab;
pub mod report;
pub mod sources;
pub mod units;
pub mod verdict;
