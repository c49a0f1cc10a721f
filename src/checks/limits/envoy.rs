//! The limits each Envoy on the path runs, read from its effective config (config_dump): per
//! route `timeout`, `idle_timeout`, `max_stream_duration`, retry `per_try_timeout` and
//! `per_try_idle_timeout`; per HCM `stream_idle_timeout`, `request_timeout`,
//! `max_stream_duration`, `max_connection_duration` and the connection `idle_timeout`; per
//! cluster its circuit breakers as the concurrent requests they admit (HTTP/1.1 holds a
//! connection per stream, so `max_connections + max_pending_requests`, capped by
//! `max_requests`), `max_stream_duration` and connection `idle_timeout`; the filters that hold
//! whole bodies and the buffer limits below Envoy's 1 MiB default. A value Envoy filled in by
//! default is said so (Envoy API docs: `RouteAction.timeout` 15 s,
//! `HttpConnectionManager.stream_idle_timeout` 5 min, `CircuitBreakers.Thresholds` 1024).

use crate::checks::proxy::{
    Proxy, cluster_path, duration_text, hcm_path, listener_path, proxies, route_object, route_path,
};
use crate::evidence::TargetEvidence;
use crate::evidence::envoy::config::{
    Buffering, EnvoyDuration, HttpFilterInfo, ListenerConfig, RouteView, Setting,
};
use crate::evidence::generation::envoy_matcher_admits;
use crate::evidence::limits::{AppliesTo, Limit, LimitBasis, LimitKind, LimitValue};

/// Envoy's `per_connection_buffer_limit_bytes` when unset; a limit below it is a small one.
pub const DEFAULT_BUFFER_LIMIT: u64 = 1024 * 1024;

pub fn read(target: &TargetEvidence) -> Vec<Limit> {
    proxies(target).iter().flat_map(of_proxy).collect()
}

/// The limits one Envoy runs.
pub fn of_proxy(proxy: &Proxy) -> Vec<Limit> {
    let mut facts = Vec::new();
    for view in proxy.config().routes() {
        route(proxy, &view, &mut facts);
    }
    hcms(proxy, &mut facts);
    clusters(proxy, &mut facts);
    buffers(proxy, &mut facts);
    facts
}

fn basis<T>(setting: &Setting<T>) -> LimitBasis {
    if setting.is_default() {
        LimitBasis::Defaulted { whose: "Envoy" }
    } else {
        LimitBasis::Effective
    }
}

/// The parts of a time limit that differ from one field to the next.
struct Timed<'a> {
    kind: LimitKind,
    field: &'static str,
    value: &'a EnvoyDuration,
    path: String,
    words: String,
}

fn timed(proxy: &Proxy, applies_to: &AppliesTo, timed: Timed) -> Limit {
    Limit {
        kind: timed.kind,
        value: LimitValue::Time(timed.value.value),
        object: proxy.object.clone(),
        path: timed.path,
        field: timed.field,
        value_text: timed.value.text.clone(),
        basis: LimitBasis::Effective,
        applies_to: applies_to.clone(),
        generation: true,
        configured_by: None,
        setting: timed.words,
    }
}

/// A time limit from a setting that Envoy defaults when absent.
fn defaulted(
    proxy: &Proxy,
    applies_to: &AppliesTo,
    setting: &Setting<EnvoyDuration>,
    t: Timed,
) -> Limit {
    let field = t.field;
    Limit {
        basis: basis(setting),
        value_text: duration_text(setting, field),
        ..timed(proxy, applies_to, t)
    }
}

