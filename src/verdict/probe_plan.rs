//! Which probe runs `diagnose --probe` makes for a target, read from its evidence: a cold first
//! request (first, before any other run warms the pod), a stream just longer than the shortest
//! timeout found, a burst just above the smallest pool limit, and a large body sized over the
//! buffer limit where something buffers. Pure: evidence in, runs out.

use crate::checks::proxy::proxies;
use crate::evidence::TargetEvidence;
use crate::evidence::probe::{PlannedRun, ProbeMode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// The shortest stream worth running (also the stream run when no timeout was found).
pub const MIN_STREAM: Duration = Duration::from_secs(5);
/// The longest stream a diagnosis runs (a little over Istio's and Envoy's 5 minute defaults).
pub const MAX_STREAM: Duration = Duration::from_secs(330);
/// The most streams one burst opens per path.
pub const MAX_BURST: u32 = 64;
/// Bounds of the large body's size in tokens.
pub const LARGE_MIN_TOKENS: u32 = 256;
pub const LARGE_MAX_TOKENS: u32 = 8192;
/// Fewest bytes a token adds to a non-streaming body (English text averages about 4), so a body
/// sized with it goes over the limit for real.
const BODY_BYTES_PER_TOKEN: u64 = 3;
/// The largest prompt a probe sends.
pub const MAX_PROMPT_BYTES: u64 = 8 * 1024 * 1024;
/// Seconds a large prompt is estimated to take per path.
const LARGE_PROMPT_ESTIMATE_S: f64 = 5.0;
/// Token rate assumed for the large body's cost estimate (one vLLM sequence).
const ASSUMED_TOKENS_PER_SECOND: f64 = 50.0;
/// A buffer limit below Envoy's 1 MiB default is a small one.
const DEFAULT_BUFFER_LIMIT: u64 = 1024 * 1024;
/// Both paths are probed.
const PATHS: u32 = 2;
/// Seconds a burst, a large body and a cold pair are estimated to take per path.
const BURST_ESTIMATE_S: f64 = 10.0;
const LARGE_OVERHEAD_S: f64 = 5.0;
const COLD_ESTIMATE_S: f64 = 3.0;
const WARMUP_ESTIMATE_S: f64 = 2.0;

/// A limit found in the evidence, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    pub value: T,
    pub what: String,
}

/// A timeout that can cut a stream, and whether it counts silence rather than the whole stream.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTimeout {
    pub found: Found<Duration>,
    pub idle: bool,
}

/// Where a body is held in memory on the path, and the limit the held body must stay under.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferPoint {
    pub what: String,
    pub limit_bytes: u64,
}

/// The runs `target`'s evidence calls for, in the order they run.
pub fn plan(target: &TargetEvidence) -> Vec<PlannedRun> {
    plan_at(target, None)
}

