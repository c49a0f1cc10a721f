//! Ambient mode around one target, from labels and objects in the inventory
//! (istio.io/latest/docs/ambient/usage/waypoint, istio.io/latest/docs/reference/config/labels):
//!
//! - **Which waypoint**: `istio.io/use-waypoint` on the target's Service (traffic addressed to the
//!   Service, which is how callers and gateways reach vLLM), else on its pods, else on its namespace;
//!   a more specific label wins, and `none` opts out at its level. `istio.io/use-waypoint-namespace`
//!   beside it names the waypoint's namespace (default: the labelled object's). The waypoint is the
//!   Gateway API `Gateway` of that name, class `istio-waypoint`; its `istio.io/waypoint-for` label
//!   (default `service`) says which traffic it takes: `workload` or `none` leave Service traffic
//!   to ztunnel alone. Its pods carry `gateway.networking.k8s.io/gateway-name`.
//! - **ztunnel per node**: the ztunnel pod (label `app=ztunnel`) on each node of the target's pods,
//!   else what ztunnel's DaemonSet asks of every node.
//! - **Which policy has no effect**: ztunnel is L4 only. Without a waypoint, VirtualService routes
//!   bound to the mesh, HTTPRoutes whose parent is a Service, and DestinationRule traffic policy run
//!   nowhere for in-mesh callers; a gateway on the path still runs what is bound to it (and, for a
//!   DestinationRule, its outbound cluster to the Service). Sidecar resources configure sidecars
//!   only. What runs nowhere is taken out of the lists the checks judge and listed as `NoEffect`.

use crate::evidence::ambient::{
    INGRESS_USE_WAYPOINT, NoEffect, USE_WAYPOINT, USE_WAYPOINT_NAMESPACE, WAYPOINT_CLASS,
    WAYPOINT_FOR, WaypointPod, WaypointRef, ZTUNNEL_APP, ZtunnelNode,
};
use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::{ListedContainer, ListedPod};
use crate::evidence::nodes::{cpu_millis, is_gpu_resource, whole_number};
use crate::evidence::objects::gateway_api::GATEWAY_API_GROUP;
use crate::evidence::objects::{DestinationRule, KubeHttpRoute, TrafficPolicy, VirtualService};
use crate::evidence::resolve::delegation;
use crate::evidence::resolve::target_refs::GATEWAY_NAME_LABEL;
use crate::evidence::{
    CheckId, Gap, LivePod, MeshContext, ObjectRef, ServiceInfo, TargetEvidence, Workload,
};
use k8s_openapi::api::core::v1::{Node, ResourceRequirements};
use std::collections::BTreeMap;

