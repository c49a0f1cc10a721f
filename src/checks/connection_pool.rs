//! 3 `connection-pool`: DestinationRule or Sidecar connection-pool limits below the concurrency
//! the workload is built to serve, and outlier detection that ejects pods on a few 5xx.
//!
//! What the workload serves: one replica runs `--max-num-seqs` sequences at once (vLLM's
//! default 256 is assumed and named when the flag is absent); a caller's outbound cluster is
//! cluster-wide, so it needs replicas × max-num-seqs; each pod's inbound cluster needs one
//! replica's worth. The rule's port-resolved pool applies to both sides (docs/facts.md), subsets only
//! to the outbound side, and a Sidecar pool replaces it on the inbound side.
//!
//! Severity:
//! - **critical**: `tcp.maxConnections` or `http.http2MaxRequests` below *one replica's*
//!   max-num-seqs on a cluster on the path. The batch vLLM is configured for can never fill
//!   through that proxy: with HTTP/1.1 (Istio's default upstream protocol, and vLLM's) each
//!   stream holds a connection, so `maxConnections` caps concurrent streams; `http2MaxRequests`
//!   caps requests on every protocol and rejects the rest with 503 (UO).
//! - **warning**: those limits below replicas × max-num-seqs on an outbound cluster (one caller,
//!   typically the ingress gateway, cannot use the whole fleet); `http1MaxPendingRequests` below
//!   it (a burst of new streams overflows while connections open); `maxRequestsPerConnection`
//!   at most 10 (a new connection, and with mTLS a handshake, every few requests); outlier
//!   detection that ejects a pod after at most 5 consecutive 5xx or gateway errors (Envoy's
//!   default 5 applies when `consecutive5xxErrors` is unset; Istio disables the panic
//!   threshold, so ejected pods get no traffic at all).
//!
//! When Envoys on the path were read, the circuit breakers they run win (`proxy::pool`): judged
//! against the same capacity, critical and runtime when an overflow counter, an open breaker
//! gauge or the UO flag moved. A DestinationRule whose cluster a proxy shows is judged there;
//! where the rule and the cluster's thresholds differ, that is a finding of its own.

use super::capacity::{self, Capacity, FEW_REQUESTS_PER_CONNECTION, Judged};
use super::fixes::{IstioKind, istio_label, istio_manifest, istio_ref};
use super::proxy;
use super::target::upstream_clusters;
use super::{Basis, CheckId, EvidenceLine, Finding, Settings, Severity};
use crate::evidence::objects::{
    ConnectionPool, DestinationRule, OutlierDetection, Sidecar, TrafficPolicy,
};
use crate::evidence::resolve::policy::{
    Sourced, effective_policy, pool_limits, sidecar_inbound_pool,
};
use crate::evidence::{ObjectRef, TargetEvidence};

/// Consecutive errors at or below this eject a pod on a transient burst.
const FEW_CONSECUTIVE_ERRORS: i64 = 5;
/// What a fix raises a low error threshold to.
const FIXED_CONSECUTIVE_ERRORS: i64 = 10;
/// Envoy's `consecutive_5xx` and `max_ejection_percent` when unset.
const ENVOY_CONSECUTIVE_5XX: i64 = 5;
const ENVOY_MAX_EJECTION_PERCENT: i64 = 10;

/// One limit that bites, before it is grouped into a finding.
struct Issue {
    severity: Severity,
    headline: String,
    line: EvidenceLine,
}

pub fn check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    let mut findings = configured(target, settings);
    findings.extend(super::http_routes::retry_findings(target));
    findings.extend(super::ambient::no_effect(
        target,
        super::CheckId::ConnectionPool,
    ));
    super::probe_runs::add(&mut findings, target, super::CheckId::ConnectionPool);
    findings
}

