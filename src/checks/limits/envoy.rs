//! The limits each Envoy on the path runs, read from its effective config (config_dump): route
//! `timeout`, `max_stream_duration`, retry `per_try_timeout` (when the route retries) and the
//! timeouts that count silence; each HCM's `max_stream_duration` and `stream_idle_timeout`; each
//! cluster's circuit breakers as the concurrent requests they admit (HTTP/1.1 holds a connection
//! per stream, so `max_connections + max_pending_requests`, capped by `max_requests`); the
//! filters that hold whole bodies and the buffer limits below Envoy's 1 MiB default. A value
//! Envoy filled in by default is said so (Envoy API docs: `RouteAction.timeout` 15 s,
//! `HttpConnectionManager.stream_idle_timeout` 5 min, `CircuitBreakers.Thresholds` 1024).

use crate::checks::proxy::{Proxy, cluster_path, hcm_path, listener_path, proxies, route_path};
use crate::evidence::TargetEvidence;
use crate::evidence::envoy::config::{
    Buffering, EnvoyDuration, HttpFilterInfo, ListenerConfig, Setting,
};
use crate::evidence::limits::{AppliesTo, Limit, LimitBasis, LimitKind, LimitValue};

/// Envoy's `per_connection_buffer_limit_bytes` when unset; a limit below it is a small one.
pub const DEFAULT_BUFFER_LIMIT: u64 = 1024 * 1024;

pub fn read(target: &TargetEvidence) -> Vec<Limit> {
    let mut facts = Vec::new();
    for proxy in proxies(target) {
        routes(&proxy, &mut facts);
        hcms(&proxy, &mut facts);
        clusters(&proxy, &mut facts);
        buffers(&proxy, &mut facts);
    }
    facts
}

fn basis<T>(setting: &Setting<T>) -> LimitBasis {
    if setting.is_default() {
        LimitBasis::Defaulted { whose: "Envoy" }
    } else {
        LimitBasis::Effective
    }
}

fn time_fact(
    proxy: &Proxy,
    kind: LimitKind,
    value: &EnvoyDuration,
    path: String,
    applies_to: AppliesTo,
    setting: String,
) -> Limit {
    Limit {
        kind,
        value: LimitValue::Time(value.value),
        object: proxy.object.clone(),
        path,
        basis: LimitBasis::Effective,
        applies_to,
        setting,
    }
}

fn routes(proxy: &Proxy, facts: &mut Vec<Limit>) {
    for view in proxy.config().routes() {
        let route = view.route;
        let applies = || AppliesTo::Route(route.name.clone().unwrap_or_default());
        facts.push(Limit {
            basis: basis(&route.timeout),
            ..time_fact(
                proxy,
                LimitKind::RouteTimeout,
                &route.timeout.value,
                route_path(&view, "timeout"),
                applies(),
                format!("route timeout {}", route.timeout.value),
            )
        });
        if let Some(duration) = &route.max_stream_duration {
            facts.push(time_fact(
                proxy,
                LimitKind::MaxStreamDuration,
                duration,
                route_path(&view, "max_stream_duration"),
                applies(),
                "route max_stream_duration".to_string(),
            ));
        }
        if let Some(duration) = &route.idle_timeout {
            facts.push(time_fact(
                proxy,
                LimitKind::IdleTimeout,
                duration,
                route_path(&view, "idle_timeout"),
                applies(),
                "route idle_timeout".to_string(),
            ));
        }
        let Some(retry) = &route.retry else { continue };
        if let Some(duration) = retry
            .per_try_timeout
            .as_ref()
            .filter(|_| retry.num_retries.value > 0)
        {
            facts.push(time_fact(
                proxy,
                LimitKind::PerTryTimeout,
                duration,
                route_path(&view, "retry_policy/per_try_timeout"),
                applies(),
                "route per_try_timeout".to_string(),
            ));
        }
        if let Some(duration) = &retry.per_try_idle_timeout {
            facts.push(time_fact(
                proxy,
                LimitKind::IdleTimeout,
                duration,
                route_path(&view, "retry_policy/per_try_idle_timeout"),
                applies(),
                "route per_try_idle_timeout".to_string(),
            ));
        }
    }
}

fn hcms(proxy: &Proxy, facts: &mut Vec<Limit>) {
    for (listener, _, hcm) in proxy.config().hcms() {
        let applies = || AppliesTo::Listener(listener.name.clone());
        if let Some(duration) = &hcm.max_stream_duration {
            facts.push(time_fact(
                proxy,
                LimitKind::MaxStreamDuration,
                duration,
                hcm_path(
                    listener,
                    hcm,
                    "common_http_protocol_options/max_stream_duration",
                ),
                applies(),
                "HCM max_stream_duration".to_string(),
            ));
        }
        let idle = &hcm.stream_idle_timeout;
        facts.push(Limit {
            basis: basis(idle),
            ..time_fact(
                proxy,
                LimitKind::IdleTimeout,
                &idle.value,
                hcm_path(listener, hcm, "stream_idle_timeout"),
                applies(),
                format!("stream_idle_timeout {}", idle.value),
            )
        });
    }
}

