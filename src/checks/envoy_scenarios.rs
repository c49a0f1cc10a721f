//! The checks on real Envoy evidence: config_dump and /stats captured from Envoy pairs that
//! reproduced each failure mode (`tests/envoy_scenarios.rs`, `tests/fixtures/envoy/scenarios/`).

use super::test_support::{
    assert_well_formed, endpoint_target, evidence_paths, lab_target, object, scenario_envoy,
    scenario_pair, settings,
};
use super::{ALL, Basis, CheckId, Finding, Settings, Severity, run_all};
use crate::evidence::TargetEvidence;
use crate::evidence::envoy::EnvoyEvidence;
use crate::evidence::objects::{DestinationRule, VirtualService};
use crate::verdict::{CheckStatus, Confidence, TargetDiagnosis, judge_target};
use std::time::Duration;

const CLUSTER: &str = "outbound|8000||vllm.inference.svc.cluster.local";
const ROUTE_TIMEOUT_PATH: &str = "route_config 8000/virtual_hosts[vllm.inference.svc.cluster.local:8000]/routes[default]/route/timeout";

fn above_info(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|finding| finding.severity > Severity::Info)
        .collect()
}

fn of(findings: &[Finding], id: CheckId) -> Vec<&Finding> {
    findings.iter().filter(|finding| finding.id == id).collect()
}

fn judged(target: &TargetEvidence, settings: &Settings) -> TargetDiagnosis {
    let per_check = ALL
        .iter()
        .map(|(id, check)| (*id, check(target, settings)))
        .collect();
    judge_target(target, per_check)
}

/// Runs every check on `target`; there must be exactly one finding above info.
fn only_finding_above_info(target: &TargetEvidence) -> Finding {
    let findings = run_all(target, &settings());
    assert_well_formed(&findings);
    let above = above_info(&findings);
    assert_eq!(above.len(), 1, "{above:#?}");
    above[0].clone()
}

/// The finding whose title contains `words`.
fn titled<'a>(findings: &'a [Finding], words: &str) -> &'a Finding {
    findings
        .iter()
        .find(|finding| finding.title.contains(words))
        .unwrap_or_else(|| panic!("no finding titled {words:?}: {findings:#?}"))
}

fn line<'a>(finding: &'a Finding, path: &str) -> &'a crate::checks::EvidenceLine {
    finding
        .evidence
        .iter()
        .find(|line| line.path == path)
        .unwrap_or_else(|| panic!("no evidence line {path}: {:#?}", finding.evidence))
}

/// The same Envoy with every counter back at zero: the config as it runs, nothing observed.
fn without_counts(mut evidence: EnvoyEvidence) -> EnvoyEvidence {
    if let Some(snapshot) = evidence.counters.as_mut() {
        for reading in snapshot.readings.values_mut() {
            reading.value = 0;
        }
    }
    evidence
}

#[test]
fn a_healthy_pair_finds_nothing_above_info_and_no_root_cause() {
    let target = endpoint_target(scenario_pair("healthy"));
    let findings = run_all(&target, &settings());
    assert_well_formed(&findings);
    assert!(above_info(&findings).is_empty(), "{findings:#?}");
    // What it does say: mTLS on the path, with the handshake counted.
    let cold = of(&findings, CheckId::ColdStart);
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0].basis, Basis::Effective);
    assert!(cold[0].title.contains("1 so far"), "{}", cold[0].title);
    assert!(
        evidence_paths(cold[0]).contains(&format!("cluster.{CLUSTER}.ssl.handshake").as_str()),
        "{:?}",
        evidence_paths(cold[0])
    );

    let diagnosis = judged(&target, &settings());
    assert!(diagnosis.root_cause.is_none());
    let statuses: Vec<CheckStatus> = diagnosis.checks.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            CheckStatus::NotApplicable,
            CheckStatus::Passed,
            CheckStatus::Passed,
            CheckStatus::Passed,
            CheckStatus::Found,
            CheckStatus::NotApplicable
        ]
    );
    assert!(
        diagnosis.checks[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("known only through Envoy admin")
    );
    // The parts that need a pod spec are marked as not judged, with the reason.
    assert!(diagnosis.checks[1].not_judged.is_none());
    for check in &diagnosis.checks[2..5] {
        assert!(
            check.not_judged.as_deref().unwrap().contains("pod spec"),
            "{check:?}"
        );
    }
}

