//! Envoy readings into targets: an `Endpoint` target for Envoy-only runs (the service chosen by
//! `discover`), or the targets of a cluster or manifest run whose Service FQDN and port the
//! Envoy's clusters name.

use super::discover::ServiceChoice;
use super::reading::EnvoyReading;
use crate::evidence::envoy::EnvoyEvidence;
use crate::evidence::envoy::role::EnvoyRole;
use crate::evidence::{
    Gap, IstioPresence, MeshContext, SidecarMode, TargetEvidence, VllmServer, Workload,
    WorkloadKind,
};
use std::collections::BTreeMap;

const CLUSTER_SUFFIX: &str = ".svc.cluster.local";

/// The evidence of one Envoy for a service: the server side is judged at the vLLM (target)
/// port, the client side at the Service port.
pub fn evidence_for(
    reading: &EnvoyReading,
    host: &str,
    port: u16,
    server_port: u16,
) -> EnvoyEvidence {
    if server_port != port && reading.role(host, server_port) == EnvoyRole::Server {
        return reading.evidence(host, server_port);
    }
    reading.evidence(host, port)
}

/// The target of an Envoy-only run: the chosen service, its Envoys' evidence (every reading,
/// so an unrelated or unreadable one shows why), and no mesh objects (`IstioPresence::Unknown`).
pub fn endpoint_target(choice: &ServiceChoice, readings: &[EnvoyReading]) -> TargetEvidence {
    let envoy: Vec<EnvoyEvidence> = readings
        .iter()
        .map(|reading| evidence_for(reading, &choice.host, choice.port, choice.server_port))
        .collect();
    let servers = envoy
        .iter()
        .filter(|evidence| evidence.role.role == EnvoyRole::Server)
        .count();
    let (name, namespace) = split_host(&choice.host);
    let namespace = namespace
        .or_else(|| {
            readings
                .iter()
                .filter(|reading| {
                    reading.role(&choice.host, choice.server_port) == EnvoyRole::Server
                })
                .find_map(|reading| reading.node().map(|node| node.namespace))
        })
        .unwrap_or_else(|| "default".to_string());
    let (sidecar_mode, sidecar_reason) = if servers > 0 {
        (
            SidecarMode::Classic,
            format!(
                "a server-side Envoy with inbound|{}|| was read",
                choice.server_port
            ),
        )
    } else {
        (
            SidecarMode::None,
            "unknown: no server-side Envoy (inbound cluster) was read".to_string(),
        )
    };
    TargetEvidence {
        workload: Workload {
            kind: WorkloadKind::Endpoint,
            namespace,
            name,
            replicas: u32::try_from(servers.max(1)).unwrap_or(u32::MAX),
            pod_labels: BTreeMap::new(),
            pod_annotations: BTreeMap::new(),
            pod_spec: Default::default(),
            vllm: VllmServer {
                container: String::new(),
                image: None,
                port: choice.server_port,
                max_num_seqs: None,
                max_model_len: None,
                served_model_name: None,
                model: None,
            },
            gpu: None,
            detected_by: format!(
                "Envoy clusters for {}:{}: {}",
                choice.host, choice.port, choice.reason
            ),
        },
        mesh: MeshContext {
            namespace_services: None,
            istio: IstioPresence::Unknown,
            sidecar_mode,
            sidecar_reason,
            namespace_labels: BTreeMap::new(),
            services: Vec::new(),
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
            gateway_classes: Vec::new(),
            inference_pools: Vec::new(),
            endpoint_pickers: Vec::new(),
            ambient: None,
        },
        envoy,
        gaps: Vec::new(),
        live_pods: Vec::new(),
        nodes: Vec::new(),
        probes: Vec::new(),
    }
}

/// `vllm.inference.svc.cluster.local` -> (`vllm`, `inference`); a name outside the cluster
/// domain keeps its first label and no namespace.
fn split_host(host: &str) -> (String, Option<String>) {
    if let Some(rest) = host.strip_suffix(CLUSTER_SUFFIX)
        && let Some((name, namespace)) = rest.split_once('.')
        && !namespace.contains('.')
    {
        return (name.to_string(), Some(namespace.to_string()));
    }
    // Envoy Gateway's route-rule cluster names the route: `httproute/NS/NAME/rule/N`.
    if let Some((_, namespace, route)) = crate::evidence::envoy::names::envoy_gateway_route(host) {
        return (route.to_string(), Some(namespace.to_string()));
    }
    let name = host.split('.').next().unwrap_or(host);
    (name.to_string(), None)
}

