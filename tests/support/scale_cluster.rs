//! A generated cluster for scale: `namespaces` namespaces (injection on), each with
//! `deployments` vLLM Deployments of `replicas` pods, a Service, a VirtualService through the
//! ingress gateway and a DestinationRule per Deployment, and `other_pods` pods that run no
//! model; one ingress gateway in `istio-system` with `gateway_pods` pods. No port-forward is
//! wired, so every Envoy admin port refuses, as on a locked-down cluster.

use super::apiserver::rollout::roll_out;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub namespaces: usize,
    pub deployments: usize,
    pub replicas: usize,
    pub other_pods: usize,
    pub gateway_pods: usize,
}

impl Shape {
    /// The cluster: 100 namespaces, 500 Deployments x 10 pods, 800 other pods.
    pub const LARGE: Shape = Shape {
        namespaces: 100,
        deployments: 5,
        replicas: 10,
        other_pods: 800,
        gateway_pods: 2,
    };

    pub fn workloads(&self) -> usize {
        self.namespaces * self.deployments
    }

    pub fn pods(&self) -> usize {
        self.workloads() * self.replicas + self.other_pods + self.gateway_pods
    }
}

pub fn objects(shape: Shape) -> Vec<Value> {
    let mut manifests = Vec::new();
    for n in 0..shape.namespaces {
        let namespace = format!("team-{n:03}");
        manifests.push(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {
                "kubernetes.io/metadata.name": namespace, "istio-injection": "enabled"}},
            "status": {"phase": "Active"},
        }));
        for d in 0..shape.deployments {
            let name = format!("llm-{d:02}");
            manifests.extend(model(&namespace, &name, shape.replicas));
        }
    }
    let per_namespace = shape.other_pods.div_ceil(shape.namespaces.max(1));
    let mut other = 0;
    'outer: for n in 0..shape.namespaces {
        for i in 0..per_namespace {
            if other == shape.other_pods {
                break 'outer;
            }
            manifests.push(other_pod(&format!("team-{n:03}"), &format!("web-{i:03}")));
            other += 1;
        }
    }
    let mut objects = roll_out(manifests, "default");
    objects.extend(gateway(shape.gateway_pods));
    objects
}

fn model(namespace: &str, name: &str, replicas: usize) -> Vec<Value> {
    let host = format!("{name}.{namespace}.svc.cluster.local");
    vec![
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "generation": 1, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{
                        "name": "vllm",
                        "image": "vllm/vllm-openai:v0.8.5",
                        "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-num-seqs", "64"],
                        "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                                      "limits": {"nvidia.com/gpu": "1"}},
                    }]},
                },
            },
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {"selector": {"app": name},
                "ports": [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}]},
        }),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "hosts": [format!("{name}.{namespace}.example.com")],
                "gateways": ["istio-system/llm-gateway"],
                "http": [{"timeout": "0s", "route": [{"destination": {"host": host, "port": {"number": 8000}}}]}],
            },
        }),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"host": host, "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 1000}}}},
        }),
    ]
}

fn other_pod(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"},
            "annotations": {"sidecar.istio.io/inject": "false"},
            "creationTimestamp": "2025-02-01T08:00:00Z"},
        "spec": {"nodeName": "node-web", "containers": [{"name": "web", "image": "nginx:1.27",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "startTime": "2025-02-01T08:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

fn gateway(pods: usize) -> Vec<Value> {
    let mut objects = vec![
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "istio-system", "labels": {"kubernetes.io/metadata.name": "istio-system"}},
            "status": {"phase": "Active"},
        }),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "llm-gateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "ports": [{"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        }),
    ];
    for index in 0..pods {
        objects.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": format!("istio-ingressgateway-6b8f9d7c5-{index:05}"), "namespace": "istio-system",
                "labels": {"istio": "ingressgateway", "app": "istio-ingressgateway"},
                "creationTimestamp": "2025-02-01T08:00:00Z",
            },
            "spec": {"containers": [{
                "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2",
                "args": ["proxy", "router"],
                "ports": [{"name": "http2", "containerPort": 8080, "protocol": "TCP"}],
            }]},
            "status": {"phase": "Running", "startTime": "2025-02-01T08:00:00Z",
                "conditions": [{"type": "Ready", "status": "True"}]},
        }));
    }
    objects
}
