//! 2 `stream-timeout`: a timeout on the inference path shorter than the longest generation the
//! service must allow (`--expected-generation`). `0s` disables each of these limits.
//!
//! Severity, by what the limit does to a stream that lasts the expected generation:
//! - **critical**: a deadline on the whole response, which cuts every generation that long for
//!   sure: VirtualService `http[].timeout` and `retries.perTryTimeout` (unless `attempts: 0`),
//!   EnvoyFilter route `timeout`, `retry_policy.per_try_timeout`, `max_stream_duration`.
//! - **warning**: limits that cut only when no byte flows for that long (queueing or a long
//!   prefill before the first token): `stream_idle_timeout`, route `idle_timeout`,
//!   `per_try_idle_timeout`; and a downstream `max_connection_duration` (drain, then close).
//! - **info**: limits that never cut an active stream but close connections, so the next
//!   request pays a new TCP and mTLS handshake: DestinationRule `http.idleTimeout` (or
//!   `tcp.idleTimeout`) and `common_http_protocol_options.idle_timeout` (only while no request
//!   is active), DestinationRule `tcp.maxConnectionDuration` and a cluster's
//!   `max_connection_duration` (upstream connections drain), HCM `request_timeout` (runs only
//!   until the request is received).
//!
//! When Envoys on the path were read, what they run wins (`proxy::stream`): their routes, HCMs
//! and clusters are judged the same way with the effective configuration as basis, a counter or
//! response flag that moved makes the finding critical and runtime, and a VirtualService whose
//! routes a proxy shows is judged there (its lines and fix move into the proxy's finding). Where
//! a VirtualService and a proxy's route differ, that is a finding of its own (`proxy::disagree`).

use super::fixes::{IstioKind, istio_label, istio_manifest, istio_ref};
use super::proxy;
use super::target::{
    carries_generation, inference_path, run_route_reaches, service_ports, upstream_clusters,
};
use super::{Basis, CheckId, EvidenceLine, Finding, Settings, Severity};
use crate::evidence::generation::describe_matches;
use crate::evidence::objects::{DestinationRule, EnvoyFilter, VirtualService};
use crate::evidence::resolve::delegation::{self, RouteAt};
use crate::evidence::resolve::patches::{fields, on_inference_path, set_at, value_path};
use crate::evidence::resolve::policy::{effective_policy, pool_limits};
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::units::duration::{display, parse};
use serde_json::Value;
use std::time::Duration;

pub fn check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    let mut findings = configured(target, settings);
    findings.extend(super::ambient::no_effect(
        target,
        super::CheckId::StreamTimeout,
    ));
    findings.extend(super::ambient::ingress_past_waypoint(target));
    super::probe_runs::add(&mut findings, target, super::CheckId::StreamTimeout);
    findings
}

/// What the configuration and the Envoys' counters show (the probe runs are judged apart).
fn configured(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    let expected = settings.expected_generation;
    // A delegate runs only through its root: the root's finding covers the routes it holds.
    let mut written: Vec<(ObjectRef, Option<Finding>)> = target
        .mesh
        .virtual_services
        .iter()
        .filter(|virtual_service| !delegation::is_delegate(virtual_service))
        .map(|virtual_service| {
            (
                istio_ref(IstioKind::VirtualService, virtual_service),
                virtual_service_finding(target, virtual_service, expected),
            )
        })
        .collect();
    // HTTPRoutes are judged by what Istio makes of them, beside VirtualServices.
    written.extend(super::http_routes::stream_findings(target, expected));
    // What the proxies run wins: a VirtualService whose routes they show is judged there.
    let (mut findings, shown) = proxy::stream::findings(target, expected, &written);
    findings.extend(proxy::disagree::route_timeouts(target, expected));
    for (object, finding) in written {
        if !shown.contains(&object) {
            findings.extend(finding);
        }
    }
    findings.extend(off_generation_findings(target, expected));
    findings.extend(destination_rule_findings(target, expected));
    let ports = service_ports(target);
    let path = inference_path(target, &ports);
    let written_patches = target
        .mesh
        .envoy_filters
        .iter()
        .filter_map(|filter| {
            let finding = envoy_filter_finding(target, filter, expected)?;
            let contexts = filter
                .spec
                .config_patches
                .iter()
                .filter(|patch| on_inference_path(filter, patch, path))
                .filter_map(|patch| patch.matcher.as_ref()?.get("context")?.as_str())
                .map(str::to_string)
                .collect();
            Some(proxy::disagree::WrittenPatch {
                object: istio_ref(IstioKind::EnvoyFilter, filter),
                contexts,
                finding,
            })
        })
        .collect();
    proxy::disagree::envoy_filter_timeouts(target, &mut findings, written_patches);
    findings
}

