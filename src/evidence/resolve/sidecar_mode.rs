//! How a pod meets the mesh (docs/facts.md "Sidecar mode of a pod"): a proxy already present
//! (classic or native sidecar), ambient, or what Istio's injector webhooks will decide.
//!
//! Injection follows the default webhooks istiod installs: a `disabled`/`false` from the namespace
//! label `istio-injection` or the pod label `sidecar.istio.io/inject` wins; then the namespace
//! labels `istio-injection=enabled` / `istio.io/rev`, the pod labels `sidecar.istio.io/inject=true`
//! / `istio.io/rev` ask for it. The older pod *annotation* `sidecar.istio.io/inject` is read by the
//! injector only once a webhook fired: `false` opts out, `true` alone injects nothing.

use crate::evidence::SidecarMode;
use k8s_openapi::api::core::v1::PodSpec;
use std::collections::BTreeMap;

const PROXY: &str = "istio-proxy";
const INJECT: &str = "sidecar.istio.io/inject";
const NAMESPACE_INJECTION: &str = "istio-injection";
const REVISION: &str = "istio.io/rev";
const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";

/// The mode, and the label, annotation or container that decided it.
pub fn decide(
    spec: &PodSpec,
    pod_labels: &BTreeMap<String, String>,
    pod_annotations: &BTreeMap<String, String>,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> (SidecarMode, String) {
    if spec.containers.iter().any(|c| c.name == PROXY) {
        return (
            SidecarMode::Classic,
            "container istio-proxy in the pod".to_string(),
        );
    }
    let native = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == PROXY && c.restart_policy.as_deref() == Some("Always"));
    if native {
        return (
            SidecarMode::Native,
            "init container istio-proxy with restartPolicy: Always (native sidecar)".to_string(),
        );
    }

    let pod_mode = pod_labels.get(DATAPLANE_MODE).map(String::as_str);
    if pod_mode == Some("ambient") {
        return (
            SidecarMode::Ambient,
            format!("pod label {DATAPLANE_MODE}=ambient"),
        );
    }
    let namespace_ambient = namespace_labels
        .and_then(|labels| labels.get(DATAPLANE_MODE))
        .map(String::as_str)
        == Some("ambient");
    if namespace_ambient && pod_mode != Some("none") {
        return (
            SidecarMode::Ambient,
            format!("namespace label {DATAPLANE_MODE}=ambient"),
        );
    }

    let (wanted, reason) = injection(pod_labels, pod_annotations, namespace_labels);
    let mode = if wanted {
        SidecarMode::Injected
    } else {
        SidecarMode::None
    };
    (mode, reason)
}

