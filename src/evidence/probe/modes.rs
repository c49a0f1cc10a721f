//! The probe's runs beside the timed stream: a burst of concurrent streams, a large body, and a
//! cold first request followed by a warm one.

use super::path::{EndReason, HeadersOfInterest, PathKind, PathResult, Percentiles};
use super::server_side::ServerSide;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureGroup {
    pub cause: String,
    pub count: u32,
}

/// N streams at once on one path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyResult {
    pub path: PathKind,
    pub url: String,
    pub streams: u32,
    /// Count per HTTP status (`"none"`: no response headers).
    pub by_status: BTreeMap<String, u32>,
    /// Count per end reason.
    pub by_end: BTreeMap<String, u32>,
    pub share_503: f64,
    /// Responses carrying `x-envoy-overloaded` (Envoy's circuit breaker answered).
    pub overloaded: u32,
    /// Failures grouped by cause, most frequent first.
    pub failures: Vec<FailureGroup>,
    pub connections_opened: usize,
    pub ttft_ms: Option<Percentiles>,
    pub wall_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side: Option<ServerSide>,
    /// Each stream from start to end, in the order they were sent (the first
    /// [`MAX_STREAM_SPANS`]); empty in evidence saved before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream_spans: Vec<StreamSpan>,
}

/// The most streams of one burst whose spans are kept.
pub const MAX_STREAM_SPANS: usize = 1000;

/// One stream of a burst: when its headers, first and last content came and how it ended (ms
/// from the burst's start, 0.1 ms resolution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamSpan {
    pub status: Option<u16>,
    pub end: EndReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_content_ms: Option<f64>,
    pub end_ms: f64,
    pub chunks: u64,
}

/// One non-streaming request with a large output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LargeResult {
    pub path: PathKind,
    pub url: String,
    pub status: Option<u16>,
    pub end: EndReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_detail: Option<String>,
    /// 200, every announced byte arrived, and the body is the JSON of a whole completion.
    pub complete: bool,
    pub bytes: u64,
    pub content_length: Option<u64>,
    pub tokens_asked: u32,
    /// `usage.completion_tokens` of a complete body.
    pub tokens: Option<u64>,
    pub headers_ms: Option<f64>,
    pub total_ms: f64,
    pub headers: HeadersOfInterest,
}

/// A request on a fresh connection against the next one on the same, now warm, connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ColdResult {
    pub path: PathKind,
    pub url: String,
    pub cold: PathResult,
    pub warm: PathResult,
    /// Cold TTFT minus warm TTFT.
    pub ttft_penalty_ms: Option<f64>,
    /// Whether the warm request really reused the connection.
    pub warm_reused_connection: bool,
}
