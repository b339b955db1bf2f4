//! Validation of large request polygons (issue 10: 100,000 vertices in < 0.5 s): the time of
//! `validate_topology` on star-shaped polygons of 10,000 to 250,000 vertices, and geo's own
//! quadratic `Validation` at 10,000 for comparison.
//!
//! `cargo bench --bench validate`

use geo::{Coord, Geometry, LineString, Polygon, Validation};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

use yizhangtu::geom::validate_topology;

/// A valid ring of `n` vertices around 大足 (105.7°E, 29.7°N), radii varying as a jagged
/// boundary does, with one hole in the middle.
fn polygon(n: usize, rng: &mut SmallRng) -> Geometry<f64> {
    let ring = |n: usize, r: f64, rng: &mut SmallRng| {
        let mut pts: Vec<Coord<f64>> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                let rr = r * rng.gen_range(0.8..1.0);
                Coord {
                    x: 105.7 + rr * a.cos(),
                    y: 29.7 + rr * a.sin(),
                }
            })
            .collect();
        pts.push(pts[0]);
        LineString(pts)
    };
    let shell = ring(n - 100, 0.2, rng);
    let hole = ring(100, 0.05, rng);
    Geometry::Polygon(Polygon::new(shell, vec![hole]))
}

fn main() {
    let mut rng = SmallRng::seed_from_u64(7);
    for n in [10_000, 50_000, 100_000, 250_000] {
        let g = polygon(n, &mut rng);
        let runs = 5;
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            validate_topology(&g).expect("valid");
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "validate_topology, {n} vertices: median {:.3} s, max {:.3} s",
            times[runs / 2],
            times[runs - 1]
        );
    }
    let g = polygon(10_000, &mut rng);
    let t = Instant::now();
    assert!(g.is_valid());
    println!(
        "geo Validation (quadratic), 10000 vertices: {:.3} s",
        t.elapsed().as_secs_f64()
    );
}
