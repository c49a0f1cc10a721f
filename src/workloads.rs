//! Finding inference workloads (vLLM) in an Inventory: Deployments and StatefulSets by their pod
//! template, bare Pods by their spec. Pods owned (via ReplicaSet) by a listed workload belong to it.

pub mod selector;
pub mod vllm_args;

use crate::evidence::{GpuRequest, VllmServer, Workload, WorkloadKind};
use crate::inventory::Inventory;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
pub use selector::{LabelSelector, SelectorError};
use std::collections::BTreeMap;
use vllm_args::{Invocation, VLLM_DEFAULT_PORT};

/// The proxy container Istio injects; never the inference server.
const ISTIO_PROXY: &str = "istio-proxy";

/// A pod shape in the inventory: a Deployment's or StatefulSet's template, or a Pod.
#[derive(Debug, Clone, Copy)]
pub struct PodSource<'a> {
    pub kind: WorkloadKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub replicas: u32,
    pub metadata: Option<&'a ObjectMeta>,
    pub spec: &'a PodSpec,
}

impl PodSource<'_> {
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.metadata
            .and_then(|meta| meta.labels.clone())
            .unwrap_or_default()
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        self.metadata
            .and_then(|meta| meta.annotations.clone())
            .unwrap_or_default()
    }
}

/// Every Deployment, StatefulSet and bare Pod (one not owned by a listed workload), whether it runs
/// inference or not.
pub fn pod_sources(inventory: &Inventory) -> Vec<PodSource<'_>> {
    let mut out = Vec::new();
    for deployment in &inventory.deployments {
        let spec = &deployment.spec;
        if let Some(source) = template_source(
            WorkloadKind::Deployment,
            &deployment.metadata,
            spec.replicas,
            spec.template.metadata.as_ref(),
            spec.template.spec.as_ref(),
        ) {
            out.push(source);
        }
    }
    for set in &inventory.stateful_sets {
        let spec = &set.spec;
        if let Some(source) = template_source(
            WorkloadKind::StatefulSet,
            &set.metadata,
            spec.replicas,
            spec.template.metadata.as_ref(),
            spec.template.spec.as_ref(),
        ) {
            out.push(source);
        }
    }
    for pod in &inventory.pods {
        if owner_workload(inventory, pod).is_none()
            && let Some(source) = pod_source(pod)
        {
            out.push(source);
        }
    }
    out
}

fn template_source<'a>(
    kind: WorkloadKind,
    owner: &'a ObjectMeta,
    replicas: Option<i32>,
    template: Option<&'a ObjectMeta>,
    spec: Option<&'a PodSpec>,
) -> Option<PodSource<'a>> {
    Some(PodSource {
        kind,
        namespace: owner.namespace.as_deref().unwrap_or("default"),
        name: owner.name.as_deref()?,
        replicas: replicas.map_or(1, |count| u32::try_from(count).unwrap_or(0)),
        metadata: template,
        spec: spec?,
    })
}

/// A Pod as a workload of its own (bare, or named explicitly as `pod/NAME`).
pub fn pod_source(pod: &Pod) -> Option<PodSource<'_>> {
    Some(PodSource {
        kind: WorkloadKind::Pod,
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        name: pod.metadata.name.as_deref()?,
        replicas: 1,
        metadata: Some(&pod.metadata),
        spec: pod.spec.as_ref()?,
    })
}

/// The Deployment or StatefulSet in the inventory that owns `pod` (through its ReplicaSet for a
/// Deployment), as `(kind, name)` in the pod's namespace.
pub fn owner_workload(inventory: &Inventory, pod: &Pod) -> Option<(WorkloadKind, String)> {
    let namespace = pod.metadata.namespace.as_deref();
    let here = |meta: &ObjectMeta, name: &str| {
        meta.namespace.as_deref() == namespace && meta.name.as_deref() == Some(name)
    };
    for owner in pod.metadata.owner_references.iter().flatten() {
        match owner.kind.as_str() {
            "StatefulSet"
                if inventory
                    .stateful_sets
                    .iter()
                    .any(|set| here(&set.metadata, &owner.name)) =>
            {
                return Some((WorkloadKind::StatefulSet, owner.name.clone()));
            }
            "ReplicaSet" => {
                let replica_set = inventory
                    .replica_sets
                    .iter()
                    .find(|rs| here(&rs.metadata, &owner.name));
                let deployment = match replica_set {
                    Some(rs) => rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|o| o.kind == "Deployment")
                        .map(|o| o.name.clone()),
                    // Not listed: a Deployment's ReplicaSet is named DEPLOYMENT-HASH, and its pods
                    // carry HASH as `pod-template-hash`.
                    None => pod
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|labels| labels.get("pod-template-hash"))
                        .and_then(|hash| owner.name.strip_suffix(&format!("-{hash}")))
                        .map(str::to_string),
                };
                if let Some(name) = deployment
                    && inventory
                        .deployments
                        .iter()
                        .any(|d| here(&d.metadata, &name))
                {
                    return Some((WorkloadKind::Deployment, name));
                }
            }
            _ => {}
        }
    }
    None
}

/// The live pods of a workload: its own Pod, or the pods its Deployment/StatefulSet owns. On a
/// cluster these carry what the template does not (the injected sidecar, the node).
pub fn live_pods<'a>(inventory: &'a Inventory, workload: &Workload) -> Vec<&'a Pod> {
    inventory
        .pods
        .iter()
        .filter(|pod| pod.metadata.namespace.as_deref() == Some(workload.namespace.as_str()))
        .filter(|pod| match workload.kind {
            WorkloadKind::Pod => pod.metadata.name.as_deref() == Some(workload.name.as_str()),
            kind => owner_workload(inventory, pod)
                .is_some_and(|(owner_kind, name)| owner_kind == kind && name == workload.name),
        })
        .collect()
}

