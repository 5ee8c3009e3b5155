//! Basins and catchments of a metric over a two-axis grid (the "energy landscape" of a sweep).
//!
//! Definitions (also stated in `docs/src/landscapes.md` and in every landscape JSON):
//!
//! - Cells are ordered by `(z, x index, y index)`: by the (oriented) metric, ties broken by grid
//!   position, so the order is total and every comparison below is strict. With
//!   [`Sense::Maximize`] the metric is negated first, so "lower" always means "better".
//! - A **basin** is a feasible cell lower in that order than each feasible neighbour of its
//!   8-neighbourhood (a feasible cell without feasible neighbours is a basin of its own).
//! - **Descent** from a cell moves to its lowest feasible neighbour while that neighbour is lower
//!   than the cell; it always ends at a basin.
//! - A cell's **catchment** is the basin where its descent ends; infeasible cells belong to no
//!   catchment, and missing grid points (a sweep that did not run them) are neither neighbours
//!   nor cells.
//! - With seeds, a basin is **distinguishable** from its lowest feasible neighbour when their
//!   95 % confidence intervals do not overlap.
//!
//! Everything here is pure: cells come in by grid index, results go out by cell index.

use serde::Serialize;

use crate::analysis::pareto::Sense;

/// The definitions above in one paragraph, for the JSON beside a landscape figure.
pub const DEFINITIONS: &str = "Cells are ordered by (z, x index, y index) (z negated with --maximize), so ties are \
broken by grid position. A basin is a feasible cell lower in that order than each feasible neighbour of its \
8-neighbourhood. Descent from a cell moves to its lowest feasible neighbour while that neighbour is lower than \
the cell. A cell's catchment is the basin where its descent ends; infeasible cells belong to no catchment. A \
basin is distinguishable from its lowest feasible neighbour when their 95% confidence intervals (over seeds) do \
not overlap.";

/// One grid point: its position by axis index, the metric (mean over seeds), the half-width of
/// its 95 % confidence interval (NaN without seeds) and whether it satisfies the constraints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub xi: usize,
    pub yi: usize,
    pub z: f64,
    pub ci95: f64,
    pub feasible: bool,
}

/// A basin: the cell (index into the input), how many cells descend into it (itself included),
/// its lowest feasible neighbour and whether the two are distinguishable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Basin {
    pub cell: usize,
    pub catchment: usize,
    pub lowest_neighbour: Option<usize>,
    /// `None` without a neighbour or without finite confidence intervals on both.
    pub distinguishable: Option<bool>,
}

/// The analysed grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Landscape {
    /// Basins from lowest to highest in the cell order: the first is the global minimum.
    pub basins: Vec<Basin>,
    /// Per input cell: the index into `basins` of its catchment (`None` for infeasible cells).
    pub catchment_of: Vec<Option<usize>>,
    /// Per input cell: the next cell of its descent (`None` at a basin and for infeasible cells).
    next: Vec<Option<usize>>,
}

impl Landscape {
    /// The global minimum's cell (the lowest feasible cell), `None` when nothing is feasible.
    pub fn global_minimum(&self) -> Option<usize> {
        self.basins.first().map(|b| b.cell)
    }

    /// The cells visited by descent from `start` (itself first, its basin last); just `start`
    /// for an infeasible cell.
    pub fn descent_path(&self, start: usize) -> Vec<usize> {
        let mut path = vec![start];
        while let Some(n) = self.next[*path.last().expect("non-empty")] {
            path.push(n);
        }
        path
    }
}

/// Input that cannot be analysed; cells are named by their grid indices.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LandscapeError {
    #[error("the metric is NaN at grid point (x index {xi}, y index {yi})")]
    NanMetric { cell: usize, xi: usize, yi: usize },
    #[error("grid point (x index {xi}, y index {yi}) is outside the {nx} x {ny} grid")]
    OutOfGrid { xi: usize, yi: usize, nx: usize, ny: usize },
    #[error("grid point (x index {xi}, y index {yi}) is given twice")]
    Duplicate { xi: usize, yi: usize },
}

