//! Renders every figure kind to SVG and PNG from small synthetic recorded-run data and checks
//! the files: SVG with real text elements carrying the axis labels and legend entries, PNG with
//! the paper width at 300 dpi and non-trivial content. Set `BASIN_PLOT_LOOK_DIR` to also keep
//! the PNGs there for a visual check.

use std::path::{Path, PathBuf};

use basin::plot::{
    EnergyBreakdown, FigureSpec, Format, Panel, ParetoPoint, PlotError, Width, energy_breakdown_figure, latency_cdf_figure, lines_figure,
    pareto_figure, pareto_figure_groups, timeseries_figure,
};

/// Renders `draw` as `<name>.svg` and `<name>.png` (and at double width as `<name>_wide.png`),
/// checks them and returns the SVG text.
fn render_both(dir: &Path, name: &str, expected_text: &[&str], draw: impl Fn(&Path, &FigureSpec) -> basin::plot::Result<()>) -> String {
    let svg_path = dir.join(format!("{name}.svg"));
    draw(&svg_path, &FigureSpec::for_path(&svg_path, Width::Single).unwrap()).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg"), "{name}: not an SVG document");
    assert!(svg.trim_end().ends_with("</svg>"), "{name}: SVG not closed");
    assert!(svg.contains("width=\"3.5in\""), "{name}: SVG lacks its printed width");
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    for t in expected_text {
        assert!(
            svg.contains(&format!(">\n{t}\n</text>")) || svg.contains(&format!(">{t}</text>")),
            "{name}: SVG lacks a text element {t:?}"
        );
    }
    if let Some(look) = std::env::var_os("BASIN_PLOT_LOOK_DIR") {
        std::fs::copy(&svg_path, Path::new(&look).join(format!("{name}.svg"))).unwrap();
    }
    for (width, suffix, px) in [(Width::Single, "", 1050), (Width::Double, "_wide", 2100)] {
        let png_path = dir.join(format!("{name}{suffix}.png"));
        draw(&png_path, &FigureSpec::new(width, Format::Png)).unwrap();
        check_png(&png_path, px);
        if let Some(look) = std::env::var_os("BASIN_PLOT_LOOK_DIR") {
            std::fs::copy(&png_path, Path::new(&look).join(format!("{name}{suffix}.png"))).unwrap();
        }
    }
    // Nothing but the figures is left behind (the temporary files were renamed).
    for entry in std::fs::read_dir(dir).unwrap() {
        let n = entry.unwrap().file_name().into_string().unwrap();
        assert!(!n.starts_with('.'), "temporary file {n} left behind");
    }
    svg
}

fn check_png(path: &Path, width: u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}: no PNG signature", path.display());
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!(info.width, width, "{}: width", path.display());
    assert!(info.height > width / 5 && info.height < width * 3, "{}: odd height {}", path.display(), info.height);
    let dims = info.pixel_dims.expect("pHYs chunk");
    assert_eq!(dims.xppu, 11811, "300 dpi in pixels per metre");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let data = &buf[..frame.buffer_size()];
    let mut colours: Vec<[u8; 3]> = data.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
    let dark = colours.iter().filter(|c| c.iter().all(|&v| v < 80)).count();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 20, "{}: only {} colours", path.display(), colours.len());
    // Text and axes: a visible share of dark pixels, yet mostly white background.
    let n = data.len() / 3;
    assert!(dark > n / 1000 && dark < n / 5, "{}: {dark} dark pixels of {n}", path.display());
}

fn pareto_points() -> Vec<ParetoPoint> {
    // A 5 x 4 sweep: energy falls and latency rises with the batching delay.
    let mut pts = vec![];
    for i in 0..5 {
        for j in 0..4 {
            let (fi, fj) = (f64::from(i), f64::from(j));
            let x = 0.9 - 0.12 * fi + 0.05 * fj + 0.01 * (fi * fj).sin();
            let y = 20.0 + 14.0 * fi + 9.0 * fj;
            let mut p = ParetoPoint::new(x, y, j == 0);
            p.x_err = Some(0.015 + 0.002 * fj);
            p.y_err = Some(1.5 + 0.3 * fi);
            pts.push(p);
        }
    }
    let mut base = ParetoPoint::new(1.0, 18.0, true);
    base.is_baseline = true;
    base.label = Some("open loop".into());
    pts.push(base);
    pts[8].label = Some("δ = 2 ms".into());
    pts
}

