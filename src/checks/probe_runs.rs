//! What the probe runs of `diagnose --probe` (`TargetEvidence::probes`) prove: a run that broke
//! on the mesh path but not on the direct path is runtime proof for its failure mode, and the
//! finding's title states the with/without-sidecar comparison. Pure.

use super::{Basis, CheckId, EvidenceLine, Finding, Severity};
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::probe::modes::{ColdResult, ConcurrencyResult, LargeResult};
use crate::probe::plan::{ProbeMode, ProbeRun};
use crate::probe::sse::EndReason;
use crate::probe::summary::{PathKind, PathResult};

/// A cut counts as "near" a timeout when it came within this much after it (Envoy closes a reset
/// stream about a second late per hop) or 20% before it; for an idle timeout, the silence before
/// the cut is what is measured.
const NEAR_AFTER_S: f64 = 3.0;
const NEAR_BEFORE_SHARE: f64 = 0.2;
/// A cold first request is "much slower" when its TTFT exceeds the warm one by this factor and
/// by at least this many milliseconds more than the direct path's penalty.
const COLD_FACTOR: f64 = 2.0;
const COLD_MIN_PENALTY_MS: f64 = 250.0;

/// The runtime findings the probe runs show for `mode` (none for sidecar-overhead).
pub fn findings(target: &TargetEvidence, mode: CheckId) -> Vec<Finding> {
    target
        .probes
        .iter()
        .filter_map(|run| match mode {
            CheckId::StreamTimeout => stream_cut(run),
            CheckId::ConnectionPool => pool_rejected(run),
            CheckId::BufferLimit => large_broken(run),
            CheckId::ColdStart => cold_slow(run),
            CheckId::SidecarOverhead => None,
        })
        .collect()
}

fn probe_ref(url: &str) -> ObjectRef {
    ObjectRef::new("Probe", None, url)
}

fn seconds(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
}

fn runtime(mode: CheckId, title: String) -> Finding {
    Finding::new(mode, Severity::Critical, Basis::Runtime, title)
}

fn path(run: &ProbeRun, kind: PathKind) -> Option<&PathResult> {
    let report = run.report.as_ref()?;
    report
        .paths
        .iter()
        .find(|path| path.result.path == kind)
        .map(|path| &path.result)
}

/// A stream cut (or answered 504) on the mesh that completed on the direct path.
fn stream_cut(run: &ProbeRun) -> Option<Finding> {
    let ProbeMode::Stream {
        timeout_s, idle, ..
    } = &run.planned.mode
    else {
        return None;
    };
    let direct = path(run, PathKind::Direct)?;
    let mesh = path(run, PathKind::Mesh)?;
    if direct.end != EndReason::Done {
        return None;
    }
    let cut = matches!(mesh.end, EndReason::EofWithoutDone | EndReason::Reset);
    let timed_out = mesh.end == EndReason::HttpError && mesh.status == Some(504);
    if !cut && !timed_out {
        return None;
    }
    let completed = direct.done_ms.unwrap_or(direct.total_ms);
    let last_token = mesh.last_content_ms.unwrap_or(mesh.total_ms);
    let silence = (mesh.total_ms - last_token).max(0.0);
    // What an idle timeout counts is the silence; any other timeout, the stream's length.
    let measured = if *idle { silence } else { last_token };
    let near = timeout_s.is_some_and(|timeout| {
        let at = measured / 1000.0;
        at >= timeout * (1.0 - NEAR_BEFORE_SHARE) && at <= timeout + NEAR_AFTER_S
    });
    let how = if timed_out {
        format!("it was answered 504 after {}", seconds(mesh.total_ms))
    } else if *idle {
        format!(
            "it went silent at {} after {} tokens and was cut {} later ({})",
            seconds(last_token),
            mesh.tokens,
            seconds(silence),
            mesh.end.as_str()
        )
    } else {
        format!(
            "it was cut at {} after {} tokens ({})",
            seconds(last_token),
            mesh.tokens,
            mesh.end.as_str()
        )
    };
    let title = format!(
        "without the sidecar the stream completed in {}; through the mesh {how}: the problem is in the mesh path",
        seconds(completed)
    );
    let kind = if *idle { "idle timeout" } else { "timeout" };
    let severity_note = match timeout_s {
        Some(timeout) if near || timed_out => {
            format!("within reach of the {timeout:.1} s {kind} found")
        }
        Some(timeout) => {
            format!("not near the {timeout:.1} s {kind} found: another limit cut it")
        }
        None => "no timeout was read (no Envoy configuration): the cut on the mesh path alone is the proof".to_string(),
    };
    let mut finding = runtime(CheckId::StreamTimeout, title)
        .evidence(
            EvidenceLine::new(probe_ref(&mesh.url), "mesh/stream/end", mesh.end.as_str())
                .with_note(format!(
                    "{} tokens, last at {}, end at {}; {severity_note}",
                    mesh.tokens,
                    seconds(last_token),
                    seconds(mesh.total_ms)
                )),
        )
        .evidence(
            EvidenceLine::new(probe_ref(&direct.url), "direct/stream/end", "done").with_note(
                format!("{} tokens in {}", direct.tokens, seconds(completed)),
            ),
        )
        .evidence(EvidenceLine::new(
            probe_ref(&mesh.url),
            "plan/stream",
            run.planned.reason.clone(),
        ));
    // A cut far from the timeout that was read may be another limit's; with none read, a cut on
    // the mesh path alone is the proof.
    if timeout_s.is_some() && !(near || timed_out) {
        finding.severity = Severity::Warning;
    }
    Some(finding)
}

