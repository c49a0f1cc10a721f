//! What ambient mode changes in the checks (resolution, `evidence::resolve::ambient`, already took
//! out of the judged lists what no proxy runs):
//!
//! - checks 2 and 3 say which policy has **no effect** (`MeshContext::ambient.no_effect`): a
//!   DestinationRule's `connectionPool` or `outlierDetection` that runs nowhere is a **warning**
//!   (the circuit breaker or ejection the rule asks for is not there); a VirtualService or HTTPRoute
//!   timeout or retry, a mesh binding, or a Sidecar resource is **info** (nothing cuts or repeats
//!   the stream, so nothing breaks, but the object misleads whoever reads it). The fix deploys a
//!   waypoint and names it on the Service.
//! - check 1 has no sidecar to judge: **info** on what ztunnel reserves on each GPU node and on
//!   waypoint pods scheduled on GPU nodes.

use super::{Basis, CheckId, EvidenceLine, Finding, Severity};
use crate::evidence::ambient::{
    AmbientContext, INGRESS_USE_WAYPOINT, NoEffect, USE_WAYPOINT, WAYPOINT_CLASS, ZtunnelNode,
};
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::units::quantity::{cpu_millis, display_cpu};

/// The no-effect findings of `check` for the target: one per object.
pub fn no_effect(target: &TargetEvidence, check: CheckId) -> Vec<Finding> {
    let Some(ambient) = target.mesh.ambient.as_ref() else {
        return Vec::new();
    };
    let mut objects: Vec<&ObjectRef> = Vec::new();
    for entry in ambient
        .no_effect
        .iter()
        .filter(|entry| entry.check == check)
    {
        if !objects.contains(&&entry.object) {
            objects.push(&entry.object);
        }
    }
    objects
        .into_iter()
        .map(|object| {
            let entries: Vec<&NoEffect> = ambient
                .no_effect
                .iter()
                .filter(|entry| entry.check == check && &entry.object == object)
                .collect();
            finding(target, ambient, object, &entries, check)
        })
        .collect()
}

fn finding(
    target: &TargetEvidence,
    ambient: &AmbientContext,
    object: &ObjectRef,
    entries: &[&NoEffect],
    check: CheckId,
) -> Finding {
    let protection_lost = object.kind == "DestinationRule"
        && entries.iter().any(|entry| {
            entry.path.ends_with("/connectionPool") || entry.path.ends_with("/outlierDetection")
        });
    let fields: Vec<String> = entries
        .iter()
        .map(|entry| {
            entry
                .path
                .rsplit('/')
                .next()
                .unwrap_or(&entry.path)
                .to_string()
        })
        .fold(Vec::new(), |mut all, field| {
            if !all.contains(&field) {
                all.push(field);
            }
            all
        });
    let (severity, title) = if protection_lost {
        (
            Severity::Warning,
            format!(
                "{object}: {} has no effect for {} in ambient mode: no proxy on the path runs it ({})",
                fields.join(" and "),
                target.workload.target_name(),
                waypoint_words(ambient)
            ),
        )
    } else if object.kind == "Sidecar" {
        (
            Severity::Info,
            format!(
                "{object} has no effect on {}: ambient pods have no sidecar",
                target.workload.target_name()
            ),
        )
    } else {
        (
            Severity::Info,
            format!(
                "{object}: {} has no effect for {} in ambient mode ({})",
                fields.join(" and "),
                target.workload.target_name(),
                waypoint_words(ambient)
            ),
        )
    };
    let mut finding = Finding::new(check, severity, Basis::Static, title);
    for entry in entries {
        finding = finding.evidence(
            EvidenceLine::new(
                entry.object.clone(),
                entry.path.clone(),
                entry.value.clone(),
            )
            .with_note(format!("no effect: {}", entry.reason)),
        );
    }
    finding = finding.evidence(
        EvidenceLine::new(
            target.workload.object_ref(),
            "data plane",
            "ambient (ztunnel, L4 only)",
        )
        .with_note(ambient.waypoint_reason.clone()),
    );
    if object.kind == "Sidecar" {
        return finding.fix(
            "Delete the Sidecar resource, or leave it: nothing reads it for ambient pods.",
            "",
        );
    }
    match waypoint_fix(target) {
        Some((summary, yaml)) => finding.fix(summary, yaml),
        None => finding,
    }
}

