//! One request on one path, in the numbers `vllm bench serve` names: TTFT, ITL percentiles, TPOT,
//! gaps, in milliseconds, shaped for `-o json`; and why its stream ended.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A gap between content chunks longer than this is counted (a pause, a buffer, a stall).
pub const LONG_GAP: Duration = Duration::from_secs(1);

/// The most content-chunk arrival times one path keeps in `arrivalsMs`; a longer stream keeps
/// every `arrivalsStride`-th chunk and its last one.
pub const MAX_ARRIVALS: usize = 2000;

/// The most silences over [`LONG_GAP`] one path keeps in `silencesMs` (the first ones).
pub const MAX_SILENCES: usize = 100;

/// What the report says TTFT measures.
pub const TTFT_DEFINITION: &str = "first non-empty content chunk";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    Direct,
    Mesh,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Mesh => "mesh",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Linear-interpolated percentiles (as numpy's default, which `vllm bench` uses); `None` for
    /// no samples.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The `q`th percentile of sorted, non-empty samples, interpolating between ranks.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let rank = (q / 100.0).clamp(0.0, 1.0) * last as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let weight = rank - low as f64;
    sorted[low] + (sorted[high.min(last)] - sorted[low]) * weight
}

/// One request on one path, as `-o json` shows it. Times are ms from sending the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathResult {
    pub path: PathKind,
    pub url: String,
    pub status: Option<u16>,
    pub end: EndReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_detail: Option<String>,
    /// Time to a ready connection when this request opened one (DNS, TCP and, for https, the
    /// TLS handshake); `None` when it reused one.
    pub connect_ms: Option<f64>,
    /// The TLS handshake's share of `connectMs` (ClientHello to handshake done), https only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ms: Option<f64>,
    pub new_connection: bool,
    pub headers_ms: Option<f64>,
    pub first_chunk_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub ttft_definition: String,
    pub itl_ms: Option<Percentiles>,
    pub gaps_over_1s: u32,
    pub longest_gap_ms: Option<f64>,
    /// Content chunks received before the longest gap began.
    pub longest_gap_after_chunks: Option<u64>,
    /// (last content − TTFT) / (tokens − 1).
    pub tpot_ms: Option<f64>,
    pub last_content_ms: Option<f64>,
    pub done_ms: Option<f64>,
    /// When the response body ended (Envoy closes a cut stream late: compare with lastContentMs).
    pub total_ms: f64,
    pub tokens: u64,
    pub tokens_source: TokenSource,
    pub chunks: u64,
    pub keepalives: u64,
    pub bytes: u64,
    pub headers: HeadersOfInterest,
    /// When content chunks arrived (ms from sending, 0.1 ms resolution): every chunk up to
    /// [`MAX_ARRIVALS`]; beyond, chunk 1, 1 + stride, 1 + 2·stride, … and the last chunk. Empty
    /// in evidence saved before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrivals_ms: Vec<f64>,
    /// Chunks per point of `arrivalsMs` when it was downsampled (absent: every chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals_stride: Option<u64>,
    /// Each gap over 1 s between content chunks, as `[from, to]` ms (the first
    /// [`MAX_SILENCES`]), measured on every chunk, not on the downsampled arrivals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silences_ms: Vec<[f64; 2]>,
}

impl PathResult {
    /// The points of `arrivalsMs` as (ms, content chunks received by then).
    pub fn arrival_points(&self) -> Vec<(f64, u64)> {
        let stride = self.arrivals_stride.unwrap_or(1).max(1);
        let last = self.arrivals_ms.len().saturating_sub(1);
        self.arrivals_ms
            .iter()
            .enumerate()
            .map(|(index, at)| {
                // Downsampled, the last point is always the stream's last chunk.
                let count = if index == last && self.arrivals_stride.is_some() {
                    self.chunks
                } else {
                    index as u64 * stride + 1
                };
                (*at, count)
            })
            .collect()
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// `data: [DONE]` arrived.
    Done,
    /// The body ended (cleanly, or the connection closed mid-body) before `[DONE]`: a cut.
    EofWithoutDone,
    /// The connection or HTTP/2 stream was reset.
    Reset,
    /// The connection could not be made (refused, unreachable, connect timeout).
    ConnectError,
    /// A non-2xx status.
    HttpError,
    /// An `error` event inside the 200 stream, or malformed SSE.
    StreamError,
    /// The probe's own overall or idle timeout fired.
    ClientTimeout,
    /// Stopped by the user (Ctrl-C).
    Interrupted,
    /// Stopped by the probe once the run's question was answered: the other path had failed
    /// and this one streamed on past that point.
    Answered,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Done => "done",
            EndReason::EofWithoutDone => "eof-without-done",
            EndReason::Reset => "reset",
            EndReason::ConnectError => "connect-error",
            EndReason::HttpError => "http-error",
            EndReason::StreamError => "stream-error",
            EndReason::ClientTimeout => "client-timeout",
            EndReason::Interrupted => "interrupted",
            EndReason::Answered => "answered",
        }
    }
}

/// Response headers that tell which proxy answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadersOfInterest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(
        rename = "x-envoy-upstream-service-time",
        skip_serializing_if = "Option::is_none"
    )]
    pub envoy_upstream_service_time: Option<String>,
    #[serde(rename = "x-envoy-overloaded", skip_serializing_if = "Option::is_none")]
    pub envoy_overloaded: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    Usage,
    Chunks,
}

impl PathResult {
    /// One path's outcome in words: "completed in 41.3 s", "cut at 15.0 s after 212 tokens, no [DONE]".
    pub fn outcome(&self) -> String {
        let result = self;
        let at = result.last_content_ms.unwrap_or(result.total_ms);
        let detail = result.end_detail.as_deref().unwrap_or_default();
        match result.end {
            EndReason::Done => format!("completed in {}", seconds(result.total_ms)),
            EndReason::EofWithoutDone => format!(
                "cut at {} after {} tokens, no [DONE]",
                seconds(at),
                result.tokens
            ),
            EndReason::Reset => format!(
                "reset at {} after {} tokens",
                seconds(result.total_ms),
                result.tokens
            ),
            EndReason::HttpError => {
                let excerpt: String = detail.chars().take(80).collect();
                format!(
                    "answered HTTP {} in {}: {excerpt}",
                    result.status.unwrap_or_default(),
                    seconds(result.headers_ms.unwrap_or(result.total_ms))
                )
            }
            EndReason::StreamError => format!(
                "sent an error inside the 200 stream after {} tokens: {detail}",
                result.tokens
            ),
            EndReason::ConnectError => format!("could not connect: {detail}"),
            EndReason::ClientTimeout => format!(
                "timed out on the probe's side after {} tokens: {detail}",
                result.tokens
            ),
            EndReason::Interrupted => format!("interrupted after {} tokens", result.tokens),
            EndReason::Answered => format!(
                "streamed {} tokens to {} and was stopped there, past the other path's end",
                result.tokens,
                seconds(result.total_ms)
            ),
        }
    }
}

fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
}
