//! Where each path to a target goes on a live cluster (docs/facts.md "Where each path goes"), from
//! the inventory alone: the pods to port-forward to for the direct path, the ingress gateway pods
//! (and their listener port and Host header) for the mesh path, and the pods whose Envoy admin
//! port shows each side of the path. Pure functions: no I/O.

use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::ListedPod;
use crate::evidence::objects::{Gateway, GatewayServer, VirtualService};
use crate::evidence::resolve::workloads::Owners;
use crate::evidence::{ObjectRef, TargetEvidence, Workload};
pub use crate::sources::envoy::reading::EnvoySide;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The container Istio injects; its admin API listens on 15000 inside the pod.
const PROXY_CONTAINER: &str = "istio-proxy";

/// One way into the mesh path: an ingress gateway pod, the port its Envoy listens on, and the
/// Host header that its routes send to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshEntry {
    pub gateway_pod: ObjectRef,
    /// The gateway pod's container port behind the Gateway server port: Istio gateways listen
    /// on the Service's targetPort (8080 for port 80 in the default install).
    pub listener_port: u16,
    /// The Gateway server's port number as written (`80`).
    pub server_port: u16,
    /// `HTTP`, `HTTPS`, `HTTP2`, `GRPC`, … as the Gateway server says; `HTTP` when unset.
    pub protocol: String,
    pub host_header: String,
    pub gateway: ObjectRef,
}

/// The target's pods and the vLLM container port on each, for a port-forward that bypasses the
/// sidecar. Ready pods first, then running ones, then pods of unknown state; finished pods and
/// pods being deleted are left out.
pub fn direct_pods(owners: &Owners<'_>, workload: &Workload) -> Vec<(ObjectRef, u16)> {
    let mut pods: Vec<(u8, ObjectRef)> = owners
        .live_pods(workload)
        .into_iter()
        .filter_map(|pod| Some((readiness_rank(pod)?, pod_ref(pod)?)))
        .collect();
    pods.sort();
    pods.into_iter()
        .map(|(_, pod)| (pod, workload.vllm.port))
        .collect()
}

