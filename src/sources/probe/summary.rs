//! From a stream's timeline to the numbers `vllm bench serve` names: TTFT, ITL percentiles, TPOT,
//! gaps, in milliseconds, shaped for `-o json`.

use super::sse::StreamRecord;
use crate::evidence::probe::path::{
    LONG_GAP, MAX_ARRIVALS, MAX_SILENCES, PathKind, PathResult, Percentiles, TTFT_DEFINITION,
};
use std::time::Duration;

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Milliseconds at 0.1 ms resolution: what a timeline needs, at a third of the JSON.
pub(crate) fn tenth_ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The arrival times kept for a timeline: every chunk up to [`MAX_ARRIVALS`], else every
/// `stride`-th one and the last (`stride` returned), so a long stream costs a bounded size.
pub(crate) fn arrivals(content_at: &[Duration]) -> (Vec<f64>, Option<u64>) {
    if content_at.len() <= MAX_ARRIVALS {
        return (content_at.iter().copied().map(tenth_ms).collect(), None);
    }
    // Points at 0, stride, 2·stride, … plus the last chunk: at most MAX_ARRIVALS of them.
    let stride = content_at.len().div_ceil(MAX_ARRIVALS - 1);
    let mut kept: Vec<f64> = content_at
        .iter()
        .step_by(stride)
        .copied()
        .map(tenth_ms)
        .collect();
    if (content_at.len() - 1) % stride != 0
        && let Some(last) = content_at.last()
    {
        kept.push(tenth_ms(*last));
    }
    (kept, Some(stride as u64))
}

/// Each gap over [`LONG_GAP`] between content chunks, the first [`MAX_SILENCES`] of them.
fn silences(content_at: &[Duration]) -> Vec<[f64; 2]> {
    content_at
        .windows(2)
        .filter(|pair| pair[1].saturating_sub(pair[0]) > LONG_GAP)
        .take(MAX_SILENCES)
        .map(|pair| [tenth_ms(pair[0]), tenth_ms(pair[1])])
        .collect()
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
        let (arrivals_ms, arrivals_stride) = arrivals(&record.content_at);
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
            arrivals_ms,
            arrivals_stride,
            silences_ms: silences(&record.content_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::probe::path::{EndReason, HeadersOfInterest, TokenSource};
    use crate::sources::probe::sse::Usage;

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
    fn arrivals_and_silences_are_kept_for_the_timeline() {
        let result = PathResult::from_record(
            PathKind::Mesh,
            "u",
            &record(&[100, 120, 140, 1640, 1660], None),
        );
        assert_eq!(result.arrivals_ms, [100.0, 120.0, 140.0, 1640.0, 1660.0]);
        assert_eq!(result.arrivals_stride, None);
        assert_eq!(result.silences_ms, [[140.0, 1640.0]]);
        assert_eq!(
            result.arrival_points(),
            [(100.0, 1), (120.0, 2), (140.0, 3), (1640.0, 4), (1660.0, 5)]
        );
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["arrivalsMs"].as_array().unwrap().len(), 5);
        assert_eq!(json["silencesMs"][0][1], 1640.0);
    }

    #[test]
    fn a_long_stream_keeps_a_bounded_strided_subset_with_its_last_chunk() {
        for chunks in [MAX_ARRIVALS, MAX_ARRIVALS + 1, 15_000, 15_001, 100_003] {
            let at: Vec<u64> = (0..chunks as u64).map(|i| 50 + i * 20).collect();
            let result = PathResult::from_record(PathKind::Direct, "u", &record(&at, None));
            assert!(result.arrivals_ms.len() <= MAX_ARRIVALS, "{chunks}");
            let points = result.arrival_points();
            // The first and the last chunk are kept, with their true cumulative counts.
            assert_eq!(points[0], (50.0, 1));
            let last = *points.last().unwrap();
            assert_eq!(
                last,
                ((50 + (chunks as u64 - 1) * 20) as f64, chunks as u64)
            );
            // Every point but the last is chunk 1 + index·stride.
            let stride = result.arrivals_stride.unwrap_or(1);
            assert_eq!(result.arrivals_stride.is_some(), chunks > MAX_ARRIVALS);
            for (index, (at, count)) in points[..points.len() - 1].iter().enumerate() {
                assert_eq!(*count, index as u64 * stride + 1);
                assert_eq!(*at, (50 + (count - 1) * 20) as f64);
            }
            assert!(points.windows(2).all(|pair| pair[0].1 < pair[1].1));
        }
    }

    #[test]
    fn evidence_saved_before_arrivals_still_loads() {
        let mut json = serde_json::to_value(PathResult::from_record(
            PathKind::Direct,
            "u",
            &record(&[10], None),
        ))
        .unwrap();
        let object = json.as_object_mut().unwrap();
        for key in ["arrivalsMs", "arrivalsStride", "silencesMs"] {
            object.remove(key);
        }
        let old: PathResult = serde_json::from_value(json).unwrap();
        assert!(old.arrivals_ms.is_empty() && old.silences_ms.is_empty());
        assert!(old.arrival_points().is_empty());
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
