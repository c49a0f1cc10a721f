//! Markdown for incident tickets: a summary table of the workloads and their root causes, then
//! per workload the root cause with its confidence, evidence bullets, the fix as YAML blocks, the
//! other contributing modes, the "Do you need Istio here?" advice, every check, and what could not
//! be checked.

use super::envoys::{self, EnvoyLine};
use super::{
    Extras, dataplane_text, evidence_text, fixes, gap_text, gpu_text, no_root_cause_text,
    outcome_text,
};
use crate::checks::Severity;
use crate::checks::mesh_need::{self, MeshNeed};
use crate::evidence::CheckId;
use crate::verdict::{CheckStatus, Diagnosis, TargetDiagnosis};
use std::fmt::Write;
use std::time::Duration;

pub fn render(diagnosis: &Diagnosis) -> String {
    render_with_envoys(diagnosis, &[])
}

/// [`render`], with the Envoys read per target (in the targets' order).
pub fn render_with_envoys(diagnosis: &Diagnosis, envoys: &[Vec<EnvoyLine>]) -> String {
    render_with(
        diagnosis,
        Extras {
            envoys,
            ..Extras::default()
        },
    )
}

/// [`render`], with what `extras` holds: per workload the Envoys read and the probe timelines
/// (as text), and a link to the timeline picture when one was written.
pub fn render_with(diagnosis: &Diagnosis, extras: Extras<'_>) -> String {
    let mut out = String::new();
    out.push_str("# kubectl infermesh diagnosis\n\n");
    render_summary(&mut out, diagnosis);
    let _ = writeln!(
        out,
        "\nExpected generation: {} · Sources: {} · Result: {}",
        crate::units::duration::display(diagnosis.expected_generation),
        diagnosis.sources.join(", "),
        outcome_text(diagnosis)
    );
    for (index, target) in diagnosis.targets.iter().enumerate() {
        render_target(
            &mut out,
            target,
            envoys::of(extras.envoys, index),
            diagnosis.expected_generation,
        );
        let timelines = extras.timelines_of(index);
        if !timelines.is_empty() || extras.timeline_file.is_some() {
            out.push_str("\n### Probe timeline\n\n");
            if let Some(file) = extras.timeline_file {
                let _ = writeln!(out, "Picture: [{file}]({})\n", link_target(file));
            }
            if !timelines.is_empty() {
                let _ = writeln!(
                    out,
                    "```text\n{}```",
                    super::timeline::text(timelines, super::timeline::DEFAULT_WIDTH + 20)
                );
            }
        }
    }
    if !diagnosis.gaps.is_empty() {
        out.push_str("\n## What could not be checked (all workloads)\n\n");
        for gap in &diagnosis.gaps {
            let _ = writeln!(out, "- {}", cell(&gap_text(gap)));
        }
    }
    out
}

/// A file name as a Markdown link target: spaces and parentheses escaped.
fn link_target(file: &str) -> String {
    file.replace(' ', "%20")
        .replace('(', "%28")
        .replace(')', "%29")
}

/// One row per workload: what a ticket's reader needs before the details.
fn render_summary(out: &mut String, diagnosis: &Diagnosis) {
    out.push_str(
        "| Workload | Namespace | Root cause | Severity | Confidence | Also contributing |\n",
    );
    out.push_str("|---|---|---|---|---|---|\n");
    for target in &diagnosis.targets {
        let summary = &target.target;
        let (root, severity, confidence) = match &target.root_cause {
            Some(root) => (
                format!("#{} `{}`: {}", root.number, root.id, root.title),
                root.severity.to_string(),
                root.confidence.as_str().to_string(),
            ),
            None => (
                cell(no_root_cause_text(target)),
                "-".to_string(),
                "-".to_string(),
            ),
        };
        let others: Vec<String> = target
            .also_contributing
            .iter()
            .map(|other| format!("#{} `{}`", other.number, other.id))
            .collect();
        let others = if others.is_empty() {
            "-".to_string()
        } else {
            others.join(", ")
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {root} | {severity} | {confidence} | {others} |",
            summary.reference, summary.namespace
        );
    }
}

