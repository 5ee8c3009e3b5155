//! Latency CDFs of several runs on one chart: for each run, the fraction of requests whose
//! latency is at most x. The caller supplies the empirical CDF points (latency in ms,
//! cumulative fraction in [0, 1]), e.g. from a run's recorded latency histogram.

use std::path::Path;

use super::common::Axis;
use super::lines::LinesFigure;
use super::{FigureSpec, PlotError, Result, ensure_font, render};

/// Draws one CDF line per run (name, points of (latency_ms, cumulative fraction)), optionally
/// with a logarithmic latency axis (which then ignores non-positive latencies).
pub fn latency_cdf_figure(path: &Path, spec: &FigureSpec, runs: &[(String, Vec<(f64, f64)>)], log_x: bool) -> Result<()> {
    ensure_font()?;
    if let Some((name, _)) = runs.iter().find(|(_, pts)| pts.iter().any(|&(_, f)| f.is_finite() && !(-1e-9..=1.0 + 1e-9).contains(&f))) {
        return Err(PlotError::InvalidData {
            figure: "latency CDF",
            message: format!("run {name:?} has a cumulative fraction outside [0, 1]"),
        });
    }
    let y_label = "fraction of requests";
    let ticks = (0..=5).map(|k| (k as f64 * 0.2, format!("{:.1}", k as f64 * 0.2))).collect();
    let y = Axis::fixed(-0.02, 1.02, ticks, y_label, true);
    let fig = LinesFigure::new(spec, "latency (ms)", y_label, runs, log_x, false, Some(y), false, "latency CDF")?;
    render(path, spec, &fig)
}
