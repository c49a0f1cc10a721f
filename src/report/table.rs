//! The terminal view: per target, a header line, the root cause on top, then one row per check.
//! `wide` adds the evidence and assumptions per finding and the fix YAML under the table.

use super::envoys::{self, EnvoyLine};
use super::summary::{self, Details};
use super::wrap;
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
/// With more than one target it opens with the summary, one line per workload worst first, and
/// shows the details of those `extras.details` asks for (by default: at or above `--fail-on`).
pub fn render_with(diagnosis: &Diagnosis, extras: Extras<'_>, wide: bool, style: Style) -> String {
    let paint = Paint(style.colour);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        wrap::words(
            &format!(
                "Expected generation {} · sources: {}",
                crate::units::duration::display(diagnosis.expected_generation),
                diagnosis.sources.join(", ")
            ),
            style.wrap,
            2
        )
    );
    let several = diagnosis.targets.len() > 1;
    if several {
        out.push('\n');
        render_summary(&mut out, diagnosis, wide, paint, style.wrap);
        let shown = diagnosis
            .targets
            .iter()
            .filter(|target| summary::shows_details(diagnosis, target, extras.details))
            .count();
        let hidden = diagnosis.targets.len() - shown;
        if hidden > 0 {
            let which = match extras.details {
                Details::AtFailOn => format!("{shown} at or above --fail-on {}", diagnosis.fail_on),
                Details::None => "none".to_string(),
                Details::All | Details::Named(_) => format!("{shown} named"),
            };
            let _ = writeln!(
                out,
                "\n{}",
                paint.dim(&wrap::words(
                    &format!(
                        "Details below: {which}; {hidden} not shown (--details all, or --details NAME)."
                    ),
                    style.wrap,
                    2
                ))
            );
        }
    }
    for (index, target) in diagnosis.targets.iter().enumerate() {
        if several && !summary::shows_details(diagnosis, target, extras.details) {
            continue;
        }
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
            let _ = writeln!(
                out,
                "{}",
                wrap::words(&format!("  - {}", gap_text(gap)), style.wrap, 4)
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        wrap::words(
            &format!("Result: {}", outcome_text(diagnosis)),
            style.wrap,
            2
        )
    );
    out
}

