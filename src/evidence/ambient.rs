//! Istio's ambient data plane around one target, as resolved from labels and objects: no sidecar
//! in the pods; a ztunnel per node (a DaemonSet, label `app=ztunnel`) carries mTLS over HBONE;
//! L7 policy runs only in a waypoint (a Gateway API `Gateway` of class `istio-waypoint`) that the
//! Service, the pods or the namespace name with `istio.io/use-waypoint`. Nothing here judges.

use crate::evidence::{CheckId, ObjectRef};
use serde::{Deserialize, Serialize};

/// The label that puts a namespace or a pod in ambient mode (`ambient`), or a pod out (`none`).
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// The label on a namespace, Service or pod that names its waypoint (`none` opts out).
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// Beside `istio.io/use-waypoint`: the waypoint's namespace when it is not the object's own.
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";
/// On a Service or namespace: `true` sends traffic from ingress gateways through the waypoint
/// too; without it a gateway sends over HBONE straight to the pods, past the waypoint.
pub const INGRESS_USE_WAYPOINT: &str = "istio.io/ingress-use-waypoint";
/// On a waypoint Gateway: which traffic it takes (`service`, the default; `workload`; `all`; `none`).
pub const WAYPOINT_FOR: &str = "istio.io/waypoint-for";
/// The GatewayClass Istio installs for waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";
/// The label on ztunnel's DaemonSet pods.
pub const ZTUNNEL_APP: &str = "ztunnel";
/// The label selector a live source lists ztunnel's pods and DaemonSet with; a gap that names
/// it matters only to ambient targets.
pub const ZTUNNEL_SELECTOR: &str = "app=ztunnel";

/// What ambient mode means for one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmbientContext {
    /// The waypoint that runs L7 policy for traffic to the target's Service, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<WaypointRef>,
    /// Why that waypoint, or why none: `Service inference/vllm label istio.io/use-waypoint=waypoint`,
    /// `no istio.io/use-waypoint label on the Service, the pods or the namespace`.
    pub waypoint_reason: String,
    /// The ztunnel on each node that runs one of the target's pods (or, without live pods, what
    /// ztunnel's DaemonSet asks of every node), sorted by node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ztunnel: Vec<ZtunnelNode>,
    /// Mesh policy that no proxy on the path runs: without a waypoint, ztunnel does L4 only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_effect: Vec<NoEffect>,
}

/// A waypoint named by `istio.io/use-waypoint`, and what the inventory has of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaypointRef {
    pub namespace: String,
    pub name: String,
    /// The Gateway of class `istio-waypoint` is in the inventory.
    pub found: bool,
    /// Its `istio.io/waypoint-for` label (absent: `service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint_for: Option<String>,
    /// Its pods (label `gateway.networking.k8s.io/gateway-name`), sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<WaypointPod>,
    /// Where `istio.io/ingress-use-waypoint=true` is set (`Service inference/vllm`, `namespace
    /// inference`): ingress gateways send through the waypoint. `None`: they go past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_uses_it: Option<String>,
}

impl WaypointRef {
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::new("Gateway", Some(&self.namespace), &self.name)
    }

    /// `serving/waypoint`
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// One pod of a waypoint: its Envoy is the L7 point of the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WaypointPod {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The node has a GPU to allocate (`nvidia.com/gpu`, `amd.com/gpu`, … in its allocatable).
    #[serde(default)]
    pub gpu_node: bool,
    /// Kubernetes quantities as written in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
}

/// What ztunnel reserves on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZtunnelNode {
    /// The node, or `every node` when only the DaemonSet template is known.
    pub node: String,
    /// Where the requests were read: `Pod istio-system/ztunnel-abcde`, `DaemonSet istio-system/ztunnel`.
    pub source: ObjectRef,
    /// The field path in `source`.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    #[serde(default)]
    pub gpu_node: bool,
    /// The node's allocatable CPU in millicores, when the node is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable_cpu_millis: Option<u64>,
}

/// A policy field that applies to the target's Service as written, but that no proxy on the path
/// runs (ztunnel is L4 only; no waypoint and no gateway is on the path for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoEffect {
    pub object: ObjectRef,
    /// `spec/http[0]/timeout`, `spec/trafficPolicy/connectionPool`, `spec/parentRefs[0]`.
    pub path: String,
    /// The value as written, in one line.
    pub value: String,
    /// The failure mode whose checks would judge it.
    pub check: CheckId,
    /// Why no proxy runs it, in one line.
    pub reason: String,
}