/// The duration when it is set (> 0) and shorter than `expected`.
fn shorter(text: &str, expected: Duration) -> Option<Duration> {
    parse(text)
        .ok()
        .filter(|duration| !duration.is_zero() && *duration < expected)
}

fn shorter_note(expected: Duration) -> String {
    format!("shorter than the {} expected generation", display(expected))
}

/// The route deadlines `root` runs on routes to the target: its own routes', and those of the
/// delegate routes in place of its delegating routes (a delegate route's `timeout` and `retries`
/// win; unset, the root route's run). Each evidence line and the fix name the object that holds
/// the value.
fn virtual_service_finding(
    target: &TargetEvidence,
    root: &VirtualService,
    expected: Duration,
) -> Option<Finding> {
    let mut fixed: Vec<VirtualService> = Vec::new();
    let mut lines = Vec::new();
    let mut judged: Vec<(ObjectRef, usize, &str)> = Vec::new();
    let mut cut_at: Option<(Duration, &str, &VirtualService)> = None;
    let mut shortest_per_try: Option<Duration> = None;
    // The evidence line of the deadline in `cut_at`: it goes first, so the root cause quotes it.
    let mut cut_line: Option<usize> = None;
    let expansion = delegation::expand(root, &target.mesh.virtual_services);
    for run in expansion
        .routes
        .iter()
        .filter(|run| run_route_reaches(run, target) && carries_generation(run))
    {
        // (where, field under spec/http[i], value, what cuts, how it cuts)
        let timeout = run.timeout().map(|(at, value)| {
            (
                at,
                TIMEOUT,
                value,
                "route timeout",
                "the route deadline cuts the stream at",
            )
        });
        let per_try = run
            .retries()
            .filter(|(_, retries)| retries.attempts != Some(0))
            .and_then(|(at, retries)| {
                Some((
                    at,
                    PER_TRY_TIMEOUT,
                    retries.per_try_timeout.as_deref()?,
                    "per-try timeout",
                    "",
                ))
            });
        for (at, field, value, what, cuts) in timeout.into_iter().chain(per_try) {
            let Some(duration) = shorter(value, expected) else {
                continue;
            };
            let per_try = field == PER_TRY_TIMEOUT;
            if first_time(&mut judged, at, field) {
                let note = if per_try {
                    format!(
                        "{}: {}",
                        shorter_note(expected),
                        proxy::stream::PER_TRY_NOTE
                    )
                } else {
                    format!("{}: {cuts} {}", shorter_note(expected), display(duration))
                };
                lines.push(
                    EvidenceLine::new(
                        istio_ref(IstioKind::VirtualService, at.virtual_service),
                        format!("spec/http[{}]/{field}", at.index),
                        value,
                    )
                    .with_note(note),
                );
                patch(&mut fixed, at, field, expected);
            }
            if per_try {
                shortest_per_try = Some(shortest_per_try.map_or(duration, |d| d.min(duration)));
            } else if note_cut(&mut cut_at, duration, what, at.virtual_service) {
                let object = istio_ref(IstioKind::VirtualService, at.virtual_service);
                let path = format!("spec/http[{}]/{field}", at.index);
                cut_line = lines
                    .iter()
                    .position(|line: &EvidenceLine| line.object == object && line.path == path);
            }
        }
    }
    if let Some(index) = cut_line {
        lines[..=index].rotate_right(1);
    }
    let (severity, headline) = match (cut_at, shortest_per_try) {
        (Some((duration, what, holder)), _) => (
            Severity::Critical,
            format!(
                "{} cuts generations at {} ({what}); up to {} expected",
                holder_label(root, holder),
                display(duration),
                display(expected)
            ),
        ),
        (None, Some(per_try)) => (
            Severity::Warning,
            format!(
                "{} {}",
                istio_label(IstioKind::VirtualService, root),
                proxy::stream::per_try_headline(per_try)
            ),
        ),
        (None, None) => return None,
    };
    let mut finding = Finding::new(CheckId::StreamTimeout, severity, Basis::Static, headline);
    for line in lines {
        finding = finding.evidence(line);
    }
    let manifests: Option<Vec<String>> = fixed
        .iter()
        .map(|object| istio_manifest(IstioKind::VirtualService, object))
        .collect();
    match manifests {
        Some(documents) => Some(finding.fix(
            format!(
                "Set the route timeout to at least the expected generation ({}) and drop perTryTimeout \
                 (each attempt then gets the route timeout, and a non-streaming request is not cut and sent again); \
                 apply with `kubectl apply -f fix.yaml`.",
                display(expected)
            ),
            documents.join("---\n"),
        )),
        None => Some(finding),
    }
}