/// The waypoint for traffic to the target's Services, why, and what the inventory lacks of it.
pub fn waypoint(
    inventory: &Inventory,
    workload: &Workload,
    namespace_labels: Option<&BTreeMap<String, String>>,
    services: &[ServiceInfo],
) -> (Option<WaypointRef>, String, Vec<Gap>) {
    let mut gaps = Vec::new();
    let mut levels: Vec<(String, &BTreeMap<String, String>, &str)> = Vec::new();
    let mut ingress_uses_it = None;
    for service in services {
        let labels = inventory
            .services
            .iter()
            .find(|found| {
                found.metadata.namespace.as_deref() == Some(service.namespace.as_str())
                    && found.metadata.name.as_deref() == Some(service.name.as_str())
            })
            .and_then(|found| found.metadata.labels.as_ref());
        if ingress_uses_it.is_none() && labels.is_some_and(ingress_label_set) {
            ingress_uses_it = Some(format!("Service {}/{}", service.namespace, service.name));
        }
        if let Some(labels) = labels.filter(|labels| labels.contains_key(USE_WAYPOINT)) {
            levels.push((
                format!("Service {}/{}", service.namespace, service.name),
                labels,
                service.namespace.as_str(),
            ));
        }
    }
    if workload.pod_labels.contains_key(USE_WAYPOINT) {
        levels.push((
            format!("pods of {}", workload.target_name()),
            &workload.pod_labels,
            workload.namespace.as_str(),
        ));
    }
    if let Some(labels) = namespace_labels.filter(|labels| labels.contains_key(USE_WAYPOINT)) {
        levels.push((
            format!("namespace {}", workload.namespace),
            labels,
            workload.namespace.as_str(),
        ));
    }
    if ingress_uses_it.is_none() && namespace_labels.is_some_and(ingress_label_set) {
        ingress_uses_it = Some(format!("namespace {}", workload.namespace));
    }
    let Some((whose, labels, own_namespace)) = levels.into_iter().next() else {
        let reason = match namespace_labels {
            Some(_) => format!("no {USE_WAYPOINT} label on the Service, the pods or the namespace"),
            None => format!(
                "no {USE_WAYPOINT} label on the Service or the pods; the namespace's labels are unknown"
            ),
        };
        return (None, reason, gaps);
    };
    let name = labels.get(USE_WAYPOINT).cloned().unwrap_or_default();
    let label = format!("{whose} label {USE_WAYPOINT}={name}");
    if name == "none" || name.is_empty() {
        return (None, format!("{label}: opted out of a waypoint"), gaps);
    }
    let namespace = labels
        .get(USE_WAYPOINT_NAMESPACE)
        .cloned()
        .unwrap_or_else(|| own_namespace.to_string());
    let gateway = inventory.kube_gateways.iter().find(|gateway| {
        gateway.metadata.namespace.as_deref() == Some(namespace.as_str())
            && gateway.metadata.name.as_deref() == Some(name.as_str())
    });
    let waypoint_for = gateway
        .and_then(|gateway| gateway.metadata.labels.as_ref())
        .and_then(|labels| labels.get(WAYPOINT_FOR))
        .cloned();
    let what = format!("Gateway {namespace}/{name} ({GATEWAY_API_GROUP})");
    match gateway {
        None => gaps.push(Gap::new(
            what,
            format!(
                "the waypoint {label} names, not in the inventory: its class, pods and Envoy are unknown; \
                 taken as running the L7 policy for the Service"
            ),
        )),
        Some(gateway) if gateway.spec.gateway_class_name != WAYPOINT_CLASS => {
            return (
                None,
                format!(
                    "{label} names {what}, whose class is {:?}, not {WAYPOINT_CLASS}: it is no waypoint",
                    gateway.spec.gateway_class_name
                ),
                gaps,
            );
        }
        Some(_) => {}
    }
    if let Some(takes) = waypoint_for.as_deref()
        && matches!(takes, "workload" | "none")
    {
        return (
            None,
            format!(
                "{label} names {namespace}/{name}, but its {WAYPOINT_FOR}={takes}: traffic addressed to the \
                 Service does not pass it"
            ),
            gaps,
        );
    }
    let pods = waypoint_pods(inventory, &namespace, &name);
    (
        Some(WaypointRef {
            namespace,
            name,
            found: gateway.is_some(),
            waypoint_for,
            pods,
            ingress_uses_it,
        }),
        label,
        gaps,
    )
}

fn ingress_label_set(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get(INGRESS_USE_WAYPOINT)
        .is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// Fills the waypoint pods of targets resolved before those pods were in the inventory (a live
/// source lists a waypoint's pods outside `-n` once the targets name it).
pub fn refill_waypoint_pods(targets: &mut [TargetEvidence], inventory: &Inventory) {
    for target in targets {
        let waypoint = target
            .mesh
            .ambient
            .as_mut()
            .and_then(|ambient| ambient.waypoint.as_mut());
        if let Some(waypoint) = waypoint.filter(|waypoint| waypoint.pods.is_empty()) {
            waypoint.pods = waypoint_pods(inventory, &waypoint.namespace, &waypoint.name);
        }
    }
}

/// The waypoint's pods in `inventory`, sorted by name.
pub fn waypoint_pods(inventory: &Inventory, namespace: &str, name: &str) -> Vec<WaypointPod> {
    let mut pods: Vec<WaypointPod> = inventory
        .pods
        .iter()
        .filter(|pod| pod.metadata.namespace.as_deref() == Some(namespace))
        .filter(|pod| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|labels| labels.get(GATEWAY_NAME_LABEL))
                .map(String::as_str)
                == Some(name)
        })
        .map(|pod| {
            let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone());
            let (cpu_request, memory_request) =
                requests(first_container(pod).and_then(|c| c.resources.as_ref()));
            WaypointPod {
                name: pod.metadata.name.clone().unwrap_or_default(),
                gpu_node: node
                    .as_deref()
                    .and_then(|node| find_node(inventory, node))
                    .is_some_and(has_gpus),
                node,
                cpu_request,
                memory_request,
            }
        })
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    pods
}

