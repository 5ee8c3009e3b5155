//! The quality tables and everything written under `calibration/<host-id>/`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::config::{CalConfig, QualityConfig};
use super::measure::thin;
use super::{Calibration, gpu_models, nvidia_driver};
use crate::io::manifest::{BASIN_VERSION, GIT_REVISION, Host, now_rfc3339};
use crate::io::outputs::write_dir_atomic;
use crate::spec::BackendKind;

/// Per-sample quality recomputed by basin, and its check against a reference table.
#[derive(Clone, Debug, Default)]
pub struct QualityResult {
    /// (sample, model, confidence, correct).
    pub rows: Vec<(u32, String, f32, bool)>,
    pub summary: QualitySummary,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct QualitySummary {
    pub test_csv: String,
    pub test_csv_sha256: String,
    pub backend: String,
    /// model → accuracy on the test split.
    pub accuracy: BTreeMap<String, f64>,
    pub mean_confidence: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<QualityCheck>,
}

/// How the recomputed table compares with the reference (e.g. build_models' quality.csv).
#[derive(Clone, Debug, Default, Serialize)]
pub struct QualityCheck {
    pub reference: String,
    pub reference_sha256: String,
    pub rows_compared: usize,
    pub rows_missing_in_reference: usize,
    pub correct_mismatches: usize,
    pub max_abs_confidence_diff: f64,
    /// Equal `correct` everywhere and confidences within 2e-6 (both are printed with 6 decimals).
    pub equal: bool,
}

/// Runs each quality model on the test split through ONNX Runtime (one batch of all samples)
/// and scores it: confidence = the largest class probability, correct = argmax == label.
#[cfg(feature = "ort")]
pub fn recompute_quality(file: &Path, cfg: &CalConfig, q: &QualityConfig, models: &[(String, PathBuf)]) -> Result<QualityResult> {
    use crate::hw::backend::onnx::{OrtBackend, OrtOptions};
    use crate::hw::backend::{InferenceBackend, InputData, Tensor, TensorData};
    use crate::io::tables::Csv;
    let test = super::config::expand(file, &q.test_csv)?;
    let csv = Csv::read(&test).with_context(|| format!("{}: `quality.test_csv`", file.display()))?;
    let (s_col, l_col) = (csv.require("sample")?, csv.require("label")?);
    let px: Vec<usize> = (0..).map_while(|i| csv.col(&format!("px{i}"))).collect();
    if px.is_empty() {
        anyhow::bail!("{}: no pixel columns px0, px1, ... (quality.test_csv)", test.display());
    }
    let mut samples = Vec::with_capacity(csv.rows.len());
    let mut labels = Vec::with_capacity(csv.rows.len());
    let mut data = Vec::with_capacity(csv.rows.len() * px.len());
    for (line, cells) in &csv.rows {
        samples.push(cells[s_col].parse::<u32>().map_err(|_| csv.err(*line, "`sample` is not a non-negative integer"))?);
        labels.push(cells[l_col].parse::<usize>().map_err(|_| csv.err(*line, "`label` is not a class index"))?);
        for &c in &px {
            data.push(csv.num(*line, cells, c)? as f32);
        }
    }
    let o = cfg.backends.onnxruntime.clone().unwrap_or_default();
    let lib = super::ort_library(file, o.library.as_deref())?;
    let mut res = QualityResult::default();
    for name in &q.models {
        let path = &models.iter().find(|(m, _)| m == name).context("quality model not in models")?.1;
        let opts = OrtOptions { threads: o.threads, ..OrtOptions::default() };
        let mut b = OrtBackend::open(&lib, path, opts).with_context(|| format!("quality: opening `{name}`"))?;
        let spec = b.inputs().first().cloned().with_context(|| format!("quality: model `{name}` has no inputs"))?;
        let input =
            InputData { tensors: vec![Tensor::new(spec.name.clone(), vec![samples.len(), px.len()], TensorData::F32(data.clone()))] };
        b.set_inputs(&input)
            .with_context(|| format!("quality: model `{name}` on {} ({} features per sample)", test.display(), px.len()))?;
        let out = b.infer().with_context(|| format!("quality: running `{name}`"))?;
        let (mut hits, mut conf_sum) = (0usize, 0.0f64);
        for (i, (&s, &label)) in samples.iter().zip(&labels).enumerate() {
            let (pred, conf) = (out.argmax(i), out.confidence(i));
            hits += usize::from(pred == label);
            conf_sum += f64::from(conf);
            res.rows.push((s, name.clone(), conf, pred == label));
        }
        res.summary.accuracy.insert(name.clone(), hits as f64 / samples.len() as f64);
        res.summary.mean_confidence.insert(name.clone(), conf_sum / samples.len() as f64);
        res.summary.backend = b.info().version.clone();
    }
    res.summary.test_csv = test.display().to_string();
    res.summary.test_csv_sha256 = crate::io::experiment::sha256_file(&test).unwrap_or_default();
    if let Some(r) = &q.reference {
        let p = super::config::expand(file, r)?;
        let reference = Csv::read(&p).with_context(|| format!("{}: `quality.reference`", file.display()))?;
        let (rs, rm, rc, rk) =
            (reference.require("sample")?, reference.require("model")?, reference.require("confidence")?, reference.require("correct")?);
        let mut map = BTreeMap::new();
        for (line, cells) in &reference.rows {
            map.insert((cells[rm].clone(), cells[rs].clone()), (reference.num(*line, cells, rc)?, reference.bool(*line, cells, rk)?));
        }
        let mut chk = QualityCheck {
            reference: p.display().to_string(),
            reference_sha256: crate::io::experiment::sha256_file(&p).unwrap_or_default(),
            ..QualityCheck::default()
        };
        for (s, m, conf, correct) in &res.rows {
            match map.get(&(m.clone(), s.to_string())) {
                None => chk.rows_missing_in_reference += 1,
                Some((rconf, rcorrect)) => {
                    chk.rows_compared += 1;
                    chk.correct_mismatches += usize::from(rcorrect != correct);
                    let printed: f64 = format!("{conf:.6}").parse().unwrap_or(f64::NAN);
                    chk.max_abs_confidence_diff = chk.max_abs_confidence_diff.max((printed - rconf).abs());
                }
            }
        }
        chk.equal = chk.rows_missing_in_reference == 0 && chk.correct_mismatches == 0 && chk.max_abs_confidence_diff <= 2e-6;
        if !chk.equal {
            tracing::warn!(
                "quality: the recomputed table differs from {}: {} correct mismatches, max |confidence diff| {:.2e}, {} rows missing",
                chk.reference,
                chk.correct_mismatches,
                chk.max_abs_confidence_diff,
                chk.rows_missing_in_reference
            );
        }
        res.summary.check = Some(chk);
    }
    Ok(res)
}

#[cfg(not(feature = "ort"))]
pub fn recompute_quality(_: &Path, _: &CalConfig, _: &QualityConfig, _: &[(String, PathBuf)]) -> Result<QualityResult> {
    Err(anyhow::anyhow!(
        "`[quality]` runs the models through ONNX Runtime, but basin was built without the `ort` feature; rebuild with --features ort,triton"
    ))
}

/// A cell without the CSV separator (basin's CSV reader has no quoting).
fn cell(s: &str) -> String {
    s.replace(',', ";")
}

fn f(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { String::new() }
}
fn fe(v: f64) -> String {
    if v.is_finite() { format!("{v:.9}") } else { String::new() }
}

pub const COST_HEADER: &str = "model,backend,device,batch_size,latency_ms,energy_j,latency_min_ms,latency_p50_ms,latency_p90_ms,latency_p95_ms,latency_p99_ms,latency_max_ms,samples_path,energy_estimated,repetitions,latency_std_ms,mean_power_w,meter";

/// The samples file of a row, relative to the output folder.
pub fn samples_rel(model: &str, backend: &str, b: u32) -> String {
    format!("samples/{model}-{backend}-b{b}.txt")
}

/// `cost.csv` text: a plain CSV, header first (its provenance is in `manifest.toml`, see
/// [`table_notes`]).
pub fn cost_csv(cal: &Calibration) -> String {
    let mut s = format!("{COST_HEADER}\n");
    for m in &cal.measured {
        let p = &m.point;
        let st = &p.stats;
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            m.model,
            m.backend,
            m.device,
            p.batch_size,
            f(st.mean_ms),
            fe(p.energy_per_batch_j()),
            f(st.min_ms),
            f(st.p50_ms),
            f(st.p90_ms),
            f(st.p95_ms),
            f(st.p99_ms),
            f(st.max_ms),
            samples_rel(&m.model, &m.backend, p.batch_size),
            m.estimated,
            p.batches(),
            f(st.std_ms),
            p.mean_power_w().map(f).unwrap_or_default(),
            cell(&m.meter),
        );
    }
    s
}

