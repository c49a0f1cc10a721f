//! What a cluster's name says about the service behind it, as each control plane writes names,
//! and which control plane a node looks like (docs/usage.md "Any control plane" cites the
//! translators these names come from).
//!
//! - Istio: `outbound|PORT|SUBSET|HOST`, `inbound|PORT||`, `inbound-vip|PORT|…|HOST`.
//! - Envoy Gateway: a route's rule `httproute/NS/NAME/rule/N` (the Service is not in the name;
//!   the endpoints are), a backend shared by routes `service/NS/NAME/PORT[/PROTOCOL]`, and before
//!   v0.4 `NS-ROUTE-rule-N-match-M-HOST`.
//! - Envoy AI Gateway: Envoy Gateway's names, its external processor's cluster
//!   `ai-gateway-extproc-uds` and filter `envoy.filters.http.ext_proc/aigateway`.
//! - kgateway: `kube_NS_NAME_PORT` for a Kubernetes Service.
//! - Any Envoy: a `STRICT_DNS`/`LOGICAL_DNS` cluster's endpoints name their host.

use super::config::{ClusterConfig, EffectiveConfig};
use super::role::IstioClusterName;
use serde::{Deserialize, Serialize};

const CLUSTER_DOMAIN: &str = "svc.cluster.local";
/// Envoy AI Gateway's external processor cluster and filter
/// (envoyproxy/ai-gateway `internal/extensionserver/post_translate_modify.go`).
pub const AI_GATEWAY_EXTPROC_CLUSTER: &str = "ai-gateway-extproc-uds";
pub const AI_GATEWAY_EXTPROC_FILTER: &str = "envoy.filters.http.ext_proc/aigateway";

/// The control plane that wrote an Envoy's config, as far as its names tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlPlane {
    Istio,
    EnvoyGateway,
    AiGateway,
    Kgateway,
    /// No known control plane's names: a plain Envoy, or one this tool does not know.
    Unknown,
}

impl ControlPlane {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlPlane::Istio => "Istio",
            ControlPlane::EnvoyGateway => "Envoy Gateway",
            ControlPlane::AiGateway => "Envoy AI Gateway",
            ControlPlane::Kgateway => "kgateway",
            ControlPlane::Unknown => "no known control plane",
        }
    }

    /// Istio writes its own values for some of Envoy's defaults (route timeout `0s`, circuit
    /// breakers at 2^32-1); the others leave Envoy's where their APIs set nothing.
    pub fn writes_istio_defaults(self) -> bool {
        self == ControlPlane::Istio
    }
}

/// A Kubernetes Service's FQDN from its namespace and name.
fn service_fqdn(namespace: &str, name: &str) -> Option<String> {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    (ok(namespace) && ok(name)).then(|| format!("{name}.{namespace}.{CLUSTER_DOMAIN}"))
}

/// Envoy Gateway's `service/NS/NAME/PORT[/PROTOCOL]` (`irBackendClusterName`).
fn envoy_gateway_backend(name: &str) -> Option<(String, u16)> {
    let mut parts = name.split('/');
    if parts.next()? != "service" {
        return None;
    }
    let namespace = parts.next()?;
    let service = parts.next()?;
    let port = parts.next()?.parse().ok()?;
    if parts.count() > 1 {
        return None;
    }
    Some((service_fqdn(namespace, service)?, port))
}

/// Envoy Gateway's route-rule cluster `httproute/NS/NAME/rule/N` (also grpcroute, tlsroute, …;
/// `irRouteDestinationName`): the route's namespace and name.
pub fn envoy_gateway_route(name: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        [kind, namespace, route, "rule", index, ..]
            if kind.ends_with("route") && index.parse::<u32>().is_ok() =>
        {
            Some((kind, namespace, route))
        }
        _ => None,
    }
}

