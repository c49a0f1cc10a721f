//! Live pods as evidence: what the API server says a workload's pods are (node, phase, readiness,
//! restarts, age, the injected proxy), and the sidecar mode they show, which beats what the
//! template and labels predict.

use crate::evidence::listed_pod::{ListedContainer, ListedPod};
use crate::evidence::{IstioPresence, LivePod, LiveProxy, SidecarMode};

const PROXY: &str = "istio-proxy";
const SIDECAR_STATUS: &str = "sidecar.istio.io/status";

/// Whether the API server has seen this pod (it has a creation time or a status), as opposed to a
/// hand-written Pod manifest that will be injected only when applied.
pub fn is_live(pod: &ListedPod) -> bool {
    pod.metadata.creation_timestamp.is_some() || pod.phase().is_some()
}

/// The evidence one live pod gives.
pub fn live_pod(pod: &ListedPod) -> LivePod {
    LivePod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        node: pod.node_name().map(str::to_string),
        phase: pod.phase().map(str::to_string),
        ready: pod.is_ready(),
        restarts: pod.status.as_ref().map_or(0, |status| status.restarts),
        created: pod.metadata.creation_timestamp.clone(),
        proxy: proxy(pod),
        sidecar_status: pod
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|annotations| annotations.contains_key(SIDECAR_STATUS)),
    }
}

/// `istio-proxy` as a regular container (classic) or a restartable init container (native).
fn proxy(pod: &ListedPod) -> Option<LiveProxy> {
    let spec = pod.spec.as_ref()?;
    let classic = spec
        .containers
        .iter()
        .enumerate()
        .find(|(_, container)| container.name == PROXY)
        .map(|(index, container)| {
            (
                SidecarMode::Classic,
                format!("spec/containers[{index}]"),
                container,
            )
        });
    let native = || {
        spec.init_containers
            .iter()
            .enumerate()
            .find(|(_, container)| {
                container.name == PROXY && container.restart_policy.as_deref() == Some("Always")
            })
            .map(|(index, container)| {
                (
                    SidecarMode::Native,
                    format!("spec/initContainers[{index}]"),
                    container,
                )
            })
    };
    let (mode, path, container) = classic.or_else(native)?;
    Some(LiveProxy {
        mode,
        path,
        image: container.image.clone(),
        cpu_request: quantity(container, Kind::Requests, "cpu"),
        memory_request: quantity(container, Kind::Requests, "memory"),
        cpu_limit: quantity(container, Kind::Limits, "cpu"),
        memory_limit: quantity(container, Kind::Limits, "memory"),
    })
}

enum Kind {
    Requests,
    Limits,
}

fn quantity(container: &ListedContainer, kind: Kind, name: &str) -> Option<String> {
    let resources = container.resources.as_ref()?;
    let map = match kind {
        Kind::Requests => resources.requests.as_ref(),
        Kind::Limits => resources.limits.as_ref(),
    };
    map?.get(name).map(|quantity| quantity.0.clone())
}

/// The sidecar mode the live pods show, with the reason, given what the template predicted.
/// `None` when there are no live pods: the prediction stands.
pub fn sidecar_mode(
    pods: &[LivePod],
    predicted: (SidecarMode, &str),
    istio: IstioPresence,
) -> Option<(SidecarMode, String)> {
    if pods.is_empty() {
        return None;
    }
    let total = pods.len();
    let proxied: Vec<&LiveProxy> = pods.iter().filter_map(|pod| pod.proxy.as_ref()).collect();
    if proxied.is_empty() {
        let (predicted_mode, predicted_reason) = predicted;
        let reason = match predicted_mode {
            // Ambient pods carry no proxy: the pods agree with the labels.
            SidecarMode::Ambient => return None,
            SidecarMode::Injected | SidecarMode::Classic | SidecarMode::Native => {
                let why = if istio == IstioPresence::NotInstalled {
                    "Istio is not installed, so no injector ran".to_string()
                } else {
                    "the injector did not run for them (pods created before the label, or no webhook for this revision); restart them to inject".to_string()
                };
                format!(
                    "no istio-proxy in the {} although {predicted_reason} asks for one: {why}",
                    pods_text(total)
                )
            }
            SidecarMode::None => format!(
                "no istio-proxy in the {} ({predicted_reason})",
                pods_text(total)
            ),
        };
        return Some((SidecarMode::None, reason));
    }
    let native = proxied
        .iter()
        .filter(|proxy| proxy.mode == SidecarMode::Native)
        .count();
    let (mode, how) = if native * 2 > proxied.len() {
        (
            SidecarMode::Native,
            "as a native sidecar (init container with restartPolicy: Always)",
        )
    } else {
        (SidecarMode::Classic, "as a container")
    };
    let mut reason = format!(
        "istio-proxy injected {how} in {} of {} live pod{}",
        proxied.len(),
        total,
        if total == 1 { "" } else { "s" }
    );
    if proxied.len() < total {
        reason.push_str("; the others run without a sidecar");
    }
    Some((mode, reason))
}

