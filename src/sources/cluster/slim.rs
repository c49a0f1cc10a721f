//! What a listed object carries that nothing here reads, dropped as each page is decoded so a
//! large cluster's list costs what the checks need: `managedFields` and the
//! `last-applied-configuration` annotation (each often larger than the rest of the object), a
//! pod's volumes, tolerations and affinity, and of its container statuses all but the name,
//! readiness and restart count. Lists are shrunk to their length: k8s-openapi's containers are
//! kilobytes each before they hold anything, and decoding leaves room for twice as many.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub fn meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// An object of any kind, as JSON (Istio's).
pub fn value(object: &mut serde_json::Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        metadata.remove("managedFields");
        if let Some(annotations) = metadata
            .get_mut("annotations")
            .and_then(|a| a.as_object_mut())
        {
            annotations.remove(LAST_APPLIED);
        }
    }
}

pub fn pod(pod: &mut Pod) {
    meta(&mut pod.metadata);
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = None;
        spec.tolerations = None;
        spec.affinity = None;
        let init_containers = spec.init_containers.iter_mut().flatten();
        for container in spec.containers.iter_mut().chain(init_containers) {
            container.volume_mounts = None;
        }
        spec.containers.shrink_to_fit();
        if let Some(init_containers) = spec.init_containers.as_mut() {
            init_containers.shrink_to_fit();
        }
    }
    if let Some(status) = pod.status.as_mut() {
        for statuses in [
            &mut status.container_statuses,
            &mut status.init_container_statuses,
        ] {
            if let Some(statuses) = statuses.as_mut() {
                for container in statuses.iter_mut() {
                    container_status(container);
                }
                statuses.shrink_to_fit();
            }
        }
        status.ephemeral_container_statuses = None;
        if let Some(conditions) = status.conditions.as_mut() {
            conditions.shrink_to_fit();
        }
    }
}

/// What the checks read of a container's status: its name, readiness and restarts.
fn container_status(status: &mut ContainerStatus) {
    *status = ContainerStatus {
        name: std::mem::take(&mut status.name),
        ready: status.ready,
        restart_count: status.restart_count,
        started: status.started,
        ..ContainerStatus::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_nothing_reads_goes_and_what_the_checks_read_stays() {
        let mut listed: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "vllm-0", "managedFields": [{"manager": "kubectl"}],
                "annotations": {LAST_APPLIED: "{…}", "sidecar.istio.io/proxyCPU": "50m"}},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai",
                "volumeMounts": [{"name": "cache", "mountPath": "/root/.cache"}]}],
                "volumes": [{"name": "cache", "emptyDir": {}}],
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
            "status": {"containerStatuses": [{"name": "vllm", "ready": true, "restartCount": 3,
                "image": "vllm/vllm-openai", "imageID": "sha256:0123",
                "state": {"running": {"startedAt": "2025-02-03T09:38:00Z"}}}]},
        }))
        .unwrap();
        pod(&mut listed);
        assert!(listed.metadata.managed_fields.is_none());
        let annotations = listed.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations.len(), 1);
        assert_eq!(annotations["sidecar.istio.io/proxyCPU"], "50m");
        let spec = listed.spec.as_ref().unwrap();
        assert!(spec.volumes.is_none() && spec.tolerations.is_none());
        assert_eq!(spec.containers.capacity(), 1);
        let status = &listed
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            (status.name.as_str(), status.ready, status.restart_count),
            ("vllm", true, 3)
        );
        assert!(status.image_id.is_empty() && status.state.is_none());
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some("vllm/vllm-openai")
        );

        let mut object = serde_json::json!({"metadata": {"name": "vs", "managedFields": [],
            "annotations": {LAST_APPLIED: "{}"}}, "spec": {"hosts": ["a"]}});
        value(&mut object);
        assert_eq!(
            object,
            serde_json::json!({"metadata": {"name": "vs", "annotations": {}}, "spec": {"hosts": ["a"]}})
        );
    }
}
