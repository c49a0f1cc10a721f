//! The live cluster as an `Inventory`: one paged list call per kind, all kinds at once, never a
//! request per pod. A kind the user may not list (403) or the server does not serve (404)
//! becomes a `Gap`; the rest is still returned.

use super::client::ClusterClient;
use super::discovery::{
    self, AUTHORIZATION_POLICY, DESTINATION_RULE, ENVOY_FILTER, GATEWAY, GATEWAY_CLASS, GRPC_ROUTE,
    HTTP_ROUTE, INFERENCE_OBJECTIVE, INFERENCE_POOL, INFERENCE_POOL_ALPHA, IstioDiscovery,
    IstioKind, KUBE_GATEWAY, PEER_AUTHENTICATION, REQUEST_AUTHENTICATION, SIDECAR, VIRTUAL_SERVICE,
};
use super::error::ClusterError;
use super::list::{collection_path, list_all, list_mapped, list_selected, list_slimmed};
use super::slim;
use crate::evidence::Gap;
use crate::evidence::ambient::ZTUNNEL_SELECTOR;
use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::{ListedPod, Spec};
use crate::evidence::objects::IstioObject;
use crate::evidence::resolve::workloads::OwnerLinks;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use serde::de::DeserializeOwned;

/// Which namespaces to read: `-n NAME` or `-A`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListScope {
    Namespace(String),
    AllNamespaces,
}

impl ListScope {
    /// kubectl's rule: `-A` for all, else `-n`, else the context's namespace (`default` when the
    /// context names none).
    pub fn from_flags(
        namespace: Option<&str>,
        all_namespaces: bool,
        client: &ClusterClient,
    ) -> Self {
        if all_namespaces {
            ListScope::AllNamespaces
        } else {
            ListScope::Namespace(
                namespace
                    .unwrap_or_else(|| client.default_namespace())
                    .to_string(),
            )
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match self {
            ListScope::Namespace(name) => Some(name),
            ListScope::AllNamespaces => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ListScope::Namespace(name) => format!("in namespace {name}"),
            ListScope::AllNamespaces => "in all namespaces".to_string(),
        }
    }
}

/// What one kind's listing gave: its objects, and what could not be read.
#[derive(Debug)]
struct Listing<T> {
    items: Vec<T>,
    gaps: Vec<Gap>,
}

impl<T> Listing<T> {
    fn items(items: Vec<T>) -> Self {
        Self {
            items,
            gaps: Vec::new(),
        }
    }

