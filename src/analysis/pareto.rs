//! Pareto dominance, the non-dominated front, hypervolume and the knee point.
//!
//! # Model
//!
//! Each run is a point `p ∈ ℝᵏ`, one coordinate per [`Objective`], each with a [`Sense`].
//! Internally every objective is turned into a minimisation by negating maximised ones, so
//! that "better" always means "smaller". Point `a` *dominates* `b` when `a` is no worse in
//! every objective and strictly better in at least one (Deb 2001, *Multi-Objective
//! Optimization using Evolutionary Algorithms*, def. 2.5). The Pareto front is the set of
//! points that no other point dominates.
//!
//! * Identical points do not dominate each other, so duplicates on the front are all kept.
//! * A point with a NaN coordinate never dominates, and is never on the front (a run that did
//!   not record an objective cannot be compared); `±∞` compare as ordinary numbers.
//!
//! The *hypervolume* (Zitzler & Thiele 1998, "S-metric") of a set is the Lebesgue measure of
//! the region that it dominates and that dominates the reference point `r`, i.e. the volume of
//! the union of the boxes `[p, r]`. It is computed exactly: a sweep in 2-D, slicing along the
//! third objective with an incrementally maintained 2-D staircase in 3-D, and "Hypervolume by
//! Slicing Objectives" (HSO; While, Hingston, Barone & Huband 2006, *IEEE TEVC* 10(1)) for
//! k ≥ 4, which is exponential in k and meant for small fronts.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether an objective is to be made small or large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sense {
    /// Smaller is better (energy, latency, carbon).
    #[serde(alias = "min")]
    Minimize,
    /// Larger is better (accuracy, goodput).
    #[serde(alias = "max")]
    Maximize,
}

impl Sense {
    /// `v` oriented so that smaller is better: unchanged for [`Sense::Minimize`], negated for
    /// [`Sense::Maximize`]. The map is an involution, so it also converts back.
    pub fn orient(self, v: f64) -> f64 {
        match self {
            Sense::Minimize => v,
            Sense::Maximize => -v,
        }
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sense::Minimize => "min",
            Sense::Maximize => "max",
        })
    }
}

/// Errors from parsing a [`Sense`] or an [`Objective`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseObjectiveError {
    /// The sense was not one of the allowed spellings.
    #[error("invalid sense `{0}`: expected one of min, max, minimize, maximize")]
    Sense(String),
    /// The objective spec did not have the shape `COLUMN:SENSE`.
    #[error("invalid objective `{0}`: expected COLUMN:SENSE, e.g. `energy_j_per_request:min`")]
    Shape(String),
}

impl FromStr for Sense {
    type Err = ParseObjectiveError;

    /// Accepts `min`, `max`, `minimize`, `maximize` (ASCII case-insensitive, trimmed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "min" | "minimize" => Ok(Sense::Minimize),
            "max" | "maximize" => Ok(Sense::Maximize),
            _ => Err(ParseObjectiveError::Sense(s.to_string())),
        }
    }
}

/// A results column together with the direction in which it is better.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Column name in the results table, e.g. `latency_ms_p99`.
    pub column: String,
    /// Direction of improvement.
    pub sense: Sense,
}

impl Objective {
    /// An objective on `column` with `sense`.
    pub fn new(column: impl Into<String>, sense: Sense) -> Self {
        Objective { column: column.into(), sense }
    }
}

impl fmt::Display for Objective {
    /// Formats as the spec that [`FromStr`] parses, e.g. `accuracy:max`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.column, self.sense)
    }
}

impl FromStr for Objective {
    type Err = ParseObjectiveError;

    /// Parses `COLUMN:SENSE`; the split is at the last `:` and the column must be non-empty.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (column, sense) = s.rsplit_once(':').ok_or_else(|| ParseObjectiveError::Shape(s.into()))?;
        let column = column.trim();
        if column.is_empty() {
            return Err(ParseObjectiveError::Shape(s.into()));
        }
        Ok(Objective { column: column.to_string(), sense: sense.parse()? })
    }
}

/// The objectives of `basin pareto` when none are given: minimise energy per request and p99
/// latency, maximise accuracy.
pub fn default_objectives() -> Vec<Objective> {
    vec![
        Objective::new("energy_j_per_request", Sense::Minimize),
        Objective::new("latency_ms_p99", Sense::Minimize),
        Objective::new("accuracy", Sense::Maximize),
    ]
}

