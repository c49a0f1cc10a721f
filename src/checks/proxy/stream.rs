//! Stream timeouts as the proxies run them: route `timeout`, `idle_timeout`,
//! `max_stream_duration`, retry `per_try_timeout`; HCM `stream_idle_timeout`, `request_timeout`,
//! `max_stream_duration`, `max_connection_duration`; the cluster's `max_stream_duration`. Judged
//! against the expected generation as the static check judges YAML (a deadline on the whole
//! response is critical, an idle timeout only bites on pauses and is a warning), and critical
//! with runtime basis when `upstream_rq_timeout`, `upstream_rq_per_try_timeout`,
//! `upstream_rq_max_duration_reached`, `downstream_rq_idle_timeout`, `downstream_rq_timeout` or
//! the UT/SI/UMSDR response flags moved.
//!
//! Istio's EDGE connection profile (ProxyConfig `connectionSettings.profile: EDGE`, gateways
//! only) is recognised by its values: request timeout 300s, stream idle timeout 300s, request
//! headers timeout 60s, 32 KiB listener and cluster buffers (three or more of them, as written).
//! Its request timeout runs only until the request is received (*measured* on Envoy 1.40: a 1s
//! `request_timeout` did not cut a 3s stream), so the stream idle timeout is what it does to
//! streams.

use super::fixes::{self, FixText};
use super::observed::{self, Happened, Item};
use super::{Proxy, cluster_path, hcm_path, listener_path, service_host};
use crate::checks::limits::envoy as limit_facts;
use crate::checks::{Basis, EvidenceLine, Finding, Severity};
use crate::evidence::CheckId;
use crate::evidence::envoy::config::{EnvoyDuration, Setting};
use crate::evidence::envoy::role::EnvoyRole;
use crate::evidence::limits::{AppliesTo, Limit as LimitFact, LimitBasis, LimitKind};
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::units::duration::display;
use serde_json::json;
use std::time::Duration;

const MODE: CheckId = CheckId::StreamTimeout;
/// Counters whose rise means a stream or request was cut by a timeout.
pub const CUT_COUNTERS: [&str; 5] = [
    "upstream_rq_timeout",
    "upstream_rq_per_try_timeout",
    "upstream_rq_max_duration_reached",
    "downstream_rq_idle_timeout",
    "downstream_rq_timeout",
];
/// Response flags of a cut: route timeout, stream idle timeout, max stream duration.
pub const CUT_FLAGS: [&str; 3] = ["UT", "SI", "UMSDR"];

const EDGE_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const EDGE_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const EDGE_REQUEST_HEADERS_TIMEOUT: Duration = Duration::from_secs(60);
const EDGE_BUFFER_LIMIT_BYTES: u64 = 32 * 1024;
/// How many of the EDGE profile's values must be present to name it.
const EDGE_SIGNATURE: usize = 3;

/// Where a timeout sits, for the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// A route, with the Istio object its metadata names.
    Route(Option<ObjectRef>),
    /// The HCM, with the Envoy field that sets it.
    Hcm(&'static str),
    Cluster,
}

struct Limit {
    item: Item,
    place: Place,
}

/// What the YAML check found for each VirtualService of the target (`None`: nothing wrong).
pub type YamlFindings = [(ObjectRef, Option<Finding>)];

/// The findings from every proxy on the path, and the VirtualServices whose routes the proxies
/// showed: their YAML findings give way to these, which carry their lines and fix.
pub fn findings(
    target: &TargetEvidence,
    expected: Duration,
    yaml: &YamlFindings,
) -> (Vec<Finding>, Vec<ObjectRef>) {
    let mut findings = Vec::new();
    let mut shown = Vec::new();
    for proxy in super::proxies(target) {
        for view in proxy.config().routes() {
            if let Some(object) = super::route_object(view.route) {
                if !shown.contains(&object) {
                    shown.push(object);
                }
            }
        }
        findings.extend(proxy_findings(target, &proxy, expected, yaml));
    }
    (findings, shown)
}

