//! The Pareto front of a sweep: every run as a faint point, the non-dominated runs highlighted
//! and joined by their attainment staircase, the open-loop baseline marked with a star, and
//! error bars (e.g. a confidence interval over seeds) where given.
//!
//! The staircase assumes the x axis is a cost to minimise (energy or carbon per request): from
//! each front point it runs horizontally to the next point's x, then vertically to its y. That
//! is the boundary of the region the front dominates whether y is minimised (latency) or
//! maximised (accuracy). Which runs are on the front is decided by the caller (`analysis`).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::common::{ANNOT_PT, Axis, Glyph, LINE_PT, LegendEntry, Msg, Shape, XyFrame, draw_line, draw_marker, font, px, series_shape};
use super::lines::plot_height_in;
use super::{Figure, FigureSpec, PlotError, Result, ensure_font, render, series_colour};

/// One run in objective space.
#[derive(Debug, Clone, PartialEq)]
pub struct ParetoPoint {
    pub x: f64,
    pub y: f64,
    /// Half-width of the error bar in x (same unit as x), if any.
    pub x_err: Option<f64>,
    /// Half-width of the error bar in y, if any.
    pub y_err: Option<f64>,
    /// Non-dominated: highlighted and joined by the staircase.
    pub on_front: bool,
    /// The open-loop baseline: marked with a star.
    pub is_baseline: bool,
    /// Optional annotation written beside the point (e.g. the controller name).
    pub label: Option<String>,
}

impl ParetoPoint {
    /// A point without error bars or label.
    pub fn new(x: f64, y: f64, on_front: bool) -> Self {
        ParetoPoint { x, y, x_err: None, y_err: None, on_front, is_baseline: false, label: None }
    }
}

const BASELINE: &str = "open-loop baseline";

/// One set of runs: all runs faint grey, the front in the first series colour (legend entry
/// `series_name`, default "Pareto front"), the baseline as a black star.
pub fn pareto_figure(
    path: &Path,
    spec: &FigureSpec,
    points: &[ParetoPoint],
    x_label: &str,
    y_label: &str,
    series_name: Option<&str>,
) -> Result<()> {
    ensure_font()?;
    let grey = RGBColor(0x60, 0x60, 0x60).mix(0.35);
    let groups = [GroupStyle {
        name: series_name.unwrap_or("Pareto front").to_string(),
        points,
        colour: series_colour(0).to_rgba(),
        faint: grey,
        shape: Shape::Circle,
    }];
    let mut legend =
        vec![LegendEntry { label: "all runs".into(), glyph: Glyph::Marker { shape: Shape::Circle, r: faint_r(), fill: grey, edge: grey } }];
    legend.push(LegendEntry::series(&groups[0].name, 0, true));
    if points.iter().any(|p| p.is_baseline) {
        legend.push(baseline_entry(BLACK.to_rgba()));
    }
    let fig = ParetoFigure::new(spec, x_label, y_label, &groups, legend, true)?;
    render(path, spec, &fig)
}

/// Several sets of runs (e.g. one per workload), each with its own colour and marker shape:
/// off-front runs faint in the group colour, the front in full colour, baselines as stars
/// filled with the group colour.
pub fn pareto_figure_groups(
    path: &Path,
    spec: &FigureSpec,
    groups: &[(String, Vec<ParetoPoint>)],
    x_label: &str,
    y_label: &str,
) -> Result<()> {
    ensure_font()?;
    let styles: Vec<GroupStyle> = groups
        .iter()
        .enumerate()
        .map(|(i, (name, points))| GroupStyle {
            name: name.clone(),
            points,
            colour: series_colour(i).to_rgba(),
            faint: series_colour(i).mix(0.3),
            shape: series_shape(i),
        })
        .collect();
    let mut legend: Vec<LegendEntry> = styles
        .iter()
        .map(|g| LegendEntry { label: g.name.clone(), glyph: Glyph::Line { colour: g.colour, dash: None, marker: Some(g.shape) } })
        .collect();
    let grey = RGBColor(0x60, 0x60, 0x60).mix(0.35);
    legend.push(LegendEntry {
        label: "off the front".into(),
        glyph: Glyph::Marker { shape: Shape::Circle, r: faint_r(), fill: grey, edge: grey },
    });
    if groups.iter().any(|g| g.1.iter().any(|p| p.is_baseline)) {
        legend.push(baseline_entry(RGBColor(0xBB, 0xBB, 0xBB).to_rgba()));
    }
    let fig = ParetoFigure::new(spec, x_label, y_label, &styles, legend, false)?;
    render(path, spec, &fig)
}

fn faint_r() -> f64 {
    px(1.6) as f64
}

fn front_r() -> f64 {
    px(2.2) as f64
}

fn star_r() -> f64 {
    px(3.0) as f64
}

fn baseline_entry(fill: RGBAColor) -> LegendEntry {
    LegendEntry { label: BASELINE.into(), glyph: Glyph::Marker { shape: Shape::Star, r: px(2.4) as f64, fill, edge: BLACK.to_rgba() } }
}

struct GroupStyle<'a> {
    name: String,
    points: &'a [ParetoPoint],
    colour: RGBAColor,
    faint: RGBAColor,
    shape: Shape,
}

