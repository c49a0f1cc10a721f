//! Which DestinationRule and Sidecar settings take effect for a port and subset, as istiod
//! computes them (pilot `cluster_traffic_policy.go`, `MergeSubsetTrafficPolicy`):
//!
//! - A `portLevelSettings` entry for the service port *replaces* the rule's connection pool and
//!   outlier detection: fields it leaves out fall back to defaults, not to the rule's top level.
//! - A subset's policy (itself resolved by its own port-level settings) replaces the connection
//!   pool and outlier detection when it sets them, or whenever it has a matching port entry.
//! - Only values > 0 are applied; `0` means "Istio's default" (4294967295 for the limits).
//! - The server's own `inbound|PORT||` cluster gets the rule's port-resolved pool (no subsets),
//!   unless a Sidecar sets `ingress[].connectionPool` for the port or `inboundConnectionPool`.
//!
//! Every value comes with the field path it was read from, for evidence lines.

use crate::evidence::ServiceInfo;
use crate::evidence::objects::{
    ConnectionPool, DestinationRule, OutlierDetection, Sidecar, TrafficPolicy,
};

/// A value and the field path it was read from (`spec/trafficPolicy/connectionPool/tcp/maxConnections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    pub value: T,
    pub path: String,
}

/// The connection pool and outlier detection in effect for one Envoy cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectivePolicy<'a> {
    pub connection_pool: Option<(&'a ConnectionPool, String)>,
    pub outlier_detection: Option<(&'a OutlierDetection, String)>,
}

/// The settings of one `TrafficPolicy` for a port, after its `portLevelSettings` are applied.
struct PortResolved<'a> {
    connection_pool: Option<(&'a ConnectionPool, String)>,
    outlier_detection: Option<(&'a OutlierDetection, String)>,
    has_port_level: bool,
}

fn resolve_port<'a>(policy: &'a TrafficPolicy, path: &str, port: u16) -> PortResolved<'a> {
    let port_entry = policy
        .port_level_settings
        .iter()
        .enumerate()
        .find(|(_, entry)| {
            entry
                .port
                .as_ref()
                .and_then(|selector| selector.number)
                .is_some_and(|number| number == u32::from(port))
        });
    match port_entry {
        Some((index, entry)) => {
            let entry_path = format!("{path}/portLevelSettings[{index}]");
            PortResolved {
                connection_pool: entry
                    .connection_pool
                    .as_ref()
                    .map(|pool| (pool, format!("{entry_path}/connectionPool"))),
                outlier_detection: entry
                    .outlier_detection
                    .as_ref()
                    .map(|outlier| (outlier, format!("{entry_path}/outlierDetection"))),
                has_port_level: true,
            }
        }
        None => PortResolved {
            connection_pool: policy
                .connection_pool
                .as_ref()
                .map(|pool| (pool, format!("{path}/connectionPool"))),
            outlier_detection: policy
                .outlier_detection
                .as_ref()
                .map(|outlier| (outlier, format!("{path}/outlierDetection"))),
            has_port_level: false,
        },
    }
}

/// The policy of the cluster `outbound|PORT|SUBSET|HOST` (`subset` None: the plain cluster).
/// `port` is the *service* port. A subset the rule does not define gets the rule's policy.
pub fn effective_policy<'a>(
    rule: &'a DestinationRule,
    port: u16,
    subset: Option<&str>,
) -> EffectivePolicy<'a> {
    let mut effective = EffectivePolicy::default();
    if let Some(policy) = &rule.spec.traffic_policy {
        let resolved = resolve_port(policy, "spec/trafficPolicy", port);
        effective.connection_pool = resolved.connection_pool;
        effective.outlier_detection = resolved.outlier_detection;
    }
    let subset_policy = subset.and_then(|name| {
        rule.spec
            .subsets
            .iter()
            .enumerate()
            .find(|(_, candidate)| candidate.name == name)
            .and_then(|(index, candidate)| {
                candidate
                    .traffic_policy
                    .as_ref()
                    .map(|policy| (index, policy))
            })
    });
    if let Some((index, policy)) = subset_policy {
        let resolved = resolve_port(
            policy,
            &format!("spec/subsets[{index}]/trafficPolicy"),
            port,
        );
        if resolved.connection_pool.is_some() || resolved.has_port_level {
            effective.connection_pool = resolved.connection_pool;
        }
        if resolved.outlier_detection.is_some() || resolved.has_port_level {
            effective.outlier_detection = resolved.outlier_detection;
        }
    }
    effective
}

/// The connection pool a Sidecar imposes on the workload's inbound cluster for `port` (the
/// port the workload listens on): `ingress[].connectionPool` for that port wins over
/// `inboundConnectionPool`.
pub fn sidecar_inbound_pool(sidecar: &Sidecar, port: u16) -> Option<(&ConnectionPool, String)> {
    let ingress = sidecar
        .spec
        .ingress
        .iter()
        .enumerate()
        .find(|(_, ingress)| {
            ingress
                .port
                .as_ref()
                .and_then(|port_value| port_value.get("number"))
                .and_then(serde_json::Value::as_u64)
                .is_some_and(|number| number == u64::from(port))
        });
    let ingress_pool = ingress.and_then(|(index, ingress)| {
        ingress
            .connection_pool
            .as_ref()
            .map(|pool| (pool, format!("spec/ingress[{index}]/connectionPool")))
    });
    if ingress_pool.is_some() {
        return ingress_pool;
    }
    sidecar
        .spec
        .inbound_connection_pool
        .as_ref()
        .map(|pool| (pool, "spec/inboundConnectionPool".to_string()))
}

