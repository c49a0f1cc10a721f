//! `probe [TARGET]`: the URL probe, with the paths opened on a live cluster when a TARGET is
//! given. `direct` is a port-forward to the vLLM container port of a ready pod (it enters the pod
//! on loopback, which the sidecar does not capture); `mesh` is a port-forward to an ingress
//! gateway pod's listener with the Host the gateway routes on; Envoy's counters are read through
//! port-forwards to 15000 of the gateway and of the vLLM pod (docs/facts.md "Where each path goes").
//! Every path and admin API can be given by URL instead. [`LivePaths`] holds the opened paths,
//! so `diagnose --probe` runs all its planned runs through one set of port-forwards.

use super::ProbeError;
use super::args::ProbeArgs;
use super::client::https_base;
use super::envoy_counters::{AdminEndpoint, EnvoyCounters};
use super::run::run_in;
use crate::evidence::Gap;
use crate::evidence::ambient::{INGRESS_USE_WAYPOINT, WaypointRef};
use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::ListedPod;
use crate::evidence::objects::gateway_api::GATEWAY_NAME_LABEL;
use crate::evidence::probe::report::ProbeReport;
use crate::evidence::resolve::ambient::waypoint_pods;
use crate::evidence::resolve::workloads::Owners;
use crate::evidence::resolve::{self, GatherError, Scope, Target};
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::sources::cluster::args::ClusterArgs;
use crate::sources::cluster::client::ClusterClient;
use crate::sources::cluster::error::ClusterError;
use crate::sources::cluster::inventory::{ListScope, list_inventory};
use crate::sources::cluster::paths::{
    EnvoySide, admin_pods, direct_pods, ingress_gateways, pod_ref, readiness_rank,
};
use crate::sources::cluster::portforward::{PodPort, PortForward};
use crate::sources::cluster::selected::{NamedGateway, add_gateway_pods, named_gateways};
use crate::sources::progress::Progress;
use crate::sources::stop::{Stop, ctrl_c_stop};

use crate::evidence::probe::report::{ClusterPaths, Forward};
use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, SystemTime};

/// Envoy's admin port inside every Istio proxy pod (loopback only: reached by port-forward).
pub const ENVOY_ADMIN_PORT: u16 = 15000;
/// Gateway server protocols the probe speaks in plain HTTP.
const PLAIN_HTTP: [&str; 3] = ["HTTP", "HTTP2", "GRPC"];
/// A Gateway server that terminates TLS: the probe speaks HTTPS to it, with its host as the TLS
/// name (a `TLS` server passes TLS through to the pod and is not an HTTP entry).
const TERMINATES_TLS: &str = "HTTPS";
/// At most this many vLLM pods' sidecars are read for counters.
const MAX_SIDECAR_ADMINS: usize = 4;
/// `gather` needs an expected generation; the probe judges nothing with it.
const EXPECTED_GENERATION: Duration = Duration::from_secs(300);

/// What `probe` was asked: the TARGET and its namespace, the cluster flags, admin URLs, and the
/// probe's own flags; `found` when the caller has already found the target on the cluster.
#[derive(Debug, Clone, Copy)]
pub struct LiveRequest<'a> {
    pub target: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub cluster: &'a ClusterArgs,
    pub admin_urls: &'a [String],
    pub probe: &'a ProbeArgs,
    pub found: Option<Found<'a>>,
}