#[test]
fn a_route_timeout_that_cut_a_stream_is_critical_runtime_and_the_root_cause() {
    let target = endpoint_target(scenario_pair("route-timeout"));
    let finding = &only_finding_above_info(&target);
    assert_eq!(
        (finding.id, finding.severity, finding.basis),
        (CheckId::StreamTimeout, Severity::Critical, Basis::Runtime)
    );
    // The counter as Envoy wrote it, then the route that explains it.
    let counter = &finding.evidence[0];
    assert_eq!(counter.object.kind, "Envoy");
    assert_eq!(counter.object.name, "route-timeout/client");
    assert_eq!(
        counter.path,
        format!("cluster.{CLUSTER}.upstream_rq_timeout")
    );
    assert_eq!(counter.value, "1");
    assert_eq!(finding.evidence[1].path, ROUTE_TIMEOUT_PATH);
    assert_eq!(finding.evidence[1].value, "1s");
    assert!(
        finding.title.contains("at 1s (route timeout)"),
        "{}",
        finding.title
    );

    // No VirtualService is in the evidence: the fix names the one the route's metadata names,
    // with the host from the cluster name.
    let fix = finding.fix.as_ref().unwrap();
    assert!(
        fix.summary.contains("VirtualService inference/vllm"),
        "{}",
        fix.summary
    );
    let fields: serde_yaml::Value = serde_yaml::from_str(&fix.yaml).unwrap();
    let route = &fields["spec"]["http"][0];
    assert_eq!(route["timeout"], "300s");
    assert_eq!(
        route["route"][0]["destination"]["host"],
        "vllm.inference.svc.cluster.local"
    );

    let diagnosis = judged(&target, &settings());
    let root = diagnosis.root_cause.unwrap();
    assert_eq!(root.id, CheckId::StreamTimeout);
    assert_eq!(root.basis, Basis::Runtime);
    assert_eq!(root.confidence, Confidence::High);
    assert!(
        root.explanation.contains("upstream_rq_timeout = 1"),
        "{}",
        root.explanation
    );
}

#[test]
fn without_route_metadata_the_fix_is_a_new_virtual_service_for_the_cluster_host() {
    let mut client = scenario_envoy("route-timeout", "client");
    for route_config in &mut client.config.route_configs {
        for virtual_host in &mut route_config.virtual_hosts {
            for route in &mut virtual_host.routes {
                route.istio_config = None;
            }
        }
    }
    let target = endpoint_target(vec![client]);
    let findings = super::stream_timeout::check(&target, &settings());
    assert_well_formed(&findings);
    let fix = findings[0].fix.as_ref().unwrap();
    assert!(
        fix.summary
            .contains("No VirtualService is behind this route")
    );
    assert!(
        fix.summary.contains("<namespace>/<gateway>"),
        "a gateway: bind it"
    );
    let created: VirtualService = serde_yaml::from_str(&fix.yaml).unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("inference"));
    assert_eq!(created.spec.hosts, ["vllm.inference.svc.cluster.local"]);
    assert_eq!(created.spec.http[0].timeout.as_deref(), Some("300s"));
}