/// The proxy container of a waypoint or ztunnel pod: `istio-proxy`, `istio-proxy`-like, else
/// the first.
fn first_container(pod: &ListedPod) -> Option<&ListedContainer> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .find(|container| container.name == "istio-proxy" || container.name == "istio-ztunnel")
        .or_else(|| spec.containers.first())
}

fn requests(resources: Option<&ResourceRequirements>) -> (Option<String>, Option<String>) {
    let read = |name: &str| {
        let requests = resources.and_then(|resources| resources.requests.as_ref());
        let limits = resources.and_then(|resources| resources.limits.as_ref());
        requests
            .and_then(|requests| requests.get(name))
            .or_else(|| limits.and_then(|limits| limits.get(name)))
            .map(|quantity| quantity.0.clone())
    };
    (read("cpu"), read("memory"))
}

fn find_node<'a>(inventory: &'a Inventory, name: &str) -> Option<&'a Node> {
    inventory
        .nodes
        .iter()
        .find(|node| node.metadata.name.as_deref() == Some(name))
}

fn has_gpus(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|status| status.allocatable.as_ref())
        .is_some_and(|allocatable| {
            allocatable.iter().any(|(resource, quantity)| {
                is_gpu_resource(resource) && whole_number(quantity).is_some_and(|count| count > 0)
            })
        })
}

fn is_ztunnel(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels
        .and_then(|labels| labels.get("app"))
        .map(String::as_str)
        == Some(ZTUNNEL_APP)
}

/// The ztunnel on each node of `pods` (a node whose ztunnel pod is not in the inventory falls
/// back on the DaemonSet's template); without live pods, the DaemonSet's template for every node.
/// `gpu_workload` marks the nodes of a GPU workload's pods as GPU nodes even when the Node is not
/// listed.
pub fn ztunnel(inventory: &Inventory, pods: &[LivePod], gpu_workload: bool) -> Vec<ZtunnelNode> {
    let template = inventory
        .daemon_sets
        .iter()
        .find(|set| {
            is_ztunnel(set.metadata.labels.as_ref())
                || set
                    .spec
                    .template
                    .metadata
                    .as_ref()
                    .is_some_and(|meta| is_ztunnel(meta.labels.as_ref()))
        })
        .and_then(|set| {
            let spec = set.spec.template.spec.as_ref()?;
            let (index, container) = spec
                .containers
                .iter()
                .enumerate()
                .find(|(_, container)| container.name == "istio-proxy")
                .or_else(|| spec.containers.iter().enumerate().next())?;
            Some((
                ObjectRef::new(
                    "DaemonSet",
                    set.metadata.namespace.as_deref(),
                    set.metadata.name.as_deref().unwrap_or_default(),
                ),
                format!("spec/template/spec/containers[{index}]/resources/requests"),
                requests(container.resources.as_ref()),
            ))
        });
    let mut nodes: Vec<&str> = pods.iter().filter_map(|pod| pod.node.as_deref()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    if nodes.is_empty() {
        return template
            .map(|(source, path, (cpu, memory))| ZtunnelNode {
                node: "every node".to_string(),
                source,
                path,
                cpu_request: cpu,
                memory_request: memory,
                gpu_node: gpu_workload,
                allocatable_cpu_millis: None,
            })
            .into_iter()
            .collect();
    }
    nodes
        .into_iter()
        .filter_map(|node| {
            let listed = find_node(inventory, node);
            let allocatable_cpu_millis = listed
                .and_then(|node| node.status.as_ref()?.allocatable.as_ref()?.get("cpu"))
                .and_then(cpu_millis);
            let gpu_node = gpu_workload || listed.is_some_and(has_gpus);
            let on_node = inventory.pods.iter().find(|pod| {
                is_ztunnel(pod.metadata.labels.as_ref())
                    && pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref()) == Some(node)
            });
            let (source, path, (cpu, memory)) = match on_node {
                Some(pod) => {
                    let spec = pod.spec.as_ref()?;
                    let index = spec
                        .containers
                        .iter()
                        .position(|container| container.name == "istio-proxy")
                        .unwrap_or(0);
                    (
                        ObjectRef::new(
                            "Pod",
                            pod.metadata.namespace.as_deref(),
                            pod.metadata.name.as_deref().unwrap_or_default(),
                        ),
                        format!("spec/containers[{index}]/resources/requests"),
                        requests(spec.containers.get(index)?.resources.as_ref()),
                    )
                }
                None => template.clone()?,
            };
            Some(ZtunnelNode {
                node: node.to_string(),
                source,
                path,
                cpu_request: cpu,
                memory_request: memory,
                gpu_node,
                allocatable_cpu_millis,
            })
        })
        .collect()
}

