//! Where the YAML and the proxy differ, reported as findings of their own: the YAML says what
//! someone meant, the proxy what runs ("VirtualService says 300s, the route in gateway X has 15s:
//! the VirtualService is not bound to that gateway"). VirtualService and DestinationRule settings
//! act on the client side, so only client-side (and waypoint) proxies are compared with them.
//! Severity: **warning** when the proxy is the one that cuts or limits and the YAML would not;
//! **info** otherwise (the YAML is stricter than what runs, or both are harmless).

use super::{Proxy, cluster_path, count_text, istio_object, route_path, shorter};
use crate::checks::fixes::{IstioKind, istio_label, istio_ref};
use crate::checks::target::{route_reaches, upstream_clusters};
use crate::checks::{Basis, EvidenceLine, Finding, Severity};
use crate::evidence::envoy::config::{ClusterConfig, RouteView, Setting};
use crate::evidence::envoy::role::EnvoyRole;
use crate::evidence::objects::VirtualService;
use crate::evidence::resolve::policy::{PoolLimits, Sourced, effective_policy, pool_limits};
use crate::evidence::{CheckId, ObjectRef, TargetEvidence};
use crate::units::duration::{display, parse};
use std::time::Duration;

fn client_side(proxy: &Proxy) -> bool {
    matches!(proxy.role(), EnvoyRole::Client | EnvoyRole::Waypoint)
}

/// VirtualService route timeouts against the routes the client-side proxies run.
pub fn route_timeouts(target: &TargetEvidence, expected: Duration) -> Vec<Finding> {
    let proxies: Vec<Proxy> = super::proxies(target)
        .into_iter()
        .filter(client_side)
        .collect();
    let mut findings = Vec::new();
    for virtual_service in &target.mesh.virtual_services {
        let object = istio_ref(IstioKind::VirtualService, virtual_service);
        let reaching: Vec<usize> = virtual_service
            .spec
            .http
            .iter()
            .enumerate()
            .filter(|(_, route)| route_reaches(route, virtual_service, target))
            .map(|(index, _)| index)
            .collect();
        for proxy in &proxies {
            let routes: Vec<RouteView> = proxy.config().routes().collect();
            let named: Vec<&RouteView> = routes
                .iter()
                .filter(|view| {
                    view.route
                        .istio_config
                        .as_deref()
                        .and_then(istio_object)
                        .as_ref()
                        == Some(&object)
                })
                .collect();
            for &index in &reaching {
                let route = &virtual_service.spec.http[index];
                let written = route.timeout.as_deref();
                let Some(wanted) = written.map_or(Ok(Duration::ZERO), parse).ok() else {
                    continue;
                };
                let line = EvidenceLine::new(
                    object.clone(),
                    format!("spec/http[{index}]/timeout"),
                    written.unwrap_or("<unset>"),
                )
                .with_note(if written.is_some() {
                    "as written".to_string()
                } else {
                    "unset: istiod writes 0s (no deadline)".to_string()
                });
                if !named.is_empty() {
                    let by_name: Vec<&&RouteView> = named
                        .iter()
                        .filter(|view| route.name.is_some() && view.route.name == route.name)
                        .collect();
                    let compared: Vec<&RouteView> = if !by_name.is_empty() {
                        by_name.into_iter().copied().collect()
                    } else if reaching.len() == 1 {
                        named.clone()
                    } else {
                        continue;
                    };
                    for view in compared {
                        let running = &view.route.timeout;
                        if running.value.value != wanted {
                            findings.push(differs(
                                proxy,
                                virtual_service,
                                line.clone(),
                                view,
                                wanted,
                                expected,
                                "the proxy has not received the change (see `istioctl proxy-status`) or an EnvoyFilter \
                                 patches the route",
                            ));
                        }
                    }
                } else if written.is_some() {
                    // The proxy routes to the service, but not through this VirtualService.
                    // One finding per VirtualService route and proxy: the first route that differs.
                    if let Some(view) = routes
                        .iter()
                        .find(|view| view.route.timeout.value.value != wanted)
                    {
                        let reason = unbound_reason(proxy, virtual_service, view);
                        findings.push(differs(
                            proxy,
                            virtual_service,
                            line.clone(),
                            view,
                            wanted,
                            expected,
                            &reason,
                        ));
                    }
                }
            }
        }
    }
    findings
}

