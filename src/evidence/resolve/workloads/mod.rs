//! Finding inference workloads (vLLM) in an Inventory: Deployments and StatefulSets by their pod
//! template, bare Pods by their spec. Pods owned (via ReplicaSet) by a listed workload belong to it.

pub mod live;
pub mod owners;
pub mod selector;
pub mod vllm_args;

use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::ListedPod;
use crate::evidence::{GpuRequest, VllmServer, Workload, WorkloadKind};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
pub use owners::{OwnerLinks, Owners};
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

    /// One pod label, without copying the map.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata
            .and_then(|meta| meta.labels.as_ref())
            .and_then(|labels| labels.get(key))
            .map(String::as_str)
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
    let deployments = inventory.deployments.iter().filter_map(|deployment| {
        template_source(
            WorkloadKind::Deployment,
            &deployment.metadata,
            deployment.spec.replicas,
            &deployment.spec.template,
        )
    });
    let stateful_sets = inventory.stateful_sets.iter().filter_map(|set| {
        template_source(
            WorkloadKind::StatefulSet,
            &set.metadata,
            set.spec.replicas,
            &set.spec.template,
        )
    });
    let owners = Owners::new(inventory);
    let bare_pods = inventory
        .pods
        .iter()
        .filter(|pod| owners.owner(pod).is_none())
        .filter_map(pod_source);
    deployments.chain(stateful_sets).chain(bare_pods).collect()
}

fn template_source<'a>(
    kind: WorkloadKind,
    owner: &'a ObjectMeta,
    replicas: Option<i32>,
    template: &'a PodTemplateSpec,
) -> Option<PodSource<'a>> {
    Some(PodSource {
        kind,
        namespace: owner.namespace.as_deref().unwrap_or("default"),
        name: owner.name.as_deref()?,
        replicas: replicas.map_or(1, |count| u32::try_from(count).unwrap_or(0)),
        metadata: template.metadata.as_ref(),
        spec: template.spec.as_ref()?,
    })
}

/// A Pod as a workload of its own (bare, or named explicitly as `pod/NAME`): only a pod listed
/// with its whole spec can be one.
pub fn pod_source(pod: &ListedPod) -> Option<PodSource<'_>> {
    Some(PodSource {
        kind: WorkloadKind::Pod,
        namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        name: pod.metadata.name.as_deref()?,
        replicas: 1,
        metadata: Some(&pod.metadata),
        spec: pod.whole_spec()?,
    })
}

/// A pod named as TARGET (`pod/NAME`): its own spec when it was listed whole, else (a pod that a
/// listed workload owns) the template it was made from, with the pod's own metadata.
pub fn named_pod_source<'a>(
    inventory: &'a Inventory,
    owners: &Owners<'a>,
    pod: &'a ListedPod,
) -> Option<PodSource<'a>> {
    if let Some(source) = pod_source(pod) {
        return Some(source);
    }
    let (kind, owner) = owners.owner(pod)?;
    let namespace = pod.metadata.namespace.as_deref();
    let same = |meta: &ObjectMeta| {
        meta.namespace.as_deref() == namespace && meta.name.as_deref() == Some(owner)
    };
    let template = match kind {
        WorkloadKind::Deployment => inventory
            .deployments
            .iter()
            .find(|deployment| same(&deployment.metadata))
            .map(|deployment| &deployment.spec.template)?,
        WorkloadKind::StatefulSet => inventory
            .stateful_sets
            .iter()
            .find(|set| same(&set.metadata))
            .map(|set| &set.spec.template)?,
        WorkloadKind::Pod | WorkloadKind::Endpoint => return None,
    };
    Some(PodSource {
        kind: WorkloadKind::Pod,
        namespace: namespace.unwrap_or("default"),
        name: pod.metadata.name.as_deref()?,
        replicas: 1,
        metadata: Some(&pod.metadata),
        spec: template.spec.as_ref()?,
    })
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
        WorkloadKind::Endpoint => 3,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(yaml: &str) -> Inventory {
        crate::sources::manifest::load_with_stdin(
            &[std::path::PathBuf::from("-")],
            "inference",
            &mut std::io::Cursor::new(yaml.to_string()),
        )
        .unwrap()
    }

    fn named<'a>(found: &'a [Workload], name: &str) -> &'a Workload {
        found
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("{name} not found in {:?}", names(found)))
    }

    fn names(found: &[Workload]) -> Vec<String> {
        found.iter().map(Workload::target_name).collect()
    }

    const MIXED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: official}