fn render_target(
    out: &mut String,
    target: &TargetDiagnosis,
    envoys: &[EnvoyLine],
    expected: Duration,
) {
    let summary = &target.target;
    let _ = writeln!(
        out,
        "\n## `{}` in namespace `{}`\n",
        summary.reference, summary.namespace
    );
    let _ = writeln!(
        out,
        "{} · {} · GPU: {} · replicas: {}\n",
        summary.kind,
        dataplane_text(summary),
        gpu_text(summary),
        summary.replicas
    );
    match &target.root_cause {
        Some(root) => {
            let _ = writeln!(
                out,
                "**Root cause: #{} `{}`: {}** ({})\n",
                root.number, root.id, root.title, root.severity
            );
            let _ = writeln!(
                out,
                "**Confidence: {}** (basis: {})\n",
                root.confidence.as_str(),
                basis_text(root.basis)
            );
            let _ = writeln!(out, "{}\n", root.explanation);
            render_mode(out, target, root.id, "###");
            render_verify(out, target, root.id, expected);
        }
        None => {
            let _ = writeln!(out, "**{}**\n", no_root_cause_text(target));
        }
    }
    if !target.also_contributing.is_empty() {
        out.push_str("### Also contributing\n\n");
        for other in &target.also_contributing {
            let _ = writeln!(
                out,
                "#### #{} `{}`: {} ({})\n",
                other.number, other.id, other.title, other.severity
            );
            render_mode(out, target, other.id, "#####");
        }
    }
    if let Some(advice) = &target.mesh_need {
        render_mesh_need(out, advice);
    }
    render_checks(out, target);
    render_envoys(out, envoys);
    render_unchecked(out, target);
}

/// The Envoys whose config and counters were read, with their role on the path.
fn render_envoys(out: &mut String, envoys: &[EnvoyLine]) {
    if envoys.is_empty() {
        return;
    }
    out.push_str("\n### Envoys read\n\n");
    for line in envoys {
        let _ = writeln!(out, "- **{}** {}", line.role.as_str(), cell(&line.detail()));
        for gap in &line.gaps {
            let _ = writeln!(out, "  - not read: {}", cell(&gap_text(gap)));
        }
    }
}

/// How to confirm the fix took: the diagnosis again, and the probe run that shows the failure
/// mode gone on the mesh path (against the direct path, which bypasses the sidecar).
fn render_verify(out: &mut String, target: &TargetDiagnosis, id: CheckId, expected: Duration) {
    let summary = &target.target;
    let _ = writeln!(out, "### Verify\n");
    let _ = writeln!(
        out,
        "- `kubectl infermesh diagnose {} -n {}` no longer lists #{} `{}` above info.",
        summary.reference,
        summary.namespace,
        id.number(),
        id
    );
    let urls = "--direct-url http://127.0.0.1:8000 --mesh-url http://127.0.0.1:8080";
    let probe = match id {
        CheckId::StreamTimeout => Some(format!(
            "`kubectl infermesh probe {urls} --duration {}`: the stream ends with `[DONE]` on both paths, not cut on the mesh path.",
            crate::units::duration::display(expected + Duration::from_secs(30))
        )),
        CheckId::ConnectionPool => Some(format!(
            "`kubectl infermesh probe {urls} --concurrency N` with N above the old limit: no 503 (`x-envoy-overloaded`) on the mesh path."
        )),
        CheckId::BufferLimit => Some(format!(
            "`kubectl infermesh probe {urls} --large`: the body is complete on both paths."
        )),
        CheckId::ColdStart => Some(format!(
            "after a rollout, `kubectl infermesh probe {urls} --cold`: the first request on a fresh connection is within a few times the warm one."
        )),
        CheckId::EndpointPicker => Some(format!(
            "`kubectl infermesh probe {urls}`: the stream answers through the gateway as it does directly (no 500 from the ext_proc filter)."
        )),
        CheckId::SidecarOverhead => None,
    };
    if let Some(probe) = probe {
        let _ = writeln!(
            out,
            "- {probe} (Port-forward vLLM's port for the direct path and the ingress gateway for the mesh path first.)"
        );
    }
    out.push('\n');
}

fn basis_text(basis: crate::checks::Basis) -> &'static str {
    match basis {
        crate::checks::Basis::Runtime => "observed at runtime",
        crate::checks::Basis::Effective => "the running proxy's effective configuration",
        crate::checks::Basis::Static => "configuration as written",
    }
}

