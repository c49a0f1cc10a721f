//! Which side of the path to vLLM an Envoy is on, read from its clusters, and the part of its
//! config on that path.

use super::config::{
    ClusterConfig, EffectiveConfig, FilterChainConfig, HBONE_CLUSTER, HcmRoutes, ListenerConfig,
    RouteConfig, RouteEntry, RouteSource, VirtualHostConfig,
};
use super::names;
use serde::{Deserialize, Serialize};

/// Which side of the path to vLLM an Envoy is on (docs/facts.md "Where each path goes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvoyRole {
    /// A gateway or calling sidecar: it has `outbound|PORT|…|HOST`; VirtualService and
    /// DestinationRule settings act here.
    Client,
    /// The vLLM pod's sidecar: it has `inbound|PORT||` for the vLLM port.
    Server,
    /// An ambient waypoint: it has `inbound-vip|PORT|…|HOST`.
    Waypoint,
    /// Nothing in its config reaches that host and port.
    Unrelated,
}

impl EnvoyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvoyRole::Client => "client",
            EnvoyRole::Server => "server",
            EnvoyRole::Waypoint => "waypoint",
            EnvoyRole::Unrelated => "unrelated",
        }
    }
}

/// The role and the clusters it rests on, with a sentence for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleInference {
    pub role: EnvoyRole,
    pub clusters: Vec<String>,
    pub reason: String,
}

/// An Istio cluster name `direction|port|subset|host` taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioClusterName<'a> {
    pub direction: &'a str,
    pub port: u16,
    pub subset: &'a str,
    pub host: &'a str,
}

impl<'a> IstioClusterName<'a> {
    pub fn parse(name: &'a str) -> Option<Self> {
        let mut parts = name.split('|');
        let direction = parts.next()?;
        let port = parts.next()?.parse().ok()?;
        let subset = parts.next()?;
        let host = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            direction,
            port,
            subset,
            host,
        })
    }
}

/// `host` as a user names it (`vllm`, `vllm.ns`, or the FQDN) matches a cluster's FQDN.
fn host_matches(cluster_host: &str, host: &str) -> bool {
    !host.is_empty()
        && (cluster_host == host
            || cluster_host
                .strip_prefix(host)
                .is_some_and(|rest| rest.starts_with('.')))
}

/// The role a cluster gives for vLLM at `host:port`. Istio's names say it; any other cluster
/// is a client-side one when its name or `alt_stat_name` is `host` (the port then being its
/// endpoints' or `0`), when the service its name says (`names::cluster_service`: Envoy
/// Gateway's `service/NS/NAME/PORT`, kgateway's `kube_NS_NAME_PORT`, DNS endpoints) is
/// `host:port`, or when an endpoint is `host:port`.
fn cluster_role(cluster: &ClusterConfig, host: &str, port: u16) -> Option<EnvoyRole> {
    if let Some(parsed) = IstioClusterName::parse(&cluster.name) {
        if parsed.port != port {
            return None;
        }
        return match parsed.direction {
            "outbound" if host_matches(parsed.host, host) => Some(EnvoyRole::Client),
            "inbound" if parsed.host.is_empty() || host_matches(parsed.host, host) => {
                Some(EnvoyRole::Server)
            }
            "inbound-vip" if host_matches(parsed.host, host) => Some(EnvoyRole::Waypoint),
            _ => None,
        };
    }
    let named = cluster.name == host
        || cluster
            .alt_stat_name
            .as_deref()
            .is_some_and(|alt| alt.trim_end_matches(';') == host);
    let port_fits = port == 0
        || cluster.endpoints.is_empty()
        || names::endpoint_port(cluster) == Some(port)
        || names::cluster_service(cluster).is_some_and(|(_, service_port)| service_port == port);
    if named && port_fits {
        return Some(EnvoyRole::Client);
    }
    let by_service = names::cluster_service(cluster).is_some_and(|(service, service_port)| {
        service_port == port && host_matches(&service, host)
    });
    let by_endpoint = cluster
        .endpoints
        .iter()
        .any(|endpoint| *endpoint == format!("{host}:{port}"));
    (by_service || by_endpoint).then_some(EnvoyRole::Client)
}

/// Infers this Envoy's role for vLLM at `host:port` from its clusters. The vLLM pod's own sidecar
/// also has an outbound cluster to its own service; its inbound cluster makes it the server.
pub fn role_for(config: &EffectiveConfig, host: &str, port: u16) -> RoleInference {
    let mut by_role: Vec<(EnvoyRole, String)> = config
        .clusters
        .iter()
        .filter_map(|cluster| {
            cluster_role(cluster, host, port).map(|role| (role, cluster.name.clone()))
        })
        .collect();
    by_role.sort();
    by_role.dedup();
    let pick = |wanted: EnvoyRole| -> Vec<String> {
        by_role
            .iter()
            .filter(|(role, _)| *role == wanted)
            .map(|(_, name)| name.clone())
            .collect()
    };
    for (role, what) in [
        (EnvoyRole::Server, "an inbound cluster for port"),
        (EnvoyRole::Waypoint, "a waypoint inbound-vip cluster for"),
        (EnvoyRole::Client, "an outbound cluster for"),
    ] {
        let clusters = pick(role);
        if !clusters.is_empty() {
            let reason = format!(
                "{} side: it has {what} {host}:{port} ({})",
                role.as_str(),
                clusters.join(", ")
            );
            return RoleInference {
                role,
                clusters,
                reason,
            };
        }
    }
    RoleInference {
        role: EnvoyRole::Unrelated,
        clusters: Vec::new(),
        reason: format!(
            "no cluster for {host}:{port} in its config (no outbound|{port}|…|{host} or inbound|{port}||, and none named so or with that endpoint)"
        ),
    }
}

