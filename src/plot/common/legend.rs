//! The legend: entries and their glyphs, laid out in a strip above the plot.

use super::*;

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
    /// No entries: no strip is drawn.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

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