#[test]
fn trimmed_stats_leave_an_effective_finding_that_says_so_and_brings_them_back() {
    let target = endpoint_target(scenario_pair("route-timeout-trimmed-stats"));
    let finding = &only_finding_above_info(&target);
    // The cut happened, but Istio's default matcher trimmed the counter: configuration only.
    assert_eq!(
        (finding.id, finding.severity, finding.basis),
        (CheckId::StreamTimeout, Severity::Critical, Basis::Effective)
    );
    assert!(
        finding
            .assumptions
            .iter()
            .any(|text| text.contains("trimmed the stats under cluster.outbound|8000||")),
        "{:?}",
        finding.assumptions
    );
    let fix = finding.fix.as_ref().unwrap();
    assert!(fix.summary.contains("proxyStatsMatcher"), "{}", fix.summary);
    let documents: Vec<serde_yaml::Value> = fix
        .yaml
        .split("\n---\n")
        .map(|document| serde_yaml::from_str(document).unwrap())
        .collect();
    assert_eq!(documents.len(), 2, "{}", fix.yaml);
    let annotation = documents[1]["metadata"]["annotations"]["proxy.istio.io/config"]
        .as_str()
        .unwrap();
    let proxy_config: serde_yaml::Value = serde_yaml::from_str(annotation).unwrap();
    let prefixes = &proxy_config["proxyStatsMatcher"]["inclusionPrefixes"];
    assert_eq!(prefixes[0], format!("cluster.{CLUSTER}").as_str());
    assert_eq!(prefixes[1], "http.outbound_0.0.0.0_8000");

    // The verdict shows the trimming as a gap too, and still trusts the running config.
    let diagnosis = judged(&target, &settings());
    assert!(
        diagnosis.gaps.iter().any(|gap| gap
            .reason
            .contains("trimmed by Istio's default stats matcher")),
        "{:?}",
        diagnosis.gaps
    );
    let root = diagnosis.root_cause.unwrap();
    assert_eq!(
        (root.basis, root.confidence),
        (Basis::Effective, Confidence::High)
    );
}

#[test]
fn a_stream_idle_timeout_is_a_warning_until_its_counter_moves() {
    let fired = endpoint_target(scenario_pair("stream-idle-timeout"));
    let findings = of(&run_all(&fired, &settings()), CheckId::StreamTimeout)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let finding = &findings[0];
    assert_eq!(
        (finding.severity, finding.basis),
        (Severity::Critical, Basis::Runtime)
    );
    assert_eq!(
        finding.evidence[0].object.name,
        "stream-idle-timeout/server"
    );
    assert_eq!(
        finding.evidence[0].path,
        "http.inbound_0.0.0.0_8000.downstream_rq_idle_timeout"
    );
    let idle = line(
        finding,
        "listener virtualInbound/http_connection_manager[inbound_0.0.0.0_8000]/stream_idle_timeout",
    );
    assert_eq!(idle.value, "1s");
    // The fix: an EnvoyFilter on the vLLM pods' inbound side.
    let fix: serde_yaml::Value = serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
    assert_eq!(fix["kind"], "EnvoyFilter");
    let patch = &fix["spec"]["configPatches"][0];
    assert_eq!(patch["match"]["context"], "SIDECAR_INBOUND");
    assert_eq!(
        patch["patch"]["value"]["typed_config"]["stream_idle_timeout"],
        "300s"
    );

    // The same config with nothing counted: it only bites on pauses.
    let quiet = endpoint_target(
        scenario_pair("stream-idle-timeout")
            .into_iter()
            .map(without_counts)
            .collect(),
    );
    let findings = super::stream_timeout::check(&quiet, &settings());
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].severity, findings[0].basis),
        (Severity::Warning, Basis::Effective)
    );
    assert!(
        findings[0].title.contains("it bites on pauses"),
        "{}",
        findings[0].title
    );
}

