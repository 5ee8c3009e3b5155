//! Loading an experiment: the TOML file, `--set` overrides, the input files it names, and the
//! validation that turns it into a [`SimSpec`]. Every error names the experiment file and the
//! key (and, for input files, their own path and line).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{self, ConfigError, Experiment};
use crate::core::{Joules, SimDuration, SimTime};
use crate::io::tables;
use crate::io::traces as trace_io;
use crate::metrics::CarbonSignal;
use crate::model::DeviceSpec;
use crate::model::arrivals::ArrivalSpec;
use crate::model::cost::{CostRow, ServiceDist, interpolate_rows};
use crate::model::load::LoadProfile;
use crate::model::quality::Quality;
use crate::model::routing::RoutingConfig;
use crate::model::server::{ServerKind, ServerSpec, Variant};
use crate::spec::{EarlyExitSpec, SimSpec};
use crate::traces::{self, GenParams, TraceFormat, Workload};

/// An input file a run read, for the manifest.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct InputFile {
    pub role: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// A loaded, validated experiment.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub file: PathBuf,
    /// The experiment after overrides (what the manifest records).
    pub experiment: Experiment,
    pub spec: SimSpec,
    pub inputs: Vec<InputFile>,
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(hex(&Sha256::digest(&bytes)))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a configuration file and applies `KEY=VALUE` overrides; `T` is what the table will be
/// read as (an [`Experiment`], a calibration config), used to explain a `--set P.kind=X` that
/// leaves keys of the old kind behind.
pub fn read_table<T: serde::de::DeserializeOwned>(file: &Path, overrides: &[String]) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError::file(file, format!("cannot read the experiment file: {e}")))?;
    let mut table = config::parse_table(file, &text)?;
    let mut kind_changes = Vec::new();
    for o in overrides {
        let (k, v) = o.split_once('=').ok_or_else(|| ConfigError::file(file, format!("--set `{o}`: expected KEY=VALUE")))?;
        let (k, value) = (k.trim(), config::parse_override_value(v.trim()));
        if let Some(change) = kind_change(&table, k, &value) {
            kind_changes.push(change);
        }
        config::set_path(&mut table, k, value).map_err(|m| ConfigError::key(file, k, format!("--set: {m}")))?;
    }
    for change in kind_changes {
        change.check::<T>(file, &table)?;
    }
    Ok(table)
}

/// `--set P.kind=NEW` on a table `P` whose kind was `OLD`: the table keeps OLD's other keys.
struct KindChange {
    table_path: String,
    old: String,
    new: String,
}