/// A target the caller already found on the cluster (`diagnose`): its client, the inventory it
/// was found in and its evidence. Opening its paths then lists nothing again.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    pub client: &'a ClusterClient,
    pub inventory: &'a Inventory,
    pub target: &'a TargetEvidence,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "nothing to probe: give TARGET (deploy/NAME, sts/NAME, pod/NAME or svc/NAME) to find the paths on the cluster, or --direct-url and --mesh-url"
    )]
    NothingToProbe,
    #[error(transparent)]
    Target(GatherError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Gather(#[from] GatherError),
    #[error("{target} matched no workload in namespace {namespace}")]
    NoWorkload { target: String, namespace: String },
    #[error(
        "{workload} has no ready pod to port-forward to: check `kubectl get pods -n {namespace}`, or give --direct-url"
    )]
    NoReadyPod { workload: String, namespace: String },
    #[error(
        "no Istio ingress gateway routes to {workload} (no Gateway with a VirtualService or HTTPRoute for its Service): give --mesh-url, the URL of a path through the mesh"
    )]
    NoGateway { workload: String },
    #[error(
        "no ingress gateway routes to {workload}, and in ambient mode the path inside the mesh is HBONE ({through}: HTTP/2 CONNECT over mTLS on port 15008, with workload certificates), which the probe cannot enter: route a Gateway to its Service, or give --mesh-url, the URL of a path through the mesh"
    )]
    NoGatewayAmbient { workload: String, through: String },
    #[error(
        "{gateway}, the only gateway that routes to {workload}, serves {protocol}, which the probe cannot enter (it speaks HTTP and HTTPS): give --mesh-url"
    )]
    GatewayNeedsTls {
        workload: String,
        gateway: String,
        protocol: String,
    },
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("interrupted before the probe started")]
    Interrupted,
}

impl LiveError {
    /// A TARGET that cannot be parsed, or nothing to probe, is a usage error.
    pub fn is_usage(&self) -> bool {
        matches!(self, LiveError::NothingToProbe | LiveError::Target(_))
    }
}

/// The paths opened on the cluster, and the forwards to close when done.
struct Opened {
    forwards: Vec<PortForward>,
    direct_url: Option<String>,
    mesh_url: Option<String>,
    mesh_host: Option<String>,
    admin: Vec<AdminEndpoint>,
    /// The Service host and port, to read only the path to vLLM in each Envoy.
    service: Option<(String, u16)>,
    info: ClusterPaths,
    /// When the direct path's pod started, for its age at each probe.
    direct_started: Option<SystemTime>,
    gaps: Vec<Gap>,
}

/// The paths of one probe target, opened once: the URLs (given, or the local ends of
/// port-forwards), the Host header, the Envoys whose counters are read, how the cluster was
/// reached, and what could not be opened. Every probe through it reuses them, each on fresh
/// HTTP connections; [`LivePaths::close`] ends the port-forwards.
pub struct LivePaths {
    forwards: Vec<PortForward>,
    direct_url: Option<String>,
    mesh_url: Option<String>,
    mesh_host: Option<String>,
    counters: EnvoyCounters,
    info: Option<ClusterPaths>,
    direct_started: Option<SystemTime>,
    gaps: Vec<Gap>,
}

impl LivePaths {
    /// Opens on the cluster what the URLs in `request` do not give (listing it unless the
    /// target was `found` already) and reads each Envoy's config for its counters. Ctrl-C on
    /// `stop` ends it with [`LiveError::Interrupted`], closing what was opened.
    pub async fn open(request: LiveRequest<'_>, stop: &Stop) -> Result<LivePaths, LiveError> {
        let args = request.probe;
        let on_cluster = request.target.is_some() || request.found.is_some();
        if !on_cluster && args.direct_url.is_none() && args.mesh_url.is_none() {
            return Err(LiveError::NothingToProbe);
        }
        let mut paths = LivePaths {
            forwards: Vec::new(),
            direct_url: None,
            mesh_url: None,
            mesh_host: None,
            counters: EnvoyCounters::none(),
            info: None,
            direct_started: None,
            gaps: Vec::new(),
        };
        let mut admin: Vec<AdminEndpoint> = request
            .admin_urls
            .iter()
            .map(|url| AdminEndpoint::from_url(url))
            .collect();
        let mut service = None;
        if on_cluster {
            let opened = until_stopped(stop, open_cluster(request)).await?;
            paths.forwards = opened.forwards;
            paths.direct_url = opened.direct_url;
            paths.mesh_url = opened.mesh_url;
            paths.mesh_host = opened.mesh_host;
            paths.info = Some(opened.info);
            paths.direct_started = opened.direct_started;
            paths.gaps = opened.gaps;
            if request.admin_urls.is_empty() {
                admin = opened.admin;
            }
            service = opened.service;
        } else if args.direct_url.is_none() || args.mesh_url.is_none() {
            paths.gaps.push(Gap::new(
                "the comparison",
                "only one path was given: give TARGET on a cluster, or both --direct-url and --mesh-url, to compare",
            ));
        }
        let service = service.as_ref().map(|(host, port)| (host.as_str(), *port));
        let mut gaps = Vec::new();
        let counters = until_stopped(stop, async {
            Ok(EnvoyCounters::connect(&admin, service, &mut gaps).await)
        })
        .await;
        match counters {
            Ok(counters) => {
                paths.counters = counters;
                paths.gaps.extend(gaps);
                Ok(paths)
            }
            Err(error) => {
                paths.close().await;
                Err(error)
            }
        }
    }