#[test]
fn circuit_breaker_overflow_is_critical_runtime_with_the_delimited_stat_names() {
    let target = endpoint_target(scenario_pair("circuit-breaker"));
    let finding = &only_finding_above_info(&target);
    assert_eq!(
        (finding.id, finding.severity, finding.basis),
        (CheckId::ConnectionPool, Severity::Critical, Basis::Runtime)
    );
    // Istio >= 1.23 names, as Envoy wrote them.
    let overflow = line(
        finding,
        &format!("cluster.{CLUSTER};.upstream_rq_pending_overflow"),
    );
    assert_eq!(overflow.value, "1");
    let breaker = line(
        finding,
        &format!("cluster {CLUSTER}/circuit_breakers/thresholds[0]/max_connections"),
    );
    assert_eq!(breaker.value, "1");
    assert!(
        finding
            .assumptions
            .iter()
            .any(|text| text.contains("assumed vLLM's default 256"))
    );
    // The rule named by the cluster's metadata gets a merge patch raising the limits.
    let fix = finding.fix.as_ref().unwrap();
    assert!(
        fix.summary
            .contains("kubectl patch destinationrule vllm -n inference --type merge"),
        "{}",
        fix.summary
    );
    let patch: serde_yaml::Value = serde_yaml::from_str(&fix.yaml).unwrap();
    let pool = &patch["spec"]["trafficPolicy"]["connectionPool"];
    assert_eq!(pool["tcp"]["maxConnections"], 384);
    assert_eq!(pool["http"]["http1MaxPendingRequests"], 384);

    let root = judged(&target, &settings()).root_cause.unwrap();
    assert_eq!(
        (root.id, root.confidence),
        (CheckId::ConnectionPool, Confidence::High)
    );
}

#[test]
fn a_uo_response_flag_alone_makes_the_pool_finding_runtime() {
    // The healthy pair's real stats plus the line Istio's stats plugin writes for requests a
    // circuit breaker rejected (raw Envoy has no such plugin).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/envoy/scenarios/healthy");
    let dump = std::fs::read_to_string(dir.join("client.config_dump.json")).unwrap();
    let mut stats = std::fs::read_to_string(dir.join("client.stats.txt")).unwrap();
    stats.push_str(
        "reporter=.=source;.;response_code=.=503;.;response_flags=.=UO;.;istio_requests_total: 4\n",
    );
    let client = EnvoyEvidence::from_saved(
        "pod/gateway",
        "vllm.inference.svc.cluster.local",
        8000,
        &dump,
        Some(&stats),
    )
    .unwrap();
    let findings = super::connection_pool::check(&endpoint_target(vec![client]), &settings());
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].severity, findings[0].basis),
        (Severity::Critical, Basis::Runtime)
    );
    assert_eq!(
        findings[0].evidence[0].path,
        "istio_requests_total{response_code=\"503\",response_flags=\"UO\"}"
    );
    assert_eq!(findings[0].evidence[0].value, "4");
    assert!(
        findings[0]
            .title
            .contains("no threshold on the path explains it now"),
        "Istio's thresholds are unlimited: {}",
        findings[0].title
    );
}

#[test]
fn buffering_filters_over_their_limit_are_critical_runtime() {
    let target = endpoint_target(scenario_pair("buffer-filter"));
    let finding = &only_finding_above_info(&target);
    assert_eq!(
        (finding.id, finding.severity, finding.basis),
        (CheckId::BufferLimit, Severity::Critical, Basis::Runtime)
    );
    assert_eq!(
        line(finding, "http.outbound_0.0.0.0_8000.rs_too_large").value,
        "1"
    );
    assert_eq!(
        line(
            finding,
            "http.outbound_0.0.0.0_8000.downstream_rq_too_large"
        )
        .value,
        "1"
    );
    let filter = line(
        finding,
        "listener 0.0.0.0_8000/http_connection_manager[outbound_0.0.0.0_8000]/http_filters[envoy.filters.http.buffer]/max_request_bytes",
    );
    assert_eq!(filter.value, "2048");
    // Without a pod spec the largest body is unknown, and the finding says so.
    assert!(
        finding
            .assumptions
            .iter()
            .any(|text| text.contains("max-model-len unknown")),
        "{:?}",
        finding.assumptions
    );
    let fix: serde_yaml::Value = serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
    assert_eq!(fix["kind"], "EnvoyFilter");
    assert_eq!(
        fix["spec"]["configPatches"][0]["match"]["context"],
        "GATEWAY"
    );

    // With a pod spec (max-model-len 32768: ~128 KiB) and nothing counted: warnings from config.
    let quiet = lab_target(
        scenario_pair("buffer-filter")
            .into_iter()
            .map(without_counts)
            .collect(),
    );
    let findings = super::buffer_limit::check(&quiet, &settings());
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].severity, findings[0].basis),
        (Severity::Warning, Basis::Effective)
    );
    assert!(
        findings[0].title.contains("up to 2Ki"),
        "{}",
        findings[0].title
    );
    assert!(
        evidence_paths(&findings[0])
            .contains(&"listener 0.0.0.0_8000/per_connection_buffer_limit_bytes"),
        "{:?}",
        evidence_paths(&findings[0])
    );
}