/// What the configuration and the Envoys' counters show (the probe runs are judged apart).
fn configured(target: &TargetEvidence, _settings: &Settings) -> Vec<Finding> {
    let workload = &target.workload;
    // Scaled to zero: nothing is served. (An Endpoint's replica count is not known: at least one.)
    if workload.replicas == 0 && workload.spec_known() && target.mesh.autoscaler.is_none() {
        return Vec::new();
    }
    let capacity = Capacity::of(target, u64::from(workload.replicas));
    let mut assumptions = capacity.assumptions.clone();
    assumptions.push(
        "upstream HTTP/1.1 (Istio's default h2UpgradePolicy; vLLM serves HTTP/1.1): each concurrent stream holds a connection"
            .to_string(),
    );

    let sidecar_pool = target.mesh.sidecars.iter().find_map(|sidecar| {
        sidecar_inbound_pool(sidecar, workload.vllm.port).map(|found| (sidecar, found))
    });

    let mut pool_issues: Vec<(&DestinationRule, Vec<Issue>)> = Vec::new();
    let mut outlier_issues: Vec<(&DestinationRule, Vec<Issue>)> = Vec::new();
    for cluster in upstream_clusters(target) {
        let Some(rule) = cluster.rule else { continue };
        let object = istio_ref(IstioKind::DestinationRule, rule);
        let name = cluster.name();
        let policy = effective_policy(rule, cluster.port, cluster.subset.as_deref());
        if let Some((pool, path)) = policy.connection_pool {
            let upgraded = pool
                .http
                .as_ref()
                .and_then(|http| http.h2_upgrade_policy.as_deref())
                == Some("UPGRADE");
            // The plain cluster's pool is also the pods' inbound pool, unless a Sidecar sets one.
            // An ambient pod has no inbound sidecar: only the waypoint or gateway runs the pool.
            let inbound_too = cluster.subset.is_none()
                && sidecar_pool.is_none()
                && target.mesh.sidecar_mode.has_sidecar();
            let issues = outbound_pool_issues(
                pool,
                &path,
                &object,
                &name,
                &capacity,
                upgraded,
                inbound_too,
            );
            merge(&mut pool_issues, rule, issues);
        }
        if let Some((outlier, path)) = policy.outlier_detection {
            let issues = outlier_issue(outlier, &path, &object, &name, &capacity);
            merge(&mut outlier_issues, rule, issues.into_iter().collect());
        }
    }

    let mut written: Vec<(ObjectRef, Option<Finding>)> = target
        .mesh
        .destination_rules
        .iter()
        .map(|rule| (istio_ref(IstioKind::DestinationRule, rule), None))
        .collect();
    for (rule, issues) in pool_issues {
        let fix = istio_manifest(IstioKind::DestinationRule, &fixed_rule(rule, &capacity)).map(|yaml| {
            (
                format!(
                    "Raise the DestinationRule's limits to at least {} (headroom over {}) and drop small \
                     maxRequestsPerConnection values; apply with `kubectl apply -f fix.yaml`.",
                    capacity.recommended,
                    capacity.fleet_text()
                ),
                yaml,
            )
        });
        let object = istio_ref(IstioKind::DestinationRule, rule);
        let found = finding(
            &istio_label(IstioKind::DestinationRule, rule),
            issues,
            fix,
            &assumptions,
        );
        match written.iter_mut().find(|(known, _)| *known == object) {
            Some(entry) => entry.1 = Some(found),
            None => written.push((object, Some(found))),
        }
    }
    // What the proxies run wins: a rule whose clusters they show is judged there.
    let (mut findings, shown) = proxy::pool::findings(target, &written);
    findings.extend(proxy::disagree::pool_limits_applied(target));
    for (object, found) in written {
        if !shown.contains(&object) {
            findings.extend(found);
        }
    }
    for (rule, issues) in outlier_issues {
        let fix = istio_manifest(IstioKind::DestinationRule, &fixed_rule(rule, &capacity)).map(|yaml| {
            (
                format!(
                    "Eject a pod only after sustained failures: consecutive 5xx and gateway error thresholds of \
                     {FIXED_CONSECUTIVE_ERRORS} or more, as below; apply with `kubectl apply -f fix.yaml`."
                ),
                yaml,
            )
        });
        findings.push(finding(
            &istio_label(IstioKind::DestinationRule, rule),
            issues,
            fix,
            &[],
        ));
    }
    if let Some((sidecar, (pool, path))) = sidecar_pool {
        let object = istio_ref(IstioKind::Sidecar, sidecar);
        let issues = inbound_pool_issues(pool, &path, &object, &capacity);
        if !issues.is_empty() {
            let fix = istio_manifest(IstioKind::Sidecar, &fixed_sidecar(sidecar, &capacity)).map(|yaml| {
                (
                    format!(
                        "Raise the Sidecar's inbound limits to at least {} and drop small maxRequestsPerConnection \
                         values; apply with `kubectl apply -f fix.yaml`.",
                        capacity.recommended
                    ),
                    yaml,
                )
            });
            findings.push(finding(
                &istio_label(IstioKind::Sidecar, sidecar),
                issues,
                fix,
                &assumptions,
            ));
        }
    }
    findings
}

