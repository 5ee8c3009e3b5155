//! The metrics façade: one call per outcome keeps the summary counters, the time series and the
//! per-request records consistent, and [`Metrics::summarize`] returns a complete [`Summary`].

use std::collections::BTreeMap;
use std::fmt;

use crate::core::{SimDuration, SimTime};
use crate::metrics::{BatchRecords, RequestRecords, RequestRow, SeriesAccumulator, Summary, SummaryCollector, TimeSeries};
use crate::model::request::{Outcome, QueuedRequest};
use crate::spec::SimSpec;

/// Why the gateway did not serve a request (the `reason` column of a rejected request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The controller rejected it.
    Controller,
    /// The controller skipped it, but there is no early-exit model to answer it.
    SkipWithoutEarlyExit,
    /// The server's queue was full.
    QueueFull,
    /// The controller named a server the experiment does not have (a controller bug, recorded
    /// instead of silently serving the request elsewhere).
    NoSuchServer,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::Controller => "controller",
            RejectReason::SkipWithoutEarlyExit => "skip without an early-exit model",
            RejectReason::QueueFull => "queue_full",
            RejectReason::NoSuchServer => "controller chose a server that does not exist",
        })
    }
}

/// Why a request that was accepted got no answer (real backends only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The backend of a server answered with an error.
    Backend { backend: String, error: String },
    /// The early-exit model answered with an error.
    EarlyExit(String),
    /// The threads running the early-exit model are gone.
    EarlyExitPoolGone,
    /// The client threads of a remotely batched server are gone.
    ClientPoolGone,
    /// Still in flight when the run's drain deadline passed.
    DrainTimeout,
}

impl FailReason {
    /// The reason's kind, the key of `failed_reasons` in the summary.
    pub fn key(&self) -> String {
        match self {
            FailReason::Backend { backend, .. } => backend.chars().take(60).collect(),
            FailReason::EarlyExit(_) | FailReason::EarlyExitPoolGone => "early_exit".into(),
            FailReason::ClientPoolGone => "client pool gone".into(),
            FailReason::DrainTimeout => "drain timeout".into(),
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Backend { backend, error } => write!(f, "{backend}: {error}"),
            FailReason::EarlyExit(e) => write!(f, "early_exit: {e}"),
            FailReason::EarlyExitPoolGone => f.write_str("early_exit: worker pool gone"),
            FailReason::ClientPoolGone => f.write_str("client pool gone"),
            FailReason::DrainTimeout => f.write_str("drain timeout: still in flight when the replay ended"),
        }
    }
}

/// Where an answered request went (the records' `path` and `model` indices).
#[derive(Clone, Copy, Debug)]
pub struct Served {
    pub path: u16,
    pub model: Option<u16>,
    pub batch_size: Option<u32>,
    pub start: SimTime,
}

/// Summary counters, time series and records, written together.
pub struct Metrics {
    pub(crate) summary: SummaryCollector,
    pub(crate) series: SeriesAccumulator,
    requests: Option<RequestRecords>,
    batches: Option<BatchRecords>,
    failed_reasons: BTreeMap<String, u64>,
    pue: f64,
    /// Record per-request energy for requests that were not served (modelled energy only: a
    /// meter cannot split its reading by request).
    modelled_energy: bool,
}

impl Metrics {
    pub fn new(spec: &SimSpec, modelled_energy: bool) -> Self {
        let mut model_names: Vec<String> = spec.servers.iter().flat_map(|s| s.variants.iter().map(|v| v.model.clone())).collect();
        if let Some(e) = &spec.early_exit {
            model_names.push(e.model.clone());
        }
        model_names.sort();
        model_names.dedup();
        let mut path_names: Vec<String> = spec.servers.iter().map(|s| s.name.clone()).collect();
        path_names.push("early_exit".into());
        Metrics {
            summary: SummaryCollector::new(spec.slo),
            series: SeriesAccumulator::new(spec.interval.0, spec.pue, spec.carbon.clone()),
            requests: spec.record_requests.then(|| RequestRecords { path_names, model_names, ..Default::default() }),
            batches: spec
                .record_batches
                .then(|| BatchRecords { server_names: spec.servers.iter().map(|s| s.name.clone()).collect(), ..Default::default() }),
            failed_reasons: BTreeMap::new(),
            pue: spec.pue,
            modelled_energy,
        }
    }

