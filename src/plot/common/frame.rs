//! The frame of a single x–y chart: title, legend strip, axes with labels, grid.

use super::*;

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
        let legend_h = if legend.is_empty() { 0 } else { legend.height() + px(2.0) };
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
