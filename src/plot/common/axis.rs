//! Axes: range, tick placement (linear and log) and tick labels.

use super::*;

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
