//! The Evidence value: everything the sources gathered about each target, and nothing judged.
//! Checks read only this. It round-trips through JSON (`--save-evidence` / `--from-evidence`).

pub mod ambient;
pub mod check_id;
pub mod endpoint_picker;
pub mod envoy;
pub mod generation;
pub mod inventory;
pub mod limits;
pub mod listed_pod;
pub mod nodes;
pub mod objects;
pub mod probe;
pub mod redact;
pub mod resolve;

use crate::evidence::objects::{
    DestinationRule, EnvoyFilter, Gateway, InferencePool, KubeGateway, KubeHttpRoute,
    PeerAuthentication, Sidecar, VirtualService,
};
pub use check_id::CheckId;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
pub use nodes::NodeSidecarLoad;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Bumped when a field changes meaning or disappears; new optional fields do not bump it.
pub const EVIDENCE_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub schema_version: u32,
    /// Where the facts came from: `manifests`, `cluster`, `envoy-admin`, … .
    pub sources: Vec<String>,
    /// The longest generation the service must allow (`--expected-generation`).
    #[serde(with = "crate::units::duration::serde_text")]
    pub expected_generation: std::time::Duration,
    pub targets: Vec<TargetEvidence>,
    /// What could not be gathered for every target (e.g. `Istio CRDs not installed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    /// When a live source was read (RFC 3339): pod ages are this minus their creation time, so
    /// checks need no clock. Absent for manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gathered_at: Option<Time>,
    /// Secrets taken out of the pod specs before they became evidence:
    /// `Deployment inference/vllm: container vllm env HF_TOKEN`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<String>,
}

/// A reference to a Kubernetes or Istio object, or to an Envoy proxy, that evidence points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: &str, namespace: Option<&str>, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// `KIND namespace/name` of an object as listed (an empty name when it has none).
    pub fn of(
        kind: &str,
        metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ) -> Self {
        Self::new(
            kind,
            metadata.namespace.as_deref(),
            metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.kind, namespace, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Something a source could not learn, and why: the report shows it instead of judging on less.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gap {
    /// What is missing: `EnvoyFilter list`, `Envoy admin of pod/vllm-0`, `Istio CRDs`.
    pub what: String,
    /// Why, in one line: `403 Forbidden`, `connection refused`, `not installed`.
    pub reason: String,
}

impl Gap {
    pub fn new(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetEvidence {
    pub workload: Workload,
    pub mesh: MeshContext,
    /// What the Envoys on the path to vLLM run and counted (config_dump, /stats), client and
    /// server side, from admin ports, `--admin-url` or `--envoy-dump`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envoy: Vec<envoy::EnvoyEvidence>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    /// The workload's pods as the API server has them (sorted by name); empty for manifests
    /// that hold only templates. Better evidence than the template: they carry the injected proxy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_pods: Vec<LivePod>,
    /// The nodes that run those pods, with the CPU that sidecars of meshed GPU pods request there
    /// against the node's allocatable CPU (only nodes that run such a pod; sorted by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeSidecarLoad>,
    /// The probe runs `diagnose --probe` made for this target (direct and mesh path), with what
    /// each measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<probe::ProbeRun>,
}

/// One pod of the workload as the API server had it when the evidence was gathered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LivePod {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `status.phase`: `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    /// Restarts summed over all containers, init containers included (a native sidecar restarts
    /// there).
    pub restarts: u32,
    /// `metadata.creationTimestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
    /// The injected `istio-proxy`, when the pod has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<LiveProxy>,
    /// The injector's `sidecar.istio.io/status` annotation is on the pod.
    pub sidecar_status: bool,
}

impl LivePod {
    /// How old the pod was when the evidence was gathered.
    pub fn age(&self, gathered_at: Option<&Time>) -> Option<std::time::Duration> {
        let created = self.created.as_ref()?;
        let gathered = gathered_at?;
        let age = gathered.0.duration_since(created.0);
        std::time::Duration::try_from(age).ok()
    }
}

/// The `istio-proxy` container of a live pod, with the resources the injector gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveProxy {
    /// `Classic` (a regular container) or `Native` (a restartable init container).
    pub mode: SidecarMode,
    /// Where it sits in the pod: `spec/containers[1]`, `spec/initContainers[1]`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Kubernetes quantities as written in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    Pod,
    /// A service known only through Envoy admin or URLs (`--admin-url`, no cluster, no
    /// manifests): its pod spec is unknown, so checks that read the pod spec do not apply.
    Endpoint,
}

impl WorkloadKind {
    /// The kubectl short form used in TARGET arguments: `deploy`, `sts`, `pod`.
    pub fn short(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deploy",
            WorkloadKind::StatefulSet => "sts",
            WorkloadKind::Pod => "pod",
            WorkloadKind::Endpoint => "endpoint",
        }
    }

    /// The kind as the API names it: `Deployment`, `StatefulSet`, `Pod`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Endpoint => "Endpoint",
        }
    }
}

/// An inference workload: a Deployment, StatefulSet or bare Pod whose pods run vLLM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// Desired replicas (1 for a Pod; a Deployment without `replicas` means 1).
    pub replicas: u32,
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub pod_annotations: BTreeMap<String, String>,
    /// The pod template's spec (or the live pod's, which carries the injected sidecar).
    pub pod_spec: PodSpec,
    pub vllm: VllmServer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRequest>,
    /// How this workload was recognised as inference: `image vllm/vllm-openai`, `selector app=llm`.
    pub detected_by: String,
}

impl Workload {
    pub fn object_ref(&self) -> ObjectRef {
        let kind = match self.kind {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::Pod => "Pod",
            WorkloadKind::Endpoint => "Endpoint",
        };
        ObjectRef::new(kind, Some(&self.namespace), &self.name)
    }