    fn gap(what: String, reason: String) -> Self {
        Self {
            items: Vec::new(),
            gaps: vec![Gap::new(what, reason)],
        }
    }
}

/// Lists every kind the checks need within `scope`, concurrently. Istio objects are listed in all
/// namespaces (root-namespace and exported objects apply across namespaces), falling back to the
/// scope's namespace when that is forbidden.
pub async fn list_inventory(
    client: &ClusterClient,
    scope: &ListScope,
) -> Result<Inventory, ClusterError> {
    let namespace = scope.namespace();
    let workloads_then_pods = async {
        let (deployments, stateful_sets, replica_sets) = tokio::try_join!(
            list_kind::<Deployment>(client, DEPLOYMENTS, Some(scope), |d| slim::meta(
                &mut d.metadata
            )),
            list_kind::<StatefulSet>(client, STATEFUL_SETS, Some(scope), |s| slim::meta(
                &mut s.metadata
            )),
            list_kind::<ReplicaSet>(client, REPLICA_SETS, Some(scope), |r| slim::meta(
                &mut r.metadata
            )),
        )?;
        let links = OwnerLinks::new(
            &deployments.items,
            &stateful_sets.items,
            &replica_sets.items,
        );
        let pods = list_pods(client, scope, &links).await?;
        Ok::<_, ClusterError>((pods, deployments, stateful_sets, replica_sets))
    };
    let ((pods, deployments, stateful_sets, replica_sets), services, namespaces, nodes, istio) = tokio::try_join!(
        workloads_then_pods,
        list_kind::<Service>(client, SERVICES, Some(scope), |s| slim::meta(
            &mut s.metadata
        )),
        list_namespaces(client, namespace),
        list_kind::<Node>(client, NODES, None, |n| slim::meta(&mut n.metadata)),
        list_istio(client, scope),
    )?;
    let (ztunnel_pods, ztunnel_sets) = tokio::try_join!(
        async {
            match scope {
                // With -A every pod is listed already.
                ListScope::AllNamespaces => Ok(Listing::items(Vec::new())),
                ListScope::Namespace(_) => list_ztunnel::<Pod>(client, PODS, slim::pod).await,
            }
        },
        list_ztunnel::<DaemonSet>(client, DAEMON_SETS, |d| slim::meta(&mut d.metadata)),
    )?;
    let mut inventory = Inventory {
        istio: Some(istio.discovery.presence),
        ..Inventory::default()
    };
    let mut gaps = Vec::new();
    inventory.pods = take(pods, &mut gaps);
    // In the scope's own namespace, ztunnel's pods are listed already.
    inventory.pods.extend(
        take(ztunnel_pods, &mut gaps)
            .into_iter()
            .filter(|pod| pod.metadata.namespace.as_deref() != namespace)
            .map(ListedPod::from),
    );
    inventory.daemon_sets = take(ztunnel_sets, &mut gaps);
    inventory.deployments = take(deployments, &mut gaps);
    inventory.stateful_sets = take(stateful_sets, &mut gaps);
    inventory.replica_sets = take(replica_sets, &mut gaps);
    inventory.services = take(services, &mut gaps);
    inventory.namespaces = take(namespaces, &mut gaps);
    inventory.nodes = take(nodes, &mut gaps);
    gaps.extend(istio.discovery.gaps);
    inventory.virtual_services = take(istio.virtual_services, &mut gaps);
    inventory.destination_rules = take(istio.destination_rules, &mut gaps);
    inventory.gateways = take(istio.gateways, &mut gaps);
    inventory.sidecars = take(istio.sidecars, &mut gaps);
    inventory.envoy_filters = take(istio.envoy_filters, &mut gaps);
    inventory.peer_authentications = take(istio.peer_authentications, &mut gaps);
    inventory.authorization_policies = take(istio.authorization_policies, &mut gaps);
    inventory.request_authentications = take(istio.request_authentications, &mut gaps);
    let gateway_api = istio.gateway_api;
    inventory.kube_gateways = take(gateway_api.gateways, &mut gaps);
    inventory.http_routes = take(gateway_api.http_routes, &mut gaps);
    inventory.grpc_routes = take(gateway_api.grpc_routes, &mut gaps);
    inventory.gateway_classes = take(gateway_api.gateway_classes, &mut gaps);
    inventory.inference_pools = take(gateway_api.inference_pools, &mut gaps);
    inventory
        .inference_pools
        .extend(take(gateway_api.inference_pools_alpha, &mut gaps));
    inventory.inference_objectives = take(gateway_api.inference_objectives, &mut gaps);
    inventory.gaps = gaps;
    Ok(inventory)
}

fn take<T>(listing: Listing<T>, gaps: &mut Vec<Gap>) -> Vec<T> {
    gaps.extend(listing.gaps);
    listing.items
}

/// `(group, version, plural, kind)` of a built-in kind.
type BuiltIn = (&'static str, &'static str, &'static str, &'static str);

const PODS: BuiltIn = ("", "v1", "pods", "Pod");
const DEPLOYMENTS: BuiltIn = ("apps", "v1", "deployments", "Deployment");
const STATEFUL_SETS: BuiltIn = ("apps", "v1", "statefulsets", "StatefulSet");
const REPLICA_SETS: BuiltIn = ("apps", "v1", "replicasets", "ReplicaSet");
const SERVICES: BuiltIn = ("", "v1", "services", "Service");
const NODES: BuiltIn = ("", "v1", "nodes", "Node");
const DAEMON_SETS: BuiltIn = ("apps", "v1", "daemonsets", "DaemonSet");

/// ztunnel's pods or DaemonSet in every namespace (it runs in istio-system, or wherever it was
/// installed): the per-node cost of ambient mode. Optional facts: any error is a gap (which the
/// resolution keeps only when a target is ambient), never the end of the run.
async fn list_ztunnel<T>(
    client: &ClusterClient,
    (group, version, plural, kind): BuiltIn,
    slim: fn(&mut T),
) -> Result<Listing<T>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    let what = format!("{kind} list ({ZTUNNEL_SELECTOR}) in all namespaces");
    let path = collection_path(group, version, None, plural);
    match list_selected::<T>(client, &path, &what, Some(ZTUNNEL_SELECTOR), slim).await {
        Ok(items) => Ok(Listing::items(items)),
        Err(error) => Ok(Listing::gap(what, error.gap_reason())),
    }
}

