//! The limits Istio's objects set, as written: VirtualService `http[].timeout` and
//! `retries.perTryTimeout` (unless `attempts: 0`), on the routes that reach the target as istiod
//! runs them (a delegate's route in its root's place); DestinationRule `connectionPool` for each
//! cluster callers use to reach the workload, resolved as istiod resolves it (`portLevelSettings`
//! and subsets: `evidence::resolve::policy`), and a Sidecar's inbound pool. Only values > 0 are
//! applied (pilot `cluster_traffic_policy.go`); with HTTP/1.1 each stream holds a connection, so
//! `maxConnections + http1MaxPendingRequests` (capped by `http2MaxRequests`) is what a pool admits.

use crate::checks::fixes::{IstioKind, istio_ref};
use crate::checks::target::{carries_generation, run_route_reaches, upstream_clusters};
use crate::evidence::TargetEvidence;
use crate::evidence::limits::{AppliesTo, Limit, LimitBasis, LimitKind, LimitValue};
use crate::evidence::objects::ConnectionPool;
use crate::evidence::resolve::delegation;
use crate::evidence::resolve::policy::{effective_policy, pool_limits, sidecar_inbound_pool};
use crate::units::duration;

pub fn read(target: &TargetEvidence) -> Vec<Limit> {
    let mut facts = route_deadlines(target);
    facts.extend(pools(target));
    facts
}

fn route_deadlines(target: &TargetEvidence) -> Vec<Limit> {
    let mut facts: Vec<Limit> = Vec::new();
    for run in delegation::run_routes(&target.mesh.virtual_services)
        .iter()
        .filter(|run| run_route_reaches(run, target))
    {
        let timeout = run
            .timeout()
            .map(|(at, value)| (at, "timeout", value, LimitKind::RouteTimeout));
        let per_try = run
            .retries()
            .filter(|(_, retries)| retries.attempts != Some(0))
            .and_then(|(at, retries)| {
                let value = retries.per_try_timeout.as_deref()?;
                Some((at, "retries/perTryTimeout", value, LimitKind::PerTryTimeout))
            });
        let generation = carries_generation(run);
        for (at, field, text, kind) in timeout.into_iter().chain(per_try) {
            let Ok(value) = duration::parse(text) else {
                continue;
            };
            let fact = Limit {
                kind,
                value: LimitValue::Time(value),
                object: istio_ref(IstioKind::VirtualService, at.virtual_service),
                path: format!("spec/http[{}]/{field}", at.index),
                field: match kind {
                    LimitKind::PerTryTimeout => "VirtualService http[].retries.perTryTimeout",
                    _ => "VirtualService http[].timeout",
                },
                value_text: text.to_string(),
                basis: LimitBasis::Written,
                applies_to: AppliesTo::Route(format!("http[{}]", at.index)),
                generation,
                configured_by: None,
                setting: text.to_string(),
            };
            // A root route's value runs under each delegate route that leaves it unset: once.
            if !facts.contains(&fact) {
                facts.push(fact);
            }
        }
    }
    facts
}

fn pools(target: &TargetEvidence) -> Vec<Limit> {
    let mut facts = Vec::new();
    for cluster in upstream_clusters(target) {
        let Some(rule) = cluster.rule else { continue };
        let policy = effective_policy(rule, cluster.port, cluster.subset.as_deref());
        let Some((pool, path)) = policy.connection_pool else {
            continue;
        };
        let object = istio_ref(IstioKind::DestinationRule, rule);
        facts.extend(admitted(pool, &path).map(|value| Limit {
            kind: LimitKind::ConcurrentRequests,
            value: LimitValue::Count(value),
            object,
            path,
            field: "DestinationRule connectionPool",
            value_text: value.to_string(),
            basis: LimitBasis::Written,
            applies_to: AppliesTo::Cluster(cluster.name()),
            generation: true,
            configured_by: None,
            setting: format!("{value} concurrent requests on {}", cluster.name()),
        }));
    }
    let port = target.workload.vllm.port;
    for sidecar in &target.mesh.sidecars {
        let Some((pool, path)) = sidecar_inbound_pool(sidecar, port) else {
            continue;
        };
        let object = istio_ref(IstioKind::Sidecar, sidecar);
        let cluster = format!("inbound|{port}||");
        facts.extend(admitted(pool, &path).map(|value| Limit {
            kind: LimitKind::ConcurrentRequests,
            value: LimitValue::Count(value),
            object,
            path,
            field: "Sidecar inboundConnectionPool",
            value_text: value.to_string(),
            basis: LimitBasis::Written,
            applies_to: AppliesTo::Cluster(cluster.clone()),
            generation: true,
            configured_by: None,
            setting: format!("{value} concurrent requests on {cluster}"),
        }));
    }
    facts
}

/// The concurrent requests a pool admits, when it caps them at all.
fn admitted(pool: &ConnectionPool, path: &str) -> Option<u64> {
    let limits = pool_limits(pool, path);
    let count = |value: Option<i64>| value.and_then(|value| u64::try_from(value).ok());
    let connections = count(limits.max_connections.map(|found| found.value));
    let pending = count(limits.http1_max_pending_requests.map(|found| found.value));
    let requests = count(limits.http2_max_requests.map(|found| found.value));
    let by_connections = connections.map(|value| value.saturating_add(pending.unwrap_or(0)));
    match (by_connections, requests) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