/// [`plan`], with the pods' ages as of `gathered_at` named in the cold pair's reason.
pub fn plan_at(target: &TargetEvidence, gathered_at: Option<&Time>) -> Vec<PlannedRun> {
    let mut cold_reason =
        "a first request on a fresh connection pays the handshakes and warm-up".to_string();
    if let Some(youngest) = youngest_pod(target, gathered_at) {
        cold_reason.push_str(&format!("; the youngest ready pod is {youngest}"));
    }
    // Any other run would warm the pod, so the cold pair goes first.
    let mut runs = vec![PlannedRun {
        mode: ProbeMode::Cold,
        reason: cold_reason,
        cost_s: COLD_ESTIMATE_S * f64::from(PATHS),
        requests: 2 * PATHS,
    }];
    let timeout = shortest_timeout(target);
    let duration = stream_duration(timeout.as_ref().map(|timeout| timeout.found.value));
    runs.push(PlannedRun {
        mode: ProbeMode::Stream {
            duration,
            timeout_s: timeout
                .as_ref()
                .map(|timeout| timeout.found.value.as_secs_f64()),
            idle: timeout.as_ref().is_some_and(|timeout| timeout.idle),
        },
        reason: match &timeout {
            Some(timeout) => format!("the shortest timeout found is {}", timeout.found.what),
            None => "no timeout found: a short stream compares the paths".to_string(),
        },
        // A short warm-up on the first path measures the token rate that sizes the stream.
        cost_s: duration.as_secs_f64() * f64::from(PATHS) + WARMUP_ESTIMATE_S,
        requests: PATHS + 1,
    });
    if let Some(limit) = smallest_pool_limit(target)
        && limit.value < u64::from(MAX_BURST)
    {
        let streams = burst_size(limit.value);
        runs.push(PlannedRun {
            mode: ProbeMode::Burst { streams },
            reason: format!("the smallest pool limit found is {}", limit.what),
            cost_s: BURST_ESTIMATE_S * f64::from(PATHS),
            requests: streams * PATHS,
        });
    }
    if let Some(point) = buffering(target) {
        let tokens = large_tokens(point.limit_bytes);
        let reach = if u64::from(tokens) * BODY_BYTES_PER_TOKEN > point.limit_bytes {
            format!(
                "{tokens} tokens make a body over its {} byte limit",
                point.limit_bytes
            )
        } else {
            format!(
                "{tokens} tokens (the most a probe asks) may stay under its {} byte limit: a whole body there proves nothing",
                point.limit_bytes
            )
        };
        runs.push(PlannedRun {
            mode: ProbeMode::Large {
                tokens: Some(tokens),
            },
            reason: format!("{}; {reach}", point.what),
            cost_s: (f64::from(tokens) / ASSUMED_TOKENS_PER_SECOND + LARGE_OVERHEAD_S)
                * f64::from(PATHS),
            requests: PATHS,
        });
    }
    if let Some(point) = request_buffering(target) {
        let bytes = point
            .limit_bytes
            .saturating_add((point.limit_bytes / 4).max(1024))
            .min(MAX_PROMPT_BYTES);
        runs.push(PlannedRun {
            mode: ProbeMode::LargePrompt { bytes },
            reason: format!("{}; a {bytes} byte prompt goes over it", point.what),
            cost_s: LARGE_PROMPT_ESTIMATE_S * f64::from(PATHS),
            requests: PATHS,
        });
    }
    runs
}

/// `vllm-7c9d-x2x7k, 4m10s old (1 restart)`: the ready pod that started last.
fn youngest_pod(target: &TargetEvidence, gathered_at: Option<&Time>) -> Option<String> {
    let (pod, age) = target
        .live_pods
        .iter()
        .filter(|pod| pod.ready)
        .filter_map(|pod| pod.age(gathered_at).map(|age| (pod, age)))
        .min_by_key(|(_, age)| *age)?;
    let restarts = match pod.restarts {
        0 => String::new(),
        1 => " (1 restart)".to_string(),
        n => format!(" ({n} restarts)"),
    };
    Some(format!(
        "{}, {} old{restarts}",
        pod.name,
        crate::units::duration::age_text(age.as_secs())
    ))
}

/// Tokens for a body a quarter over `limit_bytes`, within the probe's bounds.
pub fn large_tokens(limit_bytes: u64) -> u32 {
    let over = limit_bytes.saturating_add(limit_bytes / 4);
    let tokens = over.div_ceil(BODY_BYTES_PER_TOKEN);
    u32::try_from(tokens)
        .unwrap_or(LARGE_MAX_TOKENS)
        .clamp(LARGE_MIN_TOKENS, LARGE_MAX_TOKENS)
}

/// `4 probe runs (stream 3s, burst x4, large, cold), about 40 s and 16 requests`
pub fn describe_cost(runs: &[PlannedRun]) -> String {
    let seconds: f64 = runs.iter().map(|run| run.cost_s).sum();
    let requests: u32 = runs.iter().map(|run| run.requests).sum();
    let names: Vec<String> = runs
        .iter()
        .map(|run| match &run.mode {
            ProbeMode::Stream { duration, .. } => {
                format!("stream {}", crate::units::duration::display(*duration))
            }
            ProbeMode::Burst { streams } => format!("burst x{streams}"),
            ProbeMode::Large {
                tokens: Some(tokens),
            } => format!("large {tokens} tokens"),
            ProbeMode::LargePrompt { bytes } => format!("large prompt {bytes} bytes"),
            other => other.name().to_string(),
        })
        .collect();
    format!(
        "{} probe runs ({}), about {:.0} s and {} requests",
        runs.len(),
        names.join(", "),
        seconds.ceil(),
        requests
    )
}