/// Pods in the scope, listed after the workloads: a pod that a listed Deployment or StatefulSet
/// owns is judged by that workload's template and keeps only what its own evidence reads; any
/// other pod keeps its whole spec (`ListedPod`).
async fn list_pods(
    client: &ClusterClient,
    scope: &ListScope,
    links: &OwnerLinks<'_>,
) -> Result<Listing<ListedPod>, ClusterError> {
    let (group, version, plural, kind) = PODS;
    let what = format!("{kind} list {}", scope.describe());
    let path = collection_path(group, version, scope.namespace(), plural);
    let listed = list_mapped(client, &path, &what, None, |mut pod: Pod| {
        slim::pod(&mut pod);
        let keep = match links.owner(&pod.metadata) {
            Some(_) => Spec::Compact,
            None => Spec::Whole,
        };
        ListedPod::new(pod, keep)
    });
    match listed.await {
        Ok(items) => Ok(Listing::items(items)),
        Err(error) if error.is_forbidden() || error.is_not_found() => {
            Ok(Listing::gap(what, error.gap_reason()))
        }
        Err(error) => Err(error),
    }
}

/// A built-in kind in the scope; `None` for a cluster-scoped kind.
async fn list_kind<T>(
    client: &ClusterClient,
    (group, version, plural, kind): BuiltIn,
    scope: Option<&ListScope>,
    slim: fn(&mut T),
) -> Result<Listing<T>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    let what = match scope {
        Some(scope) => format!("{kind} list {}", scope.describe()),
        None => format!("{kind} list"),
    };
    let path = collection_path(group, version, scope.and_then(ListScope::namespace), plural);
    match list_slimmed::<T>(client, &path, &what, slim).await {
        Ok(items) => Ok(Listing::items(items)),
        Err(error) if error.is_forbidden() || error.is_not_found() => {
            Ok(Listing::gap(what, error.gap_reason()))
        }
        Err(error) => Err(error),
    }
}

/// Namespaces (for their injection labels). With `-n`, the namespace must exist; when listing
/// namespaces is forbidden, the one namespace is read on its own.
async fn list_namespaces(
    client: &ClusterClient,
    namespace: Option<&str>,
) -> Result<Listing<Namespace>, ClusterError> {
    let listed = list_all::<Namespace>(client, "/api/v1/namespaces", "Namespace list").await;
    match (listed, namespace) {
        (Ok(items), Some(name)) => {
            if items
                .iter()
                .any(|item| item.metadata.name.as_deref() == Some(name))
            {
                Ok(Listing::items(items))
            } else {
                Err(ClusterError::NamespaceNotFound(name.to_string()))
            }
        }
        (Ok(items), None) => Ok(Listing::items(items)),
        (Err(error), Some(name)) if error.is_forbidden() => {
            let api: kube::Api<Namespace> = kube::Api::all(client.kube().clone());
            let what = format!("Namespace {name}");
            match client.call(&what, api.get(name)).await {
                Ok(item) => Ok(Listing::items(vec![item])),
                Err(error) if error.is_not_found() => {
                    Err(ClusterError::NamespaceNotFound(name.to_string()))
                }
                Err(error) if error.is_forbidden() => Ok(Listing::gap(what, error.gap_reason())),
                Err(error) => Err(error),
            }
        }
        (Err(error), None) if error.is_forbidden() => Ok(Listing::gap(
            "Namespace list".to_string(),
            error.gap_reason(),
        )),
        (Err(error), _) => Err(error),
    }
}

