//! What the probe runs of `diagnose --probe` (`TargetEvidence::probes`) prove: a run that broke
//! on the mesh path but not on the direct path is runtime proof for its failure mode, and the
//! finding's title states the with/without-sidecar comparison. Pure.

use super::{Basis, CheckId, EvidenceLine, Finding, Severity};
use crate::evidence::envoy::config::is_hbone_stat;
use crate::evidence::probe::modes::{ColdResult, ConcurrencyResult, LargeResult};
use crate::evidence::probe::path::{EndReason, PathKind, PathResult};
use crate::evidence::probe::report::{CounterDelta, ProbeReport};
use crate::evidence::probe::{ProbeMode, ProbeRun};
use crate::evidence::{ObjectRef, TargetEvidence};

/// A cut counts as "near" a timeout when it came within this much after it (Envoy closes a reset
/// stream about a second late per hop) or 20% before it; for an idle timeout, the silence before
/// the cut is what is measured.
const NEAR_AFTER_S: f64 = 3.0;
const NEAR_BEFORE_SHARE: f64 = 0.2;
/// A cold first request is "much slower" when its TTFT exceeds the warm one by this factor and
/// by at least this many milliseconds more than the direct path's penalty.
const COLD_FACTOR: f64 = 2.0;
const COLD_MIN_PENALTY_MS: f64 = 250.0;

/// Appends the runtime findings the probe runs show for `mode` to `findings` (the mode's other
/// findings). The proof makes the mode's fix urgent: when no finding at warning or above carries
/// one, the first runtime finding takes the fix of the most severe finding that has one (an info
/// finding's), else the mode's remedy in words (the objects to change were not read).
pub fn add(findings: &mut Vec<Finding>, target: &TargetEvidence, mode: CheckId) {
    let mut proven = self::findings(target, mode);
    let urgent_fix = findings
        .iter()
        .any(|finding| finding.fix.is_some() && finding.severity >= Severity::Warning);
    if let Some(first) = proven.first_mut().filter(|_| !urgent_fix) {
        let known = findings
            .iter()
            .filter(|finding| finding.fix.is_some())
            .max_by_key(|finding| finding.severity)
            .and_then(|finding| finding.fix.clone());
        first.fix = known.or_else(|| {
            remedy(mode, target).map(|summary| super::Fix {
                summary,
                yaml: String::new(),
            })
        });
    }
    findings.extend(proven);
}

/// The fix of `mode` in words, and where the exact YAML comes from.
fn remedy(mode: CheckId, target: &TargetEvidence) -> Option<String> {
    let exact = if target.workload.spec_known() {
        "no object read here sets it: look at EnvoyFilters, ProxyConfig and the gateway in front, or let the tool read the Envoys' config (without --no-envoy)".to_string()
    } else {
        format!(
            "for the exact YAML run `kubectl infermesh diagnose <deploy/NAME> -n {} --fix` on the cluster, or give --admin-url of the Envoys on the path",
            target.workload.namespace
        )
    };
    let what = match mode {
        CheckId::StreamTimeout => {
            "raise the timeout that cut the stream on the mesh path: the VirtualService route's `timeout` (Istio disables it unless set) and the HCM `stream_idle_timeout` (an EnvoyFilter or ProxyConfig sets it), above the longest generation"
        }
        CheckId::ConnectionPool => {
            "raise the DestinationRule `trafficPolicy.connectionPool` limits of the vLLM Service (`tcp.maxConnections`, `http.http1MaxPendingRequests`, `http.http2MaxRequests`) above what the replicas' `--max-num-seqs` admit, or remove them (Istio's default is 2^32-1)"
        }
        CheckId::BufferLimit => {
            "stream the response (`\"stream\": true`), or take the buffering filter off the vLLM route, or raise `per_connection_buffer_limit_bytes` above the largest body"
        }
        CheckId::ColdStart => {
            "warm the model up through the sidecar before the pod turns Ready (a startupProbe or postStart hook that posts a short completion) and set `holdApplicationUntilProxyStarts: true` in `proxy.istio.io/config`"
        }
        CheckId::EndpointPicker => {
            "bring the InferencePool's endpoint picker back (its Deployment scaled up and Ready, its Service named by `endpointPickerRef`), or set `failureMode: FailOpen` while it is away"
        }
        CheckId::SidecarOverhead => return None,
    };
    Some(format!("{what}; {exact}"))
}

