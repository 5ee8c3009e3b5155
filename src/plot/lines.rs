//! A general line chart: one line per named series, each with its own colour, dash pattern and
//! (for short series) marker shape. Used for sweeps such as latency and energy per request
//! against batch size, or the efficiency boundary against arrival rate, and by the latency CDF.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{Axis, LINE_PT, LegendEntry, XyFrame, draw_line, draw_marker, px, segments, series_dash, series_shape};
use super::{Figure, FigureSpec, PlotError, Result, ensure_font, render, series_colour};

/// Series with at most this many points get markers on their lines.
const MARKER_MAX_POINTS: usize = 30;

/// Plotting-area height of a single x–y chart, inches.
pub(crate) fn plot_height_in(spec: &FigureSpec) -> f64 {
    match spec.width {
        super::Width::Single => 1.75,
        super::Width::Double => 2.4,
    }
}

/// Draws `series` (name, points) as lines against shared axes. Non-finite points (and
/// non-positive ones on a log axis) break the line. A legend appears when there is more than
/// one series or the one series is named.
pub fn lines_figure(
    path: &Path,
    spec: &FigureSpec,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_x: bool,
    log_y: bool,
) -> Result<()> {
    ensure_font()?;
    let fig = LinesFigure::new(spec, x_label, y_label, series, log_x, log_y, None, true, "line figure")?;
    render(path, spec, &fig)
}

pub(crate) struct LinesFigure<'a> {
    spec: FigureSpec,
    x: Axis,
    y: Axis,
    series: &'a [(String, Vec<(f64, f64)>)],
    legend: Vec<LegendEntry>,
    frame: XyFrame,
    markers: bool,
}

impl<'a> LinesFigure<'a> {
    /// `y_fixed` overrides the automatic y axis (the CDF's 0–1 axis).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        spec: &FigureSpec,
        x_label: &str,
        y_label: &str,
        series: &'a [(String, Vec<(f64, f64)>)],
        log_x: bool,
        log_y: bool,
        y_fixed: Option<Axis>,
        markers: bool,
        figure: &'static str,
    ) -> Result<Self> {
        let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
        let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
        let x = Axis::auto(xs, log_x, x_label, XyFrame::x_ticks(spec)).ok_or(PlotError::NoData { figure })?;
        let y = match y_fixed {
            Some(y) => y,
            None => Axis::auto(ys, log_y, y_label, 6).ok_or(PlotError::NoData { figure })?,
        };
        let named = series.len() > 1 || series.iter().any(|s| !s.0.is_empty());
        let legend = if named {
            series
                .iter()
                .enumerate()
                .map(|(i, (name, pts))| LegendEntry::series(name, i, markers && pts.len() <= MARKER_MAX_POINTS))
                .collect()
        } else {
            vec![]
        };
        let frame = XyFrame::new(spec, &x, &y, &legend, plot_height_in(spec));
        Ok(LinesFigure { spec: spec.clone(), x, y, series, legend, frame, markers })
    }
}

impl Figure for LinesFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (self.frame.w as u32, self.frame.h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let body = self.frame.decorate(root, &self.spec, &self.legend)?;
        let mut chart = self.frame.chart(&body, &self.x, &self.y)?;
        for (i, (_, pts)) in self.series.iter().enumerate() {
            let colour = series_colour(i).to_rgba();
            for seg in segments(pts, &self.x, &self.y) {
                draw_line(&mut chart, seg, colour, LINE_PT, series_dash(i))?;
            }
            if self.markers && pts.len() <= MARKER_MAX_POINTS {
                for seg in segments(pts, &self.x, &self.y) {
                    for p in seg {
                        let area = chart.plotting_area();
                        draw_marker(area, p, series_shape(i), px(2.0) as f64, colour, colour)?;
                    }
                }
            }
        }
        Ok(())
    }
}