fn pods_text(count: usize) -> String {
    if count == 1 {
        "1 live pod".to_string()
    } else {
        format!("{count} live pods")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> ListedPod {
        serde_json::from_value(value).unwrap()
    }

    fn injected(native: bool) -> ListedPod {
        let proxy = json!({
            "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        });
        let mut init = vec![json!({"name": "istio-init"})];
        let mut containers = vec![json!({"name": "vllm"})];
        if native {
            let mut proxy = proxy;
            proxy["restartPolicy"] = json!("Always");
            init.push(proxy);
        } else {
            containers.push(proxy);
        }
        pod(json!({
            "metadata": {
                "name": "vllm-0", "namespace": "inference",
                "creationTimestamp": "2025-02-03T09:38:00Z",
                "annotations": {"sidecar.istio.io/status": "{}"},
            },
            "spec": {"nodeName": "gpu-node-a", "initContainers": init, "containers": containers},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "vllm", "image": "x", "imageID": "", "ready": true, "restartCount": 2},
                    {"name": "istio-proxy", "image": "x", "imageID": "", "ready": true, "restartCount": 1},
                ],
                "initContainerStatuses": [
                    {"name": "istio-init", "image": "x", "imageID": "", "ready": true, "restartCount": 0},
                ],
            },
        }))
    }

    #[test]
    fn reads_node_phase_readiness_restarts_age_and_the_proxy() {
        let live = live_pod(&injected(false));
        assert_eq!(live.name, "vllm-0");
        assert_eq!(live.node.as_deref(), Some("gpu-node-a"));
        assert_eq!(live.phase.as_deref(), Some("Running"));
        assert!(live.ready);
        assert_eq!(live.restarts, 3);
        assert!(live.sidecar_status);
        let proxy = live.proxy.as_ref().unwrap();
        assert_eq!(proxy.mode, SidecarMode::Classic);
        assert_eq!(proxy.path, "spec/containers[1]");
        assert_eq!(proxy.cpu_request.as_deref(), Some("100m"));
        assert_eq!(proxy.memory_limit.as_deref(), Some("1Gi"));
        let gathered: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time =
            serde_json::from_value(json!("2025-02-03T10:38:30Z")).unwrap();
        assert_eq!(
            live.age(Some(&gathered)),
            Some(std::time::Duration::from_secs(3630))
        );
        assert_eq!(live.age(None), None);

        let native = live_pod(&injected(true));
        let proxy = native.proxy.unwrap();
        assert_eq!(proxy.mode, SidecarMode::Native);
        assert_eq!(proxy.path, "spec/initContainers[1]");
    }

    #[test]
    fn a_pod_without_status_or_creation_time_is_a_manifest() {
        assert!(is_live(&injected(false)));
        let written = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": []}}));
        assert!(!is_live(&written));
        let live = live_pod(&written);
        assert!(!live.ready);
        assert_eq!(live.restarts, 0);
        assert!(live.proxy.is_none());
    }

    #[test]
    fn the_mode_comes_from_the_pods() {
        let classic = live_pod(&injected(false));
        let native = live_pod(&injected(true));
        let mut bare = live_pod(&injected(false));
        bare.proxy = None;
        let predicted = (
            SidecarMode::Injected,
            "namespace label istio-injection=enabled",
        );

        assert_eq!(sidecar_mode(&[], predicted, IstioPresence::Installed), None);
        let (mode, reason) = sidecar_mode(
            std::slice::from_ref(&native),
            predicted,
            IstioPresence::Installed,
        )
        .unwrap();
        assert_eq!(mode, SidecarMode::Native);
        assert!(reason.contains("native sidecar"), "{reason}");
        let (mode, reason) = sidecar_mode(
            &[classic.clone(), bare.clone()],
            predicted,
            IstioPresence::Installed,
        )
        .unwrap();
        assert_eq!(mode, SidecarMode::Classic);
        assert_eq!(
            reason,
            "istio-proxy injected as a container in 1 of 2 live pods; the others run without a sidecar"
        );

        let (mode, reason) = sidecar_mode(
            &[bare.clone(), bare.clone()],
            predicted,
            IstioPresence::NotInstalled,
        )
        .unwrap();
        assert_eq!(mode, SidecarMode::None);
        assert_eq!(
            reason,
            "no istio-proxy in the 2 live pods although namespace label istio-injection=enabled asks for one: Istio is not installed, so no injector ran"
        );
        let (_, reason) =
            sidecar_mode(&[bare.clone()], predicted, IstioPresence::Installed).unwrap();
        assert!(reason.contains("restart them"), "{reason}");
        assert_eq!(
            sidecar_mode(
                &[bare],
                (SidecarMode::Ambient, "pod label"),
                IstioPresence::Installed
            ),
            None
        );
    }
}