/// The limits of a connection pool that Istio applies (values > 0), each with its field path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolLimits {
    pub max_connections: Option<Sourced<i64>>,
    pub http1_max_pending_requests: Option<Sourced<i64>>,
    pub http2_max_requests: Option<Sourced<i64>>,
    pub max_requests_per_connection: Option<Sourced<i64>>,
    /// `http.idleTimeout`, else `tcp.idleTimeout` (istiod falls back to the TCP one).
    pub idle_timeout: Option<Sourced<String>>,
    pub max_connection_duration: Option<Sourced<String>>,
}

fn positive(value: Option<i64>, path: String) -> Option<Sourced<i64>> {
    value
        .filter(|value| *value > 0)
        .map(|value| Sourced { value, path })
}

/// Reads the applied limits of `pool`, whose block sits at `path`.
pub fn pool_limits(pool: &ConnectionPool, path: &str) -> PoolLimits {
    let tcp = pool.tcp.as_ref();
    let http = pool.http.as_ref();
    let text = |value: Option<&String>, field: &str| {
        value.map(|value| Sourced {
            value: value.clone(),
            path: format!("{path}/{field}"),
        })
    };
    PoolLimits {
        max_connections: positive(
            tcp.and_then(|tcp| tcp.max_connections),
            format!("{path}/tcp/maxConnections"),
        ),
        http1_max_pending_requests: positive(
            http.and_then(|http| http.http1_max_pending_requests),
            format!("{path}/http/http1MaxPendingRequests"),
        ),
        http2_max_requests: positive(
            http.and_then(|http| http.http2_max_requests),
            format!("{path}/http/http2MaxRequests"),
        ),
        max_requests_per_connection: positive(
            http.and_then(|http| http.max_requests_per_connection),
            format!("{path}/http/maxRequestsPerConnection"),
        ),
        idle_timeout: text(
            http.and_then(|http| http.idle_timeout.as_ref()),
            "http/idleTimeout",
        )
        .or_else(|| {
            text(
                tcp.and_then(|tcp| tcp.idle_timeout.as_ref()),
                "tcp/idleTimeout",
            )
        }),
        max_connection_duration: text(
            tcp.and_then(|tcp| tcp.max_connection_duration.as_ref()),
            "tcp/maxConnectionDuration",
        ),
    }
}

/// Whether an Istio `host` written in an object of `object_namespace` names `service`: short
/// name (`vllm`, resolved in the object's namespace), `vllm.ns`, `vllm.ns.svc`, the FQDN, or a
/// wildcard (`*.ns.svc.cluster.local`, `*`).
pub fn host_matches(host: &str, object_namespace: &str, service: &ServiceInfo) -> bool {
    let fqdn = service.fqdn();
    let host = host.trim().trim_end_matches('.');
    if host == "*" {
        return true;
    }
    if let Some(suffix) = host.strip_prefix('*') {
        return fqdn.ends_with(suffix);
    }
    let expanded = match host.matches('.').count() {
        0 => format!("{host}.{object_namespace}.svc.cluster.local"),
        1 => format!("{host}.svc.cluster.local"),
        2 if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => host.to_string(),
    };
    expanded == fqdn
}