/// The `(FQDN, Service port)` pairs of a target: every port of every Service in front of it,
/// those that reach the vLLM port first.
pub fn service_ports(target: &TargetEvidence) -> Vec<(String, u16)> {
    let vllm_port = target.workload.vllm.port.to_string();
    let mut reaching = Vec::new();
    let mut others = Vec::new();
    for service in &target.mesh.services {
        for port in &service.ports {
            let reaches = match &port.target_port {
                None => port.port == target.workload.vllm.port,
                Some(target_port) => {
                    *target_port == vllm_port || target_port.parse::<u16>().is_err() // a named port: may be vLLM's
                }
            };
            let entry = (service.fqdn(), port.port);
            if reaches {
                reaching.push(entry);
            } else {
                others.push(entry);
            }
        }
    }
    reaching.extend(others);
    reaching
}

/// The evidence `reading` gives about `target`, if its clusters name one of the target's
/// Services (client side), or it is the sidecar of one of the target's pods (server side).
pub fn evidence_for_target(
    reading: &EnvoyReading,
    target: &TargetEvidence,
    pod_names: &[String],
) -> Option<EnvoyEvidence> {
    let vllm_port = target.workload.vllm.port;
    let node = reading.node();
    let node_fits = node.as_ref().is_none_or(|node| {
        node.namespace == target.workload.namespace
            && (pod_names.is_empty() || pod_names.contains(&node.pod))
    });
    for (host, port) in service_ports(target) {
        match reading.role(&host, port) {
            EnvoyRole::Client | EnvoyRole::Waypoint => {
                return Some(evidence_for(reading, &host, port, vllm_port));
            }
            EnvoyRole::Server if node_fits => {
                return Some(evidence_for(reading, &host, port, vllm_port));
            }
            _ => {}
        }
        if vllm_port != port && node_fits && reading.role(&host, vllm_port) == EnvoyRole::Server {
            return Some(reading.evidence(&host, vllm_port));
        }
    }
    None
}