fn kind_change(table: &toml::Table, key: &str, value: &toml::Value) -> Option<KindChange> {
    let segs = config::split_path(key);
    let (last, parent) = segs.split_last()?;
    if last != "kind" || parent.is_empty() {
        return None;
    }
    let mut cur = table.get(&parent[0])?;
    for seg in &parent[1..] {
        cur = match cur {
            toml::Value::Table(t) => t.get(seg)?,
            toml::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    let old = cur.as_table()?.get("kind")?.as_str()?;
    let new = value.as_str()?;
    (old != new).then(|| KindChange { table_path: parent.join("."), old: old.into(), new: new.into() })
}

impl KindChange {
    /// Fails, listing the keys the new kind does not take, if deserializing as `T` rejects
    /// them (serde reports one unknown field at a time, so they are removed one by one).
    fn check<T: serde::de::DeserializeOwned>(&self, file: &Path, table: &toml::Table) -> Result<(), ConfigError> {
        let mut probe = table.clone();
        let mut foreign = Vec::new();
        let prefix = format!("{}.", self.table_path);
        while let Err(ConfigError::Key { key, message, .. }) = config::from_table::<T>(file, probe.clone()) {
            let Some(field) = key.strip_prefix(&prefix).filter(|f| !f.contains('.') && message.contains("unknown field")) else { break };
            let removed = config::remove_path(&mut probe, &format!("{prefix}{field}"));
            if !removed || foreign.contains(&field.to_string()) {
                break;
            }
            foreign.push(field.to_string());
        }
        if foreign.is_empty() {
            return Ok(());
        }
        let listed = foreign.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
        Err(ConfigError::key(
            file,
            format!("{}.kind", self.table_path),
            format!(
                "--set changes the kind from `{}` to `{}` but the table keeps keys of `{}` that `{}` does not take: {listed}; replace the whole table instead: --set '{}={{kind=\"{}\"}}' (adding the keys `{}` takes)",
                self.old, self.new, self.old, self.new, self.table_path, self.new, self.new
            ),
        ))
    }
}

/// Loads an experiment file with overrides and an optional seed override.
pub fn load(file: &Path, overrides: &[String], seed: Option<u64>) -> Result<Loaded, ConfigError> {
    let table = read_table::<Experiment>(file, overrides)?;
    resolve(file, table, seed)
}

/// Expands `${BASIN_TRACES_DIR}` (see [`traces_dir`]) and resolves relative paths against the
/// experiment file's directory.
pub fn resolve_path(file: &Path, raw: &str) -> Result<PathBuf, String> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut s = raw.to_string();
    if s.contains(TRACES_DIR_VAR) {
        s = s.replace(TRACES_DIR_VAR, &traces_dir(dir)?.to_string_lossy());
    }
    let p = PathBuf::from(s);
    Ok(if p.is_absolute() { p } else { dir.join(p) })
}

const TRACES_DIR_VAR: &str = "${BASIN_TRACES_DIR}";

/// Where `${BASIN_TRACES_DIR}` points: the `BASIN_TRACES_DIR` variable if set; else the nearest
/// `traces/` folder in `start` or one of its ancestors (a bundled experiment under
/// `experiments/` finds the repository's `traces/`, wherever the repository was cloned and
/// whichever directory basin runs from); else the `traces/` folder of the source tree basin was
/// built from (an installed binary run on an experiment outside any repository).
pub fn traces_dir(start: &Path) -> Result<PathBuf, String> {
    if let Some(v) = std::env::var_os("BASIN_TRACES_DIR") {
        return Ok(PathBuf::from(v));
    }
    let abs = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    if let Some(found) = abs.ancestors().map(|a| a.join("traces")).find(|t| t.is_dir()) {
        return Ok(found);
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    if built_from.is_dir() {
        return Ok(built_from);
    }
    Err(format!(
        "cannot find the traces folder for ${{BASIN_TRACES_DIR}}: no `traces/` folder in {} or above it, and the source tree basin was built from ({}) is gone; set BASIN_TRACES_DIR",
        abs.display(),
        built_from.display()
    ))
}

struct Ctx<'a> {
    file: &'a Path,
    inputs: Vec<InputFile>,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
        ConfigError::key(self.file, key, msg)
    }

    fn input(&mut self, key: &str, raw: &str) -> Result<PathBuf, ConfigError> {
        let p = resolve_path(self.file, raw).map_err(|m| self.err(key, m))?;
        if !p.is_file() {
            return Err(self.err(key, format!("file not found: {}", p.display())));
        }
        self.hash(key, &p)?;
        Ok(p)
    }

    /// " (read from PATH)" for the input file of `role`, so that an error caused by a table's
    /// content names the table, not only the key that pointed to it.
    fn read_from(&self, role: &str) -> String {
        self.inputs.iter().find(|i| i.role == role).map(|i| format!(" (read from {})", i.path.display())).unwrap_or_default()
    }

    fn hash(&mut self, role: &str, p: &Path) -> Result<(), ConfigError> {
        let sha256 = sha256_file(p).map_err(|e| self.err(role, format!("{}: {e}", p.display())))?;
        self.inputs.push(InputFile { role: role.into(), path: p.to_path_buf(), sha256 });
        Ok(())
    }
}

fn check_finite(ctx: &Ctx, key: &str, v: f64, min: f64, strict: bool) -> Result<(), ConfigError> {
    let ok = v.is_finite() && if strict { v > min } else { v >= min };
    if ok { Ok(()) } else { Err(ctx.err(key, format!("must be a finite number {} {min} (got {v})", if strict { ">" } else { ">=" }))) }
}

