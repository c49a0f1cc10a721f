//! The shape of each probe run over time, ready to draw: per path and run, when tokens arrived,
//! where the stream went silent for over a second, and where and how it ended (`done`, `cut`,
//! `503`, `reset`, …); per burst, how many streams were open and when each ended; the deadlines
//! the evidence holds. The terminal timeline asks for a [`Grid`] of a given width; the SVG draws
//! the same [`Timeline`] point by point. Renderers print these; they decide nothing.

use crate::evidence::TargetEvidence;
use crate::evidence::probe::modes::{ColdResult, ConcurrencyResult, LargeResult};
use crate::evidence::probe::path::{EndReason, LONG_GAP, PathKind, PathResult};
use crate::evidence::probe::report::ProbeReport;
use crate::evidence::probe::{ProbeMode, ProbeRun};
use crate::verdict::probe_plan;
use std::collections::BTreeMap;

/// How a stream ended, as the timeline marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndKind {
    /// `data: [DONE]` arrived (or a large body arrived whole).
    Done,
    /// The body ended without `[DONE]`.
    Cut,
    /// A non-2xx status: the code.
    Status(u16),
    /// The connection or HTTP/2 stream was reset.
    Reset,
    /// No connection could be made.
    Refused,
    /// An error event inside the stream, or malformed SSE.
    Error,
    /// The probe's own timeout fired.
    Timeout,
    /// Stopped by the probe (its question was answered) or by the user.
    Stopped,
}

impl EndKind {
    pub fn of(end: EndReason, status: Option<u16>) -> Self {
        match end {
            EndReason::Done => EndKind::Done,
            EndReason::EofWithoutDone => EndKind::Cut,
            EndReason::Reset => EndKind::Reset,
            EndReason::ConnectError => EndKind::Refused,
            EndReason::HttpError => status.map_or(EndKind::Error, EndKind::Status),
            EndReason::StreamError => EndKind::Error,
            EndReason::ClientTimeout => EndKind::Timeout,
            EndReason::Interrupted | EndReason::Answered => EndKind::Stopped,
        }
    }

    /// The word the timeline prints: `done`, `cut`, `503`, `reset`, …
    pub fn word(self) -> String {
        match self {
            EndKind::Done => "done".to_string(),
            EndKind::Cut => "cut".to_string(),
            EndKind::Status(code) => code.to_string(),
            EndKind::Reset => "reset".to_string(),
            EndKind::Refused => "refused".to_string(),
            EndKind::Error => "error".to_string(),
            EndKind::Timeout => "timeout".to_string(),
            EndKind::Stopped => "stopped".to_string(),
        }
    }

    /// The stream failed (it neither completed nor was stopped on purpose).
    pub fn failed(self) -> bool {
        !matches!(self, EndKind::Done | EndKind::Stopped)
    }
}

/// One request on one path: its tokens over time and its end.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamLine {
    /// `direct`, `mesh #2`, `mesh cold`, `mesh large`.
    pub label: String,
    pub path: PathKind,
    /// (ms from sending, content chunks received by then), from the recorded arrivals.
    pub arrivals: Vec<(f64, u64)>,
    /// No token for over a second while the request was open: [from, to] ms, in order.
    pub silences: Vec<(f64, f64)>,
    pub last_token_ms: Option<f64>,
    /// When the response ended.
    pub end_ms: f64,
    pub end: EndKind,
    pub chunks: u64,
    /// Content chunks were counted but their arrival times are not in the evidence (saved
    /// before they were recorded).
    pub arrivals_missing: bool,
}

/// One stream of a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstStream {
    pub end_ms: f64,
    pub end: EndKind,
}

/// N streams at once on one path.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstLine {
    /// `mesh ×4`.
    pub label: String,
    pub path: PathKind,
    pub streams: u32,
    /// Each stream's end, in the order sent (empty in evidence saved before it was recorded).
    pub spans: Vec<BurstStream>,
    /// How many ended each way, and the first end of each, most frequent first.
    pub ends: Vec<EndCount>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndCount {
    pub end: EndKind,
    pub count: u32,
    /// When the first of them ended (`None` when the times were not recorded).
    pub first_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Stream(StreamLine),
    Burst(BurstLine),
}

impl Line {
    pub fn label(&self) -> &str {
        match self {
            Line::Stream(line) => &line.label,
            Line::Burst(line) => &line.label,
        }
    }

    pub fn path(&self) -> PathKind {
        match self {
            Line::Stream(line) => line.path,
            Line::Burst(line) => line.path,
        }
    }

