//! What a probe's measurements add up to, for the exit code: did the mesh path fail where the
//! direct path did not?

use crate::evidence::probe::modes::{ColdResult, ConcurrencyResult};
use crate::evidence::probe::path::{EndReason, PathKind, PathResult};
use crate::evidence::probe::report::ProbeReport;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every measurement on the mesh path did as well as on the direct path, and the direct path
    /// succeeded.
    Fine,
    /// Some measurement failed more often on the mesh path than on the direct path (or failed on
    /// the mesh with no direct path to compare).
    MeshFailure,
    /// The direct path failed too: the fault is before the mesh (vLLM, the model, the request),
    /// so there is no healthy baseline to judge the mesh against.
    DirectFailure,
    /// Ctrl-C stopped the probe; the report is partial.
    Interrupted,
}

/// Failed measurements per path, per kind of measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Failures {
    direct: usize,
    mesh: usize,
}

impl Failures {
    fn add(&mut self, path: PathKind, failed: usize) {
        match path {
            PathKind::Direct => self.direct += failed,
            PathKind::Mesh => self.mesh += failed,
        }
    }
}

fn stream_failed(result: &PathResult) -> usize {
    usize::from(result.end != EndReason::Done)
}

fn concurrency_failed(result: &ConcurrencyResult) -> usize {
    let done = result.by_end.get("done").copied().unwrap_or(0);
    result.streams.saturating_sub(done) as usize
}

fn cold_failed(result: &ColdResult) -> usize {
    stream_failed(&result.cold) + stream_failed(&result.warm)
}

impl ProbeReport {
    pub fn outcome(&self) -> Outcome {
        if self.interrupted {
            return Outcome::Interrupted;
        }
        let mut kinds = [Failures::default(); 5];
        let streams = if self.runs.is_empty() {
            &self.paths
        } else {
            &self.runs
        };
        for run in streams {
            kinds[0].add(run.result.path, stream_failed(&run.result));
        }
        for result in &self.concurrency {
            kinds[1].add(result.path, concurrency_failed(result));
        }
        for result in &self.large {
            kinds[2].add(result.path, usize::from(!result.complete));
        }
        for result in &self.cold {
            kinds[3].add(result.path, cold_failed(result));
        }
        for result in &self.large_prompt {
            kinds[4].add(result.path, usize::from(!result.complete));
        }
        if kinds.iter().any(|kind| kind.mesh > kind.direct) {
            Outcome::MeshFailure
        } else if kinds.iter().any(|kind| kind.direct > 0) {
            Outcome::DirectFailure
        } else {
            Outcome::Fine
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::probe::path::{HeadersOfInterest, TokenSource};
    use crate::evidence::probe::report::{
        Api, Comparison, PROBE_SCHEMA_VERSION, PathReport, RequestSummary,
    };
    use std::collections::BTreeMap;

    fn result(path: PathKind, end: EndReason) -> PathResult {
        PathResult {
            path,
            url: "http://x".to_string(),
            status: Some(200),
            end,
            end_detail: None,
            connect_ms: None,
            tls_ms: None,
            new_connection: false,
            headers_ms: None,
            first_chunk_ms: None,
            ttft_ms: None,
            ttft_definition: String::new(),
            itl_ms: None,
            gaps_over_1s: 0,
            longest_gap_ms: None,
            longest_gap_after_chunks: None,
            tpot_ms: None,
            last_content_ms: None,
            done_ms: None,
            total_ms: 1.0,
            tokens: 1,
            tokens_source: TokenSource::Chunks,
            chunks: 1,
            keepalives: 0,
            bytes: 1,
            headers: HeadersOfInterest::default(),
            arrivals_ms: Vec::new(),
            arrivals_stride: None,
            silences_ms: Vec::new(),
        }
    }

    fn report(paths: &[(PathKind, EndReason)]) -> ProbeReport {
        ProbeReport {
            schema_version: PROBE_SCHEMA_VERSION,
            request: RequestSummary {
                api: Api::Completions,
                model: "m".to_string(),
                max_tokens: 1,
                exact_length: false,
                duration_s: None,
                warmup_tokens_per_second: None,
                http2: false,
            },
            paths: paths
                .iter()
                .map(|(path, end)| PathReport {
                    result: result(*path, *end),
                    server_side: None,
                    run: 1,
                })
                .collect(),
            runs: Vec::new(),
            warmup: None,
            concurrency: Vec::new(),
            large: Vec::new(),
            large_prompt: Vec::new(),
            cold: Vec::new(),
            counter_deltas: Vec::new(),
            counter_sources: Vec::new(),
            tls: Vec::new(),
            cluster: None,
            first_tokens: Vec::new(),
            comparison: Comparison::default(),
            gaps: Vec::new(),
            interrupted: false,
        }
    }

    fn concurrency(path: PathKind, streams: u32, done: u32) -> ConcurrencyResult {
        ConcurrencyResult {
            path,
            url: String::new(),
            streams,
            by_status: BTreeMap::new(),
            by_end: BTreeMap::from([("done".to_string(), done)]),
            share_503: 0.0,
            overloaded: 0,
            failures: Vec::new(),
            connections_opened: 0,
            ttft_ms: None,
            wall_ms: 0.0,
            server_side: None,
            stream_spans: Vec::new(),
        }
    }

    #[test]
    fn streams_decide_by_path() {
        use EndReason::{Done, EofWithoutDone, StreamError};
        use PathKind::{Direct, Mesh};
        assert_eq!(
            report(&[(Direct, Done), (Mesh, Done)]).outcome(),
            Outcome::Fine
        );
        assert_eq!(
            report(&[(Direct, Done), (Mesh, EofWithoutDone)]).outcome(),
            Outcome::MeshFailure
        );
        assert_eq!(
            report(&[(Direct, StreamError), (Mesh, StreamError)]).outcome(),
            Outcome::DirectFailure
        );
        assert_eq!(
            report(&[(Direct, StreamError), (Mesh, Done)]).outcome(),
            Outcome::DirectFailure
        );
        assert_eq!(
            report(&[(Mesh, EofWithoutDone)]).outcome(),
            Outcome::MeshFailure
        );
        let mut interrupted = report(&[(Direct, Done)]);
        interrupted.interrupted = true;
        assert_eq!(interrupted.outcome(), Outcome::Interrupted);
    }

    #[test]
    fn concurrency_compares_failure_counts() {
        let mut more_on_mesh = report(&[]);
        more_on_mesh.concurrency = vec![
            concurrency(PathKind::Direct, 8, 7),
            concurrency(PathKind::Mesh, 8, 2),
        ];
        assert_eq!(more_on_mesh.outcome(), Outcome::MeshFailure);
        let mut same = report(&[]);
        same.concurrency = vec![
            concurrency(PathKind::Direct, 8, 8),
            concurrency(PathKind::Mesh, 8, 8),
        ];
        assert_eq!(same.outcome(), Outcome::Fine);
    }
}
