//! Shared drawing machinery: point-based sizes, axes with our own tick placement and
//! labels, markers drawn as polygons, a legend laid out in a strip above the plot (so it
//! never hides data), and the frame of a single x–y chart.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{DPI, FigureSpec, series_colour};

/// Chart coordinates: both axes are linear in "chart space" (log axes store log10 values).
pub(crate) type Coord = Cartesian2d<AxisCoord, AxisCoord>;

/// A linear coordinate with our own tick (bold) and minor-grid (light) positions.
#[derive(Debug, Clone)]
pub(crate) struct AxisCoord {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl Ranged for AxisCoord {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let r = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (r * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() { self.minor.clone() } else { self.ticks.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Coord>;

pub(crate) const TICK_PT: f64 = 7.0;
pub(crate) const LABEL_PT: f64 = 8.0;
pub(crate) const LEGEND_PT: f64 = 7.0;
pub(crate) const TITLE_PT: f64 = 9.0;
pub(crate) const ANNOT_PT: f64 = 6.0;
/// Width of data lines.
pub(crate) const LINE_PT: f64 = 1.0;

/// Points (1/72 in) to pixels.
pub(crate) fn px(pt: f64) -> i32 {
    (pt * f64::from(DPI) / 72.0).round() as i32
}

/// The embedded sans-serif face at `pt` points. plotters' SVG backend writes `size / 1.24` as
/// the font size and the ab_glyph rasteriser scales glyphs by their ascent-to-descent height
/// (1.164 em for DejaVu Sans); 1.2 sits between, within 4 % of the nominal size in both.
pub(crate) fn font(pt: f64) -> FontDesc<'static> {
    ("sans-serif", pt * f64::from(DPI) / 72.0 * 1.2).into_font()
}

pub(crate) fn bold(pt: f64) -> FontDesc<'static> {
    font(pt).style(FontStyle::Bold)
}

/// Width and height of `text` in pixels.
pub(crate) fn text_size(text: &str, f: &FontDesc) -> (i32, i32) {
    let (w, h) = f.box_size(text).unwrap_or((text.chars().count() as u32 * 20, 30));
    (w as i32, h as i32)
}

/// Height of one line of text (with leading).
pub(crate) fn line_height(pt: f64) -> i32 {
    px(pt * 1.3)
}

/// Converts a plotters error into our message string.
pub(crate) trait Msg<T> {
    fn msg(self) -> Result<T, String>;
}
impl<T, E: std::fmt::Display> Msg<T> for Result<T, E> {
    fn msg(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Axes

/// One axis: its range in chart space, tick positions and their labels, and its description.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    pub ticks: Vec<f64>,
    pub minor: Vec<f64>,
    pub labels: Vec<String>,
    pub desc: String,
    /// Grid lines at the ticks.
    pub grid: bool,
}

impl Axis {
    /// An axis covering `values` (non-finite ones ignored, and non-positive ones on a log axis)
    /// with a small margin; `None` when nothing is left. A linear axis of non-negative data
    /// starts at zero when the data come within 30 % of it.
    pub fn auto(values: impl IntoIterator<Item = f64>, log: bool, desc: &str, max_ticks: usize) -> Option<Axis> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values {
            if v.is_finite() && (!log || v > 0.0) {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if lo > hi {
            return None;
        }
        Some(if log { Self::log(lo, hi, desc, max_ticks) } else { Self::linear(lo, hi, desc, max_ticks) })
    }

    fn linear(mut lo: f64, mut hi: f64, desc: &str, max_ticks: usize) -> Axis {
        if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
            let d = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
            (lo, hi) = if lo >= 0.0 && lo - d < 0.0 { (0.0, lo + d) } else { (lo - d, hi + d) };
        }
        let span = hi - lo;
        let (lo, hi) = if lo >= 0.0 && lo <= 0.3 * hi { (0.0, hi + 0.04 * span) } else { (lo - 0.04 * span, hi + 0.04 * span) };
        let count = |step: f64| ((hi / step + 1e-9).floor() - (lo / step - 1e-9).ceil()) as usize + 1;
        let mut step = nice_step((hi - lo) / max_ticks.max(2) as f64 / 2.0);
        while count(step) > max_ticks.max(2) {
            step = nice_step(step * 1.0001);
        }
        let first = (lo / step - 1e-9).ceil() as i64;
        let last = (hi / step + 1e-9).floor() as i64;
        let ticks: Vec<f64> = (first..=last).map(|k| k as f64 * step + 0.0).collect();
        let decimals = (0..=12).find(|&d| {
            let s = step * 10f64.powi(d);
            (s - s.round()).abs() < 1e-6 * s.max(1.0)
        });
        let big = lo.abs().max(hi.abs());
        let sci = !(1e-3..1e6).contains(&big);
        let labels = ticks
            .iter()
            .map(|&t| if sci && t != 0.0 { format!("{t:.1e}") } else { format!("{t:.*}", decimals.unwrap_or(3) as usize) })
            .collect();
        Axis { lo, hi, log: false, ticks, minor: vec![], labels, desc: desc.into(), grid: true }
    }

