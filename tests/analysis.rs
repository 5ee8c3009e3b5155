//! Tests of the analysis layer: Pareto fronts against brute force, hypervolume against
//! hand-computed cases and an exact grid decomposition, knee points and seed statistics.

use basin::analysis::pareto::{
    Objective, ParseObjectiveError, Sense, default_objectives, default_reference, dominates, hypervolume, knee_point, pareto_front,
};
use basin::analysis::stats::{aggregate_seeds, mean_ci95, student_t_quantile};
use proptest::prelude::*;

use Sense::{Maximize as Max, Minimize as Min};

fn pts(v: &[&[f64]]) -> Vec<Vec<f64>> {
    v.iter().map(|p| p.to_vec()).collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

// ---------------------------------------------------------------- brute-force references

/// `a` dominates `b` written from the definition, independently of the library.
fn brute_dominates(a: &[f64], b: &[f64], senses: &[Sense]) -> bool {
    let better_eq = |x: f64, y: f64, s: Sense| if s == Min { x <= y } else { x >= y };
    let better = |x: f64, y: f64, s: Sense| if s == Min { x < y } else { x > y };
    (0..senses.len()).all(|j| better_eq(a[j], b[j], senses[j])) && (0..senses.len()).any(|j| better(a[j], b[j], senses[j]))
}

/// O(n²) front: NaN-free points that no other point dominates.
fn brute_front(points: &[Vec<f64>], senses: &[Sense]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| points[i].iter().all(|v| !v.is_nan()))
        .filter(|&i| !points.iter().any(|q| brute_dominates(q, &points[i], senses)))
        .collect()
}

/// Exact union volume of the boxes `[p, r]` (in minimisation orientation) by decomposing
/// space into the cells of the grid spanned by all coordinates: O(n^k) cells, each counted
/// when some point weakly dominates its lower corner.
fn grid_volume(points: &[Vec<f64>], senses: &[Sense], reference: &[f64]) -> f64 {
    let k = senses.len();
    let orient = |v: f64, s: Sense| if s == Min { v } else { -v };
    let r: Vec<f64> = (0..k).map(|j| orient(reference[j], senses[j])).collect();
    let p: Vec<Vec<f64>> = points
        .iter()
        .map(|p| (0..k).map(|j| orient(p[j], senses[j])).collect::<Vec<_>>())
        .filter(|p: &Vec<f64>| (0..k).all(|j| p[j] < r[j]))
        .collect();
    let axes: Vec<Vec<f64>> = (0..k)
        .map(|j| {
            let mut c: Vec<f64> = p.iter().map(|q| q[j]).chain([r[j]]).collect();
            c.sort_by(f64::total_cmp);
            c.dedup();
            c
        })
        .collect();
    let mut total = 0.0;
    let mut idx = vec![0usize; k];
    if axes.iter().any(|a| a.len() < 2) {
        return 0.0;
    }
    loop {
        let lower: Vec<f64> = (0..k).map(|j| axes[j][idx[j]]).collect();
        if p.iter().any(|q| (0..k).all(|j| q[j] <= lower[j])) {
            total += (0..k).map(|j| axes[j][idx[j] + 1] - axes[j][idx[j]]).product::<f64>();
        }
        let mut j = 0;
        loop {
            if j == k {
                return total;
            }
            idx[j] += 1;
            if idx[j] + 1 < axes[j].len() {
                break;
            }
            idx[j] = 0;
            j += 1;
        }
    }
}

// ---------------------------------------------------------------- generators

fn sense() -> impl Strategy<Value = Sense> {
    prop_oneof![Just(Min), Just(Max)]
}

/// Small integer coordinates (many ties and duplicates), occasionally NaN or infinite.
fn coord() -> impl Strategy<Value = f64> {
    prop_oneof![
        20 => (0i32..6).prop_map(f64::from),
        4 => -1000.0..1000.0f64,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
    ]
}