fn proxy_findings(
    target: &TargetEvidence,
    proxy: &Proxy,
    expected: Duration,
    yaml: &YamlFindings,
) -> Vec<Finding> {
    let mut limits = limits(proxy, expected);
    let happened = observed::happened(proxy, &CUT_COUNTERS, &CUT_FLAGS, &[]);
    let edge = edge_profile(proxy, expected);
    let mut out = Vec::new();
    if let Some(edge) = &edge {
        if happened.is_empty() {
            // The profile's own values are judged together, in its finding.
            limits.retain(|limit| !edge.paths.contains(&limit.item.line.path));
            out.push(edge_finding(target, proxy, edge, expected));
        } else {
            limits.extend(edge.limits());
        }
    }
    let items: Vec<Item> = limits.iter().map(|limit| limit.item.clone()).collect();
    let label = proxy.label();
    let finding = observed::finding(
        MODE,
        proxy,
        &items,
        &happened,
        |happened, explaining| runtime_title(&label, happened, explaining),
        proxy.blind_spot(MODE),
    );
    if let Some(mut finding) = finding {
        let (fix, lines) = fix_for(target, proxy, &limits, &finding, expected, yaml);
        for line in lines {
            finding = finding.evidence(line);
        }
        let fix = fixes::with_stats_matcher(target, proxy, &finding, fix);
        if let Some((summary, yaml)) = fix {
            finding = finding.fix(summary, yaml);
        }
        if let Some(edge) = edge.as_ref().filter(|_| !happened.is_empty()) {
            finding = finding.assume(edge.name());
        }
        out.insert(0, finding);
    }
    out
}

fn runtime_title(label: &str, happened: &[Happened], explaining: Option<&Item>) -> String {
    let counted: Vec<String> = happened.iter().map(Happened::short).collect();
    match explaining {
        Some(item) => format!(
            "{label} has cut streams ({}): it {}",
            counted.join(", "),
            item.headline
        ),
        None => format!(
            "{label} has cut streams ({}); no timeout on the path explains it now",
            counted.join(", ")
        ),
    }
}

fn critical(duration: Duration, what: &str, expected: Duration) -> String {
    format!(
        "cuts generations at {} ({what}); up to {} expected",
        display(duration),
        display(expected)
    )
}

fn shorter_note(expected: Duration) -> String {
    format!("shorter than the {} expected generation", display(expected))
}

/// Every timeout on this proxy's path that is on and shorter than the expected generation, read
/// from the limit facts of the proxy (`checks::limits::envoy`).
fn limits(proxy: &Proxy, expected: Duration) -> Vec<Limit> {
    limit_facts::of_proxy(proxy)
        .iter()
        .filter_map(|fact| judged(proxy, fact, expected))
        .collect()
}

/// Where a fact sits, for the fix.
fn place(fact: &LimitFact) -> Place {
    match &fact.applies_to {
        AppliesTo::Route(_) => Place::Route(fact.configured_by.clone()),
        AppliesTo::Listener(_) => Place::Hcm(match fact.kind {
            LimitKind::IdleTimeout => "stream_idle_timeout",
            LimitKind::RequestTimeout => "request_timeout",
            LimitKind::MaxStreamDuration => "max_stream_duration",
            LimitKind::ConnectionLifetime => "max_connection_duration",
            _ => "idle_timeout",
        }),
        AppliesTo::Cluster(_) => Place::Cluster,
    }
}