/// `VirtualService ns/name`, or for a delegate's value `… (delegate of ns/root)`.
fn holder_label(root: &VirtualService, holder: &VirtualService) -> String {
    if std::ptr::eq(holder, root) {
        istio_label(IstioKind::VirtualService, root)
    } else {
        format!(
            "{} (delegate of {})",
            istio_label(IstioKind::VirtualService, holder),
            istio_label(IstioKind::VirtualService, root)
        )
    }
}

/// Info on each route of the target's VirtualServices that carries no generation and has a
/// timeout under the expected generation (a health check's 10s, say): it cuts no stream.
fn off_generation_findings(target: &TargetEvidence, expected: Duration) -> Vec<Finding> {
    let mut findings = Vec::new();
    for run in delegation::run_routes(&target.mesh.virtual_services) {
        if !run_route_reaches(&run, target) || carries_generation(&run) {
            continue;
        }
        let Some((at, value)) = run.timeout() else {
            continue;
        };
        let Some(duration) = shorter(value, expected) else {
            continue;
        };
        let written = run.written();
        let matched = describe_matches(&written.route.matches);
        findings.push(
            Finding::new(
                CheckId::StreamTimeout,
                Severity::Info,
                Basis::Static,
                format!(
                    "{} times out {matched} at {}: that route carries no generation (fine for a health check)",
                    istio_label(IstioKind::VirtualService, at.virtual_service),
                    display(duration)
                ),
            )
            .evidence(EvidenceLine::new(
                istio_ref(IstioKind::VirtualService, at.virtual_service),
                format!("spec/http[{}]/timeout", at.index),
                value,
            )),
        );
    }
    findings
}

/// Keeps the shortest cut and the object that holds it.
fn note_cut<'a>(
    cut_at: &mut Option<(Duration, &'static str, &'a VirtualService)>,
    duration: Duration,
    what: &'static str,
    holder: &'a VirtualService,
) -> bool {
    let shorter = cut_at.is_none_or(|(shortest, _, _)| duration < shortest);
    if shorter {
        *cut_at = Some((duration, what, holder));
    }
    shorter
}

/// Whether this field of this route is judged for the first time (a root route's value runs
/// under each of its delegate's routes that leave it unset).
fn first_time<'a>(
    judged: &mut Vec<(ObjectRef, usize, &'a str)>,
    at: RouteAt,
    field: &'a str,
) -> bool {
    let key = (
        istio_ref(IstioKind::VirtualService, at.virtual_service),
        at.index,
        field,
    );
    if judged.contains(&key) {
        return false;
    }
    judged.push(key);
    true
}

const TIMEOUT: &str = "timeout";
const PER_TRY_TIMEOUT: &str = "retries/perTryTimeout";