/// Validates `table` (an experiment after overrides) and resolves it into a [`SimSpec`]: reads
/// the table, then validates and builds each section in turn (workload, devices, cost rows,
/// quality, servers, early exit, controller and routing, energy), so the first error is always
/// that of the earliest section.
pub fn resolve(file: &Path, table: toml::Table, seed: Option<u64>) -> Result<Loaded, ConfigError> {
    let mut exp: Experiment = config::from_table(file, table)?;
    if let Some(s) = seed {
        exp.seed = s;
    }
    let mut ctx = Ctx { file, inputs: Vec::new() };
    check_finite(&ctx, "slo_ms", exp.slo_ms, 0.0, true)?;
    let arrivals = build_arrivals(&mut ctx, &exp)?;
    let devices = build_devices(&ctx, &exp)?;
    let costs = CostRows::read(&mut ctx, &exp, &devices)?;
    let quality = build_quality(&mut ctx, &exp)?;
    let servers = build_servers(&mut ctx, &exp, &devices, &costs, quality.as_ref())?;
    let early_exit = build_early_exit(&ctx, &exp, &devices, &costs, quality.as_ref())?;
    validate_controller_and_routing(&ctx, &exp, &servers, early_exit.is_some(), quality.as_ref())?;
    let carbon = build_carbon(&mut ctx, &exp)?;
    check_finite(&ctx, "output.interval_s", exp.output.interval_s, 0.0, true)?;
    let spec = SimSpec {
        name: exp.name.clone(),
        arrivals,
        max_requests: exp.workload.max_requests,
        devices,
        servers,
        early_exit,
        quality,
        controller: exp.controller.clone(),
        routing: exp.routing.clone(),
        slo: SimDuration::from_millis_f64(exp.slo_ms),
        pue: exp.energy.pue,
        carbon,
        interval: SimDuration::from_secs_f64(exp.output.interval_s),
        record_requests: exp.output.requests,
        record_batches: exp.output.batches,
        energy_estimated: costs.estimated(),
    };
    spec.controller.check_context(&spec.controller_context()).map_err(|m| ConfigError::file(file, m))?;
    Ok(Loaded { file: file.to_path_buf(), experiment: exp, spec, inputs: ctx.inputs })
}

/// `[workload]`: exactly one source (trace, constant rate, generator), scaled and cut.
fn build_arrivals(ctx: &mut Ctx, exp: &Experiment) -> Result<ArrivalSpec, ConfigError> {
    let w = &exp.workload;
    check_finite(ctx, "workload.rate_scale", w.rate_scale, 0.0, true)?;
    let sources = [w.trace.is_some(), w.rate_rps.is_some(), w.generate.is_some()].iter().filter(|&&b| b).count();
    if sources != 1 {
        return Err(ctx.err("workload", "give exactly one of `trace`, `rate_rps` or `[workload.generate]`"));
    }
    let mut arrivals = if let Some(raw) = &w.trace {
        let p = ctx.input("workload.trace", raw)?;
        if w.damping == 0 {
            return Err(ctx.err("workload.damping", "must be at least 1"));
        }
        let ipa = trace_io::IpaOptions { window: w.window.map(|[a, b]| (a, b)), damping: w.damping };
        let workload = match (w.format, &w.column) {
            (Some(TraceFormat::RequestCsv), Some(col)) | (None, Some(col)) => {
                Workload::Requests(trace_io::load_request_csv(&p, col).map_err(|e| ctx.err("workload.trace", e.to_string()))?)
            }
            _ => trace_io::load_workload(&p, w.format, ipa).map_err(|e| ctx.err("workload.trace", e.to_string()))?,
        };
        let workload = workload.scaled(w.rate_scale).map_err(|e| ctx.err("workload.rate_scale", e.to_string()))?;
        match workload {
            Workload::Rates(r) => ArrivalSpec::Rate { rates_rps: r.rates_rps, process: w.process },
            Workload::Requests(r) => ArrivalSpec::Times { arrivals_s: r.arrivals_s },
        }
    } else if let Some(rate) = w.rate_rps {
        check_finite(ctx, "workload.rate_rps", rate, 0.0, false)?;
        let d = w.duration_s.ok_or_else(|| ctx.err("workload.duration_s", "a constant-rate workload (`rate_rps`) needs `duration_s`"))?;
        check_finite(ctx, "workload.duration_s", d, 0.0, true)?;
        ArrivalSpec::Rate { rates_rps: vec![rate * w.rate_scale; d.ceil() as usize], process: w.process }
    } else {
        let g = w.generate.as_ref().expect("counted above");
        let mut p: GenParams = g.shape.default_params();
        if let Some(v) = g.mean_rps {
            p.mean_rps = v;
        }
        if let Some(v) = g.burstiness {
            p.burstiness = v;
        }
        if let Some(v) = g.duration_s {
            p.duration_s = v;
        }
        p.seed = g.seed.unwrap_or(exp.seed);
        let t = traces::generate(g.shape, &p).map_err(|e| ctx.err("workload.generate", e.to_string()))?;
        let t = t.scaled(w.rate_scale).map_err(|e| ctx.err("workload.rate_scale", e.to_string()))?;
        ArrivalSpec::Rate { rates_rps: t.rates_rps, process: w.process }
    };
    if let Some(d) = w.duration_s.filter(|_| w.rate_rps.is_none()) {
        check_finite(ctx, "workload.duration_s", d, 0.0, true)?;
        match &mut arrivals {
            ArrivalSpec::Rate { rates_rps, .. } => rates_rps.truncate(d.ceil() as usize),
            ArrivalSpec::Times { arrivals_s } => arrivals_s.retain(|&t| t < d),
        }
    }
    if arrivals.expected_requests() <= 0.0 {
        return Err(ctx.err("workload", "the workload has no requests (all rates are zero or the trace is empty)"));
    }
    check_simulable(ctx, &arrivals)?;
    if w.max_requests == Some(0) {
        return Err(ctx.err("workload.max_requests", "must be at least 1"));
    }
    Ok(arrivals)
}

