//! The failure-mode checks (six; JSON consumers must expect more). Each is a pure function `fn check(&TargetEvidence, &Settings) ->
//! Vec<Finding>`: no I/O, no clock. A new failure mode is one file here plus its line in `ALL`.
//! `proxy/` reads the Envoys on the path (`TargetEvidence::envoy`) for every check: what they run
//! wins over YAML, and what their counters show makes a finding runtime.

pub mod ambient;
pub mod buffer_limit;
pub mod capacity;
pub mod cold_start;
pub mod connection_pool;
pub mod endpoint_picker;
#[cfg(test)]
mod envoy_scenarios;
#[cfg(test)]
mod examples_test;
pub mod fixes;
pub mod http_routes;
pub mod limits;
pub mod mesh_need;
pub mod probe_runs;
pub mod proxy;
pub mod sidecar_overhead;
pub mod stream_timeout;
pub mod target;
#[cfg(test)]
pub(crate) mod test_support;

pub use crate::evidence::CheckId;
use crate::evidence::{ObjectRef, TargetEvidence};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of fact a finding rests on; the verdict ranks runtime proof above the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// Configuration as written (manifests, API objects): a limit that could bite.
    Static,
    /// Configuration as the proxy runs it (Envoy config_dump), or a limit traffic will exceed.
    Effective,
    /// Something that happened: a probe that broke, a counter or response flag that moved.
    Runtime,
}

/// One fact behind a finding: which object, which field, what value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceLine {
    pub object: ObjectRef,
    /// Field path inside the object, `spec/http[0]/timeout`, or a stat name for Envoy counters.
    pub path: String,
    pub value: String,
    /// Optional words on what the value means here (`shorter than the 300s expected generation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl EvidenceLine {
    pub fn new(object: ObjectRef, path: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            object,
            path: path.into(),
            value: value.into(),
            note: None,
        }
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// The fix: a sentence, and YAML that `kubectl apply -f -` accepts (several documents allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fix {
    pub summary: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub yaml: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub id: CheckId,
    pub number: u8,
    pub severity: Severity,
    pub basis: Basis,
    /// One line that names the problem in this workload's terms.
    pub title: String,
    /// The first line is the one that decides the finding: the root cause quotes it.
    pub evidence: Vec<EvidenceLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
    /// Defaults the check fell back on, named: `istio-proxy requests assumed 100m/128Mi (injector default)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assumptions: Vec<String>,
}

impl Finding {
    pub fn new(id: CheckId, severity: Severity, basis: Basis, title: impl Into<String>) -> Self {
        Self {
            id,
            number: id.number(),
            severity,
            basis,
            title: title.into(),
            evidence: Vec::new(),
            fix: None,
            assumptions: Vec::new(),
        }
    }

    pub fn evidence(mut self, line: EvidenceLine) -> Self {
        self.evidence.push(line);
        self
    }

    /// [`Finding::evidence`] when there is a line.
    pub fn evidence_if(mut self, line: Option<EvidenceLine>) -> Self {
        self.evidence.extend(line);
        self
    }

    pub fn fix(mut self, summary: impl Into<String>, yaml: impl Into<String>) -> Self {
        self.fix = Some(Fix {
            summary: summary.into(),
            yaml: yaml.into(),
        });
        self
    }

    pub fn assume(mut self, assumption: impl Into<String>) -> Self {
        self.assumptions.push(assumption.into());
        self
    }
}

/// User settings that checks compare the evidence against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The longest generation the service must allow (`--expected-generation`).
    pub expected_generation: Duration,
}

pub type CheckFn = fn(&TargetEvidence, &Settings) -> Vec<Finding>;

/// Every check, in failure-mode order.
pub const ALL: [(CheckId, CheckFn); 6] = [
    (CheckId::SidecarOverhead, sidecar_overhead::check),
    (CheckId::StreamTimeout, stream_timeout_check),
    (CheckId::ConnectionPool, connection_pool_check),
    (CheckId::BufferLimit, buffer_limit_check),
    (CheckId::ColdStart, cold_start_check),
    (CheckId::EndpointPicker, endpoint_picker::check),
];

/// A mode's check with what any Envoy on the path shows of it besides its settings: config it
/// refused (`proxy::rejected`) and, for an Envoy read from `/stats` alone, its counters
/// (`proxy::counters_only`).
fn with_envoy_state(
    mode: CheckId,
    target: &TargetEvidence,
    mut findings: Vec<Finding>,
) -> Vec<Finding> {
    findings.extend(proxy::rejected::findings(target, mode));
    findings.extend(proxy::counters_only::findings(target, mode));
    findings
}

fn stream_timeout_check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    with_envoy_state(
        CheckId::StreamTimeout,
        target,
        stream_timeout::check(target, settings),
    )
}

fn connection_pool_check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    with_envoy_state(
        CheckId::ConnectionPool,
        target,
        connection_pool::check(target, settings),
    )
}

fn buffer_limit_check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    with_envoy_state(
        CheckId::BufferLimit,
        target,
        buffer_limit::check(target, settings),
    )
}

fn cold_start_check(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    with_envoy_state(
        CheckId::ColdStart,
        target,
        cold_start::check(target, settings),
    )
}

/// Runs every check on one target.
pub fn run_all(target: &TargetEvidence, settings: &Settings) -> Vec<Finding> {
    ALL.iter()
        .flat_map(|(_, check)| check(target, settings))
        .collect()
}
