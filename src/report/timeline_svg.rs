//! `--timeline FILE.svg`: every probe run as a chart. A stream run draws cumulative tokens
//! against time, one series per path and run, with the silences over a second shaded, each end
//! marked (a dot for `[DONE]`, a cross and its word for a failure) and the deadlines found drawn
//! as vertical lines; a burst draws, per path, the streams open and the streams ended each way
//! over time. Drawn by plotters' SVG backend: text is SVG `<text>`, no font library is needed.

use super::RenderError;
use crate::evidence::probe::path::PathKind;
use crate::verdict::timeline::{BurstLine, EndKind, Line, StreamLine, Timeline};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Width of the picture, and height of one run's chart.
pub const WIDTH: u32 = 1000;
pub const PANEL_HEIGHT: u32 = 320;

/// The colour of each path's series (`#1f77b4` direct, `#d62728` mesh).
pub const DIRECT_COLOUR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub const MESH_COLOUR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const DEADLINE_COLOUR: RGBColor = RGBColor(0x55, 0x55, 0x55);
const OPEN_COLOUR: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);
const DONE_COLOUR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
/// Never a path's colour, so a path's series are told by their stroke.
const FAILED_COLOURS: [RGBColor; 3] = [
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];
const FONT: &str = "sans-serif";

pub fn path_colour(path: PathKind) -> RGBColor {
    match path {
        PathKind::Direct => DIRECT_COLOUR,
        PathKind::Mesh => MESH_COLOUR,
    }
}

fn plot_error(error: impl std::fmt::Display) -> RenderError {
    RenderError::Plot(error.to_string())
}

/// The points of a stream's series, a step per recorded arrival: from (0, 0), at each arrival
/// the count before it and then the count with it, and on to its end. A silence stays flat,
/// however long: 2 + 2 × arrivals points.
pub fn series_points(stream: &StreamLine) -> Vec<(f64, f64)> {
    let mut points = Vec::with_capacity(2 + 2 * stream.arrivals.len());
    points.push((0.0, 0.0));
    let mut before = 0.0;
    for (at, count) in &stream.arrivals {
        let count = *count as f64;
        points.push((at / 1000.0, before));
        points.push((at / 1000.0, count));
        before = count;
    }
    points.push((stream.end_ms / 1000.0, before));
    points
}

/// The SVG document of `timelines`, one chart per run, top to bottom.
pub fn svg(timelines: &[Timeline]) -> Result<String, RenderError> {
    let mut text = String::new();
    {
        let panels = timelines.len().max(1) as u32;
        let root =
            SVGBackend::with_string(&mut text, (WIDTH, PANEL_HEIGHT * panels)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        if timelines.is_empty() {
            root.draw(&Text::new(
                "no probe run to draw",
                (20, 20),
                (FONT, 18).into_font(),
            ))
            .map_err(plot_error)?;
        }
        let areas = root.split_evenly((timelines.len().max(1), 1));
        for (area, timeline) in areas.iter().zip(timelines) {
            if timeline
                .lines
                .iter()
                .all(|line| matches!(line, Line::Burst(_)))
            {
                burst_panel(area, timeline)?;
            } else {
                stream_panel(area, timeline)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(text)
}

fn stream_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    timeline: &Timeline,
) -> Result<(), RenderError> {
    let streams = timeline.streams();
    let span_s = timeline.span_ms() / 1000.0 * 1.05;
    let most = streams.iter().map(|s| s.chunks).max().unwrap_or(0).max(1) as f64 * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(&timeline.title, (FONT, 18))
        .margin(12)
        .x_label_area_size(38)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..span_s, 0f64..most)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the request was sent")
        .y_desc("tokens received")
        .label_style((FONT, 12))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(plot_error)?;
    for stream in &streams {
        let colour = path_colour(stream.path);
        for (from, to) in &stream.silences {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(from / 1000.0, 0.0), (to / 1000.0, most)],
                    colour.mix(0.08).filled(),
                )))
                .map_err(plot_error)?;
        }
    }
    for deadline in &timeline.deadlines {
        let at = deadline.at_ms / 1000.0;
        if at > span_s {
            continue;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(at, 0.0), (at, most)],
                DEADLINE_COLOUR.stroke_width(1),
            )))
            .map_err(plot_error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                deadline.label.clone(),
                (at, most * 0.97),
                (FONT, 12).into_font().color(&DEADLINE_COLOUR),
            )))
            .map_err(plot_error)?;
    }
    for stream in &streams {
        let colour = path_colour(stream.path);
        let faint = stream.label.ends_with(" warm");
        let style = if faint {
            colour.mix(0.5).stroke_width(2)
        } else {
            colour.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(series_points(stream), style))
            .map_err(plot_error)?
            .label(stream.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], style.filled()));
        let end = (
            stream.end_ms / 1000.0,
            stream.arrivals.last().map_or(0.0, |(_, c)| *c as f64),
        );
        end_mark(&mut chart, end, stream.end, colour)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 12))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A dot for `[DONE]`, a ring for a stream the probe stopped, a cross and the word for a