struct IstioListings {
    discovery: IstioDiscovery,
    virtual_services: Listing<crate::evidence::objects::VirtualService>,
    destination_rules: Listing<crate::evidence::objects::DestinationRule>,
    gateways: Listing<crate::evidence::objects::Gateway>,
    sidecars: Listing<crate::evidence::objects::Sidecar>,
    envoy_filters: Listing<crate::evidence::objects::EnvoyFilter>,
    peer_authentications: Listing<crate::evidence::objects::PeerAuthentication>,
    authorization_policies: Listing<crate::evidence::objects::AuthorizationPolicy>,
    request_authentications: Listing<crate::evidence::objects::RequestAuthentication>,
    gateway_api: GatewayApiListings,
}

/// The Gateway API and Inference Extension kinds, one listing each (both pool groups).
struct GatewayApiListings {
    gateways: Listing<crate::evidence::objects::KubeGateway>,
    http_routes: Listing<crate::evidence::objects::KubeHttpRoute>,
    grpc_routes: Listing<crate::evidence::objects::KubeGrpcRoute>,
    gateway_classes: Listing<crate::evidence::objects::GatewayClass>,
    inference_pools: Listing<crate::evidence::objects::InferencePool>,
    inference_pools_alpha: Listing<crate::evidence::objects::InferencePool>,
    inference_objectives: Listing<crate::evidence::objects::InferenceObjective>,
}

async fn list_istio(
    client: &ClusterClient,
    scope: &ListScope,
) -> Result<IstioListings, ClusterError> {
    let discovery = discovery::discover_istio(client).await?;
    let (
        virtual_services,
        destination_rules,
        gateways,
        sidecars,
        envoy_filters,
        peer_authentications,
        authorization_policies,
        request_authentications,
        gateway_api,
    ) = tokio::try_join!(
        list_istio_kind(client, &discovery, &VIRTUAL_SERVICE, scope),
        list_istio_kind(client, &discovery, &DESTINATION_RULE, scope),
        list_istio_kind(client, &discovery, &GATEWAY, scope),
        list_istio_kind(client, &discovery, &SIDECAR, scope),
        list_istio_kind(client, &discovery, &ENVOY_FILTER, scope),
        list_istio_kind(client, &discovery, &PEER_AUTHENTICATION, scope),
        list_istio_kind(client, &discovery, &AUTHORIZATION_POLICY, scope),
        list_istio_kind(client, &discovery, &REQUEST_AUTHENTICATION, scope),
        list_gateway_api(client, &discovery, scope),
    )?;
    Ok(IstioListings {
        discovery,
        virtual_services,
        destination_rules,
        gateways,
        sidecars,
        envoy_filters,
        peer_authentications,
        authorization_policies,
        request_authentications,
        gateway_api,
    })
}

