//! Markers drawn as polygons, and dashed or solid data lines.

use super::*;

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