fn concurrency(run: &ProbeRun, kind: PathKind) -> Option<&ConcurrencyResult> {
    run.report
        .as_ref()?
        .concurrency
        .iter()
        .find(|result| result.path == kind)
}

fn rejected(result: &ConcurrencyResult) -> u32 {
    let status_503 = result.by_status.get("503").copied().unwrap_or(0);
    status_503.max(result.overloaded)
}

/// 503s or `x-envoy-overloaded` in a burst on the mesh, none on the direct path.
fn pool_rejected(run: &ProbeRun) -> Option<Finding> {
    let ProbeMode::Burst { streams } = run.planned.mode else {
        return None;
    };
    let direct = concurrency(run, PathKind::Direct)?;
    let mesh = concurrency(run, PathKind::Mesh)?;
    let on_mesh = rejected(mesh);
    if on_mesh == 0 || rejected(direct) > 0 {
        return None;
    }
    let done = |result: &ConcurrencyResult| result.by_end.get("done").copied().unwrap_or(0);
    let title = format!(
        "without the sidecar {} of {streams} concurrent streams completed; through the mesh {on_mesh} were rejected with 503 ({} overloaded): the problem is in the mesh path",
        done(direct),
        mesh.overloaded
    );
    Some(
        runtime(CheckId::ConnectionPool, title)
            .evidence(
                EvidenceLine::new(probe_ref(&mesh.url), "mesh/burst/503", on_mesh.to_string())
                    .with_note(format!(
                        "x-envoy-overloaded on {} of {streams}",
                        mesh.overloaded
                    )),
            )
            .evidence(EvidenceLine::new(
                probe_ref(&direct.url),
                "direct/burst/done",
                done(direct).to_string(),
            ))
            .evidence(EvidenceLine::new(
                probe_ref(&mesh.url),
                "plan/burst",
                run.planned.reason.clone(),
            )),
    )
}

fn large(run: &ProbeRun, kind: PathKind) -> Option<&LargeResult> {
    run.report
        .as_ref()?
        .large
        .iter()
        .find(|result| result.path == kind)
}