/// failure.
fn end_mark(
    chart: &mut Chart<'_, '_>,
    at: (f64, f64),
    end: EndKind,
    colour: RGBColor,
) -> Result<(), RenderError> {
    match end {
        EndKind::Done => chart
            .draw_series(std::iter::once(Circle::new(at, 4, colour.filled())))
            .map(|_| ()),
        EndKind::Stopped => chart
            .draw_series(std::iter::once(Circle::new(at, 5, colour.stroke_width(2))))
            .map(|_| ()),
        failed => chart
            .draw_series(std::iter::once(
                EmptyElement::at(at)
                    + Cross::new((0, 0), 6, BLACK.stroke_width(2))
                    + Text::new(
                        failed.word(),
                        (8, -14),
                        (FONT, 13).into_font().color(&BLACK),
                    ),
            ))
            .map(|_| ()),
    }
    .map_err(plot_error)
}

/// Per path, side by side: the streams open over time, and the streams ended each way so far.
fn burst_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    timeline: &Timeline,
) -> Result<(), RenderError> {
    let bursts = timeline.bursts();
    let titled = area
        .titled(&timeline.title, (FONT, 18))
        .map_err(plot_error)?;
    let parts = titled.split_evenly((1, bursts.len().max(1)));
    let span_s = timeline.span_ms() / 1000.0 * 1.05;
    for (part, burst) in parts.iter().zip(&bursts) {
        let most = f64::from(burst.streams.max(1)) * 1.15;
        let mut chart = ChartBuilder::on(part)
            .caption(format!("{}: streams by status", burst.label), (FONT, 14))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..span_s, 0f64..most)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the burst was sent")
            .y_desc("streams")
            .label_style((FONT, 12))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(plot_error)?;
        for (name, colour, points) in burst_series(burst, span_s) {
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(plot_error)?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 16, y + 4)], style.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 12))
            .draw()
            .map_err(plot_error)?;
    }
    Ok(())
}

/// A named series of points (seconds, count) in its colour.
pub type Series = (String, RGBColor, Vec<(f64, f64)>);