/// Adds issues to the rule's list, keeping one line per field path (the most severe).
fn merge<'a>(
    grouped: &mut Vec<(&'a DestinationRule, Vec<Issue>)>,
    rule: &'a DestinationRule,
    issues: Vec<Issue>,
) {
    if issues.is_empty() {
        return;
    }
    let index = match grouped
        .iter()
        .position(|(known, _)| std::ptr::eq(*known, rule))
    {
        Some(index) => index,
        None => {
            grouped.push((rule, Vec::new()));
            grouped.len() - 1
        }
    };
    let known = &mut grouped[index].1;
    for issue in issues {
        match known
            .iter_mut()
            .find(|existing| existing.line.path == issue.line.path)
        {
            Some(existing) if existing.severity < issue.severity => *existing = issue,
            Some(_) => {}
            None => known.push(issue),
        }
    }
}

fn finding(
    label: &str,
    issues: Vec<Issue>,
    fix: Option<(String, String)>,
    assumptions: &[String],
) -> Finding {
    let worst = issues
        .iter()
        .enumerate()
        .max_by_key(|(index, issue)| (issue.severity, std::cmp::Reverse(*index)))
        .map(|(index, _)| index)
        .unwrap_or_default();
    let (severity, headline) = issues
        .get(worst)
        .map(|issue| (issue.severity, issue.headline.clone()))
        .unwrap_or((Severity::Info, String::new()));
    let mut finding = Finding::new(
        CheckId::ConnectionPool,
        severity,
        Basis::Static,
        format!("{label} {headline}"),
    );
    for issue in issues {
        finding = finding.evidence(issue.line);
    }
    for assumption in assumptions {
        finding = finding.assume(assumption.clone());
    }
    match fix {
        Some((summary, yaml)) => finding.fix(summary, yaml),
        None => finding,
    }
}

/// The issue of a limit as written, judged by the rule every pool limit shares.
fn issue(limit: &Sourced<i64>, object: &ObjectRef, judged: Option<Judged>) -> Option<Issue> {
    let judged = judged?;
    Some(Issue {
        severity: judged.severity,
        headline: judged.headline,
        line: EvidenceLine::new(object.clone(), limit.path.clone(), limit.value.to_string())
            .with_note(judged.note),
    })
}

/// A concurrency cap (`maxConnections`, `http2MaxRequests`) against what the workload serves.
fn concurrency_issue(
    limit: &Sourced<i64>,
    unit: &str,
    effect: &str,
    object: &ObjectRef,
    scope: &str,
    capacity: &Capacity,
    fleet_applies: bool,
) -> Option<Issue> {
    let judged = capacity::concurrency(count(limit), unit, effect, scope, capacity, fleet_applies);
    issue(limit, object, judged)
}

/// A limit Istio applies is above zero.
fn count(limit: &Sourced<i64>) -> u64 {
    u64::try_from(limit.value).unwrap_or_default()
}

const CONNECTIONS_EFFECT: &str = "with HTTP/1.1 each stream holds a connection, so the rest wait";
const REQUESTS_EFFECT: &str = "requests beyond it are rejected with 503 (UO)";