#[derive(Serialize)]
struct ManifestHost {
    id: String,
    hostname: String,
    os: String,
    kernel: String,
    arch: String,
    cpu_model: String,
    cpus: usize,
    memory_gib: Option<f64>,
    gpus: Vec<String>,
    nvidia_driver: String,
    /// NVML's report: driver, CUDA, and per GPU its clocks, power limit and memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    nvml: Option<crate::hw::meter::NvmlSystem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nvml_unavailable: Option<String>,
}

#[derive(Serialize)]
struct ManifestPoint {
    model: String,
    backend: String,
    device: String,
    batch_size: u32,
    repetitions: u64,
    warmup_batches: u32,
    windows: usize,
    stop: String,
    wall_s: f64,
    meter_read_s: f64,
    meter_overhead: f64,
}

#[derive(Serialize)]
struct ManifestIdle {
    device: String,
    backend: String,
    idle_power_w: f64,
    window_s: f64,
    estimated: bool,
    meter: String,
}

#[derive(Serialize)]
struct ManifestModel {
    name: String,
    path: String,
    sha256: String,
}

#[derive(Serialize)]
struct ManifestMeter {
    ort: Option<String>,
    triton: Option<String>,
    estimated: bool,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Manifest<'a> {
    mode: &'static str,
    basin_version: &'static str,
    git_revision: &'static str,
    config_file: String,
    command_line: &'a [String],
    started_at: &'a str,
    finished_at: String,
    wall_s: f64,
    /// The host speed probe over the whole calibration (`hw::probe`): its drift says whether the
    /// host's speed held while the tables were measured.
    host_probe: &'a crate::hw::probe::ProbeSummary,
    /// What each CSV of the folder holds: the CSVs themselves are plain (header first, no
    /// comment lines), so pandas and polars read them with defaults.
    tables: BTreeMap<&'static str, String>,
    host: ManifestHost,
    runtime: &'a super::RuntimeInfo,
    onnxruntime_threads: String,
    meter: ManifestMeter,
    /// Largest share of a point's measured time spent in meter reads.
    harness_meter_overhead_max: f64,
    idle: Vec<ManifestIdle>,
    /// With `[transport]`: the `[[server]] request_overhead_ms` to use per Triton model.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    request_overhead: Vec<ManifestOverhead>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    transport_notes: Vec<String>,
    models: Vec<ManifestModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<&'a QualitySummary>,
    points: Vec<ManifestPoint>,
    config: &'a CalConfig,
}