fn clusters(proxy: &Proxy, facts: &mut Vec<Limit>) {
    for cluster in &proxy.config().clusters {
        let breakers = &cluster.circuit_breakers;
        let admitted = breakers
            .max_connections
            .value
            .saturating_add(breakers.max_pending_requests.value)
            .min(breakers.max_requests.value);
        facts.push(Limit {
            kind: LimitKind::ConcurrentRequests,
            value: LimitValue::Count(admitted),
            object: proxy.object.clone(),
            path: cluster_path(cluster, "circuit_breakers/thresholds[0]"),
            basis: basis(&breakers.max_requests),
            applies_to: AppliesTo::Cluster(cluster.name.clone()),
            setting: format!(
                "{admitted} concurrent requests on cluster {} (max_connections {}, max_pending_requests {}, max_requests {})",
                cluster.name,
                breakers.max_connections.value,
                breakers.max_pending_requests.value,
                breakers.max_requests.value
            ),
        });
    }
}

fn buffers(proxy: &Proxy, facts: &mut Vec<Limit>) {
    let config = proxy.config();
    for listener in &config.listeners {
        let limit_bytes = listener.per_connection_buffer_limit_bytes.value;
        let applies = || AppliesTo::Listener(listener.name.clone());
        if let Some(filter) = holding_filter(listener) {
            facts.push(Limit {
                kind: LimitKind::HoldsResponses,
                value: LimitValue::Bytes(limit_bytes),
                object: proxy.object.clone(),
                path: listener_path(listener, "per_connection_buffer_limit_bytes"),
                basis: basis(&listener.per_connection_buffer_limit_bytes),
                applies_to: applies(),
                setting: format!(
                    "{} buffers bodies on listener {} (per_connection_buffer_limit_bytes {limit_bytes})",
                    filter.name, listener.name
                ),
            });
        }
        for filter in listener
            .filter_chains
            .iter()
            .filter_map(|chain| chain.hcm.as_ref())
            .flat_map(|hcm| hcm.buffering_filters())
        {
            if let Some(max_request_bytes) = request_limit(filter) {
                facts.push(Limit {
                    kind: LimitKind::HoldsRequests,
                    value: LimitValue::Bytes(max_request_bytes),
                    object: proxy.object.clone(),
                    path: listener_path(listener, &format!("http_filters[{}]", filter.name)),
                    basis: LimitBasis::Effective,
                    applies_to: applies(),
                    setting: format!(
                        "{} holds request bodies up to {max_request_bytes} bytes on listener {}",
                        filter.name, listener.name
                    ),
                });
            }
        }
        if limit_bytes < DEFAULT_BUFFER_LIMIT {
            facts.push(buffer_limit(
                proxy,
                limit_bytes,
                listener_path(listener, "per_connection_buffer_limit_bytes"),
                applies(),
                format!("listener {}", listener.name),
            ));
        }
    }
    for cluster in &config.clusters {
        let limit_bytes = cluster.per_connection_buffer_limit_bytes.value;
        if limit_bytes < DEFAULT_BUFFER_LIMIT {
            facts.push(buffer_limit(
                proxy,
                limit_bytes,
                cluster_path(cluster, "per_connection_buffer_limit_bytes"),
                AppliesTo::Cluster(cluster.name.clone()),
                format!("cluster {}", cluster.name),
            ));
        }
    }
}

fn buffer_limit(
    proxy: &Proxy,
    limit_bytes: u64,
    path: String,
    applies_to: AppliesTo,
    place: String,
) -> Limit {
    Limit {
        kind: LimitKind::BufferLimit,
        value: LimitValue::Bytes(limit_bytes),
        object: proxy.object.clone(),
        path,
        basis: LimitBasis::Effective,
        applies_to,
        setting: format!("per_connection_buffer_limit_bytes {limit_bytes} on {place}"),
    }
}

/// The first enabled filter of `listener`'s HTTP chains that holds whole responses.
pub fn holding_filter(listener: &ListenerConfig) -> Option<&HttpFilterInfo> {
    listener
        .filter_chains
        .iter()
        .filter_map(|chain| chain.hcm.as_ref())
        .find_map(|hcm| {
            hcm.buffering_filters()
                .find(|filter| holds_responses(filter))
        })
}

/// Whether an HTTP filter may hold a whole response (the buffer filter and ext_authz hold
/// requests only).
fn holds_responses(filter: &HttpFilterInfo) -> bool {
    match &filter.buffering {
        Some(Buffering::Lua | Buffering::Wasm) => true,
        Some(Buffering::ExtProcBuffered {
            response_body_mode, ..
        }) => response_body_mode
            .as_deref()
            .is_some_and(|mode| mode.contains("BUFFERED")),
        _ => false,
    }
}

/// The request body size over which a filter refuses (413): an enabled buffer filter, or
/// ext_authz sending the body without `allow_partial_message`.
fn request_limit(filter: &HttpFilterInfo) -> Option<u64> {
    match &filter.buffering {
        Some(Buffering::Buffer { max_request_bytes }) => *max_request_bytes,
        Some(Buffering::ExtAuthzWithBody {
            max_request_bytes,
            allow_partial_message: false,
        }) => *max_request_bytes,
        _ => None,
    }
}
