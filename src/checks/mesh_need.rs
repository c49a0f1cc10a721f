//! `mesh-need`: "Do you need Istio here?", asked per target after the five checks. Advice, not a
//! failure mode: always `info`, never a root cause, not counted for `--fail-on`.
//!
//! What needs the inference pods' **own sidecar** (it enforces the server side):
//! - mTLS required: the most specific PeerAuthentication in effect on the vLLM port is `STRICT`
//!   (mesh, then namespace, then workload; `UNSET` inherits; a workload policy's `portLevelMtls`
//!   wins). Without a sidecar nothing would enforce it.
//! - A DestinationRule for the workload's host that sets `tls.mode: ISTIO_MUTUAL`: callers would
//!   insist on Istio mTLS, which a pod without sidecar cannot answer.
//!
//! What uses the mesh but runs in the **callers' proxies** (the gateway or the client's sidecar),
//! so it keeps working when the inference pods have no sidecar: traffic splitting (route weights
//! across subsets or hosts), retries, fault injection, mirroring, and every DestinationRule or
//! VirtualService timeout and pool setting.
//!
//! - An AuthorizationPolicy or RequestAuthentication that selects the pods (by `selector`, or
//!   with none in their namespace or the root namespace): Istio enforces both in the selected
//!   workload's own proxy (Istio docs, "Authorization Policy" and "RequestAuthentication"), so
//!   without a sidecar nothing would. A policy with `targetRefs` binds a gateway or waypoint
//!   instead and is not counted.
//!
//! When nothing found needs the sidecar, the fix is the pod label
//! `sidecar.istio.io/inject: "false"` as a patch of the workload.

use super::fixes::{IstioKind, istio_ref, patch_instruction, workload_patch};
use super::target::{pod_metadata_path, route_reaches};
use super::{EvidenceLine, Fix};
use crate::evidence::objects::{DestinationRule, HttpRoute, TrafficPolicy, VirtualService};
use crate::evidence::resolve::policy::destination_rule_for;
use crate::evidence::{IstioPresence, ObjectRef, SidecarMode, TargetEvidence};
use serde::Serialize;
use serde_json::json;

/// The stable id of this advice in every output format.
pub const ID: &str = "mesh-need";
/// Its number in the JSON `findings` list: 0, since it is none of the five failure modes.
pub const NUMBER: u8 = 0;
/// The question the advice answers, as reports title it.
pub const QUESTION: &str = "Do you need Istio here?";

const INJECT_LABEL: &str = "sidecar.istio.io/inject";

/// The answer for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// Something found needs the inference pods' own sidecar: keep it.
    SidecarNeeded,
    /// Mesh routing is used, but it runs in the callers' proxies: the pods' sidecar is not needed.
    CallersOnly,
    /// Nothing found needs the mesh for these pods.
    NotNeeded,
}

/// The advice: what was found, the answer, and the patch that skips the sidecar when nothing
/// needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshNeed {
    pub answer: Answer,
    /// One line: the answer and why.
    pub title: String,
    /// The facts the answer rests on, those that need the sidecar first.
    pub evidence: Vec<EvidenceLine>,
    pub fix: Option<Fix>,
    /// What could not be checked, and defaults assumed.
    pub assumptions: Vec<String>,
}

