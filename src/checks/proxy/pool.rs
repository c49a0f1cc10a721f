//! Connection-pool limits as the proxies run them: each cluster's circuit-breaker thresholds
//! (`max_connections`, `max_pending_requests`, `max_requests`, `max_retries`) and
//! `max_requests_per_connection`, against what the workload serves: replicas × max-num-seqs on
//! a client-side (outbound) cluster, which is cluster-wide, and one replica's max-num-seqs on the
//! vLLM pod's inbound cluster. Istio's default 4294967295 never bites; raw Envoy's absent
//! thresholds are 1024 (and 3 retries), named as Envoy's defaults. Critical with runtime basis
//! when `upstream_cx_overflow`, `upstream_rq_pending_overflow`, `upstream_rq_retry_overflow`
//! moved, a `circuit_breakers.default.*_open` gauge is 1, or requests carry the UO flag.

use super::fixes::{self, FixText, PoolFields};
use super::observed::{self, Happened, Item};
use super::{Proxy, cluster_path, count_text, istio_object, service_host};
use crate::checks::capacity::{self, Capacity};
use crate::checks::{EvidenceLine, Finding, Severity};
use crate::evidence::CheckId;
use crate::evidence::envoy::config::{ClusterConfig, Setting};
use crate::evidence::envoy::role::EnvoyRole;
use crate::evidence::{ObjectRef, TargetEvidence, WorkloadKind};

const MODE: CheckId = CheckId::ConnectionPool;
/// Counters and gauges whose rise means the circuit breakers rejected or held work.
pub const OVERFLOW_COUNTERS: [&str; 7] = [
    "upstream_cx_overflow",
    "upstream_rq_pending_overflow",
    "upstream_rq_retry_overflow",
    "circuit_breakers.default.cx_open",
    "circuit_breakers.default.rq_pending_open",
    "circuit_breakers.default.rq_open",
    "circuit_breakers.default.rq_retry_open",
];
/// The response flag of a request rejected by a circuit breaker.
pub const OVERFLOW_FLAGS: [&str; 1] = ["UO"];
/// The capacity behind `proxy`: an Endpoint target's replicas are at least the endpoints its
/// client-side clusters list.
fn capacity(target: &TargetEvidence, proxy: &Proxy) -> Capacity {
    let replicas = u64::from(target.workload.replicas.max(1));
    if target.workload.kind != WorkloadKind::Endpoint {
        return Capacity::of(target, replicas);
    }
    let endpoints = proxy
        .config()
        .clusters
        .iter()
        .map(|cluster| cluster.endpoints.len() as u64)
        .max()
        .unwrap_or_default();
    if endpoints <= replicas {
        return Capacity::of(target, replicas);
    }
    let mut capacity = Capacity::of(target, endpoints);
    capacity.assumptions.push(format!(
        "replicas counted from the {endpoints} endpoints the proxy's cluster lists"
    ));
    capacity
}

/// What the YAML check found for each DestinationRule (`None`: nothing wrong).
pub type YamlFindings = [(ObjectRef, Option<Finding>)];

/// The findings from every proxy on the path, and the DestinationRules whose clusters the
/// proxies showed (their YAML findings give way to these).
pub fn findings(target: &TargetEvidence, yaml: &YamlFindings) -> (Vec<Finding>, Vec<ObjectRef>) {
    let mut findings = Vec::new();
    let mut shown = Vec::new();
    for proxy in super::proxies(target) {
        for cluster in &proxy.config().clusters {
            if let Some(object) = cluster.istio_config.as_deref().and_then(istio_object) {
                if object.kind == "DestinationRule" && !shown.contains(&object) {
                    shown.push(object);
                }
            }
        }
        let capacity = capacity(target, &proxy);
        for cluster in &proxy.config().clusters {
            findings.extend(cluster_finding(target, &proxy, cluster, &capacity, yaml));
        }
    }
    (findings, shown)
}

struct Limits {
    items: Vec<Item>,
    fields: PoolFields,
}