    /// One probe with `args` through these paths: the opened URLs and Host fill what `args`
    /// does not give, and the counters are read around each path of this probe alone.
    pub async fn probe(
        &self,
        args: &ProbeArgs,
        progress: Progress,
        stop: &Stop,
    ) -> Result<ProbeReport, LiveError> {
        let mut args = args.clone();
        if args.direct_url.is_none() {
            args.direct_url.clone_from(&self.direct_url);
        }
        if args.mesh_url.is_none() {
            args.mesh_url.clone_from(&self.mesh_url);
        }
        if args.mesh_host.is_none() {
            args.mesh_host.clone_from(&self.mesh_host);
        }
        let mut report = run_in(&args, progress, stop, &self.counters).await?;
        report.gaps.splice(0..0, self.gaps.iter().cloned());
        report.cluster = self.info.clone().map(|mut info| {
            if let Some(direct) = &mut info.direct {
                direct.pod_age_s = self.direct_started.and_then(age_s);
            }
            info
        });
        Ok(report)
    }

    /// Ends the port-forwards.
    pub async fn close(self) {
        close_all(self.forwards).await;
    }
}

/// Runs `probe`: opens what the URLs do not give on the cluster, probes, closes the
/// port-forwards. Ctrl-C stops it and returns what was measured (`interrupted` set).
pub async fn probe(request: LiveRequest<'_>, progress: Progress) -> Result<ProbeReport, LiveError> {
    let (stop, ctrl_c) = ctrl_c_stop();
    let outcome = probe_until(request, progress, &stop).await;
    ctrl_c.abort();
    outcome
}

/// `probe` with the caller's stop signal: the paths opened, one probe, the paths closed.
pub async fn probe_until(
    request: LiveRequest<'_>,
    progress: Progress,
    stop: &Stop,
) -> Result<ProbeReport, LiveError> {
    let paths = LivePaths::open(request, stop).await?;
    let report = paths.probe(request.probe, progress, stop).await;
    paths.close().await;
    report
}

/// Runs `work` unless Ctrl-C comes first.
async fn until_stopped<T>(
    stop: &Stop,
    work: impl Future<Output = Result<T, LiveError>>,
) -> Result<T, LiveError> {
    let mut stop = stop.clone();
    tokio::select! {
        outcome = work => outcome,
        () = stop.stopped() => Err(LiveError::Interrupted),
    }
}

async fn close_all(forwards: Vec<PortForward>) {
    futures_util::future::join_all(forwards.into_iter().map(PortForward::close)).await;
}