/// The ingress gateways in front of the target: for each Gateway its VirtualServices bind to,
/// the pods its `selector` matches (in any namespace), one entry per pod and server port, with
/// a Host header the bound VirtualServices route to the target. Plain-HTTP servers first,
/// ready pods first.
pub fn ingress_gateways(inventory: &Inventory, target: &TargetEvidence) -> Vec<MeshEntry> {
    let mut entries: Vec<(u8, u8, MeshEntry)> = Vec::new();
    for gateway in &target.mesh.gateways {
        if gateway.spec.selector.is_empty() {
            continue;
        }
        let gateway_ref = ObjectRef::of("Gateway", &gateway.metadata);
        let bound: Vec<&VirtualService> = target
            .mesh
            .virtual_services
            .iter()
            .filter(|vs| binds_to(vs, gateway))
            .collect();
        if bound.is_empty() {
            continue;
        }
        let pods = selected_pods(inventory, &gateway.spec.selector);
        for server in &gateway.spec.servers {
            let Some(port) = server_port(server) else {
                continue;
            };
            let protocol = server_protocol(server);
            let Some(host_header) = host_header(server, gateway, &bound, target) else {
                continue;
            };
            for (rank, pod) in &pods {
                let Some(pod_ref) = pod_ref(pod) else {
                    continue;
                };
                entries.push((
                    protocol_rank(&protocol),
                    *rank,
                    MeshEntry {
                        gateway_pod: pod_ref,
                        listener_port: listener_port(inventory, pod, port),
                        server_port: port,
                        protocol: protocol.clone(),
                        host_header: host_header.clone(),
                        gateway: gateway_ref.clone(),
                    },
                ));
            }
        }
    }
    entries.extend(kube_gateway_entries(inventory, target));
    entries.sort_by_key(|a| (a.0, a.1));
    let mut out: Vec<MeshEntry> = Vec::new();
    for (_, _, entry) in entries {
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// The Gateway API Gateways in front of the target (class `istio` runs them as pods labelled
/// `gateway.networking.k8s.io/gateway-name=NAME` in the Gateway's namespace, listening on the
/// listener's port): one entry per pod and HTTP listener, with the Host header from the
/// HTTPRoutes' `hostnames` (else the listener's `hostname`, else the Service's name).
fn kube_gateway_entries(
    inventory: &Inventory,
    target: &TargetEvidence,
) -> Vec<(u8, u8, MeshEntry)> {
    use crate::evidence::objects::gateway_api::GATEWAY_NAME_LABEL;
    let mut entries = Vec::new();
    for gateway in &target.mesh.kube_gateways {
        let Some(name) = gateway.metadata.name.as_deref() else {
            continue;
        };
        let namespace = namespace_of(&gateway.metadata);
        let gateway_ref = ObjectRef::of("Gateway", &gateway.metadata);
        let selector = BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), name.to_string())]);
        let pods: Vec<(u8, &ListedPod)> = selected_pods(inventory, &selector)
            .into_iter()
            .filter(|(_, pod)| pod.metadata.namespace.as_deref() == Some(namespace))
            .collect();
        let route_host = target
            .mesh
            .http_routes
            .iter()
            .filter(|route| {
                route.spec.parent_refs.iter().any(|parent| {
                    parent.is_gateway()
                        && parent.name == name
                        && parent
                            .namespace
                            .as_deref()
                            .unwrap_or_else(|| namespace_of(&route.metadata))
                            == namespace
                })
            })
            .flat_map(|route| route.spec.hostnames.iter())
            .find(|host| !host.starts_with('*'))
            .cloned();
        for listener in &gateway.spec.listeners {
            let Some(port) = listener.port else { continue };
            let protocol = listener
                .protocol
                .as_deref()
                .unwrap_or("HTTP")
                .to_ascii_uppercase();
            if !matches!(protocol.as_str(), "HTTP" | "HTTPS") {
                continue;
            }
            let host_header = route_host
                .clone()
                .or_else(|| {
                    listener
                        .hostname
                        .clone()
                        .filter(|host| !host.starts_with('*'))
                })
                .or_else(|| target.mesh.services.first().map(|service| service.fqdn()));
            let Some(host_header) = host_header else {
                continue;
            };
            for (rank, pod) in &pods {
                let Some(pod_ref) = pod_ref(pod) else {
                    continue;
                };
                entries.push((
                    protocol_rank(&protocol),
                    *rank,
                    MeshEntry {
                        gateway_pod: pod_ref,
                        listener_port: port,
                        server_port: port,
                        protocol: protocol.clone(),
                        host_header: host_header.clone(),
                        gateway: gateway_ref.clone(),
                    },
                ));
            }
        }
    }
    entries
}

/// The pods whose Envoy admin API shows the path: the target's pods that carry a sidecar
/// (server side), then the ingress gateway pods in front of it (client side). Ready pods first
/// on each side; each pod once.
pub fn admin_pods(
    inventory: &Inventory,
    owners: &Owners<'_>,
    target: &TargetEvidence,
) -> Vec<(ObjectRef, EnvoySide)> {
    let mut servers: Vec<(u8, ObjectRef)> = owners
        .live_pods(&target.workload)
        .into_iter()
        .filter(|pod| has_proxy(pod))
        .filter_map(|pod| Some((readiness_rank(pod)?, pod_ref(pod)?)))
        .collect();
    servers.sort();
    let mut out: Vec<(ObjectRef, EnvoySide)> = servers
        .into_iter()
        .map(|(_, pod)| (pod, EnvoySide::Server))
        .collect();
    for entry in ingress_gateways(inventory, target) {
        if !out.iter().any(|(pod, _)| *pod == entry.gateway_pod) {
            out.push((entry.gateway_pod, EnvoySide::Client));
        }
    }
    // Ambient mode: the waypoint's pods are the L7 point of the path (their role, waypoint, is
    // read from their clusters, `inbound-vip|PORT|…|HOST`).
    let waypoint = target
        .mesh
        .ambient
        .as_ref()
        .and_then(|ambient| ambient.waypoint.as_ref());
    if let Some(waypoint) = waypoint {
        for pod in &waypoint.pods {
            let pod = ObjectRef::new("Pod", Some(&waypoint.namespace), &pod.name);
            if !out.iter().any(|(known, _)| *known == pod) {
                out.push((pod, EnvoySide::Client));
            }
        }
    }
    out
}

