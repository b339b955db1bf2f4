//! Coverage of a town-sized polygon over 10,000 intersecting polygons, with its parts timed
//! separately, and of a drawn polygon of 50,000 vertices over the same parcels:
//! `cargo bench --bench coverage`. (The town's figure is part of `--bench engine`, which first
//! builds a 1,000,000-polygon set; this one starts in a second.)

use geo::{Coord, GeodesicArea, Geometry, LineString, MultiPolygon, Polygon};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use yizhangtu::engine::coverage::coverage;
use yizhangtu::engine::LayerIndex;
use yizhangtu::geom::{union_area_m2, PreparedArea};
use yizhangtu::model::Layer;

mod synthetic;

/// Counts live heap bytes and their peak, so the extra memory of one request can be read.
/// Allocates with mimalloc, the allocator of the `yizhangtu` binary (src/main.rs), so the
/// times are the server's.
struct Counting;
static SERVER_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { SERVER_ALLOCATOR.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { SERVER_ALLOCATOR.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { SERVER_ALLOCATOR.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A drawn polygon of `n` vertices around the town's centre, reaching past the town so that its
/// jagged edge (a few metres in and out from vertex to vertex) crosses parcels all round.
fn drawn_polygon(town: &PreparedArea, n: usize) -> Polygon<f64> {
    let b = town.bbox().unwrap();
    let (cx, cy) = (b.center().x, b.center().y);
    let mut rng = SmallRng::seed_from_u64(50_000);
    let mut ring: Vec<Coord<f64>> = (0..n)
        .map(|k| {
            let a = k as f64 / n as f64 * std::f64::consts::TAU;
            let r = 0.03 * (1.0 + 0.2 * (5.0 * a).sin()) + rng.gen_range(0.0..0.00005);
            Coord {
                x: cx + r * a.cos() / cy.to_radians().cos(),
                y: cy + r * a.sin(),
            }
        })
        .collect();
    ring.push(ring[0]);
    Polygon::new(LineString(ring), vec![])
}

fn time<T>(runs: usize, f: impl FnMut() -> T) -> (Duration, T) {
    let (p50, _, last) = time_p95(runs, f);
    (p50, last)
}

/// p50 and p95 of `runs` runs of `f`, and its last answer.
fn time_p95<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        samples.push(t.elapsed());
    }
    samples.sort();
    let p95 = samples[(samples.len() * 95).div_ceil(100) - 1];
    (samples[samples.len() / 2], p95, last.unwrap())
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
        let (t, t95, c) = time_p95(n.parse().unwrap_or(20), || coverage(&idx, &town, false));
        println!(
            "coverage p50 {:.1} ms p95 {:.1} ms {:.3}",
            ms(t),
            ms(t95),
            c.covered_m2
        );
        return;
    }

    let (t, t95, c) = time_p95(40, || coverage(&idx, &town, false));
    println!(
        "coverage of a town over 10,000 polygons   p50 {:>8.1} ms   p95 {:>8.1} ms   ({} features, union {:.0} m²)",
        ms(t),
        ms(t95),
        c.features,
        c.covered_m2
    );
    // A drawn polygon of 50,000 vertices, prepared and measured as /analysis/coverage does.
    let drawn = drawn_polygon(&town, 50_000);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let (t, c) = time(5, || {
        let area = PreparedArea::new(MultiPolygon(vec![drawn.clone()]));
        let c = coverage(&idx, &area, false);
        (c, area.area_m2())
    });
    let extra = PEAK.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "coverage of a 50,000-vertex drawn polygon p50 {:>8.1} ms   peak {:.0} MB extra   ({} features, {:.0} of {:.0} m²)",
        ms(t),
        extra as f64 / 1e6,
        c.0.features,
        c.0.covered_m2,
        c.1
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
