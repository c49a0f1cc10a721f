//! What the streaming probe measured, as evidence: the runs `diagnose --probe` planned and what
//! each found (`ProbeRun`), the whole report of one probe (`report`), one request on one path
//! (`path`), the burst, large-body and cold-start runs (`modes`), and what vLLM's `/metrics` showed
//! meanwhile (`server_side`).

pub mod modes;
pub mod path;
pub mod report;
pub mod server_side;

use report::ProbeReport;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Tokens each stream of a burst asks for (short: only admission matters).
pub const BURST_TOKENS: u32 = 64;

/// Tokens of the cold and warm requests.
pub const COLD_TOKENS: u32 = 16;

/// One probe run: what it measures and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    rename_all = "kebab-case",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum ProbeMode {
    /// One stream per path for about `duration`.
    Stream {
        #[serde(with = "crate::units::duration::serde_text")]
        duration: Duration,
        /// The timeout it should outlast (seconds), when one was found.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_s: Option<f64>,
        /// That timeout counts silence (an idle timeout), not the stream's whole length.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        idle: bool,
    },
    /// `streams` streams at once per path.
    Burst { streams: u32 },
    /// One large non-streaming body per path, of `tokens` tokens (the probe's default when
    /// unset).
    Large {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<u32>,
    },
    /// A first request on a fresh connection, then one on the warm connection, per path; the
    /// mesh path goes first, as a user's first request would.
    Cold,
    /// One non-streaming request per path whose prompt is `bytes` long (a long context).
    LargePrompt { bytes: u64 },
}

impl ProbeMode {
    pub fn name(&self) -> &'static str {
        match self {
            ProbeMode::Stream { .. } => "stream",
            ProbeMode::Burst { .. } => "burst",
            ProbeMode::Large { .. } => "large",
            ProbeMode::Cold => "cold",
            ProbeMode::LargePrompt { .. } => "large-prompt",
        }
    }
}

/// A run the evidence calls for, why, and what it is estimated to cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedRun {
    pub mode: ProbeMode,
    /// `the shortest timeout found is route timeout 2s on Envoy …`
    pub reason: String,
    /// Estimated wall time over both paths.
    pub cost_s: f64,
    /// Requests over both paths.
    pub requests: u32,
}

/// A planned run and what it measured (or why it could not run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRun {
    pub planned: PlannedRun,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ProbeReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Left out of the plan by the time budget: `a stream of 5m30s would prove the 300s route
    /// timeout (raise --probe-budget to 6m)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

impl ProbeRun {
    /// A run that could not run, and why.
    pub fn failed(planned: PlannedRun, error: String) -> Self {
        Self {
            planned,
            report: None,
            error: Some(error),
            not_run: None,
        }
    }
}