fn injection(
    pod_labels: &BTreeMap<String, String>,
    pod_annotations: &BTreeMap<String, String>,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> (bool, String) {
    let pod_label = pod_labels.get(INJECT).map(String::as_str);
    let annotation = pod_annotations.get(INJECT).map(String::as_str);
    let empty = BTreeMap::new();
    let namespace = namespace_labels.unwrap_or(&empty);
    let namespace_injection = namespace.get(NAMESPACE_INJECTION).map(String::as_str);

    if pod_label == Some("false") {
        return (false, format!("pod label {INJECT}=false"));
    }
    if namespace_injection == Some("disabled") {
        return (
            false,
            format!("namespace label {NAMESPACE_INJECTION}=disabled"),
        );
    }
    if pod_label.is_none() && annotation == Some("false") {
        return (false, format!("pod annotation {INJECT}=false"));
    }
    if namespace_injection == Some("enabled") {
        return (
            true,
            format!("namespace label {NAMESPACE_INJECTION}=enabled"),
        );
    }
    if namespace_injection.is_none()
        && let Some(revision) = namespace.get(REVISION)
    {
        return (true, format!("namespace label {REVISION}={revision}"));
    }
    if pod_label == Some("true") {
        return (true, format!("pod label {INJECT}=true"));
    }
    if let Some(revision) = pod_labels.get(REVISION) {
        return (true, format!("pod label {REVISION}={revision}"));
    }
    if annotation == Some("true") {
        return (
            false,
            format!(
                "pod annotation {INJECT}=true alone does not trigger injection (needs the pod label or a namespace label)"
            ),
        );
    }
    let reason = if namespace_labels.is_some() {
        format!(
            "no injection label on the pod or its namespace ({NAMESPACE_INJECTION}, {REVISION}, {INJECT})"
        )
    } else {
        format!("no injection label on the pod ({INJECT}, {REVISION}); namespace labels unknown")
    };
    (false, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn spec(yaml: &str) -> PodSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn plain() -> PodSpec {
        spec("containers: [{name: vllm, image: vllm/vllm-openai}]")
    }

    fn mode(
        pod: &[(&str, &str)],
        annotations: &[(&str, &str)],
        namespace: Option<&[(&str, &str)]>,
    ) -> (SidecarMode, String) {
        let namespace = namespace.map(map);
        decide(&plain(), &map(pod), &map(annotations), namespace.as_ref())
    }

    #[test]
    fn classic_and_native_sidecars_are_seen_in_the_spec() {
        let classic = spec("containers: [{name: vllm}, {name: istio-proxy}]");
        let (found, reason) = decide(&classic, &map(&[]), &map(&[]), None);
        assert_eq!(found, SidecarMode::Classic);
        assert!(reason.contains("istio-proxy"));

        let native = spec(
            "initContainers: [{name: istio-init}, {name: istio-proxy, restartPolicy: Always}]\ncontainers: [{name: vllm}]",
        );
        assert_eq!(
            decide(&native, &map(&[]), &map(&[]), None).0,
            SidecarMode::Native
        );

        // An istio-proxy init container that is not restartable is not a sidecar.
        let plain_init = spec("initContainers: [{name: istio-proxy}]\ncontainers: [{name: vllm}]");
        assert_eq!(
            decide(&plain_init, &map(&[]), &map(&[]), None).0,
            SidecarMode::None
        );
    }

    #[test]
    fn ambient_from_pod_or_namespace_unless_the_pod_opts_out() {
        let ambient_ns: &[(&str, &str)] = &[("istio.io/dataplane-mode", "ambient")];
        assert_eq!(
            mode(&[("istio.io/dataplane-mode", "ambient")], &[], None).0,
            SidecarMode::Ambient
        );
        let (found, reason) = mode(&[], &[], Some(ambient_ns));
        assert_eq!(found, SidecarMode::Ambient);
        assert!(reason.starts_with("namespace label"));
        assert_eq!(
            mode(
                &[("istio.io/dataplane-mode", "none")],
                &[],
                Some(ambient_ns)
            )
            .0,
            SidecarMode::None
        );
    }

    #[test]
    fn namespace_labels_ask_for_injection() {
        let (found, reason) = mode(&[], &[], Some(&[("istio-injection", "enabled")]));
        assert_eq!(found, SidecarMode::Injected);
        assert_eq!(reason, "namespace label istio-injection=enabled");
        let (found, reason) = mode(&[], &[], Some(&[("istio.io/rev", "1-24")]));
        assert_eq!(found, SidecarMode::Injected);
        assert_eq!(reason, "namespace label istio.io/rev=1-24");
        assert_eq!(mode(&[], &[], Some(&[("team", "ml")])).0, SidecarMode::None);
    }

    #[test]
    fn pod_opt_out_beats_namespace_injection() {
        let enabled: &[(&str, &str)] = &[("istio-injection", "enabled")];
        let (found, reason) = mode(&[(INJECT, "false")], &[], Some(enabled));
        assert_eq!(found, SidecarMode::None);
        assert_eq!(reason, "pod label sidecar.istio.io/inject=false");
        let (found, reason) = mode(&[], &[(INJECT, "false")], Some(enabled));
        assert_eq!(found, SidecarMode::None);
        assert_eq!(reason, "pod annotation sidecar.istio.io/inject=false");
        // The label beats the older annotation.
        assert_eq!(
            mode(&[(INJECT, "true")], &[(INJECT, "false")], Some(enabled)).0,
            SidecarMode::Injected
        );
    }

    #[test]
    fn pod_labels_ask_for_injection_in_an_unlabelled_namespace() {
        assert_eq!(
            mode(&[(INJECT, "true")], &[], Some(&[])).0,
            SidecarMode::Injected
        );
        assert_eq!(
            mode(&[("istio.io/rev", "canary")], &[], None).0,
            SidecarMode::Injected
        );
        // istiod's webhooks select on the label: the annotation alone never fires one.
        let (found, reason) = mode(&[], &[(INJECT, "true")], Some(&[]));
        assert_eq!(found, SidecarMode::None);
        assert!(reason.contains("alone"));
    }

    #[test]
    fn namespace_disabled_wins_over_a_pod_asking() {
        let (found, reason) = mode(
            &[(INJECT, "true")],
            &[],
            Some(&[("istio-injection", "disabled")]),
        );
        assert_eq!(found, SidecarMode::None);
        assert_eq!(reason, "namespace label istio-injection=disabled");
    }

    #[test]
    fn unknown_namespace_is_named_in_the_reason() {
        let (found, reason) = mode(&[], &[], None);
        assert_eq!(found, SidecarMode::None);
        assert!(reason.contains("namespace labels unknown"));
    }
}
