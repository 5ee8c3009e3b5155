//! Shared drawing machinery: point-based sizes, axes with our own tick placement and
//! labels, markers drawn as polygons, a legend laid out in a strip above the plot (so it
//! never hides data), and the frame of a single x–y chart.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{DPI, FigureSpec, series_colour};

mod axis;
mod frame;
mod legend;
mod marker;

pub(crate) use axis::*;
pub(crate) use frame::*;
pub(crate) use legend::*;
pub(crate) use marker::*;

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