/// Just longer than `timeout` (10% and at least 1 s more), between the short default and the cap.
pub fn stream_duration(timeout: Option<Duration>) -> Duration {
    let Some(timeout) = timeout else {
        return MIN_STREAM;
    };
    let margin = (timeout / 10).max(Duration::from_secs(1));
    (timeout + margin).clamp(MIN_STREAM, MAX_STREAM)
}

/// Just above `limit` concurrent streams (a quarter and at least 2 more), capped.
pub fn burst_size(limit: u64) -> u32 {
    let above = limit.saturating_add((limit / 4).max(2));
    u32::try_from(above.min(u64::from(MAX_BURST))).unwrap_or(MAX_BURST)
}

/// The shortest enabled timeout that can cut a stream: route timeouts, idle and max-duration
/// timeouts of routes and HCMs on the Envoys of the path, and VirtualService `http[].timeout`.
pub fn shortest_timeout(target: &TargetEvidence) -> Option<FoundTimeout> {
    let mut found: Vec<FoundTimeout> = Vec::new();
    let mut add = |value: Option<Duration>, what: String, idle: bool| {
        if let Some(value) = value.filter(|value| !value.is_zero()) {
            found.push(FoundTimeout {
                found: Found { value, what },
                idle,
            });
        }
    };
    for proxy in proxies(target) {
        let envoy = proxy.object.to_string();
        let config = proxy.config();
        for route in config
            .route_configs
            .iter()
            .flat_map(|config| &config.virtual_hosts)
            .flat_map(|host| &host.routes)
        {
            add(
                Some(route.timeout.value.value),
                format!("route timeout {} on {envoy}", route.timeout.value),
                false,
            );
            add(
                route.idle_timeout.as_ref().map(|d| d.value),
                format!("route idle_timeout on {envoy}"),
                true,
            );
            add(
                route.max_stream_duration.as_ref().map(|d| d.value),
                format!("route max_stream_duration on {envoy}"),
                false,
            );
        }
        for hcm in config
            .listeners
            .iter()
            .flat_map(|listener| &listener.filter_chains)
            .filter_map(|chain| chain.hcm.as_ref())
        {
            add(
                Some(hcm.stream_idle_timeout.value.value),
                format!(
                    "stream_idle_timeout {} on {envoy}",
                    hcm.stream_idle_timeout.value
                ),
                true,
            );
            add(
                Some(hcm.request_timeout.value.value),
                format!("request_timeout {} on {envoy}", hcm.request_timeout.value),
                false,
            );
            add(
                hcm.max_stream_duration.as_ref().map(|d| d.value),
                format!("HCM max_stream_duration on {envoy}"),
                false,
            );
        }
    }
    for service in &target.mesh.virtual_services {
        for (index, route) in service.spec.http.iter().enumerate() {
            let parsed = route
                .timeout
                .as_deref()
                .and_then(|text| crate::units::duration::parse(text).ok());
            add(
                parsed,
                format!(
                    "VirtualService {}/{} spec/http[{index}]/timeout {}",
                    service.metadata.namespace.as_deref().unwrap_or_default(),
                    service.metadata.name.as_deref().unwrap_or_default(),
                    route.timeout.as_deref().unwrap_or_default()
                ),
                false,
            );
        }
    }
    found.into_iter().min_by_key(|timeout| timeout.found.value)
}

