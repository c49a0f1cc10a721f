//! Inventory: the objects a source found, by kind. Manifests (`-f`) and the live cluster both fill
//! one; `resolve::gather` turns it into Evidence. Nothing here judges.

use crate::evidence::listed_pod::ListedPod;
use crate::evidence::objects::{
    AuthorizationPolicy, Autoscaler, DestinationRule, EnvoyFilter, Gateway, GatewayClass,
    InferenceObjective, InferencePool, KubeGateway, KubeGrpcRoute, KubeHttpRoute,
    PeerAuthentication, RequestAuthentication, Sidecar, VirtualService,
};
use crate::evidence::{Gap, IstioPresence};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Service};

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// As listed: what the checks read of each pod (`listed_pod`).
    pub pods: Vec<ListedPod>,
    pub deployments: Vec<Deployment>,
    pub stateful_sets: Vec<StatefulSet>,
    pub replica_sets: Vec<ReplicaSet>,
    /// DaemonSets; the live source lists only ztunnel's (`app=ztunnel`), in every namespace.
    pub daemon_sets: Vec<DaemonSet>,
    pub services: Vec<Service>,
    pub namespaces: Vec<Namespace>,
    pub nodes: Vec<Node>,
    pub virtual_services: Vec<VirtualService>,
    pub destination_rules: Vec<DestinationRule>,
    pub envoy_filters: Vec<EnvoyFilter>,
    pub peer_authentications: Vec<PeerAuthentication>,
    pub authorization_policies: Vec<AuthorizationPolicy>,
    pub request_authentications: Vec<RequestAuthentication>,
    /// HorizontalPodAutoscalers and KEDA ScaledObjects.
    pub autoscalers: Vec<Autoscaler>,
    pub sidecars: Vec<Sidecar>,
    pub gateways: Vec<Gateway>,
    /// Gateway API (`gateway.networking.k8s.io`) Gateways, routes and classes.
    pub kube_gateways: Vec<KubeGateway>,
    pub http_routes: Vec<KubeHttpRoute>,
    pub grpc_routes: Vec<KubeGrpcRoute>,
    pub gateway_classes: Vec<GatewayClass>,
    /// Inference Extension pools (v1 and v1alpha2) and objectives.
    pub inference_pools: Vec<InferencePool>,
    pub inference_objectives: Vec<InferenceObjective>,
    pub istio: Option<IstioPresence>,
    /// Kinds or sources that could not be read, and why.
    pub gaps: Vec<Gap>,
}