    fn log(lo: f64, hi: f64, desc: &str, max_ticks: usize) -> Axis {
        let (llo, lhi) = (lo.log10(), hi.log10());
        let pad = if lhi - llo < 1e-9 { 0.5 } else { 0.04 * (lhi - llo) };
        let (lo, hi) = (llo - pad, lhi + pad);
        let decades = (lo.floor() as i32)..=(hi.ceil() as i32);
        let in_range = |v: f64| v >= lo - 1e-9 && v <= hi + 1e-9;
        let with_mantissas = |ms: &[f64]| -> Vec<f64> {
            decades.clone().flat_map(|k| ms.iter().map(move |m| m.log10() + f64::from(k))).filter(|&v| in_range(v)).collect()
        };
        let mut ticks = with_mantissas(&[1.0]);
        let ticks125 = with_mantissas(&[1.0, 2.0, 5.0]);
        if ticks.len() < 3 && ticks125.len() <= max_ticks.max(3) || ticks.len() < 2 {
            ticks = ticks125;
        }
        if ticks.len() < 2 {
            ticks = with_mantissas(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        }
        let thin = ticks.len().div_ceil(max_ticks.max(2));
        if thin > 1 {
            ticks = ticks.into_iter().step_by(thin).collect();
        }
        let minor = if hi - lo <= 5.0 {
            with_mantissas(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
                .into_iter()
                .filter(|m| !ticks.iter().any(|t| (t - m).abs() < 1e-9))
                .collect()
        } else {
            vec![]
        };
        let labels = ticks.iter().map(|&t| fmt_log_tick(10f64.powf(t))).collect();
        Axis { lo, hi, log: true, ticks, minor, labels, desc: desc.into(), grid: true }
    }

    /// An axis with given range and labelled ticks (categories, fractions).
    pub fn fixed(lo: f64, hi: f64, ticks: Vec<(f64, String)>, desc: &str, grid: bool) -> Axis {
        let (ticks, labels) = ticks.into_iter().unzip();
        Axis { lo, hi, log: false, ticks, minor: vec![], labels, desc: desc.into(), grid }
    }

    /// Chart-space position of data value `v`, `None` when it cannot be drawn.
    pub fn t(&self, v: f64) -> Option<f64> {
        if !v.is_finite() {
            None
        } else if self.log {
            (v > 0.0).then(|| v.log10())
        } else {
            Some(v)
        }
    }

    pub fn coord(&self) -> AxisCoord {
        AxisCoord { lo: self.lo, hi: self.hi, ticks: self.ticks.clone(), minor: self.minor.clone() }
    }

    /// The label of the tick at chart-space position `v`.
    pub fn label(&self, v: f64) -> String {
        let tol = 1e-9 * (self.hi - self.lo).abs().max(1e-300);
        self.ticks.iter().position(|t| (t - v).abs() <= tol).map(|i| self.labels[i].clone()).unwrap_or_default()
    }

    pub fn max_label_width(&self) -> i32 {
        let f = font(TICK_PT);
        self.labels.iter().map(|l| text_size(l, &f).0).max().unwrap_or(0)
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw.is_finite() && raw > 0.0 { raw } else { 1.0 };
    let base = 10f64.powf(raw.log10().floor());
    let m = raw / base;
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|&n| m <= n * (1.0 + 1e-9)).unwrap_or(10.0);
    nice * base
}

fn fmt_log_tick(v: f64) -> String {
    if (1e-4..1e6).contains(&v) {
        let d = (-v.log10().floor()).max(0.0) as usize;
        format!("{v:.d$}")
    } else {
        format!("{v:e}")
    }
}

/// A tick count that suits an axis `len_px` long (one label per ~0.45 in).
pub(crate) fn ticks_for(len_px: i32) -> usize {
    ((len_px as f64 / (0.45 * f64::from(DPI))) as usize).clamp(3, 10)
}

// ---------------------------------------------------------------------------------------------
// Markers, lines

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    InvTriangle,
    Star,
}

/// Marker shape of the `i`-th series.
pub(crate) fn series_shape(i: usize) -> Shape {
    [Shape::Circle, Shape::Square, Shape::Triangle, Shape::Diamond, Shape::InvTriangle][i % 5]
}

/// Outline of `shape` of radius `r` pixels around the origin (y down).
fn shape_points(shape: Shape, r: f64) -> Vec<(i32, i32)> {
    let poly = |n: usize, r: f64, rot: f64| -> Vec<(f64, f64)> {
        (0..n)
            .map(|k| {
                let a = rot + std::f64::consts::TAU * k as f64 / n as f64;
                (r * a.cos(), r * a.sin())
            })
            .collect()
    };
    let up = -std::f64::consts::FRAC_PI_2;
    let pts = match shape {
        Shape::Circle => poly(20, r, 0.0),
        Shape::Square => poly(4, r * 1.15, std::f64::consts::FRAC_PI_4),
        Shape::Diamond => poly(4, r * 1.3, 0.0),
        Shape::Triangle => poly(3, r * 1.35, up),
        Shape::InvTriangle => poly(3, r * 1.35, -up),
        Shape::Star => {
            let outer = poly(5, r * 1.5, up);
            let inner = poly(5, r * 0.62, up + std::f64::consts::PI / 5.0);
            outer.into_iter().zip(inner).flat_map(|(o, i)| [o, i]).collect()
        }
    };
    pts.into_iter().map(|(x, y)| (x.round() as i32, y.round() as i32)).collect()
}

/// Draws a filled marker with an outline at `at` (in `area`'s coordinates).
pub(crate) fn draw_marker<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    shape: Shape,
    r: f64,
    fill: RGBAColor,
    edge: RGBAColor,
) -> Result<(), String> {
    let pts = shape_points(shape, r);
    let mut closed = pts.clone();
    closed.push(pts[0]);
    let elem = EmptyElement::at(at) + Polygon::new(pts, fill.filled()) + PathElement::new(closed, edge.stroke_width(px(0.5) as u32));
    area.draw(&elem).msg()
}

/// Dash pattern (dash, gap) in pixels of the `i`-th series; `None` is solid.
pub(crate) fn series_dash(i: usize) -> Option<(i32, i32)> {
    [None, Some((px(3.5), px(1.8))), Some((px(1.0), px(1.5))), Some((px(5.0), px(1.5)))][i % 4]
}

/// Splits a series at non-drawable points (NaN, or non-positive on log axes) into runs of
/// consecutive chart-space points.
pub(crate) fn segments(pts: &[(f64, f64)], x: &Axis, y: &Axis) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![];
    let mut cur = vec![];
    for &(a, b) in pts {
        match (x.t(a), y.t(b)) {
            (Some(a), Some(b)) => cur.push((a, b)),
            _ if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            _ => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Draws a polyline in chart space, dashed when asked. Isolated points become small dots.
pub(crate) fn draw_line<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    pts: Vec<(f64, f64)>,
    colour: RGBAColor,
    width_pt: f64,
    dash: Option<(i32, i32)>,
) -> Result<(), String> {
    let style = colour.stroke_width(px(width_pt).max(1) as u32);
    if pts.len() == 1 {
        let area = chart.plotting_area();
        return draw_marker(area, pts[0], Shape::Circle, px(width_pt) as f64, colour, colour);
    }
    match dash {
        None => chart.draw_series(LineSeries::new(pts, style)).map(|_| ()).msg(),
        Some((d, g)) => chart.draw_series(DashedLineSeries::new(pts, d, g, style)).map(|_| ()).msg(),
    }
}

// ---------------------------------------------------------------------------------------------
// Legend

#[derive(Debug, Clone)]
pub(crate) enum Glyph {
    /// A line sample, optionally with a marker in its middle.
    Line {
        colour: RGBAColor,
        dash: Option<(i32, i32)>,
        marker: Option<Shape>,
    },
    Marker {
        shape: Shape,
        r: f64,
        fill: RGBAColor,
        edge: RGBAColor,
    },
    Bar(RGBAColor),
}

#[derive(Debug, Clone)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub glyph: Glyph,
}

impl LegendEntry {
    /// The entry for series `i` drawn as a line (with its marker when `marker`).
    pub fn series(label: &str, i: usize, marker: bool) -> Self {
        LegendEntry {
            label: label.into(),
            glyph: Glyph::Line { colour: series_colour(i).to_rgba(), dash: series_dash(i), marker: marker.then(|| series_shape(i)) },
        }
    }
}

impl Glyph {
    /// Width of the sample drawn left of the label.
    fn width(&self) -> i32 {
        match self {
            Glyph::Line { .. } => px(16.0),
            Glyph::Marker { .. } | Glyph::Bar(_) => px(7.0),
        }
    }
}

/// Legend entries placed in rows that fit `max_w` pixels.
#[derive(Debug, Clone, Default)]
pub(crate) struct LegendLayout {
    /// Per row: (entry index, x offset) and the row width.
    rows: Vec<(Vec<(usize, i32)>, i32)>,
}

impl LegendLayout {
    pub fn new(entries: &[LegendEntry], max_w: i32) -> Self {
        let f = font(LEGEND_PT);
        let gap = px(8.0);
        let mut rows: Vec<(Vec<(usize, i32)>, i32)> = vec![];
        for (i, e) in entries.iter().enumerate() {
            let w = e.glyph.width() + px(3.0) + text_size(&e.label, &f).0;
            match rows.last_mut() {
                Some((row, rw)) if *rw + gap + w <= max_w => {
                    row.push((i, *rw + gap));
                    *rw += gap + w;
                }
                _ => rows.push((vec![(i, 0)], w)),
            }
        }
        LegendLayout { rows }
    }

