//! Facts about a target that several checks read: its containers and where they sit in the
//! workload's manifest, the service ports that reach vLLM, and the routes that reach it.

use crate::evidence::generation::istio_matches_admit;
use crate::evidence::objects::{DestinationRule, HttpRoute, VirtualService};
use crate::evidence::resolve::delegation::{self, RunRoute};
use crate::evidence::resolve::patches::InferencePath;
use crate::evidence::resolve::policy::{destination_rule_for, host_matches};
use crate::evidence::{ServiceInfo, TargetEvidence, Workload, WorkloadKind};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use std::collections::BTreeSet;

/// The container name Istio injects.
pub const PROXY_CONTAINER: &str = "istio-proxy";

/// Where the pod spec sits in the workload object: `spec/template/spec` or `spec` for a Pod.
pub fn pod_spec_path(workload: &Workload) -> &'static str {
    match workload.kind {
        WorkloadKind::Pod | WorkloadKind::Endpoint => "spec",
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => "spec/template/spec",
    }
}

/// Where the pod metadata sits in the workload object.
pub fn pod_metadata_path(workload: &Workload) -> &'static str {
    match workload.kind {
        WorkloadKind::Pod | WorkloadKind::Endpoint => "metadata",
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => "spec/template/metadata",
    }
}

/// The vLLM container and its index in `containers`.
pub fn vllm_container(workload: &Workload) -> Option<(usize, &Container)> {
    workload
        .pod_spec
        .containers
        .iter()
        .enumerate()
        .find(|(_, container)| container.name == workload.vllm.container)
}

/// The containers that are not Istio's proxy.
pub fn app_containers(spec: &PodSpec) -> impl Iterator<Item = (usize, &Container)> {
    spec.containers
        .iter()
        .enumerate()
        .filter(|(_, container)| container.name != PROXY_CONTAINER)
}

/// The injected proxy when the spec already has it, with its field path relative to the pod
/// spec (`containers[1]` or, for a native sidecar, `initContainers[0]`).
pub fn proxy_container(spec: &PodSpec) -> Option<(String, &Container)> {
    let regular = spec
        .containers
        .iter()
        .enumerate()
        .find(|(_, container)| container.name == PROXY_CONTAINER)
        .map(|(index, container)| (format!("containers[{index}]"), container));
    regular.or_else(|| {
        spec.init_containers
            .iter()
            .flatten()
            .enumerate()
            .find(|(_, container)| container.name == PROXY_CONTAINER)
            .map(|(index, container)| (format!("initContainers[{index}]"), container))
    })
}

/// A service port that carries traffic to the vLLM port.
#[derive(Debug, Clone, Copy)]
pub struct InferencePort<'a> {
    pub service: &'a ServiceInfo,
    pub port: u16,
}

/// The service ports whose target is the vLLM port (by number, by the container port's name,
/// or by default equal to the port). A service none of whose ports says so contributes all of
/// its ports: resolution already found that it selects the workload.
pub fn inference_ports(target: &TargetEvidence) -> Vec<InferencePort<'_>> {
    let workload = &target.workload;
    let vllm_port = workload.vllm.port;
    let named_ports: Vec<&str> = vllm_container(workload)
        .and_then(|(_, container)| container.ports.as_ref())
        .into_iter()
        .flatten()
        .filter(|port| port.container_port == i32::from(vllm_port))
        .filter_map(|port| port.name.as_deref())
        .collect();
    let mut found = Vec::new();
    for service in &target.mesh.services {
        let matching: Vec<u16> = service
            .ports
            .iter()
            .filter(|port| match port.target_port.as_deref() {
                None => port.port == vllm_port,
                Some(target) => match target.parse::<u16>() {
                    Ok(number) => number == vllm_port,
                    Err(_) => named_ports.contains(&target),
                },
            })
            .map(|port| port.port)
            .collect();
        let ports = if matching.is_empty() {
            service.ports.iter().map(|port| port.port).collect()
        } else {
            matching
        };
        found.extend(
            ports
                .into_iter()
                .map(|port| InferencePort { service, port }),
        );
    }
    found
}

/// The distinct service ports of [`inference_ports`].
pub fn service_ports(target: &TargetEvidence) -> Vec<u16> {
    let mut ports: Vec<u16> = inference_ports(target)
        .iter()
        .map(|found| found.port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Where the target's inference traffic passes, for judging EnvoyFilter patches.
pub fn inference_path<'a>(
    target: &'a TargetEvidence,
    service_ports: &'a [u16],
) -> InferencePath<'a> {
    InferencePath {
        pod_labels: &target.workload.pod_labels,
        has_sidecar: target.mesh.sidecar_mode.has_sidecar(),
        workload_port: target.workload.vllm.port,
        service_ports,
    }
}