/// Fixes `field` of route `at.index` in the fix's copy of `at.virtual_service` (made on first
/// change): the route timeout becomes `expected`; `perTryTimeout` goes, so that each attempt
/// gets the route timeout.
fn patch(fixed: &mut Vec<VirtualService>, at: RouteAt, field: &str, expected: Duration) {
    let position = match fixed
        .iter()
        .position(|object| object.metadata == at.virtual_service.metadata)
    {
        Some(position) => position,
        None => {
            fixed.push(at.virtual_service.clone());
            fixed.len() - 1
        }
    };
    let Some(route) = fixed
        .get_mut(position)
        .and_then(|object| object.spec.http.get_mut(at.index))
    else {
        return;
    };
    if field == TIMEOUT {
        route.timeout = Some(display(expected));
    } else if let Some(retries) = route.retries.as_mut() {
        retries.per_try_timeout = None;
    }
}

fn destination_rule_findings(target: &TargetEvidence, expected: Duration) -> Vec<Finding> {
    let mut per_rule: Vec<(&DestinationRule, Vec<EvidenceLine>)> = Vec::new();
    for cluster in upstream_clusters(target) {
        let Some(rule) = cluster.rule else { continue };
        let policy = effective_policy(rule, cluster.port, cluster.subset.as_deref());
        let Some((pool, path)) = policy.connection_pool else {
            continue;
        };
        let limits = pool_limits(pool, &path);
        let object = istio_ref(IstioKind::DestinationRule, rule);
        let mut lines = Vec::new();
        if let Some(idle) = limits
            .idle_timeout
            .filter(|idle| shorter(&idle.value, expected).is_some())
        {
            lines.push(
                EvidenceLine::new(object.clone(), idle.path, idle.value).with_note(format!(
                    "{}, but it closes {} only while no request is active: streams are not cut",
                    shorter_note(expected),
                    cluster.name()
                )),
            );
        }
        if let Some(age) = limits
            .max_connection_duration
            .filter(|age| shorter(&age.value, expected).is_some())
        {
            lines.push(
                EvidenceLine::new(object, age.path, age.value).with_note(format!(
                    "{}, but upstream connections of {} drain: active streams finish",
                    shorter_note(expected),
                    cluster.name()
                )),
            );
        }
        if lines.is_empty() {
            continue;
        }
        match per_rule
            .iter_mut()
            .find(|(known, _)| std::ptr::eq(*known, rule))
        {
            Some((_, known)) => {
                for line in lines {
                    if !known.iter().any(|existing| existing.path == line.path) {
                        known.push(line);
                    }
                }
            }
            None => per_rule.push((rule, lines)),
        }
    }
    per_rule
        .into_iter()
        .map(|(rule, lines)| {
            let mut finding = Finding::new(
                CheckId::StreamTimeout,
                Severity::Info,
                Basis::Static,
                format!(
                    "{} closes idle or aged connections before {}: no stream is cut, reconnects pay a handshake",
                    istio_label(IstioKind::DestinationRule, rule),
                    display(expected)
                ),
            );
            for line in lines {
                finding = finding.evidence(line);
            }
            finding.fix(
                "No change is needed for streaming. Raise or remove these limits if connections churn, since \
                 each new connection pays a TCP and mTLS handshake.",
                "",
            )
        })
        .collect()
}

/// What an Envoy field found in a patch does to a stream.
fn classify(
    key: &str,
    parent: Option<&str>,
    value: &Value,
    apply_to: &str,
) -> Option<(Severity, &'static str)> {
    let is_text = value.is_string();
    match (key, parent) {
        ("timeout", Some("route")) => Some((
            Severity::Critical,
            "route timeout: a deadline on the whole response",
        )),
        ("per_try_timeout", Some("retry_policy")) => Some((
            Severity::Critical,
            "per-try timeout: a deadline on each attempt, streaming included",
        )),
        ("max_stream_duration", _) if is_text => Some((
            Severity::Critical,
            "max stream duration: a deadline on the whole stream",
        )),
        ("stream_idle_timeout", _) => Some((
            Severity::Warning,
            "stream idle timeout: cuts a stream with no bytes for that long (queueing, long prefill)",
        )),
        ("idle_timeout", Some("route")) => Some((
            Severity::Warning,
            "route idle timeout: cuts a stream with no bytes for that long",
        )),
        ("per_try_idle_timeout", _) => Some((
            Severity::Warning,
            "per-try idle timeout: cuts an attempt with no bytes for that long",
        )),
        ("idle_timeout", Some("common_http_protocol_options")) => Some((
            Severity::Info,
            "connection idle timeout: applies only while no request is active",
        )),
        ("max_connection_duration", _) if apply_to == "CLUSTER" => Some((
            Severity::Info,
            "upstream max connection duration: the connection drains, active streams finish",
        )),
        ("max_connection_duration", _) => Some((
            Severity::Warning,
            "downstream max connection duration: the connection drains, then is closed with streams on it",
        )),
        ("request_timeout", _) => Some((
            Severity::Info,
            "request timeout: runs only until the request is received",
        )),
        _ => None,
    }
}

