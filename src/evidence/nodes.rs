//! The node view for sidecar overhead: per node, the CPU that `istio-proxy` sidecars of meshed GPU
//! pods request, against the node's allocatable CPU. A pure function over live pods and nodes.

use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::{ListedContainer, ListedPod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const PROXY_CONTAINER: &str = "istio-proxy";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSidecarLoad {
    pub node: String,
    /// `status.allocatable.cpu` in millicores; `None` when the node was not listed (e.g. 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable_cpu_millis: Option<u64>,
    /// Allocatable GPUs by extended resource (`nvidia.com/gpu` → 8).
    #[serde(default)]
    pub allocatable_gpus: BTreeMap<String, u64>,
    /// `namespace/name` of the first [`NAMED_PODS`] meshed GPU pods on the node, by name: every
    /// target on the node carries this entry, so it must not grow with the node.
    pub meshed_gpu_pods: Vec<String>,
    /// How many meshed GPU pods run on the node (0 in evidence saved before it was counted:
    /// then every pod is named).
    #[serde(default)]
    pub meshed_gpu_pod_count: u64,
    /// GPUs those pods request.
    pub gpus_requested: u64,
    /// Sum of their `istio-proxy` CPU requests.
    pub sidecar_cpu_request_millis: u64,
}

/// How many pods a node's entry names; the rest are counted.
pub const NAMED_PODS: usize = 8;

impl NodeSidecarLoad {
    /// Meshed GPU pods on the node.
    pub fn pod_count(&self) -> u64 {
        self.meshed_gpu_pod_count
            .max(self.meshed_gpu_pods.len() as u64)
    }

    /// Sidecar CPU requests as a fraction of allocatable CPU.
    pub fn sidecar_cpu_share(&self) -> Option<f64> {
        match self.allocatable_cpu_millis {
            Some(allocatable) if allocatable > 0 => {
                Some(self.sidecar_cpu_request_millis as f64 / allocatable as f64)
            }
            _ => None,
        }
    }
}

/// One entry per node that runs at least one meshed GPU pod, sorted by node name.
pub fn node_view(inventory: &Inventory) -> Vec<NodeSidecarLoad> {
    let mut by_node: BTreeMap<String, NodeSidecarLoad> = BTreeMap::new();
    for pod in &inventory.pods {
        let Some(spec) = &pod.spec else { continue };
        let Some(node) = &spec.node_name else {
            continue;
        };
        if !holds_resources(pod) {
            continue;
        }
        let Some(proxy) = sidecar_container(pod) else {
            continue;
        };
        let gpus: u64 = spec.containers.iter().map(gpu_count).sum();
        if gpus == 0 {
            continue;
        }
        let entry = by_node
            .entry(node.clone())
            .or_insert_with(|| NodeSidecarLoad {
                node: node.clone(),
                allocatable_cpu_millis: None,
                allocatable_gpus: BTreeMap::new(),
                meshed_gpu_pods: Vec::new(),
                meshed_gpu_pod_count: 0,
                gpus_requested: 0,
                sidecar_cpu_request_millis: 0,
            });
        entry.meshed_gpu_pod_count += 1;
        let name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        keep_first_names(&mut entry.meshed_gpu_pods, name);
        entry.gpus_requested += gpus;
        entry.sidecar_cpu_request_millis += cpu_request_millis(proxy).unwrap_or(0);
    }
    for node in &inventory.nodes {
        let Some(name) = &node.metadata.name else {
            continue;
        };
        let Some(entry) = by_node.get_mut(name) else {
            continue;
        };
        let allocatable = node
            .status
            .as_ref()
            .and_then(|status| status.allocatable.as_ref());
        if let Some(allocatable) = allocatable {
            entry.allocatable_cpu_millis = allocatable.get("cpu").and_then(cpu_millis);
            entry.allocatable_gpus = allocatable
                .iter()
                .filter(|(resource, _)| is_gpu_resource(resource))
                .filter_map(|(resource, quantity)| {
                    whole_number(quantity).map(|count| (resource.clone(), count))
                })
                .collect();
        }
    }
    by_node.into_values().collect()
}

/// Adds `name` to the sorted `names` and keeps the first [`NAMED_PODS`].
fn keep_first_names(names: &mut Vec<String>, name: String) {
    if names.len() == NAMED_PODS && names.last().is_some_and(|last| *last <= name) {
        return;
    }
    let at = names.partition_point(|have| *have < name);
    names.insert(at, name);
    names.truncate(NAMED_PODS);
}

/// Pods that finished no longer hold their requests on the node.
fn holds_resources(pod: &ListedPod) -> bool {
    !matches!(pod.phase(), Some("Succeeded") | Some("Failed"))
}

/// `istio-proxy` as a regular container, or as a native sidecar (init container that restarts).
fn sidecar_container(pod: &ListedPod) -> Option<&ListedContainer> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .find(|container| container.name == PROXY_CONTAINER)
        .or_else(|| {
            spec.init_containers.iter().find(|container| {
                container.name == PROXY_CONTAINER
                    && container.restart_policy.as_deref() == Some("Always")
            })
        })
}

