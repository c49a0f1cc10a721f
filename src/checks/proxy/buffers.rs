//! Buffering as the proxies run it: the HTTP filters on the path that hold bodies in memory
//! (`envoy.filters.http.buffer` with `max_request_bytes`, ext_authz `with_request_body`, ext_proc
//! in a BUFFERED mode, Lua and wasm, which may), per-route overrides that turn them off, and the
//! listener's and cluster's `per_connection_buffer_limit_bytes`, against the largest body
//! (`--max-model-len` × 4 bytes). For an Endpoint target max-model-len is unknown: that is said,
//! and a filter that holds whole prompts is judged by its presence. Critical with runtime basis
//! when `downstream_rq_too_large`, `rs_too_large` or `retry_or_shadow_abandoned` moved, or
//! requests were answered 413.

use super::fixes::{self, FixText};
use super::observed::{self, Happened, Item};
use super::{Proxy, cluster_path, hcm_path, listener_path};
use crate::checks::buffer_limit::{Estimate, estimate, raised_limit};
use crate::checks::{Finding, Severity};
use crate::evidence::envoy::config::{
    Buffering, EffectiveConfig, HcmConfig, HcmRoutes, HttpFilterInfo, ListenerConfig, RouteEntry,
    RouteSource,
};
use crate::evidence::{CheckId, TargetEvidence};
use crate::units::quantity::display_memory;
use serde_json::json;

const MODE: CheckId = CheckId::BufferLimit;
/// Counters whose rise means a body was over a buffer limit.
pub const TOO_LARGE_COUNTERS: [&str; 3] = [
    "downstream_rq_too_large",
    "rs_too_large",
    "retry_or_shadow_abandoned",
];
/// Requests answered 413 (Payload Too Large).
pub const TOO_LARGE_CODES: [&str; 1] = ["413"];
const MIB: u64 = 1 << 20;

/// The kind of a buffering filter, as both the YAML and the proxy name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    Buffer,
    ExtAuthz,
    ExtProc,
    Lua,
    Wasm,
}

impl FilterKind {
    pub fn of(buffering: &Buffering) -> FilterKind {
        match buffering {
            Buffering::Buffer { .. } => FilterKind::Buffer,
            Buffering::ExtAuthzWithBody { .. } => FilterKind::ExtAuthz,
            Buffering::ExtProcBuffered { .. } => FilterKind::ExtProc,
            Buffering::Lua => FilterKind::Lua,
            Buffering::Wasm => FilterKind::Wasm,
        }
    }
}

/// A finding the YAML check made about an EnvoyFilter patch that adds a buffering filter, with
/// the filter's kind and the patch's context (`GATEWAY`, `SIDECAR_INBOUND`, …; `None`: any).
#[derive(Debug, Clone)]
pub struct WrittenFilter {
    pub kind: FilterKind,
    pub context: Option<String>,
    pub object: crate::evidence::ObjectRef,
    pub finding: Finding,
}

impl WrittenFilter {
    /// Whether the patch's context reaches `proxy`.
    pub fn reaches(&self, proxy: &Proxy) -> bool {
        match self.context.as_deref() {
            None | Some("ANY") => true,
            Some(context) => context == fixes::context(proxy),
        }
    }
}

/// The findings from every proxy on the path, and which of the YAML findings they cover (by
/// index into `written`): a covered one gives way to the proxy's finding, which carries its
/// lines and fix.
pub fn findings(target: &TargetEvidence, written: &[WrittenFilter]) -> (Vec<Finding>, Vec<usize>) {
    let estimate = target.workload.spec_known().then(|| estimate(target));
    let mut findings = Vec::new();
    let mut covered = Vec::new();
    for proxy in super::proxies(target) {
        let filters = filters_on_path(proxy.config());
        let mut absorbed = Vec::new();
        for (index, written) in written.iter().enumerate() {
            if written.reaches(&proxy)
                && filters.iter().any(|(_, _, filter)| {
                    filter.buffering.as_ref().map(FilterKind::of) == Some(written.kind)
                })
            {
                absorbed.push(index);
            }
        }
        if let Some(finding) = proxy_finding(
            target,
            &proxy,
            &filters,
            estimate.as_ref(),
            written,
            &absorbed,
        ) {
            findings.push(finding);
        }
        covered.extend(absorbed);
    }
    covered.sort_unstable();
    covered.dedup();
    (findings, covered)
}