fn envoy_filter_finding(
    target: &TargetEvidence,
    filter: &EnvoyFilter,
    expected: Duration,
) -> Option<Finding> {
    let ports = service_ports(target);
    let path = inference_path(target, &ports);
    let object = istio_ref(IstioKind::EnvoyFilter, filter);
    let mut fixed = filter.clone();
    let mut lines = Vec::new();
    let mut worst: Option<(Severity, Duration, &str)> = None;
    for (index, patch) in filter.spec.config_patches.iter().enumerate() {
        if !on_inference_path(filter, patch, path) {
            continue;
        }
        let Some(value) = patch.patch.as_ref().and_then(|patch| patch.value.as_ref()) else {
            continue;
        };
        let apply_to = patch.apply_to.as_deref().unwrap_or_default();
        for field in fields(value) {
            let Some(text) = field.value.as_str() else {
                continue;
            };
            let Some((severity, what)) = classify(field.key, field.parent, field.value, apply_to)
            else {
                continue;
            };
            let Some(duration) = shorter(text, expected) else {
                continue;
            };
            lines.push(
                EvidenceLine::new(object.clone(), value_path(index, &field.path), text)
                    .with_note(format!("{}; {what}", shorter_note(expected))),
            );
            if worst.is_none_or(|(known, shortest, _)| {
                severity > known || (severity == known && duration < shortest)
            }) {
                worst = Some((severity, duration, field.key));
            }
            let patch_value = fixed.spec.config_patches[index]
                .patch
                .as_mut()
                .and_then(|patch| patch.value.as_mut());
            if let Some(value) = patch_value.filter(|_| severity > Severity::Info) {
                set_at(value, &field.path, Value::from(display(expected)));
            }
        }
    }
    let (severity, duration, key) = worst?;
    let mut finding = Finding::new(
        CheckId::StreamTimeout,
        severity,
        Basis::Static,
        format!(
            "{} sets {key} {} on the inference path; up to {} expected",
            istio_label(IstioKind::EnvoyFilter, filter),
            display(duration),
            display(expected)
        ),
    );
    for line in lines {
        finding = finding.evidence(line);
    }
    if severity == Severity::Info {
        return Some(finding.fix(
            "No change is needed for streaming; these limits close connections, not streams.",
            "",
        ));
    }
    let name = filter.metadata.name.as_deref().unwrap_or("<unnamed>");
    let namespace = filter
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(&target.workload.namespace);
    match istio_manifest(IstioKind::EnvoyFilter, &fixed) {
        Some(yaml) => Some(finding.fix(
            format!(
                "Raise the limits to the expected generation ({}) as below and `kubectl apply -f fix.yaml`, \
                 or delete the filter if nothing else needs it (`kubectl delete envoyfilter {name} -n {namespace}`).",
                display(expected)
            ),
            yaml,
        )),
        None => Some(finding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{
        assert_well_formed, evidence_paths, object, settings, target,
    };

    fn with_virtual_service(yaml: &str) -> TargetEvidence {
        let mut target = target();
        target.mesh.virtual_services.push(object(yaml));
        target
    }

    fn with_envoy_filter(yaml: &str) -> TargetEvidence {
        let mut target = target();
        target.mesh.envoy_filters.push(object(yaml));
        target
    }

    /// The `patch.value` of the filter's patch at `index`.
    fn patch_value(filter: &EnvoyFilter, index: usize) -> &serde_json::Value {
        filter.spec.config_patches[index]
            .patch
            .as_ref()
            .unwrap()
            .value
            .as_ref()
            .unwrap()
    }

    const SHORT_TIMEOUT: &str = r#"
apiVersion: networking.istio.io/v1
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm.llm.svc.cluster.local]
  http:
  - name: other-service
    route: [{destination: {host: web}}]
    timeout: 5s
  - name: inference
    match: [{uri: {prefix: /v1/}}]
    rewrite: {authority: vllm.llm.svc.cluster.local}
    route: [{destination: {host: vllm, port: {number: 8000}}}]
    timeout: 15s
    retries: {attempts: 2, perTryTimeout: 10s, retryOn: connect-failure}
"#;

    /// Root llm/vllm delegates /v1 to routing/vllm-routes (another namespace), whose first route
    /// sets its own timeout and whose second leaves it to the root's.
    const DELEGATED: &str = r#"
apiVersion: networking.istio.io/v1
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm.llm.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /v1}}]
    timeout: 45s
    delegate: {name: vllm-routes, namespace: routing}