/// Opens the paths the URLs do not give for the target: the one `found` already, else TARGET
/// found by listing the cluster.
async fn open_cluster(request: LiveRequest<'_>) -> Result<Opened, LiveError> {
    if let Some(found) = request.found {
        return open_paths(
            request,
            found.client,
            Cow::Borrowed(found.inventory),
            found.target,
            Vec::new(),
        )
        .await;
    }
    let Some(text) = request.target else {
        return Err(LiveError::NothingToProbe);
    };
    let target = Target::parse(text).map_err(LiveError::Target)?;
    let client = ClusterClient::connect(request.cluster).await?;
    let scope = ListScope::from_flags(request.namespace, false, &client);
    let namespace = scope.namespace().unwrap_or_default().to_string();
    tracing::info!(context = client.context(), %namespace, %target, "finding the probe's paths");
    let inventory = list_inventory(&client, &scope).await?;
    let evidence = resolve::gather(
        &inventory,
        &Scope {
            namespace: Some(namespace.clone()),
            all_namespaces: false,
            selector: None,
            target: Some(target.clone()),
        },
        EXPECTED_GENERATION,
        vec!["cluster".to_string()],
    )?;
    let mut gaps = Vec::new();
    let Some(chosen) = evidence.targets.first() else {
        return Err(LiveError::NoWorkload {
            target: target.to_string(),
            namespace,
        });
    };
    if evidence.targets.len() > 1 {
        gaps.push(Gap::new(
            format!("the other workloads of {target}"),
            format!(
                "{target} selects {} workloads: probing the first, {}",
                evidence.targets.len(),
                chosen.workload.target_name()
            ),
        ));
    }
    open_paths(request, &client, Cow::Owned(inventory), chosen, gaps).await
}