/// The senses of `objectives`, in order.
pub fn senses_of(objectives: &[Objective]) -> Vec<Sense> {
    objectives.iter().map(|o| o.sense).collect()
}

/// Dominance on points already oriented for minimisation.
fn dominates_min(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (&x, &y) in a.iter().zip(b) {
        if x.partial_cmp(&y).is_none_or(Ordering::is_gt) {
            return false; // worse, or a NaN on either side
        }
        strictly |= x < y;
    }
    strictly
}

/// Whether `a` dominates `b`: no worse in every objective and strictly better in one.
/// False whenever a compared coordinate is NaN.
///
/// # Panics
/// If `a`, `b` and `senses` do not have the same length.
pub fn dominates(a: &[f64], b: &[f64], senses: &[Sense]) -> bool {
    assert!(a.len() == senses.len() && b.len() == senses.len(), "dimension mismatch in dominates");
    let oa: Vec<f64> = a.iter().zip(senses).map(|(&v, s)| s.orient(v)).collect();
    let ob: Vec<f64> = b.iter().zip(senses).map(|(&v, s)| s.orient(v)).collect();
    dominates_min(&oa, &ob)
}

/// Rows of `points` oriented for minimisation, flattened, with NaN-free row indices.
fn orient_all(points: &[Vec<f64>], senses: &[Sense]) -> (Vec<f64>, Vec<usize>) {
    let k = senses.len();
    let mut flat = Vec::with_capacity(points.len() * k);
    let mut valid = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p.len(), k, "point {i} has {} coordinates, expected {k}", p.len());
        flat.extend(p.iter().zip(senses).map(|(&v, s)| s.orient(v)));
        if p.iter().all(|v| !v.is_nan()) {
            valid.push(i);
        }
    }
    (flat, valid)
}

/// Lexicographic order of NaN-free rows.
fn lex(a: &[f64], b: &[f64]) -> Ordering {
    a.iter().zip(b).map(|(x, y)| x.partial_cmp(y).expect("NaN filtered")).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

/// Indices of the non-dominated points, in increasing (input) order.
///
/// Identical points are all kept; points with a NaN coordinate are never on the front.
///
/// Complexity: `O(n log n)` for two objectives (sort, then one sweep keeping the best second
/// objective seen at a strictly smaller first objective); for `k ≠ 2` a lexicographic sort
/// followed by comparing each point with the front found so far, `O(n log n + n·|F|·k)`
/// (a dominator always precedes its victim in lexicographic order, and by transitivity some
/// front member dominates every dominated point).
///
/// # Panics
/// If a point does not have `senses.len()` coordinates.
pub fn pareto_front(points: &[Vec<f64>], senses: &[Sense]) -> Vec<usize> {
    let k = senses.len();
    let (flat, mut order) = orient_all(points, senses);
    let row = |i: usize| &flat[i * k..(i + 1) * k];
    order.sort_by(|&a, &b| lex(row(a), row(b)).then(a.cmp(&b)));
    let mut front = Vec::new();
    if k == 2 {
        // Sorted by (x, y): within a group of equal x only the smallest y can survive, and it
        // survives iff every point with strictly smaller x has strictly larger y.
        let mut best_y: Option<f64> = None; // min y over groups with smaller x
        let mut g = 0;
        while g < order.len() {
            let x = row(order[g])[0];
            let y_min = row(order[g])[1];
            let mut end = g;
            while end < order.len() && row(order[end])[0] == x {
                end += 1;
            }
            if best_y.is_none_or(|b| y_min < b) {
                front.extend(order[g..end].iter().copied().filter(|&i| row(i)[1] == y_min));
                best_y = Some(y_min);
            }
            g = end;
        }
    } else {
        for &i in &order {
            if !front.iter().any(|&f| dominates_min(row(f), row(i))) {
                front.push(i);
            }
        }
    }
    front.sort_unstable();
    front
}

/// Exact hypervolume dominated by `front_points` and bounded by `reference`.
///
/// Senses are normalised internally (maximised objectives and the reference are negated), so
/// `reference` is given in the objectives' own units and must be worse than the points in
/// every objective. Only points that are *strictly* better than the reference in every
/// objective and have finite coordinates contribute; dominated points and duplicates are
/// harmless (the value is the volume of a union). Returns 0 for an empty contribution and NaN
/// when a reference coordinate is NaN.
///
/// Complexity: 2-D `O(n log n)`; 3-D `O(n²)` worst case (slices along the third objective,
/// each updating a sorted 2-D staircase); k ≥ 4 HSO recursion, exponential in k.
///
/// # Panics
/// If `reference` or a point does not have `senses.len()` coordinates.
pub fn hypervolume(front_points: &[Vec<f64>], senses: &[Sense], reference: &[f64]) -> f64 {
    let k = senses.len();
    assert_eq!(reference.len(), k, "reference has {} coordinates, expected {k}", reference.len());
    if reference.iter().any(|r| r.is_nan()) {
        return f64::NAN;
    }
    if k == 0 {
        return 0.0;
    }
    let r: Vec<f64> = reference.iter().zip(senses).map(|(&v, s)| s.orient(v)).collect();
    let pts: Vec<Vec<f64>> = front_points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            assert_eq!(p.len(), k, "point {i} has {} coordinates, expected {k}", p.len());
            p.iter().zip(senses).map(|(&v, s)| s.orient(v)).collect::<Vec<f64>>()
        })
        .filter(|p| p.iter().zip(&r).all(|(&v, &rv)| v.is_finite() && v < rv))
        .collect();
    hv_min(pts, &r)
}