---
apiVersion: networking.istio.io/v1
metadata: {name: vllm-routes, namespace: routing}
spec:
  http:
  - match: [{uri: {prefix: /v1/completions}}]
    timeout: 30s
    route: [{destination: {host: vllm.llm.svc.cluster.local}}]
  - match: [{uri: {prefix: /v1/chat}}]
    route: [{destination: {host: vllm.llm.svc.cluster.local}}]
"#;

    fn with_virtual_services(yaml: &str) -> TargetEvidence {
        let mut target = target();
        for document in yaml.split("\n---\n") {
            target.mesh.virtual_services.push(object(document));
        }
        target
    }

    fn documents(yaml: &str) -> Vec<VirtualService> {
        yaml.split("---\n")
            .filter(|document| !document.trim().is_empty())
            .map(|document| serde_yaml::from_str(document).unwrap())
            .collect()
    }

    #[test]
    fn a_delegates_timeout_is_the_cut_and_its_fix_patches_the_delegate() {
        let findings = check(&with_virtual_services(DELEGATED), &settings());
        assert_well_formed(&findings);
        assert_eq!(
            findings.len(),
            1,
            "one finding, for the root: {findings:#?}"
        );
        let finding = &findings[0];
        assert_eq!(finding.id, CheckId::StreamTimeout);
        assert_eq!(finding.severity, Severity::Critical);
        assert!(
            finding.title.starts_with(
                "VirtualService routing/vllm-routes (delegate of VirtualService llm/vllm) cuts generations at 30s"
            ),
            "{}",
            finding.title
        );
        let lines: Vec<String> = finding
            .evidence
            .iter()
            .map(|line| format!("{} {} {}", line.object, line.path, line.value))
            .collect();
        // The delegate's own 30s, and the root's 45s that runs on the route leaving it unset.
        assert_eq!(
            lines,
            [
                "VirtualService routing/vllm-routes spec/http[0]/timeout 30s",
                "VirtualService llm/vllm spec/http[0]/timeout 45s",
            ]
        );
        let fixed = documents(&finding.fix.as_ref().unwrap().yaml);
        let names: Vec<&str> = fixed
            .iter()
            .map(|vs| vs.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["vllm-routes", "vllm"]);
        assert_eq!(fixed[0].spec.http[0].timeout.as_deref(), Some("300s"));
        assert_eq!(fixed[0].spec.http[1].timeout, None, "left to the root");
        assert!(
            fixed[0].spec.hosts.is_empty(),
            "the delegate stays a delegate"
        );
        assert_eq!(fixed[1].spec.http[0].timeout.as_deref(), Some("300s"));
        assert!(fixed[1].spec.http[0].delegate.is_some());
        // Applied, the fix heals both routes.
        let mut healed = target();
        healed.mesh.virtual_services = fixed;
        assert!(check(&healed, &settings()).is_empty());
    }

    #[test]
    fn a_delegates_own_timeout_wins_over_the_roots() {
        // The delegate disables the deadline on both routes: the root's 10s never runs.
        let yaml = DELEGATED
            .replace("timeout: 45s", "timeout: 10s")
            .replace("    timeout: 30s\n", "    timeout: 0s\n")
            .replace(
                "  - match: [{uri: {prefix: /v1/chat}}]\n",
                "  - match: [{uri: {prefix: /v1/chat}}]\n    timeout: 0s\n",
            );
        assert!(check(&with_virtual_services(&yaml), &settings()).is_empty());
        // Alone, without its root, a delegate runs nothing.
        let mut target = target();
        target
            .mesh
            .virtual_services
            .push(object(DELEGATED.split("\n---\n").nth(1).unwrap()));
        assert!(check(&target, &settings()).is_empty());
    }

    #[test]
    fn a_delegate_route_the_roots_match_cannot_hold_does_not_run() {
        let yaml = DELEGATED
            .replace("timeout: 45s", "timeout: 600s")
            .replace("prefix: /v1/completions", "prefix: /v2/completions");
        let findings = check(&with_virtual_services(&yaml), &settings());
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn health_and_metrics_routes_are_not_generation_deadlines() {
        let yaml = r#"
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm]
  http:
  - match: [{uri: {prefix: /v1/}}]
    route: [{destination: {host: vllm}}]
    timeout: 300s
    retries: {attempts: 2, perTryTimeout: 100s}
  - match: [{uri: {prefix: /health}}]
    route: [{destination: {host: vllm}}]
    timeout: 10s
  - match: [{uri: {exact: /metrics}}]
    route: [{destination: {host: vllm}}]
    timeout: 30s
"#;
        let findings = check(&with_virtual_service(yaml), &settings());
        assert_well_formed(&findings);
        assert!(
            findings
                .iter()
                .all(|finding| finding.severity < Severity::Critical),
            "{findings:#?}"
        );
        let per_try = findings
            .iter()
            .find(|finding| finding.severity == Severity::Warning)
            .unwrap_or_else(|| panic!("{findings:#?}"));
        assert!(
            per_try.title.contains("non-streaming requests at 100s"),
            "{}",
            per_try.title
        );
        let fixed: VirtualService =
            serde_yaml::from_str(&per_try.fix.as_ref().unwrap().yaml).unwrap();
        assert_eq!(
            fixed.spec.http[1].timeout.as_deref(),
            Some("10s"),
            "/health untouched"
        );
        assert_eq!(
            fixed.spec.http[2].timeout.as_deref(),
            Some("30s"),
            "/metrics untouched"
        );
        let infos: Vec<&str> = findings
            .iter()
            .filter(|finding| finding.severity == Severity::Info)
            .map(|finding| finding.title.as_str())
            .collect();
        assert!(
            infos.iter().any(|title| title.contains("/health at 10s")),
            "{infos:?}"
        );
    }

    #[test]
    fn a_short_route_timeout_is_critical_and_the_fix_is_the_whole_virtual_service() {
        let findings = check(&with_virtual_service(SHORT_TIMEOUT), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Critical);
        // The per-try timeout is no stream deadline (Envoy ignores it once the response has
        // started): the route timeout is the cut, and the per-try line says what it does do.
        assert!(
            finding.title.contains("at 15s (route timeout)"),
            "{}",
            finding.title
        );
        assert_eq!(
            evidence_paths(finding),
            ["spec/http[1]/timeout", "spec/http[1]/retries/perTryTimeout"]
        );
        assert_eq!(finding.evidence[0].value, "15s");
        assert!(
            finding.evidence[1]
                .note
                .as_deref()
                .unwrap()
                .contains("non-streaming request that takes longer is cut"),
            "{:?}",
            finding.evidence[1]
        );
        assert!(
            finding.evidence[0]
                .note
                .as_deref()
                .unwrap()
                .contains("300s expected generation")
        );

        let fixed: VirtualService =
            serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
        assert_eq!(fixed.spec.http[1].timeout.as_deref(), Some("300s"));
        assert_eq!(
            fixed.spec.http[1].retries.as_ref().unwrap().per_try_timeout,
            None
        );
        assert_eq!(
            fixed.spec.http[0].timeout.as_deref(),
            Some("5s"),
            "other routes untouched"
        );
        assert!(
            fixed.spec.http[1].other.contains_key("rewrite"),
            "unmodelled fields kept"
        );
        // The fixed object passes the check.
        let mut healed = target();
        healed.mesh.virtual_services.push(fixed);
        assert!(check(&healed, &settings()).is_empty());
    }

    #[test]
    fn zero_long_enough_and_disabled_retries_do_not_fire() {
        let quiet = r#"
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm]
  http:
  - route: [{destination: {host: vllm}}]
    timeout: 0s
    retries: {attempts: 0, perTryTimeout: 1s}
  - route: [{destination: {host: vllm.llm.svc.cluster.local}}]
    timeout: 10m