/// The most requests one run may draw. The simulator handles about a million requests per
/// second of wall time, so this is a quarter of an hour; far beyond it a run does not finish
/// (a trace rate of `1e20` used to make `basin simulate` run for ever).
pub const MAX_SIMULATED_REQUESTS: f64 = 1e9;

fn check_simulable(ctx: &Ctx, arrivals: &ArrivalSpec) -> Result<(), ConfigError> {
    let expected = arrivals.expected_requests();
    if expected.is_finite() && expected <= MAX_SIMULATED_REQUESTS {
        return Ok(());
    }
    let peak = match arrivals {
        ArrivalSpec::Rate { rates_rps, .. } => format!(" (peak rate {:e} req/s)", rates_rps.iter().copied().fold(0.0, f64::max)),
        ArrivalSpec::Times { .. } => String::new(),
    };
    Err(ctx.err("workload", format!("the workload asks for {expected:e} requests{peak}{}, beyond the {MAX_SIMULATED_REQUESTS:e} one run can simulate; lower the trace's rates or `rate_scale`, or shorten `duration_s`", ctx.read_from("workload.trace"))))
}

/// `[[device]]`: unique names, finite idle power.
fn build_devices(ctx: &Ctx, exp: &Experiment) -> Result<Vec<DeviceSpec>, ConfigError> {
    if exp.devices.is_empty() {
        return Err(ctx.err("device", "at least one [[device]] is needed"));
    }
    let mut devices = Vec::new();
    for (i, d) in exp.devices.iter().enumerate() {
        check_finite(ctx, &format!("device[{i}].idle_power_w"), d.idle_power_w, 0.0, false)?;
        if d.idle_power_source.as_ref().is_some_and(|src| src.trim().is_empty()) {
            return Err(ctx.err(
                format!("device[{i}].idle_power_source"),
                "is empty: say where the idle power comes from (\"assumed: ...\"), or remove the key",
            ));
        }
        if devices.iter().any(|x: &DeviceSpec| x.name == d.name) {
            return Err(ctx.err(format!("device[{i}].name"), format!("duplicate device name `{}`", d.name)));
        }
        devices.push(DeviceSpec { name: d.name.clone(), idle_power_w: d.idle_power_w });
    }
    Ok(devices)
}

fn device_names(devices: &[DeviceSpec]) -> String {
    devices.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ")
}

