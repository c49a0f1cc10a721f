//! What scales a workload: a HorizontalPodAutoscaler (`autoscaling/v2` and `v1`:
//! `spec.scaleTargetRef`, `minReplicas` default 1, `maxReplicas`) or a KEDA ScaledObject
//! (`keda.sh/v1alpha1`: `spec.scaleTargetRef` with `kind` default Deployment, `minReplicaCount`
//! default 0, `maxReplicaCount` default 100, per KEDA's ScaledObject spec docs). Read as the
//! replica range, nothing else.

use serde::{Deserialize, Serialize};

/// An autoscaler and the replica range it gives its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaler {
    /// `HorizontalPodAutoscaler` or `ScaledObject`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The workload it scales (`Deployment`, `StatefulSet`, …) and its name.
    pub target_kind: String,
    pub target_name: String,
    pub min_replicas: i64,
    pub max_replicas: i64,
}

/// Defaults of the two kinds when the field is absent.
pub const HPA_MIN_REPLICAS: i64 = 1;
pub const KEDA_MIN_REPLICAS: i64 = 0;
pub const KEDA_MAX_REPLICAS: i64 = 100;

impl Autoscaler {
    /// Reads a HorizontalPodAutoscaler or ScaledObject as JSON; `None` for anything else or one
    /// without a target.
    pub fn from_object(kind: &str, object: &serde_json::Value) -> Option<Autoscaler> {
        let metadata = object.get("metadata")?;
        let spec = object.get("spec")?;
        let target = spec.get("scaleTargetRef")?;
        let text = |value: Option<&serde_json::Value>| {
            value
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let number = |key: &str| spec.get(key).and_then(serde_json::Value::as_i64);
        let (min, max, default_kind) = match kind {
            "HorizontalPodAutoscaler" => (
                number("minReplicas").unwrap_or(HPA_MIN_REPLICAS),
                number("maxReplicas")?,
                None,
            ),
            "ScaledObject" => (
                number("minReplicaCount").unwrap_or(KEDA_MIN_REPLICAS),
                number("maxReplicaCount").unwrap_or(KEDA_MAX_REPLICAS),
                Some("Deployment"),
            ),
            _ => return None,
        };
        Some(Autoscaler {
            kind: kind.to_string(),
            namespace: text(metadata.get("namespace")).unwrap_or_else(|| "default".to_string()),
            name: text(metadata.get("name")).unwrap_or_default(),
            target_kind: text(target.get("kind")).or(default_kind.map(str::to_string))?,
            target_name: text(target.get("name"))?,
            min_replicas: min,
            max_replicas: max,
        })
    }

    /// `HorizontalPodAutoscaler ns/name`.
    pub fn label(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}
