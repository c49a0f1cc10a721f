//! Envoy-only runs (`--admin-url`, `--envoy-dump`, no cluster, no manifests): which service is
//! vLLM, from the Envoys' own clusters. A client-side Envoy has `outbound|PORT||HOST`, the vLLM
//! pod's sidecar `inbound|PORT||`; the service both sides agree on is the one to judge.
//!
//! Candidates are the outbound clusters of every Envoy, ranked by: a client and a server side
//! both present; routed to by a client (a gateway routes only to what its VirtualServices bind);
//! requests seen by a client; in the namespace of a server-side Envoy. The best one wins; a tie
//! is an error that lists the candidates (`--service HOST:PORT` chooses).

use super::reading::EnvoyReading;
use crate::evidence::envoy::config::EffectiveConfig;
use crate::evidence::envoy::names;
use crate::evidence::envoy::role::{EnvoyRole, IstioClusterName, role_for};
use std::collections::BTreeSet;

/// How many candidates an ambiguity error lists.
const LISTED_CANDIDATES: usize = 8;

/// The vLLM service the Envoys point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChoice {
    /// `vllm.inference.svc.cluster.local`
    pub host: String,
    /// The Service port (the client side's `outbound|PORT||HOST`).
    pub port: u16,
    /// The vLLM container port (the server side's `inbound|PORT||`): Istio names inbound
    /// clusters by target port, which may differ from the Service port.
    pub server_port: u16,
    /// Why this one, for the report.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    #[error(
        "--service {text:?}: expected HOST:PORT, e.g. vllm.inference.svc.cluster.local:8000 or vllm.inference:8000, or a cluster's name"
    )]
    BadService { text: String },
    #[error(
        "no vLLM service found in the Envoys' config: no route sends to a cluster, and none has an outbound|PORT||HOST or inbound|PORT|| cluster{detail}; point --admin-url at the gateway or caller and at the vLLM pod's sidecar"
    )]
    NoCandidate { detail: String },
    #[error(
        "the Envoys point at several services ({candidates}); choose one with --service HOST:PORT"
    )]
    Ambiguous { candidates: String },
    #[error("--service {host}:{port}: no Envoy has a cluster for it; services they know: {known}")]
    Unknown {
        host: String,
        port: u16,
        known: String,
    },
}

/// A `--service` text shaped like a cluster name no host has (`httproute/ns/name/rule/0`,
/// `kube_ns_name_8000`, `outbound|8000||host`): known only once the Envoys are read.
pub fn may_be_cluster_name(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty() && !text.contains(char::is_whitespace) && text.contains(['/', '_', '|'])
}

/// `HOST:PORT` as `--service` takes it.
pub fn parse_service(text: &str) -> Result<(String, u16), DiscoverError> {
    let bad = || DiscoverError::BadService {
        text: text.to_string(),
    };
    let (host, port) = text.trim().rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || port == 0 || host.contains('/') || host.contains('|') {
        return Err(bad());
    }
    Ok((host, port))
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    paired: bool,
    routed: bool,
    traffic: bool,
    local: bool,
    /// The server-side sidecar's service cluster (`vllm.inference`) names it.
    named: bool,
}

struct Candidate {
    host: String,
    port: u16,
    rank: Rank,
    server_port: u16,
}

/// The clusters routes send to whose names are not Istio's (Envoy Gateway's, kgateway's, a
/// plain Envoy's), as services: what the name or endpoints say, else the cluster's name.
fn routed_services(config: &EffectiveConfig) -> BTreeSet<(String, u16)> {
    let mut found = BTreeSet::new();
    for view in config.routes() {
        for name in view.route.target.clusters() {
            if IstioClusterName::parse(name).is_some() {
                continue;
            }
            if let Some(cluster) = config.cluster(name) {
                found.insert(names::service_key(cluster));
            }
        }
    }
    for (_, chain) in config.listeners.iter().flat_map(|listener| {
        listener
            .filter_chains
            .iter()
            .map(move |chain| (listener, chain))
    }) {
        if let Some(name) = &chain.tcp_proxy_cluster
            && IstioClusterName::parse(name).is_none()
            && let Some(cluster) = config.cluster(name)
        {
            found.insert(names::service_key(cluster));
        }
    }
    found
}

/// An Istio sidecar routes to every service of the mesh, so its routes say nothing about
/// which one is vLLM; a gateway's (or a plain Envoy's) routes do.
fn routes_are_a_choice(reading: &EnvoyReading) -> bool {
    reading.node().is_none_or(|node| node.kind != "sidecar")
}