/// The namespace an Istio object's short hosts resolve in.
pub fn object_namespace<'a>(
    metadata: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    target: &'a TargetEvidence,
) -> &'a str {
    metadata
        .namespace
        .as_deref()
        .unwrap_or(&target.workload.namespace)
}

/// Whether an HTTP route of `virtual_service` sends traffic to one of the target's services. Without
/// any service known, every route of a resolved VirtualService counts. A delegate (no `hosts`)
/// never runs on its own: its routes count through the root route that delegates to them
/// ([`run_route_reaches`]).
pub fn route_reaches(
    route: &HttpRoute,
    virtual_service: &VirtualService,
    target: &TargetEvidence,
) -> bool {
    !delegation::is_delegate(virtual_service) && destinations_reach(route, virtual_service, target)
}

/// Whether a route as Istio runs it (a delegate's route in its root route's place) sends traffic
/// to one of the target's services.
pub fn run_route_reaches(run: &RunRoute, target: &TargetEvidence) -> bool {
    let written = run.written();
    destinations_reach(written.route, written.virtual_service, target)
}

fn destinations_reach(
    route: &HttpRoute,
    virtual_service: &VirtualService,
    target: &TargetEvidence,
) -> bool {
    let services = &target.mesh.services;
    if services.is_empty() {
        return true;
    }
    let namespace = object_namespace(&virtual_service.metadata, target);
    route.route.iter().any(|destination| {
        services
            .iter()
            .any(|service| host_matches(&destination.destination.host, namespace, service))
    })
}

/// Whether a route as Istio runs it admits generation requests: its root's matches and, when
/// delegated, its delegate's (`evidence::generation`).
pub fn carries_generation(run: &RunRoute) -> bool {
    istio_matches_admit(&run.root.route.matches)
        && run
            .delegated
            .is_none_or(|delegated| istio_matches_admit(&delegated.route.matches))
}

/// Whether the VirtualService applies to callers inside the mesh (no `gateways`, or `mesh`).
pub fn binds_mesh(virtual_service: &VirtualService) -> bool {
    virtual_service.spec.gateways.is_empty()
        || virtual_service
            .spec
            .gateways
            .iter()
            .any(|gateway| gateway == "mesh")
}

/// An Envoy cluster that carries requests to the workload: `outbound|PORT|SUBSET|HOST`.
#[derive(Debug, Clone)]
pub struct UpstreamCluster<'a> {
    pub service: &'a ServiceInfo,
    pub port: u16,
    pub subset: Option<String>,
    /// The DestinationRule Istio applies to the service, if any.
    pub rule: Option<&'a DestinationRule>,
}

impl UpstreamCluster<'_> {
    pub fn name(&self) -> String {
        format!(
            "outbound|{}|{}|{}",
            self.port,
            self.subset.as_deref().unwrap_or_default(),
            self.service.fqdn()
        )
    }
}

/// The clusters callers use to reach the workload: per inference port, the plain cluster
/// (unless every mesh route to the service picks a subset) and each subset that routes use and
/// whose labels select the workload's pods.
pub fn upstream_clusters(target: &TargetEvidence) -> Vec<UpstreamCluster<'_>> {
    let mut clusters = Vec::new();
    for InferencePort { service, port } in inference_ports(target) {
        let rule = destination_rule_for(&target.mesh.destination_rules, service);
        let mut subsets = BTreeSet::new();
        let mut plain_route = false;
        let mut mesh_routes = false;
        // Delegated routes: destinations from the delegate, binding from the root.
        for run in delegation::run_routes(&target.mesh.virtual_services) {
            let written = run.written();
            let namespace = object_namespace(&written.virtual_service.metadata, target);
            let mut reaches = false;
            for destination in written
                .route
                .route
                .iter()
                .map(|weighted| &weighted.destination)
            {
                let port_matches = destination
                    .port
                    .as_ref()
                    .and_then(|selector| selector.number)
                    .is_none_or(|number| number == u32::from(port));
                if port_matches && host_matches(&destination.host, namespace, service) {
                    reaches = true;
                    match &destination.subset {
                        Some(subset) => {
                            subsets.insert(subset.clone());
                        }
                        None => plain_route = true,
                    }
                }
            }
            mesh_routes |= reaches && binds_mesh(run.root.virtual_service);
        }
        if plain_route || !mesh_routes {
            clusters.push(UpstreamCluster {
                service,
                port,
                subset: None,
                rule,
            });
        }
        let Some(rule) = rule else { continue };
        for subset in subsets {
            let selects_pods = rule.spec.subsets.iter().any(|defined| {
                defined.name == subset
                    && defined
                        .labels
                        .iter()
                        .all(|(key, value)| target.workload.pod_labels.get(key) == Some(value))
            });
            if selects_pods {
                clusters.push(UpstreamCluster {
                    service,
                    port,
                    subset: Some(subset),
                    rule: Some(rule),
                });
            }
        }
    }
    clusters
}