fn cluster_finding(
    target: &TargetEvidence,
    proxy: &Proxy,
    cluster: &ClusterConfig,
    capacity: &Capacity,
    yaml: &YamlFindings,
) -> Option<Finding> {
    let limits = limits(proxy, cluster, capacity);
    let scope = format!("cluster.{}.", cluster.stat_scope());
    let happened: Vec<Happened> =
        observed::happened(proxy, &OVERFLOW_COUNTERS, &OVERFLOW_FLAGS, &[])
            .into_iter()
            .filter(|moved| {
                moved.reading.stat.starts_with("istio_requests_total")
                    || stat_in(&moved.reading.stat, &scope)
            })
            .collect();
    let label = proxy.label();
    let name = cluster.name.clone();
    let mut finding = observed::finding(
        MODE,
        proxy,
        &limits.items,
        &happened,
        |happened, explaining| {
            let counted: Vec<String> = happened.iter().map(Happened::short).collect();
            match explaining {
                Some(item) => format!(
                    "{label} rejected or held requests ({}): it {}",
                    counted.join(", "),
                    item.headline
                ),
                None => format!(
                    "{label} rejected or held requests to {name} ({}); no threshold on the path explains it now",
                    counted.join(", ")
                ),
            }
        },
        proxy.blind_spot(MODE),
    )?;
    for assumption in &capacity.assumptions {
        finding = finding.assume(assumption.clone());
    }
    let (fix, lines) = fix_for(target, proxy, cluster, &limits.fields, capacity, yaml);
    for line in lines {
        finding = finding.evidence(line);
    }
    let fix = if finding.severity > Severity::Info {
        fixes::with_stats_matcher(target, proxy, &finding, fix)
    } else {
        None
    };
    Some(match fix {
        Some((summary, yaml)) => finding.fix(summary, yaml),
        None => finding,
    })
}

/// Whether an Envoy stat name belongs to the scope `cluster.<name>.` in either name form.
fn stat_in(stat: &str, scope: &str) -> bool {
    let plain = scope.trim_end_matches('.');
    stat.starts_with(scope) || stat.starts_with(&format!("{plain};."))
}