/// The buffering filters active on the path, with the listener and HCM they sit in.
pub fn filters_on_path(
    config: &EffectiveConfig,
) -> Vec<(&ListenerConfig, &HcmConfig, &HttpFilterInfo)> {
    let mut found = Vec::new();
    for (listener, _, hcm) in config.hcms() {
        let routes = hcm_routes(config, listener, hcm);
        for filter in &hcm.http_filters {
            if filter.buffering.is_none() {
                continue;
            }
            let overridden = |route: &&RouteEntry| {
                route
                    .filter_overrides
                    .iter()
                    .find(|entry| entry.filter == filter.name)
                    .map(|entry| entry.disabled)
            };
            let active = if filter.disabled {
                routes.iter().any(|route| overridden(route) == Some(false))
            } else {
                routes.is_empty() || routes.iter().any(|route| overridden(route) != Some(true))
            };
            // One HCM is written once per filter chain (Istio's TLS and raw_buffer chains for
            // one port): the same filter of the same HCM is listed once.
            let listed = found.iter().any(
                |(seen, seen_hcm, seen_filter): &(&ListenerConfig, &HcmConfig, &HttpFilterInfo)| {
                    seen.name == listener.name
                        && seen_hcm.stat_prefix == hcm.stat_prefix
                        && seen_filter.name == filter.name
                },
            );
            if active && !listed {
                found.push((listener, hcm, filter));
            }
        }
    }
    found
}

/// The routes on the path that an HCM serves.
fn hcm_routes<'a>(
    config: &'a EffectiveConfig,
    listener: &ListenerConfig,
    hcm: &HcmConfig,
) -> Vec<&'a RouteEntry> {
    config
        .route_configs
        .iter()
        .filter(|route_config| match (&hcm.routes, &route_config.source) {
            (HcmRoutes::Rds(name), RouteSource::Rds { .. }) => route_config.name == *name,
            (
                HcmRoutes::Inline(name),
                RouteSource::Inline {
                    listener: owner,
                    stat_prefix,
                },
            ) => {
                route_config.name == *name
                    && *owner == listener.name
                    && *stat_prefix == hcm.stat_prefix
            }
            _ => false,
        })
        .flat_map(|route_config| route_config.virtual_hosts.iter())
        .flat_map(|virtual_host| virtual_host.routes.iter())
        .collect()
}

/// The smallest per-route `max_request_bytes` override of a buffer filter on the path.
fn route_limit(
    config: &EffectiveConfig,
    listener: &ListenerConfig,
    hcm: &HcmConfig,
    filter: &str,
) -> Option<u64> {
    hcm_routes(config, listener, hcm)
        .iter()
        .flat_map(|route| route.filter_overrides.iter())
        .filter(|entry| entry.filter == filter)
        .filter_map(|entry| entry.max_request_bytes)
        .min()
}

/// What a fix would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    FilterLimit(FilterKind),
    ListenerLimit(u16),
    Stream,
}

struct Fact {
    item: Item,
    change: Option<Change>,
}

fn size(bytes: u64) -> String {
    display_memory(bytes)
}

fn largest(estimate: Option<&Estimate>) -> String {
    estimate.map_or_else(
        || "the largest prompt is unknown (max-model-len is not known for an endpoint seen only through Envoy)".to_string(),
        |estimate| format!("the largest is {}", estimate.text),
    )
}

fn facts(proxy: &Proxy, estimate: Option<&Estimate>) -> Vec<Fact> {
    let config = proxy.config();
    let mut facts = Vec::new();
    let mut buffers_within_connection_limit = false;
    for (listener, hcm, filter) in filters_on_path(config) {
        let Some(buffering) = &filter.buffering else {
            continue;
        };
        buffers_within_connection_limit |= matches!(
            buffering,
            Buffering::ExtProcBuffered { .. } | Buffering::Lua | Buffering::Wasm
        );
        let on_path = OnPath {
            proxy,
            listener,
            hcm,
            filter,
        };
        facts.push(filter_fact(&on_path, buffering, estimate));
    }
    facts.extend(listener_limits(
        proxy,
        estimate,
        buffers_within_connection_limit,
    ));
    facts.extend(cluster_limits(proxy, estimate));
    facts
}