/// Picks the vLLM service from readable Envoys, or the one `--service` names.
pub fn find_service(
    readings: &[&EnvoyReading],
    wanted: Option<&str>,
) -> Result<ServiceChoice, DiscoverError> {
    let mut outbound: BTreeSet<(String, u16)> = BTreeSet::new();
    for reading in readings {
        let Some(config) = reading.role_config() else {
            continue;
        };
        for cluster in &config.clusters {
            // A waypoint's `inbound-vip|PORT|http|HOST` names the service it fronts.
            if let Some(name) = IstioClusterName::parse(&cluster.name)
                && (name.direction == "outbound" || name.direction == "inbound-vip")
                && !name.host.is_empty()
            {
                outbound.insert((name.host.to_string(), name.port));
            }
        }
        outbound.extend(routed_services(&config));
    }
    if let Some(text) = wanted {
        return chosen(readings, &outbound, text);
    }
    let mut candidates: Vec<Candidate> = outbound
        .iter()
        .map(|(host, port)| candidate(readings, host, *port))
        .collect();
    if candidates.is_empty() {
        return only_inbound(readings);
    }
    candidates.sort_by(|a, b| b.rank.cmp(&a.rank));
    let best = candidates[0].rank.clone();
    let top: Vec<&Candidate> = candidates.iter().filter(|c| c.rank == best).collect();
    if top.len() > 1 {
        let mut names: Vec<String> = top
            .iter()
            .take(LISTED_CANDIDATES)
            .map(|c| format!("{}:{}", c.host, c.port))
            .collect();
        if top.len() > LISTED_CANDIDATES {
            names.push(format!("{} more", top.len() - LISTED_CANDIDATES));
        }
        return Err(DiscoverError::Ambiguous {
            candidates: names.join(", "),
        });
    }
    let pick = top[0];
    Ok(ServiceChoice {
        host: pick.host.clone(),
        port: pick.port,
        server_port: pick.server_port,
        reason: reason(&pick.rank),
    })
}

fn candidate(readings: &[&EnvoyReading], host: &str, port: u16) -> Candidate {
    let mut rank = Rank {
        paired: false,
        routed: false,
        traffic: false,
        local: false,
        named: false,
    };
    let (mut client, mut server) = (false, false);
    let mut server_port = port;
    for reading in readings {
        let Some(config) = reading.role_config() else {
            continue;
        };
        let config = config.as_ref();
        // A sidecar named after this service whose one inbound port is the target port.
        let own_service = single_inbound_port(reading).filter(|_| {
            reading
                .node()
                .is_some_and(|node| host_in_namespace(host, &node.namespace))
                && service_cluster_names(reading, host)
        });
        let role = role_for(config, host, port);
        if role.role != EnvoyRole::Server
            && let Some(inbound) = own_service
        {
            server = true;
            rank.local = true;
            rank.named = true;
            server_port = inbound;
            continue;
        }
        match role.role {
            EnvoyRole::Client | EnvoyRole::Waypoint => {
                client = true;
                let routed = routes_are_a_choice(reading)
                    && config.routes().any(|view| {
                        view.route
                            .target
                            .clusters()
                            .iter()
                            .any(|name| role.clusters.iter().any(|wanted| wanted == name))
                    });
                rank.routed |= routed;
                rank.traffic |= reading.stats.as_ref().is_some_and(|stats| {
                    role.clusters.iter().any(|cluster| {
                        stats
                            .cluster(cluster)
                            .get("upstream_rq_total")
                            .is_some_and(|total| total > 0)
                    })
                });
            }
            EnvoyRole::Server => {
                server = true;
                rank.local |= reading
                    .node()
                    .is_some_and(|node| host_in_namespace(host, &node.namespace));
                rank.named |= own_service.is_some() || service_cluster_names(reading, host);
            }
            EnvoyRole::Unrelated => {}
        }
    }
    rank.paired = client && server;
    Candidate {
        host: host.to_string(),
        port,
        rank,
        server_port,
    }
}

/// The sidecar's service cluster (`vllm.inference`, from the app label) names `host`.
fn service_cluster_names(reading: &EnvoyReading, host: &str) -> bool {
    reading
        .node_cluster()
        .is_some_and(|cluster| host == format!("{cluster}.svc.cluster.local"))
}