/// The advice for a target whose pods carry (or will get) a sidecar; `None` for pods outside the
/// mesh, ambient pods (no sidecar to skip), clusters without Istio, and services known only
/// through Envoy or URLs (their mesh objects were not read, so nothing could be judged).
pub fn assess(target: &TargetEvidence) -> Option<MeshNeed> {
    if !target.mesh.sidecar_mode.has_sidecar()
        || target.mesh.istio == IstioPresence::NotInstalled
        || !target.workload.spec_known()
    {
        return None;
    }
    let mut needs: Vec<(String, EvidenceLine)> = Vec::new();
    let mut callers: Vec<(String, EvidenceLine)> = Vec::new();
    let mut context: Vec<EvidenceLine> = Vec::new();
    let mut assumptions = Vec::new();
    needs.extend(enforced_by_sidecar(target));

    let mtls = mtls_mode(target);
    match mtls.mode.as_str() {
        "STRICT" => needs.push((
            "mTLS is required".into(),
            mtls.line.with_note(
                "only a sidecar, or ambient mode's ztunnel, enforces mTLS on these pods",
            ),
        )),
        _ => context.push(mtls.line),
    }
    if let Some(assumption) = mtls.assumption {
        assumptions.push(assumption);
    }
    needs.extend(istio_mutual(target));
    for virtual_service in &target.mesh.virtual_services {
        callers.extend(routing_features(virtual_service, target));
        let gateways: Vec<&str> = virtual_service
            .spec
            .gateways
            .iter()
            .map(String::as_str)
            .filter(|gateway| *gateway != "mesh")
            .collect();
        if !gateways.is_empty() {
            let gateways = gateways.join(", ");
            context.push(
                EvidenceLine::new(
                    istio_ref(IstioKind::VirtualService, virtual_service),
                    "spec/gateways",
                    gateways,
                )
                .with_note("a gateway routes to the pods whether or not they have a sidecar"),
            );
        }
    }
    if let Some(count) = target.mesh.namespace_services {
        let namespace = &target.workload.namespace;
        let note = match count {
            0 => "no Service: nothing in the namespace for a mesh to route".to_string(),
            1 => "the inference Service alone: little service-to-service traffic for a mesh to secure or route".to_string(),
            _ => format!("{count} Services share the namespace"),
        };
        context.push(
            EvidenceLine::new(
                ObjectRef::new("Namespace", None, namespace),
                "Services",
                count.to_string(),
            )
            .with_note(note),
        );
    } else {
        assumptions.push(format!(
            "the Services of namespace {} could not be counted",
            target.workload.namespace
        ));
    }

    let (answer, title) = if !needs.is_empty() {
        let reasons = distinct(&needs);
        (
            Answer::SidecarNeeded,
            format!(
                "{QUESTION} Yes: {}; keep the sidecar on {}",
                reasons.join(" and "),
                target.workload.target_name()
            ),
        )
    } else if !callers.is_empty() {
        let features = distinct(&callers);
        (
            Answer::CallersOnly,
            format!(
                "{QUESTION} For routing only ({}), which runs in the callers' proxies: the pods of {} do not need their own sidecar",
                features.join(", "),
                target.workload.target_name()
            ),
        )
    } else {
        (
            Answer::NotNeeded,
            format!(
                "{QUESTION} Nothing found needs it: no required mTLS, no traffic splitting or other mesh routing; {} can skip the sidecar",
                target.workload.target_name()
            ),
        )
    };
    let fix = match answer {
        Answer::SidecarNeeded => None,
        Answer::CallersOnly | Answer::NotNeeded => skip_sidecar_fix(target),
    };
    let mut evidence: Vec<EvidenceLine> = needs.into_iter().map(|(_, line)| line).collect();
    evidence.extend(callers.into_iter().map(|(_, line)| line));
    evidence.extend(context);
    Some(MeshNeed {
        answer,
        title,
        evidence,
        fix,
        assumptions,
    })
}

/// The security policies that select the pods and that only their own sidecar enforces, each
/// with its evidence line.
pub fn enforced_by_sidecar(target: &TargetEvidence) -> Vec<(String, EvidenceLine)> {
    let mesh = &target.mesh;
    let authorization = mesh.authorization_policies.iter().map(|policy| {
        (
            "an AuthorizationPolicy selects the pods".to_string(),
            EvidenceLine::new(
                istio_ref(IstioKind::AuthorizationPolicy, policy),
                "spec/selector",
                selector_text(policy.spec.selector.as_ref()),
            )
            .with_note("only the pods' own sidecar enforces it: without one, nothing would"),
        )
    });
    let authentication = mesh.request_authentications.iter().map(|policy| {
        (
            "a RequestAuthentication selects the pods".to_string(),
            EvidenceLine::new(
                istio_ref(IstioKind::RequestAuthentication, policy),
                "spec/selector",
                selector_text(policy.spec.selector.as_ref()),
            )
            .with_note(
                "only the pods' own sidecar validates its tokens: without one, nothing would",
            ),
        )
    });
    authorization.chain(authentication).collect()
}