/// Opens the port-forwards to `chosen`'s paths that the URLs do not give. The gateway pods are
/// listed only when `inventory` holds no ready one to reach.
async fn open_paths(
    request: LiveRequest<'_>,
    client: &ClusterClient,
    mut inventory: Cow<'_, Inventory>,
    chosen: &TargetEvidence,
    gaps: Vec<Gap>,
) -> Result<Opened, LiveError> {
    let args = request.probe;
    let workload = &chosen.workload;
    let mut opened = Opened {
        forwards: Vec::new(),
        direct_started: None,
        direct_url: None,
        mesh_url: None,
        mesh_host: None,
        admin: Vec::new(),
        service: service_of(chosen),
        info: ClusterPaths {
            context: client.context().to_string(),
            workload: workload.target_name(),
            namespace: workload.namespace.clone(),
            direct: None,
            mesh: None,
            mesh_host: None,
            gateway: None,
            admin: Vec::new(),
        },
        gaps,
    };

    let pods = direct_pods(&Owners::new(&inventory), workload);
    if args.direct_url.is_none() {
        let Some((pod, port)) = pods.first() else {
            return Err(LiveError::NoReadyPod {
                workload: workload.target_name(),
                namespace: workload.namespace.clone(),
            });
        };
        let forward = forward(client, pod, *port).await?;
        opened.direct_started = pod_start(&inventory, pod);
        opened.direct_url = Some(forward.url());
        opened.info.direct = Some(shown(&forward, pod));
        opened.forwards.push(forward);
    }
    let mut gateway_pod = None;
    if args.mesh_url.is_none() {
        if !reachable_gateway(&inventory, chosen) {
            let named = named_gateways([chosen]);
            let read =
                add_gateway_pods(client, inventory.to_mut(), &chosen.mesh.gateways, &named).await?;
            opened.gaps.extend(read.iter().cloned());
        }
        let entries = ingress_gateways(&inventory, chosen);
        // Plain HTTP first (nothing to trust), then HTTPS with a concrete host for the TLS name.
        let Some(entry) = entries
            .iter()
            .find(|entry| PLAIN_HTTP.contains(&entry.protocol.as_str()))
            .or_else(|| {
                entries.iter().find(|entry| {
                    entry.protocol == TERMINATES_TLS && !entry.host_header.contains('*')
                })
            })
        else {
            return Err(match entries.first() {
                Some(entry) => LiveError::GatewayNeedsTls {
                    workload: workload.target_name(),
                    gateway: entry.gateway.to_string(),
                    protocol: entry.protocol.clone(),
                },
                None => match &chosen.mesh.ambient {
                    Some(ambient) => LiveError::NoGatewayAmbient {
                        workload: workload.target_name(),
                        through: match &ambient.waypoint {
                            Some(waypoint) => {
                                format!("ztunnel, then waypoint {}", waypoint.display_name())
                            }
                            None => "ztunnel to ztunnel".to_string(),
                        },
                    },
                    None => LiveError::NoGateway {
                        workload: workload.target_name(),
                    },
                },
            });
        };
        let forward = forward(client, &entry.gateway_pod, entry.listener_port).await?;
        let mut mesh = shown(&forward, &entry.gateway_pod);
        if entry.protocol == TERMINATES_TLS {
            mesh.local_url = https_base(forward.local_addr());
        }
        opened.mesh_url = Some(mesh.local_url.clone());
        opened.mesh_host = Some(entry.host_header.clone());
        opened.info.mesh = Some(mesh);
        opened.info.mesh_host = Some(entry.host_header.clone());
        opened.info.gateway = Some(entry.gateway.to_string());
        opened.forwards.push(forward);
        gateway_pod = Some(entry.gateway_pod.clone());
    }
    if request.admin_urls.is_empty() {
        // The gateway the mesh path enters (client side), then the vLLM pods' sidecars (server
        // side): the gateway may send the request to any replica.
        if let Some(pod) = &gateway_pod {
            admin_forward(client, pod, "gateway", &mut opened).await;
        }
        let waypoint = chosen
            .mesh
            .ambient
            .as_ref()
            .and_then(|ambient| ambient.waypoint.as_ref());
        if let (Some(waypoint), Some(gateway)) = (waypoint, &opened.info.gateway) {
            match &waypoint.ingress_uses_it {
                Some(_) => match waypoint_pod(client, inventory.to_mut(), waypoint, &mut opened.gaps).await {
                    Some(pod) => admin_forward(client, &pod, "waypoint", &mut opened).await,
                    None => opened.gaps.push(Gap::new(
                        format!("Envoy counters of waypoint {}", waypoint.display_name()),
                        format!(
                            "no pod labelled {GATEWAY_NAME_LABEL}={} in namespace {}",
                            waypoint.name, waypoint.namespace
                        ),
                    )),
                },
                None => opened.gaps.push(Gap::new(
                    format!("waypoint {}", waypoint.display_name()),
                    format!(
                        "the mesh path enters at {gateway} and goes over HBONE straight to the pods, past waypoint {} (no {INGRESS_USE_WAYPOINT}=true on the Service or namespace): the waypoint's policy is not on the path probed",
                        waypoint.display_name()
                    ),
                )),
            }
        }
        let servers: Vec<ObjectRef> = admin_pods(&inventory, &Owners::new(&inventory), chosen)
            .into_iter()
            .filter(|(_, side)| *side == EnvoySide::Server)
            .map(|(pod, _)| pod)
            .collect();
        if servers.len() > MAX_SIDECAR_ADMINS {
            opened.gaps.push(Gap::new(
                "Envoy counters of the other vLLM pods",
                format!(
                    "read on {MAX_SIDECAR_ADMINS} of {} vLLM pods: the mesh path may reach another replica",
                    servers.len()
                ),
            ));
        }
        for pod in servers.iter().take(MAX_SIDECAR_ADMINS) {
            admin_forward(client, pod, "vLLM sidecar", &mut opened).await;
        }
    }
    Ok(opened)
}

/// The waypoint's first pod; its pods are listed now when the inventory has none of them (a
/// waypoint in a namespace outside `-n`).
async fn waypoint_pod(
    client: &ClusterClient,
    inventory: &mut Inventory,
    waypoint: &WaypointRef,
    gaps: &mut Vec<Gap>,
) -> Option<ObjectRef> {
    let named = [NamedGateway {
        namespace: waypoint.namespace.clone(),
        name: waypoint.name.clone(),
    }];
    match add_gateway_pods(client, inventory, &[], &named).await {
        Ok(read) => gaps.extend(read.iter().cloned()),
        Err(error) => gaps.push(Gap::new("waypoint pods", error.to_string())),
    }
    let pods = waypoint_pods(inventory, &waypoint.namespace, &waypoint.name);
    let pod = pods.first()?;
    Some(ObjectRef::new("Pod", Some(&waypoint.namespace), &pod.name))
}