spec:
  selector: {matchLabels: {app: official}}
  template:
    metadata:
      labels: {app: official}
      annotations: {sidecar.istio.io/proxyCPU: 50m}
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:v0.8.5
          args: ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--max-num-seqs", "64", "--max-model-len", "16K"]
          resources:
            limits: {nvidia.com/gpu: 2}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: module}
spec:
  replicas: 3
  selector: {matchLabels: {app: module}}
  template:
    metadata: {labels: {app: module}}
    spec:
      containers:
        - name: llm
          image: ghcr.io/acme/inference:2
          command: [python3, -m, vllm.entrypoints.openai.api_server]
          args: [--port=9000, --served-model-name, chat]
          resources:
            requests: {amd.com/gpu: "1"}
            limits: {amd.com/gpu: "1"}
---
apiVersion: v1
kind: Pod
metadata: {name: scripted, labels: {app: scripted}}
spec:
  containers:
    - name: sidecar-logger
      image: busybox
    - name: serve
      image: python:3.12
      command: [bash, -c]
      args: ["pip install vllm && vllm serve Qwen/Qwen2.5-0.5B --max-num-seqs=8"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: rocm}
spec:
  replicas: 0
  selector: {matchLabels: {app: rocm}}
  template:
    metadata: {labels: {app: rocm}}
    spec:
      containers: [{name: main, image: registry.local/VLLM-rocm:1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: tgi}
spec:
  selector: {matchLabels: {app: tgi}}
  template:
    metadata: {labels: {app: tgi, serving: llm}}
    spec:
      containers:
        - name: tgi
          image: ghcr.io/huggingface/text-generation-inference:2
          ports: [{containerPort: 8080}]
          resources: {limits: {nvidia.com/gpu: 1}}
"#;

    #[test]
    fn detects_vllm_by_image_module_script_and_name() {
        let found = find(&inventory(MIXED), None);
        assert_eq!(
            names(&found),
            [
                "deploy/official",
                "deploy/rocm",
                "sts/module",
                "pod/scripted"
            ]
        );
        assert_eq!(
            named(&found, "official").detected_by,
            "image vllm/vllm-openai:v0.8.5"
        );
        assert_eq!(
            named(&found, "module").detected_by,
            "command python -m vllm.entrypoints.openai.api_server"
        );
        assert_eq!(named(&found, "scripted").detected_by, "command vllm serve");
        assert_eq!(
            named(&found, "rocm").detected_by,
            "image registry.local/VLLM-rocm:1"
        );
    }

    #[test]
    fn reads_the_vllm_settings_and_the_pod_template() {
        let found = find(&inventory(MIXED), None);
        let official = named(&found, "official");
        assert_eq!(official.kind, WorkloadKind::Deployment);
        assert_eq!(official.namespace, "inference");
        assert_eq!(official.vllm.container, "server");
        assert_eq!(official.vllm.port, 8000);
        assert_eq!(official.vllm.max_num_seqs, Some(64));
        assert_eq!(official.vllm.max_model_len, Some(16 * 1024));
        assert_eq!(
            official.vllm.model.as_deref(),
            Some("meta-llama/Llama-3.1-8B-Instruct")
        );
        assert_eq!(official.pod_labels["app"], "official");
        assert_eq!(official.pod_annotations["sidecar.istio.io/proxyCPU"], "50m");

        let module = named(&found, "module");
        assert_eq!(module.vllm.port, 9000);
        assert_eq!(module.vllm.served_model_name.as_deref(), Some("chat"));
        assert_eq!(module.vllm.request_model(), Some("chat"));

        let scripted = named(&found, "scripted");
        assert_eq!(scripted.vllm.container, "serve");
        assert_eq!(scripted.vllm.max_num_seqs, Some(8));
        assert_eq!(scripted.vllm.model.as_deref(), Some("Qwen/Qwen2.5-0.5B"));
    }

    #[test]
    fn replicas_absent_zero_and_pod() {
        let found = find(&inventory(MIXED), None);
        assert_eq!(named(&found, "official").replicas, 1);
        assert_eq!(named(&found, "rocm").replicas, 0);
        assert_eq!(named(&found, "module").replicas, 3);
        assert_eq!(named(&found, "scripted").replicas, 1);
    }

    #[test]
    fn gpus_of_any_vendor_summed_over_containers() {
        let found = find(&inventory(MIXED), None);
        assert_eq!(
            named(&found, "official").gpu,
            Some(GpuRequest {
                resource: "nvidia.com/gpu".into(),
                count: 2
            })
        );
        assert_eq!(
            named(&found, "module").gpu,
            Some(GpuRequest {
                resource: "amd.com/gpu".into(),
                count: 1
            })
        );
        assert_eq!(named(&found, "scripted").gpu, None);

        let spec: PodSpec = serde_yaml::from_str(
            r#"
containers:
  - {name: a, resources: {limits: {nvidia.com/gpu: "2", cpu: "8"}}}
  - {name: b, resources: {requests: {nvidia.com/gpu: "1"}}}
  - {name: c, resources: {limits: {example.com/fpga: "4", nvidia.com/mig-1g.5gb: "1"}}}
  - {name: d, resources: {limits: {nvidia.com/gpu: "0"}}}
"#,
        )
        .unwrap();
        assert_eq!(
            gpu_request(&spec),
            Some(GpuRequest {
                resource: "nvidia.com/gpu".into(),
                count: 3
            })
        );
    }

    #[test]
    fn a_selector_adds_servers_not_recognised_as_vllm() {
        let selector = LabelSelector::parse("serving=llm").unwrap();
        let found = find(&inventory(MIXED), Some(&selector));
        let tgi = named(&found, "tgi");
        assert_eq!(tgi.detected_by, "selector serving=llm");
        assert_eq!(tgi.vllm.container, "tgi");
        // Not vLLM: the declared container port is the best guess.
        assert_eq!(tgi.vllm.port, 8080);
        assert!(!names(&found).contains(&"deploy/web".to_string()));
    }

    const OWNED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm}