fn selector_text(selector: Option<&crate::evidence::objects::WorkloadSelector>) -> String {
    match selector {
        Some(selector) if !selector.labels.is_empty() => selector
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>: every workload of its namespace".to_string(),
    }
}

/// The reasons of `found`, each once, in order.
fn distinct(found: &[(String, EvidenceLine)]) -> Vec<&str> {
    let mut reasons: Vec<&str> = Vec::new();
    for (reason, _) in found {
        if !reasons.contains(&reason.as_str()) {
            reasons.push(reason);
        }
    }
    reasons
}

/// The mTLS mode in effect on the vLLM port, and the fact behind it.
struct Mtls {
    mode: String,
    line: EvidenceLine,
    assumption: Option<String>,
}

fn mtls_mode(target: &TargetEvidence) -> Mtls {
    let port = target.workload.vllm.port.to_string();
    let set = |mode: &Option<String>| {
        mode.as_deref()
            .map(str::to_ascii_uppercase)
            .filter(|mode| mode != "UNSET")
    };
    let mut found: Option<(String, EvidenceLine)> = None;
    // Ordered mesh-wide, namespace, workload: the last mode set is the most specific.
    for policy in &target.mesh.peer_authentications {
        let object = istio_ref(IstioKind::PeerAuthentication, policy);
        if let Some(mode) = policy.spec.mtls.as_ref().and_then(|mtls| set(&mtls.mode)) {
            found = Some((
                mode.clone(),
                EvidenceLine::new(object.clone(), "spec/mtls/mode", mode),
            ));
        }
        let port_mode = policy
            .spec
            .selector
            .as_ref()
            .and_then(|_| policy.spec.port_level_mtls.get(&port))
            .and_then(|mtls| set(&mtls.mode));
        if let Some(mode) = port_mode {
            found = Some((
                mode.clone(),
                EvidenceLine::new(object, format!("spec/portLevelMtls/{port}/mode"), mode),
            ));
        }
    }
    match found {
        Some((mode, line)) => {
            let line = match mode.as_str() {
                "STRICT" => line,
                "PERMISSIVE" => line.with_note("mTLS is accepted, not required"),
                _ => line.with_note("mTLS is off for these pods"),
            };
            Mtls {
                mode,
                line,
                assumption: None,
            }
        }
        None => Mtls {
            mode: "PERMISSIVE".into(),
            line: EvidenceLine::new(
                target.workload.object_ref(),
                "PeerAuthentication",
                "<none applies>",
            )
            .with_note("Istio's default PERMISSIVE: mTLS is accepted, not required"),
            assumption: Some(
                "no PeerAuthentication applies: Istio's default PERMISSIVE assumed (a mesh-wide policy outside the objects read would change that)".into(),
            ),
        },
    }
}

/// The DestinationRules Istio applies to the workload's hosts (the first per host; all of them
/// when no Service is known) that make callers use Istio mTLS explicitly.
fn istio_mutual(target: &TargetEvidence) -> Vec<(String, EvidenceLine)> {
    let rules = &target.mesh.destination_rules;
    let applied: Vec<&DestinationRule> = if target.mesh.services.is_empty() {
        rules.iter().collect()
    } else {
        let mut applied: Vec<&DestinationRule> = Vec::new();
        for service in &target.mesh.services {
            if let Some(rule) = destination_rule_for(rules, service)
                && !applied.iter().any(|seen| std::ptr::eq(*seen, rule))
            {
                applied.push(rule);
            }
        }
        applied
    };
    let mut found = Vec::new();
    for rule in applied {
        let object = istio_ref(IstioKind::DestinationRule, rule);
        let mut policies: Vec<(String, &TrafficPolicy)> = Vec::new();
        if let Some(policy) = &rule.spec.traffic_policy {
            policies.push(("spec/trafficPolicy".into(), policy));
        }
        for (index, subset) in rule.spec.subsets.iter().enumerate() {
            if let Some(policy) = &subset.traffic_policy {
                policies.push((format!("spec/subsets[{index}]/trafficPolicy"), policy));
            }
        }
        for (path, policy) in policies {
            let mut modes = vec![(format!("{path}/tls/mode"), policy.tls.as_ref())];
            for (index, port) in policy.port_level_settings.iter().enumerate() {
                modes.push((
                    format!("{path}/portLevelSettings[{index}]/tls/mode"),
                    port.other.get("tls"),
                ));
            }
            for (path, tls) in modes {
                let mode = tls
                    .and_then(|tls| tls.get("mode"))
                    .and_then(|mode| mode.as_str());
                if mode == Some("ISTIO_MUTUAL") {
                    found.push((
                        "DestinationRule requires Istio mTLS".to_string(),
                        EvidenceLine::new(object.clone(), path, "ISTIO_MUTUAL").with_note(
                            "callers insist on Istio mTLS, which a pod without sidecar cannot answer",
                        ),
                    ));
                }
            }
        }
    }
    found
}

