//! The terminal view: per target, a header line, the root cause on top, then one row per check.
//! `wide` adds the evidence and assumptions per finding and the fix YAML under the table.

use super::envoys::{self, EnvoyLine};
use super::{
    Extras, Style, dataplane_text, evidence_text, fixes, gap_text, gpu_text, no_root_cause_text,
    outcome_text,
};
use crate::checks::mesh_need::{self, MeshNeed};
use crate::checks::{Finding, Severity};
use crate::verdict::{CheckStatus, Diagnosis, TargetDiagnosis};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table};
use std::fmt::Write;

pub fn render(diagnosis: &Diagnosis, wide: bool, style: Style) -> String {
    render_with_envoys(diagnosis, &[], wide, style)
}

pub fn render_with_envoys(
    diagnosis: &Diagnosis,
    envoys: &[Vec<EnvoyLine>],
    wide: bool,
    style: Style,
) -> String {
    render_with(
        diagnosis,
        Extras {
            envoys,
            ..Extras::default()
        },
        wide,
        style,
    )
}

/// The table with what `extras` holds: the Envoys read and the probe timelines per target.
pub fn render_with(diagnosis: &Diagnosis, extras: Extras<'_>, wide: bool, style: Style) -> String {
    let paint = Paint(style.colour);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Expected generation {} · sources: {}",
        crate::units::duration::display(diagnosis.expected_generation),
        diagnosis.sources.join(", ")
    );
    for (index, target) in diagnosis.targets.iter().enumerate() {
        out.push('\n');
        render_target(
            &mut out,
            target,
            envoys::of(extras.envoys, index),
            wide,
            style,
            paint,
        );
        let timelines = extras.timelines_of(index);
        if !timelines.is_empty() {
            let _ = writeln!(out, "{}", paint.dim("Probe timelines:"));
            out.push_str(&super::timeline::text(timelines, style.width));
        }
    }
    if let Some(file) = extras.timeline_file {
        let _ = writeln!(out, "\nTimeline picture: {file}");
    }
    if !diagnosis.gaps.is_empty() {
        out.push('\n');
        out.push_str(&paint.dim("Not gathered (all targets):"));
        out.push('\n');
        for gap in &diagnosis.gaps {
            let _ = writeln!(out, "  - {}", gap_text(gap));
        }
    }
    let _ = writeln!(out, "\nResult: {}", outcome_text(diagnosis));
    out
}

fn render_target(
    out: &mut String,
    target: &TargetDiagnosis,
    envoys: &[EnvoyLine],
    wide: bool,
    style: Style,
    paint: Paint,
) {
    let summary = &target.target;
    let _ = writeln!(
        out,
        "{}  namespace {} · {} · GPU {} · replicas {}",
        paint.bold(&summary.reference),
        summary.namespace,
        dataplane_text(summary),
        gpu_text(summary),
        summary.replicas
    );
    match &target.root_cause {
        Some(root) => {
            let line = format!(
                "Root cause: #{} {}: {} ({}, confidence {})",
                root.number,
                root.id,
                root.title,
                root.severity,
                root.confidence.as_str()
            );
            let _ = writeln!(out, "{}", paint.severity(&line, root.severity));
            let _ = writeln!(out, "  {}", root.explanation);
            if !wide && let Some(fix) = fixes::for_mode(&target.findings, root.id).first() {
                let yaml = if fix.yaml.trim().is_empty() {
                    ""
                } else {
                    " (the YAML: --fix, or -o wide)"
                };
                let _ = writeln!(out, "  Fix: {}{yaml}", fix.summary);
            }
            if !target.also_contributing.is_empty() {
                let others: Vec<String> = target
                    .also_contributing
                    .iter()
                    .map(|c| format!("#{} {} ({})", c.number, c.id, c.severity))
                    .collect();
                let _ = writeln!(out, "Also contributing: {}", others.join(", "));
            }
        }
        None => {
            let _ = writeln!(out, "{}", paint.good(no_root_cause_text(target)));
        }
    }
    let _ = writeln!(out, "{}", table(target, wide, style));
    if wide {
        render_fixes(out, target);
    }
    let partial: Vec<_> = target
        .checks
        .iter()
        .filter_map(|check| check.not_judged.as_ref().map(|text| (check, text)))
        .collect();
    if !partial.is_empty() {
        let _ = writeln!(out, "{}", paint.dim("Not judged:"));
        for (check, text) in partial {
            let _ = writeln!(out, "  - #{} {}: {text}", check.number, check.id);
        }
    }
    render_envoys(out, envoys, paint);
    if !target.gaps.is_empty() {
        let _ = writeln!(out, "{}", paint.dim("Not gathered:"));
        for gap in &target.gaps {
            let _ = writeln!(out, "  - {}", gap_text(gap));
        }
    }
}

