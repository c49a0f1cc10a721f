//! The bundled `examples/` make their own failure mode the top finding, and `healthy` has nothing
//! above info, through the real pipeline: manifest loader, resolution, gather, checks.

use super::{CheckId, Finding, Settings, Severity, run_all};
use crate::evidence::TargetEvidence;
use crate::evidence::resolve::{Scope, gather};
use std::path::Path;
use std::time::Duration;

fn assemble(folder: &str) -> TargetEvidence {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(folder);
    let inventory = crate::sources::manifest::load(&[dir], "default").unwrap();
    let scope = Scope {
        namespace: None,
        all_namespaces: false,
        selector: None,
        target: None,
    };
    let mut evidence = gather(&inventory, &scope, Duration::from_secs(300), Vec::new()).unwrap();
    assert_eq!(
        evidence.targets.len(),
        1,
        "{folder}: one inference workload"
    );
    evidence.targets.remove(0)
}

fn findings(folder: &str) -> Vec<Finding> {
    let settings = Settings {
        expected_generation: Duration::from_secs(300),
    };
    let findings = run_all(&assemble(folder), &settings);
    super::test_support::assert_well_formed(&findings);
    findings
}

trait PathText {
    fn to_string_path(&self) -> String;
}

impl PathText for super::EvidenceLine {
    fn to_string_path(&self) -> String {
        format!("{} {} = {}", self.object, self.path, self.value)
    }
}

/// The failure mode is the only one at the highest severity, and that severity is above info.
fn assert_top(folder: &str, expected: CheckId, severity: Severity) {
    let findings = findings(folder);
    let top = findings.iter().map(|finding| finding.severity).max();
    assert_eq!(top, Some(severity), "{folder}: {findings:#?}");
    let at_top: Vec<CheckId> = findings
        .iter()
        .filter(|finding| finding.severity == severity)
        .map(|finding| finding.id)
        .collect();
    assert!(
        at_top.iter().all(|id| *id == expected),
        "{folder}: {at_top:?} at {severity}: {findings:#?}"
    );
}

#[test]
fn sidecar_overhead_example() {
    assert_top(
        "sidecar-overhead",
        CheckId::SidecarOverhead,
        Severity::Warning,
    );
}

#[test]
fn stream_timeout_example() {
    assert_top("stream-timeout", CheckId::StreamTimeout, Severity::Critical);
}

#[test]
fn envoy_gateway_timeout_example() {
    assert_top("envoy-gateway", CheckId::StreamTimeout, Severity::Critical);
    let findings = findings("envoy-gateway");
    let top = findings
        .iter()
        .find(|finding| finding.severity == Severity::Critical)
        .unwrap();
    assert_eq!(
        top.title,
        "HTTPRoute llm-envoy-gateway/llama-3-8b cuts generations at 15s (route timeout); up to 300s expected"
    );
    assert!(
        top.evidence[0]
            .value
            .contains("Envoy's default route timeout 15s"),
        "{:?}",
        top.evidence[0]
    );
    assert!(
        top.fix.as_ref().unwrap().yaml.contains("request: 300s"),
        "{top:#?}"
    );
}