fn unbound_reason(proxy: &Proxy, virtual_service: &VirtualService, view: &RouteView) -> String {
    let from = match view.route.istio_config.as_deref().and_then(istio_object) {
        Some(other) => format!("the route comes from {other}"),
        None => "no VirtualService is behind the route".to_string(),
    };
    let gateways = &virtual_service.spec.gateways;
    let bound = if gateways.is_empty() {
        "mesh only".to_string()
    } else {
        gateways.join(", ")
    };
    if proxy.is_gateway() {
        format!(
            "{from}: the VirtualService is not bound to that gateway (its gateways: {bound}); add the gateway to \
             spec.gateways and the hostnames clients send to spec.hosts"
        )
    } else {
        format!(
            "{from}: the VirtualService does not apply to this sidecar (its gateways: {bound}); add `mesh` to \
             spec.gateways, or check its hosts and exportTo"
        )
    }
}

fn differs(
    proxy: &Proxy,
    virtual_service: &VirtualService,
    written: EvidenceLine,
    view: &RouteView,
    wanted: Duration,
    expected: Duration,
    reason: &str,
) -> Finding {
    let running = &view.route.timeout;
    let proxy_cuts = shorter(&running.value, expected).is_some();
    let yaml_cuts = !wanted.is_zero() && wanted < expected;
    let severity = if proxy_cuts && !yaml_cuts {
        Severity::Warning
    } else {
        Severity::Info
    };
    let said = if wanted.is_zero() {
        "no timeout".to_string()
    } else {
        display(wanted)
    };
    Finding::new(
        CheckId::StreamTimeout,
        severity,
        Basis::Effective,
        format!(
            "{} says {said}, the route in {} has {}: {reason}",
            istio_label(IstioKind::VirtualService, virtual_service),
            proxy.label(),
            running.value
        ),
    )
    .evidence(written)
    .evidence(
        proxy
            .line(
                route_path(view, "timeout"),
                super::duration_text(running, "RouteAction.timeout"),
            )
            .with_note("what the proxy runs"),
    )
}

/// A DestinationRule limit as written beside what the proxy runs for it: the value (`None`:
/// unset), its evidence text and its field path in the proxy's config.
struct Compared<'a> {
    written: Option<&'a Sourced<i64>>,
    running: Option<u64>,
    running_text: String,
    running_path: String,
}

/// The pool limits of `limits` beside the thresholds `cluster` runs (DestinationRule → Envoy
/// cluster, as pilot's `cluster_traffic_policy.go` writes them).
fn compared<'a>(limits: &'a PoolLimits, cluster: &ClusterConfig) -> Vec<Compared<'a>> {
    let breakers = &cluster.circuit_breakers;
    let threshold = |written, running: &Setting<u64>, field: &str, api: &str| Compared {
        written,
        running: Some(running.value),
        running_text: count_text(running, api),
        running_path: cluster_path(cluster, &format!("circuit_breakers/thresholds[0]/{field}")),
    };
    let per_connection = cluster.http.max_requests_per_connection;
    vec![
        threshold(
            limits.max_connections.as_ref(),
            &breakers.max_connections,
            "max_connections",
            "CircuitBreakers.Thresholds.max_connections",
        ),
        threshold(
            limits.http1_max_pending_requests.as_ref(),
            &breakers.max_pending_requests,
            "max_pending_requests",
            "CircuitBreakers.Thresholds.max_pending_requests",
        ),
        threshold(
            limits.http2_max_requests.as_ref(),
            &breakers.max_requests,
            "max_requests",
            "CircuitBreakers.Thresholds.max_requests",
        ),
        Compared {
            written: limits.max_requests_per_connection.as_ref(),
            running: per_connection,
            running_text: per_connection.map_or("<unset>".to_string(), |value| value.to_string()),
            running_path: cluster_path(
                cluster,
                "common_http_protocol_options/max_requests_per_connection",
            ),
        },
    ]
}