impl EffectiveConfig {
    /// The part of this config on the path to vLLM at `host:port`: the clusters of this Envoy's
    /// role, the routes that send to them (other routes dropped), the HCMs and listeners that
    /// use those routes (other filter chains dropped). Node and stats settings are kept.
    ///
    /// A cluster that sends HBONE brings `connect_originate` (and its internal listener) along:
    /// the tunnel that carries the path to ambient pods. Whether the target's pods are ambient,
    /// so that the tunnel is in effect, is for the checks to say.
    pub fn path_to(&self, host: &str, port: u16) -> EffectiveConfig {
        let mut role = role_for(self, host, port);
        let tunnels = self
            .clusters
            .iter()
            .any(|cluster| cluster.hbone && role.clusters.contains(&cluster.name));
        if tunnels && self.cluster(HBONE_CLUSTER).is_some() {
            role.clusters.push(HBONE_CLUSTER.to_string());
        }
        let clusters: Vec<ClusterConfig> = self
            .clusters
            .iter()
            .filter(|cluster| role.clusters.contains(&cluster.name))
            .cloned()
            .collect();
        let mut route_configs = Vec::new();
        for route_config in &self.route_configs {
            let virtual_hosts: Vec<VirtualHostConfig> = route_config
                .virtual_hosts
                .iter()
                .filter_map(|virtual_host| {
                    let routes: Vec<RouteEntry> = virtual_host
                        .routes
                        .iter()
                        .filter(|route| {
                            route
                                .target
                                .clusters()
                                .iter()
                                .any(|name| role.clusters.iter().any(|wanted| wanted == name))
                        })
                        .cloned()
                        .collect();
                    (!routes.is_empty()).then(|| VirtualHostConfig {
                        name: virtual_host.name.clone(),
                        domains: virtual_host.domains.clone(),
                        routes,
                    })
                })
                .collect();
            if !virtual_hosts.is_empty() {
                route_configs.push(RouteConfig {
                    name: route_config.name.clone(),
                    source: route_config.source.clone(),
                    virtual_hosts,
                });
            }
        }
        let reaches = |chain: &FilterChainConfig, listener: &str| -> bool {
            if let Some(cluster) = &chain.tcp_proxy_cluster {
                return role.clusters.contains(cluster);
            }
            let Some(hcm) = &chain.hcm else {
                return false;
            };
            route_configs.iter().any(|route_config| match &hcm.routes {
                HcmRoutes::Rds(name) => {
                    route_config.name == *name
                        && matches!(route_config.source, RouteSource::Rds { .. })
                }
                HcmRoutes::Inline(name) => {
                    route_config.name == *name
                        && matches!(&route_config.source, RouteSource::Inline { listener: owner, stat_prefix }
                            if owner == listener && *stat_prefix == hcm.stat_prefix)
                }
                HcmRoutes::Scoped | HcmRoutes::None => false,
            })
        };
        let listeners = self
            .listeners
            .iter()
            .filter_map(|listener| {
                let filter_chains: Vec<FilterChainConfig> = listener
                    .filter_chains
                    .iter()
                    .filter(|chain| reaches(chain, &listener.name))
                    .cloned()
                    .collect();
                (!filter_chains.is_empty()).then(|| ListenerConfig {
                    filter_chains,
                    ..listener.clone()
                })
            })
            .collect();
        EffectiveConfig {
            node: self.node.clone(),
            stats_inclusion: self.stats_inclusion.clone(),
            listeners,
            route_configs,
            clusters,
            rejected: self.rejected.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_cluster_names() {
        let name = IstioClusterName::parse("outbound|8000|v1|vllm.ns.svc.cluster.local").unwrap();
        assert_eq!(
            (name.direction, name.port, name.subset, name.host),
            ("outbound", 8000, "v1", "vllm.ns.svc.cluster.local")
        );
        assert_eq!(IstioClusterName::parse("inbound|8000||").unwrap().host, "");
        assert!(IstioClusterName::parse("xds-grpc").is_none());
        assert!(IstioClusterName::parse("outbound|x||h").is_none());
    }

    #[test]
    fn host_names_match_like_kubernetes_short_names() {
        let fqdn = "vllm.inference.svc.cluster.local";
        assert!(host_matches(fqdn, fqdn));
        assert!(host_matches(fqdn, "vllm"));
        assert!(host_matches(fqdn, "vllm.inference"));
        assert!(!host_matches(fqdn, "vll"));
        assert!(!host_matches(fqdn, ""));
    }
}
