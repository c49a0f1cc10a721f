//! The probe's runs as lines of characters on a shared time axis, one line per path and run,
//! scaled to the width given; a legend of one line. Prints `verdict::timeline`'s grid.

use crate::verdict::timeline::{Cell, EndKind, Grid, Line, StreamLine, Timeline};
use std::fmt::Write as _;

/// The width when stdout is no terminal and `COLUMNS` is unset.
pub const DEFAULT_WIDTH: usize = 80;

/// The width to draw at: the terminal's when stdout is one (as comfy-table reads it), else
/// `COLUMNS` when it holds a number, else [`DEFAULT_WIDTH`].
pub fn width(terminal: Option<u16>, columns: Option<&str>) -> usize {
    terminal
        .map(usize::from)
        .or_else(|| columns.and_then(|text| text.trim().parse().ok()))
        .filter(|width| *width >= 40)
        .unwrap_or(DEFAULT_WIDTH)
}

const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const OPEN: char = '─';
const SILENCE: char = '░';
const DONE: char = '✓';
const FAILED: char = '✗';
const STOPPED: char = '|';
const DEADLINE: char = '┆';
/// The least columns of the time axis, even when the notes are long.
const LEAST_BAR: usize = 20;

fn symbol(cell: Cell) -> char {
    match cell {
        Cell::Idle => ' ',
        Cell::Open => OPEN,
        Cell::Tokens(level) | Cell::Streams(level) => BLOCKS[usize::from(level.clamp(1, 8)) - 1],
        Cell::Silence => SILENCE,
        Cell::End(EndKind::Done) => DONE,
        Cell::End(EndKind::Stopped) => STOPPED,
        Cell::End(_) => FAILED,
    }
}

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// What the right of a line says: how it ended, and when.
fn note(line: &Line) -> String {
    match line {
        Line::Stream(stream) => stream_note(stream),
        Line::Burst(burst) => {
            let ends: Vec<String> = burst
                .ends
                .iter()
                .map(|count| {
                    let word = count.end.word();
                    match (count.end.failed(), count.first_ms) {
                        (true, Some(first)) => {
                            format!("{}× {word} from {}", count.count, secs(first))
                        }
                        (true, None) => format!("{}× {word}", count.count),
                        (false, _) => format!("{} {word}", count.count),
                    }
                })
                .collect();
            let mut text = ends.join(", ");
            if burst.spans.is_empty() {
                text.push_str(" (times not saved)");
            }
            text
        }
    }
}

fn stream_note(stream: &StreamLine) -> String {
    let mut text = format!("{} {}", stream.end.word(), secs(stream.end_ms));
    if stream.end.failed()
        && let Some(last) = stream.last_token_ms
        && stream.end_ms - last >= 100.0
    {
        let _ = write!(text, ", last token {}", secs(last));
    }
    if stream.arrivals_missing {
        text.push_str(" (arrivals not saved)");
    }
    text
}

/// Every timeline, then one legend line for the symbols drawn; empty for no timeline.
pub fn text(timelines: &[Timeline], width: usize) -> String {
    if timelines.is_empty() {
        return String::new();
    }
    let width = if width == 0 { DEFAULT_WIDTH } else { width };
    let mut out = String::new();
    let mut used = Vec::new();
    for timeline in timelines {
        draw(&mut out, timeline, width, &mut used);
    }
    out.push_str(&legend(&used));
    out.push('\n');
    out
}