    pub fn height(&self) -> i32 {
        self.rows.len() as i32 * line_height(LEGEND_PT)
    }

    /// Draws the rows from top `y0`, each centred on `cx` (or right-aligned at `cx` when
    /// `right`), on a pixel-coordinate area.
    pub fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        entries: &[LegendEntry],
        cx: i32,
        y0: i32,
        right: bool,
    ) -> Result<(), String> {
        let style = TextStyle::from(font(LEGEND_PT)).pos(Pos::new(HPos::Left, VPos::Center));
        let lh = line_height(LEGEND_PT);
        for (r, (row, rw)) in self.rows.iter().enumerate() {
            let x0 = if right { cx - rw } else { cx - rw / 2 };
            let y = y0 + r as i32 * lh + lh / 2;
            for &(i, dx) in row {
                let x = x0 + dx;
                let sample = entries[i].glyph.width();
                match &entries[i].glyph {
                    Glyph::Line { colour, dash, marker } => {
                        let st = colour.stroke_width(px(LINE_PT) as u32);
                        let pts = vec![(x, y), (x + sample, y)];
                        match dash {
                            None => area.draw(&PathElement::new(pts, st)).msg()?,
                            Some((d, g)) => area.draw(&DashedPathElement::new(pts, *d, *g, st)).msg()?,
                        }
                        if let Some(s) = marker {
                            draw_marker(area, (x + sample / 2, y), *s, px(2.0) as f64, *colour, *colour)?;
                        }
                    }
                    Glyph::Marker { shape, r, fill, edge } => draw_marker(area, (x + sample / 2, y), *shape, *r, *fill, *edge)?,
                    Glyph::Bar(c) => {
                        let h = px(LEGEND_PT * 0.38);
                        area.draw(&Rectangle::new([(x, y - h), (x + sample, y + h)], c.filled())).msg()?
                    }
                }
                area.draw_text(&entries[i].label, &style, (x + sample + px(3.0), y)).msg()?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The frame of a single x–y chart: title, legend strip, axes with labels, grid.

/// Pixel layout of one chart (computed before drawing, so the figure height is known).
#[derive(Debug, Clone)]
pub(crate) struct XyFrame {
    pub w: i32,
    pub h: i32,
    title_h: i32,
    legend: LegendLayout,
    legend_h: i32,
    pub y_area: i32,
    pub x_area: i32,
    pub right: i32,
    pub top: i32,
}

impl XyFrame {
    /// Layout for a figure whose plotting area is about `plot_h_in` inches tall, given the axes
    /// (their labels decide the label areas) and the legend entries.
    pub fn new(spec: &FigureSpec, x: &Axis, y: &Axis, legend: &[LegendEntry], plot_h_in: f64) -> Self {
        let w = spec.width.pixels() as i32;
        let title_h = if spec.title.is_some() { line_height(TITLE_PT) + px(2.0) } else { 0 };
        let y_area = y_label_area(y, !y.desc.is_empty());
        let right = right_margin(x);
        let legend = LegendLayout::new(legend, w - y_area - right);
        let legend_h = if legend.rows.is_empty() { 0 } else { legend.height() + px(2.0) };
        let top = px(TICK_PT * 0.6) + if title_h + legend_h == 0 { px(2.0) } else { 0 };
        let x_area = x_label_area(true);
        let plot_h = (plot_h_in * f64::from(DPI)) as i32;
        let h = title_h + legend_h + top + plot_h + x_area + px(2.0);
        XyFrame { w, h, title_h, legend, legend_h, y_area, x_area, right, top }
    }

    /// Number of x ticks that suit the width of the plotting area.
    pub fn x_ticks(spec: &FigureSpec) -> usize {
        ticks_for(spec.width.pixels() as i32 - px(60.0))
    }

    /// Draws title and legend; returns the area left for the chart (pass it to [`Self::chart`]).
    pub fn decorate<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        spec: &FigureSpec,
        legend: &[LegendEntry],
    ) -> Result<DrawingArea<DB, Shift>, String> {
        let plot_l = self.y_area;
        let plot_r = self.w - self.right;
        if let Some(t) = &spec.title {
            let st = TextStyle::from(bold(TITLE_PT)).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw_text(t, &st, ((plot_l + plot_r) / 2, px(1.0))).msg()?;
        }
        self.legend.draw(root, legend, (plot_l + plot_r) / 2, self.title_h + px(1.0), false)?;
        Ok(root.split_vertically(self.title_h + self.legend_h).1)
    }

    /// Axes, grid and axis labels on `body`; returns the chart for the data.
    pub fn chart<'a, DB: DrawingBackend>(&self, body: &'a DrawingArea<DB, Shift>, x: &Axis, y: &Axis) -> Result<Chart<'a, DB>, String> {
        build_chart(body, x, y, self.y_area, self.x_area, self.top, self.right, true)
    }
}

/// Width of the y label area: tick labels, tick marks and (when `desc`) the rotated label.
pub(crate) fn y_label_area(y: &Axis, desc: bool) -> i32 {
    let d = if desc { line_height(LABEL_PT) + px(2.0) + px(Y_DESC_PAD_PT) } else { 0 };
    d + y.max_label_width() + 2 * px(TICK_MARK_PT) + px(1.0)
}

/// Height of the x label area with tick labels and (when `desc`) the axis label.
pub(crate) fn x_label_area(desc: bool) -> i32 {
    let d = if desc { line_height(LABEL_PT) + px(1.0) } else { 0 };
    line_height(TICK_PT) + 2 * px(TICK_MARK_PT) + d
}

/// Room right of the plot for half of the last x tick label.
pub(crate) fn right_margin(x: &Axis) -> i32 {
    let f = font(TICK_PT);
    let last = x.labels.last().map(|l| text_size(l, &f).0 / 2).unwrap_or(0);
    (last + px(2.0)).max(px(6.0))
}

const TICK_MARK_PT: f64 = 2.0;
/// Left of the rotated y label: plotters' rasteriser draws rotated glyphs up to ~0.2 em left of
/// the anchor it is given.
const Y_DESC_PAD_PT: f64 = 2.0;

/// Builds a cartesian chart on `area` and draws axes, grid, ticks and axis labels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x: &Axis,
    y: &Axis,
    y_area: i32,
    x_area: i32,
    top: i32,
    right: i32,
    x_desc: bool,
) -> Result<Chart<'a, DB>, String> {
    // `y_area` includes the pad left of a rotated y label (see `y_label_area`).
    let pad = if y.desc.is_empty() { 0 } else { px(Y_DESC_PAD_PT) };
    let mut chart = ChartBuilder::on(area)
        .margin_top(top)
        .margin_right(right)
        .margin_left(pad)
        .y_label_area_size(y_area - pad)
        .x_label_area_size(x_area)
        .build_cartesian_2d(x.coord(), y.coord())
        .msg()?;
    let xf = |v: &f64| x.label(*v);
    let yf = |v: &f64| y.label(*v);
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(RGBColor(0xDD, 0xDD, 0xDD).stroke_width(px(0.4) as u32))
        .light_line_style(RGBColor(0xF2, 0xF2, 0xF2).stroke_width(px(0.3) as u32))
        .axis_style(BLACK.stroke_width(px(0.6) as u32))
        .set_all_tick_mark_size(px(TICK_MARK_PT))
        .x_labels(x.ticks.len().max(1))
        .y_labels(y.ticks.len().max(1))
        .x_label_formatter(&xf)
        .y_label_formatter(&yf)
        .label_style(font(TICK_PT))
        .axis_desc_style(font(LABEL_PT))
        .y_desc(y.desc.clone());
    if x_desc {
        mesh.x_desc(x.desc.clone());
    }
    if !x.grid {
        mesh.disable_x_mesh();
    }
    if !y.grid {
        mesh.disable_y_mesh();
    }
    mesh.draw().msg()?;
    Ok(chart)
}
