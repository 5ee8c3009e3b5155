//! Publication figures rendered with [plotters], as SVG or PNG, at paper sizes.
//!
//! Every figure is drawn from plain Rust data handed in by the caller (`basin plot` reads the
//! recorded outputs and calls these functions; nothing here looks at a simulation in memory).
//!
//! Conventions shared by all figure kinds:
//! - **Size.** A figure is one journal column wide ([`Width::Single`], 3.5 in) or the full
//!   page width ([`Width::Double`], 7 in). Coordinates are pixels at [`DPI`] = 300, so a PNG of
//!   a single-column figure is 1050 px wide (and carries a 300 dpi `pHYs` chunk); an SVG uses
//!   the same pixel grid as its `viewBox` with `width`/`height` given in inches, so it prints
//!   at the intended size. Heights depend on the figure kind (and grow with the legend).
//! - **Type.** Text sizes are in points at the printed size (7 pt ticks and legends, 8 pt axis
//!   labels, 9 pt titles). Glyphs come from DejaVu Sans embedded in the binary (the `dejavu`
//!   crate), registered once with plotters under the family `sans-serif`: no system font is
//!   looked up. SVG text stays real `<text>` elements (family `sans-serif`).
//! - **Colour.** The Okabe–Ito palette, designed to stay distinguishable under the common
//!   colour-vision deficiencies (M. Okabe and K. Ito, "Color Universal Design (CUD): How to
//!   make figures and presentations that are friendly to colorblind people", 2008,
//!   <https://jfly.uni-koeln.de/color/>). Lines additionally differ by dash pattern and markers
//!   by shape, so figures also survive greyscale printing.
//! - **Files.** A figure is rendered in memory, written to a temporary file in the destination
//!   directory and renamed over the destination, so a reader never sees a half-written file.

mod common;

pub mod breakdown;
pub mod cdf;
pub mod landscape;
pub mod lines;
pub mod pareto;
pub mod timeseries;

pub use breakdown::{EnergyBreakdown, energy_breakdown_figure};
pub use cdf::latency_cdf_figure;
pub use landscape::{LandscapeCell, LandscapeData, landscape_figure};
pub use lines::lines_figure;
pub use pareto::{ParetoPoint, pareto_figure, pareto_figure_groups};
pub use timeseries::{Panel, timeseries_figure};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

/// Pixels per inch of the drawing grid (PNG resolution; SVG `viewBox` units per inch).
pub const DPI: u32 = 300;

/// The Okabe–Ito colour-blind-safe palette (Okabe & Ito 2008), in its canonical order:
/// orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple, black.
pub const OKABE_ITO: [RGBColor; 8] = [
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xF0, 0xE4, 0x42),
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x00, 0x00, 0x00),
];

/// Colour of the `i`-th data series: the Okabe–Ito colours reordered so that consecutive series
/// contrast strongly, with yellow (too light for thin lines on white) left out.
pub fn series_colour(i: usize) -> RGBColor {
    const ORDER: [usize; 7] = [4, 5, 2, 0, 6, 1, 7];
    OKABE_ITO[ORDER[i % ORDER.len()]]
}

/// Output file format, chosen from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// `.svg` or `.png` (any case); anything else is an [`PlotError::UnknownFormat`].
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
            Some(e) if e == "svg" => Ok(Format::Svg),
            Some(e) if e == "png" => Ok(Format::Png),
            _ => Err(PlotError::UnknownFormat { path: path.to_path_buf() }),
        }
    }
}

/// Printed width of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// One column of a two-column paper: 3.5 in.
    Single,
    /// The full text width: 7 in.
    Double,
}

impl Width {
    pub fn inches(self) -> f64 {
        match self {
            Width::Single => 3.5,
            Width::Double => 7.0,
        }
    }

    /// Width in pixels at [`DPI`].
    pub fn pixels(self) -> u32 {
        (self.inches() * f64::from(DPI)).round() as u32
    }
}

/// What every figure function needs besides its data.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureSpec {
    pub width: Width,
    pub format: Format,
    /// Optional title drawn above the plot (papers usually leave it to the caption).
    pub title: Option<String>,
}

impl FigureSpec {
    pub fn new(width: Width, format: Format) -> Self {
        FigureSpec { width, format, title: None }
    }

    /// The format taken from `path`'s extension.
    pub fn for_path(path: &Path, width: Width) -> Result<Self> {
        Ok(Self::new(width, Format::from_path(path)?))
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
}

/// Errors from drawing or writing a figure; each names the file or the figure concerned.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: unsupported figure format (expected a .svg or .png file name)")]
    UnknownFormat { path: PathBuf },
    #[error("{figure}: no finite data to plot")]
    NoData { figure: &'static str },
    #[error("{figure}: {message}")]
    InvalidData { figure: &'static str, message: String },
    #[error("cannot register the embedded DejaVu Sans font with plotters")]
    Font,
    #[error("{path}: drawing failed: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("{path}: PNG encoding failed: {message}")]
    Png { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = PlotError> = std::result::Result<T, E>;

/// Registers DejaVu Sans (embedded by the `dejavu` crate) as the plotters family
/// `sans-serif`, once per process. Every figure function calls this first.
pub fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// A figure that can draw itself on any plotters backend.
pub(crate) trait Figure {
    /// Size of the whole figure in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws onto `root` (already filled white); errors are plotters' messages.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Renders `fig` in memory in `spec.format` and writes it atomically to `path`.
pub(crate) fn render(path: &Path, spec: &FigureSpec, fig: &impl Figure) -> Result<()> {
    let (w, h) = fig.size();
    let draw_err = |message: String| PlotError::Draw { path: path.to_path_buf(), message };
    let bytes = match spec.format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
                fig.draw(&root).map_err(draw_err)?;
                root.present().map_err(|e| draw_err(e.to_string()))?;
            }
            // Physical size in inches; the viewBox keeps the 300-per-inch drawing grid.
            let dpi = f64::from(DPI);
            let svg = svg.replacen(
                &format!("width=\"{w}\" height=\"{h}\""),
                &format!("width=\"{}in\" height=\"{}in\"", f64::from(w) / dpi, f64::from(h) / dpi),
                1,
            );
            svg.into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
                fig.draw(&root).map_err(draw_err)?;
                root.present().map_err(|e| draw_err(e.to_string()))?;
            }
            encode_png(&rgb, w, h).map_err(|e| PlotError::Png { path: path.to_path_buf(), message: e.to_string() })?
        }
    };
    write_atomic(path, &bytes)
}

/// 8-bit RGB PNG with a `pHYs` chunk saying [`DPI`] (so LaTeX and viewers get the size right).
fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let per_metre = (f64::from(DPI) / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions { xppu: per_metre, yppu: per_metre, unit: png::Unit::Meter }));
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_err = |p: &Path, source| PlotError::Io { path: p.to_path_buf(), source };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io_err(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name")))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })()
    .map_err(|e| io_err(&tmp, e))
    .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io_err(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
