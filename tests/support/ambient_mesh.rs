//! The cluster of [`super::live_mesh`] in Istio's ambient mode: the `inference` namespace is
//! labelled `istio.io/dataplane-mode=ambient` (the vLLM pod carries no sidecar), ztunnel runs as a
//! DaemonSet in `istio-system` with a pod on the GPU node, and, with a waypoint, the namespace
//! names it (`istio.io/use-waypoint: waypoint`): a Gateway of class `istio-waypoint`, its pod on a
//! CPU node, and a mesh HTTPRoute (parent: the vLLM Service). The client Envoy of the pair plays
//! the waypoint pod: its cluster is named as a waypoint's (`inbound-vip|8000|http|…`) and its
//! route as Istio names the HTTPRoute's rule 0.

use super::apiserver::rollout::ROLLOUT_NODE;
use super::gateway_api_mesh::istio_gateway;
use super::live_mesh::{GatewayPod, NAMESPACE, PUBLIC_HOST, objects};
use kubectl_infermesh::lab::envoy::bootstrap::LAB_PORT;
use serde_json::{Value, json};

pub const WAYPOINT: &str = "waypoint";
pub const MESH_ROUTE: &str = "llama-8b";
pub const ZTUNNEL_POD: &str = "ztunnel-7k2mq";
/// The ingress Gateway (class `istio`) in its own namespace, outside `-n inference`.
pub const INGRESS_NAMESPACE: &str = "gateways";
pub const INGRESS: &str = "public";
pub const INGRESS_ROUTE: &str = "llama-8b-public";

/// The ingress Gateway's pod (HTTP on 80): the client Envoy of the pair plays it, sending to the
/// vLLM pod over HBONE.
pub const INGRESS_POD: GatewayPod = GatewayPod {
    namespace: INGRESS_NAMESPACE,
    name: "public-istio-7c9d8b6f5-m3n4p",
    listener: 80,
};
const CPU_NODE: &str = "cpu-node-1";

/// The waypoint's pod, as Istio's gateway controller deploys it (HBONE on 15008).
pub const WAYPOINT_POD: GatewayPod = GatewayPod {
    namespace: NAMESPACE,
    name: "waypoint-6f7d8c9b5-q2w4e",
    listener: 15008,
};

/// The cluster in ambient mode; with `waypoint`, the waypoint and a mesh HTTPRoute whose rule has
/// `timeouts.request: timeout` when given.
pub fn ambient_objects(waypoint: bool, timeout: Option<&str>) -> Vec<Value> {
    let mut cluster: Vec<Value> = objects()
        .into_iter()
        .filter(|object| {
            object["metadata"]["namespace"] != "istio-system"
                && object["kind"] != "VirtualService"
                && !(object["kind"] == "Namespace" && object["metadata"]["name"] == "istio-system")
        })
        .collect();
    for object in &mut cluster {
        if object["kind"] == "Namespace" && object["metadata"]["name"] == NAMESPACE {
            let mut labels = json!({
                "kubernetes.io/metadata.name": NAMESPACE,
                "istio.io/dataplane-mode": "ambient",
            });
            if waypoint {
                labels["istio.io/use-waypoint"] = json!(WAYPOINT);
            }
            object["metadata"]["labels"] = labels;
        }
        // What istiod's injector would have added does not exist in ambient mode.
        if object["kind"] == "Pod" && object["metadata"]["labels"]["app"] == "vllm" {
            if let Some(annotations) = object["metadata"]["annotations"].as_object_mut() {
                annotations.retain(|key, _| !key.starts_with("sidecar.istio.io/status"));
            }
            let spec = object["spec"].as_object_mut().unwrap();
            if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
                containers.retain(|container| container["name"] != "istio-proxy");
            }
            if let Some(init) = spec.get_mut("initContainers").and_then(Value::as_array_mut) {
                init.retain(|container| {
                    container["name"] != "istio-proxy" && container["name"] != "istio-init"
                });
            }
            if let Some(statuses) = object["status"]["containerStatuses"].as_array_mut() {
                statuses.retain(|status| status["name"] != "istio-proxy");
            }
        }
    }
    cluster.extend(ztunnel());
    cluster.push(node(ROLLOUT_NODE, true));
    cluster.push(node(CPU_NODE, false));
    if waypoint {
        cluster.extend(waypoint_objects(timeout));
    }
    cluster
}

/// [`ambient_objects`] with a Gateway API ingress in front, in its own namespace: Gateway
/// `gateways/public` (class `istio`, routes from every namespace), its pod, and an HTTPRoute in
/// `inference` from it to the vLLM Service. With a waypoint and `ingress_uses_waypoint`, the
/// Service carries `istio.io/ingress-use-waypoint: "true"`.
pub fn ambient_ingress_objects(waypoint: bool, ingress_uses_waypoint: bool) -> Vec<Value> {
    let mut cluster = ambient_objects(waypoint, None);
    if ingress_uses_waypoint {
        for object in &mut cluster {
            if object["kind"] == "Service" && object["metadata"]["name"] == "vllm" {
                object["metadata"]["labels"]["istio.io/ingress-use-waypoint"] = json!("true");
            }
        }
    }
    cluster.push(namespace(INGRESS_NAMESPACE));
    cluster.extend(istio_gateway(INGRESS_POD, INGRESS, "All"));
    cluster.extend([
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": INGRESS_ROUTE, "namespace": NAMESPACE},
            "spec": {"parentRefs": [{"name": INGRESS, "namespace": INGRESS_NAMESPACE, "sectionName": "http"}],
                "hostnames": [PUBLIC_HOST],
                "rules": [{"backendRefs": [{"name": "vllm", "port": LAB_PORT}]}]},
        }),
        gateway_pod(INGRESS_POD, INGRESS, "router"),
    ]);
    cluster
}

