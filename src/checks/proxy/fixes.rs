//! Fixes written from what a proxy runs, when the Istio object behind a setting is only named
//! (by Envoy's `istio.config` metadata) or not known at all: the object to change in words, and
//! YAML where it can be written: a new VirtualService or DestinationRule for the host taken from
//! the Envoy cluster name, a merge patch for a named one, an EnvoyFilter, or the
//! `proxy.istio.io/config` annotation of the proxy's pod template.

use super::{Proxy, Trimmed};
use crate::checks::fixes::{patch_instruction, workload_patch};
use crate::checks::{Finding, Severity};
use crate::evidence::envoy::names::{self, ControlPlane};
use crate::evidence::envoy::role::EnvoyRole;
use crate::evidence::{ObjectRef, TargetEvidence};
use serde_json::{Map, Value, json};

const PROXY_CONFIG: &str = "proxy.istio.io/config";

/// A fix: the sentence and the YAML (possibly empty).
pub type FixText = (String, String);

/// A finding the YAML checks made of an object the proxy runs: its evidence lines, each noted
/// "the proxy runs it", and its fix, which a proxy-side finding takes over.
pub fn as_run(written: &Finding) -> (Option<FixText>, Vec<super::EvidenceLine>) {
    let lines = written
        .evidence
        .iter()
        .map(|line| {
            line.clone().with_note(format!(
                "{}; the proxy runs it",
                line.note.as_deref().unwrap_or("as written")
            ))
        })
        .collect();
    let fix = written
        .fix
        .as_ref()
        .map(|fix| (fix.summary.clone(), fix.yaml.clone()));
    (fix, lines)
}

/// `vllm.inference.svc.cluster.local` -> (`vllm`, `inference`).
pub fn split_host(host: &str) -> (String, Option<String>) {
    let mut parts = host.split('.');
    let name = parts.next().unwrap_or(host).to_string();
    let namespace = parts.next().map(str::to_string);
    (name, namespace)
}

fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

fn destination(host: &str, port: u16) -> Value {
    json!({"host": host, "port": {"number": port}})
}

/// Raise (or set) the route timeout of the route to `host:port`.
pub fn route_timeout(
    named: Option<&ObjectRef>,
    host: &str,
    port: u16,
    timeout: &str,
    at_gateway: bool,
) -> FixText {
    let route = json!({"route": [{"destination": destination(host, port)}], "timeout": timeout});
    match named {
        Some(object) if object.kind == "HTTPRoute" => {
            let namespace = object.namespace.as_deref().unwrap_or("default");
            (
                format!(
                    "Edit {object} (Istio generated this route from it; its spec is not in the evidence): set                      `timeouts.request: {timeout}` on the rule that sends to {host}:{port} and drop `backendRequest`                      (`kubectl edit httproute {} -n {namespace}`); `0s` disables the deadline.",
                    object.name
                ),
                format!(
                    "# Fields to merge into {object}: the rule that sends to {host}:{port}\n{}",
                    yaml(&json!({"spec": {"rules": [{"timeouts": {"request": timeout}}]}}))
                ),
            )
        }
        Some(object) => {
            let namespace = object.namespace.as_deref().unwrap_or("default");
            (
                format!(
                    "Edit {object} (named by the route's metadata; its spec is not in the evidence): set `timeout: {timeout}` \
                     on its http route to {host}:{port} (`kubectl edit virtualservice {} -n {namespace}`); the YAML shows \
                     the fields to merge, not the whole object.",
                    object.name
                ),
                format!(
                    "# Fields to merge into {object}: its http route to {host}:{port}\n{}",
                    yaml(&json!({"spec": {"http": [route]}}))
                ),
            )
        }
        None => {
            let (name, namespace) = split_host(host);
            let mut spec = json!({"hosts": [host], "http": [route]});
            let mut summary = format!(
                "No VirtualService is behind this route: create one for {host} with `timeout: {timeout}` \
                 (`kubectl apply -f fix.yaml`)."
            );
            if at_gateway {
                spec["gateways"] = json!(["<namespace>/<gateway>"]);
                summary.push_str(
                    " At a gateway it applies only when bound: replace <namespace>/<gateway> with the Gateway \
                     and use the hostnames clients send.",
                );
            }
            let document = json!({
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "VirtualService",
                "metadata": {"name": format!("{name}-streaming"), "namespace": namespace.unwrap_or_else(|| "default".into())},
                "spec": spec,
            });
            (summary, yaml(&document))
        }
    }
}

