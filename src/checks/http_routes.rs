//! Gateway API HTTPRoutes in front of the target, judged by what Istio turns them into
//! (`resolve::gateway_routes::istio_rule`): for check 2 the route and per-try timeouts of each
//! rule that reaches the target, as VirtualService `timeout` and `retries.perTryTimeout` are
//! judged; for check 3 a `retry` that repeats the 503s a pool overflow answers with.

use super::fixes::{IstioKind, istio_label, istio_manifest, istio_ref};
use super::{Basis, CheckId, EvidenceLine, Finding, Severity};
use crate::evidence::generation::gateway_matches_admit;
use crate::evidence::objects::KubeHttpRoute;
use crate::evidence::objects::gateway_api::RouteTimeouts;
use crate::evidence::resolve::gateway_routes::{
    BACKEND_REQUEST_FIELD, Controller, IstioRule, controller_of, controller_rule, rule_reaches,
};
use crate::evidence::{ObjectRef, TargetEvidence};
use crate::units::duration::display;
use std::time::Duration;

/// Where Istio's translation is read (cited in findings and in docs/modes/gateway-api.md).
pub const TRANSLATION: &str =
    "Istio's convertHTTPRoute (pilot/pkg/config/kube/gateway/conversion.go)";

/// The rules of `route` that send to the target, with their index and their translation by
/// the route's controller.
pub fn reaching_rules<'a>(
    target: &TargetEvidence,
    route: &'a KubeHttpRoute,
) -> Vec<(usize, IstioRule<'a>)> {
    let (controller, _) = route_controller(target, route);
    route
        .spec
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| {
            rule_reaches(
                route,
                rule,
                &target.mesh.services,
                &target.mesh.inference_pools,
            )
        })
        .map(|(index, rule)| (index, controller_rule(&controller, rule)))
        .collect()
}

/// The controller that runs `route`: that of the first parent Gateway read (a route without
/// one, a mesh route on a Service, runs in Istio's proxies).
pub fn route_controller(target: &TargetEvidence, route: &KubeHttpRoute) -> (Controller, String) {
    let route_namespace = route.metadata.namespace.as_deref().unwrap_or_default();
    route
        .spec
        .parent_refs
        .iter()
        .filter(|parent| parent.is_gateway())
        .find_map(|parent| {
            let namespace = parent.namespace.as_deref().unwrap_or(route_namespace);
            target.mesh.kube_gateways.iter().find(|gateway| {
                gateway.metadata.namespace.as_deref().unwrap_or_default() == namespace
                    && gateway.metadata.name.as_deref() == Some(parent.name.as_str())
            })
        })
        .map_or_else(
            || {
                (
                    Controller::Istio,
                    "no parent Gateway read: Istio's translation assumed".to_string(),
                )
            },
            |gateway| controller_of(gateway, &target.mesh.gateway_classes),
        )
}

/// Check 2 on each HTTPRoute of the target: `(the route, its finding if a deadline cuts)`.
pub fn stream_findings(
    target: &TargetEvidence,
    expected: Duration,
) -> Vec<(ObjectRef, Option<Finding>)> {
    target
        .mesh
        .http_routes
        .iter()
        .map(|route| {
            (
                istio_ref(IstioKind::HttpRoute, route),
                route_finding(target, route, expected),
            )
        })
        .collect()
}

