//! The Envoys read for each target, as the report shows them: where each was read, the role
//! inferred from its config (client or server side of the path to vLLM), and what could not be
//! read. Rendered from the evidence; nothing is judged here.

use crate::envoy::EnvoyEvidence;
use crate::envoy::config_dump::EnvoyRole;
use crate::evidence::{Evidence, Gap};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyLine {
    /// `pod istio-system/gw-7d9f (port-forward)`, `admin http://127.0.0.1:15000`, `saved a.json`.
    pub source: String,
    /// `istio-system/gw-7d9f`
    pub pod: Option<String>,
    pub role: EnvoyRole,
    /// Why that role: the clusters it rests on.
    pub reason: String,
    pub envoy_version: Option<String>,
    pub server_state: Option<String>,
    /// Whether counters were read (`/stats`).
    pub counters: bool,
    pub gaps: Vec<Gap>,
}

impl EnvoyLine {
    pub fn from_evidence(evidence: &EnvoyEvidence) -> Self {
        Self {
            source: evidence.source.clone(),
            pod: evidence.pod.as_ref().map(|pod| match &pod.namespace {
                Some(namespace) => format!("{namespace}/{}", pod.name),
                None => pod.name.clone(),
            }),
            role: evidence.role.role,
            reason: evidence.role.reason.clone(),
            envoy_version: evidence.envoy_version.clone(),
            server_state: evidence.server_state.clone(),
            counters: evidence.counters.is_some(),
            gaps: evidence.gaps.clone(),
        }
    }

    /// `client    admin http://127.0.0.1:15000 · Envoy 1.40.0 LIVE · client side: it has …`
    pub fn text(&self) -> String {
        format!("{:<9} {}", self.role.as_str(), self.detail())
    }

    /// The line without the role: source, version and state, and why that role.
    pub fn detail(&self) -> String {
        let mut parts = vec![self.source.clone()];
        if let Some(version) = &self.envoy_version {
            let state = self.server_state.as_deref().unwrap_or_default();
            parts.push(format!("Envoy {version} {state}").trim_end().to_string());
        }
        if !self.counters && self.role != EnvoyRole::Unrelated {
            parts.push("no counters".to_string());
        }
        parts.push(self.reason.clone());
        parts.join(" · ")
    }
}

/// Per target, in the evidence's order (the diagnosis keeps it), the Envoys read.
pub fn lines_for(evidence: &Evidence) -> Vec<Vec<EnvoyLine>> {
    evidence
        .targets
        .iter()
        .map(|target| target.envoy.iter().map(EnvoyLine::from_evidence).collect())
        .collect()
}

/// The lines of target `index`; none when the caller gave no Envoy view.
pub(crate) fn of(envoys: &[Vec<EnvoyLine>], index: usize) -> &[EnvoyLine] {
    envoys.get(index).map(Vec::as_slice).unwrap_or_default()
}
