//! Coverage of a town-sized polygon over 10,000 intersecting polygons, with its parts timed
//! separately: `cargo bench --bench coverage`. (The same figure is part of `--bench engine`,
//! which first builds a 1,000,000-polygon set; this one starts in a second.)

use geo::{GeodesicArea, Geometry, Polygon};
use std::time::{Duration, Instant};

use yizhangtu::engine::coverage::coverage;
use yizhangtu::engine::LayerIndex;
use yizhangtu::geom::union_area_m2;
use yizhangtu::model::Layer;

mod synthetic;

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        samples.push(t.elapsed());
    }
    samples.sort();
    (samples[samples.len() / 2], last.unwrap())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let town = synthetic::town_polygon(1);
    let dense = synthetic::dense_parcels(&town, 10_000);
    let pieces: Vec<Polygon<f64>> = dense
        .iter()
        .filter_map(|f| match &f.geometry {
            Some(Geometry::Polygon(p)) => Some(p.clone()),
            _ => None,
        })
        .collect();
    if let Ok(n) = std::env::var("UNION_ONLY") {
        // For profilers: only the union area, n times.
        let n: usize = n.parse().unwrap_or(20);
        let (t, a) = time(n, || union_area_m2(&pieces));
        println!("union area p50 {:.1} ms {a:.3}", ms(t));
        return;
    }
    let idx = LayerIndex::build(Layer::untitled("dense"), 1, dense);
    if let Ok(n) = std::env::var("COVERAGE_ONLY") {
        // For profilers: only the coverage, n times.
        let (t, c) = time(n.parse().unwrap_or(20), || coverage(&idx, &town, false));
        println!("coverage p50 {:.1} ms {:.3}", ms(t), c.covered_m2);
        return;
    }

    let (t, c) = time(20, || coverage(&idx, &town, false));
    println!(
        "coverage of a town over 10,000 polygons   p50 {:>8.1} ms   ({} features, union {:.0} m²)",
        ms(t),
        c.features,
        c.covered_m2
    );
    let (t, a) = time(20, || union_area_m2(&pieces));
    println!(
        "  union area without the union (used)     p50 {:>8.1} ms   {a:.3} m²",
        ms(t)
    );
    // The overlay way, for comparison: build the union (i_overlay through geo), then its area.
    let (t, u) = time(5, || geo::unary_union(pieces.iter()));
    println!(
        "  overlay union (geo::unary_union)        p50 {:>8.1} ms   {} polygons, {} coordinates",
        ms(t),
        u.0.len(),
        geo::CoordsIter::coords_count(&u)
    );
    let (t, b) = time(5, || u.geodesic_area_unsigned());
    println!(
        "  + geodesic area of that union           p50 {:>8.1} ms   {b:.3} m²",
        ms(t)
    );
    println!(
        "  relative difference of the two areas         {:.1e}",
        (a - b).abs() / b
    );
}