fn single_inbound_port(reading: &EnvoyReading) -> Option<u16> {
    let config = reading.role_config()?;
    let ports: BTreeSet<u16> = config
        .clusters
        .iter()
        .filter_map(|cluster| IstioClusterName::parse(&cluster.name))
        .filter(|name| name.direction == "inbound")
        .map(|name| name.port)
        .collect();
    (ports.len() == 1)
        .then(|| ports.into_iter().next())
        .flatten()
}

fn host_in_namespace(host: &str, namespace: &str) -> bool {
    host.strip_suffix(".svc.cluster.local")
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(_, host_namespace)| host_namespace == namespace)
}

fn reason(rank: &Rank) -> String {
    let mut parts = Vec::new();
    if rank.paired {
        parts.push("a client-side outbound and a server-side inbound cluster");
    } else {
        parts.push("the only outbound cluster that fits");
    }
    if rank.routed {
        parts.push("routed to by the client");
    }
    if rank.traffic {
        parts.push("requests seen");
    }
    if rank.named {
        parts.push("the server sidecar's own service");
    } else if rank.local {
        parts.push("in the server Envoy's namespace");
    }
    parts.join(", ")
}

/// Only server-side Envoys with no outbound clusters: the one inbound port, and the service
/// the sidecar names itself after (`vllm.inference`).
fn only_inbound(readings: &[&EnvoyReading]) -> Result<ServiceChoice, DiscoverError> {
    let mut found: BTreeSet<(String, u16)> = BTreeSet::new();
    for reading in readings {
        if let Some(port) = single_inbound_port(reading) {
            let host = reading
                .node_cluster()
                .filter(|cluster| cluster.matches('.').count() == 1)
                .map(|cluster| format!("{cluster}.svc.cluster.local"))
                .unwrap_or_default();
            found.insert((host, port));
        }
    }
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (Some((host, port)), None) if !host.is_empty() => Ok(ServiceChoice {
            reason: format!(
                "the server-side Envoy's only inbound cluster inbound|{port}|| and its service cluster"
            ),
            host,
            port,
            server_port: port,
        }),
        (Some(_), None) => Err(DiscoverError::NoCandidate {
            detail: " (a server-side inbound cluster, but no name for its service: pass --service HOST:PORT)".to_string(),
        }),
        (Some(first), Some(second)) => Err(DiscoverError::Ambiguous {
            candidates: format!("{}:{}, {}:{}", first.0, first.1, second.0, second.1),
        }),
        (None, _) => Err(DiscoverError::NoCandidate {
            detail: String::new(),
        }),
    }
}

/// `--service NAME` where NAME is a cluster's name or `alt_stat_name` in some Envoy
/// (`httproute/inference/vllm/rule/0`): that cluster, at its endpoints' port.
fn chosen_cluster(readings: &[&EnvoyReading], text: &str) -> Option<ServiceChoice> {
    let configs: Vec<_> = readings
        .iter()
        .filter_map(|reading| reading.role_config())
        .collect();
    let cluster = configs
        .iter()
        .flat_map(|config| config.clusters.iter())
        .find(|cluster| {
            IstioClusterName::parse(&cluster.name).is_none()
                && (cluster.name == text
                    || cluster
                        .alt_stat_name
                        .as_deref()
                        .is_some_and(|alt| alt.trim_end_matches(';') == text))
        })?;
    let port = names::endpoint_port(cluster)
        .or_else(|| names::cluster_service(cluster).map(|(_, port)| port))
        .unwrap_or(0);
    Some(ServiceChoice {
        host: cluster.name.clone(),
        port,
        server_port: port,
        reason: "the cluster --service names".to_string(),
    })
}

