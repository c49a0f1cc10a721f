//! JSON and YAML: one versioned document (`schemaVersion`) that runbooks and CI parse.
//! Keys are camelCase and always present (`null` or `[]` when empty), so consumers need no guesses.

use super::RenderError;
use super::envoys::{self, EnvoyLine};
use crate::checks::mesh_need::{self, Answer, MeshNeed};
use crate::checks::{Basis, EvidenceLine, Finding, Fix, Severity};
use crate::evidence::Gap;
use crate::verdict::{
    CheckOutcome, Contributor, Diagnosis, RootCause, TargetDiagnosis, TargetSummary,
};
use serde::Serialize;

/// Bumped when a key changes meaning or disappears; new keys do not bump it.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<'a> {
    pub schema_version: u32,
    pub expected_generation: String,
    pub sources: &'a [String],
    pub fail_on: Severity,
    pub worst_severity: Option<Severity>,
    pub exit_code: u8,
    pub targets: Vec<TargetDocument<'a>>,
    pub gaps: &'a [Gap],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetDocument<'a> {
    pub target: &'a TargetSummary,
    pub root_cause: Option<&'a RootCause>,
    pub also_contributing: &'a [Contributor],
    /// Ranked failure-mode findings, then the `mesh-need` advice (number 0) when given.
    pub findings: Vec<FindingDocument<'a>>,
    /// The `mesh-need` answer: `sidecar-needed`, `callers-only`, `not-needed`; null when the
    /// question does not arise (no sidecar, no Istio).
    pub mesh_need: Option<Answer>,
    pub checks: &'a [CheckOutcome],
    pub gaps: &'a [Gap],
    /// The Envoys read for this target and the role each plays on the path to vLLM.
    pub envoys: &'a [EnvoyLine],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingDocument<'a> {
    /// One of the five failure modes, or `mesh-need`.
    pub id: &'static str,
    pub number: u8,
    pub severity: Severity,
    pub basis: Basis,
    pub title: &'a str,
    pub evidence: &'a [EvidenceLine],
    pub fix: Option<FixDocument<'a>>,
    pub assumptions: &'a [String],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FixDocument<'a> {
    pub summary: &'a str,
    /// YAML that `kubectl apply -f -` accepts; empty when the fix is a sentence only.
    pub yaml: &'a str,
}

pub fn document(diagnosis: &Diagnosis) -> Document<'_> {
    document_with_envoys(diagnosis, &[])
}

pub fn document_with_envoys<'a>(
    diagnosis: &'a Diagnosis,
    envoys: &'a [Vec<EnvoyLine>],
) -> Document<'a> {
    Document {
        schema_version: REPORT_SCHEMA_VERSION,
        expected_generation: crate::units::duration::display(diagnosis.expected_generation),
        sources: &diagnosis.sources,
        fail_on: diagnosis.fail_on,
        worst_severity: diagnosis.worst,
        exit_code: diagnosis.exit_code(),
        targets: diagnosis
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| target_document(target, envoys::of(envoys, index)))
            .collect(),
        gaps: &diagnosis.gaps,
    }
}

fn target_document<'a>(target: &'a TargetDiagnosis, envoys: &'a [EnvoyLine]) -> TargetDocument<'a> {
    TargetDocument {
        target: &target.target,
        root_cause: target.root_cause.as_ref(),
        also_contributing: &target.also_contributing,
        findings: target
            .findings
            .iter()
            .map(finding_document)
            .chain(target.mesh_need.as_ref().map(mesh_need_document))
            .collect(),
        mesh_need: target.mesh_need.as_ref().map(|advice| advice.answer),
        checks: &target.checks,
        gaps: &target.gaps,
        envoys,
    }
}

fn mesh_need_document(advice: &MeshNeed) -> FindingDocument<'_> {
    FindingDocument {
        id: mesh_need::ID,
        number: mesh_need::NUMBER,
        severity: Severity::Info,
        basis: Basis::Static,
        title: &advice.title,
        evidence: &advice.evidence,
        fix: advice.fix.as_ref().map(fix_document),
        assumptions: &advice.assumptions,
    }
}

fn fix_document(fix: &Fix) -> FixDocument<'_> {
    FixDocument {
        summary: &fix.summary,
        yaml: &fix.yaml,
    }
}

fn finding_document(finding: &Finding) -> FindingDocument<'_> {
    FindingDocument {
        id: finding.id.as_str(),
        number: finding.number,
        severity: finding.severity,
        basis: finding.basis,
        title: &finding.title,
        evidence: &finding.evidence,
        fix: finding.fix.as_ref().map(fix_document),
        assumptions: &finding.assumptions,
    }
}

pub fn json(diagnosis: &Diagnosis) -> Result<String, RenderError> {
    json_with_envoys(diagnosis, &[])
}

