//! An energy landscape: a metric over two sweep axes as two stacked panels sharing the x axis.
//!
//! - **(a) the metric**: each grid point is a cell coloured by its value (viridis, with a colour
//!   bar on the right labelled with the metric and unit), with contour lines at the colour
//!   bar's ticks (marching squares between cell centres), the basins (white circles), the global
//!   minimum (white star) and, when given, a descent path from a start point.
//! - **(b) the catchments**: each feasible cell in its basin's colour (Okabe–Ito, lightened so
//!   the markers stay visible), each basin numbered as in the JSON (0 is the global minimum).
//!
//! Infeasible cells are light grey with diagonal hatching in both panels; grid points that were
//! not run stay white. Cells extend halfway to their neighbours in chart space (so log axes get
//! log-centred cells).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::common::{
    ANNOT_PT, Axis, Chart, Glyph, LABEL_PT, LegendEntry, LegendLayout, Msg, Shape, TICK_PT, TITLE_PT, bold, build_chart, draw_marker, font,
    line_height, px, text_size, ticks_for, x_label_area, y_label_area,
};
use super::{DPI, Figure, FigureSpec, PlotError, Result, Width, ensure_font, render, series_colour};

/// One grid point of a landscape, by axis index.
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeCell {
    pub xi: usize,
    pub yi: usize,
    pub z: f64,
    pub feasible: bool,
    /// Index of the basin whose catchment holds the cell (`None` when infeasible).
    pub catchment: Option<usize>,
}

/// Everything a landscape figure shows (axis values sorted increasingly).
#[derive(Debug, Clone, PartialEq)]
pub struct LandscapeData {
    pub x_values: Vec<f64>,
    pub y_values: Vec<f64>,
    pub x_log: bool,
    pub y_log: bool,
    pub x_label: String,
    pub y_label: String,
    /// The metric with its unit (the colour bar's label).
    pub z_label: String,
    pub cells: Vec<LandscapeCell>,
    /// Basin positions (axis values), lowest first: the first is the global minimum.
    pub basins: Vec<(f64, f64)>,
    /// A descent path (axis values), start first; empty for none.
    pub descent: Vec<(f64, f64)>,
    /// Labelled points drawn on both panels (e.g. the runs of a trajectory figure).
    pub marks: Vec<(String, f64, f64)>,
    /// A line under the figure (what was minimised over, what is infeasible).
    pub note: String,
}

const FIGURE: &str = "landscape figure";

/// Draws `data` (see the module documentation).
pub fn landscape_figure(path: &Path, spec: &FigureSpec, data: &LandscapeData) -> Result<()> {
    ensure_font()?;
    let fig = LandscapeFigure::new(spec, data)?;
    render(path, spec, &fig)
}

/// Viridis (matplotlib's perceptually uniform map), linearly between five of its colours.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 5] = [(0x44, 0x01, 0x54), (0x3b, 0x52, 0x8b), (0x21, 0x91, 0x8c), (0x5e, 0xc9, 0x62), (0xfd, 0xe7, 0x25)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The `k`-th catchment colour: the series colour mixed halfway with white.
fn catchment_colour(k: usize) -> RGBColor {
    let RGBColor(r, g, b) = series_colour(k);
    let light = |c: u8| ((u16::from(c) + 255) / 2) as u8;
    RGBColor(light(r), light(g), light(b))
}

const INFEASIBLE: RGBColor = RGBColor(0xE4, 0xE4, 0xE4);
const HATCH: RGBColor = RGBColor(0x9A, 0x9A, 0x9A);
/// Okabe–Ito vermillion: the runs of `basin plot trajectory --on`.
const RUN_MARK: RGBColor = RGBColor(0xD5, 0x5E, 0x00);