    /// The records' index of `model` (`None` when requests are not recorded).
    pub fn model_index(&self, model: &str) -> Option<u16> {
        self.requests.as_ref().and_then(|r| r.model_names.iter().position(|m| m == model).map(|i| i as u16))
    }

    #[inline]
    pub fn series_mut(&mut self) -> &mut SeriesAccumulator {
        &mut self.series
    }

    /// A request reached the gateway.
    #[inline]
    pub fn arrival(&mut self) {
        self.series.arrival();
        self.summary.requests += 1;
    }

    /// A request entered a server (its queue, or a remote server).
    #[inline]
    pub fn admitted(&mut self) {
        self.summary.admitted += 1;
        self.series.admitted();
    }

    fn unserved_energy(&self, r: &QueuedRequest) -> Option<f64> {
        self.modelled_energy.then_some(r.pre_energy_j * self.pue)
    }

    /// The request was not served.
    pub fn reject(&mut self, r: &QueuedRequest, path: Option<u16>, reason: RejectReason) {
        self.summary.rejected += 1;
        if reason == RejectReason::QueueFull {
            self.summary.rejected_queue_full += 1;
        }
        self.series.rejected();
        if self.requests.is_some() {
            let energy_j = self.unserved_energy(r);
            self.push(RequestRow {
                id: r.id,
                arrival_s: r.arrival.as_secs_f64(),
                decision: Outcome::Rejected,
                path,
                model: None,
                batch_size: None,
                start_s: None,
                end_s: None,
                latency_ms: None,
                energy_j,
                correct: None,
                reason: Some(reason.to_string()),
            });
        }
    }

    /// The request was answered by the early-exit model at `now`.
    pub fn skip(&mut self, r: &QueuedRequest, now: SimTime, path: u16, model: Option<u16>, correct: Option<bool>) {
        self.summary.skipped += 1;
        self.summary.answered(correct);
        self.series.skipped();
        if self.requests.is_some() {
            let energy_j = self.unserved_energy(r);
            self.push(RequestRow {
                id: r.id,
                arrival_s: r.arrival.as_secs_f64(),
                decision: Outcome::Skipped,
                path: Some(path),
                model,
                batch_size: None,
                start_s: Some(r.arrival.as_secs_f64()),
                end_s: Some(now.as_secs_f64()),
                latency_ms: Some(now.since(r.arrival).as_millis_f64()),
                energy_j,
                correct,
                reason: None,
            });
        }
    }

    /// A served request's answer reached the gateway at `now`; `share_j` is its part of the
    /// batch's IT energy.
    #[inline(always)]
    pub fn complete(&mut self, r: &QueuedRequest, now: SimTime, served: Served, share_j: f64, correct: Option<bool>) {
        let latency = now.since(r.arrival);
        self.summary.completed(latency);
        self.summary.answered(correct);
        self.series.completed(1);
        if self.requests.is_some() {
            self.push(RequestRow {
                id: r.id,
                arrival_s: r.arrival.as_secs_f64(),
                decision: Outcome::Admitted,
                path: Some(served.path),
                model: served.model,
                batch_size: served.batch_size,
                start_s: Some(served.start.as_secs_f64()),
                end_s: Some(now.as_secs_f64()),
                latency_ms: Some(latency.as_millis_f64()),
                energy_j: Some((share_j + r.pre_energy_j) * self.pue),
                correct,
                reason: None,
            });
        }
    }

    /// The request got no answer.
    pub fn fail(&mut self, r: &QueuedRequest, now: SimTime, path: Option<u16>, reason: &FailReason) {
        self.summary.failed += 1;
        *self.failed_reasons.entry(reason.key()).or_default() += 1;
        if self.requests.is_some() {
            self.push(RequestRow {
                id: r.id,
                arrival_s: r.arrival.as_secs_f64(),
                decision: Outcome::Failed,
                path,
                model: None,
                batch_size: None,
                start_s: None,
                end_s: Some(now.as_secs_f64()),
                latency_ms: None,
                energy_j: None,
                correct: None,
                reason: Some(reason.to_string()),
            });
        }
    }