/// Hypervolume of oriented points, all finite and strictly below `r`.
fn hv_min(mut pts: Vec<Vec<f64>>, r: &[f64]) -> f64 {
    if pts.is_empty() {
        return 0.0;
    }
    match r.len() {
        1 => r[0] - pts.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        2 => hv2(pts.iter().map(|p| (p[0], p[1])).collect(), r[0], r[1]),
        3 => hv3(pts, r),
        k => {
            // HSO: slice along the last objective; between consecutive values the cross-section
            // is the (k-1)-D hypervolume of the points already passed.
            pts.sort_by(|a, b| a[k - 1].partial_cmp(&b[k - 1]).expect("finite"));
            let senses = vec![Sense::Minimize; k - 1];
            let mut total = 0.0;
            for i in 0..pts.len() {
                let next = pts.get(i + 1).map_or(r[k - 1], |p| p[k - 1]);
                let depth = next - pts[i][k - 1];
                if depth > 0.0 {
                    let slice: Vec<Vec<f64>> = pts[..=i].iter().map(|p| p[..k - 1].to_vec()).collect();
                    let keep = pareto_front(&slice, &senses);
                    let slice: Vec<Vec<f64>> = keep.into_iter().map(|j| slice[j].clone()).collect();
                    total += hv_min(slice, &r[..k - 1]) * depth;
                }
            }
            total
        }
    }
}

/// 2-D hypervolume by a sweep over increasing x with the running minimum y.
fn hv2(mut pts: Vec<(f64, f64)>, rx: f64, ry: f64) -> f64 {
    pts.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    let mut area = 0.0;
    let mut min_y = ry;
    for (i, &(x, y)) in pts.iter().enumerate() {
        min_y = min_y.min(y);
        let next_x = pts.get(i + 1).map_or(rx, |p| p.0);
        area += (next_x - x) * (ry - min_y);
    }
    area
}

/// 3-D hypervolume: slices along z, keeping the non-dominated (x, y) staircase of the points
/// seen so far sorted by x (so y is strictly decreasing).
fn hv3(mut pts: Vec<Vec<f64>>, r: &[f64]) -> f64 {
    pts.sort_by(|a, b| a[2].partial_cmp(&b[2]).expect("finite"));
    let mut stair: Vec<(f64, f64)> = Vec::new();
    let mut total = 0.0;
    for i in 0..pts.len() {
        let (x, y) = (pts[i][0], pts[i][1]);
        // Last staircase point with q.x <= x has the smallest y among those; if it is no worse
        // in y the new point adds nothing to the cross-section.
        let pos = stair.partition_point(|q| q.0 <= x);
        if pos == 0 || stair[pos - 1].1 > y {
            // Remove the points the new one weakly dominates: q.x >= x and q.y >= y.
            let start = if pos > 0 && stair[pos - 1].0 == x { pos - 1 } else { pos };
            let end = start + stair[start..].iter().take_while(|q| q.1 >= y).count();
            stair.splice(start..end, [(x, y)]);
        }
        let next_z = pts.get(i + 1).map_or(r[2], |p| p[2]);
        let depth = next_z - pts[i][2];
        if depth > 0.0 {
            let mut area = 0.0;
            for (j, &(qx, qy)) in stair.iter().enumerate() {
                let nx = stair.get(j + 1).map_or(r[0], |q| q.0);
                area += (nx - qx) * (r[1] - qy);
            }
            total += area * depth;
        }
    }
    total
}