#[derive(Serialize)]
struct ManifestOverhead {
    model: String,
    backend: &'static str,
    request_overhead_ms: f64,
    how: &'static str,
}

/// `(model, request_overhead_ms)` per Triton model measured with `[transport]`.
pub fn request_overheads(cal: &Calibration) -> Vec<(String, f64)> {
    let mut models: Vec<&str> = cal.transport.iter().map(|p| p.model.as_str()).collect();
    models.dedup();
    models.into_iter().filter_map(|m| super::transport::overhead_ms(&cal.transport, m).map(|v| (m.to_string(), v))).collect()
}

/// The provenance of each table `write` makes, for `manifest.toml`.
fn table_notes(cal: &Calibration) -> BTreeMap<&'static str, String> {
    let estimated = if cal.measured.iter().any(|m| m.estimated) {
        " (ESTIMATED from CPU time where energy_estimated = true: a model, not a measurement)"
    } else {
        ""
    };
    let gpus =
        cal.nvml.as_ref().map(|n| n.gpus.iter().map(|g| format!("; GPU {}: {}", g.index, g.name)).collect::<String>()).unwrap_or_default();
    let mut t = BTreeMap::new();
    t.insert(
        "cost.csv",
        format!(
            "Measured by `basin calibrate` on {} ({}{gpus}), {}. energy_j = metered energy per batch{estimated}.",
            cal.host_id, cal.host.cpu_model, cal.started_at
        ),
    );
    t.insert(
        "devices.csv",
        "Idle power per device, measured with the backends loaded and no requests (estimated = true: not a measurement).".to_string(),
    );
    t.insert(
        "points.csv",
        "Per measured point: repetitions, windows, why measuring stopped, metered energy and the meter's own cost.".to_string(),
    );
    if !cal.triton_stats.is_empty() {
        t.insert(
            "triton_stats.csv",
            "Triton's own statistics (queue and compute durations) per model and batch size, beside the client's mean.".to_string(),
        );
    }
    if !cal.transport.is_empty() {
        t.insert("overhead.csv", "Triton measured as the replay uses it: per batch size b, rounds of b concurrent one-row requests (basin calibrate [transport]). overhead = client round trip - (server queue + execution service time) per request; use the model's median as [[server]] request_overhead_ms (see request_overhead).".to_string());
    }
    if cal.quality.is_some() {
        t.insert(
            "quality.csv",
            "Per test sample and model: the top-class confidence and whether the prediction is correct (1/0).".to_string(),
        );
    }
    t
}

