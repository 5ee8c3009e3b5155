//! A run's time series as vertically stacked panels sharing one time axis (arrival rate,
//! threshold τ(t), admission rate, queue length, power, carbon intensity, ...).
//!
//! Each panel is headed by its quantity and unit, written horizontally above the panel (a
//! rotated label would not fit a panel under an inch tall), with a legend on the right of that
//! line when the panel holds more than one series. Only the bottom panel carries x tick labels
//! and the time-axis label; every panel keeps the vertical grid lines, and all plotting areas
//! share their left and right edges so the panels line up in time.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::common::{
    Axis, LABEL_PT, LINE_PT, LegendEntry, LegendLayout, Msg, TICK_PT, TITLE_PT, bold, build_chart, draw_line, font, line_height, px,
    right_margin, segments, series_dash, text_size, ticks_for, x_label_area, y_label_area,
};
use super::{DPI, Figure, FigureSpec, PlotError, Result, Width, ensure_font, render, series_colour};

/// One panel: the y-axis label (quantity and unit) and its named series of (time, value)
/// points. NaN values break a line.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub y_label: String,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Stacks `panels` top to bottom over a shared x axis labelled `x_label` (e.g. "time (s)").
pub fn timeseries_figure(path: &Path, spec: &FigureSpec, x_label: &str, panels: &[Panel]) -> Result<()> {
    ensure_font()?;
    let figure = "time-series figure";
    if panels.is_empty() {
        return Err(PlotError::NoData { figure });
    }
    let w = spec.width.pixels() as i32;
    let xs = panels.iter().flat_map(|p| p.series.iter()).flat_map(|s| s.1.iter().map(|p| p.0));
    let x = Axis::auto(xs, false, x_label, ticks_for(w - px(60.0))).ok_or(PlotError::NoData { figure })?;
    let plot_h = match spec.width {
        Width::Single => 0.72,
        Width::Double => 0.85,
    } * f64::from(DPI);
    let ys: Vec<Axis> = panels
        .iter()
        .map(|p| {
            let vals = p.series.iter().flat_map(|s| s.1.iter().map(|q| q.1));
            Axis::auto(vals, false, "", 4).unwrap_or_else(|| Axis::fixed(0.0, 1.0, vec![(0.0, "0".into()), (1.0, "1".into())], "", true))
        })
        .collect();
    let y_area = ys.iter().map(|y| y_label_area(y, false)).max().unwrap_or(0).max(px(22.0));
    let right = right_margin(&x);
    let plot_w = w - y_area - right;
    let title_h = if spec.title.is_some() { line_height(TITLE_PT) + px(2.0) } else { 0 };
    let mut layouts = vec![];
    let mut y0 = title_h + px(1.5);
    for (i, p) in panels.iter().enumerate() {
        let entries: Vec<LegendEntry> = if p.series.len() > 1 {
            p.series.iter().enumerate().map(|(j, s)| LegendEntry::series(&s.0, j, false)).collect()
        } else {
            vec![]
        };
        let label_w = text_size(&p.y_label, &font(LABEL_PT)).0;
        let beside = LegendLayout::new(&entries, plot_w - label_w - px(8.0));
        let (legend, legend_below) =
            if beside.height() <= line_height(LABEL_PT) { (beside, false) } else { (LegendLayout::new(&entries, plot_w), true) };
        let header = line_height(LABEL_PT) + if legend_below { legend.height() } else { 0 };
        let last = i + 1 == panels.len();
        let x_area = if last { x_label_area(true) } else { 0 };
        let top = px(TICK_PT * 0.6);
        let h = header + top + plot_h as i32 + x_area;
        layouts.push(PanelLayout { y0, h, header, legend, legend_below, entries, x_area, top });
        y0 += h + if last { 0 } else { px(5.0) };
    }
    let fig = TimeseriesFigure { spec: spec.clone(), w, h: y0 + px(2.0), x, ys, panels, layouts, y_area, right };
    render(path, spec, &fig)
}

struct PanelLayout {
    y0: i32,
    h: i32,
    header: i32,
    legend: LegendLayout,
    legend_below: bool,
    entries: Vec<LegendEntry>,
    x_area: i32,
    top: i32,
}

struct TimeseriesFigure<'a> {
    spec: FigureSpec,
    w: i32,
    h: i32,
    x: Axis,
    ys: Vec<Axis>,
    panels: &'a [Panel],
    layouts: Vec<PanelLayout>,
    y_area: i32,
    right: i32,
}

impl Figure for TimeseriesFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (self.w as u32, self.h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let plot_r = self.w - self.right;
        if let Some(t) = &self.spec.title {
            let st = TextStyle::from(bold(TITLE_PT)).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw_text(t, &st, ((self.y_area + plot_r) / 2, px(1.0))).msg()?;
        }
        for ((panel, y), lay) in self.panels.iter().zip(&self.ys).zip(&self.layouts) {
            let area = root.clone().shrink((0, lay.y0), (self.w as u32, lay.h as u32));
            let lh = line_height(LABEL_PT);
            let st = TextStyle::from(font(LABEL_PT)).pos(Pos::new(HPos::Left, VPos::Center));
            area.draw_text(&panel.y_label, &st, (self.y_area, lh / 2)).msg()?;
            let legend_y = if lay.legend_below { lh } else { (lh - line_height(super::common::LEGEND_PT)) / 2 };
            lay.legend.draw(&area, &lay.entries, plot_r, legend_y, true)?;
            let (_, body) = area.split_vertically(lay.header);
            let last = lay.x_area > 0;
            let mut chart = build_chart(&body, &self.x, y, self.y_area, lay.x_area, lay.top, self.right, last)?;
            for (j, (_, pts)) in panel.series.iter().enumerate() {
                let colour = series_colour(j).to_rgba();
                let dash = if panel.series.len() > 1 { series_dash(j) } else { None };
                for seg in segments(pts, &self.x, y) {
                    draw_line(&mut chart, seg, colour, LINE_PT * 0.8, dash)?;
                }
            }
        }
        Ok(())
    }
}
