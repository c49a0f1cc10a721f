//! A vLLM-compatible streaming server for tests and the `lab` command: paced tokens, pauses, a
//! cold first request, mid-stream error events, cuts, keep-alive comments, large non-streaming
//! bodies, `max_num_seqs` queueing, and a `/metrics` with vLLM's names that reflects what it served.
//! It speaks HTTP/1.1 (chunked) and h2c on one port.

mod config;
pub mod envoy;
mod generation;
mod metrics;
mod openai;
pub mod scenario;
mod served;
mod server;

pub use config::{Pause, ServerConfig};
pub use openai::token_text;
pub use scenario::Scenario;
pub use served::Served;
pub use server::{LabError, RunningServer, spawn};