/// Pods (any namespace) whose labels match a Gateway-style `selector` (all pairs equal), ready
/// first; with their readiness rank.
pub fn selected_pods<'a>(
    inventory: &'a Inventory,
    selector: &BTreeMap<String, String>,
) -> Vec<(u8, &'a ListedPod)> {
    let mut pods: Vec<(u8, &ListedPod)> = inventory
        .pods
        .iter()
        .filter(|pod| {
            let labels = pod.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(key, value)| labels.and_then(|l| l.get(key)) == Some(value))
        })
        .filter_map(|pod| Some((readiness_rank(pod)?, pod)))
        .collect();
    pods.sort_by(|a, b| {
        (a.0, &a.1.metadata.namespace, &a.1.metadata.name).cmp(&(
            b.0,
            &b.1.metadata.namespace,
            &b.1.metadata.name,
        ))
    });
    pods
}

/// A Gateway selector as a label-selector string for a list call: `app=x,istio=ingressgateway`.
pub fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether the pod runs Istio's proxy (classic container or native init sidecar).
pub fn has_proxy(pod: &ListedPod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers.iter().any(|c| c.name == PROXY_CONTAINER)
            || spec
                .init_containers
                .iter()
                .any(|c| c.name == PROXY_CONTAINER && c.restart_policy.as_deref() == Some("Always"))
    })
}

/// `Pod ns/name`
pub fn pod_ref(pod: &ListedPod) -> Option<ObjectRef> {
    Some(ObjectRef::new(
        "Pod",
        pod.metadata.namespace.as_deref(),
        pod.metadata.name.as_deref()?,
    ))
}

/// 0 ready, 1 running, 2 state unknown (manifests); `None` for pods that cannot be reached:
/// finished, or being deleted.
pub fn readiness_rank(pod: &ListedPod) -> Option<u8> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let Some(status) = &pod.status else {
        return Some(2);
    };
    match status.phase.as_deref() {
        Some("Succeeded") | Some("Failed") => return None,
        Some("Running") => {}
        _ => return Some(2),
    }
    Some(if status.ready { 0 } else { 1 })
}

fn namespace_of(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    metadata.namespace.as_deref().unwrap_or("default")
}

/// Whether the VirtualService's `gateways` names this Gateway (`name` in the VirtualService's
/// namespace, or `namespace/name`).
fn binds_to(vs: &VirtualService, gateway: &Gateway) -> bool {
    let vs_namespace = namespace_of(&vs.metadata);
    let gateway_namespace = namespace_of(&gateway.metadata);
    let Some(gateway_name) = gateway.metadata.name.as_deref() else {
        return false;
    };
    vs.spec
        .gateways
        .iter()
        .any(|entry| match entry.split_once('/') {
            Some((namespace, name)) => namespace == gateway_namespace && name == gateway_name,
            None => vs_namespace == gateway_namespace && entry == gateway_name,
        })
}

fn server_port(server: &GatewayServer) -> Option<u16> {
    let number = server.port.as_ref()?.get("number")?.as_u64()?;
    u16::try_from(number).ok()
}

fn server_protocol(server: &GatewayServer) -> String {
    server
        .port
        .as_ref()
        .and_then(|port| port.get("protocol"))
        .and_then(|protocol| protocol.as_str())
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| "HTTP".to_string())
}

fn protocol_rank(protocol: &str) -> u8 {
    match protocol {
        "HTTP" => 0,
        "HTTP2" | "GRPC" => 1,
        _ => 2,
    }
}

/// A Gateway server host as written: `llm.example.com`, `*`, or `namespace/host` (the
/// namespace part limits which VirtualServices may bind; `.` is the Gateway's own).
fn server_host_allows(
    entry: &str,
    gateway_namespace: &str,
    vs_namespace: &str,
    host: &str,
) -> bool {
    let (namespace, pattern) = match entry.split_once('/') {
        Some((namespace, pattern)) => (namespace, pattern),
        None => ("*", entry),
    };
    let namespace_ok = match namespace {
        "*" => true,
        "." => vs_namespace == gateway_namespace,
        other => other == vs_namespace,
    };
    namespace_ok && gateway_host_matches(pattern, host)
}