fn point_set(k: usize, max_n: usize) -> impl Strategy<Value = (Vec<Sense>, Vec<Vec<f64>>)> {
    (prop::collection::vec(sense(), k), prop::collection::vec(prop::collection::vec(coord(), k), 0..max_n))
        .prop_flat_map(|(s, p)| {
            // Append copies of some points so exact duplicates are common.
            let n = p.len();
            (Just(s), Just(p), prop::collection::vec(0..n.max(1), 0..4))
        })
        .prop_map(|(s, mut p, dup)| {
            for d in dup {
                if let Some(q) = p.get(d).cloned() {
                    p.push(q);
                }
            }
            (s, p)
        })
}

/// Finite points on a small grid with a reference point beyond it.
fn hv_case(k: usize) -> impl Strategy<Value = (Vec<Sense>, Vec<Vec<f64>>, Vec<f64>)> {
    (
        prop::collection::vec(sense(), k),
        prop::collection::vec(prop::collection::vec(prop_oneof![(0i32..8).prop_map(f64::from), 0.0..8.0f64], k), 0..9),
        prop::collection::vec(6.0..10.0f64, k),
    )
        .prop_map(|(s, p, r)| {
            let flip = |v: f64, s: Sense| if s == Min { v } else { -v };
            let p = p.into_iter().map(|q| q.iter().zip(&s).map(|(&v, &s)| flip(v, s)).collect()).collect();
            let r = r.iter().zip(&s).map(|(&v, &s)| flip(v, s)).collect();
            (s, p, r)
        })
}

// ---------------------------------------------------------------- Pareto front

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn front_matches_brute_force_2d((s, p) in point_set(2, 60)) {
        prop_assert_eq!(pareto_front(&p, &s), brute_front(&p, &s));
    }

    #[test]
    fn front_matches_brute_force_3d((s, p) in point_set(3, 60)) {
        prop_assert_eq!(pareto_front(&p, &s), brute_front(&p, &s));
    }

    #[test]
    fn front_matches_brute_force_4d((s, p) in point_set(4, 60)) {
        prop_assert_eq!(pareto_front(&p, &s), brute_front(&p, &s));
    }

    #[test]
    fn front_matches_brute_force_1d((s, p) in point_set(1, 30)) {
        prop_assert_eq!(pareto_front(&p, &s), brute_front(&p, &s));
    }

    #[test]
    fn dominates_matches_definition((s, p) in point_set(3, 6)) {
        for a in &p {
            for b in &p {
                prop_assert_eq!(dominates(a, b, &s), brute_dominates(a, b, &s));
            }
        }
    }

    #[test]
    fn hypervolume_matches_grid_2d((s, p, r) in hv_case(2)) {
        let (hv, grid) = (hypervolume(&p, &s, &r), grid_volume(&p, &s, &r));
        prop_assert!(close(hv, grid, 1e-9), "hv {} grid {}", hv, grid);
    }

    #[test]
    fn hypervolume_matches_grid_3d((s, p, r) in hv_case(3)) {
        let (hv, grid) = (hypervolume(&p, &s, &r), grid_volume(&p, &s, &r));
        prop_assert!(close(hv, grid, 1e-9), "hv {} grid {}", hv, grid);
    }

    #[test]
    fn hypervolume_matches_grid_4d((s, p, r) in hv_case(4)) {
        let (hv, grid) = (hypervolume(&p, &s, &r), grid_volume(&p, &s, &r));
        prop_assert!(close(hv, grid, 1e-9), "hv {} grid {}", hv, grid);
    }

    #[test]
    fn hypervolume_of_front_equals_hypervolume_of_all((s, p, r) in hv_case(3)) {
        let front: Vec<Vec<f64>> = pareto_front(&p, &s).into_iter().map(|i| p[i].clone()).collect();
        prop_assert!(close(hypervolume(&front, &s, &r), hypervolume(&p, &s, &r), 1e-12));
    }

    #[test]
    fn mean_ci_is_order_independent(mut xs in prop::collection::vec(-1e6..1e6f64, 0..40), seed in any::<u64>()) {
        let a = mean_ci95(&xs);
        // Deterministic shuffle.
        let mut state = seed | 1;
        for i in (1..xs.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            xs.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let b = mean_ci95(&xs);
        prop_assert_eq!(a.mean.to_bits(), b.mean.to_bits());
        prop_assert_eq!(a.ci95_half_width.to_bits(), b.ci95_half_width.to_bits());
    }
}