#[test]
fn pareto_figure_renders() {
    let dir = tempfile::tempdir().unwrap();
    let pts = pareto_points();
    let svg = render_both(
        dir.path(),
        "pareto",
        &["energy per request (J)", "p99 latency (ms)", "all runs", "threshold controller", "open-loop baseline", "open loop"],
        |p, s| pareto_figure(p, s, &pts, "energy per request (J)", "p99 latency (ms)", Some("threshold controller")),
    );
    assert!(svg.contains("<polygon"), "markers are polygons");
}

#[test]
fn pareto_groups_figure_renders() {
    let dir = tempfile::tempdir().unwrap();
    let a = pareto_points();
    let b: Vec<ParetoPoint> = a.iter().map(|p| ParetoPoint { x: p.x * 1.3, y: p.y * 0.8 + 5.0, label: None, ..p.clone() }).collect();
    let groups = vec![("ResNet-50, Azure trace".to_string(), a), ("BERT, Poisson".to_string(), b)];
    render_both(
        dir.path(),
        "pareto_groups",
        &["carbon per request (mg CO₂e)", "accuracy (%)", "ResNet-50, Azure trace", "BERT, Poisson", "open-loop baseline"],
        |p, s| pareto_figure_groups(p, s, &groups, "carbon per request (mg CO₂e)", "accuracy (%)"),
    );
}

#[test]
fn timeseries_figure_renders() {
    let dir = tempfile::tempdir().unwrap();
    let t: Vec<f64> = (0..600).map(|k| f64::from(k) * 0.5).collect();
    let series = |f: &dyn Fn(f64) -> f64| t.iter().map(|&t| (t, f(t))).collect::<Vec<_>>();
    let arrivals = series(&|t| 120.0 + 80.0 * (t / 40.0).sin());
    let admitted = series(&|t| (120.0 + 80.0 * (t / 40.0).sin()).min(150.0));
    let mut queue = series(&|t| (20.0 * (t / 25.0).sin()).max(0.0).floor());
    queue[100].1 = f64::NAN; // a gap in the record
    let panels = vec![
        Panel { y_label: "arrival rate (req/s)".into(), series: vec![("offered".into(), arrivals), ("admitted".into(), admitted)] },
        Panel { y_label: "threshold τ(t)".into(), series: vec![("τ".into(), series(&|t| 0.5 + 0.3 * (t / 60.0).cos()))] },
        Panel { y_label: "queue length (requests)".into(), series: vec![("queue".into(), queue)] },
        Panel {
            y_label: "power (W)".into(),
            series: vec![
                ("GPU".into(), series(&|t| 180.0 + 60.0 * (t / 40.0).sin())),
                ("CPU".into(), series(&|t| 45.0 + 5.0 * (t / 10.0).sin())),
            ],
        },
        Panel { y_label: "carbon intensity (gCO₂/kWh)".into(), series: vec![("grid".into(), series(&|t| 320.0 - 0.2 * t))] },
    ];
    render_both(
        dir.path(),
        "timeseries",
        &["time (s)", "arrival rate (req/s)", "threshold τ(t)", "offered", "admitted", "GPU", "carbon intensity (gCO₂/kWh)"],
        |p, s| timeseries_figure(p, s, "time (s)", &panels),
    );
}

fn cdf(median_ms: f64, spread: f64) -> Vec<(f64, f64)> {
    // Log-logistic CDF sampled on a grid of latencies.
    (1..400)
        .map(|k| {
            let l = 0.5 * f64::from(k);
            (l, 1.0 / (1.0 + (l / median_ms).powf(-spread)))
        })
        .collect()
}

#[test]
fn latency_cdf_figure_renders() {
    let dir = tempfile::tempdir().unwrap();
    let runs = vec![
        ("open loop".to_string(), cdf(12.0, 4.0)),
        ("threshold".to_string(), cdf(20.0, 6.0)),
        ("PI controller".to_string(), cdf(30.0, 3.0)),
        ("oracle".to_string(), cdf(16.0, 8.0)),
    ];
    for log_x in [false, true] {
        let name = if log_x { "cdf_log" } else { "cdf" };
        render_both(dir.path(), name, &["latency (ms)", "fraction of requests", "open loop", "PI controller"], |p, s| {
            latency_cdf_figure(p, s, &runs, log_x)
        });
    }
}