/// One line per Envoy read for the target, with its inferred role, and what it could not give.
fn render_envoys(out: &mut String, lines: &[EnvoyLine], paint: Paint) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}", paint.dim("Envoys read:"));
    for line in lines {
        let _ = writeln!(out, "  {}", line.text());
        for gap in &line.gaps {
            let _ = writeln!(out, "    not read: {}", gap_text(gap));
        }
    }
}

fn table(target: &TargetDiagnosis, wide: bool, style: Style) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if !style.terminal {
        table.force_no_tty();
    }
    if style.colour {
        table.enforce_styling();
    }
    let mut header = vec!["#", "Check", "Severity", "Finding"];
    if wide {
        header.push("Evidence");
    }
    table.set_header(header);
    for finding in &target.findings {
        let mut row = vec![
            Cell::new(finding.number),
            Cell::new(finding.id),
            severity_cell(finding.severity, style.colour),
            Cell::new(&finding.title),
        ];
        if wide {
            row.push(Cell::new(wide_evidence(finding)));
        }
        table.add_row(row);
    }
    for check in target
        .checks
        .iter()
        .filter(|c| c.status != CheckStatus::Found)
    {
        let (label, text, colour) = match check.status {
            CheckStatus::NotApplicable => (
                "n/a",
                format!("not applicable: {}", check.reason.as_deref().unwrap_or("")),
                Color::DarkGrey,
            ),
            _ => ("ok", "no issue found".to_string(), Color::Green),
        };
        let mut label = Cell::new(label);
        if style.colour {
            label = label.fg(colour);
        }
        let mut row = vec![
            Cell::new(check.number),
            Cell::new(check.id),
            label,
            Cell::new(text),
        ];
        if wide {
            row.push(Cell::new(""));
        }
        table.add_row(row);
    }
    if let Some(advice) = &target.mesh_need {
        let mut row = vec![
            Cell::new("-"),
            Cell::new(mesh_need::ID),
            severity_cell(Severity::Info, style.colour),
            Cell::new(&advice.title),
        ];
        if wide {
            row.push(Cell::new(advice_evidence(advice)));
        }
        table.add_row(row);
    }
    table
}

fn advice_evidence(advice: &MeshNeed) -> String {
    let mut lines: Vec<String> = advice.evidence.iter().map(evidence_text).collect();
    lines.extend(advice.assumptions.iter().map(|a| format!("unchecked: {a}")));
    lines.join("\n")
}

fn severity_cell(severity: Severity, colour: bool) -> Cell {
    let cell = Cell::new(severity);
    if !colour {
        return cell;
    }
    match severity {
        Severity::Critical => cell.fg(Color::Red).add_attribute(Attribute::Bold),
        Severity::Warning => cell.fg(Color::Yellow),
        Severity::Info => cell.fg(Color::Cyan),
    }
}

fn wide_evidence(finding: &Finding) -> String {
    let mut lines: Vec<String> = finding.evidence.iter().map(evidence_text).collect();
    lines.extend(finding.assumptions.iter().map(|a| format!("assumed: {a}")));
    lines.join("\n")
}