/// The runtime findings the probe runs show for `mode` (none for sidecar-overhead).
pub fn findings(target: &TargetEvidence, mode: CheckId) -> Vec<Finding> {
    target
        .probes
        .iter()
        .filter_map(|run| match mode {
            CheckId::StreamTimeout => stream_cut(run),
            CheckId::ConnectionPool => pool_rejected(run).or_else(|| stream_refused(run, mode)),
            CheckId::BufferLimit => large_broken(run)
                .or_else(|| prompt_refused(run))
                .or_else(|| stream_refused(run, mode)),
            CheckId::ColdStart => cold_slow(run),
            CheckId::EndpointPicker => stream_refused(run, mode),
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

/// The direct and the mesh result among `results`, each naming its path.
fn both_paths<T>(results: &[T], path: impl Fn(&T) -> PathKind) -> Option<(&T, &T)> {
    let find = |kind: PathKind| results.iter().find(|result| path(result) == kind);
    Some((find(PathKind::Direct)?, find(PathKind::Mesh)?))
}

fn path(run: &ProbeRun, kind: PathKind) -> Option<&PathResult> {
    let report = run.report.as_ref()?;
    report
        .paths
        .iter()
        .find(|path| path.result.path == kind)
        .map(|path| &path.result)
}

/// `without the sidecar the stream completed in 5.1 s`, or, stopped by the probe once the mesh
/// stream had failed, `… ran on to 3.2 s (stopped there, past the mesh stream's end)`.
fn direct_stream_words(direct: &PathResult) -> String {
    if direct.end == EndReason::Answered {
        format!(
            "without the sidecar the stream ran on to {} (stopped there, past the mesh stream's end)",
            seconds(direct.total_ms)
        )
    } else {
        format!(
            "without the sidecar the stream completed in {}",
            seconds(direct.done_ms.unwrap_or(direct.total_ms))
        )
    }
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
    // `answered`: stopped by the probe after streaming on past the mesh stream's end.
    if !matches!(direct.end, EndReason::Done | EndReason::Answered) {
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
        "{}; through the mesh {how}: the problem is in the mesh path",
        direct_stream_words(direct)
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
            EvidenceLine::new(
                probe_ref(&direct.url),
                "direct/stream/end",
                direct.end.as_str(),
            )
            .with_note(format!(
                "{} tokens in {}",
                direct.tokens,
                seconds(completed)
            )),
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

/// A stream refused on the mesh (413, 500 or 503) that completed on the direct path, while an
/// Envoy on the mesh path counted a failure of `mode`: a buffering filter holding the stream, or
/// a pool turning it away.
fn stream_refused(run: &ProbeRun, mode: CheckId) -> Option<Finding> {
    const REFUSALS: [u16; 3] = [413, 500, 503];
    if !matches!(run.planned.mode, ProbeMode::Stream { .. }) {
        return None;
    }
    let direct = path(run, PathKind::Direct)?;
    let mesh = path(run, PathKind::Mesh)?;
    let status = mesh.status.filter(|status| REFUSALS.contains(status))?;
    if !matches!(direct.end, EndReason::Done | EndReason::Answered)
        || mesh.end != EndReason::HttpError
    {
        return None;
    }
    let report = run.report.as_ref()?;
    let counted = report.counter_deltas.iter().find(|delta| {
        delta.path == PathKind::Mesh && delta.mode == Some(mode) && delta.delta > 0.0
    })?;
    let title = format!(
        "{}; through the mesh it was answered {status} after {} and Envoy counted {} +{}: the problem is in the mesh path",
        direct_stream_words(direct),
        seconds(mesh.total_ms),
        counted.name,
        counted.delta
    );
    Some(
        runtime(mode, title)
            .evidence(
                EvidenceLine::new(
                    probe_ref(&mesh.url),
                    "mesh/stream/status",
                    status.to_string(),
                )
                .with_note(format!("{} tokens", mesh.tokens)),
            )
            .evidence(
                EvidenceLine::new(
                    ObjectRef::new("Envoy", None, &counted.source),
                    counted.name.clone(),
                    format!("+{}", counted.delta),
                )
                .with_note("moved while the mesh stream ran"),
            )
            .evidence(EvidenceLine::new(
                probe_ref(&direct.url),
                "direct/stream/end",
                "done",
            )),
    )
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
    let (direct, mesh) = both_paths(&run.report.as_ref()?.concurrency, |result| result.path)?;
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

/// A large body incomplete or answered 500 on the mesh, complete on the direct path.
fn large_broken(run: &ProbeRun) -> Option<Finding> {
    if !matches!(run.planned.mode, ProbeMode::Large { .. }) {
        return None;
    }
    let (direct, mesh) = both_paths(&run.report.as_ref()?.large, |result| result.path)?;
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

/// A large request body taken on the direct path and refused (413, or cut) on the mesh.
fn prompt_refused(run: &ProbeRun) -> Option<Finding> {
    let ProbeMode::LargePrompt { bytes } = run.planned.mode else {
        return None;
    };
    let (direct, mesh) = both_paths(&run.report.as_ref()?.large_prompt, |result| result.path)?;
    if !direct.complete || mesh.complete {
        return None;
    }
    let status = |result: &LargeResult| {
        result
            .status
            .map_or("no status".to_string(), |code| code.to_string())
    };
    let title = format!(
        "without the sidecar a {bytes} byte prompt was taken ({}); through the mesh it was refused ({}, {}): the problem is in the mesh path",
        status(direct),
        status(mesh),
        mesh.end.as_str()
    );
    Some(
        runtime(CheckId::BufferLimit, title)
            .evidence(EvidenceLine::new(
                probe_ref(&mesh.url),
                "mesh/largePrompt/status",
                status(mesh),
            ))
            .evidence(EvidenceLine::new(
                probe_ref(&direct.url),
                "direct/largePrompt/status",
                status(direct),
            ))
            .evidence(EvidenceLine::new(
                probe_ref(&mesh.url),
                "plan/largePrompt",
                run.planned.reason.clone(),
            )),
    )
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
    let (direct, mesh) = both_paths(&report.cold, |result| result.path)?;
    let (mesh_cold, mesh_warm, mesh_penalty) = penalty(mesh)?;
    let (_, _, direct_penalty) = penalty(direct)?;
    let slow = mesh_cold > mesh_warm * COLD_FACTOR
        && mesh_penalty - direct_penalty.max(0.0) > COLD_MIN_PENALTY_MS;
    if !slow {
        return None;
    }
    let mesh_went_first = report
        .cold
        .first()
        .is_some_and(|first| first.path == PathKind::Mesh);
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
    let handshakes = new_connections(report).map(|delta| {
        let what = if is_hbone_stat(&delta.name) {
            "a new HBONE connection to the pod's ztunnel: its mTLS handshake was on the first request"
        } else {
            "a new upstream TLS connection: its handshake was on the first request"
        };
        EvidenceLine::new(
            ObjectRef::new("Envoy", None, &delta.source),
            delta.name.clone(),
            format!("+{}", delta.delta),
        )
        .with_note(format!("{what}; the warm request reused it"))
    });
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
            ))
            .evidence_if(handshakes),
    )
}

/// The upstream TLS handshakes an Envoy on the mesh path counted during the cold pair: the
/// tunnel's (`connect_originate`, ambient) first, else a cluster's.
fn new_connections(report: &ProbeReport) -> Option<&CounterDelta> {
    let handshakes = || {
        report.counter_deltas.iter().filter(|delta| {
            delta.path == PathKind::Mesh
                && delta.delta > 0.0
                && delta.name.starts_with("cluster.")
                && delta.name.ends_with(".ssl.handshake")
        })
    };
    handshakes()
        .find(|delta| is_hbone_stat(&delta.name))
        .or_else(|| handshakes().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{assert_well_formed, endpoint_target, scenario_pair};

    /// Probe runs saved by `tests/diagnose_probe.rs` (`INFERMESH_KEEP_PROBES=DIR`) against a real
    /// Envoy pair, on the matching scenario's Envoys.
    fn target(scenario: &str) -> TargetEvidence {
        target_with(scenario, scenario)
    }

    /// The probe runs of `runs`.json on the Envoys of `scenario`.
    fn target_with(scenario: &str, runs: &str) -> TargetEvidence {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/probe_runs")
            .join(format!("{runs}.json"));
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
    fn a_cut_after_silence_near_an_idle_timeout_is_critical_and_says_so() {
        let target = target("stream-idle-timeout");
        let found = all(&target);
        assert_well_formed(&found);
        assert_eq!(found.len(), 1, "{found:#?}");
        let finding = &found[0];
        assert_eq!(finding.id, CheckId::StreamTimeout);
        assert_eq!(finding.severity, Severity::Critical, "{finding:#?}");
        assert!(
            finding.title.contains("through the mesh it went silent at")
                && finding.title.contains("tokens and was cut"),
            "{}",
            finding.title
        );
        assert!(
            finding.evidence[0]
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("within reach of the 2.0 s idle timeout found"),
            "{:#?}",
            finding.evidence
        );
    }

    #[test]
    fn an_idle_cut_judged_as_a_deadline_is_far_from_it() {
        let mut target = target("stream-idle-timeout");
        if let ProbeMode::Stream { idle, .. } = &mut target.probes[1].planned.mode {
            *idle = false;
        }
        let found = findings(&target, CheckId::StreamTimeout);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].severity, Severity::Warning, "{found:#?}");
    }

    #[test]
    fn a_buffering_filter_breaks_the_stream_and_the_large_body_on_the_mesh_only() {
        let target = target("buffer-filter");
        let found = all(&target);
        assert_well_formed(&found);
        let titles: Vec<&str> = found.iter().map(|finding| finding.title.as_str()).collect();
        assert_eq!(found.len(), 2, "{titles:#?}");
        assert!(
            found.iter().all(
                |finding| finding.id == CheckId::BufferLimit && finding.basis == Basis::Runtime
            )
        );
        assert!(
            titles[0].contains("through the mesh it was answered 500")
                && titles[0].contains("rs_too_large +1"),
            "{}",
            titles[0]
        );
        assert!(
            titles[1].starts_with("without the sidecar the large body arrived whole"),
            "{}",
            titles[1]
        );
    }

    #[test]
    fn a_refused_stream_without_a_counter_of_the_mode_proves_nothing() {
        let mut target = target("buffer-filter");
        for run in &mut target.probes {
            if let Some(report) = run.report.as_mut() {
                report.counter_deltas.clear();
            }
        }
        let found = findings(&target, CheckId::BufferLimit);
        assert_eq!(found.len(), 1, "only the large body: {found:#?}");
        assert!(findings(&target, CheckId::ConnectionPool).is_empty());
    }

    #[test]
    fn a_slow_first_request_through_the_mesh_first_is_cold_start() {
        let target = target_with("healthy", "cold-start");
        let found = all(&target);
        assert_well_formed(&found);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].id, CheckId::ColdStart);
        assert!(
            found[0]
                .title
                .starts_with("the first request through the mesh paid")
                && found[0]
                    .title
                    .ends_with("the pod takes user traffic before it is warm"),
            "{}",
            found[0].title
        );
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
    fn a_proof_carries_its_modes_fix_when_no_warning_does() {
        let target = target_with("healthy", "cold-start");
        let mut alone = Vec::new();
        add(&mut alone, &target, CheckId::ColdStart);
        let fix = alone[0].fix.as_ref().unwrap();
        assert!(fix.yaml.is_empty());
        assert!(
            fix.summary.contains("holdApplicationUntilProxyStarts")
                && fix
                    .summary
                    .contains("kubectl infermesh diagnose <deploy/NAME> -n inference --fix"),
            "{}",
            fix.summary
        );
        let mut fixed = vec![
            Finding::new(
                CheckId::ColdStart,
                Severity::Warning,
                Basis::Static,
                "static",
            )
            .fix("patch", "spec: {}"),
        ];
        add(&mut fixed, &target, CheckId::ColdStart);
        assert_eq!(fixed.len(), 2);
        assert!(fixed[1].fix.is_none(), "{:#?}", fixed[1]);
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