#[test]
fn the_edge_gateway_profile_is_named_from_config() {
    let target = endpoint_target(scenario_pair("edge-gateway-profile"));
    let finding = &only_finding_above_info(&target);
    assert_eq!(
        (finding.id, finding.severity, finding.basis),
        (CheckId::StreamTimeout, Severity::Warning, Basis::Effective)
    );
    assert!(
        finding.title.contains("EDGE connection profile"),
        "{}",
        finding.title
    );
    let values: Vec<(&str, &str)> = finding
        .evidence
        .iter()
        .map(|line| (line.path.as_str(), line.value.as_str()))
        .collect();
    assert!(values.contains(&(
        "listener 0.0.0.0_8000/http_connection_manager[outbound_0.0.0.0_8000]/request_timeout",
        "300s"
    )));
    assert!(values.contains(&(
        "listener 0.0.0.0_8000/http_connection_manager[outbound_0.0.0.0_8000]/stream_idle_timeout",
        "300s"
    )));
    assert!(values.contains(&(
        "listener 0.0.0.0_8000/per_connection_buffer_limit_bytes",
        "32768"
    )));
    let fix = finding.fix.as_ref().unwrap();
    let patch: serde_yaml::Value = serde_yaml::from_str(&fix.yaml).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(
        patch["metadata"]["annotations"]["proxy.istio.io/config"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config["connectionSettings"]["profile"], "EDGE");
    assert_eq!(
        config["connectionSettings"]["httpStreamIdleTimeout"],
        "600s"
    );
    let root = judged(&target, &settings()).root_cause.unwrap();
    assert_eq!(
        (root.id, root.confidence),
        (CheckId::StreamTimeout, Confidence::Medium)
    );

    // Generations up to 2m never wait 5m in silence: the profile is still named, as info.
    let short = Settings {
        expected_generation: Duration::from_secs(120),
    };
    let findings = super::stream_timeout::check(&target, &short);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Info);
    assert!(findings[0].title.contains("EDGE"));
}

// ---- YAML against the running proxy ----

fn virtual_service(name: &str, timeout: &str, gateways: &str) -> VirtualService {
    object(&format!(
        r#"
apiVersion: networking.istio.io/v1
metadata: {{name: {name}, namespace: inference}}
spec:
  hosts: [vllm.inference.svc.cluster.local]
  gateways: {gateways}
  http:
  - route: [{{destination: {{host: vllm, port: {{number: 8000}}}}}}]
    timeout: {timeout}
"#
    ))
}