/// Raise the route timeout of a route no object is named behind, in the API of the control
/// plane the proxy's names look like: Istio a new VirtualService; Envoy Gateway, its AI
/// Gateway and kgateway the Gateway API HTTPRoute rule's `timeouts.request` (Envoy Gateway
/// writes `route.timeout` only from it or a BackendTrafficPolicy, `internal/xds/translator/
/// route.go`); a plain Envoy its own route.
pub fn unnamed_route_timeout(proxy: &Proxy, host: &str, port: u16, timeout: &str) -> FixText {
    let plane = proxy
        .evidence
        .control_plane
        .as_ref()
        .map_or(ControlPlane::Istio, |guess| guess.plane);
    match plane {
        ControlPlane::Istio => route_timeout(None, host, port, timeout, proxy.is_gateway()),
        ControlPlane::EnvoyGateway | ControlPlane::AiGateway | ControlPlane::Kgateway => {
            let route = proxy
                .config()
                .clusters
                .iter()
                .find_map(|cluster| names::envoy_gateway_route(&cluster.name));
            let which = match route {
                Some((kind, namespace, name)) => format!("the {kind} {namespace}/{name}"),
                None => "the HTTPRoute".to_string(),
            };
            let mut summary = format!(
                "{} writes no route timeout here, so Envoy's default 15s applies: set `timeouts.request: {timeout}` \
                 on the rule of {which} that sends to {host} (`0s` disables the deadline)",
                plane.as_str()
            );
            if plane != ControlPlane::Kgateway {
                summary.push_str(
                    ", or `spec.timeout.http.requestTimeout` in a BackendTrafficPolicy that targets it",
                );
            }
            summary.push('.');
            let yaml_text = format!(
                "# Fields to merge into {which}: the rule that sends to {host}\n{}",
                yaml(&json!({"spec": {"rules": [{"timeouts": {"request": timeout}}]}}))
            );
            (summary, yaml_text)
        }
        ControlPlane::Unknown => (
            format!(
                "No control plane's names are on this proxy: set `timeout: {timeout}` (or `0s`) on the route to {host}:{port} \
                 in the config that feeds this Envoy; absent, Envoy's default 15s applies."
            ),
            String::new(),
        ),
    }
}

/// The connection-pool fields a DestinationRule fix sets (Istio names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolFields {
    pub max_connections: Option<u64>,
    pub http1_max_pending_requests: Option<u64>,
    pub http2_max_requests: Option<u64>,
    /// Written as 0 (unlimited) when a small value must go.
    pub max_requests_per_connection: Option<u64>,
}

impl PoolFields {
    fn connection_pool(&self) -> Value {
        let mut tcp = Map::new();
        let mut http = Map::new();
        if let Some(value) = self.max_connections {
            tcp.insert("maxConnections".into(), json!(value));
        }
        if let Some(value) = self.http1_max_pending_requests {
            http.insert("http1MaxPendingRequests".into(), json!(value));
        }
        if let Some(value) = self.http2_max_requests {
            http.insert("http2MaxRequests".into(), json!(value));
        }
        if let Some(value) = self.max_requests_per_connection {
            http.insert("maxRequestsPerConnection".into(), json!(value));
        }
        let mut pool = Map::new();
        if !tcp.is_empty() {
            pool.insert("tcp".into(), Value::Object(tcp));
        }
        if !http.is_empty() {
            pool.insert("http".into(), Value::Object(http));
        }
        Value::Object(pool)
    }
}

