//! Markdown for incident tickets: per target the root cause, its evidence, the fix as YAML blocks,
//! the other contributing modes, every finding, and what could not be gathered.

use super::envoys::{self, EnvoyLine};
use super::{
    evidence_text, fixes, gap_text, gpu_text, no_root_cause_text, outcome_text, sidecar_mode_text,
};
use crate::checks::{CheckId, Severity};
use crate::verdict::{CheckStatus, Diagnosis, TargetDiagnosis};
use std::fmt::Write;

pub fn render(diagnosis: &Diagnosis) -> String {
    render_with_envoys(diagnosis, &[])
}

pub fn render_with_envoys(diagnosis: &Diagnosis, envoys: &[Vec<EnvoyLine>]) -> String {
    let mut out = String::new();
    out.push_str("# kubectl infermesh diagnosis\n\n");
    let _ = writeln!(
        out,
        "Expected generation: {} · Sources: {} · Result: {}",
        crate::duration::display(diagnosis.expected_generation),
        diagnosis.sources.join(", "),
        outcome_text(diagnosis)
    );
    for (index, target) in diagnosis.targets.iter().enumerate() {
        render_target(&mut out, target, envoys::of(envoys, index));
    }
    if !diagnosis.gaps.is_empty() {
        out.push_str("\n## Not gathered (all targets)\n\n");
        for gap in &diagnosis.gaps {
            let _ = writeln!(out, "- {}", cell(&gap_text(gap)));
        }
    }
    out
}

fn render_target(out: &mut String, target: &TargetDiagnosis, envoys: &[EnvoyLine]) {
    let summary = &target.target;
    let _ = writeln!(
        out,
        "\n## `{}` in namespace `{}`\n",
        summary.reference, summary.namespace
    );
    let _ = writeln!(
        out,
        "{} · sidecar: {} ({}) · GPU: {} · replicas: {}\n",
        summary.kind,
        sidecar_mode_text(summary.sidecar_mode),
        summary.sidecar_reason,
        gpu_text(summary),
        summary.replicas
    );
    match &target.root_cause {
        Some(root) => {
            let _ = writeln!(
                out,
                "**Root cause: #{} `{}`: {}** ({}, confidence {})\n",
                root.number,
                root.id,
                root.title,
                root.severity,
                root.confidence.as_str()
            );
            let _ = writeln!(out, "{}\n", root.explanation);
            render_mode(out, target, root.id, "###");
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
    let partial: Vec<_> = target
        .checks
        .iter()
        .filter_map(|check| check.not_judged.as_ref().map(|text| (check, text)))
        .collect();
    if !partial.is_empty() {
        out.push_str("\n### Not judged\n\n");
        for (check, text) in partial {
            let _ = writeln!(out, "- #{} `{}`: {}", check.number, check.id, cell(text));
        }
    }
    if !envoys.is_empty() {
        out.push_str("\n### Envoys read\n\n");
        for line in envoys {
            let _ = writeln!(out, "- **{}** {}", line.role.as_str(), cell(&line.detail()));
            for gap in &line.gaps {
                let _ = writeln!(out, "  - not read: {}", cell(&gap_text(gap)));
            }
        }
    }
    if !target.gaps.is_empty() {
        out.push_str("\n### Not gathered\n\n");
        for gap in &target.gaps {
            let _ = writeln!(out, "- {}", cell(&gap_text(gap)));
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
        assert!(text.contains("**Root cause: #2 `stream-timeout`"), "{text}");
        assert!(
            text.contains("  - `VirtualService inference/vllm spec/http[0]/timeout = 30s"),
            "{text}"
        );
        let yaml_block = text.find("```yaml\n").unwrap();
        let rest = &text[yaml_block + 8..];
        let block = &rest[..rest.find("```").unwrap()];
        let parsed: serde_yaml::Value = serde_yaml::from_str(block).unwrap();
        assert_eq!(parsed["kind"], "VirtualService");
        assert!(text.contains("#### #3 `connection-pool`"), "{text}");
        assert!(text.contains("assumed: --max-num-seqs not set"), "{text}");
        assert!(text.contains("| 1 | `sidecar-overhead` | info |"), "{text}");
        assert!(
            text.contains("- Envoy admin: offline manifests only"),
            "{text}"
        );
        assert!(text.contains("## Not gathered (all targets)"), "{text}");
    }

    #[test]
    fn healthy_ticket_says_healthy() {
        let text = render(&sample::healthy());
        assert!(text.contains("No failure mode found above info"), "{text}");
        assert!(!text.contains("Root cause"), "{text}");
        assert!(!text.contains("```yaml"), "{text}");
    }

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