/// `--service HOST:PORT`: HOST may be short (`vllm`, `vllm.inference`); it is completed from
/// the outbound clusters when one matches.
fn chosen(
    readings: &[&EnvoyReading],
    outbound: &BTreeSet<(String, u16)>,
    text: &str,
) -> Result<ServiceChoice, DiscoverError> {
    if let Some(choice) = chosen_cluster(readings, text.trim()) {
        return Ok(choice);
    }
    let (host, port) = parse_service(text)?;
    let matches: Vec<&(String, u16)> = outbound
        .iter()
        .filter(|(cluster_host, cluster_port)| {
            *cluster_port == port
                && (*cluster_host == host
                    || cluster_host
                        .strip_prefix(host.as_str())
                        .is_some_and(|rest| rest.starts_with('.')))
        })
        .collect();
    let host = match matches.as_slice() {
        [(full, _)] => full.clone(),
        _ => host,
    };
    let any_role = readings.iter().any(|reading| {
        reading
            .role_config()
            .is_some_and(|config| role_for(&config, &host, port).role != EnvoyRole::Unrelated)
    });
    if !any_role {
        let known: Vec<String> = outbound
            .iter()
            .take(LISTED_CANDIDATES)
            .map(|(host, port)| format!("{host}:{port}"))
            .collect();
        return Err(DiscoverError::Unknown {
            host,
            port,
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    }
    let server_port = candidate(readings, &host, port).server_port;
    Ok(ServiceChoice {
        host,
        port,
        server_port,
        reason: "named by --service".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::envoy::config_dump;
    use crate::sources::envoy::stats::Stats;

    fn reading(clusters: &[&str], routed: &[&str], node: Option<(&str, &str)>) -> EnvoyReading {
        let clusters: Vec<String> = clusters
            .iter()
            .map(|name| format!(r#"{{"name":"{name}"}}"#))
            .collect();
        let routes: Vec<String> = routed
            .iter()
            .map(|name| format!(r#"{{"match":{{"prefix":"/"}},"route":{{"cluster":"{name}"}}}}"#))
            .collect();
        let mut sections = vec![format!(
            r#"{{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump","dynamic_active_clusters":[{}]}}"#,
            clusters
                .iter()
                .map(|c| format!(r#"{{"cluster":{c}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        )];
        if !routes.is_empty() {
            sections.push(format!(
                r#"{{"@type":"type.googleapis.com/envoy.admin.v3.RoutesConfigDump","dynamic_route_configs":[{{"route_config":{{"name":"80","virtual_hosts":[{{"name":"vh","domains":["*"],"routes":[{}]}}]}}}}]}}"#,
                routes.join(",")
            ));
        }
        if let Some((id, cluster)) = node {
            sections.push(format!(
                r#"{{"@type":"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump","bootstrap":{{"node":{{"id":"{id}","cluster":"{cluster}"}}}}}}"#
            ));
        }
        let text = format!(r#"{{"configs":[{}]}}"#, sections.join(","));
        EnvoyReading {
            source: "test".to_string(),
            config: Some(config_dump::parse(&text).unwrap()),
            ..EnvoyReading::default()
        }
    }

    const VLLM: &str = "outbound|8000||vllm.inference.svc.cluster.local";
    const OTHER: &str = "outbound|8000||embed.inference.svc.cluster.local";
    const SIDECAR: Option<(&str, &str)> = Some((
        "sidecar~10.0.0.7~vllm-0.inference~inference.svc.cluster.local",
        "vllm.inference",
    ));

    #[test]
    fn the_lab_pair_names_one_service() {
        let client = reading(&[VLLM], &[VLLM], None);
        let server = reading(&["inbound|8000||"], &[], SIDECAR);
        let choice = find_service(&[&client, &server], None).unwrap();
        assert_eq!(
            (choice.host.as_str(), choice.port, choice.server_port),
            ("vllm.inference.svc.cluster.local", 8000, 8000)
        );
        assert!(choice.reason.contains("server-side inbound"), "{choice:?}");
    }

    #[test]
    fn a_gateway_routes_only_to_what_it_serves() {
        // The gateway knows every service, but routes to vllm only.
        let gateway = reading(
            &[VLLM, OTHER, "outbound|9000||x.other.svc.cluster.local"],
            &[VLLM],
            None,
        );
        let server = reading(&["inbound|8000||", VLLM, OTHER], &[], SIDECAR);
        let choice = find_service(&[&gateway, &server], None).unwrap();
        assert_eq!(choice.host, "vllm.inference.svc.cluster.local");
    }

    #[test]
    fn requests_seen_break_a_tie_between_sidecars() {
        let mut caller = reading(&[VLLM, OTHER], &[VLLM, OTHER], None);
        // A sidecar whose app label names neither service.
        let server = reading(
            &["inbound|8000||"],
            &[],
            Some((
                "sidecar~10.0.0.7~llm-0.inference~inference.svc.cluster.local",
                "llm.inference",
            )),
        );
        let error = find_service(&[&caller, &server], None).unwrap_err();
        assert!(
            matches!(&error, DiscoverError::Ambiguous { candidates } if candidates.contains("embed.inference") && candidates.contains("vllm.inference")),
            "{error}"
        );
        assert!(error.to_string().contains("--service HOST:PORT"), "{error}");
        caller.stats =
            Some(Stats::parse_text(&format!("cluster.{VLLM}.upstream_rq_total: 12\n")).unwrap());
        let choice = find_service(&[&caller, &server], None).unwrap();
        assert_eq!(choice.host, "vllm.inference.svc.cluster.local");
        assert!(choice.reason.contains("requests seen"), "{choice:?}");
    }

    #[test]
    fn service_flag_chooses_and_completes_short_names() {
        let caller = reading(&[VLLM, OTHER], &[VLLM, OTHER], None);
        let choice = find_service(&[&caller], Some("vllm.inference:8000")).unwrap();
        assert_eq!(choice.host, "vllm.inference.svc.cluster.local");
        assert_eq!(choice.reason, "named by --service");
        let error = find_service(&[&caller], Some("nope:8000")).unwrap_err();
        assert!(
            error.to_string().contains("services they know: embed"),
            "{error}"
        );
        assert!(matches!(
            find_service(&[&caller], Some("vllm")).unwrap_err(),
            DiscoverError::BadService { .. }
        ));
    }

    #[test]
    fn a_lone_sidecar_names_its_own_service() {
        let server = reading(&["inbound|8000||"], &[], SIDECAR);
        let choice = find_service(&[&server], None).unwrap();
        assert_eq!(choice.host, "vllm.inference.svc.cluster.local");
        // With its outbound clusters: the one in its namespace named after it wins.
        let server = reading(
            &[
                "inbound|8000||",
                VLLM,
                "outbound|8000||a.other.svc.cluster.local",
            ],
            &[],
            SIDECAR,
        );
        let choice = find_service(&[&server], None).unwrap();
        assert_eq!(choice.host, "vllm.inference.svc.cluster.local");
        let error = find_service(&[&reading(&["xds-grpc"], &[], None)], None).unwrap_err();
        assert!(
            matches!(error, DiscoverError::NoCandidate { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_lone_sidecar_picks_its_own_service_over_the_mesh_it_routes_to() {
        // A sidecar has outbound routes to every service of the mesh: they rank nothing.
        let others = [
            "outbound|3000||grafana.istio-system.svc.cluster.local",
            "outbound|9090||prometheus.istio-system.svc.cluster.local",
            "outbound|8000||embed.inference.svc.cluster.local",
        ];
        let mut clusters = vec!["inbound|8000||", VLLM];
        clusters.extend(others);
        let mut routed = vec![VLLM];
        routed.extend(others);
        let server = reading(&clusters, &routed, SIDECAR);
        let choice = find_service(&[&server], None).unwrap();
        assert_eq!(choice.host, "vllm.inference.svc.cluster.local");
        assert!(choice.reason.contains("own service"), "{choice:?}");
    }

    #[test]
    fn clusters_of_any_control_plane_are_found_on_the_route() {
        // Envoy Gateway: the route's rule cluster, endpoints by EDS.
        let gateway = reading(
            &["httproute/inference/vllm/rule/0", "xds_cluster"],
            &["httproute/inference/vllm/rule/0"],
            None,
        );
        let choice = find_service(&[&gateway], None).unwrap();
        assert_eq!(choice.host, "httproute/inference/vllm/rule/0");
        let named = find_service(&[&gateway], Some("httproute/inference/vllm/rule/0")).unwrap();
        assert_eq!(named.host, "httproute/inference/vllm/rule/0");
        assert_eq!(named.reason, "the cluster --service names");
        // Its backend cluster and kgateway's name the Service.
        for name in ["service/inference/vllm/8000", "kube_inference_vllm_8000"] {
            let choice = find_service(&[&reading(&[name], &[name], None)], None).unwrap();
            assert_eq!(
                (choice.host.as_str(), choice.port),
                ("vllm.inference.svc.cluster.local", 8000),
                "{name}"
            );
        }
        // A waypoint's inbound-vip cluster is found without --service.
        let waypoint = reading(
            &["inbound-vip|8000|http|vllm.inference.svc.cluster.local"],
            &["inbound-vip|8000|http|vllm.inference.svc.cluster.local"],
            None,
        );
        let choice = find_service(&[&waypoint], None).unwrap();
        assert_eq!(choice.host, "vllm.inference.svc.cluster.local");
    }

    #[test]
    fn target_ports_that_differ_from_the_service_port_pair_up() {
        let service = "outbound|80||vllm.inference.svc.cluster.local";
        let client = reading(&[service], &[], None);
        // The vLLM sidecar also has an outbound cluster for its own service.
        let server = reading(&["inbound|8000||", service], &[], SIDECAR);
        let choice = find_service(&[&client, &server], None).unwrap();
        assert_eq!((choice.port, choice.server_port), (80, 8000));
    }
}