/// Attaches each reading to the targets it speaks about; a reading that fits none, or could
/// not be read, becomes a gap of the run.
pub fn attach(
    targets: &mut [TargetEvidence],
    readings: &[EnvoyReading],
    pod_names: impl Fn(&TargetEvidence) -> Vec<String>,
    gaps: &mut Vec<Gap>,
) {
    let pods: Vec<Vec<String>> = targets.iter().map(&pod_names).collect();
    for reading in readings {
        if !reading.is_readable() {
            gaps.extend(reading.gaps.iter().cloned());
            continue;
        }
        let mut attached = false;
        for (target, pods) in targets.iter_mut().zip(&pods) {
            if let Some(evidence) = evidence_for_target(reading, target, pods) {
                target.envoy.push(evidence);
                attached = true;
            }
        }
        if !attached {
            let services: Vec<String> = targets
                .iter()
                .flat_map(service_ports)
                .map(|(host, port)| format!("{host}:{port}"))
                .collect();
            gaps.push(Gap::new(
                format!("Envoy {}", reading.source),
                format!(
                    "none of its clusters is for a target's Service ({}): not used",
                    if services.is_empty() {
                        "no Service selects the targets".to_string()
                    } else {
                        services.join(", ")
                    }
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{ServiceInfo, ServicePortInfo};
    use crate::sources::envoy::config_dump;

    fn reading(dump: &str, node: Option<&str>) -> EnvoyReading {
        let mut sections = vec![format!(
            r#"{{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[{dump}]}}"#
        )];
        if let Some(id) = node {
            sections.push(format!(
                r#"{{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump","bootstrap":{{"node":{{"id":"{id}"}}}}}}"#
            ));
        }
        EnvoyReading {
            source: "admin http://127.0.0.1:1".to_string(),
            config: Some(
                config_dump::parse(&format!(r#"{{"configs":[{}]}}"#, sections.join(","))).unwrap(),
            ),
            ..EnvoyReading::default()
        }
    }

    const GATEWAY: &str =
        r#"{"cluster":{"name":"outbound|8000||vllm.inference.svc.cluster.local"}}"#;
    const SIDECAR: &str = r#"{"cluster":{"name":"inbound|8000||"}}"#;

    fn choice() -> ServiceChoice {
        ServiceChoice {
            host: "vllm.inference.svc.cluster.local".to_string(),
            port: 8000,
            server_port: 8000,
            reason: "test".to_string(),
        }
    }

    #[test]
    fn endpoint_targets_carry_both_sides_and_no_mesh_objects() {
        let unreadable = EnvoyReading::failed(
            "admin http://127.0.0.1:9",
            None,
            Gap::new("Envoy admin of admin http://127.0.0.1:9", "refused"),
        );
        let readings = vec![reading(GATEWAY, None), reading(SIDECAR, None), unreadable];
        let target = endpoint_target(&choice(), &readings);
        assert_eq!(target.workload.kind, WorkloadKind::Endpoint);
        assert!(!target.workload.spec_known());
        assert_eq!(target.workload.target_name(), "endpoint/vllm");
        assert_eq!(target.workload.namespace, "inference");
        assert_eq!(target.workload.vllm.port, 8000);
        assert_eq!(target.mesh.istio, IstioPresence::Unknown);
        assert_eq!(target.mesh.sidecar_mode, SidecarMode::Classic);
        let roles: Vec<EnvoyRole> = target.envoy.iter().map(|e| e.role.role).collect();
        assert_eq!(
            roles,
            vec![EnvoyRole::Client, EnvoyRole::Server, EnvoyRole::Unrelated]
        );
        assert_eq!(target.envoy[2].gaps[0].reason, "refused");
    }

    fn cluster_target(namespace: &str) -> TargetEvidence {
        let mut target = endpoint_target(&choice(), &[]);
        target.workload.kind = WorkloadKind::Deployment;
        target.workload.namespace = namespace.to_string();
        target.mesh.services = vec![ServiceInfo {
            namespace: namespace.to_string(),
            name: "vllm".to_string(),
            ports: vec![ServicePortInfo {
                name: Some("http".to_string()),
                port: 80,
                target_port: Some("8000".to_string()),
            }],
        }];
        target
    }

    #[test]
    fn readings_attach_to_the_target_whose_service_they_name() {
        let gateway = reading(
            r#"{"cluster":{"name":"outbound|80||vllm.inference.svc.cluster.local"}}"#,
            None,
        );
        let sidecar = reading(
            SIDECAR,
            Some("sidecar~10.0.0.7~vllm-0.inference~inference.svc.cluster.local"),
        );
        let foreign_sidecar = reading(
            SIDECAR,
            Some("sidecar~10.0.0.8~llm-0.other~other.svc.cluster.local"),
        );
        let mut targets = vec![cluster_target("inference"), cluster_target("other")];
        targets[1].mesh.services[0].namespace = "other".to_string();
        let mut gaps = Vec::new();
        attach(
            &mut targets,
            &[gateway, sidecar, foreign_sidecar],
            |_| Vec::new(),
            &mut gaps,
        );
        assert!(gaps.is_empty(), "{gaps:?}");
        let roles = |target: &TargetEvidence| -> Vec<(EnvoyRole, String)> {
            target
                .envoy
                .iter()
                .map(|e| (e.role.role, e.role.clusters.join(",")))
                .collect()
        };
        assert_eq!(
            roles(&targets[0]),
            vec![
                (
                    EnvoyRole::Client,
                    "outbound|80||vllm.inference.svc.cluster.local".to_string()
                ),
                (EnvoyRole::Server, "inbound|8000||".to_string()),
            ]
        );
        assert_eq!(
            roles(&targets[1]),
            vec![(EnvoyRole::Server, "inbound|8000||".to_string())]
        );
    }

    #[test]
    fn readings_that_fit_no_target_are_gaps() {
        let mut targets = vec![cluster_target("inference")];
        let mut gaps = Vec::new();
        let stranger = reading(
            r#"{"cluster":{"name":"outbound|9000||x.y.svc.cluster.local"}}"#,
            None,
        );
        let failed = EnvoyReading::failed("admin http://127.0.0.1:9", None, Gap::new("a", "b"));
        attach(&mut targets, &[stranger, failed], |_| Vec::new(), &mut gaps);
        assert!(targets[0].envoy.is_empty());
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(
            gaps[0]
                .reason
                .contains("vllm.inference.svc.cluster.local:80"),
            "{gaps:?}"
        );
    }

    #[test]
    fn hosts_split_into_name_and_namespace() {
        assert_eq!(
            split_host("vllm.inference.svc.cluster.local"),
            ("vllm".to_string(), Some("inference".to_string()))
        );
        assert_eq!(split_host("llm.example.com"), ("llm".to_string(), None));
    }
}