/// The DestinationRule Istio applies to `service`: the first of `rules` (ordered most specific
/// first) whose host names it.
pub fn destination_rule_for<'a>(
    rules: &'a [DestinationRule],
    service: &ServiceInfo,
) -> Option<&'a DestinationRule> {
    rules.iter().find(|rule| {
        let namespace = rule
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(&service.namespace);
        host_matches(&rule.spec.host, namespace, service)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::ServicePortInfo;

    fn rule(yaml: &str) -> DestinationRule {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn service() -> ServiceInfo {
        ServiceInfo {
            namespace: "llm".into(),
            name: "vllm".into(),
            ports: vec![ServicePortInfo {
                name: Some("http".into()),
                port: 8000,
                target_port: None,
            }],
        }
    }

    const LAYERED: &str = r#"
metadata: {name: vllm, namespace: llm}
spec:
  host: vllm
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http2MaxRequests: 100}
    outlierDetection: {consecutive5xxErrors: 3}
    portLevelSettings:
    - port: {number: 9000}
      connectionPool:
        tcp: {maxConnections: 7}
    - port: {number: 8000}
      tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool:
        http: {http1MaxPendingRequests: 5}
  - name: v2
    labels: {version: v2}
"#;

    #[test]
    fn top_level_policy_applies_without_port_or_subset_override() {
        let rule = rule(LAYERED);
        let effective = effective_policy(&rule, 8080, None);
        let (pool, path) = effective.connection_pool.unwrap();
        assert_eq!(path, "spec/trafficPolicy/connectionPool");
        let limits = pool_limits(pool, &path);
        assert_eq!(limits.max_connections.unwrap().value, 100);
        assert!(effective.outlier_detection.is_some());
    }

    #[test]
    fn port_level_entry_replaces_the_pool_and_does_not_inherit() {
        let rule = rule(LAYERED);
        let effective = effective_policy(&rule, 9000, None);
        let (pool, path) = effective.connection_pool.unwrap();
        assert_eq!(
            path,
            "spec/trafficPolicy/portLevelSettings[0]/connectionPool"
        );
        let limits = pool_limits(pool, &path);
        assert_eq!(limits.max_connections.unwrap().value, 7);
        assert_eq!(
            limits.http2_max_requests, None,
            "not inherited from the top level"
        );
        assert!(
            effective.outlier_detection.is_none(),
            "not inherited either"
        );

        // A port entry with only TLS still drops the top-level pool for that port.
        let effective = effective_policy(&rule, 8000, None);
        assert!(effective.connection_pool.is_none());
    }

    #[test]
    fn subset_pool_wins_and_subset_without_policy_keeps_the_rule() {
        let rule = rule(LAYERED);
        let effective = effective_policy(&rule, 8080, Some("v1"));
        let (pool, path) = effective.connection_pool.unwrap();
        assert_eq!(path, "spec/subsets[0]/trafficPolicy/connectionPool");
        let limits = pool_limits(pool, &path);
        assert_eq!(limits.http1_max_pending_requests.unwrap().value, 5);
        assert_eq!(limits.max_connections, None);
        assert!(
            effective.outlier_detection.is_some(),
            "outlier detection stays from the rule"
        );

        let effective = effective_policy(&rule, 8080, Some("v2"));
        assert_eq!(
            effective.connection_pool.unwrap().1,
            "spec/trafficPolicy/connectionPool"
        );
    }

    #[test]
    fn zero_values_are_not_applied() {
        let rule = rule(
            "spec: {host: vllm, trafficPolicy: {connectionPool: {tcp: {maxConnections: 0}, http: {http2MaxRequests: 0, idleTimeout: 30s}}}}",
        );
        let (pool, path) = effective_policy(&rule, 8000, None).connection_pool.unwrap();
        let limits = pool_limits(pool, &path);
        assert_eq!(limits.max_connections, None);
        assert_eq!(limits.http2_max_requests, None);
        assert_eq!(limits.idle_timeout.unwrap().value, "30s");
    }

    #[test]
    fn sidecar_ingress_pool_wins_over_inbound_pool() {
        let sidecar: Sidecar = serde_yaml::from_str(
            r#"
spec:
  inboundConnectionPool: {tcp: {maxConnections: 10}}
  ingress:
  - port: {number: 8000, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8000
    connectionPool: {tcp: {maxConnections: 20}}
"#,
        )
        .unwrap();
        let (pool, path) = sidecar_inbound_pool(&sidecar, 8000).unwrap();
        assert_eq!(path, "spec/ingress[0]/connectionPool");
        assert_eq!(pool.tcp.as_ref().unwrap().max_connections, Some(20));
        let (_, path) = sidecar_inbound_pool(&sidecar, 9000).unwrap();
        assert_eq!(path, "spec/inboundConnectionPool");
    }

    #[test]
    fn hosts_match_short_names_fqdns_and_wildcards() {
        let service = service();
        for host in [
            "vllm",
            "vllm.llm",
            "vllm.llm.svc",
            "vllm.llm.svc.cluster.local",
            "*.llm.svc.cluster.local",
            "*.svc.cluster.local",
            "*",
        ] {
            assert!(host_matches(host, "llm", &service), "{host}");
        }
        for host in ["vllm", "other", "vllm.other", "*.other.svc.cluster.local"] {
            let namespace = if host == "vllm" { "other" } else { "llm" };
            assert!(
                !host_matches(host, namespace, &service),
                "{host} in {namespace}"
            );
        }
    }

    #[test]
    fn the_first_matching_rule_is_the_one_applied() {
        let wildcard =
            rule("metadata: {name: all, namespace: llm}\nspec: {host: '*.llm.svc.cluster.local'}");
        let exact = rule("metadata: {name: exact, namespace: llm}\nspec: {host: vllm}");
        let other = rule("metadata: {name: other, namespace: llm}\nspec: {host: other}");
        let rules = vec![other, exact, wildcard];
        let chosen = destination_rule_for(&rules, &service()).unwrap();
        assert_eq!(chosen.metadata.name.as_deref(), Some("exact"));
    }

    #[test]
    fn unmodelled_fields_survive_a_round_trip() {
        let rule = rule(
            "spec: {host: vllm, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}, connectionPool: {http: {useClientProtocol: true}}}}",
        );
        let text = serde_json::to_string(&rule).unwrap();
        assert!(text.contains("LEAST_REQUEST"), "{text}");
        assert!(text.contains("useClientProtocol"), "{text}");
    }
}