fn outbound_pool_issues(
    pool: &ConnectionPool,
    path: &str,
    object: &ObjectRef,
    cluster: &str,
    capacity: &Capacity,
    upgraded: bool,
    inbound_too: bool,
) -> Vec<Issue> {
    let limits = pool_limits(pool, path);
    let mut issues = Vec::new();
    if let Some(limit) = &limits.max_connections {
        // With h2UpgradePolicy UPGRADE callers multiplex; the pods' inbound side still is HTTP/1.1.
        if !upgraded || inbound_too {
            let scope = if upgraded {
                "each pod's inbound side"
            } else {
                cluster
            };
            issues.extend(concurrency_issue(
                limit,
                "connections",
                CONNECTIONS_EFFECT,
                object,
                scope,
                capacity,
                !upgraded,
            ));
        }
    }
    if let Some(limit) = &limits.http2_max_requests {
        issues.extend(concurrency_issue(
            limit,
            "concurrent requests",
            REQUESTS_EFFECT,
            object,
            cluster,
            capacity,
            true,
        ));
    }
    if let Some(limit) = &limits.http1_max_pending_requests {
        let judged = capacity::pending(
            count(limit),
            cluster,
            capacity.fleet,
            &capacity.fleet_text(),
        );
        issues.extend(issue(limit, object, judged));
    }
    if let Some(limit) = &limits.max_requests_per_connection {
        issues.extend(issue(
            limit,
            object,
            capacity::per_connection(count(limit), cluster),
        ));
    }
    issues
}

fn inbound_pool_issues(
    pool: &ConnectionPool,
    path: &str,
    object: &ObjectRef,
    capacity: &Capacity,
) -> Vec<Issue> {
    let limits = pool_limits(pool, path);
    let scope = "each pod's inbound side";
    let mut issues = Vec::new();
    for (limit, unit, effect) in [
        (&limits.max_connections, "connections", CONNECTIONS_EFFECT),
        (
            &limits.http2_max_requests,
            "concurrent requests",
            REQUESTS_EFFECT,
        ),
    ] {
        if let Some(limit) = limit {
            issues.extend(concurrency_issue(
                limit, unit, effect, object, scope, capacity, false,
            ));
        }
    }
    if let Some(limit) = &limits.http1_max_pending_requests {
        let needed = format!("one replica's max-num-seqs ({})", capacity.per_replica);
        let judged = capacity::pending(count(limit), scope, capacity.per_replica, &needed);
        issues.extend(issue(limit, object, judged));
    }
    if let Some(limit) = &limits.max_requests_per_connection {
        issues.extend(issue(
            limit,
            object,
            capacity::per_connection(count(limit), scope),
        ));
    }
    issues
}

fn outlier_issue(
    outlier: &OutlierDetection,
    path: &str,
    object: &ObjectRef,
    cluster: &str,
    capacity: &Capacity,
) -> Option<Issue> {
    let (five_xx, five_xx_path, defaulted) = match outlier.consecutive_5xx_errors {
        Some(value) => (value, format!("{path}/consecutive5xxErrors"), false),
        None => (
            ENVOY_CONSECUTIVE_5XX,
            format!("{path}/consecutive5xxErrors"),
            true,
        ),
    };
    let gateway = outlier.consecutive_gateway_errors.unwrap_or(0);
    let (threshold, field_path, kind) = if five_xx > 0 && five_xx <= FEW_CONSECUTIVE_ERRORS {
        (five_xx, five_xx_path, "5xx")
    } else if gateway > 0 && gateway <= FEW_CONSECUTIVE_ERRORS {
        (
            gateway,
            format!("{path}/consecutiveGatewayErrors"),
            "gateway (502/503/504)",
        )
    } else {
        return None;
    };
    let max_percent = outlier
        .max_ejection_percent
        .filter(|percent| *percent > 0)
        .unwrap_or(ENVOY_MAX_EJECTION_PERCENT);
    let replicas = i64::try_from(capacity.replicas.max(1)).unwrap_or(i64::MAX);
    let one_pod = (100 + replicas - 1) / replicas;
    let ejectable = max_percent.max(one_pod).min(100);
    let value = if defaulted && kind == "5xx" {
        format!("<unset> (Envoy default {ENVOY_CONSECUTIVE_5XX})")
    } else {
        threshold.to_string()
    };
    let panic = panic_threshold(outlier, replicas);
    let (severity, effect) = match panic {
        Some(Panic {
            min_health,
            at_first,
        }) if at_first => (
            Severity::Info,
            format!(
                "minHealthPercent {min_health} is the cluster's healthy_panic_threshold (istiod): with {} replicas one \
                 ejection leaves fewer than {min_health}% healthy, so the cluster is in panic and the ejected pod keeps \
                 its traffic",
                capacity.replicas
            ),
        ),
        Some(Panic { min_health, .. }) => (
            Severity::Warning,
            format!(
                "up to {ejectable}% of the {} replicas can be out at once (maxEjectionPercent {max_percent}%, at least one \
                 pod) while {min_health}% stay healthy (minHealthPercent, the cluster's healthy_panic_threshold); past \
                 that the cluster panics and every pod gets traffic again",
                capacity.replicas
            ),
        ),
        None => (
            Severity::Warning,
            format!(
                "up to {ejectable}% of the {} replicas can be out at once (maxEjectionPercent {max_percent}%, at least one \
                 pod) and get no traffic (Istio writes healthy_panic_threshold 0 unless minHealthPercent is set)",
                capacity.replicas
            ),
        ),
    };
    let mut note = format!(
        "a transient burst of {threshold} errors (an overloaded or restarting vLLM) ejects a pod; {effect}"
    );
    if outlier.consecutive_errors.is_some() {
        note.push_str(
            "; consecutiveErrors is deprecated and ignored by current istiod: consecutive5xxErrors (else Envoy's 5) applies",
        );
    }
    Some(Issue {
        severity,
        headline: format!("ejects pods of {cluster} after {threshold} consecutive {kind} errors"),
        line: EvidenceLine::new(object.clone(), field_path, value).with_note(note),
    })
}