const NO_WAYPOINT: &str = "no waypoint serves the Service and ztunnel runs L4 only";

/// Takes out of `mesh` what no proxy on the path runs, and lists it. With a waypoint, the policy
/// for the Service runs there and only Sidecar resources (sidecars only) have no effect.
pub fn set_aside(mesh: &mut MeshContext, waypoint: bool) -> Vec<NoEffect> {
    let mut out = Vec::new();
    // Sidecar resources configure injected proxies; an ambient pod has none.
    for sidecar in std::mem::take(&mut mesh.sidecars) {
        out.push(NoEffect {
            object: ObjectRef::of("Sidecar", &sidecar.metadata),
            path: "spec".to_string(),
            value: "Sidecar".to_string(),
            check: CheckId::ConnectionPool,
            reason: "a Sidecar configures injected proxies; ambient pods have none (ztunnel and waypoints ignore it)"
                .to_string(),
        });
    }
    if waypoint {
        return out;
    }
    let gateway_on_path = !mesh.gateways.is_empty()
        || mesh
            .kube_gateways
            .iter()
            .any(|gateway| gateway.spec.gateway_class_name != WAYPOINT_CLASS);

    // Delegates stay: they run only through a root, and a root set aside runs nowhere.
    mesh.virtual_services.retain(|vs| {
        if delegation::is_delegate(vs) {
            return true;
        }
        let mesh_bound =
            vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
        if !mesh_bound {
            return true;
        }
        let gateways_too = vs.spec.gateways.iter().any(|g| g != "mesh");
        virtual_service_no_effect(vs, gateways_too, &mut out);
        gateways_too
    });

    let mut kept_routes = Vec::new();
    for route in std::mem::take(&mut mesh.http_routes) {
        if http_route_no_effect(&route, &mut out) {
            kept_routes.push(route);
        }
    }
    mesh.http_routes = kept_routes;

    if !gateway_on_path {
        for rule in std::mem::take(&mut mesh.destination_rules) {
            destination_rule_no_effect(&rule, &mut out);
        }
    }
    out
}