fn waypoint_words(ambient: &AmbientContext) -> String {
    match &ambient.waypoint {
        Some(waypoint) => format!("waypoint {}", waypoint.display_name()),
        None => "no waypoint; ztunnel runs L4 only".to_string(),
    }
}

/// A waypoint for the target's namespace, and the label that sends the Service's traffic through
/// it (istio.io/latest/docs/ambient/usage/waypoint).
fn waypoint_fix(target: &TargetEvidence) -> Option<(String, String)> {
    let namespace = &target.workload.namespace;
    let service = target.mesh.services.first()?;
    let yaml = format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: waypoint\n  namespace: {namespace}\n  labels:\n    istio.io/waypoint-for: service\nspec:\n  gatewayClassName: istio-waypoint\n  listeners:\n  - name: mesh\n    port: 15008\n    protocol: HBONE\n"
    );
    Some((
        format!(
            "To have the policy run, deploy a waypoint (`kubectl apply -f fix.yaml`) and send the Service's traffic \
             through it: `kubectl label service {} -n {namespace} {USE_WAYPOINT}=waypoint`. Its limits and timeouts \
             are then judged in the waypoint; otherwise delete the settings that have no effect.",
            service.name
        ),
        yaml,
    ))
}

/// Check 2 in ambient mode: a gateway in front that sends over HBONE straight to the pods, past
/// the waypoint (no `istio.io/ingress-use-waypoint=true` on the Service or namespace), so the
/// waypoint's timeouts, retries and limits apply to in-mesh callers only (info).
pub fn ingress_past_waypoint(target: &TargetEvidence) -> Option<Finding> {
    let ambient = target.mesh.ambient.as_ref()?;
    let waypoint = ambient.waypoint.as_ref()?;
    if waypoint.ingress_uses_it.is_some() {
        return None;
    }
    let gateways: Vec<ObjectRef> = target
        .mesh
        .gateways
        .iter()
        .map(|gateway| ObjectRef::of("Gateway", &gateway.metadata))
        .chain(
            target
                .mesh
                .kube_gateways
                .iter()
                .filter(|gateway| gateway.spec.gateway_class_name != WAYPOINT_CLASS)
                .map(|gateway| ObjectRef::of("Gateway", &gateway.metadata)),
        )
        .collect();
    let first = gateways.first()?;
    let service = target.mesh.services.first()?;
    let namespace = &service.namespace;
    let mut finding = Finding::new(
        CheckId::StreamTimeout,
        Severity::Info,
        Basis::Static,
        format!(
            "{first} sends straight to {}, past waypoint {}: the waypoint's timeouts, retries and limits apply to in-mesh callers only",
            target.workload.target_name(),
            waypoint.display_name()
        ),
    )
    .evidence(
        EvidenceLine::new(
            ObjectRef::new("Service", Some(namespace), &service.name),
            format!("metadata/labels/{INGRESS_USE_WAYPOINT}"),
            "<unset>",
        )
        .with_note("without it (on the Service or its namespace) ingress gateways skip the waypoint"),
    );
    for gateway in &gateways {
        finding = finding.evidence(
            EvidenceLine::new(gateway.clone(), "routes to", service.name.clone())
                .with_note("its own routes' timeouts and limits are what ingress requests get"),
        );
    }
    // A label on an existing Service: a command, not an object for `kubectl apply`.
    Some(finding.fix(
        format!(
            "To run the waypoint's policy on ingress traffic too: `kubectl label service {} -n {namespace} {INGRESS_USE_WAYPOINT}=true` \
             (the gateway then sends to the waypoint, one more hop); else set the timeouts and limits on the gateway's routes.",
            service.name
        ),
        "",
    ))
}