spec:
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      containers: [{name: vllm, image: vllm/vllm-openai}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: vllm-5d8f
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: vllm, uid: "1"}]
spec:
  selector: {matchLabels: {app: vllm}}
---
apiVersion: v1
kind: Pod
metadata:
  name: vllm-5d8f-aaaaa
  labels: {app: vllm, pod-template-hash: 5d8f}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: vllm-5d8f, uid: "2"}]
spec:
  containers: [{name: vllm, image: vllm/vllm-openai}, {name: istio-proxy, image: istio/proxyv2}]
---
apiVersion: v1
kind: Pod
metadata:
  name: vllm-7c9b-bbbbb
  labels: {app: vllm, pod-template-hash: 7c9b}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: vllm-7c9b, uid: "3"}]
spec:
  containers: [{name: vllm, image: vllm/vllm-openai}]
---
apiVersion: v1
kind: Pod
metadata:
  name: orphan-6f6f-ccccc
  labels: {app: orphan, pod-template-hash: 6f6f}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: orphan-6f6f, uid: "4"}]
spec:
  containers: [{name: vllm, image: vllm/vllm-openai}]
---
apiVersion: v1
kind: Pod
metadata:
  name: vllm-other-ns
  namespace: elsewhere
  labels: {app: vllm, pod-template-hash: 5d8f}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: vllm-5d8f, uid: "5"}]
spec:
  containers: [{name: vllm, image: vllm/vllm-openai}]
"#;

    #[test]
    fn pods_owned_by_a_listed_deployment_belong_to_it() {
        let inventory = inventory(OWNED);
        let found = find(&inventory, None);
        // The two pods of deploy/vllm (one through a listed ReplicaSet, one through the
        // pod-template-hash naming) are not workloads of their own; the pod whose Deployment is
        // not listed, and the one in another namespace, are.
        assert_eq!(
            names(&found),
            ["pod/vllm-other-ns", "deploy/vllm", "pod/orphan-6f6f-ccccc"]
        );
        let deployment = named(&found, "vllm");
        let live: Vec<_> = Owners::new(&inventory)
            .live_pods(deployment)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(live, ["vllm-5d8f-aaaaa", "vllm-7c9b-bbbbb"]);
        let orphan = named(&found, "orphan-6f6f-ccccc");
        assert_eq!(Owners::new(&inventory).live_pods(orphan).len(), 1);
    }

    #[test]
    fn pods_owned_by_a_listed_statefulset_belong_to_it() {
        let inventory = inventory(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: llm}
spec:
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: llm-0
  ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: llm, uid: "1"}]
spec: {containers: [{name: vllm, image: vllm/vllm-openai}]}
"#,
        );
        let found = find(&inventory, None);
        assert_eq!(names(&found), ["sts/llm"]);
        assert_eq!(Owners::new(&inventory).live_pods(&found[0]).len(), 1);
    }
}