/// A buffering filter on the path, where it sits.
struct OnPath<'a> {
    proxy: &'a Proxy<'a>,
    listener: &'a ListenerConfig,
    hcm: &'a HcmConfig,
    filter: &'a HttpFilterInfo,
}

impl OnPath<'_> {
    fn path(&self, field: &str) -> String {
        hcm_path(
            self.listener,
            self.hcm,
            &format!("http_filters[{}]{field}", self.filter.name),
        )
    }
}

/// A filter that holds whole prompts up to `limit`, against the largest prompt.
fn request_limit(
    on_path: &OnPath,
    buffering: &Buffering,
    estimate: Option<&Estimate>,
    limit: Option<u64>,
    what: &str,
) -> Fact {
    let proxy = on_path.proxy;
    let path = |field: &str| on_path.path(field);
    let over = limit.is_some_and(|limit| estimate.is_none_or(|estimate| limit < estimate.bytes));
    let (severity, headline, note) = match limit {
        Some(limit) if over => (
            Severity::Warning,
            format!(
                "holds whole prompts up to {} ({what}); {}",
                size(limit),
                largest(estimate)
            ),
            format!("longer prompts get 413; {}", largest(estimate)),
        ),
        Some(limit) => (
            Severity::Info,
            format!(
                "holds each prompt before forwarding it ({what}, limit {})",
                size(limit)
            ),
            format!("covers the largest prompt; {}", largest(estimate)),
        ),
        None => (
            Severity::Warning,
            format!("holds whole prompts ({what}) with no limit in the dump"),
            "the limit is not in the dump".to_string(),
        ),
    };
    Fact {
        item: Item {
            severity,
            headline,
            line: proxy
                .line(
                    path("/max_request_bytes"),
                    limit.map_or("<unset>".to_string(), |limit| limit.to_string()),
                )
                .with_note(note),
            explains: &["downstream_rq_too_large", "413"],
        },
        change: Some(Change::FilterLimit(FilterKind::of(buffering))),
    }
}

/// One buffering filter on the path, judged by what it holds.
fn filter_fact(on_path: &OnPath, buffering: &Buffering, estimate: Option<&Estimate>) -> Fact {
    let (proxy, listener, hcm, filter) =
        (on_path.proxy, on_path.listener, on_path.hcm, on_path.filter);
    let config = proxy.config();
    let path = |field: &str| on_path.path(field);
    let listener_limit = listener.per_connection_buffer_limit_bytes.value;
    match buffering {
        Buffering::Buffer { max_request_bytes } => {
            let limit = route_limit(config, listener, hcm, &filter.name).or(*max_request_bytes);
            request_limit(on_path, buffering, estimate, limit, "envoy.filters.http.buffer")
        }
        Buffering::ExtAuthzWithBody {
            max_request_bytes,
            allow_partial_message: true,
        } => Fact {
            item: Item {
                severity: Severity::Info,
                headline: format!(
                    "sends prompts to ext_authz (partial messages allowed, up to {})",
                    max_request_bytes.map_or("<unset>".to_string(), size)
                ),
                line: proxy.line(path(""), filter.name.clone()).with_note(
                    "buffers up to max_request_bytes of each prompt before authorising; larger prompts pass",
                ),
                explains: &[],
            },
            change: None,
        },
        Buffering::ExtAuthzWithBody { max_request_bytes, .. } => {
            request_limit(on_path, buffering, estimate, *max_request_bytes, "ext_authz with_request_body")
        }
        Buffering::ExtProcBuffered {
            request_body_mode,
            response_body_mode,
        } => {
            let response = response_body_mode.as_deref().is_some_and(|mode| mode.starts_with("BUFFERED"));
                        Fact {
                item: Item {
                    severity: if response { Severity::Warning } else { Severity::Info },
                    headline: if response {
                        "holds whole responses for ext_proc (BUFFERED): tokens stop streaming".to_string()
                    } else {
                        "holds whole prompts for ext_proc (BUFFERED)".to_string()
                    },
                    line: proxy
                        .line(
                            path("/processing_mode"),
                            format!(
                                "request {}, response {}",
                                request_body_mode.as_deref().unwrap_or("NONE"),
                                response_body_mode.as_deref().unwrap_or("NONE")
                            ),
                        )
                        .with_note(format!(
                            "bodies are held within the connection buffer limit ({})",
                            size(listener_limit)
                        )),
                    explains: &["rs_too_large", "downstream_rq_too_large", "413"],
                },
                change: Some(Change::Stream),
            }
        }
        Buffering::Lua | Buffering::Wasm => {
                        let what = if matches!(buffering, Buffering::Lua) {
                "a Lua filter: body() holds the whole body"
            } else {
                "a wasm filter: it may hold bodies"
            };
            let small = estimate.is_some_and(|estimate| listener_limit < estimate.bytes);
            Fact {
                item: Item {
                    severity: if small { Severity::Warning } else { Severity::Info },
                    headline: format!(
                        "may hold whole bodies within {} ({what}); {}",
                        size(listener_limit),
                        largest(estimate)
                    ),
                    line: proxy.line(path(""), filter.name.clone()).with_note(format!(
                        "{what}; a held response stops tokens streaming, and one over {} fails with 500 \
                         (rs_too_large) or a reset",
                        size(listener_limit)
                    )),
                    explains: &["rs_too_large", "downstream_rq_too_large", "413"],
                },
                change: Some(Change::Stream),
            }
        }
    }
}