/// One line per workload, worst first, in columns as `kubectl get` prints them (never wrapped:
/// a line is a workload; on a terminal the last column is cut to its width with `…`, whole in a
/// pipe); `wide` adds replicas, GPU, the dataplane and the other modes.
fn render_summary(
    out: &mut String,
    diagnosis: &Diagnosis,
    wide: bool,
    paint: Paint,
    width: Option<usize>,
) {
    let mut header = vec![
        "NAMESPACE",
        "WORKLOAD",
        "ROOT CAUSE",
        "SEVERITY",
        "CONFIDENCE",
        "BASIS",
    ];
    if wide {
        header.extend(["REPLICAS", "GPU", "DATAPLANE", "ALSO"]);
    }
    header.push("PROVED BY");
    let rows = summary::rows(diagnosis);
    let cells: Vec<(Option<Severity>, Vec<String>)> = rows
        .iter()
        .map(|row| {
            let target = &row.target.target;
            let dash = |text: Option<&str>| text.unwrap_or("-").to_string();
            let mut cells = vec![
                target.namespace.clone(),
                target.reference.clone(),
                row.cause_text().to_string(),
                dash(row.severity.map(Severity::as_str)),
                dash(row.confidence.map(|confidence| confidence.as_str())),
                dash(row.basis.map(summary::basis_word)),
            ];
            if wide {
                let also: Vec<&str> = row
                    .target
                    .also_contributing
                    .iter()
                    .map(|other| other.id.as_str())
                    .collect();
                cells.extend([
                    target.replicas.to_string(),
                    match &target.gpu {
                        Some(gpu) => format!("{}×{}", gpu.count, gpu.resource),
                        None => "-".to_string(),
                    },
                    match &target.ambient {
                        Some(_) => "ambient".to_string(),
                        None => super::sidecar_mode_text(target.sidecar_mode).to_string(),
                    },
                    if also.is_empty() {
                        "-".to_string()
                    } else {
                        also.join(",")
                    },
                ]);
            }
            cells.push(if row.proved_by.is_empty() {
                "-".to_string()
            } else {
                row.proved_by.clone()
            });
            (row.severity, cells)
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|name| name.chars().count()).collect();
    for (_, cells) in &cells {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>, severity: Option<Severity>| {
        let last = cells.len() - 1;
        let mut text = String::new();
        let before_last: usize = widths[..last].iter().map(|width| width + 3).sum();
        for (column, mut cell) in cells.into_iter().enumerate() {
            if column == last
                && let Some(width) = width
            {
                cell = cut(&cell, width.saturating_sub(before_last));
            }
            let pad = if column == last {
                0
            } else {
                widths[column] - cell.chars().count() + 3
            };
            // Coloured before the padding, so the escapes do not shift the columns.
            match severity {
                Some(severity) if column == SEVERITY_COLUMN => {
                    text.push_str(&paint.severity_word(&cell, severity));
                }
                _ => text.push_str(&cell),
            }
            text.push_str(&" ".repeat(pad));
        }
        text.trim_end().to_string()
    };
    let _ = writeln!(
        out,
        "{}",
        line(header.iter().map(|name| name.to_string()).collect(), None)
    );
    for (severity, cells) in cells {
        let _ = writeln!(out, "{}", line(cells, severity));
    }
}

/// `text` in at most `room` characters, ending in `…` when cut.
fn cut(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_string();
    }
    let Some(keep) = room.checked_sub(1) else {
        return String::new();
    };
    let mut kept: String = text.chars().take(keep).collect();
    kept.push('…');
    kept
}

/// Where the summary's severity is: after namespace, workload and root cause.
const SEVERITY_COLUMN: usize = 3;

fn render_target(
    out: &mut String,
    target: &TargetDiagnosis,
    envoys: &[EnvoyLine],
    wide: bool,
    style: Style,
    paint: Paint,
) {
    let summary = &target.target;
    let width = style.wrap;
    // The reference is bold: wrapped first, then painted, so the escapes take no columns.
    let header = wrap::words(
        &format!(
            "{}  namespace {} · {} · GPU {} · replicas {}",
            summary.reference,
            summary.namespace,
            dataplane_text(summary),
            gpu_text(summary),
            summary.replicas
        ),
        width,
        2,
    );
    let header = match header.strip_prefix(summary.reference.as_str()) {
        Some(rest) => format!("{}{rest}", paint.bold(&summary.reference)),
        None => header,
    };
    let _ = writeln!(out, "{header}");
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
            let line = wrap::words(&line, width, 2);
            let painted: Vec<String> = line
                .lines()
                .map(|line| paint.severity(line, root.severity))
                .collect();
            let _ = writeln!(out, "{}", painted.join("\n"));
            let _ = writeln!(
                out,
                "{}",
                wrap::words(&format!("  {}", root.explanation), width, 2)
            );
            if !wide && let Some(fix) = fixes::for_mode(&target.findings, root.id).first() {
                let yaml = if fix.yaml.trim().is_empty() {
                    ""
                } else {
                    " (the YAML: --fix, or -o wide)"
                };
                let _ = writeln!(
                    out,
                    "{}",
                    wrap::words(&format!("  Fix: {}{yaml}", fix.summary), width, 7)
                );
            }
            if !target.also_contributing.is_empty() {
                let others: Vec<String> = target
                    .also_contributing
                    .iter()
                    .map(|c| format!("#{} {} ({})", c.number, c.id, c.severity))
                    .collect();
                let _ = writeln!(
                    out,
                    "{}",
                    wrap::words(
                        &format!("Also contributing: {}", others.join(", ")),
                        width,
                        2
                    )
                );
            }
        }
        None => {
            let line = wrap::words(no_root_cause_text(target), width, 0);
            let painted: Vec<String> = line.lines().map(|line| paint.good(line)).collect();
            let _ = writeln!(out, "{}", painted.join("\n"));
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
            let _ = writeln!(
                out,
                "{}",
                wrap::words(
                    &format!("  - #{} {}: {text}", check.number, check.id),
                    style.wrap,
                    4
                )
            );
        }
    }
    render_envoys(out, envoys, paint, style.wrap);
    if !target.gaps.is_empty() {
        let _ = writeln!(out, "{}", paint.dim("Not gathered:"));
        for gap in &target.gaps {
            let _ = writeln!(
                out,
                "{}",
                wrap::words(&format!("  - {}", gap_text(gap)), style.wrap, 4)
            );
        }
    }
}