#[test]
fn front_handles_ties_duplicates_and_nan() {
    let p = pts(&[
        &[1.0, 3.0],      // 0 front
        &[1.0, 3.0],      // 1 duplicate of 0: kept
        &[1.0, 4.0],      // 2 same x, worse y: dominated by 0
        &[2.0, 3.0],      // 3 same y, worse x: dominated by 0
        &[2.0, 2.0],      // 4 front
        &[3.0, 1.0],      // 5 front
        &[0.0, f64::NAN], // 6 NaN: never on the front
        &[4.0, 0.5],      // 7 front
    ]);
    assert_eq!(pareto_front(&p, &[Min, Min]), vec![0, 1, 4, 5, 7]);
    // Maximising both: (1,4), (2,3), (3,1), (4,0.5); (2,2) loses to (2,3), (1,3) to (1,4).
    assert_eq!(pareto_front(&p, &[Max, Max]), brute_front(&p, &[Max, Max]));
    assert_eq!(pareto_front(&p, &[Max, Max]), vec![2, 3, 5, 7]);
    assert!(pareto_front(&[], &[Min, Min]).is_empty());
}

#[test]
fn front_scales_to_many_points_in_2d() {
    // 200k points on an anti-diagonal plus dominated copies shifted by +1: the front is the
    // first 100k exactly. (Checks the sort-based path on realistic sizes; no timing.)
    let n = 100_000;
    let mut p: Vec<Vec<f64>> = (0..n).map(|i| vec![i as f64, (n - i) as f64]).collect();
    p.extend((0..n).map(|i| vec![i as f64 + 1.0, (n - i) as f64 + 1.0]));
    assert_eq!(pareto_front(&p, &[Min, Min]), (0..n).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- hypervolume by hand

#[test]
fn hypervolume_2d_hand_cases() {
    // Staircase (1,3),(2,2),(3,1) with r=(4,4): columns [1,2)x[3,4) + [2,3)x[2,4) +
    // [3,4)x[1,4) = 1 + 2 + 3 = 6.
    let p = pts(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0]]);
    assert_eq!(hypervolume(&p, &[Min, Min], &[4.0, 4.0]), 6.0);
    // The same set maximising the second objective (y ↦ -y, reference -4 → 4 - y' style):
    // points (1,-3),(2,-2),(3,-1) with r=(4,-4) under (min,max) are the same geometry.
    let q = pts(&[&[1.0, -3.0], &[2.0, -2.0], &[3.0, -1.0]]);
    assert_eq!(hypervolume(&q, &[Min, Max], &[4.0, -4.0]), 6.0);
    // A dominated point (3,3) and a duplicate change nothing; a point on the reference
    // boundary (1,4) contributes nothing.
    let mut d = p.clone();
    d.extend(pts(&[&[3.0, 3.0], &[2.0, 2.0], &[1.0, 4.0]]));
    assert_eq!(hypervolume(&d, &[Min, Min], &[4.0, 4.0]), 6.0);
    // Single point (0.5, 1.5) with r = (2, 3): 1.5 × 1.5 = 2.25.
    assert_eq!(hypervolume(&pts(&[&[0.5, 1.5]]), &[Min, Min], &[2.0, 3.0]), 2.25);
    // Nothing better than the reference.
    assert_eq!(hypervolume(&pts(&[&[5.0, 1.0]]), &[Min, Min], &[4.0, 4.0]), 0.0);
    assert_eq!(hypervolume(&[], &[Min, Min], &[4.0, 4.0]), 0.0);
    assert!(hypervolume(&p, &[Min, Min], &[f64::NAN, 4.0]).is_nan());
}

