//! Envoy admin reads on a live cluster: a port-forward to the admin port (15000, loopback inside
//! the pod) of a few pods per side of each target — the vLLM pods' sidecars (server side), the
//! ingress gateway pods and `--client` pods (client side) — a bounded number at once, each call
//! bounded by a timeout. A pod that cannot be read becomes a gap; nothing here fails the run.

use super::client::ClusterClient;
use super::paths::{self, EnvoySide};
use super::portforward::{PodPort, PortForward};
use crate::evidence::envoy::role::EnvoyRole;
use crate::evidence::inventory::Inventory;
use crate::evidence::resolve::workloads::Owners;
use crate::evidence::{Gap, ObjectRef, TargetEvidence};
use crate::sources::envoy::admin::AdminClient;
use crate::sources::envoy::attach::{evidence_for, service_ports};
use crate::sources::envoy::reading::EnvoyReading;
use crate::sources::stop::Stop;
use futures_util::StreamExt;
use std::time::Duration;

/// Istio's Envoy admin port.
pub const DEFAULT_ADMIN_PORT: u16 = 15000;
/// Pods read per side per target: the sidecar of the pod the probe would use (ready first) and
/// one pod of each gateway, so a run costs one port-forward per workload and per gateway.
pub const PODS_PER_SIDE: usize = 1;
/// Port-forwards open at once.
pub const CONCURRENCY: usize = 16;
/// How often a failed read looks for the kubelet's message about the pod's port.
const POD_ERROR_POLL: Duration = Duration::from_millis(50);
/// How long to wait for the kubelet to say why a forwarded connection failed.
const POD_ERROR_WAIT: Duration = Duration::from_secs(3);

/// Which pods to read for each target, and every distinct pod once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// Per target (same order): the pods chosen for it and their side.
    pub per_target: Vec<Vec<(ObjectRef, EnvoySide)>>,
    /// Every pod to read, once, in first-use order.
    pub pods: Vec<(ObjectRef, EnvoySide)>,
}

/// Up to [`PODS_PER_SIDE`] sidecar pods and gateway pods per target (ready first), plus the
/// `--client` pods, which apply to every target.
pub fn plan(
    inventory: &Inventory,
    targets: &[TargetEvidence],
    client_pods: &[ObjectRef],
) -> ReadPlan {
    let mut out = ReadPlan::default();
    let owners = Owners::new(inventory);
    for target in targets {
        let candidates = paths::admin_pods(inventory, &owners, target);
        let mut chosen: Vec<(ObjectRef, EnvoySide)> = Vec::new();
        for side in [EnvoySide::Server, EnvoySide::Client] {
            chosen.extend(
                candidates
                    .iter()
                    .filter(|(_, candidate_side)| *candidate_side == side)
                    .take(PODS_PER_SIDE)
                    .cloned(),
            );
        }
        for pod in client_pods {
            if !chosen.iter().any(|(have, _)| have == pod) {
                chosen.push((pod.clone(), EnvoySide::Client));
            }
        }
        for entry in &chosen {
            if !out.pods.iter().any(|(have, _)| *have == entry.0) {
                out.pods.push(entry.clone());
            }
        }
        out.per_target.push(chosen);
    }
    out
}