/// The fewest concurrent requests a pool on the path admits: per Envoy cluster, the smaller of
/// `max_requests` and `max_connections + max_pending_requests` (HTTP/1.1 holds a connection per
/// stream); per DestinationRule, the same from `connectionPool`.
pub fn smallest_pool_limit(target: &TargetEvidence) -> Option<Found<u64>> {
    let mut found: Vec<Found<u64>> = Vec::new();
    for proxy in proxies(target) {
        for cluster in &proxy.config().clusters {
            let breakers = &cluster.circuit_breakers;
            let admitted = breakers
                .max_connections
                .value
                .saturating_add(breakers.max_pending_requests.value)
                .min(breakers.max_requests.value);
            found.push(Found {
                value: admitted,
                what: format!(
                    "{admitted} concurrent requests on {} cluster {} (max_connections {}, max_pending_requests {}, max_requests {})",
                    proxy.object,
                    cluster.name,
                    breakers.max_connections.value,
                    breakers.max_pending_requests.value,
                    breakers.max_requests.value
                ),
            });
        }
    }
    for rule in &target.mesh.destination_rules {
        let Some(pool) = rule
            .spec
            .traffic_policy
            .as_ref()
            .and_then(|policy| policy.connection_pool.as_ref())
        else {
            continue;
        };
        let positive =
            |value: Option<i64>| value.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
        let connections = positive(pool.tcp.as_ref().and_then(|tcp| tcp.max_connections));
        let pending = positive(
            pool.http
                .as_ref()
                .and_then(|http| http.http1_max_pending_requests),
        );
        let requests = positive(pool.http.as_ref().and_then(|http| http.http2_max_requests));
        let by_connections = connections.map(|c| c.saturating_add(pending.unwrap_or(0)));
        let admitted = match (by_connections, requests) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(value) = admitted {
            found.push(Found {
                value,
                what: format!(
                    "{value} concurrent requests by DestinationRule {}/{} connectionPool",
                    rule.metadata.namespace.as_deref().unwrap_or_default(),
                    rule.metadata.name.as_deref().unwrap_or_default()
                ),
            });
        }
    }
    found.into_iter().min_by_key(|found| found.value)
}

/// Where a response body is held in memory on the path: an enabled filter that holds responses
/// (held against its listener's buffer limit), or a listener or cluster buffer limit below
/// Envoy's 1 MiB default.
pub fn buffering(target: &TargetEvidence) -> Option<BufferPoint> {
    for proxy in proxies(target) {
        let config = proxy.config();
        for listener in &config.listeners {
            let limit_bytes = listener.per_connection_buffer_limit_bytes.value;
            for hcm in listener
                .filter_chains
                .iter()
                .filter_map(|chain| chain.hcm.as_ref())
            {
                if let Some(filter) = hcm
                    .buffering_filters()
                    .find(|filter| holds_responses(filter))
                {
                    return Some(BufferPoint {
                        what: format!(
                            "{} buffers bodies on {} listener {} (per_connection_buffer_limit_bytes {limit_bytes})",
                            filter.name, proxy.object, listener.name
                        ),
                        limit_bytes,
                    });
                }
            }
            let place = format!("{} listener {}", proxy.object, listener.name);
            if let Some(point) = small_limit(limit_bytes, &place) {
                return Some(point);
            }
        }
        for cluster in &config.clusters {
            let place = format!("{} cluster {}", proxy.object, cluster.name);
            if let Some(point) =
                small_limit(cluster.per_connection_buffer_limit_bytes.value, &place)
            {
                return Some(point);
            }
        }
    }
    None
}