/// The mesh routing a VirtualService does for the target: splits, retries, faults, mirrors.
fn routing_features(
    virtual_service: &VirtualService,
    target: &TargetEvidence,
) -> Vec<(String, EvidenceLine)> {
    let object = istio_ref(IstioKind::VirtualService, virtual_service);
    let note =
        "runs in the callers' proxies, the gateway's or a client sidecar's, not in these pods";
    let mut found = Vec::new();
    for (index, route) in virtual_service.spec.http.iter().enumerate() {
        if !route_reaches(route, virtual_service, target) {
            continue;
        }
        if let Some(split) = split(route) {
            found.push((
                "traffic splitting".to_string(),
                EvidenceLine::new(object.clone(), format!("spec/http[{index}]/route"), split)
                    .with_note(note),
            ));
        }
        if let Some(retries) = &route.retries
            && retries.attempts.is_some_and(|attempts| attempts > 0)
        {
            let attempts = retries.attempts.unwrap_or_default();
            found.push((
                "retries".to_string(),
                EvidenceLine::new(
                    object.clone(),
                    format!("spec/http[{index}]/retries/attempts"),
                    attempts.to_string(),
                )
                .with_note(note),
            ));
        }
        for (field, feature) in [
            ("fault", "fault injection"),
            ("mirror", "mirroring"),
            ("mirrors", "mirroring"),
        ] {
            if route.other.contains_key(field) {
                found.push((
                    feature.to_string(),
                    EvidenceLine::new(object.clone(), format!("spec/http[{index}]/{field}"), "set")
                        .with_note(note),
                ));
            }
        }
    }
    found
}

/// `90% vllm (subset v1), 10% vllm (subset v2)` when a route sends traffic to more than one
/// destination.
fn split(route: &HttpRoute) -> Option<String> {
    if route.route.len() < 2 {
        return None;
    }
    let parts: Vec<String> = route
        .route
        .iter()
        .map(|destination| {
            let mut text = destination.destination.host.clone();
            if let Some(subset) = &destination.destination.subset {
                text.push_str(&format!(" (subset {subset})"));
            }
            match destination.weight {
                Some(weight) => format!("{weight}% {text}"),
                None => text,
            }
        })
        .collect();
    Some(parts.join(", "))
}