pub fn json_with_envoys(
    diagnosis: &Diagnosis,
    envoys: &[Vec<EnvoyLine>],
) -> Result<String, RenderError> {
    let mut text = serde_json::to_string_pretty(&document_with_envoys(diagnosis, envoys))?;
    text.push('\n');
    Ok(text)
}

pub fn yaml(diagnosis: &Diagnosis) -> Result<String, RenderError> {
    yaml_with_envoys(diagnosis, &[])
}

pub fn yaml_with_envoys(
    diagnosis: &Diagnosis,
    envoys: &[Vec<EnvoyLine>],
) -> Result<String, RenderError> {
    Ok(serde_yaml::to_string(&document_with_envoys(
        diagnosis, envoys,
    ))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;
    use serde_json::Value;

    #[test]
    fn json_has_the_versioned_shape() {
        let value: Value = serde_json::from_str(&json(&sample::failing()).unwrap()).unwrap();
        assert_eq!(value["schemaVersion"], 1);
        assert_eq!(value["expectedGeneration"], "300s");
        assert_eq!(value["sources"][0], "manifests");
        assert_eq!(value["failOn"], "critical");
        assert_eq!(value["worstSeverity"], "critical");
        assert_eq!(value["exitCode"], 3);
        assert_eq!(value["gaps"][0]["what"], "Istio CRDs");

        let target = &value["targets"][0];
        assert_eq!(target["target"]["ref"], "deploy/vllm");
        assert_eq!(target["target"]["kind"], "Deployment");
        assert_eq!(target["target"]["namespace"], "inference");
        assert_eq!(target["target"]["sidecarMode"], "injected");
        assert_eq!(target["target"]["gpu"]["resource"], "nvidia.com/gpu");
        assert_eq!(target["target"]["replicas"], 2);

        let root = &target["rootCause"];
        assert_eq!(root["id"], "stream-timeout");
        assert_eq!(root["number"], 2);
        assert_eq!(root["confidence"], "medium");
        assert!(root["title"].as_str().unwrap().contains("timeout"));
        assert!(root["explanation"].as_str().unwrap().len() > 20);
        assert_eq!(target["alsoContributing"][0]["id"], "connection-pool");

        let findings = target["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 3);
        let first = &findings[0];
        for key in [
            "id",
            "number",
            "severity",
            "basis",
            "title",
            "evidence",
            "fix",
            "assumptions",
        ] {
            assert!(first.get(key).is_some(), "finding lacks {key}: {first}");
        }
        assert_eq!(first["basis"], "static");
        assert_eq!(first["evidence"][0]["path"], "spec/http[0]/timeout");
        assert_eq!(first["evidence"][0]["object"]["kind"], "VirtualService");
        assert!(
            first["fix"]["yaml"]
                .as_str()
                .unwrap()
                .contains("timeout: 300s")
        );
        assert_eq!(
            findings[1]["assumptions"][0],
            "--max-num-seqs not set: assumed 256 per replica"
        );
        assert_eq!(findings[2]["fix"], Value::Null);
        assert_eq!(target["checks"].as_array().unwrap().len(), 6);
        assert_eq!(target["gaps"][0]["reason"], "offline manifests only");
    }

    #[test]
    fn healthy_json_has_null_root_cause_and_exit_zero() {
        let value: Value = serde_json::from_str(&json(&sample::healthy()).unwrap()).unwrap();
        assert_eq!(value["targets"][0]["rootCause"], Value::Null);
        assert_eq!(value["exitCode"], 0);
        assert_eq!(value["worstSeverity"], "info");
    }

    #[test]
    fn mesh_need_is_the_last_finding_with_number_zero() {
        let diagnosis = sample::with_mesh_need(sample::failing());
        let value: Value = serde_json::from_str(&json(&diagnosis).unwrap()).unwrap();
        let target = &value["targets"][0];
        let findings = target["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 4);
        let advice = &findings[3];
        assert_eq!(advice["id"], "mesh-need");
        assert_eq!(advice["number"], 0);
        assert_eq!(advice["severity"], "info");
        assert!(
            advice["fix"]["yaml"]
                .as_str()
                .unwrap()
                .contains("sidecar.istio.io/inject")
        );
        assert_eq!(target["meshNeed"], "not-needed");
        assert_eq!(target["rootCause"]["id"], "stream-timeout");
        assert_eq!(target["checks"].as_array().unwrap().len(), 6);
        let without: Value = serde_json::from_str(&json(&sample::failing()).unwrap()).unwrap();
        assert_eq!(without["targets"][0]["meshNeed"], Value::Null);
    }

    #[test]
    fn yaml_parses_to_the_same_document_as_json() {
        let diagnosis = sample::failing();
        let from_yaml: Value = serde_yaml::from_str(&yaml(&diagnosis).unwrap()).unwrap();
        let from_json: Value = serde_json::from_str(&json(&diagnosis).unwrap()).unwrap();
        assert_eq!(from_yaml, from_json);
    }
}
