//! Ranking findings into a root cause. The verdict decides; the report only renders it.
//!
//! Order (docs/facts.md): severity first, then what the finding rests on (something that happened
//! outranks the proxy's effective configuration, which outranks configuration as written), then
//! the failure-mode number. The first finding above `info` is the root cause.

pub mod probe_outcome;
pub mod probe_plan;
pub mod probe_reading;
pub mod timeline;

use crate::checks::{self, Basis, Finding, Settings, Severity};
use crate::evidence::{
    CheckId, Evidence, Gap, GpuRequest, IstioPresence, SidecarMode, TargetEvidence,
};
use serde::Serialize;
use std::cmp::Ordering;
use std::time::Duration;

/// The verdict for a whole run.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub expected_generation: Duration,
    pub sources: Vec<String>,
    pub targets: Vec<TargetDiagnosis>,
    /// What could not be gathered for every target.
    pub gaps: Vec<Gap>,
    /// The `--fail-on` threshold this diagnosis was judged against.
    pub fail_on: Severity,
    /// The most severe finding over all targets, if any.
    pub worst: Option<Severity>,
    /// A finding at or above `fail_on` exists (exit code 3).
    pub failed: bool,
}

impl Diagnosis {
    /// 3 when a finding is at or above `--fail-on`, else 0; the same in every output format.
    pub fn exit_code(&self) -> u8 {
        if self.failed {
            EXIT_FINDINGS
        } else {
            EXIT_CLEAN
        }
    }
}

/// Exit code when nothing is at or above `--fail-on`.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code when a finding is at or above `--fail-on`.
pub const EXIT_FINDINGS: u8 = 3;