/// Check 1 in ambient mode: what ztunnel and the waypoint reserve on GPU nodes (info).
pub fn overhead(target: &TargetEvidence) -> Option<Finding> {
    let ambient = target.mesh.ambient.as_ref()?;
    target.workload.gpu.as_ref().filter(|gpu| gpu.count > 0)?;
    let object = target.workload.object_ref();
    let gpu_ztunnels: Vec<&ZtunnelNode> = ambient
        .ztunnel
        .iter()
        .filter(|node| node.gpu_node)
        .collect();
    let gpu_waypoint_pods: Vec<_> = ambient
        .waypoint
        .iter()
        .flat_map(|waypoint| waypoint.pods.iter().map(move |pod| (waypoint, pod)))
        .filter(|(_, pod)| pod.gpu_node)
        .collect();
    let reserve = match gpu_ztunnels.first() {
        Some(node) => format!(
            "; ztunnel requests {} CPU / {} per node",
            node.cpu_request.as_deref().unwrap_or("no"),
            node.memory_request.as_deref().unwrap_or("no memory")
        ),
        None => String::new(),
    };
    let waypoint_part = if gpu_waypoint_pods.is_empty() {
        String::new()
    } else {
        format!(
            "; {} waypoint pod(s) run on GPU nodes",
            gpu_waypoint_pods.len()
        )
    };
    let mut finding = Finding::new(
        CheckId::SidecarOverhead,
        Severity::Info,
        Basis::Static,
        format!(
            "GPU pods of {} are ambient: no sidecar in the pods{reserve}{waypoint_part}",
            target.workload.target_name()
        ),
    )
    .evidence(
        EvidenceLine::new(object.clone(), "sidecar mode", "ambient")
            .with_note(target.mesh.sidecar_reason.clone()),
    );
    for node in &gpu_ztunnels {
        let cpu = node.cpu_request.as_deref().unwrap_or("none");
        let share = match (
            node.cpu_request.as_deref().and_then(|c| cpu_millis(c).ok()),
            node.allocatable_cpu_millis,
        ) {
            (Some(request), Some(allocatable)) if allocatable > 0 => format!(
                "; {:.1}% of the node's {} allocatable CPU",
                request as f64 * 100.0 / allocatable as f64,
                display_cpu(allocatable)
            ),
            _ => String::new(),
        };
        finding = finding.evidence(
            EvidenceLine::new(node.source.clone(), format!("{}/cpu", node.path), cpu).with_note(
                format!(
                    "ztunnel on GPU node {}, memory {}{share}: one per node, shared by every ambient pod there",
                    node.node,
                    node.memory_request.as_deref().unwrap_or("not requested")
                ),
            ),
        );
    }
    for (waypoint, pod) in &gpu_waypoint_pods {
        finding = finding.evidence(
            EvidenceLine::new(
                ObjectRef::new("Pod", Some(&waypoint.namespace), &pod.name),
                "spec/nodeName",
                pod.node.clone().unwrap_or_default(),
            )
            .with_note(format!(
                "a pod of waypoint {} on a GPU node, requesting {} CPU / {}: keep it off GPU nodes with a nodeSelector or affinity on the waypoint's Deployment",
                waypoint.display_name(),
                pod.cpu_request.as_deref().unwrap_or("no"),
                pod.memory_request.as_deref().unwrap_or("no memory")
            )),
        );
    }
    if gpu_ztunnels.is_empty() && gpu_waypoint_pods.is_empty() {
        finding = finding.assume(
            "ztunnel's pods and DaemonSet were not in the evidence: its per-node requests are not shown",
        );
    }
    Some(finding)
}