fn draw(out: &mut String, timeline: &Timeline, width: usize, used: &mut Vec<Cell>) {
    let label_width = timeline
        .lines
        .iter()
        .map(|line| line.label().chars().count())
        .max()
        .unwrap_or(0);
    let notes: Vec<String> = timeline.lines.iter().map(note).collect();
    let note_width = notes.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    // `label │bar│ note`
    let bar = width
        .saturating_sub(label_width + 4 + note_width)
        .max(LEAST_BAR);
    let grid = timeline.grid(bar);
    let tokens = match grid.full {
        0 => String::new(),
        1 => format!(", {} = 1 token", BLOCKS[7]),
        full => format!(", {} = {full} tokens", BLOCKS[7]),
    };
    let _ = writeln!(
        out,
        "{} · 1 column = {}{tokens}",
        timeline.title,
        secs(grid.column_ms)
    );
    for (row, note) in grid.rows.iter().zip(&notes) {
        let cells: String = row.cells.iter().map(|cell| symbol(*cell)).collect();
        for cell in &row.cells {
            // Every failure shares one symbol: note it once, as a cut.
            let cell = match cell {
                Cell::End(end) if end.failed() => Cell::End(EndKind::Cut),
                Cell::Idle => continue,
                other => *other,
            };
            if !used.contains(&cell) {
                used.push(cell);
            }
        }
        let _ = writeln!(out, "{:<label_width$} │{cells}│ {note}", row.label);
    }
    let columns = grid.rows.first().map_or(0, |row| row.cells.len());
    if !grid.deadlines.is_empty() {
        deadline_line(out, &grid, label_width, columns, width);
        if !used.contains(&DEADLINE_CELL) {
            used.push(DEADLINE_CELL);
        }
    }
    let _ = writeln!(
        out,
        "{:<label_width$}  {}",
        "",
        scale(&grid, columns).trim_end()
    );
}

/// The deadlines' marks on the axis and their labels: after the marks when the line fits in
/// `width`, else on a line of their own.
fn deadline_line(out: &mut String, grid: &Grid, label_width: usize, columns: usize, width: usize) {
    let mut marks = vec![' '; columns];
    for (column, _) in &grid.deadlines {
        if let Some(mark) = marks.get_mut(*column) {
            *mark = DEADLINE;
        }
    }
    let labels: Vec<&str> = grid
        .deadlines
        .iter()
        .map(|(_, label)| label.as_str())
        .collect();
    let marks: String = marks.into_iter().collect();
    let labels = format!("{DEADLINE} {}", labels.join(", "));
    let line = format!("{:<label_width$}  {marks}  {labels}", "");
    if line.chars().count() <= width {
        let _ = writeln!(out, "{line}");
    } else {
        let _ = writeln!(out, "{:<label_width$}  {}", "", marks.trim_end());
        let _ = writeln!(out, "{:<label_width$}  {labels}", "");
    }
}

/// The tick labels under the axis, each starting at its column, none overlapping.
fn scale(grid: &Grid, columns: usize) -> String {
    let mut line: Vec<char> = vec![' '; columns + 8];
    let mut free_from = 0;
    for tick in &grid.ticks {
        if tick.column < free_from {
            continue;
        }
        let text: Vec<char> = tick.text.chars().collect();
        if tick.column + text.len() > line.len() {
            break;
        }
        line[tick.column..tick.column + text.len()].copy_from_slice(&text);
        free_from = tick.column + text.len() + 1;
    }
    line.into_iter().collect()
}

/// One line naming each symbol drawn, in a fixed order.
fn legend(used: &[Cell]) -> String {
    let tokens = used.iter().any(|c| matches!(c, Cell::Tokens(_)));
    let streams = used.iter().any(|c| matches!(c, Cell::Streams(_)));
    let blocks = format!("{}…{}", BLOCKS[0], BLOCKS[7]);
    let mut parts = Vec::new();
    match (tokens, streams) {
        (true, true) => parts.push(format!("{blocks} tokens (burst: streams open)")),
        (true, false) => parts.push(format!("{blocks} tokens")),
        (false, true) => parts.push(format!("{blocks} streams open")),
        (false, false) => {}
    }
    for (cell, meaning) in [
        (Cell::Open, "open"),
        (Cell::Silence, "silent >1 s"),
        (Cell::End(EndKind::Done), "[DONE]"),
        (Cell::End(EndKind::Cut), "failed"),
        (Cell::End(EndKind::Stopped), "stopped"),
    ] {
        if used.contains(&cell) {
            parts.push(format!("{} {meaning}", symbol(cell)));
        }
    }
    if used.contains(&DEADLINE_CELL) {
        parts.push(format!("{DEADLINE} deadline"));
    }
    parts.join("  ")
}