/// The verdict for one inference workload.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetDiagnosis {
    pub target: TargetSummary,
    /// `None` when nothing is above `info`: the target is healthy.
    pub root_cause: Option<RootCause>,
    /// Other failure modes above `info`, in rank order, without the root cause's.
    pub also_contributing: Vec<Contributor>,
    /// Every finding, ranked.
    pub findings: Vec<Finding>,
    /// Each check and what came of it, in failure-mode order.
    pub checks: Vec<CheckOutcome>,
    pub gaps: Vec<Gap>,
    /// "Do you need Istio here?": advice after the five checks, never a root cause.
    pub mesh_need: Option<checks::mesh_need::MeshNeed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSummary {
    /// `Deployment`, `StatefulSet` or `Pod`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `deploy/vllm`, as a user types it.
    #[serde(rename = "ref")]
    pub reference: String,
    pub sidecar_mode: SidecarMode,
    pub sidecar_reason: String,
    /// Ambient mode: the waypoint that runs L7 policy, or why none does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ambient: Option<AmbientSummary>,
    pub gpu: Option<GpuSummary>,
    pub replicas: u32,
    pub detected_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AmbientSummary {
    /// `serving/waypoint`, or absent: no waypoint, ztunnel alone (L4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<String>,
    pub waypoint_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuSummary {
    pub resource: String,
    pub count: u64,
}

impl From<&GpuRequest> for GpuSummary {
    fn from(gpu: &GpuRequest) -> Self {
        Self {
            resource: gpu.resource.clone(),
            count: gpu.count,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RootCause {
    pub id: CheckId,
    pub number: u8,
    /// The failure mode's name.
    pub title: String,
    pub severity: Severity,
    pub basis: Basis,
    pub confidence: Confidence,
    /// What was found and why the confidence is what it is.
    pub explanation: String,
}

/// A failure mode that also shows, besides the root cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contributor {
    pub id: CheckId,
    pub number: u8,
    pub title: String,
    /// The most severe of this mode's findings.
    pub severity: Severity,
    pub basis: Basis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// The check returned findings.
    Found,
    /// The check ran and found nothing.
    Passed,
    /// The check has nothing to look at for this target (e.g. no sidecar, no Istio object).
    NotApplicable,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Found => "found",
            CheckStatus::Passed => "passed",
            CheckStatus::NotApplicable => "not-applicable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckOutcome {
    pub id: CheckId,
    pub number: u8,
    pub status: CheckStatus,
    /// Why a check is not applicable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The parts of a check that ran only in part, and why the rest could not (an Endpoint
    /// target has no pod spec: `warm-up probes not judged: …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_judged: Option<String>,
}

/// Runs every check on every target of `evidence` and ranks the findings.
pub fn diagnose(evidence: &Evidence, settings: &Settings, fail_on: Severity) -> Diagnosis {
    let targets = evidence
        .targets
        .iter()
        .map(|target| {
            let per_check = checks::ALL
                .iter()
                .map(|(id, check)| {
                    let findings = if without_istio(target, *id) {
                        Vec::new()
                    } else {
                        check(target, settings)
                    };
                    (*id, findings)
                })
                .collect();
            let mut judged = judge_target(target, per_check);
            judged.mesh_need = checks::mesh_need::assess(target);
            judged
        })
        .collect();
    summarise(evidence, targets, fail_on)
}

/// Puts judged targets together with the run's sources, gaps and the `--fail-on` outcome.
pub fn summarise(
    evidence: &Evidence,
    targets: Vec<TargetDiagnosis>,
    fail_on: Severity,
) -> Diagnosis {
    let worst = targets
        .iter()
        .flat_map(|target| target.findings.iter().map(|finding| finding.severity))
        .max();
    Diagnosis {
        expected_generation: evidence.expected_generation,
        sources: evidence.sources.clone(),
        targets,
        gaps: evidence.gaps.clone(),
        fail_on,
        worst,
        failed: worst.is_some_and(|severity| severity >= fail_on),
    }
}

/// Judges one target from the findings each check returned (in failure-mode order).
pub fn judge_target(
    target: &TargetEvidence,
    per_check: Vec<(CheckId, Vec<Finding>)>,
) -> TargetDiagnosis {
    let checks = per_check
        .iter()
        .map(|(id, findings)| check_outcome(target, *id, findings))
        .collect();
    let mut findings: Vec<Finding> = per_check.into_iter().flat_map(|(_, f)| f).collect();
    rank(&mut findings);
    let root_cause = findings
        .first()
        .filter(|finding| finding.severity > Severity::Info)
        .map(root_cause);
    let also_contributing = contributors(&findings, root_cause.as_ref().map(|root| root.id));
    TargetDiagnosis {
        target: summary(target),
        root_cause,
        also_contributing,
        findings,
        checks,
        gaps: target_gaps(target),
        mesh_need: None,
    }
}

/// The target's gaps and those of each Envoy read for it (trimmed stats, unreadable admin calls),
/// each once.
fn target_gaps(target: &TargetEvidence) -> Vec<Gap> {
    let mut gaps = target.gaps.clone();
    for gap in target.envoy.iter().flat_map(|envoy| envoy.gaps.iter()) {
        if !gaps.contains(gap) {
            gaps.push(gap.clone());
        }
    }
    gaps
}

/// Sorts findings most important first: severity, then basis, then failure-mode number. Stable,
/// so a check's own order among equal findings is kept.
pub fn rank(findings: &mut [Finding]) {
    findings.sort_by(compare);
}

fn compare(a: &Finding, b: &Finding) -> Ordering {
    b.severity
        .cmp(&a.severity)
        .then(b.basis.cmp(&a.basis))
        .then(a.number.cmp(&b.number))
}

/// How sure the root cause is: something that happened is proof; a configuration only says it
/// could happen, and configuration as written may differ from what the proxy runs.
pub fn confidence(basis: Basis, severity: Severity) -> (Confidence, &'static str) {
    match (basis, severity) {
        (Basis::Runtime, _) => (
            Confidence::High,
            "confidence high: it was observed at runtime (a probe broke or a proxy counter moved)",
        ),
        (Basis::Effective, Severity::Critical) => (
            Confidence::High,
            "confidence high: the running proxy's effective configuration shows a limit that traffic will reach",
        ),
        (Basis::Effective, _) => (
            Confidence::Medium,
            "confidence medium: the running proxy's effective configuration shows a limit that could bite; nothing was observed failing",
        ),
        (Basis::Static, Severity::Critical) => (
            Confidence::Medium,
            "confidence medium: read from configuration as written, not observed failing; the running proxy may differ",
        ),
        (Basis::Static, _) => (
            Confidence::Low,
            "confidence low: a warning read from configuration as written; it may not bite, and nothing was observed failing",
        ),
    }
}

fn root_cause(finding: &Finding) -> RootCause {
    let (confidence, why) = confidence(finding.basis, finding.severity);
    let mut explanation = format!(
        "{} ({}, {}).",
        finding.title,
        finding.severity,
        basis_words(finding.basis)
    );
    if let Some(line) = finding.evidence.first() {
        explanation.push_str(&format!(" {} {} = {}.", line.object, line.path, line.value));
    }
    explanation.push(' ');
    explanation.push_str(&capitalise(why));
    explanation.push('.');
    RootCause {
        id: finding.id,
        number: finding.number,
        title: finding.id.title().to_string(),
        severity: finding.severity,
        basis: finding.basis,
        confidence,
        explanation,
    }
}

fn basis_words(basis: Basis) -> &'static str {
    match basis {
        Basis::Runtime => "observed at runtime",
        Basis::Effective => "proxy's effective configuration",
        Basis::Static => "configuration as written",
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn contributors(ranked: &[Finding], root: Option<CheckId>) -> Vec<Contributor> {
    let mut seen: Vec<CheckId> = root.into_iter().collect();
    let mut out = Vec::new();
    for finding in ranked.iter().filter(|f| f.severity > Severity::Info) {
        if seen.contains(&finding.id) {
            continue;
        }
        seen.push(finding.id);
        out.push(Contributor {
            id: finding.id,
            number: finding.number,
            title: finding.id.title().to_string(),
            severity: finding.severity,
            basis: finding.basis,
        });
    }
    out
}

fn check_outcome(target: &TargetEvidence, id: CheckId, findings: &[Finding]) -> CheckOutcome {
    let (status, reason) = if !findings.is_empty() {
        (CheckStatus::Found, None)
    } else if let Some(reason) = not_applicable(target, id) {
        (CheckStatus::NotApplicable, Some(reason))
    } else {
        (CheckStatus::Passed, None)
    };
    let not_judged = (status != CheckStatus::NotApplicable)
        .then(|| not_judged(target, id))
        .flatten();
    CheckOutcome {
        id,
        number: id.number(),
        status,
        reason,
        not_judged,
    }
}

/// What part of a check needs the pod spec, when the target has none (an Endpoint).
fn not_judged(target: &TargetEvidence, id: CheckId) -> Option<String> {
    if target.workload.spec_known() {
        return None;
    }
    let text = match id {
        CheckId::SidecarOverhead | CheckId::EndpointPicker => return None,
        CheckId::StreamTimeout => return None,
        CheckId::ConnectionPool => {
            "max-num-seqs is not known without the pod spec: vLLM's default is assumed for the capacity"
        }
        CheckId::BufferLimit => {
            "max-model-len is not known without the pod spec: buffering filters are judged by their presence"
        }
        CheckId::ColdStart => {
            "warm-up probes and holdApplicationUntilProxyStarts are not judged without the pod spec"
        }
    };
    Some(text.to_string())
}

/// Whether an Envoy on the path to vLLM was read for this target.
fn proxies_read(target: &TargetEvidence) -> bool {
    target
        .envoy
        .iter()
        .any(|envoy| envoy.role.role != crate::evidence::envoy::role::EnvoyRole::Unrelated)
}

/// The mesh checks (2–5) judge Istio objects and proxies; on a cluster without Istio they are
/// not run, unless an Envoy was read all the same (`--admin-url`): its evidence is judged.
/// Sidecar overhead always runs: a leftover proxy costs the same without istiod.
fn without_istio(target: &TargetEvidence, id: CheckId) -> bool {
    id != CheckId::SidecarOverhead
        && target.mesh.istio == IstioPresence::NotInstalled
        && target.envoy.is_empty()
}

/// Why a check has nothing to look at for this target, if so. Only said when the check also
/// returned nothing: a finding always wins.
fn not_applicable(target: &TargetEvidence, id: CheckId) -> Option<String> {
    let mesh = &target.mesh;
    let mode = mesh.sidecar_mode;
    let known_as = || {
        format!(
            "{} is known only through Envoy admin, without a pod spec",
            target.workload.target_name()
        )
    };
    if without_istio(target, id) {
        return Some(
            "Istio is not installed on the cluster (no networking.istio.io API): no mesh object or proxy applies"
                .to_string(),
        );
    }
    if id == CheckId::EndpointPicker {
        let ext_proc_on_path = crate::checks::proxy::proxies(target).iter().any(|proxy| {
            proxy
                .config()
                .hcms()
                .any(|(_, _, hcm)| hcm.http_filters.iter().any(|f| f.ext_proc.is_some()))
        });
        return (mesh.inference_pools.is_empty() && !ext_proc_on_path).then(|| {
            "no InferencePool picks the workload's pods and no Envoy on the path runs an ext_proc filter"
                .to_string()
        });
    }
    if id == CheckId::SidecarOverhead {
        if !target.workload.spec_known() {
            return Some(format!(
                "{}: the proxy's resources and the GPUs are read from the pod spec",
                known_as()
            ));
        }
        return match mode {
            SidecarMode::Ambient => Some("ambient mode: no sidecar in the pod".to_string()),
            _ if !mode.has_sidecar() => Some(format!("no sidecar ({})", mesh.sidecar_reason)),
            _ if target.workload.gpu.is_none() => {
                Some("not a GPU pod: the overhead matters on GPU nodes".to_string())
            }
            _ => None,
        };
    }
    if mode.has_sidecar() || mode == SidecarMode::Ambient || proxies_read(target) {
        return None;
    }
    if !target.workload.spec_known() {
        return Some(format!("{} and no Envoy on the path was read", known_as()));
    }
    let no_mesh_objects = mesh.virtual_services.is_empty()
        && mesh.destination_rules.is_empty()
        && mesh.envoy_filters.is_empty()
        && mesh.peer_authentications.is_empty()
        && mesh.gateways.is_empty();
    no_mesh_objects.then(|| "no sidecar and no Istio object applies to this workload".to_string())
}

fn summary(target: &TargetEvidence) -> TargetSummary {
    let workload = &target.workload;
    TargetSummary {
        kind: workload.object_ref().kind,
        namespace: workload.namespace.clone(),
        name: workload.name.clone(),
        reference: workload.target_name(),
        sidecar_mode: target.mesh.sidecar_mode,
        sidecar_reason: target.mesh.sidecar_reason.clone(),
        ambient: target.mesh.ambient.as_ref().map(|ambient| AmbientSummary {
            waypoint: ambient
                .waypoint
                .as_ref()
                .map(crate::evidence::ambient::WaypointRef::display_name),
            waypoint_reason: ambient.waypoint_reason.clone(),
        }),
        gpu: workload.gpu.as_ref().map(GpuSummary::from),
        replicas: workload.replicas,
        detected_by: workload.detected_by.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checks::EvidenceLine;
    use crate::evidence::ObjectRef;

    /// A GPU Deployment with nothing around it; built from JSON so new optional evidence fields
    /// do not break these tests.
    pub(crate) fn target(mode: SidecarMode, istio: IstioPresence) -> TargetEvidence {
        serde_json::from_value(serde_json::json!({
            "workload": {
                "kind": "Deployment",
                "namespace": "inference",
                "name": "vllm",
                "replicas": 2,
                "podSpec": {"containers": []},
                "vllm": {"container": "vllm", "image": "vllm/vllm-openai:v0.8.5", "port": 8000},
                "gpu": {"resource": "nvidia.com/gpu", "count": 1},
                "detectedBy": "image vllm/vllm-openai"
            },
            "mesh": {
                "istio": istio,
                "sidecarMode": mode,
                "sidecarReason": "namespace label istio-injection=enabled"
            }
        }))
        .unwrap()
    }

    /// A run's evidence around `targets`, from JSON like `target`.
    pub(crate) fn evidence(targets: Vec<TargetEvidence>, gaps: Vec<Gap>) -> Evidence {
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 1,
            "sources": ["manifests"],
            "expectedGeneration": "300s",
            "targets": targets,
            "gaps": gaps,
        }))
        .unwrap()
    }

    pub(crate) fn finding(id: CheckId, severity: Severity, basis: Basis) -> Finding {
        Finding::new(id, severity, basis, format!("{id} {severity} {basis:?}")).evidence(
            EvidenceLine::new(
                ObjectRef::new("VirtualService", Some("inference"), "vllm"),
                "spec/http[0]/timeout",
                "30s",
            ),
        )
    }

    fn by_check(findings: Vec<Finding>) -> Vec<(CheckId, Vec<Finding>)> {
        CheckId::ALL
            .iter()
            .map(|id| {
                (
                    *id,
                    findings.iter().filter(|f| f.id == *id).cloned().collect(),
                )
            })
            .collect()
    }

    fn judged(findings: Vec<Finding>) -> TargetDiagnosis {
        judge_target(
            &target(SidecarMode::Injected, IstioPresence::Unknown),
            by_check(findings),
        )
    }

    #[test]
    fn severity_outranks_basis_and_basis_outranks_number() {
        let diagnosis = judged(vec![
            finding(CheckId::SidecarOverhead, Severity::Warning, Basis::Runtime),
            finding(CheckId::StreamTimeout, Severity::Critical, Basis::Static),
            finding(CheckId::ConnectionPool, Severity::Critical, Basis::Runtime),
            finding(CheckId::BufferLimit, Severity::Critical, Basis::Effective),
            finding(CheckId::ColdStart, Severity::Info, Basis::Runtime),
        ]);
        let order: Vec<CheckId> = diagnosis.findings.iter().map(|f| f.id).collect();
        assert_eq!(
            order,
            vec![
                CheckId::ConnectionPool,
                CheckId::BufferLimit,
                CheckId::StreamTimeout,
                CheckId::SidecarOverhead,
                CheckId::ColdStart,
            ]
        );
        let root = diagnosis.root_cause.unwrap();
        assert_eq!(root.id, CheckId::ConnectionPool);
        assert_eq!(root.number, 3);
        assert_eq!(root.confidence, Confidence::High);
        let also: Vec<CheckId> = diagnosis.also_contributing.iter().map(|c| c.id).collect();
        assert_eq!(
            also,
            vec![
                CheckId::BufferLimit,
                CheckId::StreamTimeout,
                CheckId::SidecarOverhead
            ],
            "info findings do not contribute, and the root cause is not repeated"
        );
    }

    #[test]
    fn equal_severity_and_basis_fall_back_to_mode_number() {
        let diagnosis = judged(vec![
            finding(CheckId::ColdStart, Severity::Warning, Basis::Static),
            finding(CheckId::StreamTimeout, Severity::Warning, Basis::Static),
        ]);
        assert_eq!(diagnosis.root_cause.unwrap().id, CheckId::StreamTimeout);
    }

    #[test]
    fn a_mode_with_several_findings_contributes_once() {
        let diagnosis = judged(vec![
            finding(CheckId::StreamTimeout, Severity::Critical, Basis::Static),
            finding(CheckId::ConnectionPool, Severity::Warning, Basis::Static),
            finding(CheckId::ConnectionPool, Severity::Warning, Basis::Static),
        ]);
        assert_eq!(diagnosis.findings.len(), 3);
        assert_eq!(diagnosis.also_contributing.len(), 1);
        assert_eq!(diagnosis.also_contributing[0].id, CheckId::ConnectionPool);
    }

    #[test]
    fn confidence_follows_basis_and_severity() {
        assert_eq!(
            confidence(Basis::Runtime, Severity::Warning).0,
            Confidence::High
        );
        assert_eq!(
            confidence(Basis::Static, Severity::Critical).0,
            Confidence::Medium
        );
        assert_eq!(
            confidence(Basis::Static, Severity::Warning).0,
            Confidence::Low
        );
        let root = judged(vec![finding(
            CheckId::StreamTimeout,
            Severity::Warning,
            Basis::Static,
        )])
        .root_cause
        .unwrap();
        assert_eq!(root.confidence, Confidence::Low);
        assert!(
            root.explanation.contains("configuration as written"),
            "{}",
            root.explanation
        );
        assert!(
            root.explanation.contains("spec/http[0]/timeout = 30s"),
            "{}",
            root.explanation
        );
    }

    #[test]
    fn only_info_means_no_root_cause() {
        let diagnosis = judged(vec![finding(
            CheckId::SidecarOverhead,
            Severity::Info,
            Basis::Static,
        )]);
        assert!(diagnosis.root_cause.is_none());
        assert!(diagnosis.also_contributing.is_empty());
        assert_eq!(diagnosis.findings.len(), 1);
    }

    #[test]
    fn check_outcomes_say_found_passed_or_not_applicable() {
        let injected = judged(vec![finding(
            CheckId::StreamTimeout,
            Severity::Critical,
            Basis::Static,
        )]);
        let statuses: Vec<CheckStatus> = injected.checks.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            vec![
                CheckStatus::Passed,
                CheckStatus::Found,
                CheckStatus::Passed,
                CheckStatus::Passed,
                CheckStatus::Passed,
                // No InferencePool, no ext_proc filter: the sixth mode does not apply.
                CheckStatus::NotApplicable
            ]
        );

        let outside = judge_target(
            &target(SidecarMode::None, IstioPresence::NotInstalled),
            by_check(Vec::new()),
        );
        assert!(
            outside
                .checks
                .iter()
                .all(|c| c.status == CheckStatus::NotApplicable && c.reason.is_some())
        );

        let mut cpu_only = target(SidecarMode::Injected, IstioPresence::Unknown);
        cpu_only.workload.gpu = None;
        let cpu_only = judge_target(&cpu_only, by_check(Vec::new()));
        assert_eq!(cpu_only.checks[0].status, CheckStatus::NotApplicable);
        assert!(cpu_only.checks[0].reason.as_ref().unwrap().contains("GPU"));

        let ambient = judge_target(
            &target(SidecarMode::Ambient, IstioPresence::Installed),
            by_check(Vec::new()),
        );
        assert_eq!(ambient.checks[0].status, CheckStatus::NotApplicable);
        assert!(
            ambient.checks[1..5]
                .iter()
                .all(|c| c.status == CheckStatus::Passed)
        );
    }

    #[test]
    fn without_istio_the_mesh_checks_are_not_run_and_say_why() {
        // A sidecar left over from an uninstalled Istio, and a VirtualService-free target: the
        // stream-timeout check would otherwise judge the proxy's defaults.
        let mut target = target(SidecarMode::Classic, IstioPresence::NotInstalled);
        target.workload.pod_spec = serde_json::from_value(serde_json::json!({
            "containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.8.5"}],
        }))
        .unwrap();
        let evidence = evidence(vec![target], Vec::new());
        let settings = Settings {
            expected_generation: Duration::from_secs(300),
        };
        let diagnosis = diagnose(&evidence, &settings, Severity::Critical);
        let checks = &diagnosis.targets[0].checks;
        for check in &checks[1..] {
            assert_eq!(check.status, CheckStatus::NotApplicable, "{check:?}");
            assert!(
                check
                    .reason
                    .as_deref()
                    .unwrap()
                    .starts_with("Istio is not installed"),
                "{check:?}"
            );
        }
        assert!(
            diagnosis.targets[0]
                .findings
                .iter()
                .all(|finding| finding.id == CheckId::SidecarOverhead)
        );
    }

    #[test]
    fn fail_on_threshold_decides_failed() {
        let evidence = evidence(Vec::new(), Vec::new());
        let warning = || {
            vec![judged(vec![finding(
                CheckId::ColdStart,
                Severity::Warning,
                Basis::Static,
            )])]
        };
        assert!(!summarise(&evidence, warning(), Severity::Critical).failed);
        assert!(summarise(&evidence, warning(), Severity::Warning).failed);
        assert!(summarise(&evidence, warning(), Severity::Info).failed);
        let healthy = summarise(&evidence, vec![judged(Vec::new())], Severity::Info);
        assert!(!healthy.failed);
        assert_eq!(healthy.worst, None);
    }
}