#[test]
fn hypervolume_3d_hand_cases() {
    let mmm = [Min, Min, Min];
    // Single box: (1,2,3) to (4,4,4) = 3 × 2 × 1 = 6.
    assert_eq!(hypervolume(&pts(&[&[1.0, 2.0, 3.0]]), &mmm, &[4.0, 4.0, 4.0]), 6.0);
    // Two overlapping boxes with r = (4,4,4): A = (1,2,2) → 3·2·2 = 12, B = (2,1,1) → 2·3·3 = 18,
    // A ∩ B = (2,2,2) → 2·2·2 = 8; union = 12 + 18 − 8 = 22.
    assert_eq!(hypervolume(&pts(&[&[1.0, 2.0, 2.0], &[2.0, 1.0, 1.0]]), &mmm, &[4.0, 4.0, 4.0]), 22.0);
    // Staircase of the three unit-offset axis points with r = (2,2,2): each of (0,1,1),
    // (1,0,1), (1,1,0) dominates a 2×1×1 slab; pairwise intersections are the unit cube
    // [1,2]³ (volume 1), as is the triple intersection: 3·2 − 3·1 + 1 = 4.
    let stair = pts(&[&[0.0, 1.0, 1.0], &[1.0, 0.0, 1.0], &[1.0, 1.0, 0.0]]);
    assert_eq!(hypervolume(&stair, &mmm, &[2.0, 2.0, 2.0]), 4.0);
    // Adding the origin covers the whole cube [0,2]³ = 8.
    let mut all = stair.clone();
    all.push(vec![0.0, 0.0, 0.0]);
    assert_eq!(hypervolume(&all, &mmm, &[2.0, 2.0, 2.0]), 8.0);
    // Mixed senses: maximise the third objective. (1,2,-2),(2,1,-1) with r = (4,4,-4) is the
    // two-box case above mirrored in z: 22.
    let mixed = pts(&[&[1.0, 2.0, -2.0], &[2.0, 1.0, -1.0]]);
    assert_eq!(hypervolume(&mixed, &[Min, Min, Max], &[4.0, 4.0, -4.0]), 22.0);
}

#[test]
fn hypervolume_4d_hand_case() {
    // Two 4-D boxes with r = 0⃗ + 2: (0,0,0,1) → 2·2·2·1 = 8 and (1,1,1,0) → 1·1·1·2 = 2,
    // intersection (1,1,1,1) → 1: union 9.
    let p = pts(&[&[0.0, 0.0, 0.0, 1.0], &[1.0, 1.0, 1.0, 0.0]]);
    assert_eq!(hypervolume(&p, &[Min; 4], &[2.0; 4]), 9.0);
}

#[test]
fn default_reference_is_nadir_plus_tenth_of_range() {
    // Energy in [1, 3] (min), accuracy in [0.7, 0.9] (max), constant latency 5 (min).
    let p = pts(&[&[1.0, 0.9, 5.0], &[3.0, 0.7, 5.0], &[2.0, 0.8, 5.0], &[f64::NAN, 0.0, 5.0]]);
    let r = default_reference(&p, &[Min, Max, Min]);
    assert!(close(r[0], 3.0 + 0.1 * 2.0, 1e-15));
    // The NaN row still contributes its accuracy 0.0 (NaN only removes that coordinate).
    assert!(close(r[1], 0.0 - 0.1 * 0.9, 1e-15));
    assert!(close(r[2], 5.5, 1e-15));
    // Every point is strictly better than the default reference.
    let finite: Vec<Vec<f64>> = p[..3].to_vec();
    assert!(hypervolume(&finite, &[Min, Max, Min], &r) > 0.0);
    assert!(default_reference(&[], &[Min])[0].is_nan());
    assert_eq!(default_reference(&pts(&[&[0.0]]), &[Min]), vec![1.0]);
}

// ---------------------------------------------------------------- knee