    /// A batch of `size` started (or, at a remote server, is known from its statistics).
    #[inline]
    pub fn batch(&mut self, size: u32) {
        self.summary.batch(size);
    }

    /// The record of a batch that ran on `instance` of `server` over [start, end] with
    /// `energy_j` IT joules.
    #[inline]
    pub fn batch_record(&mut self, server: u16, instance: u32, start: SimTime, end: SimTime, size: u32, energy_j: f64) {
        if let Some(b) = &mut self.batches {
            b.push(server, instance, start.as_secs_f64(), end.as_secs_f64(), size, energy_j * self.pue);
        }
    }

    fn push(&mut self, row: RequestRow) {
        if let Some(rec) = &mut self.requests {
            rec.push(row);
        }
    }

    /// Closes the time series at `end` and fills every summary field. `energy` gives the run's
    /// IT energy and its breakdown; `tau` the controller's threshold at an interval's end.
    pub fn summarize(self, spec: &SimSpec, mode: &str, end: SimTime, energy: RunEnergy, tau: &dyn Fn(SimTime) -> Option<f64>) -> Finished {
        let (timeseries, it_integrated_j, co2_g) = self.series.finish(end, tau);
        if let Some(modelled_j) = energy.integrated_check_j {
            debug_assert!(
                (it_integrated_j - modelled_j).abs() <= 1e-9 * it_integrated_j.max(1.0),
                "energy integration disagrees: {it_integrated_j} vs {modelled_j}"
            );
        }
        let duration_s = end.as_secs_f64();
        let mut s = self.summary.summarize(duration_s);
        s.mode = mode.into();
        s.name = spec.name.clone();
        s.energy_j = energy.it_total_j * spec.pue;
        s.energy_kwh = s.energy_j / crate::core::units::JOULES_PER_KWH;
        s.energy_j_per_request = (s.requests > 0).then(|| s.energy_j / s.requests as f64);
        s.mean_power_w = if duration_s > 0.0 { s.energy_j / duration_s } else { 0.0 };
        s.co2_g = co2_g;
        s.co2_g_per_request = (s.requests > 0).then(|| co2_g / s.requests as f64);
        s.mean_queue_len = interval_weighted_mean(&timeseries, &timeseries.queue_len, spec.interval, duration_s);
        s.carbon_g_per_kwh_mean = interval_weighted_mean(&timeseries, &timeseries.carbon_g_per_kwh, spec.interval, duration_s);
        s.energy = energy.breakdown;
        let mut requests = self.requests;
        if let Some(r) = &mut requests {
            r.sort_by_id();
        }
        Finished { summary: s, timeseries, requests, batches: self.batches, failed_reasons: self.failed_reasons }
    }
}

/// A run's energy as its driver knows it.
pub struct RunEnergy {
    /// IT joules in total (modelled, or metered).
    pub it_total_j: f64,
    pub breakdown: crate::metrics::EnergyBreakdown,
    /// Modelled device energy the time series must have integrated (checked in debug builds).
    pub integrated_check_j: Option<f64>,
}

/// What [`Metrics::summarize`] returns.
pub struct Finished {
    pub summary: Summary,
    pub timeseries: TimeSeries,
    pub requests: Option<RequestRecords>,
    pub batches: Option<BatchRecords>,
    pub failed_reasons: BTreeMap<String, u64>,
}

/// The interval-weighted mean of a per-interval level (the last interval may be partial).
fn interval_weighted_mean(ts: &TimeSeries, v: &[f64], interval: SimDuration, duration_s: f64) -> f64 {
    let iv = interval.as_secs_f64();
    let mut total = 0.0;
    let mut weight = 0.0;
    for (i, x) in v.iter().enumerate() {
        let len = if i + 1 == v.len() { duration_s - ts.t_s[i] } else { iv };
        total += x * len;
        weight += len;
    }
    if weight > 0.0 { total / weight } else { 0.0 }
}