fn render_checks(out: &mut String, target: &TargetDiagnosis) {
    out.push_str("### All checks\n\n| # | Check | Severity | Finding |\n|---|---|---|---|\n");
    for finding in &target.findings {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} |",
            finding.number,
            finding.id,
            finding.severity,
            cell(&finding.title)
        );
    }
    for check in target
        .checks
        .iter()
        .filter(|c| c.status != CheckStatus::Found)
    {
        let (label, text) = match check.status {
            CheckStatus::NotApplicable => (
                "n/a",
                format!("not applicable: {}", check.reason.as_deref().unwrap_or("")),
            ),
            _ => ("ok", "no issue found".to_string()),
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} |",
            check.number,
            check.id,
            label,
            cell(&text)
        );
    }
    if let Some(advice) = &target.mesh_need {
        let _ = writeln!(
            out,
            "| - | `{}` | {} | {} |",
            mesh_need::ID,
            Severity::Info,
            cell(&advice.title)
        );
    }
}

/// Gaps, checks that had nothing to judge, and what the advice could not look at.
fn render_unchecked(out: &mut String, target: &TargetDiagnosis) {
    let mut lines: Vec<String> = target.gaps.iter().map(gap_text).collect();
    for check in &target.checks {
        if let Some(text) = &check.not_judged {
            lines.push(format!(
                "#{} {}: not judged: {text}",
                check.number, check.id
            ));
        }
        if check.status == CheckStatus::NotApplicable {
            lines.push(format!(
                "#{} {}: not applicable: {}",
                check.number,
                check.id,
                check.reason.as_deref().unwrap_or("")
            ));
        }
    }
    if let Some(advice) = &target.mesh_need {
        lines.extend(
            advice
                .assumptions
                .iter()
                .map(|assumption| format!("{}: {assumption}", mesh_need::ID)),
        );
    }
    if lines.is_empty() {
        return;
    }
    out.push_str("\n### What could not be checked\n\n");
    for line in &lines {
        let _ = writeln!(out, "- {}", cell(line));
    }
}

fn render_mesh_need(out: &mut String, advice: &MeshNeed) {
    let _ = writeln!(out, "### {}\n", mesh_need::QUESTION);
    let answer = advice
        .title
        .strip_prefix(mesh_need::QUESTION)
        .unwrap_or(&advice.title)
        .trim();
    let _ = writeln!(out, "**{}** (advice, not a failure)\n", cell(answer));
    for line in &advice.evidence {
        let _ = writeln!(out, "- `{}`", evidence_text(line).replace('`', "'"));
    }
    out.push('\n');
    if let Some(fix) = &advice.fix {
        let _ = writeln!(out, "Optional: {}\n", cell(&fix.summary));
        if !fix.yaml.is_empty() {
            let _ = write!(out, "```yaml\n{}", fix.yaml);
            if !fix.yaml.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("```\n\n");
        }
    }
}

/// Evidence bullets, assumptions and the fix of one failure mode's findings above info.
fn render_mode(out: &mut String, target: &TargetDiagnosis, id: CheckId, heading: &str) {
    let findings: Vec<_> = target
        .findings
        .iter()
        .filter(|f| f.id == id && f.severity > Severity::Info)
        .collect();
    let _ = writeln!(out, "{heading} Evidence\n");
    for finding in &findings {
        let _ = writeln!(out, "- {} ({})", cell(&finding.title), finding.severity);
        for line in &finding.evidence {
            let _ = writeln!(out, "  - `{}`", evidence_text(line).replace('`', "'"));
        }
        for assumption in &finding.assumptions {
            let _ = writeln!(out, "  - assumed: {}", cell(assumption));
        }
    }
    out.push('\n');
    let fixes = fixes::for_mode(&target.findings, id);
    if fixes.is_empty() {
        return;
    }
    let _ = writeln!(out, "{heading} Fix\n");
    if let Some(object) = fixes::same_object_twice(fixes.iter().copied()) {
        // One block would apply only the last version of the object: one block per fix, and
        // the way to get them merged.
        let _ = writeln!(
            out,
            "These fixes change the same {object} in different ways: applying both keeps only the last. `kubectl infermesh diagnose {} -n {} --fix` merges them into one object.\n",
            target.target.reference, target.target.namespace
        );
        for fix in &fixes {
            let _ = writeln!(out, "- {}", cell(&fix.summary));
            let yaml = fixes::join_yaml([*fix]);
            if !yaml.is_empty() {
                let _ = write!(out, "\n```yaml\n{yaml}```\n\n");
            }
        }
        return;
    }
    for fix in &fixes {
        let _ = writeln!(out, "- {}", cell(&fix.summary));
    }
    let yaml = fixes::join_yaml(fixes);
    if !yaml.is_empty() {
        let _ = write!(out, "\n```yaml\n{yaml}```\n");
    }
    out.push('\n');
}

