//! Everything one probe measured (`ProbeReport`): the request asked, each path's streams with what
//! vLLM saw meanwhile, the other runs, the Envoy counters that moved, how the paths were opened, and
//! the comparison of the two paths.

use super::modes::{ColdResult, ConcurrencyResult, LargeResult};
use super::path::{PathKind, PathResult};
use super::server_side::ServerSide;
use crate::evidence::CheckId;
use crate::evidence::Gap;
use serde::{Deserialize, Serialize};

/// `schemaVersion` of `probe -o json`: bumped when a field changes meaning or disappears.
pub const PROBE_SCHEMA_VERSION: u32 = 1;

/// One path's streaming run with what vLLM itself saw meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathReport {
    #[serde(flatten)]
    pub result: PathResult,
    /// vLLM's `/metrics` (read on the direct URL) before and after this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_side: Option<ServerSide>,
    /// 1-based repetition.
    pub run: u32,
}

/// What was asked, so a reader can reproduce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSummary {
    pub api: Api,
    pub model: String,
    pub max_tokens: u32,
    /// `min_tokens` + `ignore_eos` were sent: every stream asked for exactly `maxTokens`.
    pub exact_length: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_tokens_per_second: Option<f64>,
    pub http2: bool,
}

impl RequestSummary {
    pub fn api_path(&self) -> &'static str {
        self.api.path()
    }
}

/// An Envoy counter that moved while one path ran (its measurements, from first to last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterDelta {
    pub path: PathKind,
    /// Which Envoy: its admin URL, or the pod read through a port-forward.
    pub source: String,
    /// `cluster.<name>.<leaf>`, `http.<prefix>.<leaf>` or `istio_requests_total{…}`, the same
    /// whether or not the proxy writes Istio's `;` delimiter.
    pub name: String,
    /// The failure mode the counter shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CheckId>,
    pub before: f64,
    pub after: f64,
    pub delta: f64,
}

/// How one https path was reached and its certificate checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsPath {
    pub path: PathKind,
    /// The URL as given.
    pub url: String,
    /// The name sent in TLS (SNI) and checked against the certificate.
    pub server_name: String,
    /// The address connected to, when the URL named one and `--mesh-host` the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_to: Option<String>,
    /// False with `--mesh-insecure-skip-tls-verify`.
    pub verified: bool,
    /// What the certificate was checked against.
    pub trust: String,
}

/// Everything one `probe` measured; `-o json` prints it as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    pub schema_version: u32,
    pub request: RequestSummary,
    /// The first streaming run per path (direct first).
    pub paths: Vec<PathReport>,
    /// Every streaming run, with --repeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<PathReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<PathResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concurrency: Vec<ConcurrencyResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large: Vec<LargeResult>,
    /// `--large-prompt`: the large request body per path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_prompt: Vec<LargeResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cold: Vec<ColdResult>,
    pub counter_deltas: Vec<CounterDelta>,
    /// The Envoys whose counters were read around each path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counter_sources: Vec<String>,
    /// The https paths: TLS name, address, how the certificate was checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsPath>,
    /// How the paths were opened on a live cluster (port-forwards, Host header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterPaths>,
    /// The first tokens in the order the requests were sent (warm-up, paths, cold pair), for
    /// naming a cold start; empty in evidence saved before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_tokens: Vec<FirstToken>,
    pub comparison: Comparison,
    /// What could not be measured, and why.
    /// What was not measured, and why (evidence saved before gaps had a subject holds sentences:
    /// they load as reasons).
    #[serde(deserialize_with = "gaps_or_sentences")]
    pub gaps: Vec<Gap>,
    pub interrupted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Completions,
    Chat,
}

impl Api {
    pub fn path(self) -> &'static str {
        match self {
            Api::Completions => "v1/completions",
            Api::Chat => "v1/chat/completions",
        }
    }
}

/// One port-forward the probe opened, as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Forward {
    /// `pod inference/vllm-7c9d5b8f6d-x2x7k`
    pub pod: String,
    pub port: u16,
    /// The local end: `http://127.0.0.1:PORT`.
    pub local_url: String,
    /// How long the pod has run (from `status.startTime`), for reading a cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_age_s: Option<u64>,
}

/// How the paths were opened on the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPaths {
    pub context: String,
    /// `deploy/vllm` in `namespace`.
    pub workload: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<Forward>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<Forward>,
    /// The Host header the gateway routes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_host: Option<String>,
    /// The Gateway object the mesh path enters through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin: Vec<Forward>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub verdict: String,
    /// Mesh minus direct.
    pub ttft_delta_ms: Option<f64>,
    pub itl_p50_delta_ms: Option<f64>,
    pub tpot_delta_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<String>,
    pub notes: Vec<String>,
}

/// One request's time to first token, labelled by its path and role (`direct warm-up`, `mesh`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstToken {
    pub label: String,
    pub ttft_ms: f64,
}

/// Gaps as `{what, reason}`, or as the sentences older probe reports held.
fn gaps_or_sentences<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Gap>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Gap(Gap),
        Sentence(String),
    }
    let read: Vec<Either> = Vec::deserialize(deserializer)?;
    Ok(read
        .into_iter()
        .map(|either| match either {
            Either::Gap(gap) => gap,
            Either::Sentence(text) => match text.split_once(": ") {
                Some((what, reason)) => Gap::new(what, reason),
                None => Gap::new("probe", text),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "gaps_or_sentences")]
        gaps: Vec<Gap>,
    }

    #[test]
    fn gaps_load_as_objects_and_as_the_sentences_of_older_reports() {
        let read: Holder = serde_json::from_str(
            r#"{"gaps": [{"what": "vLLM /metrics", "reason": "not read: refused"}, "model length unknown: 404", "no subject"]}"#,
        )
        .unwrap();
        assert_eq!(
            read.gaps,
            [
                Gap::new("vLLM /metrics", "not read: refused"),
                Gap::new("model length unknown", "404"),
                Gap::new("probe", "no subject"),
            ]
        );
    }
}
