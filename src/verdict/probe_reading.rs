//! The probe's reading of its measurements, one line each: what the two paths' results mean side
//! by side. The probe source only measures and records; this fills `ProbeReport::comparison`. A diagnosis judges the same measurements again in `checks::probe_runs`.

use crate::evidence::CheckId;
use crate::evidence::probe::modes::{ColdResult, ConcurrencyResult, LargeResult};
use crate::evidence::probe::path::{EndReason, PathKind, PathResult};
use crate::evidence::probe::report::{Comparison, CounterDelta, ProbeReport};

/// A cold start is named when the first request's TTFT is this many times the next one's...
const COLD_RATIO: f64 = 3.0;
/// ...and at least this much longer (ms).
const COLD_MIN_MS: f64 = 1000.0;
/// A connection that ends this long after the last token is called out (Envoy's delayed close).
const LATE_CLOSE_MS: f64 = 500.0;

/// Fills the report's comparison from what the probe measured: the two paths side by side
/// (or, when only modes ran, their first line that names a problem), the cold start the first
/// tokens in sending order show, and one line per mode run and per path whose counters moved.
pub fn read(report: &mut ProbeReport) {
    let find = |kind: PathKind| {
        report
            .paths
            .iter()
            .find(|p| p.result.path == kind)
            .map(|p| &p.result)
    };
    let mut comparison = compare(find(PathKind::Direct), find(PathKind::Mesh));
    if report.paths.is_empty() {
        comparison.verdict = mode_verdict(report);
    }
    let ordered: Vec<(String, f64)> = report
        .first_tokens
        .iter()
        .map(|first| (first.label.clone(), first.ttft_ms))
        .collect();
    comparison.cold_start = cold_start(&ordered);
    comparison
        .notes
        .extend(report.concurrency.iter().map(describe_concurrency));
    comparison
        .notes
        .extend(report.large.iter().map(describe_large));
    comparison
        .notes
        .extend(report.large_prompt.iter().map(describe_large_prompt));
    comparison
        .notes
        .extend(report.cold.iter().map(describe_cold));
    comparison
        .notes
        .extend(describe_deltas(&report.counter_deltas));
    report.comparison = comparison;
}

/// The verdict when only modes ran: their first line that names a problem, else the first line.
fn mode_verdict(report: &ProbeReport) -> String {
    let concurrency = report.concurrency.iter().map(|r| {
        let failed = r.by_end.get("done").copied().unwrap_or(0) < r.streams;
        (failed, describe_concurrency(r))
    });
    let large = report
        .large
        .iter()
        .map(|r| (!r.complete, describe_large(r)));
    let large_prompt = report
        .large_prompt
        .iter()
        .map(|r| (!r.complete, describe_large_prompt(r)));
    let cold = report.cold.iter().map(|r| {
        let failed = r.cold.end != EndReason::Done || r.warm.end != EndReason::Done;
        (failed, describe_cold(r))
    });
    let lines: Vec<(bool, String)> = concurrency
        .chain(large)
        .chain(large_prompt)
        .chain(cold)
        .collect();
    lines
        .iter()
        .find(|(problem, _)| *problem)
        .or(lines.first())
        .map(|(_, line)| line.clone())
        .unwrap_or_else(|| "nothing was measured".to_string())
}

fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
}

