//! `probe [TARGET]`: the URL probe, with the paths opened on a live cluster when a TARGET is
//! given. `direct` is a port-forward to the vLLM container port of a ready pod (it enters the pod
//! on loopback, which the sidecar does not capture); `mesh` is a port-forward to an ingress
//! gateway pod's listener with the Host the gateway routes on; Envoy's counters are read through
//! port-forwards to 15000 of the gateway and of the vLLM pod (DESIGN.md "Where each path goes").
//! Every path and admin API can be given by URL instead.

use super::ProbeError;
use super::args::ProbeArgs;
use super::envoy_counters::{AdminEndpoint, EnvoyCounters};
use super::progress::Progress;
use super::run::{ProbeReport, ctrl_c_stop, run_in};
use super::sse::Stop;
use crate::cluster::args::ClusterArgs;
use crate::cluster::client::ClusterClient;
use crate::cluster::error::ClusterError;
use crate::cluster::inventory::{ListScope, list_inventory};
use crate::cluster::paths::{EnvoySide, admin_pods, direct_pods, ingress_gateways};
use crate::cluster::portforward::{PodPort, PortForward};
use crate::cluster::selected::add_gateway_pods;
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::gather::{self, GatherError, Scope, Target};
use crate::inventory::Inventory;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;

/// Envoy's admin port inside every Istio proxy pod (loopback only: reached by port-forward).
pub const ENVOY_ADMIN_PORT: u16 = 15000;
/// Gateway server protocols the probe can speak to (no TLS yet).
const PLAIN_HTTP: [&str; 3] = ["HTTP", "HTTP2", "GRPC"];
/// At most this many vLLM pods' sidecars are read for counters.
const MAX_SIDECAR_ADMINS: usize = 4;
/// `gather` needs an expected generation; the probe judges nothing with it.
const EXPECTED_GENERATION: Duration = Duration::from_secs(300);

/// What `probe` was asked: the TARGET and its namespace, the cluster flags, admin URLs, and the
/// probe's own flags.
#[derive(Debug, Clone, Copy)]
pub struct LiveRequest<'a> {
    pub target: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub cluster: &'a ClusterArgs,
    pub admin_urls: &'a [String],
    pub probe: &'a ProbeArgs,
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
        "no Istio ingress gateway routes to {workload} (no Gateway + VirtualService for its Service): give --mesh-url, the URL of a path through the mesh"
    )]
    NoGateway { workload: String },
    #[error(
        "{gateway}, the only gateway that routes to {workload}, serves {protocol}, and the probe speaks plain HTTP only: give --mesh-url"
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

/// One port-forward the probe opened, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Forward {
    /// `pod inference/vllm-7c9d5b8f6d-x2x7k`
    pub pod: String,
    pub port: u16,
    /// The local end: `http://127.0.0.1:PORT`.
    pub local_url: String,
    /// How long the pod has run (from `status.startTime`), for reading a cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_age_s: Option<u64>,
}

/// How the paths were opened on the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPaths {
    pub context: String,
    /// `deploy/vllm` in `namespace`.
    pub workload: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<Forward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<Forward>,
    /// The Host header the gateway routes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_host: Option<String>,
    /// The Gateway object the mesh path enters through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin: Vec<Forward>,
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
    gaps: Vec<String>,
}

/// Runs `probe`: opens what the URLs do not give on the cluster, probes, closes the
/// port-forwards. Ctrl-C stops it and returns what was measured (`interrupted` set).
pub async fn probe(request: LiveRequest<'_>, progress: Progress) -> Result<ProbeReport, LiveError> {
    let (stop, ctrl_c) = ctrl_c_stop();
    let outcome = probe_until(request, progress, &stop).await;
    ctrl_c.abort();
    outcome
}