fn device_index(ctx: &Ctx, devices: &[DeviceSpec], key: &str, name: &str) -> Result<usize, ConfigError> {
    devices
        .iter()
        .position(|d| d.name == name)
        .ok_or_else(|| ctx.err(key, format!("unknown device `{name}`; devices: {}", device_names(devices))))
}

/// Cost rows by (model, backend, device, batch size), each with where it was written.
struct CostRows {
    by_key: BTreeMap<(String, String, String, u32), (String, CostRow)>,
    interpolate: bool,
    /// `[[device]]` names, to say when a missing row exists for a device nobody declared.
    declared: String,
}

impl CostRows {
    /// Inline `[[cost]]` rows, then the `[cost_table]` file's. An inline row must name a
    /// declared device; a table may also hold rows of other devices (a calibration of a
    /// whole host), which are only named if a lookup misses.
    fn read(ctx: &mut Ctx, exp: &Experiment, devices: &[DeviceSpec]) -> Result<CostRows, ConfigError> {
        let file = ctx.file;
        let mut rows: Vec<(String, CostRow)> = Vec::new();
        for (i, r) in exp.cost.iter().enumerate() {
            if !devices.iter().any(|d| d.name == r.device) {
                return Err(ctx.err(
                    format!("cost[{i}].device"),
                    format!("no [[device]] declares device `{}`; declared devices: {}", r.device, device_names(devices)),
                ));
            }
            rows.push((format!("{}: `cost[{i}]`", file.display()), r.clone()));
        }
        let mut interpolate = false;
        if let Some(ct) = &exp.cost_table {
            let p = ctx.input("cost_table.path", &ct.path)?;
            let (r, sample_files) = tables::load_cost_csv(&p).map_err(|e| ctx.err("cost_table.path", e.to_string()))?;
            for f in sample_files {
                ctx.hash("cost_table.samples", &f)?;
            }
            rows.extend(r.into_iter().map(|(line, r)| (format!("{}, line {line}", p.display()), r)));
            interpolate = ct.interpolate;
        }
        let mut by_key: BTreeMap<(String, String, String, u32), (String, CostRow)> = BTreeMap::new();
        for (wher, r) in rows {
            r.service_dist().map_err(|e| ConfigError::file(file, format!("cost row at {wher}: {e}")))?;
            let k = (r.model.clone(), r.backend.clone(), r.device.clone(), r.batch_size);
            if let Some((prev, _)) = by_key.get(&k) {
                return Err(ConfigError::file(
                    file,
                    format!(
                        "duplicate cost row for model `{}`, backend `{}`, device `{}`, batch_size {} (at {wher} and {prev})",
                        k.0, k.1, k.2, k.3
                    ),
                ));
            }
            by_key.insert(k, (wher, r));
        }
        Ok(CostRows { by_key, interpolate, declared: device_names(devices) })
    }

    fn estimated(&self) -> bool {
        self.by_key.values().any(|(_, r)| r.energy_estimated)
    }

    /// The service-time distribution of batch size `b` (a row, or interpolated between two).
    fn lookup(
        &self,
        ctx: &Ctx,
        key: &str,
        (model, backend, device): (&str, &str, &str),
        b: u32,
        why: &str,
    ) -> Result<ServiceDist, ConfigError> {
        let k = (model.to_string(), backend.to_string(), device.to_string(), b);
        if let Some((_, r)) = self.by_key.get(&k) {
            return Ok(r.service_dist().expect("validated"));
        }
        if self.interpolate {
            let same = |r: &CostRow| r.model == model && r.backend == backend && r.device == device;
            let lo = self.by_key.values().filter(|(_, r)| same(r) && r.batch_size < b).map(|(_, r)| r).max_by_key(|r| r.batch_size);
            let hi = self.by_key.values().filter(|(_, r)| same(r) && r.batch_size > b).map(|(_, r)| r).min_by_key(|r| r.batch_size);
            if let (Some(lo), Some(hi)) = (lo, hi) {
                return interpolate_rows(lo, hi, b).service_dist().map_err(|e| ctx.err(key, e.to_string()));
            }
        }
        let have: Vec<String> =
            self.by_key.keys().filter(|k| k.0 == model && k.1 == backend && k.2 == device).map(|k| k.3.to_string()).collect();
        if have.is_empty()
            && let Some((wher, r)) = self.by_key.values().find(|(_, r)| r.model == model && r.backend == backend)
        {
            return Err(ctx.err(key, format!(
                "no cost row for model `{model}`, backend `{backend}` on device `{device}`: its rows name device `{}` (at {wher}), which no [[device]] declares; declared devices: {}",
                r.device, self.declared
            )));
        }
        Err(ctx.err(key, format!(
            "no cost row for model `{model}`, backend `{backend}`, device `{device}`, batch_size {b} ({why}); rows exist for batch sizes [{}]{}{}",
            have.join(", "),
            ctx.read_from("cost_table.path"),
            if self.interpolate { " and interpolation needs a measured size on both sides" } else { "; add the row or set `cost_table.interpolate = true`" }
        )))
    }
}