/// The verdict for one streaming run on each path.
pub fn compare(direct: Option<&PathResult>, mesh: Option<&PathResult>) -> Comparison {
    let verdict = match (direct, mesh) {
        (Some(d), Some(m)) => match (d.end, m.end) {
            (EndReason::Done, EndReason::Done) => {
                let ttft = m.ttft_ms.zip(d.ttft_ms).map(|(m, d)| m - d);
                let itl = m.itl_ms.zip(d.itl_ms).map(|(m, d)| m.p50 - d.p50);
                match (ttft, itl) {
                    (Some(ttft), Some(itl)) => format!(
                        "both paths completed; mesh minus direct: TTFT {ttft:+.1} ms, ITL p50 {itl:+.2} ms"
                    ),
                    (Some(ttft), None) => {
                        format!("both paths completed; mesh minus direct: TTFT {ttft:+.1} ms")
                    }
                    _ => "both paths completed".to_string(),
                }
            }
            (EndReason::Done | EndReason::Answered, _) => {
                format!("mesh {}; direct {}", m.outcome(), d.outcome())
            }
            (_, EndReason::Done) => format!(
                "direct {} while the mesh {}: check the direct URL (port-forward) and the model",
                d.outcome(),
                m.outcome()
            ),
            _ => format!(
                "direct {} and mesh {}: the fault is before the mesh (vLLM, the model or the request)",
                d.outcome(),
                m.outcome()
            ),
        },
        (Some(only), None) | (None, Some(only)) => {
            format!("{} {}", only.path.as_str(), only.outcome())
        }
        (None, None) => "nothing was measured".to_string(),
    };
    let mut comparison = Comparison {
        verdict,
        ..Comparison::default()
    };
    if let (Some(d), Some(m)) = (direct, mesh) {
        comparison.ttft_delta_ms = m.ttft_ms.zip(d.ttft_ms).map(|(m, d)| m - d);
        comparison.itl_p50_delta_ms = m.itl_ms.zip(d.itl_ms).map(|(m, d)| m.p50 - d.p50);
        comparison.tpot_delta_ms = m.tpot_ms.zip(d.tpot_ms).map(|(m, d)| m - d);
    }
    for result in [direct, mesh].into_iter().flatten() {
        if result.end != EndReason::Done
            && let Some(last) = result.last_content_ms
            && result.total_ms - last > LATE_CLOSE_MS
        {
            comparison.notes.push(format!(
                "{}: the last token came at {} but the body ended at {} (a proxy closing late, as Envoy does after a reset)",
                result.path.as_str(),
                seconds(last),
                seconds(result.total_ms)
            ));
        }
        if result.gaps_over_1s > 0 {
            comparison.notes.push(format!(
                "{}: {} gap(s) over 1 s between tokens, the longest {} after {} chunks",
                result.path.as_str(),
                result.gaps_over_1s,
                seconds(result.longest_gap_ms.unwrap_or_default()),
                result.longest_gap_after_chunks.unwrap_or_default()
            ));
        }
    }
    comparison
}

/// Names a cold start from TTFTs in the order the requests were sent.
pub fn cold_start(ordered_ttfts: &[(String, f64)]) -> Option<String> {
    let [(first_label, first), rest @ ..] = ordered_ttfts else {
        return None;
    };
    let (next_label, next) = rest.first()?;
    (*first >= next * COLD_RATIO && first - next >= COLD_MIN_MS).then(|| {
        format!(
            "the first request ({first_label}) paid a cold start: TTFT {} against {} on the next ({next_label})",
            seconds(*first),
            seconds(*next)
        )
    })
}

/// One line per path whose Envoy counters show a failure mode (TLS handshakes and request
/// totals, which any healthy request moves, are left to the table).
pub fn describe_deltas(deltas: &[CounterDelta]) -> Vec<String> {
    let mut lines = Vec::new();
    for path in [PathKind::Direct, PathKind::Mesh] {
        let shown: Vec<String> = deltas
            .iter()
            .filter(|moved| moved.path == path)
            .filter(|moved| {
                moved
                    .mode
                    .is_some_and(|mode| mode != CheckId::ColdStart && moved.delta > 0.0)
            })
            .map(|moved| {
                let leaf = moved.name.rsplit('.').next().unwrap_or(&moved.name);
                let leaf = if moved.name.starts_with("istio_requests_total") {
                    moved.name.as_str()
                } else {
                    leaf
                };
                format!(
                    "{leaf} {:+} on {} ({})",
                    moved.delta,
                    moved.source,
                    moved.mode.map_or("", CheckId::as_str)
                )
            })
            .collect();
        if !shown.is_empty() {
            lines.push(format!(
                "{}: Envoy counted {}",
                path.as_str(),
                shown.join(", ")
            ));
        }
    }
    lines
}

/// One line per concurrency result.
pub fn describe_concurrency(result: &ConcurrencyResult) -> String {
    let done = result.by_end.get("done").copied().unwrap_or(0);
    let mut line = format!(
        "{}: {done} of {} streams completed",
        result.path.as_str(),
        result.streams
    );
    let count_503 = result.by_status.get("503").copied().unwrap_or(0);
    if count_503 > 0 {
        line.push_str(&format!(
            ", {count_503} got 503 ({:.0}%)",
            result.share_503 * 100.0
        ));
        if result.overloaded > 0 {
            line.push_str(&format!(
                ", {} with x-envoy-overloaded (Envoy's circuit breaker)",
                result.overloaded
            ));
        }
    }
    if let Some(side) = &result.server_side {
        let running = side.peak_running.or(side.running_after);
        let waiting = side.peak_waiting.or(side.waiting_after);
        if let (Some(running), Some(waiting)) = (running, waiting) {
            line.push_str(&format!(
                "; vLLM peaked at {running:.0} running, {waiting:.0} waiting"
            ));
            if count_503 > 0 && waiting == 0.0 {
                line.push_str(": the ceiling is in the mesh, not in vLLM");
            }
        }
    }
    line
}