/// Raise the circuit-breaker limits for `host` through its DestinationRule.
pub fn destination_rule_pool(
    named: Option<&ObjectRef>,
    host: &str,
    fields: &PoolFields,
) -> FixText {
    let pool = fields.connection_pool();
    match named {
        Some(object) => {
            let namespace = object.namespace.as_deref().unwrap_or("default");
            (
                format!(
                    "Raise the limits in {object} (named by the cluster's metadata; its spec is not in the evidence): \
                     `kubectl patch destinationrule {} -n {namespace} --type merge --patch-file fix.yaml`. If the rule \
                     sets these per port or per subset, change them there instead.",
                    object.name
                ),
                yaml(&json!({"spec": {"trafficPolicy": {"connectionPool": pool}}})),
            )
        }
        None => {
            let (name, namespace) = split_host(host);
            (
                format!(
                    "No DestinationRule is named by the cluster's metadata: the limits come from another source (an \
                     EnvoyFilter, or a raw Envoy's defaults). For an Istio proxy, set them with a DestinationRule for \
                     {host} (`kubectl apply -f fix.yaml`)."
                ),
                yaml(&json!({
                    "apiVersion": "networking.istio.io/v1beta1",
                    "kind": "DestinationRule",
                    "metadata": {"name": format!("{name}-pool"), "namespace": namespace.unwrap_or_else(|| "default".into())},
                    "spec": {"host": host, "trafficPolicy": {"connectionPool": pool}},
                })),
            )
        }
    }
}

/// The EnvoyFilter context that reaches this proxy's side of the path.
pub fn context(proxy: &Proxy) -> &'static str {
    match proxy.role() {
        EnvoyRole::Server => "SIDECAR_INBOUND",
        EnvoyRole::Client if proxy.is_gateway() => "GATEWAY",
        _ => "SIDECAR_OUTBOUND",
    }
}