/// `[quality]`: a per-sample table or per-model accuracies.
fn build_quality(ctx: &mut Ctx, exp: &Experiment) -> Result<Option<Quality>, ConfigError> {
    let Some(q) = &exp.quality else { return Ok(None) };
    match (&q.path, &q.accuracy) {
        (Some(raw), None) => {
            let p = ctx.input("quality.path", raw)?;
            Ok(Some(Quality::Table(tables::load_quality_csv(&p).map_err(|e| ctx.err("quality.path", e.to_string()))?)))
        }
        (None, Some(acc)) => {
            for (m, a) in acc {
                if !(0.0..=1.0).contains(a) {
                    return Err(ctx.err(format!("quality.accuracy.{m}"), format!("must be in [0, 1] (got {a})")));
                }
            }
            Ok(Some(Quality::Accuracy(acc.clone())))
        }
        _ => Err(ctx.err("quality", "give either `path` (a per-sample table) or `[quality.accuracy]`, not both or neither")),
    }
}

fn quality_index(ctx: &Ctx, quality: Option<&Quality>, key: &str, model: &str) -> Result<Option<usize>, ConfigError> {
    match quality {
        None => Ok(None),
        Some(q) => q
            .index_of(model)
            .map(Some)
            .ok_or_else(|| ctx.err(key, format!("the quality table has no model `{model}`{}", ctx.read_from("quality.path")))),
    }
}