/// `mesh: a 20 KB request body was refused: status 413 …` / `direct: a 20 KB request body was taken (200) in 0.1 s`.
pub fn describe_large_prompt(result: &LargeResult) -> String {
    let status = result
        .status
        .map_or_else(|| "no status".to_string(), |s| s.to_string());
    if result.complete {
        return format!(
            "{}: the large request body was taken ({status}) in {}",
            result.path.as_str(),
            seconds(result.total_ms)
        );
    }
    format!(
        "{}: the large request body was refused ({}, status {status}){}",
        result.path.as_str(),
        result.end.as_str(),
        result
            .end_detail
            .as_deref()
            .map(|d| format!(": {}", d.chars().take(100).collect::<String>()))
            .unwrap_or_default()
    )
}

pub fn describe_large(result: &LargeResult) -> String {
    if result.complete {
        return format!(
            "{}: complete body of {} in {}",
            result.path.as_str(),
            size_text(result.bytes),
            seconds(result.total_ms)
        );
    }
    let status = result.status;
    let refused = status.is_some_and(|status| !(200..300).contains(&status));
    let arrived = if refused {
        // What came back is the answering proxy's or server's error page, not the completion.
        let by = match result.headers.server.as_deref() {
            Some(server) if server.contains("envoy") => "Envoy's error body",
            _ => "the error body",
        };
        format!("{} ({by})", size_text(result.bytes))
    } else {
        let of = result
            .content_length
            .map(|length| format!(" of {}", size_text(length)))
            .unwrap_or_default();
        format!("{}{of}", size_text(result.bytes))
    };
    format!(
        "{}: body NOT complete ({}): {arrived} arrived, status {}{}",
        result.path.as_str(),
        result.end.as_str(),
        status.map_or_else(|| "none".to_string(), |s| s.to_string()),
        result
            .end_detail
            .as_deref()
            .map(|d| format!("; {}", d.chars().take(100).collect::<String>()))
            .unwrap_or_default()
    )
}

