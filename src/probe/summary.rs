//! From a stream's timeline to the numbers `vllm bench serve` names: TTFT, ITL percentiles, TPOT,
//! gaps, in milliseconds, shaped for `-o json`.

use super::sse::{EndReason, HeadersOfInterest, StreamRecord, TokenSource};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A gap between content chunks longer than this is counted (a pause, a buffer, a stall).
pub const LONG_GAP: Duration = Duration::from_secs(1);

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
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl PathResult {
    pub fn from_record(path: PathKind, url: &str, record: &StreamRecord) -> Self {
        let gaps: Vec<Duration> = record
            .content_at
            .windows(2)
            .map(|pair| pair[1].saturating_sub(pair[0]))
            .collect();
        let gap_ms: Vec<f64> = gaps.iter().copied().map(ms).collect();
        let longest = gaps
            .iter()
            .enumerate()
            .max_by_key(|(_, gap)| **gap)
            .map(|(index, gap)| (index as u64 + 1, *gap));
        let (tokens, tokens_source) = record.tokens();
        let tpot_ms = match (record.ttft(), record.last_content_at()) {
            (Some(first), Some(last)) if tokens > 1 => {
                Some(ms(last.saturating_sub(first)) / (tokens - 1) as f64)
            }
            _ => None,
        };
        Self {
            path,
            url: url.to_string(),
            status: record.status,
            end: record.end,
            end_detail: record.detail.clone(),
            connect_ms: record.connect.map(ms),
            tls_ms: record.tls_handshake.map(ms),
            new_connection: record.connect.is_some(),
            headers_ms: record.headers_at.map(ms),
            first_chunk_ms: record.first_chunk_at.map(ms),
            ttft_ms: record.ttft().map(ms),
            ttft_definition: TTFT_DEFINITION.to_string(),
            itl_ms: Percentiles::of(&gap_ms),
            gaps_over_1s: gaps.iter().filter(|gap| **gap > LONG_GAP).count() as u32,
            longest_gap_ms: longest.map(|(_, gap)| ms(gap)),
            longest_gap_after_chunks: longest.map(|(after, _)| after),
            tpot_ms,
            last_content_ms: record.last_content_at().map(ms),
            done_ms: record.done_at.map(ms),
            total_ms: ms(record.ended_at),
            tokens,
            tokens_source,
            chunks: record.content_at.len() as u64,
            keepalives: record.keepalives,
            bytes: record.bytes,
            headers: record.headers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::sse::Usage;

    fn record(content_ms: &[u64], usage: Option<u64>) -> StreamRecord {
        StreamRecord {
            started: std::time::Instant::now(),
            status: Some(200),
            connect: None,
            tls_handshake: None,
            headers_at: Some(Duration::from_millis(5)),
            first_chunk_at: content_ms.first().map(|m| Duration::from_millis(*m)),
            content_at: content_ms
                .iter()
                .map(|m| Duration::from_millis(*m))
                .collect(),
            done_at: None,
            ended_at: Duration::from_millis(content_ms.last().copied().unwrap_or(0) + 1000),
            usage: usage.map(|completion_tokens| Usage {
                prompt_tokens: 1,
                completion_tokens,
            }),
            bytes: 0,
            events: 0,
            keepalives: 0,
            headers: HeadersOfInterest::default(),
            end: EndReason::EofWithoutDone,
            detail: None,
        }
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let samples: Vec<f64> = (1..=10).map(f64::from).collect();
        let p = Percentiles::of(&samples).unwrap();
        assert!((p.p50 - 5.5).abs() < 1e-9);
        assert!((p.p90 - 9.1).abs() < 1e-9);
        assert!((p.p99 - 9.91).abs() < 1e-9);
        assert_eq!(p.max, 10.0);
        assert_eq!(Percentiles::of(&[]), None);
        assert_eq!(Percentiles::of(&[3.0]).unwrap().p99, 3.0);
    }

    #[test]
    fn long_gaps_and_tpot() {
        let result = PathResult::from_record(
            PathKind::Mesh,
            "http://x",
            &record(&[100, 120, 140, 1640, 1660], None),
        );
        assert_eq!(result.ttft_ms, Some(100.0));
        assert_eq!(result.gaps_over_1s, 1);
        assert_eq!(result.longest_gap_ms, Some(1500.0));
        assert_eq!(result.longest_gap_after_chunks, Some(3));
        assert_eq!(result.tokens, 5);
        assert_eq!(result.tokens_source, TokenSource::Chunks);
        assert_eq!(result.tpot_ms, Some(390.0));
        assert_eq!(result.itl_ms.unwrap().max, 1500.0);
        assert_eq!(result.total_ms, 2660.0);
    }

    #[test]
    fn usage_wins_over_chunk_count() {
        let result =
            PathResult::from_record(PathKind::Direct, "u", &record(&[10, 20, 30], Some(5)));
        assert_eq!(result.tokens, 5);
        assert_eq!(result.tokens_source, TokenSource::Usage);
        assert_eq!(result.tpot_ms, Some(5.0));
    }

    #[test]
    fn json_uses_the_documented_names() {
        let result = PathResult::from_record(PathKind::Direct, "u", &record(&[10, 20], None));
        let json = serde_json::to_value(&result).unwrap();
        for key in [
            "path", "url", "ttftMs", "itlMs", "totalMs", "tokens", "bytes", "status", "end",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert_eq!(json["path"], "direct");
        assert_eq!(json["end"], "eof-without-done");
        for key in ["p50", "p90", "p99", "max"] {
            assert!(json["itlMs"].get(key).is_some());
        }
    }
}
