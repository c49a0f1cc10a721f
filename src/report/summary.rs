//! The overview that opens a report of several targets, the way `kubectl get` lists objects: one
//! row per workload, worst first; which workloads' details follow it; and the counts that close
//! a run. Pure: it reads the verdict (its root causes and ranked findings) and decides nothing
//! the verdict has not.

use crate::checks::{Basis, Severity};
use crate::verdict::{CheckStatus, Confidence, Diagnosis, TargetDiagnosis};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Which targets' details follow the summary (`--details`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Details<'a> {
    /// Those whose root cause is at or above `--fail-on` (the default).
    #[default]
    AtFailOn,
    /// Every target.
    All,
    /// None: the summary alone.
    None,
    /// The targets named (`deploy/NAME`, `NAMESPACE/NAME` or `NAME`).
    Named(&'a [String]),
}

/// What a row says a target has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause<'a> {
    /// The root cause's failure-mode id.
    Root(&'a str),
    Healthy,
    /// No check applied, so nothing was judged.
    NotJudged,
}

impl Cause<'_> {
    pub fn text(self) -> &'static str {
        match self {
            Cause::Root(_) => "",
            Cause::Healthy => "healthy",
            Cause::NotJudged => "not judged",
        }
    }
}

/// One summary row.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// The target's place in the diagnosis.
    pub index: usize,
    pub target: &'a TargetDiagnosis,
    pub cause: Cause<'a>,
    pub severity: Option<Severity>,
    pub confidence: Option<Confidence>,
    pub basis: Option<Basis>,
    /// What proved the root cause: the first evidence line of the ranked first finding (the one
    /// the root cause is) as `object path = value`, without its note; else the finding's title.
    pub proved_by: String,
}

impl Row<'_> {
    /// `stream-timeout`, `healthy`, `not judged`.
    pub fn cause_text(&self) -> &str {
        match self.cause {
            Cause::Root(id) => id,
            other => other.text(),
        }
    }
}

/// The basis as the summary names it: what the finding rests on.
pub fn basis_word(basis: Basis) -> &'static str {
    match basis {
        Basis::Static => "written",
        Basis::Effective => "effective",
        Basis::Runtime => "runtime",
    }
}

/// One row per target, worst first: root-cause severity, then basis (runtime before effective
/// before written), then confidence, then healthy before not judged, then namespace and name.
pub fn rows(diagnosis: &Diagnosis) -> Vec<Row<'_>> {
    let mut rows: Vec<Row> = diagnosis
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| row(index, target))
        .collect();
    rows.sort_by(worst_first);
    rows
}

fn row(index: usize, target: &TargetDiagnosis) -> Row<'_> {
    match &target.root_cause {
        Some(root) => {
            let proved_by = target
                .findings
                .first()
                .map(|finding| match finding.evidence.first() {
                    Some(line) => format!("{} {} = {}", line.object, line.path, line.value),
                    None => finding.title.clone(),
                })
                .unwrap_or_default();
            Row {
                index,
                target,
                cause: Cause::Root(root.id.as_str()),
                severity: Some(root.severity),
                confidence: Some(root.confidence),
                basis: Some(root.basis),
                proved_by,
            }
        }
        None => {
            let judged = target
                .checks
                .iter()
                .any(|check| check.status != CheckStatus::NotApplicable);
            Row {
                index,
                target,
                cause: if judged {
                    Cause::Healthy
                } else {
                    Cause::NotJudged
                },
                severity: None,
                confidence: None,
                basis: None,
                proved_by: String::new(),
            }
        }
    }
}

fn worst_first(a: &Row, b: &Row) -> Ordering {
    let judged = |row: &Row| row.cause != Cause::NotJudged;
    b.severity
        .cmp(&a.severity)
        .then(b.basis.cmp(&a.basis))
        .then(b.confidence.cmp(&a.confidence))
        .then(judged(b).cmp(&judged(a)))
        .then(a.target.target.namespace.cmp(&b.target.target.namespace))
        .then(a.target.target.reference.cmp(&b.target.target.reference))
}