/// One line per Envoy read for the target, with its inferred role, and what it could not give.
fn render_envoys(out: &mut String, lines: &[EnvoyLine], paint: Paint, width: Option<usize>) {
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}", paint.dim("Envoys read:"));
    for line in lines {
        let _ = writeln!(
            out,
            "{}",
            wrap::words(&format!("  {}", line.text()), width, 4)
        );
        for gap in &line.gaps {
            let _ = writeln!(
                out,
                "{}",
                wrap::words(&format!("    not read: {}", gap_text(gap)), width, 6)
            );
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
    if let Some(width) = style.wrap.and_then(|width| u16::try_from(width).ok()) {
        // The same width as the prose around it (COLUMNS first).
        table.set_width(width);
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

    /// A severity as the summary column shows it: red, yellow or cyan, not bold.
    fn severity_word(self, text: &str, severity: Severity) -> String {
        match severity {
            Severity::Critical => self.wrap(text, "31"),
            Severity::Warning => self.wrap(text, "33"),
            Severity::Info => self.wrap(text, "36"),
        }
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
        wrap: None,
    };

    /// The failing sample's target and the healthy one's, as two targets of one diagnosis.
    fn two() -> Diagnosis {
        let mut diagnosis = sample::healthy();
        let mut other = sample::failing().targets[0].clone();
        other.target.name = "llama".to_string();
        other.target.reference = "deploy/llama".to_string();
        diagnosis.targets.push(other);
        diagnosis.worst = Some(Severity::Critical);
        diagnosis.failed = true;
        diagnosis
    }

    fn with_details(diagnosis: &Diagnosis, details: Details, wide: bool) -> String {
        render_with(
            diagnosis,
            Extras {
                details,
                ..Extras::default()
            },
            wide,
            PLAIN,
        )
    }

    #[test]
    fn several_targets_open_with_a_summary_worst_first_and_detail_the_failing_ones() {
        let text = with_details(&two(), Details::AtFailOn, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "NAMESPACE   WORKLOAD       ROOT CAUSE       SEVERITY   CONFIDENCE   BASIS     PROVED BY",
            "{text}"
        );
        assert_eq!(
            lines[3],
            "inference   deploy/llama   stream-timeout   critical   medium       written   VirtualService inference/vllm spec/http[0]/timeout = 30s",
            "{text}"
        );
        assert_eq!(
            lines[4],
            "inference   deploy/vllm    healthy          -          -            -         -",
            "{text}"
        );
        assert!(
            text.contains("Details below: 1 at or above --fail-on critical; 1 not shown (--details all, or --details NAME)."),
            "{text}"
        );
        assert!(text.contains("deploy/llama  namespace inference"), "{text}");
        assert!(
            !text.contains("deploy/vllm  namespace inference"),
            "the healthy one is not repeated:\n{text}"
        );
        assert!(text.trim_end().ends_with("exit 3"), "{text}");

        let all = with_details(&two(), Details::All, false);
        assert!(all.contains("deploy/vllm  namespace inference"), "{all}");
        assert!(!all.contains("not shown"), "{all}");
        let names = ["vllm".to_string()];
        let named = with_details(&two(), Details::Named(&names), false);
        assert!(
            named.contains("deploy/vllm  namespace inference"),
            "{named}"
        );
        assert!(
            !named.contains("deploy/llama  namespace inference"),
            "{named}"
        );
    }

    #[test]
    fn wide_summary_adds_replicas_gpu_dataplane_and_the_other_modes() {
        let text = with_details(&two(), Details::None, true);
        let header = text.lines().nth(2).unwrap_or_default();
        assert!(
            header.contains(
                "BASIS     REPLICAS   GPU                DATAPLANE   ALSO              PROVED BY"
            ),
            "{text}"
        );
        assert!(text.contains("connection-pool"), "{text}");
        assert!(
            !text.contains("Root cause:"),
            "no details with none:\n{text}"
        );
    }

    #[test]
    fn one_target_has_no_summary() {
        let text = render(&sample::failing(), false, PLAIN);
        assert!(!text.contains("NAMESPACE"), "{text}");
        assert!(!text.contains("Details below"), "{text}");
    }

    #[test]
    fn prose_wraps_at_words_to_the_width_on_a_terminal_only() {
        let narrow = Style {
            wrap: Some(50),
            ..PLAIN
        };
        let text = render(&sample::failing(), false, narrow);
        let table = text.find('┌').unwrap_or(text.len());
        for line in text[..table].lines() {
            assert!(line.chars().count() <= 50, "{line:?} in\n{text}");
        }
        let piped = render(&sample::failing(), false, PLAIN);
        let summary = with_details(&two(), Details::None, false);
        let cut_summary = render_with(
            &two(),
            Extras {
                details: Details::None,
                ..Extras::default()
            },
            false,
            Style {
                wrap: Some(100),
                ..PLAIN
            },
        );
        assert!(
            cut_summary
                .lines()
                .any(|line| line.starts_with("inference   deploy/llama")
                    && line.chars().count() == 100
                    && line.ends_with('…')),
            "{cut_summary}"
        );
        assert!(
            summary.contains("spec/http[0]/timeout = 30s\n"),
            "whole in a pipe:\n{summary}"
        );
        let words = |text: &str| -> Vec<String> {
            text[..text.find('┌').unwrap_or(text.len())]
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(words(&text), words(&piped), "only the line breaks differ");
        assert!(
            piped.lines().any(|line| line.chars().count() > 50),
            "a pipe is not wrapped:\n{piped}"
        );
    }

    #[test]
    fn summary_severities_are_coloured_only_with_colour() {
        let coloured = render_with(
            &two(),
            Extras::default(),
            false,
            Style {
                colour: true,
                ..PLAIN
            },
        );
        assert!(
            coloured.contains("\x1b[31mcritical\x1b[0m   medium"),
            "{coloured}"
        );
        let plain = with_details(&two(), Details::AtFailOn, false);
        assert!(!plain.contains('\x1b'), "{plain}");
    }

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
                ..PLAIN
            },
        );
        assert!(text.contains("\x1b[1;31mRoot cause"), "{text}");
    }
}