pub fn is_gpu_resource(name: &str) -> bool {
    name.ends_with("/gpu")
}

/// GPUs a container asks for (extended resources have request = limit; either may be written).
fn gpu_count(container: &ListedContainer) -> u64 {
    let Some(resources) = &container.resources else {
        return 0;
    };
    let sum = |map: Option<&BTreeMap<String, Quantity>>| -> u64 {
        map.map(|map| {
            map.iter()
                .filter(|(name, _)| is_gpu_resource(name))
                .filter_map(|(_, quantity)| whole_number(quantity))
                .sum()
        })
        .unwrap_or(0)
    };
    let requested = sum(resources.requests.as_ref());
    if requested > 0 {
        requested
    } else {
        sum(resources.limits.as_ref())
    }
}

/// The container's CPU request; Kubernetes defaults a missing request to the limit.
fn cpu_request_millis(container: &ListedContainer) -> Option<u64> {
    let resources = container.resources.as_ref()?;
    resources
        .requests
        .as_ref()
        .and_then(|requests| requests.get("cpu"))
        .or_else(|| {
            resources
                .limits
                .as_ref()
                .and_then(|limits| limits.get("cpu"))
        })
        .and_then(cpu_millis)
}

/// `100m` → 100, `2` → 2000, `0.5` → 500, `250000000n` → 250.
pub fn cpu_millis(quantity: &Quantity) -> Option<u64> {
    let text = quantity.0.trim();
    let (number, millis_per_unit) = if let Some(number) = text.strip_suffix('m') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('u') {
        (number, 1e-3)
    } else if let Some(number) = text.strip_suffix('n') {
        (number, 1e-6)
    } else if let Some(number) = text.strip_suffix('k') {
        (number, 1e6)
    } else {
        (text, 1000.0)
    };
    let value: f64 = number.parse().ok()?;
    let millis = value * millis_per_unit;
    (millis.is_finite() && millis >= 0.0).then(|| millis.ceil() as u64)
}