/// A large body incomplete or answered 500 on the mesh, complete on the direct path.
fn large_broken(run: &ProbeRun) -> Option<Finding> {
    if !matches!(run.planned.mode, ProbeMode::Large { .. }) {
        return None;
    }
    let direct = large(run, PathKind::Direct)?;
    let mesh = large(run, PathKind::Mesh)?;
    if !direct.complete || (mesh.complete && mesh.status != Some(500)) {
        return None;
    }
    let status = mesh
        .status
        .map_or("no status".to_string(), |code| code.to_string());
    let title = format!(
        "without the sidecar the large body arrived whole ({} bytes); through the mesh it was {} ({status}, {} bytes): the problem is in the mesh path",
        direct.bytes,
        if mesh.complete {
            "an error"
        } else {
            "incomplete"
        },
        mesh.bytes
    );
    Some(
        runtime(CheckId::BufferLimit, title)
            .evidence(
                EvidenceLine::new(probe_ref(&mesh.url), "mesh/large/status", status)
                    .with_note(format!("{}, {} bytes", mesh.end.as_str(), mesh.bytes)),
            )
            .evidence(EvidenceLine::new(
                probe_ref(&direct.url),
                "direct/large/bytes",
                direct.bytes.to_string(),
            ))
            .evidence(EvidenceLine::new(
                probe_ref(&mesh.url),
                "plan/large",
                run.planned.reason.clone(),
            )),
    )
}

fn cold(run: &ProbeRun, kind: PathKind) -> Option<&ColdResult> {
    run.report
        .as_ref()?
        .cold
        .iter()
        .find(|result| result.path == kind)
}

/// Extra TTFT of the cold request over the warm one.
fn penalty(result: &ColdResult) -> Option<(f64, f64, f64)> {
    let cold = result.cold.ttft_ms?;
    let warm = result.warm.ttft_ms?;
    Some((cold, warm, cold - warm))
}