#[test]
fn a_virtual_service_that_the_proxy_does_not_run_is_a_disagreement() {
    // The gateway's route is VirtualService inference/vllm's, but runs 1s where it says 300s.
    let mut target = lab_target(scenario_pair("route-timeout"));
    target
        .mesh
        .virtual_services
        .push(virtual_service("vllm", "300s", "[mesh]"));
    let findings = super::stream_timeout::check(&target, &settings());
    assert_well_formed(&findings);
    let disagreement = titled(&findings, " says 300s");
    assert_eq!(
        disagreement.title,
        "VirtualService inference/vllm says 300s, the route in gateway Envoy route-timeout/client has 1s: the proxy has \
         not received the change (see `istioctl proxy-status`) or an EnvoyFilter patches the route"
    );
    assert_eq!(
        (disagreement.severity, disagreement.basis),
        (Severity::Warning, Basis::Effective)
    );
    assert_eq!(
        evidence_paths(disagreement),
        ["spec/http[0]/timeout", ROUTE_TIMEOUT_PATH]
    );
    // The runtime finding still leads, and its fix says the YAML is already right.
    let runtime = findings
        .iter()
        .find(|finding| finding.basis == Basis::Runtime)
        .unwrap();
    assert!(
        runtime
            .fix
            .as_ref()
            .unwrap()
            .summary
            .contains("istioctl proxy-status"),
        "{:?}",
        runtime.fix
    );

    // Another VirtualService bound to another gateway: not bound to the one that was read.
    let mut target = lab_target(scenario_pair("route-timeout"));
    target.mesh.virtual_services.push(virtual_service(
        "vllm-public",
        "300s",
        "[istio-system/public-gateway]",
    ));
    let findings = super::stream_timeout::check(&target, &settings());
    let disagreement = titled(&findings, " says 300s");
    assert!(
        disagreement.title.contains(
            "the route comes from VirtualService inference/vllm: the VirtualService is not bound to that gateway \
             (its gateways: istio-system/public-gateway)"
        ),
        "{}",
        disagreement.title
    );
}

#[test]
fn a_virtual_service_the_proxy_runs_is_judged_once_with_the_yaml_fix() {
    let mut target = lab_target(scenario_pair("route-timeout"));
    target
        .mesh
        .virtual_services
        .push(virtual_service("vllm", "1s", "[mesh]"));
    let findings = super::stream_timeout::check(&target, &settings());
    assert_well_formed(&findings);
    assert_eq!(
        findings.len(),
        1,
        "agreement: no disagreement, no YAML-only finding: {findings:#?}"
    );
    let finding = &findings[0];
    assert_eq!(finding.basis, Basis::Runtime);
    let written = line(finding, "spec/http[0]/timeout");
    assert_eq!(written.object.kind, "VirtualService");
    assert!(
        written
            .note
            .as_deref()
            .unwrap()
            .ends_with("the proxy runs it")
    );
    // The fix is the whole VirtualService, corrected.
    let fixed: VirtualService = serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
    assert_eq!(fixed.metadata.name.as_deref(), Some("vllm"));
    assert_eq!(fixed.spec.http[0].timeout.as_deref(), Some("300s"));
}

fn destination_rule(max_connections: u32, pending: u32) -> DestinationRule {
    object(&format!(
        r#"
metadata: {{name: vllm, namespace: inference}}
spec:
  host: vllm.inference.svc.cluster.local
  trafficPolicy:
    connectionPool:
      tcp: {{maxConnections: {max_connections}}}
      http: {{http1MaxPendingRequests: {pending}}}
"#
    ))
}

#[test]
fn destination_rule_limits_are_compared_with_the_cluster_the_proxy_runs() {
    // The rule allows 1000 connections; the cluster that names it runs 1.
    let mut target = lab_target(scenario_pair("circuit-breaker"));
    target
        .mesh
        .destination_rules
        .push(destination_rule(1000, 1000));
    let findings = super::connection_pool::check(&target, &settings());
    assert_well_formed(&findings);
    let disagreement = titled(&findings, "disagree on connection limits");
    assert_eq!(disagreement.severity, Severity::Warning);
    assert!(
        disagreement.title.contains("the cluster names this rule"),
        "{}",
        disagreement.title
    );
    assert_eq!(
        evidence_paths(disagreement),
        [
            "spec/trafficPolicy/connectionPool/tcp/maxConnections",
            &format!("cluster {CLUSTER}/circuit_breakers/thresholds[0]/max_connections"),
            "spec/trafficPolicy/connectionPool/http/http1MaxPendingRequests",
            &format!("cluster {CLUSTER}/circuit_breakers/thresholds[0]/max_pending_requests"),
        ]
    );

    // A rule that says what the proxy runs: one finding, runtime, with the rule's lines and fix.
    let mut target = lab_target(scenario_pair("circuit-breaker"));
    target.mesh.destination_rules.push(destination_rule(1, 1));
    let findings = super::connection_pool::check(&target, &settings());
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].basis, Basis::Runtime);
    assert!(
        evidence_paths(&findings[0])
            .contains(&"spec/trafficPolicy/connectionPool/tcp/maxConnections")
    );
    let fixed: DestinationRule =
        serde_yaml::from_str(&findings[0].fix.as_ref().unwrap().yaml).unwrap();
    let pool = fixed.spec.traffic_policy.unwrap().connection_pool.unwrap();
    assert_eq!(
        pool.tcp.unwrap().max_connections,
        Some(384),
        "2 × 128 × 1.5"
    );
}