/// Stands for a deadline mark in the list of what was drawn.
const DEADLINE_CELL: Cell = Cell::Idle;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checks::test_support::{endpoint_target, scenario_pair};
    use crate::evidence::TargetEvidence;

    /// The scenarios of the probe matrix whose runs are recorded under
    /// `tests/fixtures/probe_timelines/`: a cut, a silence, a 503 burst, a cold start, and
    /// Istio's defaults.
    pub(crate) const MATRIX: [&str; 5] = [
        "route-timeout",
        "stream-idle-timeout",
        "circuit-breaker",
        "cold-start",
        "healthy",
    ];

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/probe_timelines")
            .join(name)
    }

    /// The probe runs `tests/diagnose_probe.rs` recorded for `scenario` against a real Envoy
    /// pair (`INFERMESH_KEEP_PROBES=DIR`), on that scenario's Envoys (the cold start's pair has
    /// Istio's defaults).
    pub(crate) fn recorded(scenario: &str) -> TargetEvidence {
        let envoys = if scenario == "cold-start" {
            "healthy"
        } else {
            scenario
        };
        let mut target = endpoint_target(scenario_pair(envoys));
        let runs = std::fs::read_to_string(fixture(&format!("{scenario}.json"))).unwrap();
        target.probes = serde_json::from_str(&runs).unwrap();
        target
    }

    pub(crate) fn recorded_timelines(scenario: &str) -> Vec<Timeline> {
        crate::verdict::timeline::of_evidence(&[recorded(scenario)]).remove(0)
    }

    #[test]
    fn width_is_the_terminal_then_columns_then_80() {
        assert_eq!(width(Some(132), Some("100")), 132);
        assert_eq!(width(None, Some("100")), 100);
        assert_eq!(width(None, Some("wide")), 80);
        assert_eq!(width(None, None), 80);
        assert_eq!(width(None, Some("12")), 80);
    }

    /// The timeline of each recorded scenario at 80 columns, exactly as saved in
    /// `tests/fixtures/probe_timelines/<scenario>.txt` (`INFERMESH_BLESS=1` writes them anew).
    #[test]
    fn the_matrix_scenarios_draw_as_recorded() {
        for scenario in MATRIX {
            let drawn = text(&recorded_timelines(scenario), 80);
            for line in drawn.lines() {
                assert!(line.chars().count() <= 80, "{scenario}: too wide: {line}");
            }
            let path = fixture(&format!("{scenario}.txt"));
            if std::env::var_os("INFERMESH_BLESS").is_some() {
                std::fs::write(&path, &drawn).unwrap();
            }
            let saved = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(drawn, saved, "{scenario}: the timeline changed:\n{drawn}");
        }
    }

    fn row<'a>(drawn: &'a str, label: &str) -> &'a str {
        drawn
            .lines()
            .find(|line| line.starts_with(&format!("{label} ")))
            .unwrap_or_else(|| panic!("no {label} row in\n{drawn}"))
    }

    fn bar(row: &str) -> Vec<char> {
        row.split('│').nth(1).unwrap_or_default().chars().collect()
    }

    #[test]
    fn the_mesh_cut_shows_its_silence_end_and_deadline_while_direct_runs_on() {
        let drawn = text(&recorded_timelines("route-timeout"), 80);
        let mesh = row(&drawn, "mesh  ");
        assert!(mesh.contains("│ cut "), "{drawn}");
        let mesh_bar = bar(mesh);
        let cut = mesh_bar.iter().position(|c| *c == FAILED).unwrap();
        // Envoy closes the cut stream about a second after the last token: silent in between.
        assert_eq!(mesh_bar[cut - 1], SILENCE, "{drawn}");
        let direct_bar = bar(row(&drawn, "direct"));
        let direct_end = direct_bar.iter().rposition(|c| *c != ' ').unwrap();
        assert!(direct_end > cut, "{drawn}");
        assert!(drawn.contains("┆ timeout 2s"), "{drawn}");
    }

    #[test]
    fn the_idle_cut_is_a_long_silence_after_half_a_second() {
        let timelines = recorded_timelines("stream-idle-timeout");
        let drawn = text(&timelines, 80);
        let streams = timelines
            .iter()
            .find(|t| t.title.ends_with("stream per path"))
            .unwrap();
        let stream = &text(std::slice::from_ref(streams), 80);
        let mesh_bar = bar(row(stream, "mesh  "));
        let silent = mesh_bar.iter().filter(|c| **c == SILENCE).count();
        let tokens = mesh_bar.iter().filter(|c| BLOCKS.contains(c)).count();
        assert!(silent > 3 * tokens, "{stream}");
        // The direct stream pauses too (the lab's pause) but finishes.
        assert!(row(stream, "direct").contains("│ done "), "{stream}");
        assert!(
            drawn.contains("idle timeout 2s after the mesh's last token"),
            "{drawn}"
        );
    }

    #[test]
    fn the_burst_row_shows_503s_early_and_the_direct_burst_done() {
        let drawn = text(&recorded_timelines("circuit-breaker"), 80);
        let mesh = row(&drawn, "mesh ×4");
        assert!(mesh.contains("× 503 from 0.0"), "{drawn}");
        assert_eq!(bar(mesh)[0], FAILED, "{drawn}");
        assert!(row(&drawn, "direct ×4").contains("│ 4 done"), "{drawn}");
    }

    #[test]
    fn the_cold_mesh_request_is_silent_for_seconds_before_its_first_token() {
        let drawn = text(&recorded_timelines("cold-start"), 80);
        let cold = bar(row(&drawn, "mesh cold"));
        let first_token = cold.iter().position(|c| BLOCKS.contains(c)).unwrap();
        assert!(
            cold[..first_token]
                .iter()
                .all(|c| *c == SILENCE || *c == OPEN)
        );
        let warm = bar(row(&drawn, "mesh warm"));
        let warm_token = warm.iter().position(|c| BLOCKS.contains(c)).unwrap();
        assert!(first_token > 10 * warm_token.max(1), "{drawn}");
    }

    #[test]
    fn a_healthy_pair_ends_done_on_both_paths_without_a_silence() {
        let drawn = text(&recorded_timelines("healthy"), 80);
        for label in ["direct", "mesh  "] {
            assert!(row(&drawn, label).contains("│ done "), "{drawn}");
        }
        assert!(
            !drawn.contains(SILENCE) && !drawn.contains(FAILED),
            "{drawn}"
        );
    }

    #[test]
    fn several_targets_name_their_target_in_each_title() {
        let one = recorded("route-timeout");
        let mut other = recorded("healthy");
        other.workload.name = "other".to_string();
        let both = crate::verdict::timeline::of_evidence(&[one.clone(), other]);
        assert!(
            both[1][0].title.starts_with("endpoint/other in "),
            "{:?}",
            both[1][0].title
        );
        let alone = crate::verdict::timeline::of_evidence(&[one]);
        assert!(
            alone[0][0].title.starts_with("cold: "),
            "{:?}",
            alone[0][0].title
        );
    }

    #[test]
    fn evidence_saved_before_arrivals_says_so_instead_of_drawing_tokens() {
        let mut target = endpoint_target(scenario_pair("route-timeout"));
        let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/probe_runs/route-timeout.json");
        target.probes = serde_json::from_str(&std::fs::read_to_string(old).unwrap()).unwrap();
        let drawn = text(
            &crate::verdict::timeline::of_evidence(&[target]).remove(0),
            80,
        );
        assert!(drawn.contains("(arrivals not saved)"), "{drawn}");
        assert!(!drawn.chars().any(|c| BLOCKS.contains(&c)), "{drawn}");
    }
}