/// The words a sidecar-overhead fix adds about moving to ambient mode.
pub fn move_to_ambient(target: &TargetEvidence) -> String {
    format!(
        "or move the namespace to ambient mode (`kubectl label namespace {ns} istio.io/dataplane-mode=ambient` and \
         remove istio-injection/istio.io/rev, then restart the pods): it keeps mTLS (ztunnel, one per node, no \
         sidecar in the GPU pods) but L7 policy (VirtualService timeouts and retries, DestinationRule limits, \
         HTTPRoutes on the Service) then needs a waypoint (a Gateway of class istio-waypoint and the Service label \
         {USE_WAYPOINT})",
        ns = target.workload.namespace
    )
}

#[cfg(test)]
mod tests {
    use crate::checks::{CheckId, Settings, Severity, run_all};
    use crate::evidence::TargetEvidence;
    use crate::evidence::resolve::{Scope, gather};
    use std::time::Duration;

    fn target(namespace_labels: &str, extra: &str) -> TargetEvidence {
        let yaml = format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: inference, labels: {{{namespace_labels}}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: vllm}}
spec:
  replicas: 2
  template:
    metadata: {{labels: {{app: vllm}}}}
    spec: {{containers: [{{name: vllm, image: vllm/vllm-openai, resources: {{limits: {{nvidia.com/gpu: "1"}}}}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: vllm}}
spec: {{selector: {{app: vllm}}, ports: [{{port: 8000}}]}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vllm}}
spec:
  hosts: [vllm]
  http: [{{timeout: 60s, route: [{{destination: {{host: vllm}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: vllm}}
spec:
  host: vllm
  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: 10}}}}}}
---
{extra}"#
        );
        let inventory = crate::sources::manifest::load_with_stdin(
            &[std::path::PathBuf::from("-")],
            "inference",
            &mut std::io::Cursor::new(yaml),
        )
        .unwrap();
        let mut evidence = gather(
            &inventory,
            &Scope::default(),
            Duration::from_secs(300),
            Vec::new(),
        )
        .unwrap();
        evidence.targets.remove(0)
    }

    fn settings() -> Settings {
        Settings {
            expected_generation: Duration::from_secs(300),
        }
    }

    /// A waypoint named on the namespace and a Gateway API ingress routing to the Service.
    const WAYPOINT_AND_INGRESS: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, labels: {istio.io/waypoint-for: service}}