#[test]
fn an_envoy_filter_whose_filter_the_proxy_does_not_run_is_a_disagreement() {
    let filter = r#"
apiVersion: networking.istio.io/v1alpha3
metadata: {name: request-buffer, namespace: inference}
spec:
  workloadSelector: {labels: {app: vllm}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        portNumber: 8000
        filterChain: {filter: {name: envoy.filters.network.http_connection_manager, subFilter: {name: envoy.filters.http.router}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.buffer
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
          max_request_bytes: 65536
"#;
    // Without proxies the YAML is judged as written.
    let mut yaml_only = lab_target(Vec::new());
    yaml_only.mesh.envoy_filters.push(object(filter));
    let findings = super::buffer_limit::check(&yaml_only, &settings());
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].severity, findings[0].basis),
        (Severity::Warning, Basis::Static)
    );

    // The vLLM pod's sidecar was read and runs no buffer filter: what runs wins.
    let mut target = lab_target(scenario_pair("healthy"));
    target.mesh.envoy_filters.push(object(filter));
    let findings = super::buffer_limit::check(&target, &settings());
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].severity, findings[0].basis),
        (Severity::Info, Basis::Effective)
    );
    assert!(
        findings[0]
            .title
            .contains("runs none on the path: the patch does not match"),
        "{}",
        findings[0].title
    );
    assert!(
        findings[0]
            .title
            .contains("vLLM's sidecar Envoy healthy/server")
    );
}

#[test]
fn with_a_pod_spec_the_sidecar_checks_still_run_and_mtls_comes_from_the_proxies() {
    // A Deployment whose pod spec is known, read together with its Envoys.
    let target = lab_target(scenario_pair("healthy"));
    let findings = run_all(&target, &settings());
    assert_well_formed(&findings);
    assert!(!of(&findings, CheckId::SidecarOverhead).is_empty());
    let cold = of(&findings, CheckId::ColdStart);
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0].basis, Basis::Effective);
    assert!(
        cold[0].title.contains("mTLS STRICT (seen on the proxies)"),
        "{}",
        cold[0].title
    );
    assert!(
        cold[0]
            .assumptions
            .iter()
            .all(|text| !text.contains("no PeerAuthentication applies")),
        "the proxies replace the guess: {:?}",
        cold[0].assumptions
    );
    assert!(
        evidence_paths(cold[0])
            .contains(&"listener virtualInbound/filter_chains[0.0.0.0_8000]/transport_socket"),
        "{:?}",
        evidence_paths(cold[0])
    );
}

