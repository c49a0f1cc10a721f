//! What stands behind an InferencePool's endpoint picker (EPP): the Service it names and the pods
//! behind that Service, as the inventory had them. Resolution fills it; the `endpoint-picker`
//! check judges it.

use crate::evidence::ObjectRef;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPicker {
    /// The InferencePool that names it.
    pub pool: ObjectRef,
    /// Where the reference sits in the pool: `spec/endpointPickerRef` (v1) or
    /// `spec/extensionRef` (v1alpha2).
    pub path: String,
    /// The EPP Service, in the pool's namespace.
    pub service: String,
    pub port: u16,
    /// `FailOpen` or `FailClose`: written, or the API's default `FailClose`.
    pub failure_mode: String,
    /// `failureMode` was absent and the default applies.
    #[serde(default)]
    pub failure_mode_defaulted: bool,
    /// The Service is in the inventory.
    pub service_found: bool,
    /// The Deployments and StatefulSets whose pods that Service selects, with desired replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<PickerWorkload>,
    /// The pods that Service selects and how many are Ready; absent when the inventory holds no
    /// pods at all (manifests without live pods), so readiness is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PickerPods>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PickerWorkload {
    pub object: ObjectRef,
    pub replicas: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PickerPods {
    pub total: u32,
    pub ready: u32,
}

impl EndpointPicker {
    pub fn fails_closed(&self) -> bool {
        self.failure_mode != "FailOpen"
    }

    /// `llama-epp.serving.svc:9002`
    pub fn address(&self) -> String {
        format!(
            "{}.{}.svc:{}",
            self.service,
            self.pool.namespace.as_deref().unwrap_or("default"),
            self.port
        )
    }
}