/// A first request on a fresh connection much slower than the warm one on the mesh only.
fn cold_slow(run: &ProbeRun) -> Option<Finding> {
    if run.planned.mode != ProbeMode::Cold {
        return None;
    }
    let report = run.report.as_ref()?;
    let mesh = cold(run, PathKind::Mesh)?;
    let direct = cold(run, PathKind::Direct)?;
    let (mesh_cold, mesh_warm, mesh_penalty) = penalty(mesh)?;
    let (_, _, direct_penalty) = penalty(direct)?;
    let slow = mesh_cold > mesh_warm * COLD_FACTOR
        && mesh_penalty - direct_penalty.max(0.0) > COLD_MIN_PENALTY_MS;
    if !slow {
        return None;
    }
    let mesh_went_first = report.cold.first().is_some_and(|first| first.path == PathKind::Mesh);
    let title = if mesh_went_first {
        format!(
            "the first request through the mesh paid {mesh_penalty:.0} ms over a warm one (first token at {mesh_cold:.0} ms, warm {mesh_warm:.0} ms); without the sidecar, right after, a fresh connection paid {direct_penalty:.0} ms: the pod takes user traffic before it is warm"
        )
    } else {
        format!(
            "without the sidecar the first request paid {direct_penalty:.0} ms over a warm one; through the mesh it paid {mesh_penalty:.0} ms (first token at {mesh_cold:.0} ms, warm {mesh_warm:.0} ms): the problem is in the mesh path"
        )
    };
    let order = if mesh_went_first {
        "the mesh path was probed first, as a user's first request"
    } else {
        "the direct path was probed first"
    };
    Some(
        runtime(CheckId::ColdStart, title)
            .evidence(
                EvidenceLine::new(
                    probe_ref(&mesh.url),
                    "mesh/cold/ttftMs",
                    format!("{mesh_cold:.0}"),
                )
                .with_note(format!("warm {mesh_warm:.0} ms; {order}")),
            )
            .evidence(EvidenceLine::new(
                probe_ref(&direct.url),
                "direct/cold/penaltyMs",
                format!("{direct_penalty:.0}"),
            ))
            .evidence(EvidenceLine::new(
                probe_ref(&mesh.url),
                "plan/cold",
                run.planned.reason.clone(),
            )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{assert_well_formed, endpoint_target, scenario_pair};

    /// Probe runs saved by `tests/diagnose_probe.rs` (`INFERMESH_KEEP_PROBES=DIR`) against a real
    /// Envoy pair, on the matching scenario's Envoys.
    fn target(scenario: &str) -> TargetEvidence {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/probe_runs")
            .join(format!("{scenario}.json"));
        let mut target = endpoint_target(scenario_pair(scenario));
        target.probes = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        target
    }

    fn all(target: &TargetEvidence) -> Vec<Finding> {
        CheckId::ALL
            .iter()
            .flat_map(|mode| findings(target, *mode))
            .collect()
    }

    #[test]
    fn a_mesh_only_cut_near_the_route_timeout_is_critical_runtime_with_the_comparison() {
        let target = target("route-timeout");
        let found = all(&target);
        assert_well_formed(&found);
        assert_eq!(found.len(), 1, "{found:#?}");
        let finding = &found[0];
        assert_eq!(finding.id, CheckId::StreamTimeout);
        assert_eq!(
            (finding.severity, finding.basis),
            (Severity::Critical, Basis::Runtime)
        );
        assert!(
            finding
                .title
                .starts_with("without the sidecar the stream completed in 5.0 s; through the mesh it was cut at 2.0 s after 39 tokens"),
            "{}",
            finding.title
        );
        assert!(finding.title.ends_with("the problem is in the mesh path"));
    }

    #[test]
    fn a_cut_far_from_any_timeout_found_is_only_a_warning() {
        let mut target = target("route-timeout");
        if let ProbeMode::Stream { timeout_s, .. } = &mut target.probes[0].planned.mode {
            *timeout_s = Some(60.0);
        }
        let found = findings(&target, CheckId::StreamTimeout);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning);
    }

    #[test]
    fn with_no_timeout_read_a_mesh_only_cut_is_still_critical() {
        let mut target = target("route-timeout");
        if let ProbeMode::Stream { timeout_s, .. } = &mut target.probes[0].planned.mode {
            *timeout_s = None;
        }
        let found = findings(&target, CheckId::StreamTimeout);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Critical);
    }

    #[test]
    fn a_cut_on_both_paths_is_not_the_mesh() {
        let mut target = target("route-timeout");
        let report = target.probes[0].report.as_mut().unwrap();
        let mesh = report.paths[1].result.clone();
        report.paths[0].result.end = mesh.end;
        assert!(findings(&target, CheckId::StreamTimeout).is_empty());
    }

    #[test]
    fn mesh_only_503s_in_a_burst_prove_the_pool() {
        let target = target("circuit-breaker");
        let found = all(&target);
        assert_well_formed(&found);
        let pool: Vec<&Finding> = found
            .iter()
            .filter(|finding| finding.id == CheckId::ConnectionPool)
            .collect();
        assert_eq!(pool.len(), 1, "{found:#?}");
        assert_eq!(pool[0].basis, Basis::Runtime);
        assert!(
            pool[0].title.contains("through the mesh")
                && pool[0].title.contains("rejected with 503"),
            "{}",
            pool[0].title
        );
    }

    #[test]
    fn a_healthy_pair_proves_nothing() {
        assert!(all(&target("healthy")).is_empty());
    }

    #[test]
    fn a_mesh_cold_request_much_slower_than_warm_is_cold_start() {
        let mut target = target("healthy");
        let cold = target
            .probes
            .iter_mut()
            .find(|run| run.planned.mode == ProbeMode::Cold)
            .and_then(|run| run.report.as_mut())
            .unwrap();
        let mesh = cold
            .cold
            .iter_mut()
            .find(|result| result.path == PathKind::Mesh)
            .unwrap();
        mesh.cold.ttft_ms = Some(1500.0);
        mesh.warm.ttft_ms = Some(50.0);
        let found = findings(&target, CheckId::ColdStart);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].title.contains("through the mesh it paid 1450 ms"));
    }
}