async fn list_gateway_api(
    client: &ClusterClient,
    discovery: &IstioDiscovery,
    scope: &ListScope,
) -> Result<GatewayApiListings, ClusterError> {
    let (
        gateways,
        http_routes,
        grpc_routes,
        gateway_classes,
        inference_pools,
        inference_pools_alpha,
        inference_objectives,
    ) = tokio::try_join!(
        list_istio_kind(client, discovery, &KUBE_GATEWAY, scope),
        list_istio_kind(client, discovery, &HTTP_ROUTE, scope),
        list_istio_kind(client, discovery, &GRPC_ROUTE, scope),
        list_istio_kind(client, discovery, &GATEWAY_CLASS, scope),
        list_istio_kind(client, discovery, &INFERENCE_POOL, scope),
        list_istio_kind(client, discovery, &INFERENCE_POOL_ALPHA, scope),
        list_istio_kind(client, discovery, &INFERENCE_OBJECTIVE, scope),
    )?;
    Ok(GatewayApiListings {
        gateways,
        http_routes,
        grpc_routes,
        gateway_classes,
        inference_pools,
        inference_pools_alpha,
        inference_objectives,
    })
}

/// One custom kind (Istio's, the Gateway API's) at its discovered version, read as raw JSON and
/// typed object by object, so one odd object becomes a gap instead of failing the kind.
async fn list_istio_kind<Spec>(
    client: &ClusterClient,
    discovery: &IstioDiscovery,
    kind: &IstioKind,
    scope: &ListScope,
) -> Result<Listing<IstioObject<Spec>>, ClusterError>
where
    Spec: DeserializeOwned + Default,
{
    let Some(served) = discovery.served(kind) else {
        // Not served: discovery already recorded why.
        return Ok(Listing::items(Vec::new()));
    };
    let what = format!("{} list in all namespaces", kind.kind);
    let path = collection_path(served.group, &served.version, None, &served.plural);
    let mut gaps = Vec::new();
    let raw = match list_slimmed::<serde_json::Value>(client, &path, &what, slim::value).await {
        Ok(raw) => raw,
        Err(error) if error.is_forbidden() => match scope.namespace() {
            Some(namespace) => {
                let narrow = format!("{} list in namespace {namespace}", kind.kind);
                let path = collection_path(
                    served.group,
                    &served.version,
                    Some(namespace),
                    &served.plural,
                );
                match list_slimmed::<serde_json::Value>(client, &path, &narrow, slim::value).await {
                    Ok(raw) => {
                        gaps.push(Gap::new(
                            format!("{} list outside namespace {namespace}", kind.kind),
                            error.gap_reason(),
                        ));
                        raw
                    }
                    Err(error) if error.is_forbidden() || error.is_not_found() => {
                        return Ok(Listing::gap(narrow, error.gap_reason()));
                    }
                    Err(error) => return Err(error),
                }
            }
            None => return Ok(Listing::gap(what, error.gap_reason())),
        },
        Err(error) if error.is_not_found() => return Ok(Listing::gap(what, error.gap_reason())),
        Err(error) => return Err(error),
    };
    let mut items = Vec::with_capacity(raw.len());
    for value in raw {
        let name = object_name(&value);
        match serde_json::from_value::<IstioObject<Spec>>(value) {
            Ok(mut object) => {
                if object.api_version.is_none() {
                    object.api_version = Some(served.api_version());
                }
                items.push(object);
            }
            Err(error) => gaps.push(Gap::new(
                format!("{} {name}", kind.kind),
                format!("cannot read its spec: {error}"),
            )),
        }
    }
    Ok(Listing { items, gaps })
}

/// `namespace/name` of a raw object, for messages.
fn object_name(value: &serde_json::Value) -> String {
    let metadata = &value["metadata"];
    let name = metadata["name"].as_str().unwrap_or("(unnamed)");
    match metadata["namespace"].as_str() {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_describes_itself() {
        assert_eq!(
            ListScope::Namespace("inference".into()).describe(),
            "in namespace inference"
        );
        assert_eq!(ListScope::AllNamespaces.namespace(), None);
    }

    #[test]
    fn object_names_read_namespace_and_name() {
        let value = serde_json::json!({"metadata": {"name": "vllm", "namespace": "inference"}});
        assert_eq!(object_name(&value), "inference/vllm");
        assert_eq!(object_name(&serde_json::json!({})), "(unnamed)");
    }
}