    /// When its last stream ended.
    pub fn end_ms(&self) -> f64 {
        match self {
            Line::Stream(line) => line.end_ms,
            Line::Burst(line) => line.spans.iter().map(|s| s.end_ms).fold(0.0, f64::max),
        }
    }
}

/// A deadline found in the evidence, drawn where it falls on the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    /// `route timeout 2s`, `stream idle timeout 2s after the mesh's last token`.
    pub label: String,
    pub at_ms: f64,
}

/// The lines of one run on one time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// `stream`, `burst of 4 streams per path`, `cold, then warm, request per path`.
    pub title: String,
    pub lines: Vec<Line>,
    pub deadlines: Vec<Deadline>,
}

impl StreamLine {
    pub fn of(label: String, result: &PathResult) -> Self {
        let arrivals = result.arrival_points();
        let arrivals_missing = arrivals.is_empty() && result.chunks > 0;
        let long = LONG_GAP.as_secs_f64() * 1000.0;
        let mut silences = Vec::new();
        if !arrivals_missing {
            // Before the first token, between tokens, after the last one until the end.
            let first = result.ttft_ms.unwrap_or(result.total_ms);
            if first > long {
                silences.push((0.0, first));
            }
            silences.extend(result.silences_ms.iter().map(|[from, to]| (*from, *to)));
            if let Some(last) = result.last_content_ms
                && result.total_ms - last > long
            {
                silences.push((last, result.total_ms));
            }
        }
        Self {
            label,
            path: result.path,
            arrivals,
            silences,
            last_token_ms: result.last_content_ms,
            end_ms: result.total_ms,
            end: EndKind::of(result.end, result.status),
            chunks: result.chunks,
            arrivals_missing,
        }
    }

    /// A non-streaming request: open from sending until the body ended, no tokens drawn.
    pub fn of_large(label: String, large: &LargeResult) -> Self {
        Self {
            label,
            path: large.path,
            arrivals: Vec::new(),
            silences: Vec::new(),
            last_token_ms: None,
            end_ms: large.total_ms,
            end: if large.complete {
                EndKind::Done
            } else {
                EndKind::of(large.end, large.status)
            },
            chunks: 0,
            arrivals_missing: false,
        }
    }
}

impl BurstLine {
    pub fn of(result: &ConcurrencyResult) -> Self {
        let spans: Vec<BurstStream> = result
            .stream_spans
            .iter()
            .map(|span| BurstStream {
                end_ms: span.end_ms,
                end: EndKind::of(span.end, span.status),
            })
            .collect();
        let mut ends: BTreeMap<EndKind, EndCount> = BTreeMap::new();
        for span in &spans {
            let entry = ends.entry(span.end).or_insert(EndCount {
                end: span.end,
                count: 0,
                first_ms: Some(span.end_ms),
            });
            entry.count += 1;
            entry.first_ms = entry.first_ms.map(|first| first.min(span.end_ms));
        }
        if spans.is_empty() {
            // Saved before spans were recorded: the counts by end and status, without times.
            for (end, count) in &result.by_end {
                let kind = match end.as_str() {
                    "done" => EndKind::Done,
                    "eof-without-done" => EndKind::Cut,
                    "reset" => EndKind::Reset,
                    "connect-error" => EndKind::Refused,
                    "client-timeout" => EndKind::Timeout,
                    "interrupted" | "answered" => EndKind::Stopped,
                    "http-error" => continue,
                    _ => EndKind::Error,
                };
                ends.insert(
                    kind,
                    EndCount {
                        end: kind,
                        count: *count,
                        first_ms: None,
                    },
                );
            }
            for (status, count) in &result.by_status {
                if let Ok(code) = status.parse::<u16>()
                    && !(200..300).contains(&code)
                {
                    let kind = EndKind::Status(code);
                    ends.insert(
                        kind,
                        EndCount {
                            end: kind,
                            count: *count,
                            first_ms: None,
                        },
                    );
                }
            }
        }
        let mut ends: Vec<EndCount> = ends.into_values().collect();
        ends.sort_by(|a, b| b.count.cmp(&a.count).then(a.end.cmp(&b.end)));
        Self {
            label: format!("{} ×{}", result.path.as_str(), result.streams),
            path: result.path,
            streams: result.streams,
            spans,
            ends,
        }
    }

    /// Streams still open at `at_ms` (all start at 0).
    pub fn open_at(&self, at_ms: f64) -> usize {
        self.spans.iter().filter(|span| span.end_ms > at_ms).count()
    }
}