/// One timeout fact judged against the expected generation: a deadline on the whole response is
/// critical, one that counts silence a warning, the rest info or nothing.
fn judged(proxy: &Proxy, fact: &LimitFact, expected: Duration) -> Option<Limit> {
    let value = fact.value.time()?;
    let duration = (!value.is_zero() && value < expected).then_some(value)?;
    let path = fact.path.clone();
    if !fact.generation {
        return Some(Limit {
            item: off_generation_item(proxy, fact, duration),
            place: place(fact),
        });
    }
    let item = match (fact.kind, fact.field) {
        (LimitKind::RouteTimeout, _) => {
            let mut consequence = format!(
                "a deadline on the whole response cuts the stream at {}",
                display(duration)
            );
            if matches!(fact.basis, LimitBasis::Defaulted { .. }) {
                consequence.push_str("; the field is absent, and raw Envoy's default is 15s (istiod always writes it, 0s when no VirtualService sets one)");
            }
            let explains = &["upstream_rq_timeout", "UT"];
            let mut item = deadline_item(
                proxy,
                path,
                duration,
                "route timeout",
                expected,
                &consequence,
                explains,
            );
            item.line.value = fact.value_text.clone();
            item
        }
        (LimitKind::PerTryTimeout, _) => per_try_item(proxy, path, duration),
        (LimitKind::MaxStreamDuration, _) => {
            let (what, consequence, explains): (&str, &str, &'static [&'static str]) =
                match fact.applies_to {
                    AppliesTo::Route(_) => (
                        "max stream duration",
                        "a deadline on the whole stream",
                        &["upstream_rq_max_duration_reached", "UMSDR"],
                    ),
                    AppliesTo::Listener(_) => (
                        "HCM max stream duration",
                        "a deadline on every stream of this listener",
                        &["UMSDR"],
                    ),
                    AppliesTo::Cluster(_) => (
                        "upstream max stream duration",
                        "a deadline on every upstream stream",
                        &["upstream_rq_max_duration_reached", "UMSDR"],
                    ),
                };
            deadline_item(proxy, path, duration, what, expected, consequence, explains)
        }
        (LimitKind::IdleTimeout, field) => {
            let what = match field {
                "RouteAction.idle_timeout" => "route idle timeout",
                "RetryPolicy.per_try_idle_timeout" => "per-try idle timeout",
                _ => "stream idle timeout",
            };
            let mut item = idle_item(proxy, path, duration, what, expected);
            if what == "stream idle timeout" {
                item.line.value = fact.value_text.clone();
            }
            item
        }
        (LimitKind::RequestTimeout, _) => request_timeout_item(proxy, fact, duration),
        (LimitKind::ConnectionLifetime, _) => Item {
            severity: Severity::Warning,
            headline: format!(
                "closes downstream connections after {} (max connection duration)",
                display(duration)
            ),
            line: proxy.line(path, display(duration)).with_note(format!(
                "{}: the connection drains, then is closed with streams on it",
                shorter_note(expected)
            )),
            explains: &[],
        },
        (LimitKind::ConnectionIdleTimeout, _)
            if !matches!(fact.basis, LimitBasis::Defaulted { .. }) =>
        {
            connection_item(proxy, path, duration, &fact.setting)
        }
        _ => return None,
    };
    Some(Limit {
        item,
        place: place(fact),
    })
}

/// A timeout on a route that carries no generation (health, metrics, model listing): info.
fn off_generation_item(proxy: &Proxy, fact: &LimitFact, duration: Duration) -> Item {
    Item {
        severity: Severity::Info,
        headline: format!(
            "times out a route that carries no generation at {} ({}): fine for a health check or metrics",
            display(duration),
            fact.kind.label()
        ),
        line: proxy
            .line(fact.path.clone(), fact.value_text.clone())
            .with_note("the route's match admits no generation path (/v1/completions, /v1/chat/completions, …)"),
        explains: &[],
    }
}

/// A per-try timeout: streams pass it once their first bytes arrive; non-streaming requests
/// longer than it are cut and sent again.
fn per_try_item(proxy: &Proxy, path: String, duration: Duration) -> Item {
    Item {
        severity: Severity::Warning,
        headline: per_try_headline(duration),
        line: proxy.line(path, display(duration)).with_note(PER_TRY_NOTE),
        explains: &["upstream_rq_per_try_timeout"],
    }
}

/// What a per-try timeout does, as Envoy's router runs it (shared by the YAML judges).
pub const PER_TRY_NOTE: &str = "a per-try timeout is not a stream deadline: Envoy ignores it once the response has \
     started (router UpstreamRequest::onPerTryTimeout), so a stream is bounded only until its first bytes (a long \
     prompt's prefill); a non-streaming request that takes longer is cut, and the retry policy sends the same prompt again";

