//! ONE metrics schema for simulation and replay: per-request and per-batch records, the
//! per-interval time series, the run summary and the manifest. Pure data and accumulators; the
//! files are written by `io::outputs`.

pub mod latency_counts;
pub mod records;
pub mod summary;
pub mod timeseries;

pub use records::{BatchRecords, RequestRecords, RequestRow};
pub use summary::{EnergyBreakdown, LatencySummary, Summary, SummaryCollector};
pub use timeseries::{CarbonSignal, SeriesAccumulator, TimeSeries};

/// Everything a run produces.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub summary: Summary,
    pub timeseries: TimeSeries,
    pub requests: Option<RequestRecords>,
    pub batches: Option<BatchRecords>,
    /// Events the engine delivered (for benchmarks).
    pub events: u64,
}