/// A forward to 15000 of `pod`; a failure is a gap, not an error.
async fn admin_forward(client: &ClusterClient, pod: &ObjectRef, role: &str, opened: &mut Opened) {
    match forward(client, pod, ENVOY_ADMIN_PORT).await {
        Ok(forward) => {
            opened.admin.push(AdminEndpoint {
                url: forward.url(),
                name: format!("pod/{} ({role})", pod.name),
            });
            opened.info.admin.push(shown(&forward, pod));
            opened.forwards.push(forward);
        }
        Err(error) => opened.gaps.push(Gap::new(
            format!("Envoy counters of the {role}"),
            error.to_string(),
        )),
    }
}

async fn forward(
    client: &ClusterClient,
    pod: &ObjectRef,
    port: u16,
) -> Result<PortForward, ClusterError> {
    PortForward::start(
        client,
        PodPort {
            namespace: pod.namespace.clone().unwrap_or_default(),
            pod: pod.name.clone(),
            port,
        },
    )
    .await
}

fn shown(forward: &PortForward, pod: &ObjectRef) -> Forward {
    Forward {
        pod: pod.to_string(),
        port: forward.target().port,
        local_url: forward.url(),
        pod_age_s: None,
    }
}

/// The Service host and port that reach vLLM: the port whose targetPort is vLLM's port (by
/// number or name), else the port equal to it, else the first.
fn service_of(target: &TargetEvidence) -> Option<(String, u16)> {
    let vllm_port = target.workload.vllm.port;
    let service = target.mesh.services.first()?;
    let port = service
        .ports
        .iter()
        .find(|port| match port.target_port.as_deref() {
            Some(text) => text == vllm_port.to_string() || target_port_is_vllm(text, target),
            None => port.port == vllm_port,
        })
        .or_else(|| service.ports.iter().find(|port| port.port == vllm_port))
        .or_else(|| service.ports.first())?;
    Some((service.fqdn(), port.port))
}

/// A named targetPort that names the vLLM container's port.
fn target_port_is_vllm(name: &str, target: &TargetEvidence) -> bool {
    let workload = &target.workload;
    workload
        .pod_spec
        .containers
        .iter()
        .filter(|container| container.name == workload.vllm.container)
        .flat_map(|container| container.ports.iter().flatten())
        .any(|port| {
            port.name.as_deref() == Some(name)
                && u16::try_from(port.container_port).ok() == Some(workload.vllm.port)
        })
}

fn start_time(pod: &ListedPod) -> Option<SystemTime> {
    let status = pod.status.as_ref()?;
    let time = status
        .start_time
        .as_ref()
        .or(pod.metadata.creation_timestamp.as_ref())?;
    Some(SystemTime::from(time.0))
}

/// When the pod started, if the inventory knows it.
fn pod_start(inventory: &Inventory, pod: &ObjectRef) -> Option<SystemTime> {
    let found = inventory.pods.iter().find(|candidate| {
        candidate.metadata.name.as_deref() == Some(pod.name.as_str())
            && candidate.metadata.namespace.as_deref() == pod.namespace.as_deref()
    })?;
    start_time(found)
}

/// Whole seconds since `started`.
fn age_s(started: SystemTime) -> Option<u64> {
    SystemTime::now()
        .duration_since(started)
        .ok()
        .map(|age| age.as_secs())
}