fn route(proxy: &Proxy, view: &RouteView, facts: &mut Vec<Limit>) {
    let route = view.route;
    let applies = AppliesTo::Route(route.name.clone().unwrap_or_default());
    let named = route_object(route);
    let mut found = vec![defaulted(
        proxy,
        &applies,
        &route.timeout,
        Timed {
            kind: LimitKind::RouteTimeout,
            field: "RouteAction.timeout",
            value: &route.timeout.value,
            path: route_path(view, "timeout"),
            words: format!("route timeout {}", route.timeout.value),
        },
    )];
    let optional = [
        (
            route.idle_timeout.as_ref(),
            LimitKind::IdleTimeout,
            "RouteAction.idle_timeout",
            "idle_timeout",
            "route idle_timeout",
        ),
        (
            route.max_stream_duration.as_ref(),
            LimitKind::MaxStreamDuration,
            "RouteAction.max_stream_duration",
            "max_stream_duration/max_stream_duration",
            "route max_stream_duration",
        ),
    ];
    // A per-try timeout bounds the first attempt too (Envoy API: `RetryPolicy.per_try_timeout`,
    // "including the initial attempt"), so it is read whatever `num_retries` says.
    let retry = route.retry.as_ref();
    let retries = [
        (
            retry.and_then(|retry| retry.per_try_timeout.as_ref()),
            LimitKind::PerTryTimeout,
            "RetryPolicy.per_try_timeout",
            "retry_policy/per_try_timeout",
            "route per_try_timeout",
        ),
        (
            retry.and_then(|retry| retry.per_try_idle_timeout.as_ref()),
            LimitKind::IdleTimeout,
            "RetryPolicy.per_try_idle_timeout",
            "retry_policy/per_try_idle_timeout",
            "route per_try_idle_timeout",
        ),
    ];
    for (value, kind, field, at, words) in optional.into_iter().chain(retries) {
        if let Some(value) = value {
            let t = Timed {
                kind,
                field,
                value,
                path: route_path(view, at),
                words: words.to_string(),
            };
            found.push(timed(proxy, &applies, t));
        }
    }
    let generation = envoy_matcher_admits(&route.matcher);
    for mut fact in found {
        fact.configured_by = named.clone();
        fact.generation = generation;
        facts.push(fact);
    }
}

fn hcms(proxy: &Proxy, facts: &mut Vec<Limit>) {
    for (listener, _, hcm) in proxy.config().hcms() {
        let applies = AppliesTo::Listener(listener.name.clone());
        let path = |field: &str| hcm_path(listener, hcm, field);
        let idle = &hcm.stream_idle_timeout;
        facts.push(defaulted(
            proxy,
            &applies,
            idle,
            Timed {
                kind: LimitKind::IdleTimeout,
                field: "HttpConnectionManager.stream_idle_timeout",
                value: &idle.value,
                path: path("stream_idle_timeout"),
                words: format!("stream_idle_timeout {}", idle.value),
            },
        ));
        facts.push(defaulted(
            proxy,
            &applies,
            &hcm.request_timeout,
            Timed {
                kind: LimitKind::RequestTimeout,
                field: "HttpConnectionManager.request_timeout",
                value: &hcm.request_timeout.value,
                path: path("request_timeout"),
                words: format!("request_timeout {}", hcm.request_timeout.value),
            },
        ));
        let optional = [
            (
                hcm.max_stream_duration.as_ref(),
                LimitKind::MaxStreamDuration,
                "common_http_protocol_options/max_stream_duration",
                "HCM max_stream_duration",
            ),
            (
                hcm.max_connection_duration.as_ref(),
                LimitKind::ConnectionLifetime,
                "common_http_protocol_options/max_connection_duration",
                "HCM max_connection_duration",
            ),
        ];
        for (value, kind, at, words) in optional {
            if let Some(value) = value {
                let t = Timed {
                    kind,
                    field: "HttpProtocolOptions (downstream)",
                    value,
                    path: path(at),
                    words: words.to_string(),
                };
                facts.push(timed(proxy, &applies, t));
            }
        }
        facts.push(defaulted(
            proxy,
            &applies,
            &hcm.idle_timeout,
            Timed {
                kind: LimitKind::ConnectionIdleTimeout,
                field: "HttpProtocolOptions.idle_timeout",
                value: &hcm.idle_timeout.value,
                path: path("common_http_protocol_options/idle_timeout"),
                words: "downstream connection idle timeout".to_string(),
            },
        ));
    }
}