spec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, port: 15008, protocol: HBONE}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: public}
spec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public}
spec: {parentRefs: [{name: public}], rules: [{backendRefs: [{name: vllm, port: 8000}]}]}
"#;

    #[test]
    fn ingress_past_the_waypoint_is_said_with_the_label_that_sends_it_through() {
        let labels = "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint";
        let past = target(labels, WAYPOINT_AND_INGRESS);
        let finding = super::ingress_past_waypoint(&past).expect("the gateway skips the waypoint");
        crate::checks::test_support::assert_well_formed(std::slice::from_ref(&finding));
        assert_eq!(finding.id, CheckId::StreamTimeout);
        assert_eq!(finding.severity, Severity::Info);
        assert_eq!(
            finding.title,
            "Gateway inference/public sends straight to deploy/vllm, past waypoint inference/waypoint: the \
             waypoint's timeouts, retries and limits apply to in-mesh callers only"
        );
        let fix = finding.fix.as_ref().unwrap();
        assert!(
            fix.summary.contains(
                "`kubectl label service vllm -n inference istio.io/ingress-use-waypoint=true`"
            ),
            "{}",
            fix.summary
        );
        // With the label on the namespace, ingress goes through the waypoint: nothing to say.
        let through = target(
            &format!("{labels}, istio.io/ingress-use-waypoint: \"true\""),
            WAYPOINT_AND_INGRESS,
        );
        assert!(super::ingress_past_waypoint(&through).is_none());
        // No gateway in front: nothing enters past the waypoint.
        let inside = target(labels, WAYPOINT_AND_INGRESS.split("---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: public}").next().unwrap());
        assert!(super::ingress_past_waypoint(&inside).is_none());
    }

    #[test]
    fn without_a_waypoint_the_policy_is_reported_as_having_no_effect() {
        let target = target("istio.io/dataplane-mode: ambient", "");
        let findings = run_all(&target, &settings());
        crate::checks::test_support::assert_well_formed(&findings);
        // Nothing cuts or limits: the 60s timeout and the 10-connection pool run nowhere.
        assert!(
            findings.iter().all(|f| f.severity < Severity::Critical),
            "{findings:#?}"
        );
        let pool = findings
            .iter()
            .find(|f| f.id == CheckId::ConnectionPool)
            .unwrap();
        assert_eq!(pool.severity, Severity::Warning);
        assert_eq!(
            pool.title,
            "DestinationRule inference/vllm: connectionPool has no effect for deploy/vllm in ambient mode: no proxy \
             on the path runs it (no waypoint; ztunnel runs L4 only)"
        );
        assert_eq!(pool.evidence[0].path, "spec/trafficPolicy/connectionPool");
        let fix = pool.fix.as_ref().unwrap();
        assert!(fix.yaml.contains("gatewayClassName: istio-waypoint"));
        assert!(fix.summary.contains("istio.io/use-waypoint=waypoint"));
        let timeout = findings
            .iter()
            .find(|f| f.id == CheckId::StreamTimeout)
            .unwrap();
        assert_eq!(timeout.severity, Severity::Info);
        assert_eq!(timeout.evidence[0].path, "spec/http[0]/timeout");
        assert_eq!(timeout.evidence[0].value, "60s");
        assert!(timeout.title.contains("has no effect"), "{}", timeout.title);
        // The sidecar check says ambient, not a sidecar.
        let overhead: Vec<_> = findings
            .iter()
            .filter(|f| f.id == CheckId::SidecarOverhead)
            .collect();
        assert_eq!(overhead.len(), 1);
        assert_eq!(overhead[0].severity, Severity::Info);
    }

    #[test]
    fn with_a_waypoint_its_timeouts_and_limits_are_judged() {
        let target = target(
            "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint",
            "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: waypoint}\nspec: {gatewayClassName: istio-waypoint}\n",
        );
        let findings = run_all(&target, &settings());
        let timeout = findings
            .iter()
            .find(|f| f.id == CheckId::StreamTimeout)
            .unwrap();
        assert_eq!(timeout.severity, Severity::Critical, "{findings:#?}");
        let pool = findings
            .iter()
            .find(|f| f.id == CheckId::ConnectionPool)
            .unwrap();
        assert_eq!(pool.severity, Severity::Critical, "{findings:#?}");
        assert!(!findings.iter().any(|f| f.title.contains("no effect")));
    }

    #[test]
    fn an_untuned_sidecar_names_ambient_mode_among_the_fixes() {
        let target = target("istio-injection: enabled", "");
        let findings = run_all(&target, &settings());
        let overhead = findings
            .iter()
            .find(|f| f.id == CheckId::SidecarOverhead)
            .unwrap();
        assert_eq!(overhead.severity, Severity::Warning);
        let summary = &overhead.fix.as_ref().unwrap().summary;
        assert!(
            summary.contains("istio.io/dataplane-mode=ambient") && summary.contains("keeps mTLS"),
            "{summary}"
        );
        assert!(summary.contains("needs a waypoint"), "{summary}");
    }

    #[test]
    fn ztunnel_and_waypoint_pods_on_gpu_nodes_are_cited() {
        use crate::evidence::ObjectRef;
        use crate::evidence::ambient::{WaypointPod, WaypointRef, ZtunnelNode};
        let mut target = target("istio.io/dataplane-mode: ambient", "");
        let ambient = target.mesh.ambient.as_mut().unwrap();
        ambient.ztunnel = vec![ZtunnelNode {
            node: "gpu-1".into(),
            source: ObjectRef::new("Pod", Some("istio-system"), "ztunnel-x1"),
            path: "spec/containers[0]/resources/requests".into(),
            cpu_request: Some("200m".into()),
            memory_request: Some("512Mi".into()),
            gpu_node: true,
            allocatable_cpu_millis: Some(16_000),
        }];
        ambient.waypoint = Some(WaypointRef {
            namespace: "inference".into(),
            name: "waypoint".into(),
            found: true,
            waypoint_for: None,
            pods: vec![WaypointPod {
                name: "waypoint-a".into(),
                node: Some("gpu-1".into()),
                gpu_node: true,
                cpu_request: Some("100m".into()),
                memory_request: Some("128Mi".into()),
            }],
            ingress_uses_it: None,
        });
        let finding = super::overhead(&target).unwrap();
        assert_eq!(finding.severity, Severity::Info);
        assert_eq!(
            finding.title,
            "GPU pods of deploy/vllm are ambient: no sidecar in the pods; ztunnel requests 200m CPU / 512Mi per \
             node; 1 waypoint pod(s) run on GPU nodes"
        );
        let ztunnel = &finding.evidence[1];
        assert_eq!(ztunnel.object.to_string(), "Pod istio-system/ztunnel-x1");
        assert_eq!(ztunnel.value, "200m");
        assert!(
            ztunnel
                .note
                .as_deref()
                .unwrap()
                .contains("1.2% of the node's 16 allocatable CPU"),
            "{:?}",
            ztunnel.note
        );
        assert_eq!(finding.evidence[2].path, "spec/nodeName");
        assert!(finding.assumptions.is_empty());
    }

    /// Istio 1.21's own waypoint config_dump (`tests/fixtures/envoy/`, from istio/istio's istioctl
    /// test data) for `httpbin.default:8000`, attached to an ambient target that names it: it is
    /// read in the waypoint role and judged as the L7 point of the path (Istio's default route
    /// timeout is disabled: nothing cuts, nothing is set aside).
    #[test]
    fn istios_own_waypoint_dump_is_the_l7_point_of_the_path() {
        use crate::evidence::envoy::EnvoyEvidence;
        use crate::evidence::envoy::role::EnvoyRole;
        let yaml = r#"apiVersion: v1
kind: Namespace
metadata: {name: default, labels: {istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, namespace: default}
spec:
  template:
    metadata: {labels: {app: httpbin}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai, args: [--port, "8000"]}]}