struct ParetoFigure<'a> {
    spec: FigureSpec,
    x: Axis,
    y: Axis,
    groups: &'a [GroupStyle<'a>],
    legend: Vec<LegendEntry>,
    frame: XyFrame,
    /// Baseline stars black (one group) rather than in the group colour.
    black_baseline: bool,
}

impl<'a> ParetoFigure<'a> {
    fn new(
        spec: &FigureSpec,
        x_label: &str,
        y_label: &str,
        groups: &'a [GroupStyle<'a>],
        legend: Vec<LegendEntry>,
        black_baseline: bool,
    ) -> Result<Self> {
        let all = || groups.iter().flat_map(|g| g.points.iter()).filter(|p| p.x.is_finite() && p.y.is_finite());
        let err = |e: Option<f64>| e.filter(|e| e.is_finite()).unwrap_or(0.0).abs();
        let xs = all().flat_map(|p| [p.x - err(p.x_err), p.x + err(p.x_err)]);
        let ys = all().flat_map(|p| [p.y - err(p.y_err), p.y + err(p.y_err)]);
        let figure = "Pareto figure";
        let x = Axis::auto(xs, false, x_label, XyFrame::x_ticks(spec)).ok_or(PlotError::NoData { figure })?;
        let y = Axis::auto(ys, false, y_label, 6).ok_or(PlotError::NoData { figure })?;
        let frame = XyFrame::new(spec, &x, &y, &legend, plot_height_in(spec));
        Ok(ParetoFigure { spec: spec.clone(), x, y, groups, legend, frame, black_baseline })
    }
}

impl Figure for ParetoFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (self.frame.w as u32, self.frame.h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let body = self.frame.decorate(root, &self.spec, &self.legend)?;
        let mut chart = self.frame.chart(&body, &self.x, &self.y)?;
        let finite = |p: &&ParetoPoint| p.x.is_finite() && p.y.is_finite();
        // 1. Every run, faint, with faint error bars.
        for g in self.groups {
            for p in g.points.iter().filter(finite).filter(|p| !p.on_front) {
                error_bars(&chart, p, g.faint)?;
                draw_marker(chart.plotting_area(), (p.x, p.y), g.shape, faint_r(), g.faint, g.faint)?;
            }
        }
        // 2. The fronts: staircase, error bars, markers.
        for g in self.groups {
            let mut front: Vec<&ParetoPoint> = g.points.iter().filter(finite).filter(|p| p.on_front).collect();
            front.sort_by(|a, b| a.x.total_cmp(&b.x));
            let mut stair = vec![];
            for (i, p) in front.iter().enumerate() {
                if i > 0 {
                    stair.push((p.x, front[i - 1].y));
                }
                stair.push((p.x, p.y));
            }
            if stair.len() > 1 {
                draw_line(&mut chart, stair, g.colour, LINE_PT, None)?;
            }
            for p in &front {
                error_bars(&chart, p, g.colour)?;
                let white = WHITE.to_rgba();
                draw_marker(chart.plotting_area(), (p.x, p.y), g.shape, front_r(), g.colour, white)?;
            }
        }
        // 3. Baselines on top, then annotations.
        for g in self.groups {
            for p in g.points.iter().filter(finite).filter(|p| p.is_baseline) {
                let fill = if self.black_baseline { BLACK.to_rgba() } else { g.colour };
                draw_marker(chart.plotting_area(), (p.x, p.y), Shape::Star, star_r(), fill, BLACK.to_rgba())?;
            }
        }
        let x_mid = self.x.lo + 0.7 * (self.x.hi - self.x.lo);
        for g in self.groups {
            for p in g.points.iter().filter(finite) {
                let Some(label) = &p.label else { continue };
                let (dx, h) = if p.x > x_mid { (-px(4.0), HPos::Right) } else { (px(4.0), HPos::Left) };
                let style = TextStyle::from(font(ANNOT_PT)).color(&RGBColor(0x33, 0x33, 0x33)).pos(Pos::new(h, VPos::Bottom));
                let elem = EmptyElement::at((p.x, p.y)) + Text::new(label.clone(), (dx, -px(2.0)), style);
                chart.plotting_area().draw(&elem).msg()?;
            }
        }
        Ok(())
    }
}

/// Error bars with caps around `p` in `colour`.
fn error_bars<DB: DrawingBackend>(chart: &super::common::Chart<'_, DB>, p: &ParetoPoint, colour: RGBAColor) -> Result<(), String> {
    let area = chart.plotting_area();
    let style = colour.stroke_width(px(0.6) as u32);
    let cap = px(1.5);
    if let Some(e) = p.y_err.filter(|e| e.is_finite() && *e > 0.0) {
        area.draw(&PathElement::new(vec![(p.x, p.y - e), (p.x, p.y + e)], style)).msg()?;
        for y in [p.y - e, p.y + e] {
            area.draw(&(EmptyElement::at((p.x, y)) + PathElement::new(vec![(-cap, 0), (cap, 0)], style))).msg()?;
        }
    }
    if let Some(e) = p.x_err.filter(|e| e.is_finite() && *e > 0.0) {
        area.draw(&PathElement::new(vec![(p.x - e, p.y), (p.x + e, p.y)], style)).msg()?;
        for x in [p.x - e, p.x + e] {
            area.draw(&(EmptyElement::at((x, p.y)) + PathElement::new(vec![(0, -cap), (0, cap)], style))).msg()?;
        }
    }
    Ok(())
}