fn limits(proxy: &Proxy, cluster: &ClusterConfig, capacity: &Capacity) -> Limits {
    let inbound = proxy.role() == EnvoyRole::Server;
    let scope = if inbound {
        "each vLLM pod's inbound side".to_string()
    } else {
        cluster.name.clone()
    };
    let needed = if inbound {
        capacity.per_replica
    } else {
        capacity.fleet
    };
    let breakers = &cluster.circuit_breakers;
    let mut items = Vec::new();
    let mut fields = PoolFields::default();
    let multiplexed = cluster.http.protocol.as_deref() == Some("http2");
    let cap = |setting: &Setting<u64>,
               field: &str,
               api: &str,
               unit: &str,
               effect: &str,
               explains: &'static [&'static str]|
     -> Option<Item> {
        let judged =
            capacity::concurrency(setting.value, unit, effect, &scope, capacity, !inbound)?;
        let line = proxy.line(
            cluster_path(cluster, &format!("circuit_breakers/thresholds[0]/{field}")),
            count_text(setting, api),
        );
        Some(Item {
            severity: judged.severity,
            headline: judged.headline,
            line: line.with_note(judged.note),
            explains,
        })
    };
    if !multiplexed {
        if let Some(item) = cap(
            &breakers.max_connections,
            "max_connections",
            "CircuitBreakers.Thresholds.max_connections",
            "connections",
            "with HTTP/1.1 each stream holds a connection, so the rest wait or overflow",
            &[
                "upstream_cx_overflow",
                "circuit_breakers.default.cx_open",
                "UO",
            ],
        ) {
            fields.max_connections = Some(capacity.recommended);
            items.push(item);
        }
    }
    if let Some(item) = cap(
        &breakers.max_requests,
        "max_requests",
        "CircuitBreakers.Thresholds.max_requests",
        "concurrent requests",
        "requests beyond it are rejected with 503 (UO)",
        &["circuit_breakers.default.rq_open", "UO"],
    ) {
        fields.http2_max_requests = Some(capacity.recommended);
        items.push(item);
    }
    let pending = &breakers.max_pending_requests;
    let needed_text = if inbound {
        "one replica's max-num-seqs".to_string()
    } else {
        capacity.fleet_text()
    };
    if let Some(judged) = capacity::pending(
        pending.value,
        &scope,
        needed,
        &format!("{needed} ({needed_text})"),
    ) {
        fields.http1_max_pending_requests = Some(capacity.recommended);
        items.push(Item {
            severity: judged.severity,
            headline: judged.headline,
            line: proxy
                .line(
                    cluster_path(
                        cluster,
                        "circuit_breakers/thresholds[0]/max_pending_requests",
                    ),
                    count_text(pending, "CircuitBreakers.Thresholds.max_pending_requests"),
                )
                .with_note(judged.note),
            explains: &[
                "upstream_rq_pending_overflow",
                "circuit_breakers.default.rq_pending_open",
                "UO",
            ],
        });
    }
    let retries = &breakers.max_retries;
    if retries.value < needed {
        items.push(Item {
            severity: Severity::Info,
            headline: format!("allows {} concurrent retries on {scope}", retries.value),
            line: proxy
                .line(
                    cluster_path(cluster, "circuit_breakers/thresholds[0]/max_retries"),
                    count_text(retries, "CircuitBreakers.Thresholds.max_retries"),
                )
                .with_note("retries beyond it are not made (upstream_rq_retry_overflow)"),
            explains: &[
                "upstream_rq_retry_overflow",
                "circuit_breakers.default.rq_retry_open",
            ],
        });
    }
    if let Some(value) = cluster.http.max_requests_per_connection
        && let Some(judged) = capacity::per_connection(value, &scope)
    {
        fields.max_requests_per_connection = Some(0);
        items.push(Item {
            severity: judged.severity,
            headline: judged.headline,
            line: proxy
                .line(
                    cluster_path(
                        cluster,
                        "common_http_protocol_options/max_requests_per_connection",
                    ),
                    value.to_string(),
                )
                .with_note(judged.note),
            explains: &[],
        });
    }
    Limits { items, fields }
}

fn fix_for(
    target: &TargetEvidence,
    proxy: &Proxy,
    cluster: &ClusterConfig,
    fields: &PoolFields,
    capacity: &Capacity,
    yaml: &YamlFindings,
) -> (Option<FixText>, Vec<EvidenceLine>) {
    if *fields == PoolFields::default() {
        return (None, Vec::new());
    }
    let (host, _) = service_host(target);
    let named = cluster
        .istio_config
        .as_deref()
        .and_then(istio_object)
        .filter(|object| object.kind == "DestinationRule");
    if let Some(object) = &named {
        match yaml.iter().find(|(known, _)| known == object) {
            Some((_, Some(written))) => return fixes::as_run(written),
            Some((_, None)) => {
                return (
                    Some((
                        format!(
                            "{object} as written allows {}, yet the proxy runs these thresholds: it has not received \
                             the change, or an EnvoyFilter patches the cluster. Check `istioctl proxy-status` and \
                             `kubectl get envoyfilter -A`.",
                            capacity.fleet_text()
                        ),
                        String::new(),
                    )),
                    Vec::new(),
                );
            }
            None => {}
        }
    }
    let (summary, yaml) = fixes::destination_rule_pool(named.as_ref(), &host, fields);
    let summary = if proxy.role() == EnvoyRole::Server {
        format!(
            "These are the vLLM pods' inbound limits: a DestinationRule's pool for {host} applies there too, unless a \
             Sidecar's inboundConnectionPool sets them. {summary}"
        )
    } else {
        summary
    };
    (
        Some((
            format!(
                "{summary} Limits of at least {} leave headroom over {}.",
                capacity.recommended,
                capacity.fleet_text()
            ),
            yaml,
        )),
        Vec::new(),
    )
}
