//! Pods outside the listed scope that the paths need: the ingress gateway pods a Gateway's
//! `selector` picks (usually in `istio-system`, outside `-n`), the pods of a Gateway API Gateway
//! or waypoint in another namespace, and the Services in front of them (for the listener port).
//! Label-selector list calls, one bounded page each; a 403 becomes a `Gap`.

use super::client::ClusterClient;
use super::error::ClusterError;
use super::list::collection_path;
use super::paths::{selected_pods, selector_text};
use crate::evidence::ambient::WaypointRef;
use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::ListedPod;
use crate::evidence::objects::Gateway;
use crate::evidence::objects::gateway_api::GATEWAY_NAME_LABEL;
use crate::evidence::{Gap, TargetEvidence};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::core::ObjectList;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};

/// The most pods read per selector: gateways run a few replicas; a selector that matches more
/// is too broad to be a gateway's, and the first page is enough to reach one.
pub const MAX_SELECTED_PODS: u32 = 100;

/// A Gateway API Gateway (class `istio`, or a waypoint) whose pods Istio labels
/// `gateway.networking.k8s.io/gateway-name=NAME` in the Gateway's namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedGateway {
    pub namespace: String,
    pub name: String,
}

/// Adds to `inventory` the pods each Gateway's selector matches (any namespace), the pods of
/// each named Gateway API Gateway that the inventory has none of (a namespace outside `-n`), and
/// the Services of the selected pods' namespaces, when they are not there yet. Returns what
/// could not be read as gaps (also added to the inventory's gaps).
pub async fn add_gateway_pods(
    client: &ClusterClient,
    inventory: &mut Inventory,
    gateways: &[Gateway],
    named: &[NamedGateway],
) -> Result<Vec<Gap>, ClusterError> {
    let mut gaps = Vec::new();
    for gateway in named {
        let labels = BTreeMap::from([(GATEWAY_NAME_LABEL.to_string(), gateway.name.clone())]);
        let listed = selected_pods(inventory, &labels)
            .iter()
            .any(|(_, pod)| pod.metadata.namespace.as_deref() == Some(gateway.namespace.as_str()));
        if listed {
            continue;
        }
        let selector = selector_text(&labels);
        match list_selected_pods(client, Some(&gateway.namespace), &selector).await {
            Ok(pods) => add_pods(inventory, pods),
            Err(error) if error.is_forbidden() || error.is_not_found() => gaps.push(Gap::new(
                format!(
                    "Pod list with selector {selector} in namespace {}",
                    gateway.namespace
                ),
                error.gap_reason(),
            )),
            Err(error) => return Err(error),
        }
    }
    let mut selectors: BTreeSet<String> = BTreeSet::new();
    for gateway in gateways {
        if !gateway.spec.selector.is_empty() {
            selectors.insert(selector_text(&gateway.spec.selector));
        }
    }
    for selector in &selectors {
        match list_selected_pods(client, None, selector).await {
            Ok(pods) => add_pods(inventory, pods),
            Err(error) if error.is_forbidden() || error.is_not_found() => gaps.push(Gap::new(
                format!("gateway Pod list with selector {selector} in all namespaces"),
                error.gap_reason(),
            )),
            Err(error) => return Err(error),
        }
    }
    let listed_service_namespaces: BTreeSet<String> = inventory
        .services
        .iter()
        .filter_map(|service| service.metadata.namespace.clone())
        .collect();
    let gateway_namespaces: BTreeSet<String> = inventory
        .pods
        .iter()
        .filter(|pod| {
            gateways.iter().any(|gateway| {
                !gateway.spec.selector.is_empty()
                    && gateway.spec.selector.iter().all(|(key, value)| {
                        pod.metadata
                            .labels
                            .as_ref()
                            .and_then(|labels| labels.get(key))
                            == Some(value)
                    })
            })
        })
        .filter_map(|pod| pod.metadata.namespace.clone())
        .filter(|namespace| !listed_service_namespaces.contains(namespace))
        .collect();
    for namespace in gateway_namespaces {
        let what = format!("Service list in namespace {namespace}");
        let path = collection_path("", "v1", Some(&namespace), "services");
        match list_page::<Service>(client, &path, None, &what).await {
            Ok(services) => inventory.services.extend(services),
            Err(error) if error.is_forbidden() || error.is_not_found() => {
                gaps.push(Gap::new(what, error.gap_reason()))
            }
            Err(error) => return Err(error),
        }
    }
    inventory.gaps.extend(gaps.iter().cloned());
    Ok(gaps)
}

/// Pods matching a label selector, in `namespace` or (None) all namespaces; at most
/// [`MAX_SELECTED_PODS`], each with its whole spec.
pub async fn list_selected_pods(
    client: &ClusterClient,
    namespace: Option<&str>,
    selector: &str,
) -> Result<Vec<ListedPod>, ClusterError> {
    let what = match namespace {
        Some(namespace) => format!("Pod list with selector {selector} in namespace {namespace}"),
        None => format!("Pod list with selector {selector} in all namespaces"),
    };
    let path = collection_path("", "v1", namespace, "pods");
    let pods: Vec<Pod> = list_page(client, &path, Some(selector), &what).await?;
    Ok(pods.into_iter().map(ListedPod::from).collect())
}

async fn list_page<T>(
    client: &ClusterClient,
    path: &str,
    selector: Option<&str>,
    what: &str,
) -> Result<Vec<T>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    let mut params = ListParams::default().limit(MAX_SELECTED_PODS);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let request = kube::core::Request::new(path)
        .list(&params)
        .map_err(|error| ClusterError::Other {
            what: what.to_string(),
            reason: error.to_string(),
        })?;
    let page: ObjectList<T> = client
        .call(what, client.kube().request::<ObjectList<T>>(request))
        .await?;
    Ok(page.items)
}

/// Adds pods not yet in the inventory (same namespace and name).
pub fn add_pods(inventory: &mut Inventory, pods: Vec<ListedPod>) {
    for pod in pods {
        let known = inventory.pods.iter().any(|have| {
            have.metadata.namespace == pod.metadata.namespace
                && have.metadata.name == pod.metadata.name
        });
        if !known {
            inventory.pods.push(pod);
        }
    }
}

/// The Gateway API Gateways on the targets' paths whose pods a path needs: the gateways in
/// front (`kube_gateways`) and, in ambient mode, the waypoint.
pub fn named_gateways<'a>(
    targets: impl IntoIterator<Item = &'a TargetEvidence>,
) -> Vec<NamedGateway> {
    let mut named = BTreeSet::new();
    for target in targets {
        for gateway in &target.mesh.kube_gateways {
            if let (Some(namespace), Some(name)) =
                (&gateway.metadata.namespace, &gateway.metadata.name)
            {
                named.insert(NamedGateway {
                    namespace: namespace.clone(),
                    name: name.clone(),
                });
            }
        }
        if let Some(waypoint) = waypoint_of(target) {
            named.insert(NamedGateway {
                namespace: waypoint.namespace.clone(),
                name: waypoint.name.clone(),
            });
        }
    }
    named.into_iter().collect()
}

fn waypoint_of(target: &TargetEvidence) -> Option<&WaypointRef> {
    target.mesh.ambient.as_ref()?.waypoint.as_ref()
}