fn render_fixes(out: &mut String, target: &TargetDiagnosis) {
    let mut modes = Vec::new();
    for finding in &target.findings {
        if !modes.contains(&finding.id) {
            modes.push(finding.id);
        }
    }
    for id in modes {
        let fixes = fixes::for_mode(&target.findings, id);
        if fixes.is_empty() {
            continue;
        }
        let _ = writeln!(out, "Fix for #{} {}:", id.number(), id);
        if let Some(object) = fixes::same_object_twice(fixes.iter().copied()) {
            let _ = writeln!(
                out,
                "  (these fixes change the same {object}: applying both keeps only the last; --fix merges them)"
            );
        }
        for fix in &fixes {
            let _ = writeln!(out, "  {}", fix.summary);
        }
        let yaml = fixes::join_yaml(fixes);
        for line in yaml.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    if let Some(fix) = target
        .mesh_need
        .as_ref()
        .and_then(|advice| advice.fix.as_ref())
    {
        let _ = writeln!(out, "Advice {} (optional):", mesh_need::ID);
        let _ = writeln!(out, "  {}", fix.summary);
        for line in fix.yaml.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
}

/// ANSI styling for the lines outside the table; a no-op without colour.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn wrap(self, text: &str, code: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn bold(self, text: &str) -> String {
        self.wrap(text, "1")
    }

    fn dim(self, text: &str) -> String {
        self.wrap(text, "2")
    }

    fn good(self, text: &str) -> String {
        self.wrap(text, "1;32")
    }

    fn severity(self, text: &str, severity: Severity) -> String {
        match severity {
            Severity::Critical => self.wrap(text, "1;31"),
            Severity::Warning => self.wrap(text, "1;33"),
            Severity::Info => self.wrap(text, "1;36"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;

    const PLAIN: Style = Style {
        colour: false,
        terminal: false,
        width: 80,
    };

    #[test]
    fn table_puts_the_root_cause_first_and_lists_every_check() {
        let text = render(&sample::failing(), false, PLAIN);
        let root = text.find("Root cause: #2 stream-timeout").unwrap();
        let table = text.find("│ # ┆ Check").unwrap();
        assert!(root < table, "{text}");
        assert!(text.contains("deploy/vllm"), "{text}");
        assert!(text.contains("confidence medium"), "{text}");
        assert!(
            text.contains("Also contributing: #3 connection-pool (warning)"),
            "{text}"
        );
        for id in [
            "sidecar-overhead",
            "stream-timeout",
            "connection-pool",
            "buffer-limit",
            "cold-start",
        ] {
            assert!(text.contains(id), "{id} missing:\n{text}");
        }
        assert!(text.contains("no issue found"), "{text}");
        assert!(text.contains("offline manifests only"), "{text}");
        assert!(text.contains("exit 3"), "{text}");
        assert!(
            !text.contains("Evidence"),
            "evidence is for -o wide:\n{text}"
        );
        assert!(
            !text.contains("kind: VirtualService"),
            "fix YAML is for -o wide:\n{text}"
        );
        let fix = text
            .lines()
            .find(|line| line.starts_with("  Fix: "))
            .unwrap_or_else(|| panic!("the root cause's fix is named:\n{text}"));
        assert!(fix.ends_with("(the YAML: --fix, or -o wide)"), "{fix}");
        assert!(text.find("  Fix: ").unwrap() < table, "{text}");
        assert!(!text.contains('\x1b'), "no colour when not asked:\n{text}");
    }

    #[test]
    fn wide_adds_evidence_assumptions_and_fix_yaml() {
        let text = render(&sample::failing(), true, PLAIN);
        assert!(text.contains("spec/http[0]/timeout = 30s"), "{text}");
        assert!(text.contains("assumed: --max-num-seqs not set"), "{text}");
        assert!(text.contains("Fix for #2 stream-timeout:"), "{text}");
        assert!(text.contains("    kind: VirtualService"), "{text}");
        assert!(text.contains("Evidence"), "{text}");
    }

    #[test]
    fn mesh_need_is_a_row_and_its_patch_is_wide_only() {
        let diagnosis = sample::with_mesh_need(sample::healthy());
        let text = render(&diagnosis, false, PLAIN);
        assert!(text.contains("│ - ┆ mesh-need        ┆ info"), "{text}");
        assert!(!text.contains("sidecar.istio.io/inject"), "{text}");
        let wide = render(&diagnosis, true, PLAIN);
        assert!(wide.contains("Advice mesh-need (optional):"), "{wide}");
        assert!(wide.contains("sidecar.istio.io/inject: 'false'"), "{wide}");
        assert!(
            wide.contains("unchecked: no PeerAuthentication applies"),
            "{wide}"
        );
    }

    #[test]
    fn healthy_says_so() {
        let text = render(&sample::healthy(), false, PLAIN);
        assert!(text.contains("No failure mode found above info"), "{text}");
        assert!(!text.contains("Root cause"), "{text}");
        assert!(text.contains("exit 0"), "{text}");
    }

    #[test]
    fn colour_only_when_asked() {
        let text = render(
            &sample::failing(),
            false,
            Style {
                colour: true,
                terminal: false,
                width: 80,
            },
        );
        assert!(text.contains("\x1b[1;31mRoot cause"), "{text}");
    }
}
