//! Validation of large request polygons (issue 10: 100,000 vertices in < 0.5 s): the time of
//! `validate_topology` on polygons of 10,000 to 250,000 vertices (the limit) of two shapes, and
//! geo's own quadratic `Validation` at 10,000 for comparison.
//!
//! - jagged: a boundary as surveyed ones are, the radius wandering a little from vertex to
//!   vertex, with a hole;
//! - spiky: every vertex at a random radius, so that each edge is a long spike whose box meets
//!   thousands of others: the worst case for a search by boxes (the time grows with n × the
//!   boxes each box meets, not n log n).
//!
//! `cargo bench --bench validate`

use geo::{Coord, Geometry, LineString, Polygon, Validation};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

use yizhangtu::geom::validate_topology;

/// A closed ring of `n` vertices around 大足 (105.7°E, 29.7°N); `spread` is how far the radius
/// of one vertex may differ from the previous one's (as a fraction of `r`) when `spiky` is
/// false, or from `r` itself when it is true.
fn ring(n: usize, r: f64, spiky: bool, rng: &mut SmallRng) -> LineString<f64> {
    let mut f = 1.0f64;
    let mut pts: Vec<Coord<f64>> = (0..n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            f = if spiky {
                rng.gen_range(0.8..1.0)
            } else {
                (f + rng.gen_range(-2e-4..2e-4)).clamp(0.8, 1.0)
            };
            Coord {
                x: 105.7 + r * f * a.cos(),
                y: 29.7 + r * f * a.sin(),
            }
        })
        .collect();
    pts.push(pts[0]);
    LineString(pts)
}

fn polygon(n: usize, spiky: bool, rng: &mut SmallRng) -> Geometry<f64> {
    let shell = ring(n - 102, 0.2, spiky, rng);
    let hole = ring(100, 0.05, false, rng);
    Geometry::Polygon(Polygon::new(shell, vec![hole]))
}

/// A spiky shell of `n - 4` vertices (the first repeated at the end) with a thin triangular hole whose tip is the shell's
/// deepest vertex, pointing to the centre: the two rings touch at that point only.
fn touching(n: usize, rng: &mut SmallRng) -> Geometry<f64> {
    let mut shell = ring(n - 5, 0.2, true, rng);
    let k = (n - 5) / 3;
    let a = k as f64 / (n - 5) as f64 * std::f64::consts::TAU;
    let at = |r: f64, da: f64| Coord {
        x: 105.7 + r * (a + da).cos(),
        y: 29.7 + r * (a + da).sin(),
    };
    shell.0[k] = at(0.2 * 0.79, 0.0);
    let hole = LineString(vec![shell.0[k], at(0.1, -1e-4), at(0.1, 1e-4), shell.0[k]]);
    Geometry::Polygon(Polygon::new(shell, vec![hole]))
}

fn main() {
    let mut rng = SmallRng::seed_from_u64(7);
    for spiky in [false, true] {
        let shape = if spiky { "spiky" } else { "jagged" };
        for n in [10_000, 50_000, 100_000, 250_000] {
            let g = polygon(n, spiky, &mut rng);
            let runs = if spiky && n > 100_000 { 1 } else { 5 };
            let mut times = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                validate_topology(&g).expect("valid");
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            println!(
                "validate_topology, {shape}, {n} vertices: median {:.3} s, max {:.3} s",
                times[runs / 2],
                times[runs - 1]
            );
        }
    }
    // A spiky shell with a small hole touching it at one vertex (valid): rings that meet, where
    // geo's relate decides.
    for n in [100_000, 250_000] {
        let g = touching(n, &mut rng);
        let t = Instant::now();
        validate_topology(&g).expect("valid");
        println!(
            "validate_topology, spiky with a touching hole, {n} vertices: {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
    let g = polygon(10_000, false, &mut rng);
    let t = Instant::now();
    assert!(g.is_valid());
    println!(
        "geo Validation (quadratic), jagged, 10000 vertices: {:.3} s",
        t.elapsed().as_secs_f64()
    );
}