/// Gateway and VirtualService hosts are public names, matched literally (no namespace
/// completion): `*` any, `*.example.com` any name under it.
fn gateway_host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim().to_ascii_lowercase();
    let host = host.trim().to_ascii_lowercase();
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return host.len() > suffix.len() && host.ends_with(suffix);
    }
    // A wildcard VirtualService host under a concrete server host still binds.
    if let Some(suffix) = host.strip_prefix('*') {
        return pattern.ends_with(suffix);
    }
    pattern == host
}

/// The Host header for this server: a concrete VirtualService host the server accepts; else a
/// concrete server host; else (both wildcards) the target Service's FQDN, which any `*` matches.
fn host_header(
    server: &GatewayServer,
    gateway: &Gateway,
    bound: &[&VirtualService],
    target: &TargetEvidence,
) -> Option<String> {
    let gateway_namespace = namespace_of(&gateway.metadata);
    let mut accepted_wildcard = false;
    for vs in bound {
        let vs_namespace = namespace_of(&vs.metadata);
        for host in &vs.spec.hosts {
            let accepted = server
                .hosts
                .iter()
                .any(|entry| server_host_allows(entry, gateway_namespace, vs_namespace, host));
            if !accepted {
                continue;
            }
            if host.contains('*') {
                accepted_wildcard = true;
            } else {
                return Some(host.trim().to_ascii_lowercase());
            }
        }
    }
    if !accepted_wildcard {
        return None;
    }
    let concrete_server_host = server.hosts.iter().find_map(|entry| {
        let pattern = entry
            .split_once('/')
            .map_or(entry.as_str(), |(_, host)| host);
        (!pattern.contains('*')).then(|| pattern.trim().to_ascii_lowercase())
    });
    concrete_server_host.or_else(|| target.mesh.services.first().map(|service| service.fqdn()))
}

/// The gateway pod's port behind a Gateway server port: the targetPort of the Service (in the
/// pod's namespace, selecting the pod) that exposes `server_port`; else a container port of that
/// number; else Istio's chart convention for privileged ports (80 -> 8080, 443 -> 8443) when the
/// pod declares it; else the server port itself.
fn listener_port(inventory: &Inventory, pod: &ListedPod, server_port: u16) -> u16 {
    let namespace = pod.metadata.namespace.as_deref();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let container_ports: Vec<(Option<&str>, u16)> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.containers.iter())
        .flat_map(|container| container.ports.iter())
        .filter_map(|port| {
            Some((
                port.name.as_deref(),
                u16::try_from(port.container_port).ok()?,
            ))
        })
        .collect();
    let from_service = inventory
        .services
        .iter()
        .filter(|service| service.metadata.namespace.as_deref() == namespace)
        .filter(|service| selects(service, &labels))
        .flat_map(|service| {
            service
                .spec
                .iter()
                .flat_map(|spec| spec.ports.iter().flatten())
        })
        .find(|port| u16::try_from(port.port).ok() == Some(server_port))
        .and_then(|port| match &port.target_port {
            None => Some(server_port),
            Some(IntOrString::Int(number)) => u16::try_from(*number).ok(),
            Some(IntOrString::String(name)) => container_ports
                .iter()
                .find(|(port_name, _)| *port_name == Some(name.as_str()))
                .map(|(_, number)| *number),
        });
    if let Some(port) = from_service {
        return port;
    }
    if container_ports.iter().any(|(_, port)| *port == server_port) {
        return server_port;
    }
    if server_port < 1024
        && let Some(shifted) = server_port.checked_add(8000)
        && container_ports.iter().any(|(_, port)| *port == shifted)
    {
        return shifted;
    }
    server_port
}