#[test]
fn knee_on_hand_made_front() {
    // Front in (energy ↓, accuracy ↑). Normalised over the front (best = 0):
    //   (1, 0.60) → (0, 1)          distance 1
    //   (2, 0.85) → (0.25, 0.1667)  distance √(0.0625 + 0.0278) = 0.300
    //   (3, 0.88) → (0.5, 0.0667)   distance 0.504
    //   (5, 0.90) → (1, 0)          distance 1
    let front = pts(&[&[1.0, 0.60], &[2.0, 0.85], &[3.0, 0.88], &[5.0, 0.90]]);
    assert_eq!(knee_point(&front, &[Min, Max]), Some(1));
    // Order does not matter (index follows the point).
    let rev: Vec<Vec<f64>> = front.iter().rev().cloned().collect();
    assert_eq!(knee_point(&rev, &[Min, Max]), Some(2));
    // A single point, a constant objective, and no finite points.
    assert_eq!(knee_point(&pts(&[&[3.0, 1.0]]), &[Min, Min]), Some(0));
    assert_eq!(knee_point(&pts(&[&[1.0, 7.0], &[2.0, 7.0]]), &[Min, Min]), Some(0));
    assert_eq!(knee_point(&pts(&[&[f64::NAN, 1.0]]), &[Min, Min]), None);
    assert_eq!(knee_point(&[], &[Min, Min]), None);
}

// ---------------------------------------------------------------- objectives

