//! What vLLM's own `/metrics` showed around a run: histogram deltas and gauges, under the names of
//! old and new vLLM versions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Naming {
    /// `inter_token_latency_seconds`, `kv_cache_usage_perc`.
    Current,
    /// `time_per_output_token_seconds`, `gpu_cache_usage_perc`.
    Legacy,
    /// Some `vllm:` metrics, none of the names that tell the version.
    Unknown,
    /// No `vllm:` metric at all: not a vLLM server, or metrics disabled.
    NotVllm,
}

/// What moved in one histogram between two scrapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramDelta {
    /// The metric name the server used.
    pub metric: String,
    /// Observations added (requests, or tokens for inter-token latency).
    pub observations: f64,
    /// Mean of the added observations, in ms.
    pub mean_ms: Option<f64>,
}

/// The server's own view of what happened between two scrapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerSide {
    pub naming: Naming,
    pub ttft: Option<HistogramDelta>,
    pub inter_token: Option<HistogramDelta>,
    pub e2e: Option<HistogramDelta>,
    pub queue_time: Option<HistogramDelta>,
    pub running_after: Option<f64>,
    pub waiting_after: Option<f64>,
    pub kv_cache_usage_after: Option<f64>,
    /// Highest values seen while sampling during the run (concurrency mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_running: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_waiting: Option<f64>,
}