"#;
        assert!(check(&with_virtual_service(quiet), &settings()).is_empty());
        let longer = Settings {
            expected_generation: Duration::from_secs(900),
        };
        assert_eq!(check(&with_virtual_service(quiet), &longer).len(), 1);
    }

    #[test]
    fn destination_rule_idle_timeouts_are_info_only() {
        let mut target = target();
        target.mesh.destination_rules.push(object(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  trafficPolicy:
    connectionPool:
      tcp: {maxConnectionDuration: 60s}
      http: {idleTimeout: 30s}
    portLevelSettings:
    - port: {number: 9000}
      connectionPool: {http: {idleTimeout: 1s}}
"#,
        ));
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Info);
        assert_eq!(
            evidence_paths(&findings[0]),
            [
                "spec/trafficPolicy/connectionPool/http/idleTimeout",
                "spec/trafficPolicy/connectionPool/tcp/maxConnectionDuration"
            ],
            "port 9000 is not an inference port"
        );
    }

    const FILTER: &str = r#"
apiVersion: networking.istio.io/v1alpha3
metadata: {name: timeouts, namespace: llm}
spec:
  workloadSelector: {labels: {app: vllm}}
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 8000
        filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}
    patch:
      operation: MERGE
      value:
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stream_idle_timeout: 30s
          request_timeout: 10s
          common_http_protocol_options: {idle_timeout: 60s}
  - applyTo: HTTP_ROUTE
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: MERGE
      value:
        route: {timeout: 120s, max_stream_duration: {max_stream_duration: 0s}}
  - applyTo: NETWORK_FILTER
    match: {context: SIDECAR_OUTBOUND}
    patch:
      operation: MERGE
      value: {typed_config: {stream_idle_timeout: 1s}}
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_FIRST
      value:
        name: envoy.filters.http.ext_authz
        typed_config: {grpc_service: {envoy_grpc: {cluster_name: authz}, timeout: 1s}}
