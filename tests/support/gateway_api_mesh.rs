//! The cluster of [`super::live_mesh`] with the Gateway API in front instead of an Istio
//! ingress gateway: a Gateway of class `istio` in the workload's namespace, its proxy pod
//! (labelled `gateway.networking.k8s.io/gateway-name`, listening on the listener's port 80), an
//! HTTPRoute `inference/llama-8b` to the vLLM Service or to an InferencePool of its pods, and
//! the pool's endpoint picker (Service `llama-epp`, one ready pod). The client Envoy of the pair
//! plays the gateway pod: its route is named as Istio names the HTTPRoute's rule 0 when the
//! bootstrap's `http_route` is `llama-8b`, and its ext_proc cluster is the picker's.

use super::apiserver::rollout::roll_out;
use super::live_mesh::{GatewayPod, NAMESPACE, PUBLIC_HOST, objects};
use kubectl_infermesh::lab::envoy::bootstrap::LAB_PORT;
use serde_json::{Value, json};

pub const GATEWAY: &str = "inference-gateway";
pub const HTTP_ROUTE: &str = "llama-8b";
pub const POOL: &str = "llama-8b";
/// The picker's Service, as the lab bootstrap's `EXT_PROC_CLUSTER` names it.
pub const PICKER_SERVICE: &str = "llama-epp";
const PICKER_PORT: u16 = 9002;

/// The Gateway's proxy pod, where Istio's gateway deployment runs it.
pub const GATEWAY_API_POD: GatewayPod = GatewayPod {
    namespace: NAMESPACE,
    name: "inference-gateway-istio-5d8c7b9f4-h7j2k",
    listener: 80,
};

/// What the HTTPRoute sends traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The vLLM Service, port 8000.
    Service,
    /// An InferencePool of the vLLM pods with this `failureMode`.
    Pool { failure_mode: &'static str },
}

/// The cluster: the workload of [`objects`] without the Istio ingress gateway and its
/// VirtualService, and the Gateway API in front; `timeout` is the route rule's
/// `timeouts.request` when given.
pub fn gateway_api_objects(timeout: Option<&str>, backend: Backend) -> Vec<Value> {
    let mut cluster: Vec<Value> = objects()
        .into_iter()
        .filter(|object| {
            let istio_ingress = object["metadata"]["namespace"] == "istio-system";
            let virtual_service = object["kind"] == "VirtualService";
            !istio_ingress && !virtual_service
        })
        .collect();
    let backend_ref = match backend {
        Backend::Service => json!({"name": "vllm", "port": LAB_PORT}),
        Backend::Pool { .. } => json!({
            "group": "inference.networking.k8s.io", "kind": "InferencePool", "name": POOL}),
    };
    let mut rule = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": "/v1/"}}],
        "backendRefs": [backend_ref],
    });
    if let Some(timeout) = timeout {
        rule["timeouts"] = json!({"request": timeout});
    }
    cluster.extend(istio_gateway(GATEWAY_API_POD, GATEWAY, "Same"));
    cluster.extend([
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": HTTP_ROUTE, "namespace": NAMESPACE},
            "spec": {"parentRefs": [{"name": GATEWAY, "sectionName": "http"}],
                "hostnames": [PUBLIC_HOST], "rules": [rule]},
        }),
        gateway_pod(),
    ]);
    if let Backend::Pool { failure_mode } = backend {
        cluster.extend(picker(failure_mode));
    }
    cluster
}

/// GatewayClass `istio` and Gateway `name` in `pod`'s namespace: one HTTP listener on `pod`'s
/// port for the public host, taking routes from `routes_from` (`Same`, `All`).
pub fn istio_gateway(pod: GatewayPod, name: &str, routes_from: &str) -> [Value; 2] {
    [
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "istio"},
            "spec": {"controllerName": "istio.io/gateway-controller"},
        }),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": name, "namespace": pod.namespace},
            "spec": {"gatewayClassName": "istio", "listeners": [{
                "name": "http", "hostname": PUBLIC_HOST, "port": pod.listener,
                "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": routes_from}}}]},
        }),
    ]
}

/// The Gateway's proxy pod as Istio's gateway deployment controller writes it (one ready pod).
fn gateway_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": GATEWAY_API_POD.name, "namespace": NAMESPACE,
            "labels": {
                "gateway.networking.k8s.io/gateway-name": GATEWAY,
                "istio.io/gateway-name": GATEWAY,
                "sidecar.istio.io/inject": "false",
            },
            "creationTimestamp": "2025-02-01T08:00:00Z",
        },
        "spec": {"containers": [{
            "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2",
            "args": ["proxy", "router"],
            "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
        }]},
        "status": {
            "phase": "Running",
            "startTime": "2025-02-01T08:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

/// The InferencePool of the vLLM pods and its endpoint picker: Service and a Deployment rolled
/// out to one ready pod.
fn picker(failure_mode: &str) -> Vec<Value> {
    let pool = json!({
        "apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool",
        "metadata": {"name": POOL, "namespace": NAMESPACE},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "targetPorts": [{"number": LAB_PORT}],
            "endpointPickerRef": {"name": PICKER_SERVICE, "port": {"number": PICKER_PORT},
                "failureMode": failure_mode},
        },
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": PICKER_SERVICE, "namespace": NAMESPACE},
        "spec": {"selector": {"app": PICKER_SERVICE}, "ports": [{
            "name": "grpc-ext-proc", "port": PICKER_PORT, "targetPort": PICKER_PORT,
            "appProtocol": "http2"}]},
    });
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": PICKER_SERVICE, "namespace": NAMESPACE, "generation": 1},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": PICKER_SERVICE}},
            "template": {
                "metadata": {"labels": {"app": PICKER_SERVICE}},
                "spec": {"containers": [{
                    "name": "epp",
                    "image": "registry.k8s.io/gateway-api-inference-extension/epp:v1.0.0",
                    "args": ["--pool-name", POOL, "--pool-namespace", NAMESPACE],
                    "ports": [{"name": "grpc", "containerPort": PICKER_PORT}],
                }]},
            },
        },
        "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
            "readyReplicas": 1, "availableReplicas": 1},
    });
    let mut out = vec![pool, service];
    out.extend(
        roll_out(vec![deployment], NAMESPACE)
            .into_iter()
            .filter(|object| object["kind"] != "Namespace"),
    );
    out
}