/// The timelines of one probe report, one per kind of run it holds (their clocks differ): the
/// streams (every run with --repeat), the burst, the cold and warm requests, the large bodies.
pub fn of_report(report: &ProbeReport) -> Vec<Timeline> {
    let mut timelines = Vec::new();
    let repeated = report.runs.iter().any(|run| run.run > 1);
    let streams = if report.runs.is_empty() {
        &report.paths
    } else {
        &report.runs
    };
    if !streams.is_empty() {
        let lines = streams
            .iter()
            .map(|path| {
                let label = if repeated {
                    format!("{} #{}", path.result.path.as_str(), path.run)
                } else {
                    path.result.path.as_str().to_string()
                };
                Line::Stream(StreamLine::of(label, &path.result))
            })
            .collect();
        timelines.push(Timeline {
            title: "one stream per path".to_string(),
            lines,
            deadlines: Vec::new(),
        });
    }
    if let Some(first) = report.concurrency.first() {
        timelines.push(Timeline {
            title: format!("{} streams at once per path", first.streams),
            lines: report
                .concurrency
                .iter()
                .map(|c| Line::Burst(BurstLine::of(c)))
                .collect(),
            deadlines: Vec::new(),
        });
    }
    if !report.cold.is_empty() {
        timelines.push(Timeline {
            title: "a cold then a warm request per path".to_string(),
            lines: report.cold.iter().flat_map(cold_lines).collect(),
            deadlines: Vec::new(),
        });
    }
    for (title, suffix, results) in [
        ("a large body per path", "large", &report.large),
        ("a large prompt per path", "prompt", &report.large_prompt),
    ] {
        if !results.is_empty() {
            timelines.push(Timeline {
                title: title.to_string(),
                lines: results
                    .iter()
                    .map(|large| {
                        let label = format!("{} {suffix}", large.path.as_str());
                        Line::Stream(StreamLine::of_large(label, large))
                    })
                    .collect(),
                deadlines: Vec::new(),
            });
        }
    }
    timelines
}

fn cold_lines(cold: &ColdResult) -> [Line; 2] {
    let path = cold.path.as_str();
    [
        Line::Stream(StreamLine::of(format!("{path} cold"), &cold.cold)),
        Line::Stream(StreamLine::of(format!("{path} warm"), &cold.warm)),
    ]
}

/// The timelines of a planned run of `diagnose --probe`, titled by the run, with the deadlines
/// the target's evidence holds drawn on a stream run.
pub fn of_run(run: &ProbeRun, target: &TargetEvidence) -> Vec<Timeline> {
    let Some(report) = &run.report else {
        return Vec::new();
    };
    let name = probe_plan::short_name(&run.planned.mode);
    let mut timelines = of_report(report);
    for timeline in &mut timelines {
        timeline.title = format!("{name}: {}", timeline.title);
        timeline.deadlines = deadlines(run, target, &timeline.lines);
    }
    timelines
}

/// Every probe run of every target, in order; with more than one target, each title names its
/// target (`deploy/vllm in inference: stream 5s: …`), as the picture holds them all.
pub fn of_evidence(targets: &[TargetEvidence]) -> Vec<Vec<Timeline>> {
    targets
        .iter()
        .map(|target| {
            let mut timelines: Vec<Timeline> = target
                .probes
                .iter()
                .flat_map(|run| of_run(run, target))
                .collect();
            if targets.len() > 1 {
                let workload = &target.workload;
                for timeline in &mut timelines {
                    timeline.title = format!(
                        "{} in {}: {}",
                        workload.target_name(),
                        workload.namespace,
                        timeline.title
                    );
                }
            }
            timelines
        })
        .collect()
}

/// The timeout the stream run was planned to outlast, as recorded with the run (so saved
/// evidence draws it again): a deadline from the request's start, or an idle timeout from the
/// mesh stream's last token, where the silence it counts began. Named by its kind when the
/// evidence finds one of the same length.
fn deadlines(run: &ProbeRun, target: &TargetEvidence, lines: &[Line]) -> Vec<Deadline> {
    let ProbeMode::Stream {
        timeout_s: Some(timeout_s),
        idle,
        ..
    } = run.planned.mode
    else {
        return Vec::new();
    };
    let value = std::time::Duration::from_secs_f64(timeout_s.max(0.0));
    let shown = crate::units::duration::display(value);
    if idle {
        let named = probe_plan::shortest_idle_timeout(&crate::checks::limits::read(target))
            .filter(|found| found.value == value)
            .map_or("idle timeout", |_| "stream idle timeout");
        let mesh_last = lines.iter().find_map(|line| match line {
            Line::Stream(stream) if stream.path == PathKind::Mesh => {
                Some(stream.last_token_ms.unwrap_or(0.0))
            }
            _ => None,
        });
        return mesh_last
            .map(|last| Deadline {
                label: format!("{named} {shown} after the mesh's last token"),
                at_ms: last + timeout_s * 1000.0,
            })
            .into_iter()
            .collect();
    }
    let kind = probe_plan::shortest_deadline(&crate::checks::limits::read(target))
        .filter(|found| found.value == value)
        .map_or("timeout", |found| found.kind);
    vec![Deadline {
        label: format!("{kind} {shown}"),
        at_ms: timeout_s * 1000.0,
    }]
}