#[test]
fn objectives_parse_and_round_trip() {
    let o: Objective = "energy_j_per_request:min".parse().unwrap();
    assert_eq!(o, Objective::new("energy_j_per_request", Min));
    assert_eq!("accuracy:MAXIMIZE".parse::<Objective>().unwrap().sense, Max);
    assert_eq!("a:b:max".parse::<Objective>().unwrap().column, "a:b");
    assert_eq!(o.to_string().parse::<Objective>().unwrap(), o);
    for s in ["min", "minimize", " Min "] {
        assert_eq!(s.parse::<Sense>().unwrap(), Min);
    }
    assert!(matches!("latency".parse::<Objective>(), Err(ParseObjectiveError::Shape(_))));
    assert!(matches!(":min".parse::<Objective>(), Err(ParseObjectiveError::Shape(_))));
    let err = "latency:lower".parse::<Objective>().unwrap_err();
    assert!(err.to_string().contains("lower") && err.to_string().contains("minimize"), "{err}");
    let d = default_objectives();
    assert_eq!(d.iter().map(ToString::to_string).collect::<Vec<_>>(), ["energy_j_per_request:min", "latency_ms_p99:min", "accuracy:max"]);
    // serde: snake_case names with short aliases.
    assert_eq!(serde_json::to_string(&Max).unwrap(), "\"maximize\"");
    let o: Objective = serde_json::from_str(r#"{"column":"x","sense":"min"}"#).unwrap();
    assert_eq!(o.sense, Min);
}

// ---------------------------------------------------------------- statistics

#[test]
fn t_quantiles_match_tables() {
    // Two-sided 95 % critical values (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
    for (df, t) in [
        (1.0, 12.706_204_736),
        (2.0, 4.302_652_730),
        (4.0, 2.776_445_105),
        (9.0, 2.262_157_163),
        (29.0, 2.045_229_642),
        (30.0, 2.042_272_456),
        (f64::INFINITY, 1.959_963_985),
    ] {
        let q = student_t_quantile(0.975, df);
        assert!((q - t).abs() < 1e-8, "df {df}: {q} vs {t}");
    }
    // Cauchy (df = 1) has the closed form tan(π(p − ½)).
    for p in [0.6, 0.9, 0.999, 0.999_999] {
        let exact = (std::f64::consts::PI * (p - 0.5)).tan();
        assert!(close(student_t_quantile(p, 1.0), exact, 1e-10));
    }
    // df = 2 has the closed form (2p − 1)·√(2 / (4p(1 − p))).
    for p in [0.55f64, 0.8, 0.99, 1e-6] {
        let exact = (2.0 * p - 1.0) * (2.0 / (4.0 * p * (1.0 - p))).sqrt();
        assert!(close(student_t_quantile(p, 2.0), exact, 1e-10));
    }
    // Large df approaches the normal quantile from above, monotonically.
    let qs: Vec<f64> = [100.0, 1e3, 1e4, 2e4, 1e6].iter().map(|&d| student_t_quantile(0.975, d)).collect();
    assert!(qs.windows(2).all(|w| w[0] > w[1]) && *qs.last().unwrap() > 1.959_963_984);
    assert!(student_t_quantile(1.0, 3.0).is_nan() && student_t_quantile(0.9, 0.0).is_nan());
    assert_eq!(student_t_quantile(0.5, 3.0), 0.0);
}

#[test]
fn mean_ci95_by_hand() {
    // xs = 1..=5: mean 3, deviations² 4+1+0+1+4 = 10, s² = 10/4 = 2.5, s = 1.5811388,
    // half = t(0.975, 4) · s / √5 = 2.7764451 · 0.7071068 = 1.9632432.
    let m = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!((m.mean, m.n), (3.0, 5));
    assert!(close(m.std, 2.5f64.sqrt(), 1e-15));
    assert!((m.ci95_half_width - 1.963_243_2).abs() < 1e-7, "{m:?}");
    assert!(close(m.lo(), 3.0 - m.ci95_half_width, 1e-15) && close(m.hi(), 3.0 + m.ci95_half_width, 1e-15));
    // Two values 10, 12: mean 11, s = √2, half = 12.7062047 · √2 / √2 = 12.7062047.
    let m = mean_ci95(&[12.0, 10.0]);
    assert_eq!(m.mean, 11.0);
    assert!((m.ci95_half_width - 12.706_204_7).abs() < 1e-6);
    // Constant sample: zero width. One value: NaN spread. Empty: NaN mean.
    assert_eq!(mean_ci95(&[4.0; 7]).ci95_half_width, 0.0);
    let one = mean_ci95(&[4.0]);
    assert!(one.mean == 4.0 && one.n == 1 && one.std.is_nan() && one.ci95_half_width.is_nan());
    let none = mean_ci95(&[]);
    assert!(none.mean.is_nan() && none.n == 0);
    assert!(mean_ci95(&[1.0, f64::NAN]).mean.is_nan());
}

#[test]
fn aggregate_seeds_groups_and_orders_by_key() {
    // Key = (workload, batch size); the seed is not part of the key.
    let rows = vec![
        (("resnet", 8), vec![1.0, 10.0]),
        (("bert", 4), vec![5.0, 50.0]),
        (("resnet", 8), vec![3.0, 30.0]),
        (("bert", 4), vec![7.0, 70.0]),
        (("bert", 2), vec![2.0, 20.0]),
    ];
    let agg = aggregate_seeds(&rows).unwrap();
    let keys: Vec<_> = agg.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, [("bert", 2), ("bert", 4), ("resnet", 8)]);
    assert_eq!(agg[1].1[0], mean_ci95(&[5.0, 7.0]));
    assert_eq!(agg[1].1[1], mean_ci95(&[50.0, 70.0]));
    assert_eq!(agg[2].1[0].mean, 2.0);
    assert_eq!(agg[0].1[0].n, 1);
    // Input order does not change the output.
    let mut rev = rows.clone();
    rev.reverse();
    assert_eq!(format!("{:?}", aggregate_seeds(&rev).unwrap()), format!("{agg:?}")); // NaN != NaN
    // Ragged rows are a typed error naming the row.
    let mut bad = rows.clone();
    bad[3].1.pop();
    let err = aggregate_seeds(&bad).unwrap_err();
    assert_eq!((err.row, err.found, err.expected), (3, 1, 2));
    assert!(err.to_string().contains("row 3"));
    assert!(aggregate_seeds::<u8>(&[]).unwrap().is_empty());
}