/// Index (into `front_points`) of the knee of a front, or `None` when no point has finite
/// coordinates.
///
/// Definition implemented: each objective is min–max normalised over the (finite) points so
/// that its best value maps to 0 and its worst to 1 (an objective with zero range maps to 0),
/// and the knee is the point with the smallest Euclidean distance to the ideal (utopia) point
/// `(0, …, 0)`; ties go to the lowest index. This is the L2 compromise solution of compromise
/// programming (Zeleny 1973; Yu 1973), a common, scale-free proxy for the knee. It is *not*
/// the maximum-bulge distance from the convex hull of individual minima of Das (1999,
/// "On characterizing the 'knee' of the Pareto curve based on normal-boundary intersection",
/// *Structural Optimization* 18) nor the angle / expected-marginal-utility measures of Branke,
/// Deb, Dierolf & Osswald (2004, "Finding knees in multi-objective optimization", PPSN VIII);
/// on convex fronts the three usually agree.
///
/// # Panics
/// If a point does not have `senses.len()` coordinates.
pub fn knee_point(front_points: &[Vec<f64>], senses: &[Sense]) -> Option<usize> {
    let k = senses.len();
    let (flat, _) = orient_all(front_points, senses);
    let row = |i: usize| &flat[i * k..(i + 1) * k];
    let finite: Vec<usize> = (0..front_points.len()).filter(|&i| row(i).iter().all(|v| v.is_finite())).collect();
    let (mut lo, mut hi) = (vec![f64::INFINITY; k], vec![f64::NEG_INFINITY; k]);
    for &i in &finite {
        for (j, &v) in row(i).iter().enumerate() {
            lo[j] = lo[j].min(v);
            hi[j] = hi[j].max(v);
        }
    }
    let dist2 = |i: usize| -> f64 {
        row(i)
            .iter()
            .enumerate()
            .map(|(j, &v)| {
                let range = hi[j] - lo[j];
                let z = if range > 0.0 { (v - lo[j]) / range } else { 0.0 };
                z * z
            })
            .sum()
    };
    let mut best: Option<(usize, f64)> = None;
    for &i in &finite {
        let d = dist2(i);
        if best.is_none_or(|(_, bd)| d < bd) {
            best = Some((i, d));
        }
    }
    best.map(|(i, _)| i)
}

/// A reference point for [`hypervolume`]: the nadir (worst value per objective, over the
/// finite values of that objective) of `points`, moved away from the front by 10 % of that objective's range (worst − best).
/// When the range is zero the offset is 10 % of the magnitude of the value, or 1 when the
/// value is 0, so the reference always stays strictly worse than every point. Returned in the
/// objectives' own units (larger than the points for minimised objectives, smaller for
/// maximised ones); NaN for an objective without any finite value.
///
/// The margin is a convention, chosen so that the extreme points of the front contribute a
/// non-zero volume; hypervolumes are only comparable under the same reference point (see
/// Ishibuchi, Imada, Setoguchi & Nojima 2018, "How to specify a reference point in
/// hypervolume calculation for fair performance comparison", *Evol. Comput.* 26(3), for the
/// effect of this choice). `basin pareto` should report the reference it used.
///
/// # Panics
/// If a point does not have `senses.len()` coordinates.
pub fn default_reference(points: &[Vec<f64>], senses: &[Sense]) -> Vec<f64> {
    (0..senses.len())
        .map(|j| {
            let vals = points.iter().map(|p| {
                assert_eq!(p.len(), senses.len(), "point has {} coordinates, expected {}", p.len(), senses.len());
                senses[j].orient(p[j])
            });
            let (lo, hi) = vals.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if lo > hi {
                return f64::NAN;
            }
            let range = hi - lo;
            let margin = if range > 0.0 {
                0.1 * range
            } else if hi != 0.0 {
                0.1 * hi.abs()
            } else {
                1.0
            };
            senses[j].orient(hi + margin)
        })
        .collect()
}