impl Timeline {
    /// The stream lines, in order.
    pub fn streams(&self) -> Vec<&StreamLine> {
        self.lines
            .iter()
            .filter_map(|line| match line {
                Line::Stream(stream) => Some(stream),
                Line::Burst(_) => None,
            })
            .collect()
    }

    /// The burst lines, in order.
    pub fn bursts(&self) -> Vec<&BurstLine> {
        self.lines
            .iter()
            .filter_map(|line| match line {
                Line::Burst(burst) => Some(burst),
                Line::Stream(_) => None,
            })
            .collect()
    }

    /// The end of the axis: the last end, or a deadline past it (within twice the run).
    pub fn span_ms(&self) -> f64 {
        let ends = self.lines.iter().map(Line::end_ms).fold(0.0, f64::max);
        let deadlines = self
            .deadlines
            .iter()
            .map(|d| d.at_ms)
            .filter(|at| *at <= 2.0 * ends.max(1.0))
            .fold(0.0, f64::max);
        ends.max(deadlines).max(1.0)
    }

    /// The timeline in `columns` character cells per line, one column of
    /// [`Grid::column_ms`] each, sharing one axis.
    pub fn grid(&self, columns: usize) -> Grid {
        let columns = columns.max(MIN_COLUMNS);
        let span = self.span_ms();
        let column_ms = two_digits_up(span / (columns - 1) as f64);
        let used = ((span / column_ms).floor() as usize + 1).min(columns);
        let column_of = |at: f64| ((at.max(0.0) / column_ms).floor() as usize).min(used - 1);
        let mut counts: Vec<Vec<u64>> = Vec::new();
        for line in &self.lines {
            let mut per_column = vec![0u64; used];
            if let Line::Stream(stream) = line {
                let mut before = 0;
                for (at, count) in &stream.arrivals {
                    per_column[column_of(*at)] += count.saturating_sub(before);
                    before = *count;
                }
            }
            counts.push(per_column);
        }
        let full = counts.iter().flatten().copied().max().unwrap_or(0);
        let rows = self
            .lines
            .iter()
            .zip(&counts)
            .map(|(line, counts)| {
                let cells = match line {
                    Line::Stream(stream) => stream_cells(stream, counts, full, column_ms, used),
                    Line::Burst(burst) => burst_cells(burst, column_ms, used),
                };
                GridRow {
                    label: line.label().to_string(),
                    cells,
                }
            })
            .collect();
        let deadlines = self
            .deadlines
            .iter()
            .filter(|d| d.at_ms <= span)
            .map(|d| (column_of(d.at_ms), d.label.clone()))
            .collect();
        Grid {
            column_ms,
            full,
            rows,
            ticks: ticks(column_ms, used),
            deadlines,
        }
    }
}

/// The fewest columns a grid is drawn in.
pub const MIN_COLUMNS: usize = 10;
/// The fewest columns between the starts of two tick labels.
const TICK_SPACING: usize = 8;

/// One character cell of a grid row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Not open (after the end).
    Idle,
    /// Open, nothing arrived in this column (a short wait).
    Open,
    /// Tokens arrived: 1 (a few) to 8 (the most any column of this timeline had).
    Tokens(u8),
    /// Inside a silence of over a second.
    Silence,
    /// A burst: the share of its streams still open, 1 to 8 eighths.
    Streams(u8),
    /// The stream ended here, this way; on a burst row, the worst end in this column.
    End(EndKind),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GridRow {
    pub label: String,
    pub cells: Vec<Cell>,
}

/// A tick of the time scale: its column and its text (`0`, `1s`, `2.5s`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub column: usize,
    pub text: String,
}

/// A timeline cut into character columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub column_ms: f64,
    /// Tokens in the fullest column (drawn as the tallest block).
    pub full: u64,
    pub rows: Vec<GridRow>,
    pub ticks: Vec<Tick>,
    /// The column of each deadline on the axis, and its label.
    pub deadlines: Vec<(usize, String)>,
}

fn level(count: u64, full: u64) -> u8 {
    if full == 0 {
        return 1;
    }
    (count * 8).div_ceil(full).clamp(1, 8) as u8
}