/// The pod label that keeps the injector away, as a patch of the workload.
fn skip_sidecar_fix(target: &TargetEvidence) -> Option<Fix> {
    let workload = &target.workload;
    if !workload.spec_known() {
        return None;
    }
    let yaml = workload_patch(
        workload,
        json!({ "metadata": { "labels": { INJECT_LABEL: "false" } } }),
    )?;
    let path = pod_metadata_path(workload);
    let mode_note = match target.mesh.sidecar_mode {
        SidecarMode::Injected => "",
        _ => " (the running pods keep their proxy until they are recreated)",
    };
    Some(Fix {
        summary: format!(
            "Skip the sidecar for the inference pods with the label {path}/labels/{INJECT_LABEL}: \"false\"{mode_note}; they lose mesh telemetry on the inbound side and callers reach them in plaintext; {}.",
            patch_instruction(workload)
        ),
        yaml,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{object, target};
    use crate::evidence::WorkloadKind;

    fn strict(namespace: &str) -> crate::evidence::objects::PeerAuthentication {
        object(&format!(
            "metadata: {{name: default, namespace: {namespace}}}\nspec: {{mtls: {{mode: STRICT}}}}"
        ))
    }

    #[test]
    fn an_authorization_policy_on_the_pods_needs_their_sidecar() {
        let mut target = target();
        target.mesh.authorization_policies.push(object(
            "metadata: {name: only-gateway, namespace: llm}\nspec: {selector: {matchLabels: {app: vllm}}, action: ALLOW}",
        ));
        let advice = assess(&target).unwrap();
        assert_eq!(advice.answer, Answer::SidecarNeeded, "{advice:#?}");
        assert!(
            advice
                .title
                .contains("an AuthorizationPolicy selects the pods"),
            "{}",
            advice.title
        );
        assert_eq!(advice.evidence[0].value, "app=vllm");
        assert!(advice.fix.is_none());
    }

    #[test]
    fn strict_mtls_needs_the_sidecar_and_offers_no_skip() {
        let mut target = target();
        target.mesh.peer_authentications = vec![strict("istio-system")];
        let advice = assess(&target).unwrap();
        assert_eq!(advice.answer, Answer::SidecarNeeded);
        assert!(
            advice.title.contains("Yes: mTLS is required"),
            "{}",
            advice.title
        );
        assert_eq!(advice.evidence[0].path, "spec/mtls/mode");
        assert_eq!(advice.evidence[0].value, "STRICT");
        assert!(advice.fix.is_none());
        assert!(
            advice
                .assumptions
                .iter()
                .all(|a| !a.contains("AuthorizationPolicy")),
            "AuthorizationPolicies are read now: {:?}",
            advice.assumptions
        );
    }

    #[test]
    fn a_more_specific_permissive_policy_lifts_the_need() {
        let mut target = target();
        let workload: crate::evidence::objects::PeerAuthentication = object(
            "metadata: {name: vllm, namespace: llm}\nspec: {selector: {matchLabels: {app: vllm}}, portLevelMtls: {\"8000\": {mode: PERMISSIVE}}}",
        );
        target.mesh.peer_authentications = vec![strict("llm"), workload];
        let advice = assess(&target).unwrap();
        assert_eq!(advice.answer, Answer::NotNeeded, "{advice:#?}");
        assert!(
            advice
                .evidence
                .iter()
                .any(|line| line.path == "spec/portLevelMtls/8000/mode")
        );
    }

    #[test]
    fn nothing_needed_suggests_skipping_the_sidecar_with_a_patch() {
        let advice = assess(&target()).unwrap();
        assert_eq!(advice.answer, Answer::NotNeeded);
        assert!(advice.title.contains("deploy/vllm can skip the sidecar"));
        let services = advice
            .evidence
            .iter()
            .find(|line| line.path == "Services")
            .unwrap();
        assert_eq!(services.value, "1");
        assert!(
            advice
                .assumptions
                .iter()
                .any(|a| a.contains("default PERMISSIVE"))
        );
        let fix = advice.fix.unwrap();
        assert!(
            fix.summary
                .contains("kubectl patch deployment/vllm -n llm --patch-file"),
            "{}",
            fix.summary
        );
        let patch: serde_json::Value = serde_yaml::from_str(&fix.yaml).unwrap();
        assert_eq!(
            patch["spec"]["template"]["metadata"]["labels"][INJECT_LABEL],
            "false"
        );
    }

    #[test]
    fn splits_and_retries_run_in_the_callers_proxies() {
        let mut target = target();
        target.mesh.virtual_services = vec![object(
            r#"
metadata: {name: vllm, namespace: llm}
spec:
  hosts: [vllm]
  http:
  - route:
    - {destination: {host: vllm, subset: v1}, weight: 90}
    - {destination: {host: vllm, subset: v2}, weight: 10}
    retries: {attempts: 2}
    mirror: {host: vllm-shadow}
"#,
        )];
        let advice = assess(&target).unwrap();
        assert_eq!(advice.answer, Answer::CallersOnly, "{advice:#?}");
        assert!(
            advice
                .title
                .contains("traffic splitting, retries, mirroring"),
            "{}",
            advice.title
        );
        let split = &advice.evidence[0];
        assert_eq!(split.path, "spec/http[0]/route");
        assert_eq!(split.value, "90% vllm (subset v1), 10% vllm (subset v2)");
        assert!(advice.fix.is_some(), "the pods' own sidecar is not needed");
    }

    #[test]
    fn zero_retry_attempts_are_not_a_feature_in_use() {
        let mut target = target();
        target.mesh.virtual_services = vec![object(
            "metadata: {name: vllm, namespace: llm}\nspec: {hosts: [vllm], http: [{route: [{destination: {host: vllm}}], retries: {attempts: 0}}]}",
        )];
        assert_eq!(assess(&target).unwrap().answer, Answer::NotNeeded);
    }

    #[test]
    fn istio_mutual_in_a_destination_rule_needs_the_sidecar() {
        let mut target = target();
        target.mesh.destination_rules = vec![object(
            "metadata: {name: vllm, namespace: llm}\nspec: {host: vllm, trafficPolicy: {portLevelSettings: [{port: {number: 8000}, tls: {mode: ISTIO_MUTUAL}}]}}",
        )];
        let advice = assess(&target).unwrap();
        assert_eq!(advice.answer, Answer::SidecarNeeded);
        assert_eq!(
            advice.evidence[0].path,
            "spec/trafficPolicy/portLevelSettings[0]/tls/mode"
        );
    }

    #[test]
    fn a_shadowed_destination_rule_does_not_count() {
        let mut target = target();
        target.mesh.destination_rules = vec![
            object("metadata: {name: applied, namespace: llm}\nspec: {host: vllm}"),
            object(
                "metadata: {name: shadowed, namespace: llm}\nspec: {host: vllm, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}",
            ),
        ];
        assert_eq!(assess(&target).unwrap().answer, Answer::NotNeeded);
        target.mesh.destination_rules.reverse();
        let advice = assess(&target).unwrap();
        assert_eq!(advice.answer, Answer::SidecarNeeded);
        assert_eq!(advice.evidence[0].path, "spec/trafficPolicy/tls/mode");
    }

    #[test]
    fn no_advice_outside_the_sidecar_mesh() {
        let mut outside = target();
        outside.mesh.sidecar_mode = SidecarMode::None;
        assert!(assess(&outside).is_none());
        let mut ambient = target();
        ambient.mesh.sidecar_mode = SidecarMode::Ambient;
        assert!(assess(&ambient).is_none());
        let mut no_istio = target();
        no_istio.mesh.istio = IstioPresence::NotInstalled;
        assert!(assess(&no_istio).is_none());
        let mut endpoint = target();
        endpoint.workload.kind = WorkloadKind::Endpoint;
        assert!(assess(&endpoint).is_none(), "nothing read to judge by");
    }

    #[test]
    fn the_verdict_adds_the_advice_without_counting_it() {
        let target = target();
        let evidence = crate::verdict::tests::evidence(vec![target.clone()], Vec::new());
        let settings = crate::checks::test_support::settings();
        let diagnosis =
            crate::verdict::diagnose(&evidence, &settings, crate::checks::Severity::Info);
        let judged = &diagnosis.targets[0];
        assert_eq!(judged.mesh_need, assess(&target));
        assert!(judged.mesh_need.is_some());
        let worst = judged.findings.iter().map(|finding| finding.severity).max();
        assert_eq!(
            diagnosis.worst, worst,
            "only the five checks' findings count"
        );
        assert_eq!(diagnosis.failed, worst.is_some());
    }

    #[test]
    fn unknown_service_count_and_running_pods_are_said() {
        let mut target = target();
        target.mesh.namespace_services = None;
        target.mesh.sidecar_mode = SidecarMode::Classic;
        target.workload.kind = WorkloadKind::Pod;
        let advice = assess(&target).unwrap();
        assert!(
            advice
                .assumptions
                .iter()
                .any(|a| a.contains("could not be counted"))
        );
        let fix = advice.fix.unwrap();
        assert!(fix.summary.contains("recreated"), "{}", fix.summary);
    }
}