/// Text safe inside a table cell or a bullet: no pipes, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;

    #[test]
    fn ticket_has_root_cause_evidence_fix_and_gaps() {
        let text = render(&sample::failing());
        assert!(text.starts_with("# kubectl infermesh diagnosis"), "{text}");
        assert!(
            text.contains("| `deploy/vllm` | inference | #2 `stream-timeout`: Streaming cut early by a timeout | critical | medium | #3 `connection-pool` |"),
            "summary table first:\n{text}"
        );
        assert!(text.contains("**Root cause: #2 `stream-timeout`"), "{text}");
        assert!(
            text.contains("**Confidence: medium** (basis: configuration as written)"),
            "{text}"
        );
        assert!(
            text.contains("  - `VirtualService inference/vllm spec/http[0]/timeout = 30s"),
            "{text}"
        );
        let yaml_block = text.find("```yaml\n").unwrap();
        let rest = &text[yaml_block + 8..];
        let block = &rest[..rest.find("```").unwrap()];
        let parsed: serde_yaml::Value = serde_yaml::from_str(block).unwrap();
        assert_eq!(parsed["kind"], "VirtualService");
        let verify = text.find("### Verify").unwrap();
        assert!(
            text[verify..].contains("--duration 330s"),
            "a stream longer than the expected generation:\n{text}"
        );
        assert!(text.contains("#### #3 `connection-pool`"), "{text}");
        assert!(text.contains("assumed: --max-num-seqs not set"), "{text}");
        assert!(text.contains("| 1 | `sidecar-overhead` | info |"), "{text}");
        let unchecked = text.find("### What could not be checked").unwrap();
        assert!(
            text[unchecked..].contains("- Envoy admin: offline manifests only"),
            "{text}"
        );
        assert!(
            text.contains("## What could not be checked (all workloads)\n\n- Istio CRDs"),
            "{text}"
        );
        assert!(!text.contains(QUESTION_HEADING), "no advice given: {text}");
    }

    const QUESTION_HEADING: &str = "### Do you need Istio here?";

    #[test]
    fn healthy_ticket_says_healthy() {
        let text = render(&sample::healthy());
        assert!(text.contains("No failure mode found above info"), "{text}");
        assert!(!text.contains("**Root cause"), "{text}");
        assert!(!text.contains("### Verify"), "{text}");
        assert!(!text.contains("```yaml"), "{text}");
    }

    #[test]
    fn advice_has_its_section_row_and_unchecked_items() {
        let text = render(&sample::with_mesh_need(sample::healthy()));
        let section = text.find(QUESTION_HEADING).unwrap();
        let checks = text.find("### All checks").unwrap();
        assert!(section < checks, "{text}");
        assert!(
            text[section..].contains("**Nothing found needs it"),
            "answer without the question repeated:\n{text}"
        );
        assert!(text[section..checks].contains("```yaml\n"), "{text}");
        assert!(text.contains("| - | `mesh-need` | info |"), "{text}");
        assert!(
            text.contains("- mesh-need: no PeerAuthentication applies"),
            "{text}"
        );
    }

    #[test]
    fn not_applicable_checks_are_listed_as_unchecked() {
        let mut diagnosis = sample::healthy();
        diagnosis.targets[0].checks[0].status = CheckStatus::NotApplicable;
        diagnosis.targets[0].checks[0].reason = Some("not a GPU pod".into());
        let text = render(&diagnosis);
        let unchecked = text.find("### What could not be checked").unwrap();
        assert!(
            text[unchecked..].contains("- #1 sidecar-overhead: not applicable: not a GPU pod"),
            "{text}"
        );
    }

    #[test]
    fn two_versions_of_one_object_are_separate_blocks_pointing_to_fix() {
        let version = |limit: u32| {
            crate::checks::Finding::new(
                CheckId::BufferLimit,
                Severity::Warning,
                crate::checks::Basis::Static,
                format!("limit {limit}"),
            )
            .fix(
                format!("set {limit}"),
                format!("apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {{name: f, namespace: inference}}\nspec: {{priority: {limit}}}\n"),
            )
        };
        let text = render(&sample::diagnosis(
            vec![version(1), version(2)],
            Severity::Critical,
        ));
        assert!(
            text.contains("These fixes change the same EnvoyFilter inference/f"),
            "{text}"
        );
        assert!(
            text.contains("diagnose deploy/vllm -n inference --fix"),
            "{text}"
        );
        assert_eq!(text.matches("```yaml").count(), 2, "{text}");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