/// The headline of a per-try timeout under the expected generation.
pub fn per_try_headline(duration: Duration) -> String {
    format!(
        "cuts non-streaming requests at {} and retries them (per-try timeout); streams pass it once their first bytes arrive",
        display(duration)
    )
}

fn request_timeout_item(proxy: &Proxy, fact: &LimitFact, duration: Duration) -> Item {
    Item {
        severity: Severity::Info,
        headline: format!(
            "has a request timeout of {}: it runs only until the request is received",
            display(duration)
        ),
        line: proxy.line(fact.path.clone(), fact.value_text.clone()).with_note(
            "runs only until the whole request is received (measured on Envoy 1.40: a 1s request_timeout \
             did not cut a 3s stream); a slow upload would be cut",
        ),
        explains: &["downstream_rq_timeout"],
    }
}

/// A deadline shorter than the expected generation: it cuts every generation that runs longer.
fn deadline_item(
    proxy: &Proxy,
    path: String,
    duration: Duration,
    what: &str,
    expected: Duration,
    consequence: &str,
    explains: &'static [&'static str],
) -> Item {
    Item {
        severity: Severity::Critical,
        headline: critical(duration, what, expected),
        line: proxy
            .line(path, display(duration))
            .with_note(format!("{}: {consequence}", shorter_note(expected))),
        explains,
    }
}

fn idle_item(
    proxy: &Proxy,
    path: String,
    duration: Duration,
    what: &str,
    expected: Duration,
) -> Item {
    Item {
        severity: Severity::Warning,
        headline: format!(
            "cuts a stream after {} without a byte ({what}; it bites on pauses: queueing, a long prefill)",
            display(duration)
        ),
        line: proxy.line(path, display(duration)).with_note(format!(
            "{}; it cuts only a stream that sends nothing for {} (a long queue or prefill before the first token): \
             a warning until a counter shows it",
            shorter_note(expected),
            display(duration)
        )),
        explains: &["downstream_rq_idle_timeout", "SI"],
    }
}

fn connection_item(proxy: &Proxy, path: String, duration: Duration, what: &str) -> Item {
    Item {
        severity: Severity::Info,
        headline: format!("closes idle connections after {} ({what})", display(duration)),
        line: proxy.line(path, display(duration)).with_note(
            "applies only while no request is active: no stream is cut, the next request pays a new handshake",
        ),
        explains: &[],
    }
}

// ---- the EDGE profile ----

struct EdgeProfile {
    lines: Vec<EvidenceLine>,
    /// Evidence paths the profile covers, so they are not judged twice.
    paths: Vec<String>,
    stream_idle: Option<(EvidenceLine, Duration)>,
    severity: Severity,
}

impl EdgeProfile {
    fn name(&self) -> String {
        "its settings match Istio's EDGE connection profile (ProxyConfig connectionSettings.profile: EDGE)".to_string()
    }

    /// The profile's stream idle timeout as a limit, when a counter moved and everything is
    /// judged together.
    fn limits(&self) -> Vec<Limit> {
        self.stream_idle
            .iter()
            .map(|(line, duration)| Limit {
                item: Item {
                    severity: self.severity,
                    headline: format!(
                        "cuts a stream after {} without a byte (the EDGE profile's stream idle timeout)",
                        display(*duration)
                    ),
                    line: line.clone(),
                    explains: &["downstream_rq_idle_timeout", "SI"],
                },
                place: Place::Hcm("stream_idle_timeout"),
            })
            .collect()
    }
}

