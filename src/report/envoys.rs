//! The Envoys read for each target, as the report shows them: where each was read, the role
//! inferred from its config (client or server side of the path to vLLM), and what could not be
//! read. Rendered from the evidence; nothing is judged here.

use crate::evidence::envoy::EnvoyEvidence;
use crate::evidence::envoy::names::ControlPlane;
use crate::evidence::envoy::role::EnvoyRole;
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
    /// `Envoy Gateway (the cluster name "httproute/default/backend/rule/0")`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,
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
            control_plane: evidence
                .control_plane
                .as_ref()
                .filter(|guess| guess.plane != ControlPlane::Unknown)
                .map(|guess| format!("{}'s names ({})", guess.plane.as_str(), guess.shown_by)),
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
        if let Some(plane) = &self.control_plane {
            parts.push(plane.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{OutputFormat, Style, render_with_envoys, sample};

    fn lines() -> Vec<Vec<EnvoyLine>> {
        vec![vec![
            EnvoyLine {
                source: "pod istio-system/gw-a (port-forward to 15000)".to_string(),
                pod: Some("istio-system/gw-a".to_string()),
                role: EnvoyRole::Client,
                reason: "client side: it has an outbound cluster for vllm:8000".to_string(),
                envoy_version: Some("1.40.0".to_string()),
                server_state: Some("LIVE".to_string()),
                counters: true,
                control_plane: None,
                gaps: Vec::new(),
            },
            EnvoyLine {
                source: "saved dumps/vllm.json".to_string(),
                pod: None,
                role: EnvoyRole::Server,
                reason: "server side: it has an inbound cluster".to_string(),
                envoy_version: None,
                server_state: None,
                counters: false,
                control_plane: None,
                gaps: vec![Gap::new("Envoy counters cluster.inbound|8000||", "trimmed")],
            },
        ]]
    }

    #[test]
    fn every_format_shows_each_envoy_and_its_role() {
        let diagnosis = sample::healthy();
        let render =
            |format| render_with_envoys(&diagnosis, &lines(), format, Style::default()).unwrap();
        let table = render(OutputFormat::Table);
        assert!(
            table.contains(
                "  client    pod istio-system/gw-a (port-forward to 15000) · Envoy 1.40.0 LIVE · client side"
            ),
            "{table}"
        );
        assert!(
            table.contains("  server    saved dumps/vllm.json · no counters · server side"),
            "{table}"
        );
        assert!(
            table.contains("    not read: Envoy counters cluster.inbound|8000||: trimmed"),
            "{table}"
        );
        assert!(
            table.find("Envoys read:") < table.find("Not gathered:"),
            "{table}"
        );

        let json: serde_json::Value = serde_json::from_str(&render(OutputFormat::Json)).unwrap();
        let envoys = &json["targets"][0]["envoys"];
        assert_eq!(envoys[0]["role"], "client");
        assert_eq!(envoys[0]["pod"], "istio-system/gw-a");
        assert_eq!(envoys[1]["envoyVersion"], serde_json::Value::Null);
        assert_eq!(envoys[1]["gaps"][0]["reason"], "trimmed");

        let markdown = render(OutputFormat::Markdown);
        assert!(markdown.contains("### Envoys read"), "{markdown}");
        assert!(
            markdown.contains("- **server** saved dumps/vllm.json"),
            "{markdown}"
        );

        // Without an Envoy view, targets still carry the key, empty.
        let plain =
            crate::report::render(&diagnosis, OutputFormat::Json, Style::default()).unwrap();
        let plain: serde_json::Value = serde_json::from_str(&plain).unwrap();
        assert_eq!(plain["targets"][0]["envoys"], serde_json::json!([]));
    }
}
