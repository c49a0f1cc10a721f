//! The limits Gateway API HTTPRoutes set on the rules that reach the target, as Istio translates
//! them (`evidence::resolve::gateway_routes::istio_rule`, after pilot's `convertHTTPRoute` in
//! `pilot/pkg/config/kube/gateway/conversion.go`): `timeouts.request` is the route timeout, a
//! non-zero `timeouts.backendRequest` the per-try timeout when the rule retries, else the route
//! timeout. Basis: as written.

use crate::checks::fixes::{IstioKind, istio_ref};
use crate::checks::http_routes::reaching_rules;
use crate::evidence::TargetEvidence;
use crate::evidence::generation::gateway_matches_admit;
use crate::evidence::limits::{AppliesTo, Limit, LimitBasis, LimitKind, LimitValue};
use crate::evidence::resolve::gateway_routes::Translated;

pub fn read(target: &TargetEvidence) -> Vec<Limit> {
    let mut facts = Vec::new();
    for route in &target.mesh.http_routes {
        let object = istio_ref(IstioKind::HttpRoute, route);
        for (index, rule) in reaching_rules(target, route) {
            let generation = route
                .spec
                .rules
                .get(index)
                .is_none_or(|written| gateway_matches_admit(&written.matches));
            let timeouts = [
                (rule.route_timeout, LimitKind::RouteTimeout),
                (rule.per_try_timeout, LimitKind::PerTryTimeout),
            ];
            for (translated, kind) in timeouts {
                let Some(Translated {
                    field,
                    value,
                    duration,
                }) = translated
                else {
                    continue;
                };
                facts.push(Limit {
                    kind,
                    value: LimitValue::Time(duration),
                    object: object.clone(),
                    path: format!("spec/rules[{index}]/{field}"),
                    field: match kind {
                        LimitKind::PerTryTimeout => {
                            "HTTPRoute rules[].timeouts (per try, as Istio writes it)"
                        }
                        _ => "HTTPRoute rules[].timeouts (route, as Istio writes it)",
                    },
                    value_text: value.to_string(),
                    basis: LimitBasis::Written,
                    applies_to: AppliesTo::Route(format!("rules[{index}]")),
                    generation,
                    configured_by: None,
                    setting: value.to_string(),
                });
            }
        }
    }
    facts
}