---
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec: {selector: {app: httpbin}, ports: [{name: http, port: 8000}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http: [{route: [{destination: {host: httpbin}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: default}
spec: {gatewayClassName: istio-waypoint}
"#;
        let inventory = crate::sources::manifest::load_with_stdin(
            &[std::path::PathBuf::from("-")],
            "default",
            &mut std::io::Cursor::new(yaml.to_string()),
        )
        .unwrap();
        let mut target = gather(
            &inventory,
            &Scope::default(),
            Duration::from_secs(300),
            Vec::new(),
        )
        .unwrap()
        .targets
        .remove(0);
        let dump = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/envoy/istio-1.21-waypoint-config-dump.json"
        ))
        .unwrap();
        let envoy = EnvoyEvidence::from_saved(
            "waypoint",
            "httpbin.default.svc.cluster.local",
            8000,
            &dump,
            None,
        )
        .unwrap();
        assert_eq!(
            envoy.role.role,
            EnvoyRole::Waypoint,
            "{}",
            envoy.role.reason
        );
        target.envoy.push(envoy);
        assert_eq!(crate::checks::proxy::proxies(&target).len(), 1);
        let ambient = target.mesh.ambient.as_ref().unwrap();
        assert!(ambient.waypoint.is_some());
        assert!(ambient.no_effect.is_empty(), "{:?}", ambient.no_effect);
        let findings = run_all(&target, &settings());
        crate::checks::test_support::assert_well_formed(&findings);
        assert!(
            findings
                .iter()
                .filter(|f| f.id == CheckId::StreamTimeout)
                .all(|f| f.severity == Severity::Info),
            "{findings:#?}"
        );
    }
}
