//! Energy per request of several runs, broken down into its parts and drawn as stacked
//! horizontal bars (run names read left of the bars however long they are; the energy axis,
//! "energy per request (J)", runs along the bottom). The total is written at the end of each
//! bar.
//!
//! The parts follow the energy accounting: *active* is the energy of the batches that
//! served the request (its share of each batch's run), *idle* the idle power of the servers
//! spread over the requests, and *early exit* the energy spent on requests that left the
//! model at an early exit.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::common::{ANNOT_PT, Axis, Glyph, LegendEntry, Msg, TICK_PT, XyFrame, font, px, text_size};
use super::{Figure, FigureSpec, OKABE_ITO, PlotError, Result, Width, ensure_font, render};

/// Energy per request of one run, in joules, by part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyBreakdown {
    pub active_j: f64,
    pub idle_j: f64,
    pub early_exit_j: f64,
}

impl EnergyBreakdown {
    pub fn total_j(&self) -> f64 {
        self.active_j + self.idle_j + self.early_exit_j
    }

    fn parts(&self) -> [f64; 3] {
        [self.active_j, self.idle_j, self.early_exit_j]
    }
}

const PARTS: [&str; 3] = ["active", "idle", "early exit"];

/// Okabe–Ito blue, orange and bluish green for active, idle and early exit.
fn part_colour(k: usize) -> RGBColor {
    OKABE_ITO[[4, 0, 2][k]]
}

/// One stacked bar per run (name, breakdown), first run at the top.
pub fn energy_breakdown_figure(path: &Path, spec: &FigureSpec, runs: &[(String, EnergyBreakdown)]) -> Result<()> {
    ensure_font()?;
    let figure = "energy breakdown figure";
    if runs.is_empty() {
        return Err(PlotError::NoData { figure });
    }
    if let Some((name, _)) = runs.iter().find(|(_, b)| b.parts().iter().any(|v| !v.is_finite() || *v < 0.0)) {
        return Err(PlotError::InvalidData { figure, message: format!("run {name:?} has a negative or non-finite energy part") });
    }
    let n = runs.len();
    // Names longer than 40 % of the width are shortened with an ellipsis.
    let max_name_w = (f64::from(spec.width.pixels()) * 0.4) as i32;
    let names: Vec<String> = runs.iter().map(|(name, _)| shorten(name, max_name_w)).collect();
    let ticks = names.iter().enumerate().map(|(i, s)| ((n - 1 - i) as f64, s.clone())).collect();
    let y = Axis::fixed(-0.6, n as f64 - 0.4, ticks, "", false);
    let max_total = runs.iter().map(|r| r.1.total_j()).fold(0.0, f64::max);
    let x_desc = "energy per request (J)";
    // Room after the longest bar for its total.
    let x = Axis::auto([0.0, max_total * 1.2], false, x_desc, XyFrame::x_ticks(spec)).ok_or(PlotError::NoData { figure })?;
    let legend: Vec<LegendEntry> =
        PARTS.iter().enumerate().map(|(k, p)| LegendEntry { label: (*p).into(), glyph: Glyph::Bar(part_colour(k).to_rgba()) }).collect();
    let bar_in = match spec.width {
        Width::Single => 0.24,
        Width::Double => 0.28,
    };
    let plot_h = (n as f64 * bar_in).max(0.9);
    let frame = XyFrame::new(spec, &x, &y, &legend, plot_h);
    let fig = BreakdownFigure { spec: spec.clone(), x, y, runs, legend, frame };
    render(path, spec, &fig)
}

fn shorten(name: &str, max_w: i32) -> String {
    let f = font(TICK_PT);
    if text_size(name, &f).0 <= max_w {
        return name.to_string();
    }
    let mut s: Vec<char> = name.chars().collect();
    while !s.is_empty() && text_size(&format!("{}…", s.iter().collect::<String>()), &f).0 > max_w {
        s.pop();
    }
    format!("{}…", s.into_iter().collect::<String>())
}

/// Total with (at most) three significant digits.
fn fmt_total(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let d = (2 - v.abs().log10().floor() as i32).clamp(0, 9) as usize;
    let s = format!("{v:.d$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

struct BreakdownFigure<'a> {
    spec: FigureSpec,
    x: Axis,
    y: Axis,
    runs: &'a [(String, EnergyBreakdown)],
    legend: Vec<LegendEntry>,
    frame: XyFrame,
}

impl Figure for BreakdownFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (self.frame.w as u32, self.frame.h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let body = self.frame.decorate(root, &self.spec, &self.legend)?;
        let chart = self.frame.chart(&body, &self.x, &self.y)?;
        let area = chart.plotting_area();
        let n = self.runs.len();
        let half = 0.32;
        let sep = WHITE.stroke_width(px(0.4) as u32);
        for (i, (_, b)) in self.runs.iter().enumerate() {
            let c = (n - 1 - i) as f64;
            let mut x0 = 0.0;
            for (k, v) in b.parts().into_iter().enumerate() {
                if v > 0.0 {
                    let corners = [(x0, c - half), (x0 + v, c + half)];
                    area.draw(&Rectangle::new(corners, part_colour(k).filled())).msg()?;
                    area.draw(&Rectangle::new(corners, sep)).msg()?;
                }
                x0 += v;
            }
            let style = TextStyle::from(font(ANNOT_PT)).pos(Pos::new(HPos::Left, VPos::Center));
            let elem = EmptyElement::at((x0, c)) + Text::new(fmt_total(x0), (px(2.0), 0), style);
            area.draw(&elem).msg()?;
        }
        Ok(())
    }
}