/// `21 bytes`, `512.0 KB`, `3.4 MB`.
fn size_text(bytes: u64) -> String {
    match bytes {
        1 => "1 byte".to_string(),
        0..1_000 => format!("{bytes} bytes"),
        1_000..1_000_000 => format!("{:.1} KB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

pub fn describe_cold(result: &ColdResult) -> String {
    let connect = result
        .cold
        .connect_ms
        .map(|ms| match result.cold.tls_ms {
            Some(tls) => format!(", connect {ms:.1} ms (TLS {tls:.1} ms)"),
            None => format!(", connect {ms:.1} ms"),
        })
        .unwrap_or_default();
    let both_done = result.cold.end == EndReason::Done && result.warm.end == EndReason::Done;
    match (result.cold.ttft_ms, result.warm.ttft_ms) {
        (Some(cold), Some(warm)) if both_done => format!(
            "{}: fresh connection TTFT {cold:.1} ms{connect}, warm connection TTFT {warm:.1} ms ({:+.1} ms)",
            result.path.as_str(),
            cold - warm
        ),
        _ => format!(
            "{}: cold request {}; warm request {}",
            result.path.as_str(),
            result.cold.outcome(),
            result.warm.outcome()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::probe::path::{HeadersOfInterest, Percentiles, TokenSource};

    fn result(path: PathKind, end: EndReason, tokens: u64, last: f64, total: f64) -> PathResult {
        PathResult {
            path,
            url: "http://x".to_string(),
            status: Some(200),
            end,
            end_detail: None,
            connect_ms: None,
            tls_ms: None,
            new_connection: false,
            headers_ms: Some(5.0),
            first_chunk_ms: Some(20.0),
            ttft_ms: Some(20.0),
            ttft_definition: String::new(),
            itl_ms: Some(Percentiles {
                p50: 10.0,
                p90: 11.0,
                p99: 12.0,
                max: 13.0,
            }),
            gaps_over_1s: 0,
            longest_gap_ms: None,
            longest_gap_after_chunks: None,
            tpot_ms: Some(10.0),
            last_content_ms: Some(last),
            done_ms: None,
            total_ms: total,
            tokens,
            tokens_source: TokenSource::Usage,
            chunks: tokens,
            keepalives: 0,
            bytes: 0,
            headers: HeadersOfInterest::default(),
            arrivals_ms: Vec::new(),
            arrivals_stride: None,
            silences_ms: Vec::new(),
        }
    }

    #[test]
    fn a_cut_mesh_against_a_complete_direct() {
        let direct = result(PathKind::Direct, EndReason::Done, 900, 41_200.0, 41_300.0);
        let mesh = result(
            PathKind::Mesh,
            EndReason::EofWithoutDone,
            212,
            15_000.0,
            16_000.0,
        );
        let comparison = compare(Some(&direct), Some(&mesh));
        assert_eq!(
            comparison.verdict,
            "mesh cut at 15.0 s after 212 tokens, no [DONE]; direct completed in 41.3 s"
        );
        assert!(
            comparison.notes[0].contains("body ended at 16.0 s"),
            "{:?}",
            comparison.notes
        );
    }

    #[test]
    fn both_done_reports_the_overhead() {
        let direct = result(PathKind::Direct, EndReason::Done, 10, 100.0, 101.0);
        let mut mesh = result(PathKind::Mesh, EndReason::Done, 10, 100.0, 101.0);
        mesh.ttft_ms = Some(32.5);
        let comparison = compare(Some(&direct), Some(&mesh));
        assert!(
            comparison.verdict.contains("TTFT +12.5 ms"),
            "{}",
            comparison.verdict
        );
        assert_eq!(comparison.ttft_delta_ms, Some(12.5));
    }

    #[test]
    fn deltas_that_show_a_mode_become_notes() {
        let moved = |path, name: &str, mode, delta| CounterDelta {
            path,
            source: "client".to_string(),
            name: name.to_string(),
            mode,
            before: 0.0,
            after: delta,
            delta,
        };
        let lines = describe_deltas(&[
            moved(
                PathKind::Mesh,
                "cluster.outbound|8000||vllm.inference.svc.cluster.local.upstream_rq_timeout",
                Some(CheckId::StreamTimeout),
                1.0,
            ),
            moved(
                PathKind::Mesh,
                "cluster.outbound|8000||vllm.inference.svc.cluster.local.ssl.handshake",
                Some(CheckId::ColdStart),
                1.0,
            ),
            moved(PathKind::Direct, "istio_requests_total{}", None, 1.0),
        ]);
        assert_eq!(
            lines,
            vec!["mesh: Envoy counted upstream_rq_timeout +1 on client (stream-timeout)"]
        );
    }

    #[test]
    fn a_cold_pair_that_was_cut_says_so() {
        let done = result(PathKind::Mesh, EndReason::Done, 10, 100.0, 101.0);
        let cut = result(
            PathKind::Mesh,
            EndReason::EofWithoutDone,
            39,
            2000.0,
            3000.0,
        );
        let pair = |cold: &PathResult, warm: &PathResult| ColdResult {
            path: PathKind::Mesh,
            url: String::new(),
            cold: cold.clone(),
            warm: warm.clone(),
            ttft_penalty_ms: Some(0.0),
            warm_reused_connection: true,
        };
        assert!(describe_cold(&pair(&done, &done)).contains("fresh connection TTFT"));
        let line = describe_cold(&pair(&cut, &done));
        assert!(
            line.contains("cold request cut at 2.0 s after 39 tokens"),
            "{line}"
        );
    }

    #[test]
    fn cold_start_needs_a_clear_difference() {
        let named = cold_start(&[("direct".into(), 2500.0), ("mesh".into(), 100.0)]);
        assert!(named.unwrap().contains("direct"));
        assert_eq!(
            cold_start(&[("direct".into(), 300.0), ("mesh".into(), 50.0)]),
            None
        );
        assert_eq!(cold_start(&[("direct".into(), 3000.0)]), None);
    }

    #[test]
    fn a_refused_large_body_reads_as_the_error_body_it_was() {
        let refused = LargeResult {
            path: PathKind::Mesh,
            url: "http://x".to_string(),
            status: Some(500),
            end: EndReason::HttpError,
            end_detail: None,
            complete: false,
            bytes: 21,
            content_length: Some(21),
            tokens_asked: 8192,
            tokens: None,
            headers_ms: Some(3.0),
            total_ms: 4.0,
            headers: HeadersOfInterest {
                server: Some("envoy".to_string()),
                ..HeadersOfInterest::default()
            },
        };
        assert_eq!(
            describe_large(&refused),
            "mesh: body NOT complete (http-error): 21 bytes (Envoy's error body) arrived, status 500"
        );
        let cut = LargeResult {
            status: Some(200),
            end: EndReason::Reset,
            bytes: 65_536,
            content_length: Some(3_200_000),
            headers: HeadersOfInterest::default(),
            ..refused
        };
        assert_eq!(
            describe_large(&cut),
            "mesh: body NOT complete (reset): 65.5 KB of 3.2 MB arrived, status 200"
        );
    }
}