/// The mesh binding of `vs` runs nowhere: its route timeouts and retries, or (having none) its
/// routes as a whole.
fn virtual_service_no_effect(vs: &VirtualService, gateways_too: bool, out: &mut Vec<NoEffect>) {
    let object = ObjectRef::of("VirtualService", &vs.metadata);
    if gateways_too {
        let index = vs
            .spec
            .gateways
            .iter()
            .position(|gateway| gateway == "mesh")
            .unwrap_or(0);
        out.push(NoEffect {
            object,
            path: format!("spec/gateways[{index}]"),
            value: "mesh".to_string(),
            check: CheckId::StreamTimeout,
            reason: format!(
                "the gateways it names run it, callers inside the mesh do not: {NO_WAYPOINT}"
            ),
        });
        return;
    }
    let reason = format!("bound to the mesh only: {NO_WAYPOINT}");
    let before = out.len();
    for (index, route) in vs.spec.http.iter().enumerate() {
        if let Some(timeout) = &route.timeout {
            out.push(NoEffect {
                object: object.clone(),
                path: format!("spec/http[{index}]/timeout"),
                value: timeout.clone(),
                check: CheckId::StreamTimeout,
                reason: reason.clone(),
            });
        }
        if let Some(retries) = &route.retries {
            out.push(NoEffect {
                object: object.clone(),
                path: format!("spec/http[{index}]/retries"),
                value: serde_json::to_string(retries).unwrap_or_default(),
                check: CheckId::ConnectionPool,
                reason: reason.clone(),
            });
        }
    }
    if out.len() == before {
        out.push(NoEffect {
            object,
            path: "spec/http".to_string(),
            value: format!("{} routes", vs.spec.http.len()),
            check: CheckId::StreamTimeout,
            reason,
        });
    }
}

/// Records the Service parents of `route` as running nowhere; whether the route stays (a Gateway
/// parent still runs it).
fn http_route_no_effect(route: &KubeHttpRoute, out: &mut Vec<NoEffect>) -> bool {
    let object = ObjectRef::of("HTTPRoute", &route.metadata);
    let route_namespace = route.metadata.namespace.as_deref().unwrap_or("default");
    let mut on_gateway = false;
    let mut on_service = None;
    for (index, parent) in route.spec.parent_refs.iter().enumerate() {
        if parent.is_gateway() {
            on_gateway = true;
        } else if parent.kind.as_deref() == Some("Service") && on_service.is_none() {
            on_service = Some((
                index,
                format!(
                    "Service {}/{}",
                    parent.namespace.as_deref().unwrap_or(route_namespace),
                    parent.name
                ),
            ));
        }
    }
    let Some((index, parent)) = on_service else {
        return true;
    };
    let reason = if on_gateway {
        format!("its Service parent runs nowhere ({NO_WAYPOINT}); its Gateway parents still run it")
    } else {
        format!("its parent is a Service: {NO_WAYPOINT}")
    };
    let before = out.len();
    for (rule_index, rule) in route.spec.rules.iter().enumerate() {
        if let Some(timeouts) = &rule.timeouts {
            out.push(NoEffect {
                object: object.clone(),
                path: format!("spec/rules[{rule_index}]/timeouts"),
                value: serde_json::to_string(timeouts).unwrap_or_default(),
                check: CheckId::StreamTimeout,
                reason: reason.clone(),
            });
        }
        if let Some(retry) = &rule.retry {
            out.push(NoEffect {
                object: object.clone(),
                path: format!("spec/rules[{rule_index}]/retry"),
                value: serde_json::to_string(retry).unwrap_or_default(),
                check: CheckId::ConnectionPool,
                reason: reason.clone(),
            });
        }
    }
    if out.len() == before {
        out.push(NoEffect {
            object,
            path: format!("spec/parentRefs[{index}]"),
            value: parent,
            check: CheckId::StreamTimeout,
            reason,
        });
    }
    on_gateway
}

