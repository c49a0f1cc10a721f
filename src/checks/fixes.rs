//! Fix YAML: whole Istio objects for `kubectl apply -f`, and patch documents for workloads
//! (whose full manifest the evidence does not hold) for `kubectl patch --patch-file`.

use crate::evidence::objects::IstioObject;
use crate::evidence::{ObjectRef, Workload, WorkloadKind};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Istio kinds and the API version a fix uses when the object did not say its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IstioKind {
    VirtualService,
    DestinationRule,
    EnvoyFilter,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication,
    Sidecar,
    /// Gateway API kinds, whose objects the evidence holds in the same shape.
    HttpRoute,
    InferencePool,
}

impl IstioKind {
    pub fn name(self) -> &'static str {
        match self {
            IstioKind::VirtualService => "VirtualService",
            IstioKind::DestinationRule => "DestinationRule",
            IstioKind::EnvoyFilter => "EnvoyFilter",
            IstioKind::PeerAuthentication => "PeerAuthentication",
            IstioKind::AuthorizationPolicy => "AuthorizationPolicy",
            IstioKind::RequestAuthentication => "RequestAuthentication",
            IstioKind::Sidecar => "Sidecar",
            IstioKind::HttpRoute => "HTTPRoute",
            IstioKind::InferencePool => "InferencePool",
        }
    }

    fn default_api_version(self) -> &'static str {
        match self {
            IstioKind::VirtualService | IstioKind::DestinationRule | IstioKind::Sidecar => {
                "networking.istio.io/v1beta1"
            }
            IstioKind::EnvoyFilter => "networking.istio.io/v1alpha3",
            IstioKind::PeerAuthentication
            | IstioKind::AuthorizationPolicy
            | IstioKind::RequestAuthentication => "security.istio.io/v1beta1",
            IstioKind::HttpRoute => "gateway.networking.k8s.io/v1",
            IstioKind::InferencePool => "inference.networking.k8s.io/v1",
        }
    }
}

/// The evidence reference of an Istio object.
pub fn istio_ref<S>(kind: IstioKind, object: &IstioObject<S>) -> ObjectRef {
    ObjectRef::new(
        kind.name(),
        object.metadata.namespace.as_deref(),
        object.metadata.name.as_deref().unwrap_or("<unnamed>"),
    )
}

/// `kind namespace/name` for titles.
pub fn istio_label<S>(kind: IstioKind, object: &IstioObject<S>) -> String {
    istio_ref(kind, object).to_string()
}

/// The metadata a fix carries: identity, labels and annotations, without server-set fields.
#[derive(Serialize)]
struct FixMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn pairs(map: &Option<BTreeMap<String, String>>) -> BTreeMap<&str, &str> {
    map.iter()
        .flatten()
        .filter(|(key, _)| key.as_str() != LAST_APPLIED)
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

fn fix_metadata(metadata: &ObjectMeta) -> FixMetadata<'_> {
    FixMetadata {
        name: metadata.name.as_deref(),
        namespace: metadata.namespace.as_deref(),
        labels: pairs(&metadata.labels),
        annotations: pairs(&metadata.annotations),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a, S> {
    api_version: &'a str,
    kind: &'a str,
    metadata: FixMetadata<'a>,
    spec: &'a S,
}

/// The whole object as YAML that `kubectl apply -f` accepts.
pub fn istio_manifest<S: Serialize>(kind: IstioKind, object: &IstioObject<S>) -> Option<String> {
    let manifest = Manifest {
        api_version: object
            .api_version
            .as_deref()
            .unwrap_or(kind.default_api_version()),
        kind: kind.name(),
        metadata: fix_metadata(&object.metadata),
        spec: &object.spec,
    };
    serde_yaml::to_string(&manifest).ok()
}

/// A strategic-merge patch of the workload's pod template (or of the Pod itself), given the
/// pod-level patch `{metadata: …, spec: …}`. Containers merge by name.
pub fn workload_patch(workload: &Workload, pod_patch: Value) -> Option<String> {
    let document = match workload.kind {
        WorkloadKind::Pod => pod_patch,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => {
            json!({ "spec": { "template": pod_patch } })
        }
        WorkloadKind::Endpoint => return None,
    };
    serde_yaml::to_string(&document).ok()
}

/// How to apply a [`workload_patch`] saved as `fix.yaml`.
pub fn patch_instruction(workload: &Workload) -> String {
    match workload.kind {
        WorkloadKind::Deployment => format!(
            "apply with `kubectl patch deployment/{} -n {} --patch-file fix.yaml`",
            workload.name, workload.namespace
        ),
        WorkloadKind::StatefulSet => format!(
            "apply with `kubectl patch statefulset/{} -n {} --patch-file fix.yaml`",
            workload.name, workload.namespace
        ),
        WorkloadKind::Pod => format!(
            "a running pod cannot take this change: add it to the manifest of pod/{} in {} and recreate the pod",
            workload.name, workload.namespace
        ),
        WorkloadKind::Endpoint => format!(
            "apply it to the pod template of the workload behind {}",
            workload.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::objects::VirtualService;

    #[test]
    fn manifests_keep_unmodelled_fields_and_drop_server_metadata() {
        let virtual_service: VirtualService = serde_yaml::from_str(
            r#"
apiVersion: networking.istio.io/v1
metadata:
  name: vllm
  namespace: llm
  resourceVersion: "42"
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
    team: inference
spec:
  hosts: [vllm]
  http:
  - rewrite: {uri: /v1}
    route:
    - destination: {host: vllm}
    timeout: 15s
"#,
        )
        .unwrap();
        let yaml = istio_manifest(IstioKind::VirtualService, &virtual_service).unwrap();
        let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["apiVersion"], "networking.istio.io/v1");
        assert_eq!(parsed["kind"], "VirtualService");
        assert_eq!(parsed["metadata"]["annotations"]["team"], "inference");
        assert!(parsed["metadata"].get("resourceVersion").is_none());
        assert!(
            parsed["metadata"]["annotations"]
                .get(LAST_APPLIED)
                .is_none()
        );
        assert_eq!(parsed["spec"]["http"][0]["rewrite"]["uri"], "/v1");
    }
}