/// `[[server]]`: batching, instances, load profile, and each variant's costs and quality.
fn build_servers(
    ctx: &mut Ctx,
    exp: &Experiment,
    devices: &[DeviceSpec],
    costs: &CostRows,
    quality: Option<&Quality>,
) -> Result<Vec<ServerSpec>, ConfigError> {
    if exp.servers.is_empty() {
        return Err(ctx.err("server", "at least one [[server]] is needed"));
    }
    let mut names = HashSet::new();
    let mut servers = Vec::new();
    for (i, s) in exp.servers.iter().enumerate() {
        let k = |f: &str| format!("server[{i}].{f}");
        if !names.insert(s.name.clone()) {
            return Err(ctx.err(k("name"), format!("duplicate server name `{}`", s.name)));
        }
        let device = device_index(ctx, devices, &k("device"), &s.device)?;
        if s.quality_model.is_some() && !s.variants.is_empty() {
            return Err(ctx.err(k("quality_model"), "a server with `variants` takes each variant's own quality"));
        }
        if s.instances == 0 {
            return Err(ctx.err(k("instances"), "must be at least 1"));
        }
        let (max_batch, delay_us) = match s.kind {
            ServerKind::Local => {
                if s.max_queue_delay_us > 0 {
                    return Err(
                        ctx.err(k("max_queue_delay_us"), "a local server dispatches at once; use kind = \"batched\" for a batching delay")
                    );
                }
                if !s.preferred_batch_sizes.is_empty() {
                    return Err(ctx.err(k("preferred_batch_sizes"), "only batched servers have preferred batch sizes"));
                }
                (s.batch_size.or(s.max_batch_size).unwrap_or(1), 0)
            }
            ServerKind::Batched => {
                if s.batch_size.is_some() {
                    return Err(ctx.err(k("batch_size"), "batched servers take `max_batch_size`"));
                }
                (s.max_batch_size.unwrap_or(1), s.max_queue_delay_us)
            }
        };
        if max_batch == 0 {
            return Err(
                ctx.err(if s.batch_size.is_some() { k("batch_size") } else { k("max_batch_size") }, "batch size must be at least 1")
            );
        }
        let limit = s.max_batch_size_limit.unwrap_or(max_batch);
        if limit < max_batch {
            return Err(ctx.err(k("max_batch_size_limit"), format!("must be >= the batch size {max_batch}")));
        }
        let mut preferred = s.preferred_batch_sizes.clone();
        preferred.sort_unstable();
        preferred.dedup();
        if let Some(&p) = preferred.iter().find(|&&p| p == 0 || p > max_batch) {
            return Err(ctx.err(k("preferred_batch_sizes"), format!("{p} is not in 1..={max_batch}")));
        }
        if s.max_queue_size == Some(0) {
            return Err(ctx.err(k("max_queue_size"), "must be at least 1 (omit it for an unbounded queue)"));
        }
        check_finite(ctx, &k("warmup_s"), s.warmup_s, 0.0, false)?;
        check_finite(ctx, &k("warmup_energy_j"), s.warmup_energy_j, 0.0, false)?;
        check_finite(ctx, &k("instance_standby_power_w"), s.instance_standby_power_w, 0.0, false)?;
        check_finite(ctx, &k("request_overhead_ms"), s.request_overhead_ms, 0.0, false)?;
        let load = match &s.load_profile {
            None => {
                if s.load_window_ms.is_some() {
                    return Err(ctx.err(k("load_window_ms"), "needs `load_profile`"));
                }
                None
            }
            Some(lp) => {
                if s.request_overhead_ms > 0.0 {
                    return Err(ctx.err(
                        k("request_overhead_ms"),
                        "a load profile gives the overhead per arrival rate; set `request_overhead_ms` or `load_profile`, not both",
                    ));
                }
                let window_ms = s.load_window_ms.unwrap_or(crate::model::load::DEFAULT_WINDOW_MS);
                check_finite(ctx, &k("load_window_ms"), window_ms, 0.0, true)?;
                let p = ctx.input(&k("load_profile"), lp)?;
                let points = tables::load_profile_csv(&p).map_err(|e| ctx.err(k("load_profile"), e.to_string()))?;
                Some(
                    LoadProfile::new(points, SimDuration::from_millis_f64(window_ms))
                        .map_err(|e| ctx.err(k("load_profile"), format!("{}: {e}", p.display())))?,
                )
            }
        };
        let mut variants = Vec::new();
        for (vi, model) in std::iter::once(&s.model).chain(s.variants.iter()).enumerate() {
            let key = if vi == 0 { k("model") } else { format!("server[{i}].variants[{}]", vi - 1) };
            let why = format!("server `{}` can form batches of 1..={limit}", s.name);
            let costs =
                (1..=limit).map(|b| costs.lookup(ctx, &key, (model, &s.backend, &s.device), b, &why)).collect::<Result<Vec<_>, _>>()?;
            let (qkey, qmodel) = match (&s.quality_model, vi) {
                (Some(q), 0) => (k("quality_model"), q),
                _ => (key.clone(), model),
            };
            variants.push(Variant { model: model.clone(), costs, quality_index: quality_index(ctx, quality, &qkey, qmodel)? });
        }
        servers.push(ServerSpec {
            name: s.name.clone(),
            kind: s.kind,
            backend: s.backend.clone(),
            device,
            variants,
            initial_variant: 0,
            instances: s.instances,
            max_batch_size: max_batch,
            preferred_batch_sizes: preferred,
            max_queue_delay: SimDuration::from_micros(delay_us),
            max_queue_size: s.max_queue_size,
            warmup: SimDuration::from_secs_f64(s.warmup_s),
            warmup_energy: Joules(s.warmup_energy_j),
            instance_standby_power_w: s.instance_standby_power_w,
            request_overhead: SimDuration::from_millis_f64(s.request_overhead_ms),
            load,
            observed_service: None,
            observed_transport: None,
            observed_overhead: None,
        });
    }
    Ok(servers)
}