/// Reads each pod's Envoy admin API through its own port-forward, [`CONCURRENCY`] at once, in
/// the order given; a pod not read by `deadline` (when there is one) or before `stop` fires
/// becomes a gap.
pub async fn read_pods(
    client: &ClusterClient,
    pods: &[(ObjectRef, EnvoySide)],
    admin_port: u16,
    timeout: Duration,
    deadline: Option<Duration>,
    stop: &Stop,
    progress: &dyn Fn(usize),
) -> Vec<EnvoyReading> {
    let until = deadline.map(|deadline| tokio::time::Instant::now() + deadline);
    let read = |(pod, side): (ObjectRef, EnvoySide)| {
        let mut stop = stop.clone();
        async move {
            let (_, source, what) = names(&pod, admin_port);
            let past_deadline = async {
                match until {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            };
            let reason = tokio::select! {
                reading = read_pod(client, pod.clone(), side, admin_port, timeout) => return reading,
                () = past_deadline => format!(
                    "not read within --envoy-timeout {}",
                    crate::units::duration::display(deadline.unwrap_or_default())
                ),
                () = stop.stopped() => "not read: interrupted (Ctrl-C)".to_string(),
            };
            EnvoyReading::failed(&source, Some(pod), Gap::new(what, reason)).with_side(side)
        }
    };
    let mut done = 0;
    futures_util::stream::iter(pods.iter().cloned())
        .map(read)
        .buffered(CONCURRENCY)
        .inspect(|_| {
            done += 1;
            progress(done);
        })
        .collect()
        .await
}

/// How a pod's reading is named: `pod ns/name`, its source `pod ns/name (port-forward to
/// 15000)`, and the `what` of its gaps `Envoy admin of pod ns/name`.
fn names(pod: &ObjectRef, admin_port: u16) -> (String, String, String) {
    let where_ = format!(
        "pod {}/{}",
        pod.namespace.as_deref().unwrap_or_default(),
        pod.name
    );
    let source = format!("{where_} (port-forward to {admin_port})");
    let what = format!("Envoy admin of {where_}");
    (where_, source, what)
}

async fn read_pod(
    client: &ClusterClient,
    pod: ObjectRef,
    side: EnvoySide,
    admin_port: u16,
    timeout: Duration,
) -> EnvoyReading {
    let namespace = pod.namespace.clone().unwrap_or_default();
    let (where_, source, what) = names(&pod, admin_port);
    let target = PodPort {
        namespace,
        pod: pod.name.clone(),
        port: admin_port,
    };
    let forward = match PortForward::start_reusing(client, target.clone()).await {
        Ok(forward) => forward,
        Err(error) => {
            let gap = Gap::new(
                what,
                format!("port-forward refused: {}", error.gap_reason()),
            );
            return EnvoyReading::failed(&source, Some(pod), gap);
        }
    };
    let admin = match AdminClient::new(&forward.url()) {
        Ok(admin) => admin.with_timeout(timeout),
        Err(error) => {
            return EnvoyReading::failed(&source, Some(pod), Gap::new(what, error.to_string()));
        }
    };
    let mut reading = EnvoyReading::read(&admin, &source)
        .await
        .with_pod(pod, side);
    if !reading.is_readable() {
        // Through a port-forward, a refused admin port shows as a dropped connection; the
        // kubelet says what happened on the same forward.
        if let Some(message) = pod_error(&forward).await {
            reading.gaps = vec![Gap::new(
                what.clone(),
                format!("port-forward to port {admin_port} failed in the pod: {message}"),
            )];
        }
    }
    let local = forward.url();
    for gap in &mut reading.gaps {
        gap.reason = gap
            .reason
            .replace(&local, &format!("{where_}:{admin_port}"));
        gap.what = gap
            .what
            .replace(&format!("Envoy {source}"), &what)
            .replace(&source, &where_);
    }
    forward.close().await;
    reading
}

/// The kubelet's message about the forwarded port, if it gives one in time.
async fn pod_error(forward: &PortForward) -> Option<String> {
    let deadline = tokio::time::Instant::now() + POD_ERROR_WAIT;
    loop {
        if let Some(message) = forward.pod_error() {
            return Some(message);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POD_ERROR_POLL).await;
    }
}

/// Adds each target's readings to its evidence: server-side pods judged at the vLLM port,
/// client-side pods at the Service port their outbound cluster names. A `--client` pod that
/// calls none of the targets becomes a run gap; an unreadable pod a gap of its target.
pub fn attach_readings(
    targets: &mut [TargetEvidence],
    plan: &ReadPlan,
    readings: &[EnvoyReading],
    client_pods: &[ObjectRef],
    run_gaps: &mut Vec<Gap>,
) {
    let reading_of = |pod: &ObjectRef| {
        plan.pods
            .iter()
            .position(|(have, _)| have == pod)
            .and_then(|index| readings.get(index))
    };
    let mut client_used = vec![false; client_pods.len()];
    for (target, chosen) in targets.iter_mut().zip(&plan.per_target) {
        let services = service_ports(target);
        let vllm_port = target.workload.vllm.port;
        for (pod, side) in chosen {
            let Some(reading) = reading_of(pod) else {
                continue;
            };
            let explicit = client_pods.iter().position(|client| client == pod);
            if !reading.is_readable() {
                match explicit {
                    // A --client pod serves every target: its failure is said once.
                    Some(index) => {
                        if !client_used[index] {
                            run_gaps.extend(reading.gaps.iter().cloned());
                        }
                        client_used[index] = true;
                    }
                    None => target.gaps.extend(reading.gaps.iter().cloned()),
                }
                continue;
            }
            let evidence = match side {
                EnvoySide::Server => {
                    let (host, port) = services
                        .first()
                        .cloned()
                        .unwrap_or((String::new(), vllm_port));
                    evidence_for(reading, &host, port, vllm_port)
                }
                EnvoySide::Client => {
                    let related = services.iter().find(|(host, port)| {
                        matches!(
                            reading.evidence(host, *port).role.role,
                            EnvoyRole::Client | EnvoyRole::Waypoint
                        )
                    });
                    match (related, explicit) {
                        (Some((host, port)), _) => reading.evidence(host, *port),
                        // A --client pod that does not call this target: not its evidence.
                        (None, Some(_)) => continue,
                        // A gateway bound to this target without a cluster for it says so.
                        (None, None) => match services.first() {
                            Some((host, port)) => reading.evidence(host, *port),
                            None => continue,
                        },
                    }
                }
            };
            if let Some(index) = explicit {
                client_used[index] = true;
            }
            target.envoy.push(evidence);
        }
    }
    for (pod, used) in client_pods.iter().zip(client_used) {
        if !used {
            run_gaps.push(Gap::new(
                format!("Envoy of --client {pod}"),
                "none of its outbound clusters is for a target's Service: not used",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::listed_pod::ListedPod;
    use crate::evidence::{IstioPresence, MeshContext, ServiceInfo, ServicePortInfo, SidecarMode};
    use crate::sources::envoy::config_dump;
    use std::collections::BTreeMap;

    fn reading(clusters: &[&str]) -> EnvoyReading {
        let clusters: Vec<String> = clusters
            .iter()
            .map(|name| format!(r#"{{"cluster":{{"name":"{name}"}}}}"#))
            .collect();
        let text = format!(
            r#"{{"configs":[{{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[{}]}}]}}"#,
            clusters.join(",")
        );
        EnvoyReading {
            source: "pod".to_string(),
            config: Some(config_dump::parse(&text).unwrap()),
            ..EnvoyReading::default()
        }
    }

    fn target() -> TargetEvidence {
        TargetEvidence {
            workload: serde_json::from_value(serde_json::json!({
                "kind": "Deployment", "namespace": "inference", "name": "vllm", "replicas": 1,
                "podSpec": {"containers": []}, "vllm": {"container": "vllm", "port": 8000},
                "detectedBy": "image",
            }))
            .unwrap(),
            mesh: MeshContext {
                namespace_services: None,
                istio: IstioPresence::Installed,
                sidecar_mode: SidecarMode::Classic,
                sidecar_reason: String::new(),
                namespace_labels: BTreeMap::new(),
                services: vec![ServiceInfo {
                    namespace: "inference".to_string(),
                    name: "vllm".to_string(),
                    ports: vec![ServicePortInfo {
                        name: None,
                        port: 8000,
                        target_port: None,
                    }],
                }],
                virtual_services: Vec::new(),
                destination_rules: Vec::new(),
                envoy_filters: Vec::new(),
                peer_authentications: Vec::new(),
                authorization_policies: Vec::new(),
                request_authentications: Vec::new(),
                autoscaler: None,
                sidecars: Vec::new(),
                gateways: Vec::new(),
                http_routes: Vec::new(),
                kube_gateways: Vec::new(),
                inference_pools: Vec::new(),
                endpoint_pickers: Vec::new(),
                ambient: None,
            },
            envoy: Vec::new(),
            gaps: Vec::new(),
            live_pods: Vec::new(),
            nodes: Vec::new(),
            probes: Vec::new(),
        }
    }

    fn pod(name: &str) -> ObjectRef {
        ObjectRef::new("Pod", Some("inference"), name)
    }

    const VLLM: &str = "outbound|8000||vllm.inference.svc.cluster.local";

    #[test]
    fn readings_attach_by_side_and_failures_become_gaps() {
        let plan = ReadPlan {
            per_target: vec![vec![
                (pod("vllm-0"), EnvoySide::Server),
                (pod("gw"), EnvoySide::Client),
                (pod("caller"), EnvoySide::Client),
                (pod("bystander"), EnvoySide::Client),
                (pod("down"), EnvoySide::Server),
            ]],
            pods: vec![
                (pod("vllm-0"), EnvoySide::Server),
                (pod("gw"), EnvoySide::Client),
                (pod("caller"), EnvoySide::Client),
                (pod("bystander"), EnvoySide::Client),
                (pod("down"), EnvoySide::Server),
            ],
        };
        let mut caller = reading(&["inbound|8000||", VLLM]);
        caller.side = Some(EnvoySide::Client);
        let readings = vec![
            reading(&["inbound|8000||", VLLM]),
            reading(&[VLLM]),
            caller,
            reading(&["outbound|80||web.inference.svc.cluster.local"]),
            EnvoyReading::failed(
                "pod inference/down",
                Some(pod("down")),
                Gap::new("Envoy admin of pod inference/down", "port-forward refused"),
            ),
        ];
        let mut targets = vec![target()];
        let mut run_gaps = Vec::new();
        attach_readings(
            &mut targets,
            &plan,
            &readings,
            &[pod("caller"), pod("bystander")],
            &mut run_gaps,
        );
        let roles: Vec<EnvoyRole> = targets[0].envoy.iter().map(|e| e.role.role).collect();
        // The caller's own inbound|8000|| does not make it the server: it was read as a client.
        assert_eq!(
            roles,
            vec![EnvoyRole::Server, EnvoyRole::Client, EnvoyRole::Client]
        );
        assert_eq!(targets[0].gaps.len(), 1);
        assert_eq!(targets[0].gaps[0].reason, "port-forward refused");
        assert_eq!(run_gaps.len(), 1, "{run_gaps:?}");
        assert!(run_gaps[0].what.contains("bystander"), "{run_gaps:?}");
    }

    fn live_pod(
        namespace: &str,
        name: &str,
        labels: serde_json::Value,
    ) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace, "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "vllm-abc", "uid": "u"}]},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}, {"name": "istio-proxy", "image": "proxyv2"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap()
    }

    #[test]
    fn the_plan_caps_each_side_and_reads_shared_pods_once() {
        let mut inventory = Inventory::default();
        inventory.deployments.push(
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "vllm", "namespace": "inference"}}),
            )
            .unwrap(),
        );
        for name in ["vllm-a", "vllm-b", "vllm-c"] {
            inventory.pods.push(ListedPod::from(live_pod(
                "inference",
                name,
                serde_json::json!({"app": "vllm", "pod-template-hash": "abc"}),
            )));
        }
        for name in ["gw-a", "gw-b", "gw-c"] {
            inventory.pods.push(ListedPod::from(live_pod(
                "istio-system",
                name,
                serde_json::json!({"istio": "ingressgateway"}),
            )));
        }
        let mut with_gateway = target();
        with_gateway.mesh.gateways = vec![
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "public", "namespace": "istio-system"},
                "spec": {"selector": {"istio": "ingressgateway"},
                    "servers": [{"port": {"number": 80}, "hosts": ["*"]}]},
            }))
            .unwrap(),
        ];
        with_gateway.mesh.virtual_services = vec![
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "public", "namespace": "inference"},
                "spec": {"hosts": ["llm.example.com"], "gateways": ["istio-system/public"]},
            }))
            .unwrap(),
        ];
        let plan = plan(
            &inventory,
            &[with_gateway.clone(), with_gateway],
            &[pod("caller")],
        );
        assert_eq!(plan.per_target.len(), 2);
        let names: Vec<(&str, EnvoySide)> = plan.per_target[0]
            .iter()
            .map(|(pod, side)| (pod.name.as_str(), *side))
            .collect();
        assert_eq!(
            names,
            vec![
                ("vllm-a", EnvoySide::Server),
                ("gw-a", EnvoySide::Client),
                ("caller", EnvoySide::Client),
            ]
        );
        assert_eq!(plan.per_target[1], plan.per_target[0]);
        assert_eq!(plan.pods, plan.per_target[0], "each pod is read once");

        let no_pods = super::plan(&Inventory::default(), &[target()], &[pod("caller")]);
        assert_eq!(
            no_pods.per_target[0],
            vec![(pod("caller"), EnvoySide::Client)]
        );
    }
}