fn manifest_toml(cal: &Calibration) -> Result<String> {
    let h: &Host = &cal.host;
    let meter_of = |b: &str| cal.measured.iter().find(|m| m.backend == b).map(|m| m.meter.clone());
    let models = cal
        .config
        .models
        .iter()
        .map(|(n, raw)| {
            let p = super::config::expand(&cal.config_file, raw).unwrap_or_else(|_| PathBuf::from(raw));
            ManifestModel {
                name: n.clone(),
                sha256: crate::io::experiment::sha256_file(&p).unwrap_or_default(),
                path: p.display().to_string(),
            }
        })
        .collect();
    let m = Manifest {
        mode: "calibrate",
        basin_version: BASIN_VERSION,
        git_revision: GIT_REVISION,
        config_file: cal.config_file.display().to_string(),
        command_line: &cal.command_line,
        started_at: &cal.started_at,
        finished_at: now_rfc3339(),
        wall_s: cal.wall_s,
        host_probe: &cal.host_probe,
        tables: table_notes(cal),
        host: ManifestHost {
            id: cal.host_id.clone(),
            hostname: h.hostname.clone(),
            os: h.os.clone(),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default(),
            arch: h.arch.clone(),
            cpu_model: h.cpu_model.clone(),
            cpus: h.cpus,
            memory_gib: h.memory_gib,
            gpus: gpu_models(),
            nvidia_driver: nvidia_driver().unwrap_or_else(|| "none (no /proc/driver/nvidia)".into()),
            nvml: cal.nvml.as_ref().ok().cloned(),
            nvml_unavailable: cal.nvml.as_ref().err().cloned(),
        },
        runtime: &cal.runtime,
        onnxruntime_threads: match cal.config.backends.onnxruntime.as_ref().map(|o| o.threads) {
            None => "n/a".into(),
            Some(0) => "default (one per physical core)".into(),
            Some(n) => n.to_string(),
        },
        meter: ManifestMeter {
            ort: meter_of(BackendKind::OnnxRuntime.name()),
            triton: meter_of(BackendKind::Triton.name()),
            estimated: cal.measured.iter().any(|m| m.estimated),
            notes: cal.meter_notes.clone(),
        },
        harness_meter_overhead_max: cal.measured.iter().map(|m| m.point.meter_overhead()).fold(0.0, f64::max),
        idle: cal
            .idle
            .iter()
            .map(|(d, ip, b)| ManifestIdle {
                device: d.clone(),
                backend: b.clone(),
                idle_power_w: ip.watts,
                window_s: ip.window_s,
                estimated: ip.estimated,
                meter: ip.meter_name.clone(),
            })
            .collect(),
        request_overhead: request_overheads(cal)
            .into_iter()
            .map(|(model, v)| ManifestOverhead {
                model,
                backend: BackendKind::Triton.name(),
                request_overhead_ms: v,
                how: "median over batch sizes of the per-round median of client round trip - (queue + compute), overhead.csv",
            })
            .collect(),
        transport_notes: cal.transport_notes.clone(),
        models,
        quality: cal.quality.as_ref().map(|q| &q.summary),
        points: cal
            .measured
            .iter()
            .map(|m| ManifestPoint {
                model: m.model.clone(),
                backend: m.backend.clone(),
                device: m.device.clone(),
                batch_size: m.point.batch_size,
                repetitions: m.point.batches(),
                warmup_batches: m.point.warmup_batches,
                windows: m.point.windows.len(),
                stop: m.point.stop.as_str().into(),
                wall_s: m.point.wall_s,
                meter_read_s: m.point.meter_read_s,
                meter_overhead: m.point.meter_overhead(),
            })
            .collect(),
        config: &cal.config,
    };
    Ok(format!(
        "# basin calibrate: provenance of the tables in this folder.\n{}",
        toml::to_string(&m).context("serialising manifest.toml")?
    ))
}