fn selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = service
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.as_ref())
    else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{IstioPresence, MeshContext, ServiceInfo, ServicePortInfo, SidecarMode};
    use serde_json::json;

    fn pod(namespace: &str, name: &str, labels: serde_json::Value, ready: bool) -> ListedPod {
        let mut value = json!({
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [
                {"name": "istio-proxy", "image": "proxyv2", "ports": [
                    {"name": "http2", "containerPort": 8080},
                    {"name": "https", "containerPort": 8443},
                    {"name": "http-envoy-prom", "containerPort": 15090}]}
            ]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if labels.get("app") == Some(&json!("vllm")) {
            value["spec"]["containers"] = json!([
                {"name": "vllm", "image": "vllm/vllm-openai:v0.8.0", "args": ["--port", "8000"]},
                {"name": "istio-proxy", "image": "proxyv2"}
            ]);
        }
        serde_json::from_value(value).unwrap()
    }

    fn gateway(namespace: &str, name: &str, servers: serde_json::Value) -> Gateway {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"istio": "ingressgateway"}, "servers": servers},
        }))
        .unwrap()
    }

    fn virtual_service(gateways: serde_json::Value, hosts: serde_json::Value) -> VirtualService {
        serde_json::from_value(json!({
            "metadata": {"name": "vllm-public", "namespace": "inference"},
            "spec": {"hosts": hosts, "gateways": gateways,
                "http": [{"route": [{"destination": {"host": "vllm", "port": {"number": 8000}}}]}]},
        }))
        .unwrap()
    }

    fn target(gateways: Vec<Gateway>, vs: Vec<VirtualService>) -> TargetEvidence {
        let workload: Workload = serde_json::from_value(json!({
            "kind": "Deployment", "namespace": "inference", "name": "vllm", "replicas": 2,
            "podLabels": {"app": "vllm"}, "podSpec": {"containers": []},
            "vllm": {"container": "vllm", "port": 8000}, "detectedBy": "image",
        }))
        .unwrap();
        TargetEvidence {
            workload,
            mesh: MeshContext {
                namespace_services: None,
                istio: IstioPresence::Installed,
                sidecar_mode: SidecarMode::Classic,
                sidecar_reason: String::new(),
                namespace_labels: BTreeMap::new(),
                services: vec![ServiceInfo {
                    namespace: "inference".to_string(),
                    name: "vllm".to_string(),
                    ports: vec![ServicePortInfo {
                        name: Some("http".to_string()),
                        port: 8000,
                        target_port: None,
                    }],
                }],
                virtual_services: vs,
                destination_rules: Vec::new(),
                envoy_filters: Vec::new(),
                peer_authentications: Vec::new(),
                authorization_policies: Vec::new(),
                request_authentications: Vec::new(),
                autoscaler: None,
                sidecars: Vec::new(),
                gateways,
                http_routes: Vec::new(),
                kube_gateways: Vec::new(),
                inference_pools: Vec::new(),
                endpoint_pickers: Vec::new(),
                ambient: None,
            },
            envoy: Vec::new(),
            gaps: Vec::new(),
            live_pods: Vec::new(),
            nodes: Vec::new(),
            probes: Vec::new(),
        }
    }

    /// A pod of Deployment `vllm` (ReplicaSet `vllm-abc`).
    fn vllm_pod(name: &str, ready: bool) -> ListedPod {
        let mut pod = pod(
            "inference",
            name,
            json!({"app": "vllm", "pod-template-hash": "abc"}),
            ready,
        );
        pod.metadata.owner_references = Some(vec![
            serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "vllm-abc", "uid": "u1"}))
            .unwrap(),
        ]);
        pod
    }

    fn vllm_deployment() -> k8s_openapi::api::apps::v1::Deployment {
        serde_json::from_value(json!({"metadata": {"name": "vllm", "namespace": "inference"}}))
            .unwrap()
    }

    fn gateway_service(target_port: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"}, "ports": [
                {"name": "http2", "port": 80, "targetPort": target_port},
                {"name": "https", "port": 443, "targetPort": 8443}]},
        }))
        .unwrap()
    }

    fn inventory(pods: Vec<ListedPod>, services: Vec<Service>) -> Inventory {
        Inventory {
            pods,
            services,
            ..Inventory::default()
        }
    }

    fn gateway_pods() -> Vec<ListedPod> {
        vec![
            pod(
                "istio-system",
                "istio-ingressgateway-b",
                json!({"istio": "ingressgateway"}),
                false,
            ),
            pod(
                "istio-system",
                "istio-ingressgateway-a",
                json!({"istio": "ingressgateway"}),
                true,
            ),
            pod("istio-system", "istiod-x", json!({"app": "istiod"}), true),
        ]
    }

    #[test]
    fn a_gateway_api_gateway_enters_through_its_labelled_pods_with_the_route_hostname() {
        let mut target = target(Vec::new(), Vec::new());
        target.mesh.kube_gateways = vec![
            serde_json::from_value(json!({
                "metadata": {"name": "inference-gateway", "namespace": "inference"},
                "spec": {"gatewayClassName": "istio", "listeners": [
                    {"name": "http", "port": 80, "protocol": "HTTP"},
                    {"name": "tcp", "port": 9000, "protocol": "TCP"}]},
            }))
            .unwrap(),
        ];
        target.mesh.http_routes = vec![
            serde_json::from_value(json!({
                "metadata": {"name": "llama", "namespace": "inference"},
                "spec": {"parentRefs": [{"name": "inference-gateway"}],
                         "hostnames": ["*.example.com", "llm.example.com"],
                         "rules": [{"backendRefs": [{"name": "vllm", "port": 8000}]}]},
            }))
            .unwrap(),
        ];
        let label = json!({"gateway.networking.k8s.io/gateway-name": "inference-gateway"});
        let inventory = inventory(
            vec![
                pod(
                    "inference",
                    "inference-gateway-istio-1",
                    label.clone(),
                    true,
                ),
                // The same label in another namespace is another Gateway's pod.
                pod("other", "inference-gateway-istio-2", label, true),
            ],
            Vec::new(),
        );
        let entries = ingress_gateways(&inventory, &target);
        assert_eq!(entries.len(), 1, "{entries:#?}");
        let entry = &entries[0];
        assert_eq!(entry.gateway_pod.name, "inference-gateway-istio-1");
        assert_eq!((entry.listener_port, entry.server_port), (80, 80));
        assert_eq!(entry.host_header, "llm.example.com");
        assert_eq!(
            entry.gateway.to_string(),
            "Gateway inference/inference-gateway"
        );
        let admin = admin_pods(&inventory, &Owners::new(&inventory), &target);
        assert!(
            admin
                .iter()
                .any(|(pod, side)| pod.name == "inference-gateway-istio-1"
                    && *side == EnvoySide::Client),
            "{admin:?}"
        );
    }

    #[test]
    fn direct_pods_put_ready_pods_first_and_skip_finished_ones() {
        let mut finished = vllm_pod("vllm-old", true);
        finished.status.as_mut().unwrap().phase = Some("Succeeded".to_string());
        let mut inventory = inventory(
            vec![
                vllm_pod("vllm-b", false),
                vllm_pod("vllm-a", true),
                vllm_pod("vllm-c", true),
                finished,
            ],
            Vec::new(),
        );
        inventory.deployments.push(vllm_deployment());
        let workload = target(Vec::new(), Vec::new()).workload;
        let pod = |name: &str| (ObjectRef::new("Pod", Some("inference"), name), 8000);
        assert_eq!(
            direct_pods(&Owners::new(&inventory), &workload),
            vec![pod("vllm-a"), pod("vllm-c"), pod("vllm-b")]
        );
    }

    #[test]
    fn gateway_entries_use_the_service_target_port_and_the_bound_host() {
        let servers = json!([
            {"port": {"number": 443, "name": "https", "protocol": "HTTPS"}, "hosts": ["*"]},
            {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*.example.com"]},
        ]);
        let target = target(
            vec![gateway("istio-system", "public", servers)],
            vec![virtual_service(
                json!(["istio-system/public"]),
                json!(["llm.example.com"]),
            )],
        );
        let inventory = inventory(gateway_pods(), vec![gateway_service(json!(8080))]);
        let entries = ingress_gateways(&inventory, &target);
        assert_eq!(entries.len(), 4, "{entries:#?}");
        let first = &entries[0];
        assert_eq!(first.gateway_pod.name, "istio-ingressgateway-a");
        assert_eq!(first.gateway_pod.namespace.as_deref(), Some("istio-system"));
        assert_eq!(first.protocol, "HTTP");
        assert_eq!((first.server_port, first.listener_port), (80, 8080));
        assert_eq!(first.host_header, "llm.example.com");
        assert_eq!(
            first.gateway,
            ObjectRef::new("Gateway", Some("istio-system"), "public")
        );
        assert_eq!(entries[1].gateway_pod.name, "istio-ingressgateway-b");
        assert_eq!(entries[2].protocol, "HTTPS");
        assert_eq!(entries[2].listener_port, 8443);
    }

    #[test]
    fn listener_port_falls_back_to_named_ports_container_ports_and_the_chart_convention() {
        let pods = gateway_pods();
        let named = inventory(pods.clone(), vec![gateway_service(json!("http2"))]);
        assert_eq!(listener_port(&named, &pods[1], 80), 8080);
        let no_service = inventory(pods.clone(), Vec::new());
        assert_eq!(listener_port(&no_service, &pods[1], 80), 8080);
        assert_eq!(listener_port(&no_service, &pods[1], 8443), 8443);
        assert_eq!(listener_port(&no_service, &pods[1], 9000), 9000);
    }

    #[test]
    fn unbound_gateways_and_foreign_hosts_give_no_entry() {
        let servers = json!([{"port": {"number": 80, "protocol": "HTTP"}, "hosts": ["other/*"]}]);
        let inventory = inventory(gateway_pods(), Vec::new());
        // Bound, but the server only admits VirtualServices of namespace `other`.
        let foreign = target(
            vec![gateway("istio-system", "public", servers)],
            vec![virtual_service(
                json!(["istio-system/public"]),
                json!(["llm.example.com"]),
            )],
        );
        assert!(ingress_gateways(&inventory, &foreign).is_empty());
        // The VirtualService names a gateway of its own namespace, not istio-system's.
        let servers = json!([{"port": {"number": 80}, "hosts": ["*"]}]);
        let unbound = target(
            vec![gateway("istio-system", "public", servers)],
            vec![virtual_service(json!(["public"]), json!(["*"]))],
        );
        assert!(ingress_gateways(&inventory, &unbound).is_empty());
    }

    #[test]
    fn wildcard_hosts_fall_back_to_the_service_fqdn() {
        let servers = json!([{"port": {"number": 80}, "hosts": ["*"]}]);
        let target = target(
            vec![gateway("inference", "gw", servers)],
            vec![virtual_service(json!(["gw"]), json!(["*"]))],
        );
        let entries = ingress_gateways(&inventory(gateway_pods(), Vec::new()), &target);
        assert_eq!(entries[0].host_header, "vllm.inference.svc.cluster.local");
        assert_eq!(entries[0].protocol, "HTTP");
        assert_eq!(entries[0].listener_port, 8080);
    }

    #[test]
    fn admin_pods_are_sidecar_pods_then_gateway_pods() {
        let servers = json!([{"port": {"number": 80}, "hosts": ["*"]}]);
        let target = target(
            vec![gateway("istio-system", "public", servers)],
            vec![virtual_service(
                json!(["istio-system/public"]),
                json!(["llm.example.com"]),
            )],
        );
        let mut pods = gateway_pods();
        pods.push(vllm_pod("vllm-a", true));
        let mut no_proxy = vllm_pod("vllm-z", true);
        no_proxy.spec.as_mut().unwrap().containers.pop();
        pods.push(no_proxy);
        let mut inventory = inventory(pods, Vec::new());
        inventory.deployments.push(vllm_deployment());
        let admin = admin_pods(&inventory, &Owners::new(&inventory), &target);
        let names: Vec<(&str, EnvoySide)> = admin
            .iter()
            .map(|(pod, side)| (pod.name.as_str(), *side))
            .collect();
        assert_eq!(
            names,
            vec![
                ("vllm-a", EnvoySide::Server),
                ("istio-ingressgateway-a", EnvoySide::Client),
                ("istio-ingressgateway-b", EnvoySide::Client),
            ]
        );
    }

    #[test]
    fn selectors_and_hosts() {
        let selector: BTreeMap<String, String> = [
            ("istio".to_string(), "ingressgateway".to_string()),
            ("app".to_string(), "gw".to_string()),
        ]
        .into();
        assert_eq!(selector_text(&selector), "app=gw,istio=ingressgateway");
        assert!(gateway_host_matches("*.example.com", "llm.example.com"));
        assert!(!gateway_host_matches("*.example.com", "example.com"));
        assert!(gateway_host_matches("llm.example.com", "*.example.com"));
    }
}