/// The connection pool and outlier detection of `rule` run nowhere without a waypoint or gateway.
fn destination_rule_no_effect(rule: &DestinationRule, out: &mut Vec<NoEffect>) {
    let object = ObjectRef::of("DestinationRule", &rule.metadata);
    let reason = format!(
        "no waypoint and no gateway runs an outbound cluster to the Service ({NO_WAYPOINT}: no circuit breaker, no ejection)"
    );
    let mut policies: Vec<(String, &TrafficPolicy)> = Vec::new();
    if let Some(policy) = &rule.spec.traffic_policy {
        policies.push(("spec/trafficPolicy".to_string(), policy));
    }
    for (index, subset) in rule.spec.subsets.iter().enumerate() {
        if let Some(policy) = &subset.traffic_policy {
            policies.push((format!("spec/subsets[{index}]/trafficPolicy"), policy));
        }
    }
    for (base, policy) in policies {
        let mut push = |path: String, value: String| {
            out.push(NoEffect {
                object: object.clone(),
                path,
                value,
                check: CheckId::ConnectionPool,
                reason: reason.clone(),
            });
        };
        if let Some(pool) = &policy.connection_pool {
            push(
                format!("{base}/connectionPool"),
                serde_json::to_string(pool).unwrap_or_default(),
            );
        }
        if let Some(outlier) = &policy.outlier_detection {
            push(
                format!("{base}/outlierDetection"),
                serde_json::to_string(outlier).unwrap_or_default(),
            );
        }
        for (index, port) in policy.port_level_settings.iter().enumerate() {
            if let Some(pool) = &port.connection_pool {
                push(
                    format!("{base}/portLevelSettings[{index}]/connectionPool"),
                    serde_json::to_string(pool).unwrap_or_default(),
                );
            }
            if let Some(outlier) = &port.outlier_detection {
                push(
                    format!("{base}/portLevelSettings[{index}]/outlierDetection"),
                    serde_json::to_string(outlier).unwrap_or_default(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::evidence::resolve::{Scope, gather};
    use crate::evidence::{CheckId, SidecarMode, TargetEvidence};
    use std::time::Duration;

    fn target(yaml: &str) -> TargetEvidence {
        let inventory = crate::sources::manifest::load_with_stdin(
            &[std::path::PathBuf::from("-")],
            "inference",
            &mut std::io::Cursor::new(yaml.to_string()),
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

    const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm}
spec:
  template:
    metadata: {labels: {app: vllm}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai, resources: {limits: {nvidia.com/gpu: "1"}}}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: vllm-abc
  labels: {app: vllm}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: vllm-5d8f, uid: "1"}]
spec:
  nodeName: gpu-1
  containers: [{name: vllm, image: vllm/vllm-openai, resources: {limits: {nvidia.com/gpu: "1"}}}]
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: vllm-5d8f
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: vllm, uid: "2"}]
spec: {selector: {matchLabels: {app: vllm}}}
---
apiVersion: v1
kind: Node
metadata: {name: gpu-1}
status: {allocatable: {cpu: "32", nvidia.com/gpu: "8"}}
---
apiVersion: v1
kind: Pod
metadata: {name: ztunnel-x1, namespace: istio-system, labels: {app: ztunnel}}
spec:
  nodeName: gpu-1
  containers: [{name: istio-proxy, image: istio/ztunnel, resources: {requests: {cpu: 200m, memory: 512Mi}}}]
status: {phase: Running}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ztunnel, namespace: istio-system, labels: {app: ztunnel}}
spec:
  selector: {matchLabels: {app: ztunnel}}
  template:
    metadata: {labels: {app: ztunnel}}
    spec: {containers: [{name: istio-proxy, image: istio/ztunnel, resources: {requests: {cpu: 200m, memory: 512Mi}}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vllm}
spec:
  hosts: [vllm]
  http: [{timeout: 60s, route: [{destination: {host: vllm}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: vllm}
spec:
  host: vllm
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}, outlierDetection: {consecutive5xxErrors: 1}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-route}
spec:
  parentRefs: [{group: "", kind: Service, name: vllm, port: 8000}]
  rules: [{backendRefs: [{name: vllm, port: 8000}], timeouts: {request: 30s}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec: {}
"#;

    fn with(namespace_labels: &str, service_labels: &str, extra: &str) -> TargetEvidence {
        target(&format!(
            r#"apiVersion: v1
kind: Namespace
metadata: {{name: inference, labels: {{{namespace_labels}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: vllm, labels: {{{service_labels}}}}}
spec: {{selector: {{app: vllm}}, ports: [{{port: 8000}}]}}
---
{WORKLOAD}---
{extra}"#
        ))
    }

    const WAYPOINT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, labels: {istio.io/waypoint-for: service}}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Pod
metadata: {name: waypoint-7c9-a, labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
spec:
  nodeName: gpu-1
  containers: [{name: istio-proxy, image: istio/proxyv2, resources: {requests: {cpu: 100m, memory: 128Mi}}}]
status: {phase: Running}
"#;

    fn paths(target: &TargetEvidence) -> Vec<String> {
        target
            .mesh
            .ambient
            .as_ref()
            .unwrap()
            .no_effect
            .iter()
            .map(|entry| format!("{} {}", entry.object, entry.path))
            .collect()
    }

    #[test]
    fn without_a_waypoint_l7_policy_runs_nowhere_and_is_set_aside() {
        let target = with("istio.io/dataplane-mode: ambient", "app: vllm", "");
        assert_eq!(target.mesh.sidecar_mode, SidecarMode::Ambient);
        let ambient = target.mesh.ambient.as_ref().unwrap();
        assert!(ambient.waypoint.is_none());
        assert!(
            ambient
                .waypoint_reason
                .starts_with("no istio.io/use-waypoint label"),
            "{}",
            ambient.waypoint_reason
        );
        assert!(target.mesh.virtual_services.is_empty());
        assert!(target.mesh.destination_rules.is_empty());
        assert!(target.mesh.http_routes.is_empty());
        assert!(target.mesh.sidecars.is_empty());
        assert_eq!(
            paths(&target),
            [
                "Sidecar inference/default spec",
                "VirtualService inference/vllm spec/http[0]/timeout",
                "HTTPRoute inference/mesh-route spec/rules[0]/timeouts",
                "DestinationRule inference/vllm spec/trafficPolicy/connectionPool",
                "DestinationRule inference/vllm spec/trafficPolicy/outlierDetection",
            ]
        );
        let checks: Vec<CheckId> = ambient.no_effect.iter().map(|entry| entry.check).collect();
        assert_eq!(
            checks,
            [
                CheckId::ConnectionPool,
                CheckId::StreamTimeout,
                CheckId::StreamTimeout,
                CheckId::ConnectionPool,
                CheckId::ConnectionPool
            ]
        );
        // ztunnel on the pod's node, read from its pod there.
        assert_eq!(ambient.ztunnel.len(), 1);
        let node = &ambient.ztunnel[0];
        assert_eq!(node.node, "gpu-1");
        assert_eq!(node.source.to_string(), "Pod istio-system/ztunnel-x1");
        assert_eq!(node.cpu_request.as_deref(), Some("200m"));
        assert!(node.gpu_node);
        assert_eq!(node.allocatable_cpu_millis, Some(32_000));
    }

    #[test]
    fn with_a_waypoint_the_policy_runs_there() {
        let target = with(
            "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint",
            "app: vllm",
            WAYPOINT,
        );
        let ambient = target.mesh.ambient.as_ref().unwrap();
        let waypoint = ambient.waypoint.as_ref().unwrap();
        assert_eq!(waypoint.display_name(), "inference/waypoint");
        assert!(waypoint.found);
        assert_eq!(waypoint.waypoint_for.as_deref(), Some("service"));
        assert_eq!(waypoint.pods.len(), 1);
        assert!(waypoint.pods[0].gpu_node);
        assert_eq!(
            ambient.waypoint_reason,
            "namespace inference label istio.io/use-waypoint=waypoint"
        );
        assert_eq!(target.mesh.virtual_services.len(), 1);
        assert_eq!(target.mesh.destination_rules.len(), 1);
        assert_eq!(target.mesh.http_routes.len(), 1);
        // Only the Sidecar resource has no effect.
        assert_eq!(paths(&target), ["Sidecar inference/default spec"]);
        assert!(target.gaps.is_empty(), "{:?}", target.gaps);
    }

    #[test]
    fn the_service_label_wins_over_the_namespace_and_none_opts_out() {
        let target = with(
            "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint",
            "istio.io/use-waypoint: none",
            WAYPOINT,
        );
        let ambient = target.mesh.ambient.as_ref().unwrap();
        assert!(ambient.waypoint.is_none());
        assert_eq!(
            ambient.waypoint_reason,
            "Service inference/vllm label istio.io/use-waypoint=none: opted out of a waypoint"
        );
        // And the other way round: the Service names the waypoint in an unlabelled namespace.
        let target = with(
            "istio.io/dataplane-mode: ambient",
            "istio.io/use-waypoint: waypoint",
            WAYPOINT,
        );
        assert!(target.mesh.ambient.unwrap().waypoint.is_some());
    }

    #[test]
    fn a_waypoint_for_workloads_only_does_not_take_service_traffic() {
        let workload_only = WAYPOINT.replace(
            "istio.io/waypoint-for: service",
            "istio.io/waypoint-for: workload",
        );
        let target = with(
            "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: waypoint",
            "app: vllm",
            &workload_only,
        );
        let ambient = target.mesh.ambient.as_ref().unwrap();
        assert!(ambient.waypoint.is_none());
        assert!(
            ambient
                .waypoint_reason
                .contains("istio.io/waypoint-for=workload")
        );
        assert!(target.mesh.virtual_services.is_empty());
    }

    #[test]
    fn a_gateway_on_the_path_still_runs_the_destination_rule() {
        let gateway = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public}
spec:
  hosts: [llm.example.com]
  gateways: [istio-system/public, mesh]
  http: [{timeout: 60s, route: [{destination: {host: vllm}}]}]
"#;
        let target = with("istio.io/dataplane-mode: ambient", "app: vllm", gateway);
        assert_eq!(target.mesh.destination_rules.len(), 1);
        let kept: Vec<_> = target
            .mesh
            .virtual_services
            .iter()
            .map(|vs| vs.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(kept, ["public"]);
        let paths = paths(&target);
        assert!(
            paths.contains(&"VirtualService inference/public spec/gateways[1]".to_string()),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"VirtualService inference/vllm spec/http[0]/timeout".to_string()),
            "{paths:?}"
        );
    }

    #[test]
    fn a_waypoint_not_in_the_inventory_is_a_gap_and_taken_as_running() {
        let target = with(
            "istio.io/dataplane-mode: ambient, istio.io/use-waypoint: shared, istio.io/use-waypoint-namespace: mesh-infra",
            "app: vllm",
            "",
        );
        let waypoint = target
            .mesh
            .ambient
            .as_ref()
            .unwrap()
            .waypoint
            .clone()
            .unwrap();
        assert_eq!(waypoint.display_name(), "mesh-infra/shared");
        assert!(!waypoint.found);
        assert!(
            target
                .gaps
                .iter()
                .any(|gap| gap.what == "Gateway mesh-infra/shared (gateway.networking.k8s.io)")
        );
    }

    #[test]
    fn without_live_pods_the_daemonset_template_counts_for_every_node() {
        let manifests = WORKLOAD
            .split("\n---\n")
            .filter(|doc| !doc.contains("kind: Pod"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        let target = target(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: inference, labels: {{istio.io/dataplane-mode: ambient}}}}\n---\n{manifests}"
        ));
        let ztunnel = &target.mesh.ambient.as_ref().unwrap().ztunnel;
        assert_eq!(ztunnel.len(), 1);
        assert_eq!(ztunnel[0].node, "every node");
        assert_eq!(
            ztunnel[0].source.to_string(),
            "DaemonSet istio-system/ztunnel"
        );
        assert_eq!(ztunnel[0].memory_request.as_deref(), Some("512Mi"));
    }

    #[test]
    fn sidecar_mode_has_no_ambient_context_and_old_evidence_loads() {
        let target = with("istio-injection: enabled", "app: vllm", "");
        assert!(target.mesh.ambient.is_none());
        assert_eq!(target.mesh.virtual_services.len(), 1);
        let json = serde_json::to_value(&target).unwrap();
        assert!(json["mesh"].get("ambient").is_none());
        let back: TargetEvidence = serde_json::from_value(json).unwrap();
        assert_eq!(back, target);
    }
}