/// Cell edges in chart space: midpoints between neighbours, the outer ones half a step out.
fn edges(centres: &[f64]) -> Vec<f64> {
    let n = centres.len();
    let mut e = Vec::with_capacity(n + 1);
    e.push(centres[0] - (centres[1] - centres[0]) / 2.0);
    e.extend(centres.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    e.push(centres[n - 1] + (centres[n - 1] - centres[n - 2]) / 2.0);
    e
}

/// An axis spanning exactly `lo..hi` (chart space) with the ticks of an automatic axis inside.
fn exact_axis(values: &[f64], lo: f64, hi: f64, log: bool, desc: &str, max_ticks: usize) -> Option<Axis> {
    let mut a = Axis::auto(values.iter().copied(), log, desc, max_ticks)?;
    let (tl, th) = if log { (10f64.powf(lo), 10f64.powf(hi)) } else { (lo, hi) };
    if !log {
        // Ticks from the cell-edge range itself, so they land inside it.
        a = Axis::auto([tl, th], false, desc, max_ticks)?;
    }
    let keep: Vec<bool> = a.ticks.iter().map(|t| *t >= lo - 1e-9 && *t <= hi + 1e-9).collect();
    let mut k = keep.iter();
    a.labels.retain(|_| *k.next().expect("one flag per label"));
    a.ticks.retain(|t| *t >= lo - 1e-9 && *t <= hi + 1e-9);
    a.minor.retain(|t| *t >= lo && *t <= hi);
    a.lo = lo;
    a.hi = hi;
    Some(a)
}

/// A few short grid values (batch sizes, instance counts) label their own cells better than
/// round ticks between them: the axis's ticks become the values when there are at most eight
/// and each prints in at most four characters.
fn ticks_at_values(axis: &mut Axis, values: &[f64], centres: &[f64]) {
    let labels: Vec<String> = values.iter().map(|v| format!("{}", (v * 1e6).round() / 1e6)).collect();
    if values.len() <= 8 && labels.iter().all(|l| l.len() <= 4) {
        axis.ticks = centres.to_vec();
        axis.labels = labels;
        axis.minor.clear();
    }
}

/// `text` broken at spaces into lines at most `max_w` pixels wide in the note's font (a word
/// longer than that gets a line of its own); no lines for empty text.
fn wrap(text: &str, max_w: i32) -> Vec<String> {
    let f = font(ANNOT_PT);
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_size(&format!("{line} {word}"), &f).0 <= max_w => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

struct LandscapeFigure<'a> {
    spec: FigureSpec,
    data: &'a LandscapeData,
    /// `data.note` broken into lines that fit the width.
    note: Vec<String>,
    x: Axis,
    y: Axis,
    z: Axis,
    /// z range mapped onto the colour map.
    z_lo: f64,
    z_hi: f64,
    x_edges: Vec<f64>,
    y_edges: Vec<f64>,
    x_centres: Vec<f64>,
    y_centres: Vec<f64>,
    legend: Vec<LegendEntry>,
    layout: LegendLayout,
    w: i32,
    h: i32,
    title_h: i32,
    legend_h: i32,
    y_area: i32,
    colour_bar_w: i32,
    header_h: i32,
    plot_h: i32,
    gap: i32,
    x_area: i32,
}

impl<'a> LandscapeFigure<'a> {
    fn new(spec: &FigureSpec, data: &'a LandscapeData) -> Result<Self> {
        let invalid = |message: String| PlotError::InvalidData { figure: FIGURE, message };
        for (name, v, log) in [("x", &data.x_values, data.x_log), ("y", &data.y_values, data.y_log)] {
            if v.len() < 2 || !v.windows(2).all(|w| w[0] < w[1]) || (log && v[0] <= 0.0) {
                return Err(invalid(format!("the {name} axis needs at least two increasing{} values", if log { " positive" } else { "" })));
            }
        }
        if data.cells.iter().any(|c| c.xi >= data.x_values.len() || c.yi >= data.y_values.len()) {
            return Err(invalid("a cell lies outside the grid".into()));
        }
        // The colour map spans the feasible cells (all cells when none is): infeasible ones are
        // hatched grey, and their values would only flatten the contrast where it matters.
        let any_feasible = data.cells.iter().any(|c| c.feasible);
        let zs: Vec<f64> = data.cells.iter().filter(|c| c.feasible || !any_feasible).map(|c| c.z).filter(|z| z.is_finite()).collect();
        if zs.is_empty() {
            return Err(PlotError::NoData { figure: FIGURE });
        }
        let chart_space = |v: &[f64], log: bool| -> Vec<f64> { v.iter().map(|&u| if log { u.log10() } else { u }).collect() };
        let x_centres = chart_space(&data.x_values, data.x_log);
        let y_centres = chart_space(&data.y_values, data.y_log);
        let (x_edges, y_edges) = (edges(&x_centres), edges(&y_centres));
        let w = spec.width.pixels() as i32;
        let mut x =
            exact_axis(&data.x_values, x_edges[0], *x_edges.last().expect("edges"), data.x_log, &data.x_label, ticks_for(w - px(90.0)))
                .ok_or(PlotError::NoData { figure: FIGURE })?;
        let mut y = exact_axis(&data.y_values, y_edges[0], *y_edges.last().expect("edges"), data.y_log, &data.y_label, 5)
            .ok_or(PlotError::NoData { figure: FIGURE })?;
        ticks_at_values(&mut x, &data.x_values, &x_centres);
        ticks_at_values(&mut y, &data.y_values, &y_centres);
        let (z_lo, mut z_hi) = zs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &z| (a.min(z), b.max(z)));
        if z_hi <= z_lo {
            z_hi = z_lo + z_lo.abs().max(1.0) * 1e-6;
        }
        let z = exact_axis(&[z_lo, z_hi], z_lo, z_hi, false, &data.z_label, 5).ok_or(PlotError::NoData { figure: FIGURE })?;
        let marker = |label: &str, shape, r: f64, fill, edge: RGBColor| LegendEntry {
            label: label.into(),
            glyph: Glyph::Marker { shape, r: px(r) as f64, fill, edge: edge.to_rgba() },
        };
        let mut legend = vec![
            marker("basin", Shape::Circle, 2.2, WHITE.to_rgba(), BLACK),
            marker("global minimum", Shape::Star, 2.4, WHITE.to_rgba(), BLACK),
        ];
        if !data.descent.is_empty() {
            legend.push(marker("start", Shape::Square, 2.6, TRANSPARENT, BLACK));
            legend.push(LegendEntry { label: "descent".into(), glyph: Glyph::Line { colour: BLACK.to_rgba(), dash: None, marker: None } });
        }
        if !data.marks.is_empty() {
            legend.push(marker("runs", Shape::Diamond, 2.6, TRANSPARENT, RUN_MARK));
        }
        if data.cells.iter().any(|c| !c.feasible) {
            legend.push(LegendEntry { label: "infeasible".into(), glyph: Glyph::Bar(HATCH.to_rgba()) });
        }
        let y_area = y_label_area(&y, true);
        let z_label_w = z.max_label_width();
        let colour_bar_w = px(3.0) + px(5.0) + px(3.0) + z_label_w + px(2.0) + line_height(LABEL_PT) + px(4.0);
        let layout = LegendLayout::new(&legend, w - px(4.0));
        let title_h = if spec.title.is_some() { line_height(TITLE_PT) + px(2.0) } else { 0 };
        let legend_h = layout.height() + px(2.0);
        let header_h = line_height(LABEL_PT);
        let plot_h = (match spec.width {
            Width::Single => 1.35,
            Width::Double => 1.8,
        } * f64::from(DPI)) as i32;
        let gap = px(4.0);
        let note = wrap(&data.note, w - px(2.0));
        let note_h = note.len() as i32 * line_height(ANNOT_PT);
        let x_area = x_label_area(true);
        let h = title_h + legend_h + 2 * (header_h + px(TICK_PT * 0.6) + plot_h) + gap + x_area + note_h + px(2.0);
        Ok(LandscapeFigure {
            spec: spec.clone(),
            data,
            note,
            x,
            y,
            z,
            z_lo,
            z_hi,
            x_edges,
            y_edges,
            x_centres,
            y_centres,
            legend,
            layout,
            w,
            h,
            title_h,
            legend_h,
            y_area,
            colour_bar_w,
            header_h,
            plot_h,
            gap,
            x_area,
        })
    }

    fn to_chart(&self, (x, y): (f64, f64)) -> Option<(f64, f64)> {
        Some((self.x.t(x)?, self.y.t(y)?))
    }

    fn cell_rect(&self, c: &LandscapeCell) -> [(f64, f64); 2] {
        [(self.x_edges[c.xi], self.y_edges[c.yi]), (self.x_edges[c.xi + 1], self.y_edges[c.yi + 1])]
    }

    /// Fills every cell (`fill` gives a feasible cell's colour), hatching infeasible ones.
    fn draw_cells<DB: DrawingBackend>(&self, chart: &mut Chart<'_, DB>, fill: impl Fn(&LandscapeCell) -> RGBColor) -> Result<(), String> {
        let hatch = HATCH.stroke_width(px(0.4).max(1) as u32);
        for c in &self.data.cells {
            let [(x0, y0), (x1, y1)] = self.cell_rect(c);
            let colour = if c.feasible { fill(c) } else { INFEASIBLE };
            chart.draw_series(std::iter::once(Rectangle::new([(x0, y0), (x1, y1)], colour.filled()))).msg()?;
            if !c.feasible {
                let (dx, dy) = (x1 - x0, y1 - y0);
                let lines = [
                    vec![(x0, y0), (x1, y1)],
                    vec![(x0 + dx / 2.0, y0), (x1, y0 + dy / 2.0)],
                    vec![(x0, y0 + dy / 2.0), (x0 + dx / 2.0, y1)],
                ];
                for l in lines {
                    chart.draw_series(std::iter::once(PathElement::new(l, hatch))).msg()?;
                }
            }
        }
        Ok(())
    }

    /// Contour lines of z at the colour bar's ticks, by marching squares over the cell centres.
    fn draw_contours<DB: DrawingBackend>(&self, chart: &mut Chart<'_, DB>) -> Result<(), String> {
        let (nx, ny) = (self.x_centres.len(), self.y_centres.len());
        // Contours run through feasible cells only (the region the colour map spans).
        let mut z = vec![None; nx * ny];
        for c in self.data.cells.iter().filter(|c| c.feasible) {
            z[c.xi * ny + c.yi] = Some(c.z);
        }
        let style = WHITE.mix(0.85).stroke_width(px(0.5).max(1) as u32);
        for &level in self.z.ticks.iter().filter(|&&t| t > self.z_lo && t < self.z_hi) {
            for xi in 0..nx.saturating_sub(1) {
                for yi in 0..ny.saturating_sub(1) {
                    let corner =
                        |dx: usize, dy: usize| z[(xi + dx) * ny + yi + dy].map(|v| ((self.x_centres[xi + dx], self.y_centres[yi + dy]), v));
                    // Corners counter-clockwise, so consecutive pairs are the square's edges.
                    let Some(corners) = [corner(0, 0), corner(1, 0), corner(1, 1), corner(0, 1)].into_iter().collect::<Option<Vec<_>>>()
                    else {
                        continue;
                    };
                    let mut crossings = Vec::new();
                    for k in 0..4 {
                        let ((pa, va), (pb, vb)) = (corners[k], corners[(k + 1) % 4]);
                        if (va > level) != (vb > level) {
                            let f = (level - va) / (vb - va);
                            crossings.push((pa.0 + f * (pb.0 - pa.0), pa.1 + f * (pb.1 - pa.1)));
                        }
                    }
                    for pair in crossings.chunks_exact(2) {
                        chart.draw_series(std::iter::once(PathElement::new(vec![pair[0], pair[1]], style))).msg()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Basins, the global minimum, the descent path and the marks.
    fn draw_points<DB: DrawingBackend>(&self, chart: &mut Chart<'_, DB>, numbered: bool) -> Result<(), String> {
        let area = chart.plotting_area().clone();
        let path: Vec<(f64, f64)> = self.data.descent.iter().filter_map(|&p| self.to_chart(p)).collect();
        if path.len() > 1 {
            chart.draw_series(std::iter::once(PathElement::new(path.clone(), BLACK.stroke_width(px(0.9) as u32)))).msg()?;
        }
        let label = TextStyle::from(font(ANNOT_PT)).pos(Pos::new(HPos::Left, VPos::Center));
        for (k, &b) in self.data.basins.iter().enumerate() {
            let Some(p) = self.to_chart(b) else { continue };
            let (shape, r) = if k == 0 { (Shape::Star, px(2.4)) } else { (Shape::Circle, px(2.2)) };
            draw_marker(&area, p, shape, r as f64, WHITE.to_rgba(), BLACK.to_rgba())?;
            if numbered {
                let (px_x, px_y) = area.map_coordinate(&p);
                let root = area.strip_coord_spec();
                let (ox, oy) = root.get_base_pixel();
                root.draw_text(&k.to_string(), &label, (px_x - ox + px(3.2), px_y - oy)).msg()?;
            }
        }
        // Hollow and larger than a basin marker, so a start on a basin leaves it visible.
        if let Some(&start) = path.first() {
            draw_marker(&area, start, Shape::Square, px(3.0) as f64, TRANSPARENT, BLACK.to_rgba())?;
        }
        for (_, x, y) in &self.data.marks {
            if let Some(p) = self.to_chart((*x, *y)) {
                // Hollow and larger than a basin marker, so a run on a basin leaves it visible.
                draw_marker(&area, p, Shape::Diamond, px(3.4) as f64, TRANSPARENT, RUN_MARK.to_rgba())?;
            }
        }
        Ok(())
    }

    fn draw_colour_bar<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, top: i32) -> Result<(), String> {
        let x0 = px(3.0);
        let bar_w = px(5.0);
        let steps = 64;
        let z_px = |v: f64| top + self.plot_h - ((v - self.z_lo) / (self.z_hi - self.z_lo) * f64::from(self.plot_h)).round() as i32;
        for s in 0..steps {
            let (a, b) = (s as f64 / steps as f64, (s + 1) as f64 / steps as f64);
            let (ya, yb) = (z_px(self.z_lo + a * (self.z_hi - self.z_lo)), z_px(self.z_lo + b * (self.z_hi - self.z_lo)));
            area.draw(&Rectangle::new([(x0, yb), (x0 + bar_w, ya)], viridis((a + b) / 2.0).filled())).msg()?;
        }
        area.draw(&Rectangle::new([(x0, top), (x0 + bar_w, top + self.plot_h)], BLACK.stroke_width(px(0.5) as u32))).msg()?;
        let tick_style = TextStyle::from(font(TICK_PT)).pos(Pos::new(HPos::Left, VPos::Center));
        for (t, l) in self.z.ticks.iter().zip(&self.z.labels) {
            let y = z_px(*t);
            area.draw(&PathElement::new(vec![(x0 + bar_w, y), (x0 + bar_w + px(1.5), y)], BLACK.stroke_width(px(0.5) as u32))).msg()?;
            area.draw_text(l, &tick_style, (x0 + bar_w + px(3.0), y)).msg()?;
        }
        let desc = TextStyle::from(font(LABEL_PT).transform(FontTransform::Rotate90)).pos(Pos::new(HPos::Center, VPos::Top));
        let lx = x0 + bar_w + px(3.0) + self.z.max_label_width() + px(2.0) + line_height(LABEL_PT);
        area.draw_text(&self.z.desc, &desc, (lx, top + self.plot_h / 2)).msg()
    }
}

impl Figure for LandscapeFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (self.w as u32, self.h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let plot_r = self.w - self.colour_bar_w;
        if let Some(t) = &self.spec.title {
            let st = TextStyle::from(bold(TITLE_PT)).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw_text(t, &st, ((self.y_area + plot_r) / 2, px(1.0))).msg()?;
        }
        self.layout.draw(root, &self.legend, self.w / 2, self.title_h + px(1.0), false)?;
        let header = TextStyle::from(font(LABEL_PT)).pos(Pos::new(HPos::Left, VPos::Center));
        let top = px(TICK_PT * 0.6);
        let mut y0 = self.title_h + self.legend_h;
        let headers = [format!("(a) {}", self.data.z_label), "(b) catchments (basin 0: global minimum)".to_string()];
        for (panel, head) in headers.iter().enumerate() {
            let last = panel == 1;
            let x_area = if last { self.x_area } else { 0 };
            let h = self.header_h + top + self.plot_h + x_area;
            let area = root.clone().shrink((0, y0), (self.w as u32, h as u32));
            area.draw_text(head, &header, (self.y_area, self.header_h / 2)).msg()?;
            let (_, body) = area.split_vertically(self.header_h);
            let (left, right) = body.split_horizontally(plot_r);
            let mut chart = build_chart(&left, &self.x, &self.y, self.y_area, x_area, top, 0, last)?;
            if last {
                self.draw_cells(&mut chart, |c| c.catchment.map_or(INFEASIBLE, catchment_colour))?;
            } else {
                self.draw_cells(&mut chart, |c| viridis((c.z - self.z_lo) / (self.z_hi - self.z_lo)))?;
                self.draw_contours(&mut chart)?;
            }
            // Redraw the frame over the cells' edges.
            let frame = [(self.x.lo, self.y.lo), (self.x.hi, self.y.hi)];
            chart.draw_series(std::iter::once(Rectangle::new(frame, BLACK.stroke_width(px(0.6) as u32)))).msg()?;
            self.draw_points(&mut chart, last)?;
            if !last {
                self.draw_colour_bar(&right, top)?;
            }
            y0 += h + if last { 0 } else { self.gap };
        }
        let st = TextStyle::from(font(ANNOT_PT)).pos(Pos::new(HPos::Left, VPos::Top));
        for (i, line) in self.note.iter().enumerate() {
            let y = y0 + px(0.5) + i as i32 * line_height(ANNOT_PT);
            root.draw_text(line, &st, (px(1.0), y)).msg()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_clamps() {
        assert_eq!(viridis(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(viridis(1.0), RGBColor(0xfd, 0xe7, 0x25));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
    }

    #[test]
    fn long_notes_wrap_within_the_width() {
        ensure_font().unwrap();
        let text = "hatched: infeasible; feasible means accuracy >= 0.963932 and latency_ms_p99 <= 50";
        let max_w = px(90.0);
        let lines = wrap(text, max_w);
        assert!(lines.len() > 1, "{lines:?}");
        assert_eq!(lines.join(" "), text);
        for l in &lines {
            assert!(text_size(l, &font(ANNOT_PT)).0 <= max_w || !l.contains(' '), "{l:?} is too wide");
        }
        assert!(wrap("", max_w).is_empty());
    }

    #[test]
    fn edges_are_midpoints_with_half_steps_outside() {
        assert_eq!(edges(&[0.0, 1.0, 3.0]), vec![-0.5, 0.5, 2.0, 4.0]);
    }
}