/// Step series of a burst: `open` (streams not ended yet), then one per way of ending, counted
/// as they end; each runs on to `until_s` at its last count, so an early end stays visible.
pub fn burst_series(burst: &BurstLine, until_s: f64) -> Vec<Series> {
    let mut ends: Vec<f64> = burst.spans.iter().map(|s| s.end_ms / 1000.0).collect();
    ends.sort_by(f64::total_cmp);
    let total = ends.len() as f64;
    let mut open = vec![(0.0, total)];
    for (index, at) in ends.iter().enumerate() {
        open.push((*at, total - index as f64));
        open.push((*at, total - index as f64 - 1.0));
    }
    open.push((until_s, 0.0));
    let mut series = vec![(format!("{} open", burst.label), OPEN_COLOUR, open)];
    let mut failed = 0;
    for count in &burst.ends {
        let mut at: Vec<f64> = burst
            .spans
            .iter()
            .filter(|span| span.end == count.end)
            .map(|span| span.end_ms / 1000.0)
            .collect();
        at.sort_by(f64::total_cmp);
        let mut points = vec![(0.0, 0.0)];
        for (index, time) in at.iter().enumerate() {
            points.push((*time, index as f64));
            points.push((*time, index as f64 + 1.0));
        }
        points.push((until_s, at.len() as f64));
        let colour = match count.end {
            EndKind::Done => DONE_COLOUR,
            EndKind::Stopped => OPEN_COLOUR,
            _ => {
                failed += 1;
                FAILED_COLOURS[(failed - 1) % FAILED_COLOURS.len()]
            }
        };
        series.push((count.end.word(), colour, points));
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::timeline::tests::recorded_timelines;

    fn hex(colour: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", colour.0, colour.1, colour.2)
    }

    /// (stroke, number of points) of every polyline in the document.
    fn polylines(svg: &str) -> Vec<(String, usize)> {
        let document = roxmltree::Document::parse(svg).expect("the SVG is not XML");
        assert_eq!(document.root_element().tag_name().name(), "svg");
        document
            .descendants()
            .filter(|node| node.tag_name().name() == "polyline")
            .map(|node| {
                let points = node.attribute("points").unwrap_or_default();
                (
                    node.attribute("stroke").unwrap_or_default().to_string(),
                    points.split_whitespace().count(),
                )
            })
            .collect()
    }

    fn texts(svg: &str) -> Vec<String> {
        let document = roxmltree::Document::parse(svg).unwrap();
        document
            .descendants()
            .filter(|node| node.tag_name().name() == "text")
            .filter_map(|node| node.text().map(|text| text.trim().to_string()))
            .collect()
    }

    #[test]
    fn each_matrix_scenario_draws_one_series_per_path_and_run_with_every_point() {
        for scenario in crate::report::timeline::tests::MATRIX {
            let timelines = recorded_timelines(scenario);
            let svg = svg(&timelines).unwrap();
            let drawn = polylines(&svg);
            for path in [PathKind::Direct, PathKind::Mesh] {
                let colour = hex(path_colour(path));
                let mut expected: Vec<usize> = timelines
                    .iter()
                    .flat_map(|t| &t.lines)
                    .filter_map(|line| match line {
                        Line::Stream(stream) if stream.path == path => {
                            Some(2 * stream.arrivals.len() + 2)
                        }
                        _ => None,
                    })
                    .collect();
                let mut got: Vec<usize> = drawn
                    .iter()
                    .filter(|(stroke, _)| *stroke == colour)
                    .map(|(_, points)| *points)
                    .collect();
                expected.sort_unstable();
                got.sort_unstable();
                assert_eq!(got, expected, "{scenario} {path:?}");
                // Recorded runs: arrivals on every stream, so no series is a bare line.
                assert!(got.iter().all(|points| *points > 2), "{scenario} {got:?}");
            }
            let texts = texts(&svg);
            for timeline in &timelines {
                assert!(texts.contains(&timeline.title), "{scenario}: {texts:?}");
            }
        }
    }

    #[test]
    fn a_cut_is_marked_with_its_word_and_the_deadline_is_drawn() {
        let timelines = recorded_timelines("route-timeout");
        let svg = svg(&timelines).unwrap();
        let texts = texts(&svg);
        assert!(texts.iter().any(|t| t == "cut"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "timeout 2s"), "{texts:?}");
        let deadline = hex(DEADLINE_COLOUR);
        assert_eq!(
            polylines(&svg)
                .iter()
                .filter(|(stroke, points)| *stroke == deadline && *points == 2)
                .count(),
            1
        );
    }

    #[test]
    fn a_burst_draws_streams_by_status_per_path() {
        let timelines = recorded_timelines("circuit-breaker");
        let burst = timelines
            .iter()
            .find(|t| matches!(t.lines[0], Line::Burst(_)))
            .expect("no burst in the circuit-breaker runs");
        let svg = svg(std::slice::from_ref(burst)).unwrap();
        let texts = texts(&svg);
        assert!(texts.iter().any(|t| t == "503"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "mesh ×4 open"), "{texts:?}");
        // Per path: `open`, then one series per way of ending: from 0, two points per stream
        // (a step), then on to the axis' end. Direct: 4 open, 4 done; mesh: 4 open, 2 done, 2 503.
        // (The axes' ticks are 2-point polylines too.)
        let mut drawn: Vec<usize> = polylines(&svg)
            .iter()
            .map(|(_, points)| *points)
            .filter(|points| *points > 2)
            .collect();
        drawn.sort_unstable();
        assert_eq!(drawn, [6, 6, 10, 10, 10]);
        assert_eq!(
            burst_series(
                match &burst.lines[1] {
                    Line::Burst(mesh) => mesh,
                    Line::Stream(_) => panic!("not a burst"),
                },
                7.0
            )[2]
            .2
            .last(),
            Some(&(7.0, 2.0))
        );
    }

    #[test]
    fn nothing_to_draw_is_still_a_picture_that_says_so() {
        let svg = svg(&[]).unwrap();
        assert!(texts(&svg).contains(&"no probe run to draw".to_string()));
    }
}