/// An EnvoyFilter that merges `value` into the HTTP connection manager on this proxy's side.
pub fn envoy_filter_hcm(
    proxy: &Proxy,
    target: &TargetEvidence,
    name: &str,
    port: u16,
    typed_config: Value,
) -> String {
    let mut merged = typed_config;
    merged["@type"] = json!(
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    let mut listener = json!({"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}});
    listener["portNumber"] = json!(port);
    let mut spec = json!({
        "configPatches": [{
            "applyTo": "NETWORK_FILTER",
            "match": {"context": context(proxy), "listener": listener},
            "patch": {"operation": "MERGE", "value": {"typed_config": merged}},
        }],
    });
    let namespace = match proxy.role() {
        EnvoyRole::Server => {
            if !target.workload.pod_labels.is_empty() {
                spec["workloadSelector"] = json!({"labels": target.workload.pod_labels});
            }
            target.workload.namespace.clone()
        }
        _ => proxy
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "istio-system".into()),
    };
    yaml(&json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
}

/// Where the proxy's pod template is, in words.
pub fn pod_template_words(proxy: &Proxy, target: &TargetEvidence) -> String {
    match proxy.role() {
        EnvoyRole::Server if target.workload.spec_known() => {
            format!("the pod template of {}", target.workload.target_name())
        }
        _ => match &proxy.evidence.pod {
            Some(pod) => format!("the pod template of the workload that owns {pod}"),
            None => format!(
                "the pod template of the workload whose proxy answered at {}",
                proxy.evidence.source
            ),
        },
    }
}

/// The `proxyStatsMatcher` that brings back trimmed stats: a patch of the target's own pod
/// template when this is its sidecar and the spec is known, else the annotation fragment.
pub fn stats_matcher(proxy: &Proxy, target: &TargetEvidence, trimmed: &Trimmed) -> FixText {
    let workload = &target.workload;
    if proxy.role() == EnvoyRole::Server && workload.spec_known() {
        let existing = workload
            .pod_annotations
            .get(PROXY_CONFIG)
            .map(String::as_str);
        if let Ok(config) = trimmed.advice.merge_into_proxy_config(existing, false) {
            let patch = json!({"metadata": {"annotations": {PROXY_CONFIG: config}}});
            if let Some(yaml) = workload_patch(workload, patch) {
                return (
                    format!(
                        "Keep the stats Istio trims (under {}) with proxyStatsMatcher in {PROXY_CONFIG}, then restart the \
                         pods; {}.",
                        trimmed.scopes.join(" and "),
                        patch_instruction(workload)
                    ),
                    yaml,
                );
            }
        }
    }
    (
        format!(
            "Keep the stats Istio trims (under {}) with proxyStatsMatcher: add the annotation below to {}, then restart \
             those pods.",
            trimmed.scopes.join(" and "),
            pod_template_words(proxy, target)
        ),
        trimmed.advice.annotation_yaml(false),
    )
}

/// Adds the stats matcher to `fix` when the counters that would show the finding's failure mode
/// are trimmed on `proxy`.
pub fn with_stats_matcher(
    target: &TargetEvidence,
    proxy: &Proxy,
    finding: &Finding,
    fix: Option<FixText>,
) -> Option<FixText> {
    let Some(trimmed) = proxy
        .trimmed(finding.id)
        .filter(|_| finding.severity > Severity::Info)
    else {
        return fix;
    };
    let stats = stats_matcher(proxy, target, &trimmed);
    Some(match fix {
        Some(fix) => join(fix, stats),
        None => stats,
    })
}

/// Joins two fixes: sentences in order, YAML documents separated by `---`.
pub fn join(first: FixText, second: FixText) -> FixText {
    let summary = format!("{} {}", first.0, second.0);
    let yaml = match (first.1.trim().is_empty(), second.1.trim().is_empty()) {
        (true, _) => second.1,
        (false, true) => first.1,
        (false, false) => format!("{}---\n{}", ensure_newline(first.1), second.1),
    };
    (summary, yaml)
}

fn ensure_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize as _;

    fn documents(text: &str) -> Vec<serde_yaml::Value> {
        serde_yaml::Deserializer::from_str(text)
            .map(|document| serde_yaml::Value::deserialize(document).unwrap())
            .collect()
    }

    #[test]
    fn a_new_virtual_service_takes_the_host_from_the_cluster_name() {
        let (summary, text) =
            route_timeout(None, "vllm.inference.svc.cluster.local", 8000, "300s", true);
        assert!(summary.contains("<namespace>/<gateway>"), "{summary}");
        let document = &documents(&text)[0];
        assert_eq!(document["kind"], "VirtualService");
        assert_eq!(document["metadata"]["namespace"], "inference");
        assert_eq!(document["spec"]["http"][0]["timeout"], "300s");
        assert_eq!(
            document["spec"]["http"][0]["route"][0]["destination"]["port"]["number"],
            8000
        );
    }

    #[test]
    fn a_named_rule_gets_a_merge_patch() {
        let object = ObjectRef::new("DestinationRule", Some("inference"), "vllm");
        let (summary, text) = destination_rule_pool(
            Some(&object),
            "vllm.inference.svc.cluster.local",
            &PoolFields {
                max_connections: Some(384),
                max_requests_per_connection: Some(0),
                ..PoolFields::default()
            },
        );
        assert!(
            summary.contains("kubectl patch destinationrule vllm -n inference --type merge"),
            "{summary}"
        );
        let document = &documents(&text)[0];
        let pool = &document["spec"]["trafficPolicy"]["connectionPool"];
        assert_eq!(pool["tcp"]["maxConnections"], 384);
        assert_eq!(pool["http"]["maxRequestsPerConnection"], 0);
    }

    #[test]
    fn joined_fixes_stay_separate_documents() {
        let (_, text) = join(
            ("a".into(), "kind: A\n".into()),
            ("b".into(), "kind: B".into()),
        );
        assert_eq!(documents(&text).len(), 2);
        let (_, only) = join(("a".into(), String::new()), ("b".into(), "kind: B".into()));
        assert_eq!(only, "kind: B");
    }
}