/// `probe` with the caller's stop signal.
pub async fn probe_until(
    request: LiveRequest<'_>,
    progress: Progress,
    stop: &Stop,
) -> Result<ProbeReport, LiveError> {
    let args = request.probe;
    let both_urls = args.direct_url.is_some() && args.mesh_url.is_some();
    if request.target.is_none() && args.direct_url.is_none() && args.mesh_url.is_none() {
        return Err(LiveError::NothingToProbe);
    }
    let mut args = args.clone();
    let mut gaps = Vec::new();
    let mut admin: Vec<AdminEndpoint> = request
        .admin_urls
        .iter()
        .map(|url| AdminEndpoint::from_url(url))
        .collect();
    let mut service = None;
    let mut forwards = Vec::new();
    let mut info = None;
    if let Some(text) = request.target {
        let target = Target::parse(text).map_err(LiveError::Target)?;
        let opened = until_stopped(stop, open(request, &target)).await?;
        if args.direct_url.is_none() {
            args.direct_url = opened.direct_url;
        }
        if args.mesh_url.is_none() {
            args.mesh_url = opened.mesh_url;
        }
        if args.mesh_host.is_none() {
            args.mesh_host = opened.mesh_host;
        }
        if request.admin_urls.is_empty() {
            admin = opened.admin;
        }
        service = opened.service;
        forwards = opened.forwards;
        gaps.extend(opened.gaps);
        info = Some(opened.info);
    } else if !both_urls {
        gaps.push(
            "only one path was given: give TARGET on a cluster, or both --direct-url and --mesh-url, to compare"
                .to_string(),
        );
    }
    let service = service.as_ref().map(|(host, port)| (host.as_str(), *port));
    let counters = until_stopped(stop, async {
        Ok(EnvoyCounters::connect(&admin, service, &mut gaps).await)
    })
    .await;
    let report = match counters {
        Ok(counters) => run_in(&args, progress, stop, &counters)
            .await
            .map_err(LiveError::from),
        Err(error) => Err(error),
    };
    close_all(forwards).await;
    let mut report = report?;
    report.gaps.splice(0..0, gaps);
    report.cluster = info;
    Ok(report)
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

/// Finds TARGET on the cluster and opens the paths the URLs do not give.
async fn open(request: LiveRequest<'_>, target: &Target) -> Result<Opened, LiveError> {
    let args = request.probe;
    let client = ClusterClient::connect(request.cluster).await?;
    let scope = ListScope::from_flags(request.namespace, false, &client);
    let namespace = scope.namespace().unwrap_or_default().to_string();
    tracing::info!(context = client.context(), %namespace, %target, "finding the probe's paths");
    let mut inventory = list_inventory(&client, &scope).await?;
    let evidence = gather::gather(
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
        gaps.push(format!(
            "{target} selects {} workloads: probing the first, {}",
            evidence.targets.len(),
            chosen.workload.target_name()
        ));
    }
    let workload = &chosen.workload;
    let mut opened = Opened {
        forwards: Vec::new(),
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

    let pods = direct_pods(&inventory, workload);
    if args.direct_url.is_none() {
        let Some((pod, port)) = pods.first() else {
            return Err(LiveError::NoReadyPod {
                workload: workload.target_name(),
                namespace: workload.namespace.clone(),
            });
        };
        let forward = forward(&client, pod, *port).await?;
        let mut shown = shown(&forward, pod);
        shown.pod_age_s = pod_age(&inventory, pod);
        opened.direct_url = Some(forward.url());
        opened.info.direct = Some(shown);
        opened.forwards.push(forward);
    }
    let mut gateway_pod = None;
    if args.mesh_url.is_none() {
        let read = add_gateway_pods(&client, &mut inventory, &chosen.mesh.gateways).await?;
        opened.gaps.extend(
            read.iter()
                .map(|gap| format!("{}: {}", gap.what, gap.reason)),
        );
        let entries = ingress_gateways(&inventory, chosen);
        let Some(entry) = entries
            .iter()
            .find(|entry| PLAIN_HTTP.contains(&entry.protocol.as_str()))
        else {
            return Err(match entries.first() {
                Some(entry) => LiveError::GatewayNeedsTls {
                    workload: workload.target_name(),
                    gateway: entry.gateway.to_string(),
                    protocol: entry.protocol.clone(),
                },
                None => LiveError::NoGateway {
                    workload: workload.target_name(),
                },
            });
        };
        let forward = forward(&client, &entry.gateway_pod, entry.listener_port).await?;
        opened.mesh_url = Some(forward.url());
        opened.mesh_host = Some(entry.host_header.clone());
        opened.info.mesh = Some(shown(&forward, &entry.gateway_pod));
        opened.info.mesh_host = Some(entry.host_header.clone());
        opened.info.gateway = Some(entry.gateway.to_string());
        opened.forwards.push(forward);
        gateway_pod = Some(entry.gateway_pod.clone());
    }
    if request.admin_urls.is_empty() {
        // The gateway the mesh path enters (client side), then the vLLM pods' sidecars (server
        // side): the gateway may send the request to any replica.
        if let Some(pod) = &gateway_pod {
            admin_forward(&client, pod, "gateway", &mut opened).await;
        }
        let servers: Vec<ObjectRef> = admin_pods(&inventory, chosen)
            .into_iter()
            .filter(|(_, side)| *side == EnvoySide::Server)
            .map(|(pod, _)| pod)
            .collect();
        if servers.len() > MAX_SIDECAR_ADMINS {
            opened.gaps.push(format!(
                "Envoy counters read on {MAX_SIDECAR_ADMINS} of {} vLLM pods: the mesh path may reach another replica",
                servers.len()
            ));
        }
        for pod in servers.iter().take(MAX_SIDECAR_ADMINS) {
            admin_forward(&client, pod, "vLLM sidecar", &mut opened).await;
        }
    }
    Ok(opened)
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
        Err(error) => opened
            .gaps
            .push(format!("Envoy counters of the {role}: {error}")),
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

fn start_time(pod: &Pod) -> Option<std::time::SystemTime> {
    let status = pod.status.as_ref()?;
    let time = status
        .start_time
        .as_ref()
        .or(pod.metadata.creation_timestamp.as_ref())?;
    Some(std::time::SystemTime::from(time.0))
}

/// Seconds since the pod started, when the inventory knows it.
fn pod_age(inventory: &Inventory, pod: &ObjectRef) -> Option<u64> {
    let found = inventory.pods.iter().find(|candidate| {
        candidate.metadata.name.as_deref() == Some(pod.name.as_str())
            && candidate.metadata.namespace.as_deref() == pod.namespace.as_deref()
    })?;
    let started = start_time(found)?;
    std::time::SystemTime::now()
        .duration_since(started)
        .ok()
        .map(|age| age.as_secs())
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