fn stream_cells(
    stream: &StreamLine,
    counts: &[u64],
    full: u64,
    column_ms: f64,
    used: usize,
) -> Vec<Cell> {
    let end_column = ((stream.end_ms.max(0.0) / column_ms).floor() as usize).min(used - 1);
    (0..used)
        .map(|column| {
            let middle = (column as f64 + 0.5) * column_ms;
            if column == end_column {
                Cell::End(stream.end)
            } else if column > end_column {
                Cell::Idle
            } else if counts[column] > 0 {
                Cell::Tokens(level(counts[column], full))
            } else if stream
                .silences
                .iter()
                .any(|(from, to)| *from <= middle && middle < *to)
            {
                Cell::Silence
            } else {
                Cell::Open
            }
        })
        .collect()
}

fn burst_cells(burst: &BurstLine, column_ms: f64, used: usize) -> Vec<Cell> {
    let total = burst.spans.len() as u64;
    let last_column = |column: usize| {
        let from = column as f64 * column_ms;
        let to = from + column_ms;
        burst
            .spans
            .iter()
            .filter(|span| {
                let at = span.end_ms.max(0.0);
                at >= from && (at < to || column == used - 1 && at >= to)
            })
            .map(|span| span.end)
            .max_by_key(|end| (end.failed(), *end))
    };
    (0..used)
        .map(|column| {
            if let Some(end) = last_column(column) {
                return Cell::End(end);
            }
            let open = burst.open_at((column as f64 + 0.5) * column_ms) as u64;
            if open == 0 {
                Cell::Idle
            } else {
                Cell::Streams(level(open, total))
            }
        })
        .collect()
}

/// `ms` rounded up to two significant digits (so the legend can say it exactly).
fn two_digits_up(ms: f64) -> f64 {
    if ms <= 0.0 || !ms.is_finite() {
        return 1.0;
    }
    let exponent = ms.log10().floor() as i32 - 1;
    let scale = 10f64.powi(exponent.abs());
    // Divide by a power of ten rather than multiply by its inverse: 73 / 10 is exactly 7.3.
    if exponent < 0 {
        (ms * scale - 1e-9).ceil() / scale
    } else {
        (ms / scale - 1e-9).ceil() * scale
    }
}

/// Ticks at a round step (1, 2, 2.5, 5 × 10^k ms) far enough apart for their labels.
fn ticks(column_ms: f64, used: usize) -> Vec<Tick> {
    let least = column_ms * TICK_SPACING as f64;
    let step = [1.0, 2.0, 2.5, 5.0]
        .iter()
        .flat_map(|base| (0..8).map(move |power| base * 10f64.powi(power)))
        .filter(|step| *step >= least)
        .fold(f64::INFINITY, f64::min);
    let span = column_ms * used as f64;
    let mut ticks = Vec::new();
    let mut index = 0u32;
    loop {
        let at = f64::from(index) * step;
        let column = (at / column_ms).round() as usize;
        if at > span || column >= used || index > 1000 {
            break;
        }
        ticks.push(Tick {
            column,
            text: seconds_text(at),
        });
        index += 1;
    }
    ticks
}

/// `0`, `0.5s`, `2s`, `1m30s`-free: seconds with the decimals the value needs.
fn seconds_text(ms: f64) -> String {
    if ms == 0.0 {
        return "0".to_string();
    }
    let seconds = ms / 1000.0;
    let text = format!("{seconds:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_widths_are_two_digits_rounded_up() {
        assert_eq!(two_digits_up(102.04), 110.0);
        assert_eq!(two_digits_up(100.0), 100.0);
        assert_eq!(two_digits_up(7.25), 7.3);
        assert_eq!(two_digits_up(1234.0), 1300.0);
    }

    #[test]
    fn ticks_are_round_and_apart() {
        let ticks = ticks(110.0, 46);
        let texts: Vec<&str> = ticks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["0", "1s", "2s", "3s", "4s", "5s"]);
        assert_eq!(ticks[1].column, 9);
        assert_eq!(seconds_text(2500.0), "2.5s");
        assert_eq!(seconds_text(10.0), "0.01s");
    }

    #[test]
    fn end_words() {
        assert_eq!(EndKind::of(EndReason::HttpError, Some(503)).word(), "503");
        assert_eq!(
            EndKind::of(EndReason::EofWithoutDone, Some(200)).word(),
            "cut"
        );
        assert_eq!(EndKind::of(EndReason::Reset, None).word(), "reset");
        assert!(!EndKind::of(EndReason::Answered, Some(200)).failed());
        assert!(EndKind::Status(503).failed());
    }
}