fn listener_limits(
    proxy: &Proxy,
    estimate: Option<&Estimate>,
    buffers_within_connection_limit: bool,
) -> Vec<Fact> {
    let config = proxy.config();
    let mut facts = Vec::new();
    for listener in &config.listeners {
        let limit = &listener.per_connection_buffer_limit_bytes;
        if limit.is_default() {
            continue;
        }
        let small = estimate.is_none_or(|estimate| limit.value < estimate.bytes);
        if !small {
            continue;
        }
        let severity = if buffers_within_connection_limit && estimate.is_some() {
            Severity::Warning
        } else {
            Severity::Info
        };
        let port = listener
            .address
            .as_deref()
            .and_then(|address| address.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_default();
        facts.push(Fact {
            item: Item {
                severity,
                headline: format!("limits connection buffers to {}; {}", size(limit.value), largest(estimate)),
                line: proxy
                    .line(listener_path(listener, "per_connection_buffer_limit_bytes"), limit.value.to_string())
                    .with_note(if buffers_within_connection_limit {
                        "a filter on the path holds bodies within it: larger ones get 413, 500 or a reset".to_string()
                    } else {
                        "no filter on the path holds bodies: only retried or mirrored requests are buffered, and larger \
                         ones are not retried (retry_or_shadow_abandoned)"
                            .to_string()
                    }),
                explains: &["rs_too_large", "downstream_rq_too_large", "retry_or_shadow_abandoned", "413"],
            },
            change: Some(Change::ListenerLimit(port)),
        });
    }
    facts
}

fn cluster_limits(proxy: &Proxy, estimate: Option<&Estimate>) -> Vec<Fact> {
    let config = proxy.config();
    let mut facts = Vec::new();
    for cluster in &config.clusters {
        let limit = &cluster.per_connection_buffer_limit_bytes;
        if limit.is_default() || estimate.is_some_and(|estimate| limit.value >= estimate.bytes) {
            continue;
        }
        facts.push(Fact {
            item: Item {
                severity: Severity::Info,
                headline: format!("limits upstream connection buffers to {}", size(limit.value)),
                line: proxy
                    .line(cluster_path(cluster, "per_connection_buffer_limit_bytes"), limit.value.to_string())
                    .with_note(
                        "flow control on the upstream connection; a retried request larger than this is not retried \
                         (retry_or_shadow_abandoned)",
                    ),
                explains: &["retry_or_shadow_abandoned"],
            },
            change: None,
        });
    }
    facts
}

fn proxy_finding(
    target: &TargetEvidence,
    proxy: &Proxy,
    filters: &[(&ListenerConfig, &HcmConfig, &HttpFilterInfo)],
    estimate: Option<&Estimate>,
    written: &[WrittenFilter],
    absorbed: &[usize],
) -> Option<Finding> {
    let facts = facts(proxy, estimate);
    let items: Vec<Item> = facts.iter().map(|fact| fact.item.clone()).collect();
    let happened = observed::happened(proxy, &TOO_LARGE_COUNTERS, &[], &TOO_LARGE_CODES);
    let label = proxy.label();
    let mut finding = observed::finding(
        MODE,
        proxy,
        &items,
        &happened,
        |happened, explaining| {
            let counted: Vec<String> = happened.iter().map(Happened::short).collect();
            match explaining {
                Some(item) => format!(
                    "{label} failed bodies over a buffer limit ({}): it {}",
                    counted.join(", "),
                    item.headline
                ),
                None => format!(
                    "{label} failed bodies over a buffer limit ({}); no buffering on the path explains it now",
                    counted.join(", ")
                ),
            }
        },
        proxy.blind_spot(MODE),
    )?;
    if let Some(assumption) = estimate.and_then(|estimate| estimate.assumption.clone()) {
        finding = finding.assume(assumption);
    }
    match estimate {
        Some(estimate) => finding = finding.assume(format!("largest prompt or response estimated at {}", estimate.text)),
        None => {
            finding = finding.assume(
                "max-model-len unknown (an endpoint seen only through Envoy): the largest body cannot be estimated; \
                 filters that hold whole bodies are judged by their presence",
            )
        }
    }
    let mut fix = None;
    for index in absorbed {
        let Some(written) = written.get(*index) else {
            continue;
        };
        for line in &written.finding.evidence {
            finding = finding.evidence(line.clone().with_note(format!(
                "{}; the proxy runs this filter",
                line.note.as_deref().unwrap_or("as written")
            )));
        }
        if fix.is_none() {
            fix = written
                .finding
                .fix
                .as_ref()
                .map(|fix| (fix.summary.clone(), fix.yaml.clone()));
        }
    }
    let worst = facts
        .iter()
        .filter(|fact| {
            finding
                .evidence
                .iter()
                .any(|line| line.path == fact.item.line.path)
        })
        .max_by_key(|fact| fact.item.severity);
    if fix.is_none() && finding.severity > Severity::Info {
        fix = worst
            .and_then(|fact| fact.change)
            .map(|change| change_fix(target, proxy, filters, change, estimate));
    }
    let fix = if finding.severity > Severity::Info {
        fixes::with_stats_matcher(target, proxy, &finding, fix)
    } else {
        fix
    };
    Some(match fix {
        Some((summary, yaml)) => finding.fix(summary, yaml),
        None => finding,
    })
}

fn change_fix(
    target: &TargetEvidence,
    proxy: &Proxy,
    filters: &[(&ListenerConfig, &HcmConfig, &HttpFilterInfo)],
    change: Change,
    estimate: Option<&Estimate>,
) -> FixText {
    let raised = estimate.map_or(MIB, raised_limit);
    let raised_words = match estimate {
        Some(_) => format!("{} (twice the largest body)", size(raised)),
        None => format!("{} (covers 256k tokens at ~4 bytes each)", size(raised)),
    };
    let namespace = match proxy.role() {
        crate::evidence::envoy::role::EnvoyRole::Server => target.workload.namespace.clone(),
        _ => proxy
            .object
            .namespace
            .clone()
            .unwrap_or_else(|| "istio-system".into()),
    };
    match change {
        Change::FilterLimit(kind) => {
            let name = filters
                .iter()
                .find(|(_, _, filter)| filter.buffering.as_ref().map(FilterKind::of) == Some(kind))
                .map_or("envoy.filters.http.buffer".to_string(), |(_, _, filter)| {
                    filter.name.clone()
                });
            let value = match kind {
                FilterKind::ExtAuthz => json!({"typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
                    "with_request_body": {"max_request_bytes": raised, "allow_partial_message": true}}}),
                _ => json!({"typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                    "max_request_bytes": raised}}),
            };
            let document = json!({
                "apiVersion": "networking.istio.io/v1alpha3",
                "kind": "EnvoyFilter",
                "metadata": {"name": "inference-body-limit", "namespace": namespace},
                "spec": {"configPatches": [{
                    "applyTo": "HTTP_FILTER",
                    "match": {"context": fixes::context(proxy), "listener": {"filterChain": {"filter": {
                        "name": "envoy.filters.network.http_connection_manager",
                        "subFilter": {"name": name}}}}},
                    "patch": {"operation": "MERGE", "value": value},
                }]},
            });
            (
                format!(
                    "{name} on {} holds whole prompts: find what adds it (`kubectl get envoyfilter -A`) and raise its \
                     limit to {raised_words}, or take it off the inference route; the EnvoyFilter below merges the \
                     raised limit ({} context; `kubectl apply -f fix.yaml`).",
                    proxy.label(),
                    fixes::context(proxy)
                ),
                serde_yaml::to_string(&document).unwrap_or_default(),
            )
        }
        Change::ListenerLimit(_) | Change::Stream => {
            let port = match change {
                Change::ListenerLimit(port) if port > 0 => port,
                _ => super::service_host(target).1,
            };
            let mut listener = json!({});
            if proxy.role() == crate::evidence::envoy::role::EnvoyRole::Server || port > 0 {
                listener["portNumber"] = json!(port);
            }
            let document = json!({
                "apiVersion": "networking.istio.io/v1alpha3",
                "kind": "EnvoyFilter",
                "metadata": {"name": "inference-buffer-limit", "namespace": namespace},
                "spec": {"configPatches": [{
                    "applyTo": "LISTENER",
                    "match": {"context": fixes::context(proxy), "listener": listener},
                    "patch": {"operation": "MERGE", "value": {"per_connection_buffer_limit_bytes": raised}},
                }]},
            });
            let stream_words = if change == Change::Stream {
                "A filter on the path holds whole bodies: take it off the inference route (for Lua, read bodies with \
                 bodyChunks(), which streams); or "
            } else {
                ""
            };
            let edge_words = if proxy.is_gateway() {
                " At a gateway with Istio's EDGE profile, set connectionSettings.listenerPerConnectionBufferLimitBytes \
                 in proxy.istio.io/config instead."
            } else {
                ""
            };
            (
                format!(
                    "{stream_words}raise the listener's per_connection_buffer_limit_bytes on {} to {raised_words} with \
                     the EnvoyFilter below ({} context; `kubectl apply -f fix.yaml`).{edge_words}",
                    proxy.label(),
                    fixes::context(proxy)
                ),
                serde_yaml::to_string(&document).unwrap_or_default(),
            )
        }
    }
}

/// EnvoyFilter patches that add a buffering filter on a side whose proxy runs none: the patch
/// does not reach that proxy, or was rejected.
pub fn filters_not_applied(
    target: &TargetEvidence,
    written: &[WrittenFilter],
) -> (Vec<Finding>, Vec<usize>) {
    let proxies = super::proxies(target);
    let mut findings = Vec::new();
    let mut replaced = Vec::new();
    for (index, filter) in written.iter().enumerate() {
        let reached: Vec<&Proxy> = proxies
            .iter()
            .filter(|proxy| filter.reaches(proxy))
            .collect();
        if reached.is_empty() {
            continue;
        }
        let runs = reached.iter().any(|proxy| {
            filters_on_path(proxy.config())
                .iter()
                .any(|(_, _, running)| {
                    running.buffering.as_ref().map(FilterKind::of) == Some(filter.kind)
                })
        });
        if runs {
            continue;
        }
        let labels: Vec<String> = reached.iter().map(|proxy| proxy.label()).collect();
        let mut finding = Finding::new(
            MODE,
            Severity::Info,
            crate::checks::Basis::Effective,
            format!(
                "{} adds a buffering filter ({:?}), but {} runs none on the path: the patch does not match (workloadSelector, \
                 port, context) or was rejected",
                filter.object,
                filter.kind,
                labels.join(", ")
            ),
        );
        for line in &filter.finding.evidence {
            finding = finding.evidence(line.clone().with_note(format!(
                "{}; not what the proxy runs",
                line.note.as_deref().unwrap_or("as written")
            )));
        }
        for proxy in reached {
            finding = finding.evidence(
                proxy
                    .line("http_filters", "no such buffering filter on the path")
                    .with_note("what the proxy runs (check `istioctl proxy-config listener`)"),
            );
        }
        findings.push(finding);
        replaced.push(index);
    }
    (findings, replaced)
}