"#;

    #[test]
    fn envoy_filter_patches_are_classified_by_what_they_cut() {
        let findings = check(&with_envoy_filter(FILTER), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Critical);
        assert!(
            finding.title.contains("sets timeout 120s"),
            "{}",
            finding.title
        );
        assert_eq!(
            evidence_paths(finding),
            [
                "spec/configPatches[0]/patch/value/typed_config/common_http_protocol_options/idle_timeout",
                "spec/configPatches[0]/patch/value/typed_config/request_timeout",
                "spec/configPatches[0]/patch/value/typed_config/stream_idle_timeout",
                "spec/configPatches[1]/patch/value/route/timeout",
            ],
            "0s is disabled; the workload's own outbound patch is off the path; an ext_authz call timeout is no stream timeout"
        );
        let fixed: EnvoyFilter = serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
        let first = patch_value(&fixed, 0);
        assert_eq!(first["typed_config"]["stream_idle_timeout"], "300s");
        assert_eq!(
            first["typed_config"]["request_timeout"], "10s",
            "info-level limits are left alone"
        );
        let second = patch_value(&fixed, 1);
        assert_eq!(second["route"]["timeout"], "300s");
    }

    #[test]
    fn an_envoy_filter_with_only_connection_limits_is_info() {
        let target = with_envoy_filter(
            r#"
metadata: {name: upstream, namespace: llm}
spec:
  configPatches:
  - applyTo: CLUSTER
    match: {context: SIDECAR_OUTBOUND}
    patch: {operation: MERGE, value: {typed_extension_protocol_options: {x: {common_http_protocol_options: {max_connection_duration: 60s}}}}}
"#,
        );
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(findings[0].fix.as_ref().unwrap().yaml.is_empty());
    }
}