    /// Whether the pod spec (containers, probes, annotations) is known, i.e. not an `Endpoint`.
    pub fn spec_known(&self) -> bool {
        self.kind != WorkloadKind::Endpoint
    }

    /// `deploy/vllm`, as a user would type it.
    pub fn target_name(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

/// The vLLM server settings that the checks need, read from the container's command and args.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VllmServer {
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `--port`, else vLLM's default 8000.
    pub port: u16,
    /// `--max-num-seqs` when given; absent means the version/GPU default (docs/facts.md "vLLM": assume 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_num_seqs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_model_len: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_model_name: Option<String>,
    /// The model loaded: `vllm serve MODEL` or `--model`. Requests name it unless
    /// `--served-model-name` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// vLLM's `--max-num-seqs` when it is not set (docs/facts.md "vLLM": depends on version and GPU; assume 256).
pub const VLLM_DEFAULT_MAX_NUM_SEQS: u32 = 256;

impl VllmServer {
    /// The concurrent sequences one replica serves, and whether that is the assumed default.
    /// The name API requests use for the model: `--served-model-name`, else the model loaded.
    pub fn request_model(&self) -> Option<&str> {
        self.served_model_name.as_deref().or(self.model.as_deref())
    }

    pub fn concurrency(&self) -> (u32, bool) {
        match self.max_num_seqs {
            Some(value) => (value, false),
            None => (VLLM_DEFAULT_MAX_NUM_SEQS, true),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GpuRequest {
    /// The extended resource: `nvidia.com/gpu`, `amd.com/gpu`, … .
    pub resource: String,
    pub count: u64,
}

/// Whether istiod's objects can exist here at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IstioPresence {
    Installed,
    NotInstalled,
    /// Offline manifests: nothing tells; the objects given are taken as what the cluster has.
    Unknown,
}

/// How the workload's pods meet the mesh (docs/facts.md "Sidecar mode of a pod").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SidecarMode {
    /// No sidecar, no ambient: outside the mesh.
    None,
    /// The pod (template) will get `istio-proxy` injected as a regular container.
    Injected,
    /// `istio-proxy` already present as a container (a live or pre-injected pod).
    Classic,
    /// `istio-proxy` in `initContainers` with `restartPolicy: Always`.
    Native,
    /// `istio.io/dataplane-mode=ambient`: no sidecar, Envoy only in a waypoint.
    Ambient,
}

impl SidecarMode {
    pub fn has_sidecar(self) -> bool {
        matches!(
            self,
            SidecarMode::Injected | SidecarMode::Classic | SidecarMode::Native
        )
    }
}

/// The Kubernetes Service that fronts the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// `(port, targetPort as written)` pairs.
    pub ports: Vec<ServicePortInfo>,
}

impl ServiceInfo {
    /// `vllm.inference.svc.cluster.local`
    pub fn fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<String>,
}

/// The mesh around one workload: only objects that apply to it (resolution happened in `mesh`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshContext {
    pub istio: IstioPresence,
    pub sidecar_mode: SidecarMode,
    /// Why that mode: `namespace label istio-injection=enabled`, `pod label sidecar.istio.io/inject=false`.
    pub sidecar_reason: String,
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub services: Vec<ServiceInfo>,
    /// How many Services the workload's namespace has (all of them, not only those selecting
    /// the workload); absent when the Service list could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_services: Option<u32>,
    /// VirtualServices whose hosts match a Service of the workload and whose routes reach it, and
    /// the delegate VirtualServices (no `hosts`) whose routes run in their delegating routes' place
    /// (`mesh::delegation`; a delegate never applies on its own).
    #[serde(default)]
    pub virtual_services: Vec<VirtualService>,
    /// DestinationRules for the workload's hosts, most specific first (the first one is the one
    /// Istio applies to a host; later ones are shadowed and listed for the report).
    #[serde(default)]
    pub destination_rules: Vec<DestinationRule>,
    /// EnvoyFilters that reach the workload's sidecar or the gateways in front of it.
    #[serde(default)]
    pub envoy_filters: Vec<EnvoyFilter>,
    /// PeerAuthentications that select the workload, mesh-wide first, then namespace, then workload.
    #[serde(default)]
    pub peer_authentications: Vec<PeerAuthentication>,
    /// AuthorizationPolicies and RequestAuthentications that select the pods (or their
    /// namespace, or the mesh): only the pods' own sidecar enforces them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_policies: Vec<objects::AuthorizationPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_authentications: Vec<objects::RequestAuthentication>,
    /// The autoscaler of the workload, whose replica range pool capacity is judged against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<objects::Autoscaler>,
    #[serde(default)]
    pub sidecars: Vec<Sidecar>,
    /// Gateways that the workload's VirtualServices bind to.
    #[serde(default)]
    pub gateways: Vec<Gateway>,
    /// Gateway API HTTPRoutes with a rule whose backend is a Service of the workload or an
    /// InferencePool that picks its pods (`resolve::gateway_routes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_routes: Vec<KubeHttpRoute>,
    /// The Gateway API Gateways those HTTPRoutes attach to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kube_gateways: Vec<KubeGateway>,
    /// InferencePools whose selector and target ports pick the workload's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inference_pools: Vec<InferencePool>,
    /// The endpoint pickers those pools name, and what stands behind each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_pickers: Vec<endpoint_picker::EndpointPicker>,
    /// Ambient mode (`sidecar_mode` is `Ambient`): the waypoint, ztunnel per node, and the policy
    /// no proxy runs. Absent in every other mode, and in evidence saved before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambient: Option<ambient::AmbientContext>,
}