/// kgateway's `kube_NS_NAME_PORT` (`Upstream.ClusterName` with the `kube` prefix). Kubernetes
/// names never hold `_`, so the parts are unambiguous.
fn kgateway_service(name: &str) -> Option<(String, u16)> {
    let parts: Vec<&str> = name.split('_').collect();
    match parts.as_slice() {
        ["kube", namespace, service, port] => {
            Some((service_fqdn(namespace, service)?, port.parse().ok()?))
        }
        _ => None,
    }
}

/// Envoy Gateway before v0.4: `NS-ROUTE-rule-N-match-M-HOST`.
fn old_envoy_gateway(name: &str) -> bool {
    name.split("-rule-").nth(1).is_some_and(|rest| {
        rest.split_once("-match-")
            .is_some_and(|(rule, _)| rule.parse::<u32>().is_ok())
    })
}

/// The endpoints' DNS names, when every endpoint names the same `host:port` and the host is
/// a name, not an IP.
fn dns_endpoint(cluster: &ClusterConfig) -> Option<(String, u16)> {
    let mut found: Option<(String, u16)> = None;
    for endpoint in &cluster.endpoints {
        let (host, port) = endpoint.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<std::net::IpAddr>().is_ok() || host.is_empty() {
            return None;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match &found {
            Some((first, first_port)) if *first != host || *first_port != port => return None,
            _ => found = Some((host, port)),
        }
    }
    found
}

/// The one port every endpoint of the cluster listens on.
pub fn endpoint_port(cluster: &ClusterConfig) -> Option<u16> {
    let mut ports = cluster
        .endpoints
        .iter()
        .filter_map(|endpoint| endpoint.rsplit_once(':'))
        .filter_map(|(_, port)| port.parse::<u16>().ok());
    let first = ports.next()?;
    ports.all(|port| port == first).then_some(first)
}

/// The service `host:port` a cluster's name (or its endpoints' DNS names) stands for.
pub fn cluster_service(cluster: &ClusterConfig) -> Option<(String, u16)> {
    if let Some(name) = IstioClusterName::parse(&cluster.name) {
        return (!name.host.is_empty()).then(|| (name.host.to_string(), name.port));
    }
    envoy_gateway_backend(&cluster.name)
        .or_else(|| kgateway_service(&cluster.name))
        .or_else(|| dns_endpoint(cluster))
}

/// How discovery names a routed cluster that is not Istio's: the service its name or endpoints
/// say, else the cluster's own name with its endpoints' port (`0` when they do not agree).
pub fn service_key(cluster: &ClusterConfig) -> (String, u16) {
    cluster_service(cluster)
        .unwrap_or_else(|| (cluster.name.clone(), endpoint_port(cluster).unwrap_or(0)))
}

/// Which control plane wrote this config, with what shows it.
pub fn control_plane(config: &EffectiveConfig) -> (ControlPlane, String) {
    let node_id = config
        .node
        .as_ref()
        .and_then(|node| node.id.as_deref())
        .unwrap_or_default();
    if config
        .node
        .as_ref()
        .is_some_and(|node| node.istio_version.is_some())
    {
        return (
            ControlPlane::Istio,
            "the node's ISTIO_VERSION metadata".to_string(),
        );
    }
    let istio_kind = node_id.split('~').next().unwrap_or_default();
    if node_id.matches('~').count() >= 3 && ["sidecar", "router", "waypoint"].contains(&istio_kind)
    {
        return (ControlPlane::Istio, format!("the node id {node_id:?}"));
    }
    let ai_filter = config.hcms().any(|(_, _, hcm)| {
        hcm.http_filters
            .iter()
            .any(|filter| filter.name == AI_GATEWAY_EXTPROC_FILTER)
    });
    if ai_filter || config.cluster(AI_GATEWAY_EXTPROC_CLUSTER).is_some() {
        return (
            ControlPlane::AiGateway,
            format!(
                "the {AI_GATEWAY_EXTPROC_FILTER} filter or {AI_GATEWAY_EXTPROC_CLUSTER} cluster"
            ),
        );
    }
    for cluster in &config.clusters {
        let name = cluster.name.as_str();
        if IstioClusterName::parse(name).is_some_and(|parsed| {
            ["outbound", "inbound", "inbound-vip"].contains(&parsed.direction)
        }) {
            return (ControlPlane::Istio, format!("the cluster name {name:?}"));
        }
        if envoy_gateway_route(name).is_some()
            || envoy_gateway_backend(name).is_some()
            || old_envoy_gateway(name)
        {
            return (
                ControlPlane::EnvoyGateway,
                format!("the cluster name {name:?}"),
            );
        }
        if kgateway_service(name).is_some() {
            return (ControlPlane::Kgateway, format!("the cluster name {name:?}"));
        }
    }
    (
        ControlPlane::Unknown,
        "no Istio, Envoy Gateway or kgateway names in its node or clusters".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, endpoints: &[&str]) -> ClusterConfig {
        ClusterConfig {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            ..ClusterConfig::named(name)
        }
    }

    #[test]
    fn each_control_planes_names_say_the_service() {
        let fqdn = "vllm.inference.svc.cluster.local".to_string();
        assert_eq!(
            cluster_service(&cluster("service/inference/vllm/8000", &[])),
            Some((fqdn.clone(), 8000))
        );
        assert_eq!(
            cluster_service(&cluster("service/inference/vllm/8000/http", &[])),
            Some((fqdn.clone(), 8000))
        );
        assert_eq!(
            cluster_service(&cluster("kube_inference_vllm_8000", &[])),
            Some((fqdn.clone(), 8000))
        );
        assert_eq!(
            cluster_service(&cluster(&format!("outbound|8000||{fqdn}"), &[])),
            Some((fqdn.clone(), 8000))
        );
        assert_eq!(cluster_service(&cluster("inbound|8000||", &[])), None);
        assert_eq!(
            cluster_service(&cluster("vllm", &[&format!("{fqdn}:8000")])),
            Some((fqdn.clone(), 8000))
        );
        // An EDS cluster of IPs: the name and the endpoints' port.
        let route = cluster(
            "httproute/inference/vllm/rule/0",
            &["10.0.0.7:8000", "10.0.0.8:8000"],
        );
        assert_eq!(cluster_service(&route), None);
        assert_eq!(
            service_key(&route),
            ("httproute/inference/vllm/rule/0".to_string(), 8000)
        );
        assert_eq!(
            envoy_gateway_route(&route.name),
            Some(("httproute", "inference", "vllm"))
        );
        let mixed = cluster("c", &["10.0.0.7:8000", "10.0.0.8:9000"]);
        assert_eq!(service_key(&mixed), ("c".to_string(), 0));
    }

    #[test]
    fn control_planes_are_told_by_their_names() {
        let with = |names: &[&str]| EffectiveConfig {
            clusters: names.iter().map(|name| cluster(name, &[])).collect(),
            ..EffectiveConfig::default()
        };
        assert_eq!(
            control_plane(&with(&["httproute/default/backend/rule/0"])).0,
            ControlPlane::EnvoyGateway
        );
        assert_eq!(
            control_plane(&with(&["default-backend-rule-0-match-0-www.example.com"])).0,
            ControlPlane::EnvoyGateway
        );
        assert_eq!(
            control_plane(&with(&[
                "httproute/default/backend/rule/0",
                AI_GATEWAY_EXTPROC_CLUSTER
            ]))
            .0,
            ControlPlane::AiGateway
        );
        assert_eq!(
            control_plane(&with(&["kube_default_vllm_8000"])).0,
            ControlPlane::Kgateway
        );
        assert_eq!(
            control_plane(&with(&["outbound|8000||vllm.default.svc.cluster.local"])).0,
            ControlPlane::Istio
        );
        assert_eq!(control_plane(&with(&["vllm"])).0, ControlPlane::Unknown);
    }
}