/// Whether `target`'s details follow the summary.
pub fn shows_details(diagnosis: &Diagnosis, target: &TargetDiagnosis, details: Details) -> bool {
    match details {
        Details::AtFailOn => target
            .root_cause
            .as_ref()
            .is_some_and(|root| root.severity >= diagnosis.fail_on),
        Details::All => true,
        Details::None => false,
        Details::Named(names) => names.iter().any(|name| names_target(name, target)),
    }
}

/// `deploy/vllm`, `inference/vllm`, `inference/deploy/vllm` or `vllm` names the Deployment vllm.
fn names_target(name: &str, target: &TargetDiagnosis) -> bool {
    let summary = &target.target;
    name == summary.reference
        || name == summary.name
        || name == format!("{}/{}", summary.namespace, summary.name)
        || name == format!("{}/{}", summary.namespace, summary.reference)
}

/// The counts that close a run: `500 workloads: 498 critical, 2 healthy; stream-timeout 498`.
pub fn counts(diagnosis: &Diagnosis) -> String {
    let rows = rows(diagnosis);
    let total = rows.len();
    let noun = if total == 1 { "workload" } else { "workloads" };
    let mut parts = Vec::new();
    for severity in [Severity::Critical, Severity::Warning, Severity::Info] {
        let count = rows
            .iter()
            .filter(|row| row.severity == Some(severity))
            .count();
        if count > 0 {
            parts.push(format!("{count} {severity}"));
        }
    }
    for cause in [Cause::Healthy, Cause::NotJudged] {
        let count = rows.iter().filter(|row| row.cause == cause).count();
        if count > 0 {
            parts.push(format!("{count} {}", cause.text()));
        }
    }
    let mut by_cause: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        if let Cause::Root(id) = row.cause {
            *by_cause.entry(id).or_default() += 1;
        }
    }
    let mut causes: Vec<(&str, usize)> = by_cause.into_iter().collect();
    causes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut line = format!("{total} {noun}: {}", parts.join(", "));
    if !causes.is_empty() {
        let causes: Vec<String> = causes
            .iter()
            .map(|(id, count)| format!("{id} {count}"))
            .collect();
        line.push_str(&format!("; {}", causes.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;

    /// The failing sample's target and the healthy one's, as two targets of one diagnosis.
    fn two() -> Diagnosis {
        let mut diagnosis = sample::healthy();
        let failing = sample::failing();
        let mut other = failing.targets[0].clone();
        other.target.name = "llama".to_string();
        other.target.reference = "deploy/llama".to_string();
        diagnosis.targets.push(other);
        diagnosis.worst = Some(Severity::Critical);
        diagnosis.failed = true;
        diagnosis
    }

    #[test]
    fn rows_put_the_worst_first_and_name_what_proved_it() {
        let diagnosis = two();
        let rows = rows(&diagnosis);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].index, 1);
        assert_eq!(rows[0].cause_text(), "stream-timeout");
        assert_eq!(rows[0].severity, Some(Severity::Critical));
        assert_eq!(rows[0].basis.map(basis_word), Some("written"));
        assert!(
            rows[0].proved_by == "VirtualService inference/vllm spec/http[0]/timeout = 30s",
            "{}",
            rows[0].proved_by
        );
        assert_eq!(rows[1].cause_text(), "healthy");
        assert_eq!(rows[1].severity, None);
    }

    #[test]
    fn details_follow_fail_on_all_or_names() {
        let diagnosis = two();
        let shown = |details| {
            diagnosis
                .targets
                .iter()
                .map(|target| shows_details(&diagnosis, target, details))
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(Details::AtFailOn), vec![false, true]);
        assert_eq!(shown(Details::All), vec![true, true]);
        assert_eq!(shown(Details::None), vec![false, false]);
        let names = ["deploy/vllm".to_string()];
        assert_eq!(shown(Details::Named(&names)), vec![true, false]);
        let names = ["inference/llama".to_string()];
        assert_eq!(shown(Details::Named(&names)), vec![false, true]);
    }

    #[test]
    fn counts_say_severities_then_causes() {
        assert_eq!(
            counts(&two()),
            "2 workloads: 1 critical, 1 healthy; stream-timeout 1"
        );
        assert_eq!(counts(&sample::healthy()), "1 workload: 1 healthy");
    }
}