#[test]
fn fields_absent_from_the_dump_are_judged_at_envoys_named_defaults() {
    // A raw Envoy (not istiod's): the route has no timeout, the cluster no circuit breakers.
    let dump = r#"{"configs":[
      {"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
       "static_clusters":[{"cluster":{"name":"outbound|8000||vllm.inference.svc.cluster.local","type":"STATIC"}}]},
      {"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
       "static_route_configs":[{"route_config":{"name":"local","virtual_hosts":[{"name":"vllm","domains":["*"],
         "routes":[{"match":{"prefix":"/"},"route":{"cluster":"outbound|8000||vllm.inference.svc.cluster.local"}}]}]}}]}
    ]}"#;
    let envoy = EnvoyEvidence::from_saved(
        "http://127.0.0.1:9901",
        "vllm.inference.svc.cluster.local",
        8000,
        dump,
        None,
    )
    .unwrap();
    let mut target = endpoint_target(vec![envoy]);
    let findings = super::stream_timeout::check(&target, &settings());
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].severity, findings[0].basis),
        (Severity::Critical, Basis::Effective)
    );
    let timeout = &findings[0].evidence[0];
    assert_eq!(
        timeout.value,
        "15s (not in the dump: Envoy's default for RouteAction.timeout)"
    );
    assert!(
        timeout
            .note
            .as_deref()
            .unwrap()
            .contains("raw Envoy's default is 15s")
    );
    // No /stats were read: the finding says it cannot tell whether streams were already cut.
    assert!(
        findings[0]
            .assumptions
            .iter()
            .any(|text| text.contains("were not read")),
        "{:?}",
        findings[0].assumptions
    );

    // Envoy's default 1024 connections is below 8 replicas × 256 sequences.
    target.workload.replicas = 8;
    let findings = super::connection_pool::check(&target, &settings());
    assert_well_formed(&findings);
    let pool = findings
        .iter()
        .find(|finding| finding.basis == Basis::Effective)
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(pool.severity, Severity::Warning);
    assert_eq!(
        line(
            pool,
            "cluster outbound|8000||vllm.inference.svc.cluster.local/circuit_breakers/thresholds[0]/max_connections"
        )
        .value,
        "1024 (not in the dump: Envoy's default for CircuitBreakers.Thresholds.max_connections)"
    );
    // No rule is named by the cluster: the fix is a new DestinationRule for the cluster's host.
    let created: DestinationRule = serde_yaml::from_str(&pool.fix.as_ref().unwrap().yaml).unwrap();
    assert_eq!(created.spec.host, "vllm.inference.svc.cluster.local");
}

const IDLE_FILTER: &str = r#"
apiVersion: networking.istio.io/v1alpha3
metadata: {name: idle, namespace: inference}
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
          stream_idle_timeout: IDLE
"#;

#[test]
fn an_envoy_filter_timeout_the_sidecar_runs_joins_its_finding_with_the_real_fix() {
    let mut target = lab_target(scenario_pair("stream-idle-timeout"));
    target
        .mesh
        .envoy_filters
        .push(object(&IDLE_FILTER.replace("IDLE", "1s")));
    let findings = super::stream_timeout::check(&target, &settings());
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let finding = &findings[0];
    assert_eq!(finding.basis, Basis::Runtime);
    let written = line(
        finding,
        "spec/configPatches[0]/patch/value/typed_config/stream_idle_timeout",
    );
    assert_eq!(written.object.kind, "EnvoyFilter");
    // The fix edits the EnvoyFilter that sets it, not a new one.
    let fixed: crate::evidence::objects::EnvoyFilter =
        serde_yaml::from_str(&finding.fix.as_ref().unwrap().yaml).unwrap();
    assert_eq!(fixed.metadata.name.as_deref(), Some("idle"));

    // The sidecar read runs no such timeout: the filter does not reach it.
    let mut target = lab_target(scenario_pair("healthy"));
    target
        .mesh
        .envoy_filters
        .push(object(&IDLE_FILTER.replace("IDLE", "30s")));
    let findings = super::stream_timeout::check(&target, &settings());
    assert_well_formed(&findings);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(
        (findings[0].severity, findings[0].basis),
        (Severity::Info, Basis::Effective)
    );
    assert!(
        findings[0]
            .title
            .starts_with("EnvoyFilter inference/idle sets timeouts that vLLM's sidecar Envoy healthy/server does not run"),
        "{}",
        findings[0].title
    );
}
