//! What one Envoy contributes to a target's evidence: its role on the path to vLLM, the effective
//! config of that path (`config`, with Envoy's own defaults in `defaults`), a snapshot of the
//! failure-mode counters (`counters`), and what could not be read.

pub mod config;
pub mod counters;
pub mod defaults;
pub mod names;
pub mod role;

use crate::evidence::{Gap, ObjectRef};
use config::EffectiveConfig;
use counters::{Snapshot, StatsMatcherAdvice};
use names::ControlPlane;
use role::RoleInference;
use serde::{Deserialize, Serialize};

/// One Envoy's evidence about the path to vLLM at `host:port`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyEvidence {
    /// Where it was read: `pod/istio-ingressgateway-7d9f` via port-forward, an admin URL, or a
    /// saved file.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    pub role: RoleInference,
    /// `1.40.0`, from `/server_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_version: Option<String>,
    /// `LIVE`, `DRAINING`, … from `/server_info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_state: Option<String>,
    /// The config on the path to vLLM only (`EffectiveConfig::path_to`).
    pub config: EffectiveConfig,
    /// The failure-mode counters of that path when the evidence was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Snapshot>,
    /// The stat names carry Istio >= 1.23's `;` delimiter.
    #[serde(default)]
    pub delimited_stat_names: bool,
    /// How to keep the counters Istio trimmed, when some are missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_matcher_advice: Option<StatsMatcherAdvice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
    /// The control plane its names look like (`names::control_plane`), and what shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneGuess>,
    /// Only `/stats` was read: `config` is empty for want of a config_dump, not because Envoy
    /// runs nothing. The checks judge the counters alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stats_only: bool,
}

/// Which control plane an Envoy's config looks like it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneGuess {
    pub plane: ControlPlane,
    /// `the cluster name "httproute/default/backend/rule/0"`
    pub shown_by: String,
}

impl ControlPlaneGuess {
    pub fn of(config: &EffectiveConfig) -> Self {
        let (plane, shown_by) = names::control_plane(config);
        Self { plane, shown_by }
    }
}