/// The panic threshold istiod writes from `minHealthPercent`
/// (`pilot/pkg/networking/core/cluster_traffic_policy.go`, `applyOutlierDetection`:
/// `healthy_panic_threshold = minHealthPercent`, 0 = panic disabled). In panic Envoy ignores
/// host health and balances over every pod, ejected ones included.
struct Panic {
    min_health: i64,
    /// Whether a single ejection already brings the healthy share under it.
    at_first: bool,
}

fn panic_threshold(outlier: &OutlierDetection, replicas: i64) -> Option<Panic> {
    let min_health = outlier.min_health_percent.filter(|percent| *percent > 0)?;
    let healthy_after_one = 100 * (replicas - 1) / replicas;
    Some(Panic {
        min_health,
        at_first: healthy_after_one < min_health,
    })
}

fn recommended(capacity: &Capacity) -> i64 {
    i64::try_from(capacity.recommended).unwrap_or(i64::MAX)
}

fn raise(limit: &mut Option<i64>, to: i64) {
    if let Some(value) = limit.as_mut().filter(|value| **value > 0 && **value < to) {
        *value = to;
    }
}

fn fix_pool(pool: &mut ConnectionPool, recommended: i64) {
    if let Some(tcp) = pool.tcp.as_mut() {
        raise(&mut tcp.max_connections, recommended);
    }
    if let Some(http) = pool.http.as_mut() {
        raise(&mut http.http2_max_requests, recommended);
        raise(&mut http.http1_max_pending_requests, recommended);
        if http
            .max_requests_per_connection
            .and_then(|value| u64::try_from(value).ok())
            .is_some_and(|value| value > 0 && value <= FEW_REQUESTS_PER_CONNECTION)
        {
            http.max_requests_per_connection = None;
        }
    }
}

fn fix_outlier(outlier: &mut OutlierDetection) {
    let low = |value: i64| value > 0 && value <= FEW_CONSECUTIVE_ERRORS;
    // Deprecated and ignored by istiod: the fix says what runs.
    outlier.consecutive_errors = None;
    if outlier.consecutive_5xx_errors.is_none_or(low) {
        outlier.consecutive_5xx_errors = Some(FIXED_CONSECUTIVE_ERRORS);
    }
    if outlier.consecutive_gateway_errors.is_some_and(low) {
        outlier.consecutive_gateway_errors = Some(FIXED_CONSECUTIVE_ERRORS);
    }
}