/// Analyses `cells` on an `nx × ny` grid (cells may be missing; each present at most once).
pub fn analyse(nx: usize, ny: usize, cells: &[Cell], sense: Sense) -> Result<Landscape, LandscapeError> {
    let mut at: Vec<Option<usize>> = vec![None; nx * ny];
    for (i, c) in cells.iter().enumerate() {
        if c.xi >= nx || c.yi >= ny {
            return Err(LandscapeError::OutOfGrid { xi: c.xi, yi: c.yi, nx, ny });
        }
        if c.z.is_nan() {
            return Err(LandscapeError::NanMetric { cell: i, xi: c.xi, yi: c.yi });
        }
        let slot = &mut at[c.xi * ny + c.yi];
        if slot.is_some() {
            return Err(LandscapeError::Duplicate { xi: c.xi, yi: c.yi });
        }
        *slot = Some(i);
    }
    let key = |i: usize| (sense.orient(cells[i].z), cells[i].xi, cells[i].yi);
    let lower = |a: usize, b: usize| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0).then(ka.1.cmp(&kb.1)).then(ka.2.cmp(&kb.2)).is_lt()
    };
    let lowest_neighbour = |i: usize| -> Option<usize> {
        let c = cells[i];
        let mut best: Option<usize> = None;
        for dx in -1i64..=1 {
            for dy in -1i64..=1 {
                let (x, y) = (c.xi as i64 + dx, c.yi as i64 + dy);
                if (dx, dy) == (0, 0) || x < 0 || y < 0 || x >= nx as i64 || y >= ny as i64 {
                    continue;
                }
                if let Some(n) = at[x as usize * ny + y as usize].filter(|&n| cells[n].feasible)
                    && best.is_none_or(|b| lower(n, b))
                {
                    best = Some(n);
                }
            }
        }
        best
    };
    let neighbour: Vec<Option<usize>> = (0..cells.len()).map(|i| if cells[i].feasible { lowest_neighbour(i) } else { None }).collect();
    let next: Vec<Option<usize>> = (0..cells.len()).map(|i| neighbour[i].filter(|&n| lower(n, i))).collect();
    let mut basin_cells: Vec<usize> = (0..cells.len()).filter(|&i| cells[i].feasible && next[i].is_none()).collect();
    basin_cells.sort_by(|&a, &b| {
        if lower(a, b) {
            std::cmp::Ordering::Less
        } else if lower(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let mut basin_index = vec![None; cells.len()];
    for (k, &b) in basin_cells.iter().enumerate() {
        basin_index[b] = Some(k);
    }
    // Descent strictly decreases in a total order over finitely many cells, so it terminates.
    let catchment_of: Vec<Option<usize>> = (0..cells.len())
        .map(|i| {
            if !cells[i].feasible {
                return None;
            }
            let mut c = i;
            while let Some(n) = next[c] {
                c = n;
            }
            basin_index[c]
        })
        .collect();
    let basins = basin_cells
        .iter()
        .enumerate()
        .map(|(k, &b)| {
            let n = neighbour[b];
            let distinguishable = n.and_then(|n| {
                let (p, q) = (cells[b], cells[n]);
                (p.ci95.is_finite() && q.ci95.is_finite()).then_some(p.z + p.ci95 < q.z - q.ci95 || q.z + q.ci95 < p.z - p.ci95)
            });
            Basin { cell: b, catchment: catchment_of.iter().filter(|c| **c == Some(k)).count(), lowest_neighbour: n, distinguishable }
        })
        .collect();
    Ok(Landscape { basins, catchment_of, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cells of a full grid from rows of z values (`rows[yi][xi]`), all feasible, no CI.
    fn grid(rows: &[&[f64]]) -> (usize, usize, Vec<Cell>) {
        let (ny, nx) = (rows.len(), rows[0].len());
        let cells = (0..nx)
            .flat_map(|xi| (0..ny).map(move |yi| (xi, yi)))
            .map(|(xi, yi)| Cell { xi, yi, z: rows[yi][xi], ci95: f64::NAN, feasible: true })
            .collect();
        (nx, ny, cells)
    }

    fn basin_positions(cells: &[Cell], l: &Landscape) -> Vec<(usize, usize, usize)> {
        l.basins.iter().map(|b| (cells[b.cell].xi, cells[b.cell].yi, b.catchment)).collect()
    }

    fn cell_at(cells: &[Cell], xi: usize, yi: usize) -> usize {
        cells.iter().position(|c| (c.xi, c.yi) == (xi, yi)).unwrap()
    }

    #[test]
    fn one_bowl_is_one_basin_catching_everything() {
        let (nx, ny, cells) = grid(&[&[5.0, 4.0, 5.0], &[4.0, 1.0, 4.0], &[5.0, 4.0, 5.0]]);
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(1, 1, 9)]);
        assert_eq!(l.global_minimum(), Some(cell_at(&cells, 1, 1)));
        assert!(l.catchment_of.iter().all(|c| *c == Some(0)));
        let corner = cell_at(&cells, 0, 0);
        assert_eq!(l.descent_path(corner), vec![corner, cell_at(&cells, 1, 1)]);
    }

    #[test]
    fn two_valleys_split_the_grid_and_maximize_flips_the_order() {
        // A ridge at x = 2 separates a deep valley at x = 0 from a shallow one at x = 4.
        let (nx, ny, cells) = grid(&[&[1.0, 3.0, 9.0, 4.0, 2.0], &[2.0, 4.0, 9.0, 5.0, 3.0]]);
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        // The ridge cells descend left (x = 1 is lower than x = 3), so the left basin gets 6.
        assert_eq!(basin_positions(&cells, &l), vec![(0, 0, 6), (4, 0, 4)]);
        assert_eq!(l.basins.iter().map(|b| b.catchment).sum::<usize>(), cells.len());
        let m = analyse(nx, ny, &cells, Sense::Maximize).unwrap();
        assert_eq!(basin_positions(&cells, &m), vec![(2, 0, 10)]);
    }

    #[test]
    fn plateau_ties_go_to_the_lowest_grid_position() {
        let (nx, ny, cells) = grid(&[&[2.0, 2.0, 2.0], &[2.0, 2.0, 2.0]]);
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(0, 0, 6)]);
        // Two separate equal minima: the one with the smaller x index is the global minimum.
        let (nx, ny, cells) = grid(&[&[1.0, 5.0, 5.0, 1.0]]);
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(0, 0, 2), (3, 0, 2)]);
    }

    #[test]
    fn an_infeasible_wall_splits_a_basin() {
        let (nx, ny, mut cells) = grid(&[&[3.0, 2.0, 0.0, 1.0, 2.0], &[3.0, 2.0, 0.0, 1.0, 2.0]]);
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(2, 0, 10)]);
        for c in cells.iter_mut().filter(|c| c.xi == 2) {
            c.feasible = false;
        }
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(3, 0, 4), (1, 0, 4)]);
        for c in cells.iter().enumerate().filter(|(_, c)| c.xi == 2) {
            assert_eq!(l.catchment_of[c.0], None);
            assert_eq!(l.descent_path(c.0), vec![c.0]);
        }
    }

    #[test]
    fn a_single_row_and_a_single_column() {
        let (nx, ny, cells) = grid(&[&[3.0, 1.0, 2.0, 0.5, 4.0]]);
        assert_eq!((nx, ny), (5, 1));
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(3, 0, 3), (1, 0, 2)]);
        let (nx, ny, cells) = grid(&[&[3.0], &[1.0], &[2.0], &[0.5], &[4.0]]);
        assert_eq!((nx, ny), (1, 5));
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(0, 3, 3), (0, 1, 2)]);
    }

    #[test]
    fn missing_points_are_not_neighbours() {
        // Without (1, 0) and (1, 1) the two halves no longer touch: two basins.
        let (nx, ny, cells) = grid(&[&[1.0, 5.0, 2.0], &[3.0, 5.0, 4.0]]);
        let cells: Vec<Cell> = cells.into_iter().filter(|c| c.xi != 1).collect();
        let l = analyse(nx, ny, &cells, Sense::Minimize).unwrap();
        assert_eq!(basin_positions(&cells, &l), vec![(0, 0, 2), (2, 0, 2)]);
        assert_eq!(l.catchment_of.len(), 4);
    }

    #[test]
    fn nan_metric_names_the_point() {
        let (nx, ny, mut cells) = grid(&[&[1.0, 2.0], &[3.0, 4.0]]);
        let i = cell_at(&cells, 1, 0);
        cells[i].z = f64::NAN;
        let e = analyse(nx, ny, &cells, Sense::Minimize).unwrap_err();
        assert_eq!(e, LandscapeError::NanMetric { cell: i, xi: 1, yi: 0 });
        assert_eq!(e.to_string(), "the metric is NaN at grid point (x index 1, y index 0)");
    }

    #[test]
    fn out_of_grid_and_duplicate_points_are_errors() {
        let c = |xi, yi| Cell { xi, yi, z: 1.0, ci95: f64::NAN, feasible: true };
        assert!(matches!(analyse(2, 2, &[c(2, 0)], Sense::Minimize), Err(LandscapeError::OutOfGrid { .. })));
        assert!(matches!(analyse(2, 2, &[c(0, 0), c(0, 0)], Sense::Minimize), Err(LandscapeError::Duplicate { xi: 0, yi: 0 })));
    }

    #[test]
    fn distinguishable_when_intervals_do_not_overlap() {
        let cell = |xi, z, ci95| Cell { xi, yi: 0, z, ci95, feasible: true };
        let l = analyse(3, 1, &[cell(0, 1.0, 0.2), cell(1, 2.0, 0.2), cell(2, 2.5, 0.5)], Sense::Minimize).unwrap();
        assert_eq!(l.basins.len(), 1);
        assert_eq!(l.basins[0].lowest_neighbour, Some(1));
        assert_eq!(l.basins[0].distinguishable, Some(true));
        let l = analyse(2, 1, &[cell(0, 1.0, 0.6), cell(1, 2.0, 0.6)], Sense::Minimize).unwrap();
        assert_eq!(l.basins[0].distinguishable, Some(false));
        let l = analyse(2, 1, &[cell(0, 1.0, f64::NAN), cell(1, 2.0, 0.1)], Sense::Minimize).unwrap();
        assert_eq!(l.basins[0].distinguishable, None);
        let l = analyse(1, 1, &[cell(0, 1.0, 0.1)], Sense::Minimize).unwrap();
        assert_eq!((l.basins[0].lowest_neighbour, l.basins[0].distinguishable), (None, None));
    }

    #[test]
    fn nothing_feasible_means_no_basin() {
        let cells = [Cell { xi: 0, yi: 0, z: 1.0, ci95: f64::NAN, feasible: false }];
        let l = analyse(1, 1, &cells, Sense::Minimize).unwrap();
        assert!(l.basins.is_empty());
        assert_eq!(l.global_minimum(), None);
    }
}