/// Whether an HTTP filter may hold a whole response (the buffer filter and ext_authz hold
/// requests only).
fn holds_responses(filter: &crate::evidence::envoy::config::HttpFilterInfo) -> bool {
    use crate::evidence::envoy::config::Buffering;
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

/// Where a whole request body is held and refused (413) over a limit: an enabled buffer filter,
/// or ext_authz sending the body without `allow_partial_message`.
pub fn request_buffering(target: &TargetEvidence) -> Option<BufferPoint> {
    use crate::evidence::envoy::config::Buffering;
    for proxy in proxies(target) {
        for listener in &proxy.config().listeners {
            for hcm in listener
                .filter_chains
                .iter()
                .filter_map(|chain| chain.hcm.as_ref())
            {
                for filter in hcm.buffering_filters() {
                    let limit = match &filter.buffering {
                        Some(Buffering::Buffer { max_request_bytes }) => *max_request_bytes,
                        Some(Buffering::ExtAuthzWithBody {
                            max_request_bytes,
                            allow_partial_message: false,
                        }) => *max_request_bytes,
                        _ => None,
                    };
                    if let Some(limit_bytes) = limit {
                        return Some(BufferPoint {
                            what: format!(
                                "{} holds request bodies up to {limit_bytes} bytes on {} listener {}",
                                filter.name, proxy.object, listener.name
                            ),
                            limit_bytes,
                        });
                    }
                }
            }
        }
    }
    None
}

/// A buffer limit below Envoy's default, at `place`.
fn small_limit(limit_bytes: u64, place: &str) -> Option<BufferPoint> {
    (limit_bytes < DEFAULT_BUFFER_LIMIT).then(|| BufferPoint {
        what: format!("per_connection_buffer_limit_bytes {limit_bytes} on {place}"),
        limit_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{endpoint_target, scenario_pair};

    fn modes(runs: &[PlannedRun]) -> Vec<&str> {
        runs.iter().map(|run| run.mode.name()).collect()
    }

    #[test]
    fn a_stream_outlasts_the_shortest_timeout_within_bounds() {
        assert_eq!(stream_duration(None), MIN_STREAM);
        assert_eq!(stream_duration(Some(Duration::from_secs(2))), MIN_STREAM);
        assert_eq!(
            stream_duration(Some(Duration::from_secs(15))),
            Duration::from_millis(16_500)
        );
        assert_eq!(stream_duration(Some(Duration::from_secs(300))), MAX_STREAM);
        assert_eq!(stream_duration(Some(Duration::from_secs(3600))), MAX_STREAM);
    }

    #[test]
    fn a_burst_goes_just_above_the_limit_and_stays_capped() {
        assert_eq!(burst_size(1), 3);
        assert_eq!(burst_size(2), 4);
        assert_eq!(burst_size(40), 50);
        assert_eq!(burst_size(60), MAX_BURST);
        assert_eq!(burst_size(u64::MAX), MAX_BURST);
    }

    #[test]
    fn the_route_timeout_of_the_pair_sizes_the_stream() {
        let target = endpoint_target(scenario_pair("route-timeout"));
        let timeout = shortest_timeout(&target).unwrap();
        assert!(!timeout.idle);
        let timeout = timeout.found;
        assert!(timeout.value <= Duration::from_secs(2), "{timeout:?}");
        assert!(timeout.what.contains("route timeout"), "{}", timeout.what);
        let runs = plan(&target);
        assert_eq!(modes(&runs), ["cold", "stream"]);
        let ProbeMode::Stream {
            duration,
            timeout_s,
            idle,
        } = &runs[1].mode
        else {
            panic!("{runs:?}")
        };
        assert!(*duration > timeout.value);
        assert_eq!(*timeout_s, Some(timeout.value.as_secs_f64()));
        assert!(!idle);
    }

    #[test]
    fn a_stream_idle_timeout_is_marked_idle() {
        let target = endpoint_target(scenario_pair("stream-idle-timeout"));
        let timeout = shortest_timeout(&target).unwrap();
        assert!(timeout.idle, "{timeout:?}");
        assert!(
            timeout.found.what.contains("stream_idle_timeout"),
            "{}",
            timeout.found.what
        );
        let runs = plan(&target);
        assert!(
            matches!(runs[1].mode, ProbeMode::Stream { idle: true, .. }),
            "{runs:?}"
        );
    }

    #[test]
    fn a_circuit_breaker_adds_a_burst_above_its_limit() {
        let target = endpoint_target(scenario_pair("circuit-breaker"));
        let limit = smallest_pool_limit(&target).unwrap();
        let runs = plan(&target);
        assert_eq!(modes(&runs), ["cold", "stream", "burst"]);
        let ProbeMode::Burst { streams } = runs[2].mode else {
            panic!("{runs:?}")
        };
        assert!(u64::from(streams) > limit.value, "{streams} vs {limit:?}");
        assert_eq!(runs[2].requests, streams * 2);
    }

    #[test]
    fn a_buffering_filter_adds_a_large_body() {
        let target = endpoint_target(scenario_pair("buffer-filter"));
        let runs = plan(&target);
        assert!(modes(&runs).contains(&"large"), "{runs:?}");
    }

    #[test]
    fn a_buffer_filter_adds_a_prompt_over_its_request_limit() {
        let target = endpoint_target(scenario_pair("buffer-filter"));
        let point = request_buffering(&target);
        let runs = plan(&target);
        match point {
            Some(point) => {
                let prompt = runs
                    .iter()
                    .find_map(|run| match run.mode {
                        ProbeMode::LargePrompt { bytes } => Some(bytes),
                        _ => None,
                    })
                    .unwrap_or_else(|| panic!("{runs:?}"));
                assert!(prompt > point.limit_bytes, "{prompt} vs {point:?}");
            }
            None => assert!(!modes(&runs).contains(&"large-prompt"), "{runs:?}"),
        }
        assert!(request_buffering(&endpoint_target(scenario_pair("healthy"))).is_none());
    }

    #[test]
    fn a_large_body_goes_over_the_buffer_limit_found() {
        let tokens = large_tokens(16 * 1024);
        assert!(
            u64::from(tokens) * BODY_BYTES_PER_TOKEN > 16 * 1024,
            "{tokens}"
        );
        assert!(tokens < LARGE_MAX_TOKENS);
        assert_eq!(large_tokens(10), LARGE_MIN_TOKENS);
        assert_eq!(large_tokens(1024 * 1024), LARGE_MAX_TOKENS);
        assert_eq!(large_tokens(u64::MAX), LARGE_MAX_TOKENS);
    }

    #[test]
    fn a_healthy_pair_gets_the_short_stream_and_the_cold_pair_only() {
        let target = endpoint_target(scenario_pair("healthy"));
        let runs = plan(&target);
        assert_eq!(modes(&runs), ["cold", "stream"]);
        let cost = describe_cost(&runs);
        assert!(cost.starts_with("2 probe runs (cold, stream"), "{cost}");
        assert!(cost.contains("7 requests"), "{cost}");
    }

    #[test]
    fn runs_saved_before_large_had_a_size_still_read() {
        let old: ProbeMode = serde_json::from_str(r#"{"kind": "large"}"#).unwrap();
        assert_eq!(old, ProbeMode::Large { tokens: None });
        let stream: ProbeMode =
            serde_json::from_str(r#"{"kind": "stream", "duration": "5s", "timeoutS": 2.0}"#)
                .unwrap();
        assert!(matches!(stream, ProbeMode::Stream { idle: false, .. }));
    }

    #[test]
    fn the_cold_pair_names_the_youngest_ready_pod() {
        let mut target = endpoint_target(scenario_pair("healthy"));
        let pod =
            |name: &str, created: &str, ready: bool, restarts: u32| crate::evidence::LivePod {
                name: name.to_string(),
                node: None,
                phase: Some("Running".to_string()),
                ready,
                restarts,
                created: Some(Time(created.parse().unwrap())),
                proxy: None,
                sidecar_status: true,
            };
        target.live_pods = vec![
            pod("vllm-old", "2026-11-20T10:00:00Z", true, 0),
            pod("vllm-new", "2026-11-25T09:56:00Z", true, 1),
            pod("vllm-starting", "2026-11-25T09:59:00Z", false, 0),
        ];
        let now = Time("2026-11-25T10:00:10Z".parse().unwrap());
        let runs = plan_at(&target, Some(&now));
        assert!(
            runs[0]
                .reason
                .ends_with("; the youngest ready pod is vllm-new, 4m10s old (1 restart)"),
            "{}",
            runs[0].reason
        );
        assert!(!plan(&target)[0].reason.contains("youngest"));
    }

    #[test]
    fn planned_runs_round_trip_through_json() {
        let runs = plan(&endpoint_target(scenario_pair("circuit-breaker")));
        let text = serde_json::to_string(&runs).unwrap();
        let back: Vec<PlannedRun> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, runs);
    }
}