/// The written-and-running pair of lines where they differ, and whether the proxy is stricter.
fn disagreement(
    pair: &Compared,
    object: &ObjectRef,
    proxy: &Proxy,
) -> Option<([EvidenceLine; 2], bool)> {
    let written = pair.written?;
    let written_value = u64::try_from(written.value).unwrap_or_default();
    if pair.running == Some(written_value) {
        return None;
    }
    let stricter = pair.running.is_some_and(|value| value < written_value);
    let lines = [
        EvidenceLine::new(
            object.clone(),
            written.path.clone(),
            written.value.to_string(),
        )
        .with_note("as written"),
        proxy
            .line(pair.running_path.clone(), pair.running_text.clone())
            .with_note("what the proxy runs"),
    ];
    Some((lines, stricter))
}

/// DestinationRule connection-pool limits against the thresholds of the client-side clusters
/// they become.
pub fn pool_limits_applied(target: &TargetEvidence) -> Vec<Finding> {
    let proxies: Vec<Proxy> = super::proxies(target)
        .into_iter()
        .filter(client_side)
        .collect();
    let mut findings = Vec::new();
    for upstream in upstream_clusters(target) {
        let Some(rule) = upstream.rule else { continue };
        let policy = effective_policy(rule, upstream.port, upstream.subset.as_deref());
        let Some((pool, path)) = policy.connection_pool else {
            continue;
        };
        let limits = pool_limits(pool, &path);
        let object = istio_ref(IstioKind::DestinationRule, rule);
        for proxy in &proxies {
            let Some(cluster) = proxy.config().cluster(&upstream.name()) else {
                continue;
            };
            let mut lines = Vec::new();
            let mut stricter_proxy = false;
            for pair in compared(&limits, cluster) {
                if let Some((pair_lines, stricter)) = disagreement(&pair, &object, proxy) {
                    lines.extend(pair_lines);
                    stricter_proxy |= stricter;
                }
            }
            if lines.is_empty() {
                continue;
            }
            let names_rule = cluster
                .istio_config
                .as_deref()
                .and_then(istio_object)
                .is_some_and(|named| named == object);
            let reason = if names_rule {
                "the cluster names this rule, so the proxy has not received the change (see `istioctl proxy-status`) \
                 or an EnvoyFilter patches the cluster"
                    .to_string()
            } else {
                "the rule does not reach this proxy: check its host, namespace, exportTo and workloadSelector"
                    .to_string()
            };
            let mut finding = Finding::new(
                CheckId::ConnectionPool,
                if stricter_proxy {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                Basis::Effective,
                format!(
                    "{} and cluster {} in {} disagree on connection limits: {reason}",
                    istio_label(IstioKind::DestinationRule, rule),
                    cluster.name,
                    proxy.label()
                ),
            );
            for line in lines {
                finding = finding.evidence(line);
            }
            findings.push(finding);
        }
    }
    findings
}

/// A YAML finding about an EnvoyFilter that sets stream timeouts, with the contexts of its
/// patches on the inference path.
#[derive(Debug, Clone)]
pub struct WrittenPatch {
    pub object: crate::evidence::ObjectRef,
    pub contexts: Vec<String>,
    pub finding: Finding,
}

/// Every timeout a proxy's path config sets, by Envoy field name (the last segment of the
/// field's path: `stream_idle_timeout`, `timeout`, `idle_timeout`, …).
fn timeouts(proxy: &Proxy) -> Vec<(&'static str, Duration)> {
    let config = proxy.config();
    let mut found = Vec::new();
    for view in config.routes() {
        let route = view.route;
        found.push(("timeout", route.timeout.value.value));
        found.extend(
            route
                .idle_timeout
                .iter()
                .map(|value| ("idle_timeout", value.value)),
        );
        found.extend(
            route
                .max_stream_duration
                .iter()
                .map(|value| ("max_stream_duration", value.value)),
        );
        if let Some(retry) = &route.retry {
            found.extend(
                retry
                    .per_try_timeout
                    .iter()
                    .map(|value| ("per_try_timeout", value.value)),
            );
            found.extend(
                retry
                    .per_try_idle_timeout
                    .iter()
                    .map(|value| ("per_try_idle_timeout", value.value)),
            );
        }
    }
    for (_, _, hcm) in config.hcms() {
        found.push(("stream_idle_timeout", hcm.stream_idle_timeout.value.value));
        found.push(("request_timeout", hcm.request_timeout.value.value));
        found.push(("idle_timeout", hcm.idle_timeout.value.value));
        found.extend(
            hcm.max_stream_duration
                .iter()
                .map(|value| ("max_stream_duration", value.value)),
        );
        found.extend(
            hcm.max_connection_duration
                .iter()
                .map(|value| ("max_connection_duration", value.value)),
        );
    }
    for cluster in &config.clusters {
        found.push(("idle_timeout", cluster.http.idle_timeout.value.value));
        found.extend(
            cluster
                .http
                .max_stream_duration
                .iter()
                .map(|value| ("max_stream_duration", value.value)),
        );
        found.extend(
            cluster
                .http
                .max_connection_duration
                .iter()
                .map(|value| ("max_connection_duration", value.value)),
        );
    }
    found
}

/// The field and duration an evidence line states: `…/stream_idle_timeout` = `30s`.
fn stated(line: &EvidenceLine) -> Option<(&str, Duration)> {
    let field = line.path.rsplit('/').next()?;
    let value = line.value.split_whitespace().next()?;
    Some((field, parse(value).ok()?))
}

/// EnvoyFilters that set stream timeouts, against the proxies their patches reach. Where a
/// reached proxy runs what the filter says, the filter's lines and fix join that proxy's finding
/// (its fix edits the real object); where no reached proxy runs any of it, the filter's finding
/// is replaced by a disagreement; where no proxy of its context was read, it stays as written.
pub fn envoy_filter_timeouts(
    target: &TargetEvidence,
    findings: &mut Vec<Finding>,
    written: Vec<WrittenPatch>,
) {
    let proxies = super::proxies(target);
    for patch in written {
        let reached: Vec<&Proxy> = proxies
            .iter()
            .filter(|proxy| {
                patch.contexts.is_empty()
                    || patch
                        .contexts
                        .iter()
                        .any(|context| context == "ANY" || context == super::fixes::context(proxy))
            })
            .collect();
        if reached.is_empty() {
            findings.push(patch.finding);
            continue;
        }
        let claims: Vec<(&str, Duration)> =
            patch.finding.evidence.iter().filter_map(stated).collect();
        let running: Vec<(&Proxy, Vec<(&'static str, Duration)>)> = reached
            .iter()
            .map(|proxy| (*proxy, timeouts(proxy)))
            .collect();
        let agreeing: Vec<&Proxy> = running
            .iter()
            .filter(|(_, set)| claims.iter().any(|claim| set.contains(claim)))
            .map(|(proxy, _)| *proxy)
            .collect();
        if agreeing.is_empty() {
            let labels: Vec<String> = reached.iter().map(|proxy| proxy.label()).collect();
            let mut finding = Finding::new(
                CheckId::StreamTimeout,
                Severity::Info,
                Basis::Effective,
                format!(
                    "{} sets timeouts that {} does not run: the patch does not match (workloadSelector, port, \
                     context) or was rejected",
                    patch.object,
                    labels.join(", ")
                ),
            );
            for line in &patch.finding.evidence {
                finding = finding.evidence(line.clone().with_note(format!(
                    "{}; not what the proxy runs",
                    line.note.as_deref().unwrap_or("as written")
                )));
            }
            findings.push(finding);
            continue;
        }
        // Join the proxy finding that shows one of the claimed values.
        let joined = findings.iter_mut().find(|finding| {
            finding.id == CheckId::StreamTimeout
                && finding.basis != Basis::Static
                && finding.evidence.iter().any(|line| {
                    agreeing.iter().any(|proxy| proxy.object == line.object)
                        && stated(line).is_some_and(|claim| claims.contains(&claim))
                })
        });
        match joined {
            Some(finding) => {
                for line in &patch.finding.evidence {
                    finding.evidence.push(line.clone().with_note(format!(
                        "{}; the proxy runs it",
                        line.note.as_deref().unwrap_or("as written")
                    )));
                }
                if let Some(fix) = &patch.finding.fix {
                    if !fix.yaml.is_empty() {
                        finding.fix = Some(fix.clone());
                    }
                }
            }
            None => findings.push(patch.finding),
        }
    }
}