/// `[early_exit]`: the cascade's first model, one request at a time.
fn build_early_exit(
    ctx: &Ctx,
    exp: &Experiment,
    devices: &[DeviceSpec],
    costs: &CostRows,
    quality: Option<&Quality>,
) -> Result<Option<EarlyExitSpec>, ConfigError> {
    let Some(e) = &exp.early_exit else { return Ok(None) };
    device_index(ctx, devices, "early_exit.device", &e.device)?;
    let dist =
        costs.lookup(ctx, "early_exit.model", (&e.model, &e.backend, &e.device), 1, "the early-exit model runs one request at a time")?;
    let (qkey, qmodel) = match &e.quality_model {
        Some(q) => ("early_exit.quality_model", q),
        None => ("early_exit.model", &e.model),
    };
    check_finite(ctx, "early_exit.overhead_energy_j", e.overhead_energy_j, 0.0, false)?;
    Ok(Some(EarlyExitSpec {
        model: e.model.clone(),
        dist,
        quality_index: quality_index(ctx, quality, qkey, qmodel)?,
        overhead_energy_j: e.overhead_energy_j,
    }))
}

fn validate_controller_and_routing(
    ctx: &Ctx,
    exp: &Experiment,
    servers: &[ServerSpec],
    has_early_exit: bool,
    quality: Option<&Quality>,
) -> Result<(), ConfigError> {
    exp.controller.validate().map_err(|m| ConfigError::file(ctx.file, m))?;
    if exp.controller.needs_early_exit() {
        if !has_early_exit {
            return Err(ctx.err(
                "early_exit",
                format!(
                    "controller kind `{}` skips requests to a cascade's early-exit model: add an [early_exit] section",
                    exp.controller.kind()
                ),
            ));
        }
        if !matches!(quality, Some(Quality::Table(_))) {
            return Err(ctx.err(
                "quality.path",
                format!(
                    "controller kind `{}` needs the early-exit model's per-sample confidence: give a per-sample quality table",
                    exp.controller.kind()
                ),
            ));
        }
    }
    let server_names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    exp.routing.validate(&server_names).map_err(|m| ctx.err("routing", m))?;
    if servers.len() > 1 && exp.routing == RoutingConfig::First {
        tracing::debug!("several servers with routing `first`: only the first receives requests unless the controller picks");
    }
    Ok(())
}

/// `[energy]`: PUE and the carbon signal (a constant or a trace).
fn build_carbon(ctx: &mut Ctx, exp: &Experiment) -> Result<CarbonSignal, ConfigError> {
    check_finite(ctx, "energy.pue", exp.energy.pue, 0.0, true)?;
    Ok(match (&exp.energy.carbon_g_per_kwh, &exp.energy.carbon_trace) {
        (Some(_), Some(_)) => return Err(ctx.err("energy", "give either `carbon_g_per_kwh` or `[energy.carbon_trace]`, not both")),
        (Some(v), None) => {
            check_finite(ctx, "energy.carbon_g_per_kwh", *v, 0.0, false)?;
            CarbonSignal::Constant(*v)
        }
        (None, None) => CarbonSignal::Constant(0.0),
        (None, Some(ct)) => {
            let p = ctx.input("energy.carbon_trace.path", &ct.path)?;
            check_finite(ctx, "energy.carbon_trace.offset_s", ct.offset_s, 0.0, false)?;
            let t = trace_io::load_carbon_csv(&p, &ct.time_column, &ct.value_column)
                .map_err(|e| ctx.err("energy.carbon_trace", e.to_string()))?;
            carbon_steps(t.times_s(), t.values_g_per_kwh(), ct.offset_s)
        }
    })
}

/// A carbon trace (times since its first row) started `offset_s` in, as simulation-time steps.
pub fn carbon_steps(times_s: &[f64], values: &[f64], offset_s: f64) -> CarbonSignal {
    let first = times_s.partition_point(|&t| t <= offset_s).saturating_sub(1);
    let mut times = vec![SimTime::ZERO];
    let mut vals = vec![values[first]];
    for i in first + 1..times_s.len() {
        times.push(SimTime::from_secs_f64(times_s[i] - offset_s));
        vals.push(values[i]);
    }
    CarbonSignal::Steps { times, values: vals }
}