/// Writes the whole output folder atomically (nothing is left behind on error).
pub fn write(out: &Path, cal: &Calibration) -> Result<()> {
    write_dir_atomic(out, |dir| {
        let w = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).with_context(|| format!("cannot write {}", dir.join(name).display()))
        };
        std::fs::create_dir(dir.join("samples"))?;
        for m in &cal.measured {
            let mut s = String::new();
            for v in thin(&m.point.samples_ms, cal.config.measure_for(&m.model).samples_max) {
                let _ = writeln!(s, "{v:.4}");
            }
            w(&samples_rel(&m.model, &m.backend, m.point.batch_size), s)?;
        }
        w("cost.csv", cost_csv(cal))?;
        let mut d = String::from("name,idle_power_w,estimated,meter\n");
        for (dev, ip, _) in &cal.idle {
            let _ = writeln!(d, "{dev},{},{},{}", f(ip.watts), ip.estimated, cell(&ip.meter_name));
        }
        w("devices.csv", d)?;
        let mut p = String::from(
            "model,backend,device,batch_size,repetitions,warmup_batches,windows,stop,wall_s,energy_j,meter_elapsed_s,meter_read_s,meter_overhead\n",
        );
        for m in &cal.measured {
            let q = &m.point;
            let _ = writeln!(
                p,
                "{},{},{},{},{},{},{},{},{},{},{},{},{:.3e}",
                m.model,
                m.backend,
                m.device,
                q.batch_size,
                q.batches(),
                q.warmup_batches,
                q.windows.len(),
                q.stop.as_str(),
                f(q.wall_s),
                fe(q.energy_j),
                f(q.meter_elapsed_s),
                fe(q.meter_read_s),
                q.meter_overhead()
            );
        }
        w("points.csv", p)?;
        if !cal.triton_stats.is_empty() {
            let mut t = String::from(
                "model,batch_size,requests,executions,success_ms,queue_ms,compute_input_ms,compute_infer_ms,compute_output_ms,client_mean_ms\n",
            );
            for s in &cal.triton_stats {
                let _ = writeln!(
                    t,
                    "{},{},{},{},{},{},{},{},{},{}",
                    s.model,
                    s.batch_size,
                    s.requests,
                    s.executions,
                    f(s.success_ms),
                    f(s.queue_ms),
                    f(s.compute_input_ms),
                    f(s.compute_infer_ms),
                    f(s.compute_output_ms),
                    f(s.client_mean_ms)
                );
            }
            w("triton_stats.csv", t)?;
        }
        if !cal.transport.is_empty() {
            let mut t = String::from(
                "model,backend,batch_size,rounds,requests,executions,client_mean_ms,client_p50_ms,queue_ms,compute_ms,overhead_mean_ms,overhead_p50_ms,energy_per_request_j\n",
            );
            for p in &cal.transport {
                let _ = writeln!(
                    t,
                    "{},triton,{},{},{},{},{},{},{},{},{},{},{}",
                    p.model,
                    p.batch_size,
                    p.rounds,
                    p.requests,
                    p.executions,
                    f(p.client_mean_ms),
                    f(p.client_p50_ms),
                    f(p.queue_ms),
                    f(p.compute_ms),
                    f(p.overhead_mean_ms),
                    f(p.overhead_p50_ms),
                    fe(if p.requests > 0 { p.energy_j / p.requests as f64 } else { 0.0 })
                );
            }
            w("overhead.csv", t)?;
        }
        if let Some(q) = &cal.quality {
            let mut t = String::from("sample,model,confidence,correct\n");
            for (s, m, c, k) in &q.rows {
                let _ = writeln!(t, "{s},{m},{c:.6},{}", u8::from(*k));
            }
            w("quality.csv", t)?;
        }
        figures(dir, cal)?;
        w("manifest.toml", manifest_toml(cal)?)?;
        Ok(())
    })
}

/// Latency and energy per request against batch size, one line per model/backend.
fn figures(dir: &Path, cal: &Calibration) -> Result<()> {
    use crate::plot::{FigureSpec, Width, lines_figure};
    let mut lat: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut en: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for m in &cal.measured {
        let name = format!("{} / {}", m.model, m.backend);
        let b = f64::from(m.point.batch_size);
        let push = |v: &mut Vec<(String, Vec<(f64, f64)>)>, y: f64| match v.iter_mut().find(|(n, _)| *n == name) {
            Some((_, pts)) => pts.push((b, y)),
            None => v.push((name.clone(), vec![(b, y)])),
        };
        push(&mut lat, m.point.stats.mean_ms / b);
        push(&mut en, m.point.energy_per_batch_j() / b);
    }
    if lat.is_empty() {
        return Ok(());
    }
    let est = if cal.measured.iter().any(|m| m.estimated) { " (estimated)" } else { "" };
    for ext in ["svg", "png"] {
        let p = dir.join(format!("latency_per_request.{ext}"));
        lines_figure(&p, &FigureSpec::for_path(&p, Width::Double)?, "batch size", "latency per request (ms)", &lat, true, true)?;
        let p = dir.join(format!("energy_per_request.{ext}"));
        lines_figure(
            &p,
            &FigureSpec::for_path(&p, Width::Double)?,
            "batch size",
            &format!("energy per request (J){est}"),
            &en,
            true,
            true,
        )?;
    }
    Ok(())
}