pub fn whole_number(quantity: &Quantity) -> Option<u64> {
    quantity.0.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    fn pod(name: &str, node: &str, gpus: u32, proxy_cpu: Option<&str>, native: bool) -> ListedPod {
        let proxy = json!({
            "name": "istio-proxy",
            "image": "docker.io/istio/proxyv2:1.24.2",
            "resources": proxy_cpu.map(|cpu| json!({"requests": {"cpu": cpu, "memory": "128Mi"}})).unwrap_or(json!({})),
        });
        let mut init =
            vec![json!({"name": "istio-init", "image": "docker.io/istio/proxyv2:1.24.2"})];
        let mut containers = vec![json!({
            "name": "vllm",
            "image": "vllm/vllm-openai:v0.8.5",
            "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}},
        })];
        if proxy_cpu.is_some() {
            if native {
                let mut proxy = proxy;
                proxy["restartPolicy"] = json!("Always");
                init.push(proxy);
            } else {
                containers.push(proxy);
            }
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "inference"},
            "spec": {"nodeName": node, "initContainers": init, "containers": containers},
            "status": {"phase": "Running"},
        }))
        .unwrap()
    }

    fn node(name: &str, cpu: &str, gpus: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "1000Gi", "nvidia.com/gpu": gpus, "pods": "110"}},
        }))
        .unwrap()
    }

    #[test]
    fn a_crowded_node_names_its_first_pods_and_counts_them_all() {
        let pods = (0..50)
            .rev()
            .map(|index| pod(&format!("vllm-{index:02}"), "gpu-a", 1, Some("100m"), false))
            .collect();
        let inventory = Inventory {
            pods,
            ..Inventory::default()
        };
        let view = node_view(&inventory);
        assert_eq!(view[0].pod_count(), 50);
        assert_eq!(view[0].gpus_requested, 50);
        let named: Vec<String> = (0..NAMED_PODS)
            .map(|index| format!("inference/vllm-{index:02}"))
            .collect();
        assert_eq!(view[0].meshed_gpu_pods, named);
        // Evidence saved before the count named every pod.
        let saved: NodeSidecarLoad = serde_json::from_value(json!({
            "node": "gpu-a", "meshedGpuPods": ["a/x", "a/y", "a/z"],
            "gpusRequested": 3, "sidecarCpuRequestMillis": 300,
        }))
        .unwrap();
        assert_eq!(saved.pod_count(), 3);
    }

    #[test]
    fn parses_cpu_quantities() {
        let q = |text: &str| cpu_millis(&Quantity(text.to_string()));
        assert_eq!(q("100m"), Some(100));
        assert_eq!(q("2"), Some(2000));
        assert_eq!(q("0.5"), Some(500));
        assert_eq!(q("31850m"), Some(31850));
        assert_eq!(q("250000000n"), Some(250));
        assert_eq!(q("lots"), None);
    }

    #[test]
    fn sums_sidecar_requests_of_meshed_gpu_pods_per_node() {
        let inventory = Inventory {
            pods: vec![
                pod("vllm-0", "gpu-a", 1, Some("2"), false),
                pod("vllm-1", "gpu-a", 1, Some("500m"), true),
                pod("vllm-2", "gpu-b", 2, Some("100m"), false),
                // no sidecar: not meshed
                pod("vllm-3", "gpu-b", 1, None, false),
                // meshed but no GPU
                pod("router", "gpu-b", 0, Some("1"), false),
            ],
            nodes: vec![node("gpu-a", "15890m", "2"), node("gpu-b", "32", "8")],
            ..Inventory::default()
        };
        let view = node_view(&inventory);
        assert_eq!(view.len(), 2);
        assert_eq!(view[0].node, "gpu-a");
        assert_eq!(view[0].sidecar_cpu_request_millis, 2500);
        assert_eq!(view[0].gpus_requested, 2);
        assert_eq!(view[0].allocatable_cpu_millis, Some(15890));
        assert_eq!(view[0].allocatable_gpus["nvidia.com/gpu"], 2);
        assert_eq!(
            view[0].meshed_gpu_pods,
            ["inference/vllm-0", "inference/vllm-1"]
        );
        let share = view[0].sidecar_cpu_share().unwrap();
        assert!((share - 2500.0 / 15890.0).abs() < 1e-9);
        assert_eq!(view[1].node, "gpu-b");
        assert_eq!(view[1].sidecar_cpu_request_millis, 100);
        assert_eq!(view[1].meshed_gpu_pods, ["inference/vllm-2"]);
    }

    #[test]
    fn unlisted_nodes_still_show_their_pods_without_allocatable() {
        let inventory = Inventory {
            pods: vec![pod("vllm-0", "gpu-a", 1, Some("100m"), false)],
            ..Inventory::default()
        };
        let view = node_view(&inventory);
        assert_eq!(view[0].allocatable_cpu_millis, None);
        assert_eq!(view[0].sidecar_cpu_share(), None);
    }

    #[test]
    fn finished_pods_do_not_count() {
        let mut done = pod("job", "gpu-a", 1, Some("1"), false);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let inventory = Inventory {
            pods: vec![done],
            ..Inventory::default()
        };
        assert!(node_view(&inventory).is_empty());
    }
}