fn fix_policy(policy: &mut TrafficPolicy, recommended: i64) {
    if let Some(pool) = policy.connection_pool.as_mut() {
        fix_pool(pool, recommended);
    }
    if let Some(outlier) = policy.outlier_detection.as_mut() {
        fix_outlier(outlier);
    }
    for entry in &mut policy.port_level_settings {
        if let Some(pool) = entry.connection_pool.as_mut() {
            fix_pool(pool, recommended);
        }
        if let Some(outlier) = entry.outlier_detection.as_mut() {
            fix_outlier(outlier);
        }
    }
}

/// The rule with every pool limit below the recommendation raised and every eager outlier
/// threshold relaxed, wherever they sit (top level, port level, subsets).
fn fixed_rule(rule: &DestinationRule, capacity: &Capacity) -> DestinationRule {
    let mut fixed = rule.clone();
    if let Some(policy) = fixed.spec.traffic_policy.as_mut() {
        fix_policy(policy, recommended(capacity));
    }
    for subset in &mut fixed.spec.subsets {
        if let Some(policy) = subset.traffic_policy.as_mut() {
            fix_policy(policy, recommended(capacity));
        }
    }
    fixed
}

fn fixed_sidecar(sidecar: &Sidecar, capacity: &Capacity) -> Sidecar {
    let mut fixed = sidecar.clone();
    if let Some(pool) = fixed.spec.inbound_connection_pool.as_mut() {
        fix_pool(pool, recommended(capacity));
    }
    for ingress in &mut fixed.spec.ingress {
        if let Some(pool) = ingress.connection_pool.as_mut() {
            fix_pool(pool, recommended(capacity));
        }
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{assert_well_formed, object, settings, target};

    /// target(): 2 replicas × max-num-seqs 128 = 256.
    fn with_rule(yaml: &str) -> TargetEvidence {
        let mut target = target();
        target.mesh.destination_rules.push(object(yaml));
        target
    }

    fn paths(finding: &Finding) -> Vec<&str> {
        finding
            .evidence
            .iter()
            .map(|line| line.path.as_str())
            .collect()
    }

    #[test]
    fn limits_below_one_replica_are_critical_and_the_fix_raises_them() {
        let target = with_rule(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm.llm.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http2MaxRequests: 200, http1MaxPendingRequests: 10, maxRequestsPerConnection: 1}
"#,
        );
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Critical);
        assert_eq!(
            finding.title,
            "DestinationRule llm/vllm caps outbound|8000||vllm.llm.svc.cluster.local at 100 connections; one replica serves 128 (max-num-seqs)"
        );
        assert_eq!(
            paths(finding),
            [
                "spec/trafficPolicy/connectionPool/tcp/maxConnections",
                "spec/trafficPolicy/connectionPool/http/http2MaxRequests",
                "spec/trafficPolicy/connectionPool/http/http1MaxPendingRequests",
                "spec/trafficPolicy/connectionPool/http/maxRequestsPerConnection",
            ]
        );
        assert!(
            finding.evidence[1]
                .note
                .as_deref()
                .unwrap()
                .contains("2 × 128 = 256")
        );

        let fixed: DestinationRule =
            serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
        let pool = fixed
            .spec
            .traffic_policy
            .as_ref()
            .unwrap()
            .connection_pool
            .as_ref()
            .unwrap();
        assert_eq!(pool.tcp.as_ref().unwrap().max_connections, Some(384));
        assert_eq!(
            pool.http.as_ref().unwrap().max_requests_per_connection,
            None
        );
        assert!(
            fixed
                .spec
                .traffic_policy
                .as_ref()
                .unwrap()
                .other
                .contains_key("loadBalancer")
        );
        let mut healed = super::super::test_support::target();
        healed.mesh.destination_rules.push(fixed);
        assert!(check(&healed, &settings()).is_empty());
    }

    #[test]
    fn limits_between_one_replica_and_the_fleet_are_warnings() {
        let target = with_rule(
            "metadata: {name: vllm, namespace: llm}\nspec: {host: vllm, trafficPolicy: {connectionPool: {tcp: {maxConnections: 200}}}}",
        );
        let findings = check(&target, &settings());
        assert_eq!(findings[0].severity, Severity::Warning);
        assert!(
            findings[0].title.ends_with("2 × 128 = 256"),
            "{}",
            findings[0].title
        );
    }

    #[test]
    fn enough_capacity_or_zero_does_not_fire() {
        let target = with_rule(
            "metadata: {name: vllm, namespace: llm}\nspec: {host: vllm, trafficPolicy: {connectionPool: {tcp: {maxConnections: 0}, http: {http2MaxRequests: 1024, maxRequestsPerConnection: 0}}}}",
        );
        assert!(check(&target, &settings()).is_empty());
    }

    #[test]
    fn port_level_and_subset_overrides_decide_what_applies() {
        let rule = r#"
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10}}
    portLevelSettings:
    - port: {number: 8000}
      connectionPool: {tcp: {maxConnections: 1000}}
  subsets:
  - name: a
    labels: {app: vllm}
    trafficPolicy: {connectionPool: {http: {http2MaxRequests: 64}}}
  - name: elsewhere
    labels: {app: other}
    trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1}}}