fn edge_profile(proxy: &Proxy, expected: Duration) -> Option<EdgeProfile> {
    let config = proxy.config();
    let cluster_limit = config.clusters.iter().find(|cluster| {
        !cluster.per_connection_buffer_limit_bytes.is_default()
            && cluster.per_connection_buffer_limit_bytes.value == EDGE_BUFFER_LIMIT_BYTES
    });
    for (listener, _, hcm) in config.hcms() {
        let is = |setting: &Setting<EnvoyDuration>, value: Duration| {
            !setting.is_default() && setting.value.value == value
        };
        let mut lines = Vec::new();
        let mut stream_idle = None;
        if is(&hcm.request_timeout, EDGE_REQUEST_TIMEOUT) {
            lines.push(
                proxy
                    .line(
                        hcm_path(listener, hcm, "request_timeout"),
                        hcm.request_timeout.value.text.clone(),
                    )
                    .with_note(
                        "EDGE's 5m request timeout: it runs only until the request is received (measured on Envoy \
                         1.40: request_timeout did not cut a longer stream), so streamed answers are not cut by it",
                    ),
            );
        }
        if is(&hcm.stream_idle_timeout, EDGE_STREAM_IDLE_TIMEOUT) {
            let line = proxy
                .line(
                    hcm_path(listener, hcm, "stream_idle_timeout"),
                    hcm.stream_idle_timeout.value.text.clone(),
                )
                .with_note(format!(
                    "EDGE's 5m stream idle timeout: a stream that sends nothing for 5m is cut, e.g. a request queued \
                     that long before its first token; up to {} expected",
                    display(expected)
                ));
            stream_idle = Some((line.clone(), hcm.stream_idle_timeout.value.value));
            lines.push(line);
        }
        if is(&hcm.request_headers_timeout, EDGE_REQUEST_HEADERS_TIMEOUT) {
            lines.push(
                proxy
                    .line(
                        hcm_path(listener, hcm, "request_headers_timeout"),
                        hcm.request_headers_timeout.value.text.clone(),
                    )
                    .with_note(
                        "EDGE's 60s request headers timeout: harmless for inference clients",
                    ),
            );
        }
        let buffer_note = "EDGE's 32 KiB buffers: larger requests are not retried or mirrored, and a buffering \
                           filter holds at most this much";
        if !listener.per_connection_buffer_limit_bytes.is_default()
            && listener.per_connection_buffer_limit_bytes.value == EDGE_BUFFER_LIMIT_BYTES
        {
            lines.push(
                proxy
                    .line(
                        listener_path(listener, "per_connection_buffer_limit_bytes"),
                        EDGE_BUFFER_LIMIT_BYTES.to_string(),
                    )
                    .with_note(buffer_note),
            );
        }
        if let Some(cluster) = cluster_limit {
            lines.push(
                proxy
                    .line(
                        cluster_path(cluster, "per_connection_buffer_limit_bytes"),
                        EDGE_BUFFER_LIMIT_BYTES.to_string(),
                    )
                    .with_note(buffer_note),
            );
        }
        if lines.len() >= EDGE_SIGNATURE {
            // A stream waiting the whole expected generation for its first token is cut at it.
            let severity = if stream_idle
                .as_ref()
                .is_some_and(|(_, duration)| *duration <= expected)
            {
                Severity::Warning
            } else {
                Severity::Info
            };
            return Some(EdgeProfile {
                paths: lines.iter().map(|line| line.path.clone()).collect(),
                lines,
                stream_idle,
                severity,
            });
        }
    }
    None
}