/// Whether `inventory` already holds a ready gateway pod with an HTTP or HTTPS server that
/// routes to the target, so the gateway pods need not be listed.
fn reachable_gateway(inventory: &Inventory, target: &TargetEvidence) -> bool {
    ingress_gateways(inventory, target)
        .iter()
        .filter(|entry| {
            PLAIN_HTTP.contains(&entry.protocol.as_str()) || entry.protocol == TERMINATES_TLS
        })
        .any(|entry| {
            inventory.pods.iter().any(|pod| {
                pod_ref(pod).as_ref() == Some(&entry.gateway_pod) && readiness_rank(pod) == Some(0)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(ports: serde_json::Value) -> TargetEvidence {
        serde_json::from_value(json!({
            "workload": {
                "kind": "Deployment", "namespace": "llm", "name": "vllm", "replicas": 1,
                "podLabels": {}, "podAnnotations": {},
                "podSpec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai",
                    "ports": [{"name": "http", "containerPort": 8000}]}]},
                "vllm": {"container": "vllm", "port": 8000},
                "detectedBy": "image"
            },
            "mesh": {
                "istio": "installed", "sidecarMode": "classic", "sidecarReason": "",
                "services": [{"namespace": "llm", "name": "vllm", "ports": ports}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_service_port_is_the_one_that_reaches_vllm() {
        let named = target(json!([
            {"name": "metrics", "port": 9090, "targetPort": "9090"},
            {"name": "web", "port": 80, "targetPort": "http"}
        ]));
        assert_eq!(
            service_of(&named),
            Some(("vllm.llm.svc.cluster.local".to_string(), 80))
        );
        let numbered = target(json!([
            {"port": 9090, "targetPort": "9090"},
            {"port": 8080, "targetPort": "8000"}
        ]));
        assert_eq!(service_of(&numbered).unwrap().1, 8080);
        let unset = target(json!([{"port": 8000}]));
        assert_eq!(service_of(&unset).unwrap().1, 8000);
        assert_eq!(service_of(&target(json!([]))), None);
    }

    /// The vLLM target behind Gateway `istio-system/public` (one server of `protocol`), and an
    /// inventory holding one gateway pod, ready or not.
    fn behind_gateway(protocol: &str, ready: bool) -> (TargetEvidence, Inventory) {
        let mut target = target(json!([{"port": 8000}]));
        target.mesh.gateways = vec![
            serde_json::from_value(json!({
                "metadata": {"name": "public", "namespace": "istio-system"},
                "spec": {"selector": {"istio": "ingressgateway"}, "servers": [
                    {"port": {"number": 80, "name": "web", "protocol": protocol},
                     "hosts": ["llm.example.com"]}]}
            }))
            .unwrap(),
        ];
        target.mesh.virtual_services = vec![
            serde_json::from_value(json!({
                "metadata": {"name": "vllm-public", "namespace": "llm"},
                "spec": {"hosts": ["llm.example.com"], "gateways": ["istio-system/public"],
                    "http": [{"route": [{"destination": {"host": "vllm"}}]}]}
            }))
            .unwrap(),
        ];
        let pod = serde_json::from_value(json!({
            "metadata": {"name": "gw-1", "namespace": "istio-system",
                "labels": {"istio": "ingressgateway"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "proxyv2"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap();
        let inventory = Inventory {
            pods: vec![pod],
            ..Inventory::default()
        };
        (target, inventory)
    }

    #[test]
    fn gateway_pods_are_listed_only_without_a_ready_http_or_https_one() {
        let (target, inventory) = behind_gateway("HTTP", true);
        assert!(reachable_gateway(&inventory, &target));
        let (target, inventory) = behind_gateway("HTTP", false);
        assert!(!reachable_gateway(&inventory, &target));
        let (target, inventory) = behind_gateway("HTTPS", true);
        assert!(reachable_gateway(&inventory, &target));
        let (target, inventory) = behind_gateway("TLS", true);
        assert!(!reachable_gateway(&inventory, &target));
        let (target, _) = behind_gateway("HTTP", true);
        assert!(!reachable_gateway(&Inventory::default(), &target));
    }

    #[test]
    fn usage_errors_are_told_apart() {
        assert!(LiveError::NothingToProbe.is_usage());
        let invalid = Target::parse("vllm").unwrap_err();
        assert!(LiveError::Target(invalid).is_usage());
        assert!(
            !LiveError::NoGateway {
                workload: "deploy/vllm".to_string()
            }
            .is_usage()
        );
    }
}
