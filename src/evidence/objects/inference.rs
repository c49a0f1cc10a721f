//! The Gateway API Inference Extension as read: InferencePool (`inference.networking.k8s.io/v1`
//! and the older `inference.networking.x-k8s.io/v1alpha2`) and InferenceObjective (v1alpha2).
//! Both versions of the pool read into one type; `selector`, `target_ports` and
//! `endpoint_picker` say what either version wrote.

use super::istio::IstioObject;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type InferencePool = IstioObject<InferencePoolSpec>;
pub type InferenceObjective = IstioObject<InferenceObjectiveSpec>;

pub const INFERENCE_GROUP: &str = "inference.networking.k8s.io";
pub const INFERENCE_ALPHA_GROUP: &str = "inference.networking.x-k8s.io";
pub const INFERENCE_GROUPS: [&str; 2] = [INFERENCE_GROUP, INFERENCE_ALPHA_GROUP];

/// The EPP port when the pool names none (both API versions: "implementations SHOULD infer a
/// default value of 9002").
pub const DEFAULT_EPP_PORT: u16 = 9002;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InferencePoolSpec {
    /// v1: `{matchLabels: {...}}`; v1alpha2: the labels themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<PoolSelector>,
    /// v1: `targetPorts: [{number: 8000}]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_ports: Vec<PortNumber>,
    /// v1alpha2: `targetPortNumber: 8000`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port_number: Option<u16>,
    /// v1: the EPP Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_picker_ref: Option<EndpointPickerRef>,
    /// v1alpha2: the EPP Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<EndpointPickerRef>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PoolSelector {
    MatchLabels {
        #[serde(rename = "matchLabels")]
        match_labels: BTreeMap<String, String>,
    },
    Labels(BTreeMap<String, String>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortNumber {
    pub number: u16,
}

/// `endpointPickerRef` (v1) or `extensionRef` (v1alpha2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPickerRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    /// v1: `port: {number: 9002}`, the Service port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortNumber>,
    /// v1alpha2: `portNumber: 9002`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_number: Option<u16>,
    /// `FailOpen` or `FailClose` (the default in both versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<String>,
}

/// What the gateway does when the EPP does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Forward to an endpoint of the gateway's picking.
    FailOpen,
    /// Drop the request.
    FailClose,
}

impl FailureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::FailOpen => "FailOpen",
            FailureMode::FailClose => "FailClose",
        }
    }
}

impl EndpointPickerRef {
    pub fn port(&self) -> u16 {
        self.port
            .as_ref()
            .map(|port| port.number)
            .or(self.port_number)
            .unwrap_or(DEFAULT_EPP_PORT)
    }

    /// The failure mode written, else the API's default `FailClose`.
    pub fn failure_mode(&self) -> FailureMode {
        match self.failure_mode.as_deref() {
            Some("FailOpen") => FailureMode::FailOpen,
            _ => FailureMode::FailClose,
        }
    }
}

impl InferencePoolSpec {
    /// The labels that pick the pool's pods (empty when absent).
    pub fn selector(&self) -> BTreeMap<String, String> {
        match &self.selector {
            Some(PoolSelector::MatchLabels { match_labels }) => match_labels.clone(),
            Some(PoolSelector::Labels(labels)) => labels.clone(),
            None => BTreeMap::new(),
        }
    }

    /// The ports on the pods the pool sends to, in either version's field.
    pub fn target_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self.target_ports.iter().map(|port| port.number).collect();
        ports.extend(self.target_port_number);
        ports
    }

    /// The EPP the gateway asks, in either version's field, and the field's name.
    pub fn endpoint_picker(&self) -> Option<(&EndpointPickerRef, &'static str)> {
        self.endpoint_picker_ref
            .as_ref()
            .map(|epp| (epp, "endpointPickerRef"))
            .or_else(|| self.extension_ref.as_ref().map(|epp| (epp, "extensionRef")))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InferenceObjectiveSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_ref: Option<PoolRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Fields this subset does not model, kept so that a fix re-emits the object whole.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PoolRef {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_pool_reads_selector_ports_and_picker() {
        let pool: InferencePool = serde_yaml::from_str(
            r#"
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: llama-pool, namespace: serving}
spec:
  selector: {matchLabels: {app: llama-8b}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: llama-epp, port: {number: 9002}, failureMode: FailOpen}
"#,
        )
        .unwrap();
        assert_eq!(pool.spec.selector()["app"], "llama-8b");
        assert_eq!(pool.spec.target_ports(), [8000]);
        let (epp, field) = pool.spec.endpoint_picker().unwrap();
        assert_eq!(field, "endpointPickerRef");
        assert_eq!((epp.name.as_str(), epp.port()), ("llama-epp", 9002));
        assert_eq!(epp.failure_mode(), FailureMode::FailOpen);
        let back: InferencePool =
            serde_json::from_value(serde_json::to_value(&pool).unwrap()).unwrap();
        assert_eq!(back, pool);
    }

    #[test]
    fn a_v1alpha2_pool_reads_the_older_fields_and_defaults_to_fail_close() {
        let pool: InferencePool = serde_yaml::from_str(
            r#"
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: old-pool}
spec:
  selector: {app: vllm}
  targetPortNumber: 8000
  extensionRef: {name: vllm-epp}
"#,
        )
        .unwrap();
        assert_eq!(pool.spec.selector()["app"], "vllm");
        assert_eq!(pool.spec.target_ports(), [8000]);
        let (epp, field) = pool.spec.endpoint_picker().unwrap();
        assert_eq!(field, "extensionRef");
        assert_eq!(epp.port(), DEFAULT_EPP_PORT);
        assert_eq!(epp.failure_mode(), FailureMode::FailClose);
    }

    #[test]
    fn an_objective_names_its_pool() {
        let objective: InferenceObjective = serde_yaml::from_str(
            "apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceObjective\nmetadata: {name: chat}\nspec: {priority: 10, poolRef: {name: llama-pool}}\n",
        )
        .unwrap();
        assert_eq!(objective.spec.pool_ref.unwrap().name, "llama-pool");
    }
}
