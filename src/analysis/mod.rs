//! Analysis of recorded runs: Pareto fronts, hypervolume, knee points and seed aggregation.
//!
//! Everything here is pure: functions take plain slices of numbers (one row per run, one
//! column per objective or metric) and return numbers or indices. Reading results tables,
//! selecting columns, grouping by workload and writing the front are the job of `src/io/`
//! and the `basin pareto` command; this layer only does the mathematics so that it can be
//! property-tested against brute force.
//!
//! * [`pareto`]: objective specs (`energy_j_per_request:min`), dominance, the non-dominated
//!   set, exact hypervolume (2-D sweep, 3-D slicing, k-D HSO), the knee point and a default
//!   reference point.
//! * [`landscape`]: basins, descent and catchments of a metric over a two-axis grid.
//! * [`stats`]: mean and Student-t 95 % confidence interval over seeds, and grouping of rows
//!   that share all axis values.

pub mod landscape;
pub mod pareto;
pub mod stats;