/// Every inference workload: pods that run vLLM, or whose labels match `selector`. Sorted by
/// namespace, kind, name.
pub fn find(inventory: &Inventory, selector: Option<&LabelSelector>) -> Vec<Workload> {
    let mut found: Vec<Workload> = pod_sources(inventory)
        .iter()
        .filter_map(|source| {
            let reason = detect(source, selector)?;
            Some(build(source, reason))
        })
        .collect();
    found.sort_by(|a, b| {
        (&a.namespace, kind_rank(a.kind), &a.name).cmp(&(&b.namespace, kind_rank(b.kind), &b.name))
    });
    found
}

fn kind_rank(kind: WorkloadKind) -> u8 {
    match kind {
        WorkloadKind::Deployment => 0,
        WorkloadKind::StatefulSet => 1,
        WorkloadKind::Pod => 2,
    }
}

/// Why `source` is an inference workload (`image vllm/vllm-openai:v0.8.5`, `command vllm serve`,
/// `selector app=llm`), or None.
pub fn detect(source: &PodSource<'_>, selector: Option<&LabelSelector>) -> Option<String> {
    if let Some((_, reason)) = vllm_container(source.spec) {
        return Some(reason);
    }
    let selector = selector?;
    selector
        .matches(&source.labels())
        .then(|| format!("selector {selector}"))
}

/// The container that runs vLLM, and what shows it.
fn vllm_container(spec: &PodSpec) -> Option<(&Container, String)> {
    let mut by_image = None;
    for container in spec.containers.iter().filter(|c| c.name != ISTIO_PROXY) {
        let image = container.image.as_deref().unwrap_or_default();
        if image.contains("vllm/vllm-openai") {
            return Some((container, format!("image {image}")));
        }
        let args = vllm_args::parse(&vllm_args::container_words(container), false);
        if let Some(invocation) = args.invocation {
            return Some((container, invocation.describe().to_string()));
        }
        if by_image.is_none() && image.to_ascii_lowercase().contains("vllm") {
            by_image = Some((container, format!("image {image}")));
        }
    }
    by_image
}

/// The Workload for `source`, recognised for `detected_by`. For a server not recognised as vLLM
/// (selected by label or named as TARGET), the first non-proxy container is taken as the server.
pub fn build(source: &PodSource<'_>, detected_by: String) -> Workload {
    Workload {
        kind: source.kind,
        namespace: source.namespace.to_string(),
        name: source.name.to_string(),
        replicas: source.replicas,
        pod_labels: source.labels(),
        pod_annotations: source.annotations(),
        pod_spec: source.spec.clone(),
        vllm: server(source.spec),
        gpu: gpu_request(source.spec),
        detected_by,
    }
}

fn server(spec: &PodSpec) -> VllmServer {
    let (container, recognised) = match vllm_container(spec) {
        Some((container, _)) => (Some(container), true),
        None => (
            spec.containers.iter().find(|c| c.name != ISTIO_PROXY),
            false,
        ),
    };
    let Some(container) = container else {
        return VllmServer {
            container: String::new(),
            image: None,
            port: VLLM_DEFAULT_PORT,
            max_num_seqs: None,
            max_model_len: None,
            served_model_name: None,
            model: None,
        };
    };
    let image_runs_vllm = container
        .image
        .as_deref()
        .is_some_and(|image| image.to_ascii_lowercase().contains("vllm"));
    let args = vllm_args::parse(&vllm_args::container_words(container), image_runs_vllm);
    // vLLM listens on 8000 unless told; an unrecognised server is taken at its declared port.
    let declared_port = container
        .ports
        .iter()
        .flatten()
        .find_map(|port| u16::try_from(port.container_port).ok());
    let port = match (args.port, recognised) {
        (Some(port), _) => port,
        (None, true) => VLLM_DEFAULT_PORT,
        (None, false) => declared_port.unwrap_or(VLLM_DEFAULT_PORT),
    };
    if args.invocation == Some(Invocation::ApiServer) && args.model.is_none() {
        tracing::debug!(
            container = container.name.as_str(),
            "vLLM api_server without --model: vLLM's default model applies"
        );
    }
    VllmServer {
        container: container.name.clone(),
        image: container.image.clone(),
        port,
        max_num_seqs: args.max_num_seqs,
        max_model_len: args.max_model_len,
        served_model_name: args.served_model_name,
        model: args.model,
    }
}

/// GPUs the pod asks for: every extended resource named `*/gpu` (`nvidia.com/gpu`,
/// `amd.com/gpu`, …), limits else requests, summed over containers. With several vendors, the
/// largest count is reported.
pub fn gpu_request(spec: &PodSpec) -> Option<GpuRequest> {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for container in &spec.containers {
        let Some(resources) = container.resources.as_ref() else {
            continue;
        };
        let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
        // Limits first: for extended resources requests must equal limits when both are set.
        for list in [&resources.limits, &resources.requests]
            .into_iter()
            .flatten()
        {
            for (name, quantity) in list {
                if !name.ends_with("/gpu") || counted.contains_key(name.as_str()) {
                    continue;
                }
                match quantity.0.trim().parse::<u64>() {
                    Ok(count) => {
                        counted.insert(name, count);
                    }
                    Err(_) => tracing::debug!(
                        resource = name.as_str(),
                        quantity = quantity.0.as_str(),
                        "GPU quantity is not a whole number; ignored"
                    ),
                }
            }
        }
        for (name, count) in counted {
            *totals.entry(name.to_string()).or_default() += count;
        }
    }
    totals
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(resource, count)| GpuRequest { resource, count })
}