fn route_finding(
    target: &TargetEvidence,
    route: &KubeHttpRoute,
    expected: Duration,
) -> Option<Finding> {
    let object = istio_ref(IstioKind::HttpRoute, route);
    let mut lines = Vec::new();
    let mut cut: Option<(Duration, &'static str, usize)> = None;
    let mut shortest_per_try: Option<Duration> = None;
    let mut fixed = route.clone();
    let controller = route_controller(target, route);
    let istio = controller.0 == Controller::Istio;
    for (index, run) in reaching_rules(target, route) {
        let written = route.spec.rules.get(index);
        if written.is_some_and(|rule| !gateway_matches_admit(&rule.matches)) {
            continue;
        }
        let per_try = run
            .per_try_timeout
            .filter(|_| run.attempts.is_none_or(|(attempts, _)| attempts != 0));
        let deadlines = [
            run.route_timeout.map(|timeout| {
                let how = match (istio, timeout.field == BACKEND_REQUEST_FIELD) {
                    (true, true) => {
                        "without retry, Istio writes backendRequest as the route timeout"
                    }
                    (true, false) => "Istio writes it as the route timeout",
                    (false, _) => "the gateway's controller runs it as the route timeout",
                };
                (
                    timeout,
                    "route timeout",
                    how,
                    "the route deadline cuts the stream at",
                )
            }),
            per_try.map(|timeout| {
                (
                    timeout,
                    "per-try timeout",
                    if istio {
                        "with retry, Istio writes backendRequest as the per-try timeout"
                    } else {
                        "backendRequest bounds each attempt"
                    },
                    "",
                )
            }),
        ];
        let mut shortened = false;
        for (timeout, what, how, cuts) in deadlines.into_iter().flatten() {
            if timeout.duration >= expected {
                continue;
            }
            shortened = true;
            let per_try = what == "per-try timeout";
            let consequence = if per_try {
                crate::checks::proxy::stream::PER_TRY_NOTE.to_string()
            } else {
                format!("{cuts} {}", display(timeout.duration))
            };
            lines.push(
                EvidenceLine::new(
                    object.clone(),
                    format!("spec/rules[{index}]/{}", timeout.field),
                    timeout.value,
                )
                .with_note(format!(
                    "shorter than the {} expected generation: {how}; {consequence}",
                    display(expected)
                )),
            );
            if per_try {
                shortest_per_try =
                    Some(shortest_per_try.map_or(timeout.duration, |d| d.min(timeout.duration)));
            } else if cut.is_none_or(|(shortest, _, _)| timeout.duration < shortest) {
                cut = Some((timeout.duration, what, lines.len() - 1));
            }
        }
        if shortened && let Some(rule) = fixed.spec.rules.get_mut(index) {
            let timeouts = rule.timeouts.get_or_insert_with(RouteTimeouts::default);
            timeouts.request = Some(display(expected));
            timeouts.backend_request = None;
        }
    }
    let label = istio_label(IstioKind::HttpRoute, route);
    let (severity, headline) = match (cut, shortest_per_try) {
        (Some((duration, what, line)), _) => {
            lines[..=line].rotate_right(1);
            (
                Severity::Critical,
                format!(
                    "{label} cuts generations at {} ({what}); up to {} expected",
                    display(duration),
                    display(expected)
                ),
            )
        }
        (None, Some(per_try)) => (
            Severity::Warning,
            format!(
                "{label} {}",
                crate::checks::proxy::stream::per_try_headline(per_try)
            ),
        ),
        (None, None) => return None,
    };
    let mut finding = Finding::new(CheckId::StreamTimeout, severity, Basis::Static, headline);
    for line in lines {
        finding = finding.evidence(line);
    }
    finding = finding.assume(translation_words(&controller));
    if controller.0 == Controller::Gke {
        return Some(gke_fix(target, finding, expected));
    }
    Some(match istio_manifest(IstioKind::HttpRoute, &fixed) {
        Some(yaml) => finding.fix(
            format!(
                "Set timeouts.request to at least the expected generation ({}) and drop backendRequest (each attempt \
                 then gets the route timeout); \"0s\" disables the deadline. Apply with `kubectl apply -f fix.yaml`.",
                display(expected)
            ),
            yaml,
        ),
        None => finding,
    })
}

/// On GKE the load balancer's backend timeout is the deadline: a GCPBackendPolicy on each of the
/// target's Services raises it (`networking.gke.io/v1`, `spec.default.timeoutSec`).
fn gke_fix(target: &TargetEvidence, finding: Finding, expected: Duration) -> Finding {
    let seconds = expected.as_secs().max(1);
    let documents: Vec<String> = target
        .mesh
        .services
        .iter()
        .map(|service| {
            format!(
                "apiVersion: networking.gke.io/v1\nkind: GCPBackendPolicy\nmetadata:\n  name: {name}-timeout\n  \
                 namespace: {namespace}\nspec:\n  default:\n    timeoutSec: {seconds}\n  targetRef:\n    group: \"\"\n    \
                 kind: Service\n    name: {name}\n",
                name = service.name,
                namespace = service.namespace
            )
        })
        .collect();
    finding.fix(
        format!(
            "Raise the load balancer's backend service timeout to at least the expected generation ({}) with a \
             GCPBackendPolicy on the inference Service (HTTPRoute timeouts do not set it); apply with \
             `kubectl apply -f fix.yaml`.",
            display(expected)
        ),
        documents.join("---\n"),
    )
}

/// How the route's controller runs it, as an assumption of the finding.
fn translation_words((controller, how): &(Controller, String)) -> String {
    match controller {
        Controller::Istio => format!(
            "the HTTPRoute as Istio runs it: {TRANSLATION} turns a non-zero timeouts.request into the route timeout, \
             and timeouts.backendRequest into the per-try timeout (with retry) or the route timeout (without)"
        ),
        Controller::EnvoyGateway => format!(
            "the HTTPRoute as Envoy Gateway runs it ({how}): timeouts.request is the route timeout, and a rule without \
             it gets Envoy's default 15s (Envoy Gateway docs, HTTP Timeouts); timeouts.backendRequest bounds each attempt"
        ),
        Controller::Gke => format!(
            "the HTTPRoute as GKE runs it ({how}): the load balancer's backend service timeout bounds each response, 30s \
             unless a GCPBackendPolicy sets timeoutSec (GKE docs, Gateway policies); GCPBackendPolicy is not read here"
        ),
        Controller::Other(name) => format!(
            "the HTTPRoute as written ({how}): {name} is not a controller this tool models; no default of it is assumed"
        ),
    }
}

/// Status codes whose retry repeats a rejection: a pool overflow answers 503 (UO), a rate limit 429.
const REJECTION_CODES: [i64; 2] = [503, 429];

/// Check 3 on each HTTPRoute: a rule that retries the codes an overflowing pool answers with.
pub fn retry_findings(target: &TargetEvidence) -> Vec<Finding> {
    let mut findings = Vec::new();
    for route in &target.mesh.http_routes {
        let object = istio_ref(IstioKind::HttpRoute, route);
        let mut lines = Vec::new();
        let mut worst_attempts = 0;
        for (index, run) in reaching_rules(target, route) {
            let Some((attempts, defaulted)) = run.attempts.filter(|(attempts, _)| *attempts > 0)
            else {
                continue;
            };
            let Some(retry) = route.spec.rules[index].retry.as_ref() else {
                continue;
            };
            let codes: Vec<String> = retry
                .codes
                .iter()
                .filter(|code| REJECTION_CODES.contains(code))
                .map(i64::to_string)
                .collect();
            if codes.is_empty() {
                continue;
            }
            worst_attempts = worst_attempts.max(attempts);
            let attempts_words = if defaulted {
                format!("{attempts} (retry.attempts unset: Istio's default)")
            } else {
                attempts.to_string()
            };
            lines.push(
                EvidenceLine::new(
                    object.clone(),
                    format!("spec/rules[{index}]/retry/codes"),
                    format!("[{}]", codes.join(", ")),
                )
                .with_note(format!(
                    "Istio retries these codes {attempts_words} times: a 503 from an overflowing pool (UO) or a 429 \
                     is sent again to the same saturated replicas, up to {} times the load",
                    attempts + 1
                )),
            );
        }
        if lines.is_empty() {
            continue;
        }
        let mut finding = Finding::new(
            CheckId::ConnectionPool,
            Severity::Warning,
            Basis::Static,
            format!(
                "{} retries rejected requests up to {worst_attempts} times: an overflow multiplies the load on a full pool",
                istio_label(IstioKind::HttpRoute, route)
            ),
        );
        for line in lines {
            finding = finding.evidence(line);
        }
        finding = finding
            .assume(format!(
                "{TRANSLATION} writes retry.codes into retryOn beside connect-failure,refused-stream,unavailable,cancelled"
            ))
            .fix(
                "Drop 503 and 429 from retry.codes (connection failures are retried without them), or size the \
                 connection pool for the retries; vLLM answers a full queue slowly, not with 503.",
                "",
            );
        findings.push(finding);
    }
    findings
}
