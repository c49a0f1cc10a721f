//! What a listed object carries that nothing here reads, dropped as each page is decoded so a
//! large cluster's list costs what the checks need: `managedFields` and the
//! `last-applied-configuration` annotation (each often larger than the rest of the object), and
//! of a pod's spec its volumes, tolerations, affinity and volume mounts (what a pod keeps of its
//! spec and status is `ListedPod`'s choice).

use k8s_openapi::api::core::v1::Pod;
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