"#;
        // No VirtualService: only the plain cluster, where the port-level entry wins.
        assert!(check(&with_rule(rule), &settings()).is_empty());

        // Routes to both subsets: only the one selecting the workload's pods counts.
        let mut target = with_rule(rule);
        target.mesh.virtual_services.push(object(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm]
  http:
  - route:
    - {destination: {host: vllm, subset: a}, weight: 90}
    - {destination: {host: vllm, subset: elsewhere}, weight: 10}
"#,
        ));
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].severity, Severity::Critical);
        assert_eq!(
            paths(&findings[0]),
            ["spec/subsets[0]/trafficPolicy/connectionPool/http/http2MaxRequests"]
        );
        assert!(
            findings[0]
                .title
                .contains("outbound|8000|a|vllm.llm.svc.cluster.local")
        );
    }

    #[test]
    fn subsets_routed_by_a_delegate_are_the_clusters_in_use() {
        let rule = r#"
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  subsets:
  - name: a
    labels: {app: vllm}
    trafficPolicy: {connectionPool: {http: {http2MaxRequests: 64}}}
"#;
        let mut target = with_rule(rule);
        target.mesh.virtual_services.push(object(
            "metadata: {name: vllm, namespace: llm}\nspec: {hosts: [vllm], http: [{delegate: {name: vllm-routes}}]}",
        ));
        // Alone, the root routes nowhere: only the plain cluster, without limits.
        assert!(check(&target, &settings()).is_empty());
        // Its delegate sends every mesh request to subset a, whose limit then applies.
        target.mesh.virtual_services.push(object(
            "metadata: {name: vllm-routes, namespace: llm}\nspec: {http: [{route: [{destination: {host: vllm, subset: a}}]}]}",
        ));
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert!(
            findings[0]
                .title
                .contains("outbound|8000|a|vllm.llm.svc.cluster.local"),
            "{}",
            findings[0].title
        );
        // Bound to a gateway only, the root leaves mesh callers on the plain cluster: its
        // delegate, though it names no gateway, is bound where its root is.
        target.mesh.destination_rules[0]
            .spec
            .traffic_policy
            .get_or_insert_with(Default::default)
            .connection_pool = Some(object("{http: {http2MaxRequests: 32}}"));
        target.mesh.virtual_services[0].spec.gateways = vec!["istio-system/public".into()];
        let findings = check(&target, &settings());
        let titles: Vec<&str> = findings.iter().map(|f| f.title.as_str()).collect();
        assert!(
            titles.iter().any(|t| t.contains("outbound|8000||vllm.llm")),
            "{titles:#?}"
        );
    }

    #[test]
    fn a_wildcard_rule_applies_and_a_rule_for_another_host_does_not() {
        let mut target = target();
        target.mesh.destination_rules = vec![
            object(
                "metadata: {name: web, namespace: llm}\nspec: {host: web, trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}}",
            ),
            object(
                "metadata: {name: namespace-wide, namespace: llm}\nspec: {host: '*.llm.svc.cluster.local', trafficPolicy: {connectionPool: {http: {http2MaxRequests: 64}}}}",
            ),
        ];
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        assert!(
            findings[0]
                .title
                .starts_with("DestinationRule llm/namespace-wide caps")
        );
        assert_eq!(findings[0].severity, Severity::Critical);
    }

    #[test]
    fn the_default_max_num_seqs_is_named() {
        let mut target = with_rule(
            "metadata: {name: vllm, namespace: llm}\nspec: {host: vllm, trafficPolicy: {connectionPool: {http: {http2MaxRequests: 300}}}}",
        );
        target.workload.vllm.max_num_seqs = None;
        let findings = check(&target, &settings());
        assert_eq!(findings[0].severity, Severity::Warning, "300 < 2 × 256");
        assert!(findings[0].assumptions[0].contains("assumed vLLM's default 256"));
    }

    #[test]
    fn eager_outlier_detection_is_a_warning_and_an_unset_threshold_uses_envoys_default() {
        let target = with_rule(
            "metadata: {name: vllm, namespace: llm}\nspec: {host: vllm, trafficPolicy: {outlierDetection: {consecutiveGatewayErrors: 20, maxEjectionPercent: 100}}}",
        );
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(finding.evidence[0].value, "<unset> (Envoy default 5)");
        assert!(
            finding.evidence[0]
                .note
                .as_deref()
                .unwrap()
                .contains("up to 100%")
        );
        let fixed: DestinationRule =
            serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
        let outlier = fixed
            .spec
            .traffic_policy
            .unwrap()
            .outlier_detection
            .unwrap();
        assert_eq!(outlier.consecutive_5xx_errors, Some(10));
        assert_eq!(outlier.consecutive_gateway_errors, Some(20));

        let tolerant = with_rule(
            "metadata: {name: vllm, namespace: llm}\nspec: {host: vllm, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 10}}}",
        );
        assert!(check(&tolerant, &settings()).is_empty());
    }

    #[test]
    fn min_health_percent_is_the_panic_threshold_and_consecutive_errors_is_ignored() {
        let rule = "metadata: {name: vllm, namespace: llm}\nspec: {host: vllm, trafficPolicy: {outlierDetection: {consecutiveErrors: 3, maxEjectionPercent: 50, minHealthPercent: 50}}}";
        // One replica: its ejection leaves 0% healthy, under 50%: the cluster panics and the pod
        // keeps its traffic.
        let mut single = with_rule(rule);
        single.workload.replicas = 1;
        let findings = check(&single, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].severity, Severity::Info, "{findings:#?}");
        let note = findings[0].evidence[0].note.as_deref().unwrap();
        assert!(note.contains("healthy_panic_threshold"), "{note}");
        assert!(
            note.contains("consecutiveErrors is deprecated and ignored"),
            "{note}"
        );
        // Two replicas: one may be out while 50% stay healthy.
        let findings = check(&with_rule(rule), &settings());
        assert_eq!(findings[0].severity, Severity::Warning, "{findings:#?}");
        let fixed: DestinationRule =
            serde_yaml::from_str(&findings[0].fix.as_ref().unwrap().yaml).unwrap();
        let outlier = fixed
            .spec
            .traffic_policy
            .unwrap()
            .outlier_detection
            .unwrap();
        assert_eq!(
            outlier.consecutive_errors, None,
            "the fix drops what istiod ignores"
        );
        assert_eq!(outlier.consecutive_5xx_errors, Some(10));
        assert_eq!(outlier.min_health_percent, Some(50));
    }

    #[test]
    fn a_sidecar_inbound_pool_is_judged_per_pod() {
        let mut target = target();
        target.mesh.sidecars.push(object(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  workloadSelector: {labels: {app: vllm}}
  ingress:
  - port: {number: 8000, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8000
    connectionPool: {tcp: {maxConnections: 200}, http: {http1MaxPendingRequests: 64}}
"#,
        ));
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        // 200 ≥ 128 per pod: fine; pending 64 < 128: warning.
        assert_eq!(findings[0].severity, Severity::Warning);
        assert_eq!(
            paths(&findings[0]),
            ["spec/ingress[0]/connectionPool/http/http1MaxPendingRequests"]
        );
        assert!(findings[0].title.starts_with("Sidecar llm/vllm"));
    }
}