/// A pod of Gateway `gateway` as Istio's gateway controller deploys it on the CPU node (one ready
/// `istio-proxy` container running `proxy ROLE`).
fn gateway_pod(pod: GatewayPod, gateway: &str, role: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod.name, "namespace": pod.namespace,
            "labels": {
                "gateway.networking.k8s.io/gateway-name": gateway,
                "istio.io/gateway-name": gateway,
            },
            "creationTimestamp": "2025-02-01T08:00:00Z",
        },
        "spec": {"nodeName": CPU_NODE, "containers": [{
            "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2",
            "args": ["proxy", role],
        }]},
        "status": {
            "phase": "Running",
            "startTime": "2025-02-01T08:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

fn namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "status": {"phase": "Active"},
    })
}

fn node(name: &str, gpu: bool) -> Value {
    let mut allocatable = json!({"cpu": "32", "memory": "256Gi", "pods": "110"});
    if gpu {
        allocatable["nvidia.com/gpu"] = json!("8");
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {"allocatable": allocatable},
    })
}

/// ztunnel's DaemonSet and its pod on the GPU node (requests as Istio's chart sets them).
fn ztunnel() -> Vec<Value> {
    let container = json!({
        "name": "istio-proxy", "image": "docker.io/istio/ztunnel:1.24.2",
        "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}},
    });
    vec![
        namespace("istio-system"),
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "ztunnel", "namespace": "istio-system", "labels": {"app": "ztunnel"}},
            "spec": {
                "selector": {"matchLabels": {"app": "ztunnel"}},
                "template": {"metadata": {"labels": {"app": "ztunnel"}},
                    "spec": {"containers": [container.clone()]}},
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": ZTUNNEL_POD, "namespace": "istio-system",
                "labels": {"app": "ztunnel"}, "creationTimestamp": "2025-02-01T08:00:00Z"},
            "spec": {"nodeName": ROLLOUT_NODE, "containers": [container]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }),
    ]
}

fn waypoint_objects(timeout: Option<&str>) -> Vec<Value> {
    let mut rule = json!({"backendRefs": [{"name": "vllm", "port": LAB_PORT}]});
    if let Some(timeout) = timeout {
        rule["timeouts"] = json!({"request": timeout});
    }
    vec![
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "istio-waypoint"},
            "spec": {"controllerName": "istio.io/mesh-controller"},
        }),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": WAYPOINT, "namespace": NAMESPACE,
                "labels": {"istio.io/waypoint-for": "service"}},
            "spec": {"gatewayClassName": "istio-waypoint",
                "listeners": [{"name": "mesh", "port": WAYPOINT_POD.listener, "protocol": "HBONE"}]},
        }),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": MESH_ROUTE, "namespace": NAMESPACE},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "vllm", "port": LAB_PORT}],
                "rules": [rule]},
        }),
        {
            let mut pod = gateway_pod(WAYPOINT_POD, WAYPOINT, "waypoint");
            pod["spec"]["containers"][0]["resources"] =
                json!({"requests": {"cpu": "100m", "memory": "128Mi"}});
            pod
        },
    ]
}

/// The namespace a shared waypoint runs in, outside `-n inference`.
pub const WAYPOINT_NAMESPACE: &str = "mesh-waypoints";

/// The waypoint's pod moved to [`WAYPOINT_NAMESPACE`].
pub const SHARED_WAYPOINT_POD: GatewayPod = GatewayPod {
    namespace: WAYPOINT_NAMESPACE,
    ..WAYPOINT_POD
};

/// [`ambient_objects`] with a waypoint whose Gateway and pod live in [`WAYPOINT_NAMESPACE`]: the
/// `inference` namespace names it with `istio.io/use-waypoint-namespace`.
pub fn shared_waypoint_objects(timeout: Option<&str>) -> Vec<Value> {
    let mut cluster = ambient_objects(true, timeout);
    for object in &mut cluster {
        let is_waypoint = (object["kind"] == "Gateway" && object["metadata"]["name"] == WAYPOINT)
            || (object["kind"] == "Pod" && object["metadata"]["name"] == WAYPOINT_POD.name);
        if is_waypoint {
            object["metadata"]["namespace"] = json!(WAYPOINT_NAMESPACE);
        }
        if object["kind"] == "Namespace" && object["metadata"]["name"] == NAMESPACE {
            object["metadata"]["labels"]["istio.io/use-waypoint-namespace"] =
                json!(WAYPOINT_NAMESPACE);
        }
    }
    cluster.push(namespace(WAYPOINT_NAMESPACE));
    cluster
}