fn clusters(proxy: &Proxy, facts: &mut Vec<Limit>) {
    for cluster in &proxy.config().clusters {
        let applies = AppliesTo::Cluster(cluster.name.clone());
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
            field: "CircuitBreakers.Thresholds",
            value_text: admitted.to_string(),
            basis: basis(&breakers.max_requests),
            applies_to: applies.clone(),
            generation: true,
            configured_by: None,
            setting: format!(
                "{admitted} concurrent requests on cluster {} (max_connections {}, max_pending_requests {}, max_requests {})",
                cluster.name,
                breakers.max_connections.value,
                breakers.max_pending_requests.value,
                breakers.max_requests.value
            ),
        });
        if let Some(value) = &cluster.http.max_stream_duration {
            let t = Timed {
                kind: LimitKind::MaxStreamDuration,
                field: "HttpProtocolOptions (upstream)",
                value,
                path: cluster_path(cluster, "common_http_protocol_options/max_stream_duration"),
                words: "upstream max_stream_duration".to_string(),
            };
            facts.push(timed(proxy, &applies, t));
        }
        let idle = &cluster.http.idle_timeout;
        let t = Timed {
            kind: LimitKind::ConnectionIdleTimeout,
            field: "HttpProtocolOptions.idle_timeout",
            value: &idle.value,
            path: cluster_path(cluster, "common_http_protocol_options/idle_timeout"),
            words: "upstream connection idle timeout".to_string(),
        };
        facts.push(defaulted(proxy, &applies, idle, t));
    }
}

fn buffers(proxy: &Proxy, facts: &mut Vec<Limit>) {
    let config = proxy.config();
    for listener in &config.listeners {
        let limit_bytes = listener.per_connection_buffer_limit_bytes.value;
        let applies = AppliesTo::Listener(listener.name.clone());
        let bytes = |kind, path: String, basis, setting: String, value: u64| Limit {
            kind,
            value: LimitValue::Bytes(value),
            object: proxy.object.clone(),
            path,
            field: "per_connection_buffer_limit_bytes",
            value_text: value.to_string(),
            basis,
            applies_to: applies.clone(),
            generation: true,
            configured_by: None,
            setting,
        };
        let buffer_path = listener_path(listener, "per_connection_buffer_limit_bytes");
        if let Some(filter) = holding_filter(listener) {
            facts.push(bytes(
                LimitKind::HoldsResponses,
                buffer_path.clone(),
                basis(&listener.per_connection_buffer_limit_bytes),
                format!(
                    "{} buffers bodies on listener {} (per_connection_buffer_limit_bytes {limit_bytes})",
                    filter.name, listener.name
                ),
                limit_bytes,
            ));
        }
        for filter in listener
            .filter_chains
            .iter()
            .filter_map(|chain| chain.hcm.as_ref())
            .flat_map(|hcm| hcm.buffering_filters())
        {
            if let Some(max_request_bytes) = request_limit(filter) {
                facts.push(bytes(
                    LimitKind::HoldsRequests,
                    listener_path(listener, &format!("http_filters[{}]", filter.name)),
                    LimitBasis::Effective,
                    format!(
                        "{} holds request bodies up to {max_request_bytes} bytes on listener {}",
                        filter.name, listener.name
                    ),
                    max_request_bytes,
                ));
            }
        }
        if limit_bytes < DEFAULT_BUFFER_LIMIT {
            facts.push(bytes(
                LimitKind::BufferLimit,
                buffer_path,
                LimitBasis::Effective,
                format!(
                    "per_connection_buffer_limit_bytes {limit_bytes} on listener {}",
                    listener.name
                ),
                limit_bytes,
            ));
        }
    }
    for cluster in &config.clusters {
        let limit_bytes = cluster.per_connection_buffer_limit_bytes.value;
        if limit_bytes < DEFAULT_BUFFER_LIMIT {
            facts.push(Limit {
                kind: LimitKind::BufferLimit,
                value: LimitValue::Bytes(limit_bytes),
                object: proxy.object.clone(),
                path: cluster_path(cluster, "per_connection_buffer_limit_bytes"),
                field: "per_connection_buffer_limit_bytes",
                value_text: limit_bytes.to_string(),
                basis: LimitBasis::Effective,
                applies_to: AppliesTo::Cluster(cluster.name.clone()),
                generation: true,
                configured_by: None,
                setting: format!(
                    "per_connection_buffer_limit_bytes {limit_bytes} on cluster {}",
                    cluster.name
                ),
            });
        }
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