#[test]
fn energy_breakdown_figure_renders() {
    let dir = tempfile::tempdir().unwrap();
    let runs = vec![
        ("open loop".to_string(), EnergyBreakdown { active_j: 0.62, idle_j: 0.31, early_exit_j: 0.0 }),
        ("threshold, δ = 2 ms".to_string(), EnergyBreakdown { active_j: 0.48, idle_j: 0.18, early_exit_j: 0.07 }),
        ("PI controller".to_string(), EnergyBreakdown { active_j: 0.41, idle_j: 0.12, early_exit_j: 0.11 }),
        (
            "a run whose name is far too long to fit beside the bars".to_string(),
            EnergyBreakdown { active_j: 0.3, idle_j: 0.1, early_exit_j: 0.2 },
        ),
    ];
    let svg = render_both(
        dir.path(),
        "breakdown",
        &["energy per request (J)", "active", "idle", "early exit", "open loop", "threshold, δ = 2 ms", "0.93"],
        |p, s| energy_breakdown_figure(p, s, &runs),
    );
    assert!(svg.contains('…'), "the long name is shortened");
}

#[test]
fn lines_figure_renders_linear_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let batch: Vec<f64> = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0].to_vec();
    let series = vec![
        ("p50 latency".to_string(), batch.iter().map(|&b| (b, 3.0 + 0.8 * b)).collect()),
        ("p99 latency".to_string(), batch.iter().map(|&b| (b, 6.0 + 1.9 * b)).collect::<Vec<_>>()),
    ];
    render_both(dir.path(), "lines", &["batch size", "latency (ms)", "p50 latency", "p99 latency"], |p, s| {
        lines_figure(p, s, "batch size", "latency (ms)", &series, false, false)
    });
    render_both(dir.path(), "lines_loglog", &["batch size", "latency (ms)", "1", "10"], |p, s| {
        lines_figure(p, s, "batch size", "latency (ms)", &series, true, true)
    });
}

#[test]
fn bad_inputs_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("fig.gif");
    assert!(matches!(FigureSpec::for_path(&gif, Width::Single), Err(PlotError::UnknownFormat { .. })));

    let png = dir.path().join("fig.png");
    let spec = FigureSpec::new(Width::Single, Format::Png);
    let empty: Vec<(String, Vec<(f64, f64)>)> = vec![("x".into(), vec![(f64::NAN, 1.0)])];
    assert!(matches!(lines_figure(&png, &spec, "x", "y", &empty, false, false), Err(PlotError::NoData { .. })));
    let negative = vec![("x".to_string(), vec![(-1.0, 2.0), (0.0, 3.0)])];
    assert!(matches!(lines_figure(&png, &spec, "x", "y", &negative, true, false), Err(PlotError::NoData { .. })));

    let bad_cdf = vec![("run a".to_string(), vec![(1.0, 0.5), (2.0, 1.5)])];
    let err = latency_cdf_figure(&png, &spec, &bad_cdf, false).unwrap_err();
    assert!(err.to_string().contains("run a"), "{err}");

    let bad = vec![("run b".to_string(), EnergyBreakdown { active_j: -1.0, idle_j: 0.0, early_exit_j: 0.0 })];
    let err = energy_breakdown_figure(&png, &spec, &bad).unwrap_err();
    assert!(matches!(err, PlotError::InvalidData { .. }) && err.to_string().contains("run b"), "{err}");

    let missing: PathBuf = dir.path().join("no/such/dir/fig.png");
    let ok = vec![("x".to_string(), vec![(1.0, 2.0), (2.0, 3.0)])];
    let err = lines_figure(&missing, &spec, "x", "y", &ok, false, false).unwrap_err();
    assert!(matches!(err, PlotError::Io { .. }) && err.to_string().contains("no/such/dir"), "{err}");
    assert!(!png.exists(), "no figure is written on error");
}

#[test]
fn rendering_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let pts = pareto_points();
    let mut outputs = vec![];
    for name in ["a.png", "b.png", "a.svg", "b.svg"] {
        let path = dir.path().join(name);
        let spec = FigureSpec::for_path(&path, Width::Single).unwrap();
        pareto_figure(&path, &spec, &pts, "x (J)", "y (ms)", None).unwrap();
        outputs.push(std::fs::read(&path).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[2], outputs[3]);
}
