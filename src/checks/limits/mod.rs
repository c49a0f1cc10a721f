//! One reader per API turns what bounds the target's inference path into `Limit` facts
//! (`evidence::limits`): Istio's objects as written (`istio`), Gateway API routes as Istio translates them
//! (`gateway_api`) and each Envoy's effective config (`envoy`). A reader decides nothing about severity; the judges of each mode and the probe
//! planner (`verdict::probe_plan`) read the same facts. A new gateway controller or API is one
//! more file here and its line in [`read`].

pub mod envoy;
pub mod gateway_api;
pub mod istio;

use crate::evidence::TargetEvidence;
use crate::evidence::limits::Limits;

/// Every limit fact of `target`: what the proxies run first, then what the objects say.
pub fn read(target: &TargetEvidence) -> Limits {
    let mut facts = envoy::read(target);
    facts.extend(istio::read(target));
    facts.extend(gateway_api::read(target));
    Limits { facts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{object, target};
    use crate::evidence::limits::{LimitBasis, LimitKind};
    use std::time::Duration;

    #[test]
    fn each_api_reads_its_own_limits_and_the_shortest_deadline_is_found_among_them() {
        let mut target = target();
        target.mesh.virtual_services.push(object(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm]
  http:
  - route: [{destination: {host: vllm}}]
    timeout: 120s
"#,
        ));
        target.mesh.http_routes.push(object(
            r#"
metadata: {name: llm, namespace: llm}
spec:
  parentRefs: [{name: gw}]
  rules:
  - backendRefs: [{name: vllm, port: 8000}]
    timeouts: {request: 45s}
  - backendRefs: [{name: elsewhere, port: 8000}]
    timeouts: {request: 1s}
"#,
        ));
        let limits = read(&target);
        let deadlines: Vec<(&str, &str, Duration)> = limits
            .of_kind(LimitKind::RouteTimeout)
            .map(|limit| {
                (
                    limit.object.kind.as_str(),
                    limit.path.as_str(),
                    limit.value.time().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            deadlines,
            [
                (
                    "VirtualService",
                    "spec/http[0]/timeout",
                    Duration::from_secs(120)
                ),
                (
                    "HTTPRoute",
                    "spec/rules[0]/timeouts/request",
                    Duration::from_secs(45)
                ),
            ],
            "the rule to another backend does not reach the target"
        );
        let shortest = limits.shortest_deadline().unwrap();
        assert_eq!(shortest.object.name, "llm");
        assert_eq!(shortest.basis, LimitBasis::Written);
    }
}