#[test]
fn gateway_api_timeout_example() {
    assert_top(
        "gateway-api-timeout",
        CheckId::StreamTimeout,
        Severity::Critical,
    );
    let findings = findings("gateway-api-timeout");
    let top = findings
        .iter()
        .find(|finding| finding.severity == Severity::Critical)
        .unwrap();
    assert_eq!(
        top.title,
        "HTTPRoute llm-gateway-api-timeout/llama-3-8b cuts generations at 60s (route timeout); up to 300s expected"
    );
    let line = &top.evidence[0];
    assert_eq!(
        (
            line.object.kind.as_str(),
            line.path.as_str(),
            line.value.as_str()
        ),
        ("HTTPRoute", "spec/rules[0]/timeouts/request", "60s")
    );
    let yaml = &top.fix.as_ref().unwrap().yaml;
    let fixed: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(fixed["kind"], "HTTPRoute");
    assert_eq!(fixed["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(fixed["spec"]["rules"][0]["timeouts"]["request"], "300s");
    // The rest of the route is re-emitted whole.
    assert_eq!(fixed["spec"]["parentRefs"][0]["name"], "inference-gateway");
    assert_eq!(
        fixed["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/v1/"
    );
}

#[test]
fn inference_pool_example() {
    assert_top(
        "inference-pool",
        CheckId::EndpointPicker,
        Severity::Critical,
    );
    let findings = findings("inference-pool");
    let top = findings
        .iter()
        .find(|finding| finding.severity == Severity::Critical)
        .unwrap();
    assert_eq!(
        top.title,
        "InferencePool llm-inference-pool/llama-3-8b serves deploy/llama-3-8b but its endpoint picker llama-3-8b-epp \
         is scaled to zero: every request through the gateway fails"
    );
    assert_eq!(
        top.evidence[0].to_string_path(),
        "Deployment llm-inference-pool/llama-3-8b-epp spec/replicas = 0"
    );
    assert_eq!(
        top.evidence[1].value,
        "FailClose (not set: the API's default)"
    );
    let fixed: serde_yaml::Value = serde_yaml::from_str(&top.fix.as_ref().unwrap().yaml).unwrap();
    assert_eq!(fixed["kind"], "InferencePool");
    assert_eq!(
        fixed["spec"]["endpointPickerRef"]["failureMode"],
        "FailOpen"
    );
    assert_eq!(
        fixed["spec"]["selector"]["matchLabels"]["app"],
        "llama-3-8b"
    );
}

#[test]
fn connection_pool_example() {
    assert_top(
        "connection-pool",
        CheckId::ConnectionPool,
        Severity::Critical,
    );
}

#[test]
fn buffer_limit_example() {
    assert_top("buffer-limit", CheckId::BufferLimit, Severity::Warning);
}

#[test]
fn cold_start_example() {
    assert_top("cold-start", CheckId::ColdStart, Severity::Warning);
}

#[test]
fn healthy_example_has_nothing_above_info() {
    let findings = findings("healthy");
    assert!(
        findings
            .iter()
            .all(|finding| finding.severity == Severity::Info),
        "{findings:#?}"
    );
}

#[test]
fn ambient_waypoint_example_judges_what_the_waypoint_runs() {
    assert_top(
        "ambient-waypoint",
        CheckId::StreamTimeout,
        Severity::Critical,
    );
    let target = assemble("ambient-waypoint");
    let ambient = target.mesh.ambient.as_ref().unwrap();
    assert_eq!(
        ambient.waypoint.as_ref().unwrap().display_name(),
        "llm-ambient-waypoint/waypoint"
    );
    let findings = findings("ambient-waypoint");
    let top = findings
        .iter()
        .find(|finding| finding.severity == Severity::Critical)
        .unwrap();
    assert_eq!(
        top.title,
        "HTTPRoute llm-ambient-waypoint/llama-3-8b cuts generations at 60s (route timeout); up to 300s expected"
    );
    assert_eq!(
        top.evidence[0].to_string_path(),
        "HTTPRoute llm-ambient-waypoint/llama-3-8b spec/rules[0]/timeouts/request = 60s"
    );
    // No sidecar finding: the GPU pods carry none, said as an info.
    let overhead: Vec<&Finding> = findings
        .iter()
        .filter(|finding| finding.id == CheckId::SidecarOverhead)
        .collect();
    assert_eq!(overhead.len(), 1, "{overhead:#?}");
    assert_eq!(overhead[0].severity, Severity::Info);
    assert!(overhead[0].title.contains("are ambient: no sidecar"));
    // The waypoint runs the DestinationRule: judged (well sized), not set aside.
    assert!(ambient.no_effect.is_empty(), "{:?}", ambient.no_effect);
    assert_eq!(target.mesh.destination_rules.len(), 1);
    // The ingress gateway goes past the waypoint (no istio.io/ingress-use-waypoint): said.
    let past: Vec<&Finding> = findings
        .iter()
        .filter(|finding| finding.title.contains("past waypoint"))
        .collect();
    assert_eq!(past.len(), 1, "{findings:#?}");
    assert_eq!(past[0].severity, Severity::Info);
    assert!(
        past[0]
            .title
            .starts_with("Gateway llm-ambient-waypoint/public sends straight to"),
        "{}",
        past[0].title
    );
}

#[test]
fn ambient_healthy_example_has_nothing_above_info_and_no_sidecar_finding() {
    let target = assemble("ambient-healthy");
    let ambient = target.mesh.ambient.as_ref().unwrap();
    assert!(ambient.waypoint.is_none());
    let findings = findings("ambient-healthy");
    assert!(
        findings
            .iter()
            .all(|finding| finding.severity == Severity::Info),
        "{findings:#?}"
    );
    assert!(
        findings
            .iter()
            .filter(|finding| finding.id == CheckId::SidecarOverhead)
            .all(|finding| !finding.title.contains("istio-proxy")),
        "{findings:#?}"
    );
}

/// Prints every example's findings: `cargo test --lib examples_test::show -- --ignored --nocapture`.
#[test]
#[ignore]
fn show() {
    for folder in [
        "sidecar-overhead",
        "stream-timeout",
        "gateway-api-timeout",
        "envoy-gateway",
        "inference-pool",
        "connection-pool",
        "buffer-limit",
        "cold-start",
        "healthy",
        "ambient-waypoint",
        "ambient-healthy",
    ] {
        println!("===== {folder}");
        for finding in findings(folder) {
            println!("{}", serde_yaml::to_string(&finding).unwrap());
        }
    }
}