fn edge_finding(
    target: &TargetEvidence,
    proxy: &Proxy,
    edge: &EdgeProfile,
    expected: Duration,
) -> Finding {
    let mut finding = Finding::new(
        MODE,
        edge.severity,
        Basis::Effective,
        format!(
            "{} runs Istio's EDGE connection profile: a stream silent for 5m is cut (stream idle timeout 300s), \
             requests over 32 KiB are not retried",
            proxy.label()
        ),
    );
    for line in &edge.lines {
        finding = finding.evidence(line.clone());
    }
    finding = finding.assume(
        "recognised by its values (request timeout 300s, stream idle timeout 300s, request headers timeout 60s, \
         32 KiB buffers): Istio's ProxyConfig connectionSettings.profile EDGE writes them on gateways",
    );
    if let Some(words) = proxy.blind_spot(MODE) {
        finding = finding.assume(words);
    }
    let idle = display(expected * 2);
    let config = format!("connectionSettings:\n  profile: EDGE\n  httpStreamIdleTimeout: {idle}\n");
    let yaml = serde_yaml::to_string(&json!({
        "metadata": {"annotations": {"proxy.istio.io/config": config}}
    }))
    .unwrap_or_default();
    finding.fix(
        format!(
            "Keep the EDGE profile but let streams wait: set connectionSettings.httpStreamIdleTimeout to {idle} (twice \
             the expected generation) in proxy.istio.io/config on {} (a field set explicitly wins over the profile), \
             then restart the gateway pods.",
            fixes::pod_template_words(proxy, target)
        ),
        format!(
            "# Istio reads proxy.istio.io/config when the proxy starts: restart the pods after applying.\n{yaml}"
        ),
    )
}

// ---- fixes ----

fn fix_for(
    target: &TargetEvidence,
    proxy: &Proxy,
    limits: &[Limit],
    finding: &Finding,
    expected: Duration,
    yaml: &YamlFindings,
) -> (Option<FixText>, Vec<EvidenceLine>) {
    let Some(limit) = limits
        .iter()
        .filter(|limit| {
            finding
                .evidence
                .iter()
                .any(|line| line.path == limit.item.line.path)
        })
        .filter(|limit| limit.item.severity > Severity::Info || finding.basis == Basis::Runtime)
        .max_by_key(|limit| limit.item.severity)
    else {
        return (None, Vec::new());
    };
    let wanted = display(expected);
    let (host, port) = service_host(target);
    let fix = match &limit.place {
        Place::Route(_) if proxy.role() == EnvoyRole::Server => (
            format!(
                "The inbound route of vLLM's sidecar sets this limit; istiod writes none there, so an EnvoyFilter \
                 (context SIDECAR_INBOUND, applyTo HTTP_ROUTE) does: find it with `kubectl get envoyfilter -A` and \
                 raise it to {wanted} or remove it."
            ),
            String::new(),
        ),
        Place::Route(Some(object))
            if ["VirtualService", "HTTPRoute"].contains(&object.kind.as_str()) =>
        {
            match yaml.iter().find(|(known, _)| known == object) {
                Some((_, Some(written))) => return fixes::as_run(written),
                Some((_, None)) => (
                    format!(
                        "{object} as written allows the expected generation, yet the proxy runs this route: it has not \
                         received the change, or an EnvoyFilter overrides the route. Check `istioctl proxy-status` and \
                         `kubectl get envoyfilter -A`."
                    ),
                    String::new(),
                ),
                None => {
                    fixes::route_timeout(Some(object), &host, port, &wanted, proxy.is_gateway())
                }
            }
        }
        Place::Route(_) => fixes::unnamed_route_timeout(proxy, &host, port, &wanted),
        Place::Hcm(field) => {
            let yaml = fixes::envoy_filter_hcm(
                proxy,
                target,
                "streaming-timeouts",
                port,
                match *field {
                    "stream_idle_timeout" | "request_timeout" => json!({ *field: wanted }),
                    nested => json!({"common_http_protocol_options": { nested: wanted }}),
                },
            );
            (
                format!(
                    "Istio writes {field} 0s unless something sets it: find what does (an EnvoyFilter, or \
                     ProxyConfig connectionSettings in proxy.istio.io/config) and raise it to {wanted}; the EnvoyFilter \
                     below does that on {} ({} context; `kubectl apply -f fix.yaml`).",
                    proxy.label(),
                    fixes::context(proxy)
                ),
                yaml,
            )
        }
        Place::Cluster => (
            format!(
                "The cluster's HTTP protocol options set this limit: find the EnvoyFilter (applyTo CLUSTER) that sets \
                 it with `kubectl get envoyfilter -A` and raise it to {wanted} or remove it."
            ),
            String::new(),
        ),
    };
    (Some(fix), Vec::new())
}
