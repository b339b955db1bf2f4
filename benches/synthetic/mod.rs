//! The synthetic data the benchmarks share: star-shaped parcels over Chongqing's extent and
//! town-sized polygons.

#![allow(dead_code)]

use geo::{Coord, Geometry, LineString, Polygon};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use yizhangtu::geom::PreparedArea;
use yizhangtu::model::Feature;

/// Chongqing's extent, roughly.
pub const WEST: f64 = 105.2;
pub const EAST: f64 = 110.2;
pub const SOUTH: f64 = 28.1;
pub const NORTH: f64 = 32.2;

/// A star-shaped polygon of 20 vertices, 50–300 m across, around a random centre.
pub fn synthetic(n: usize, seed: u64) -> Vec<Feature> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let cx = rng.gen_range(WEST..EAST);
            let cy = rng.gen_range(SOUTH..NORTH);
            let r = rng.gen_range(0.0005..0.003);
            // Exact capacity, as rings decoded from the database have.
            let mut ring: Vec<Coord<f64>> = Vec::with_capacity(20);
            for k in 0..19 {
                let a = k as f64 / 19.0 * std::f64::consts::TAU;
                let rr = r * rng.gen_range(0.6..1.0);
                ring.push(Coord {
                    x: cx + rr * a.cos(),
                    y: cy + rr * a.sin(),
                });
            }
            ring.push(ring[0]);
            let mut props = serde_json::Map::new();
            props.insert("name".into(), format!("地块{i}").into());
            props.insert(
                "area_mu".into(),
                rng.gen_range(1.0..500.0f64).round().into(),
            );
            let mut f = Feature::from_parts(
                "parcels",
                i.to_string(),
                props,
                Some(Geometry::Polygon(Polygon::new(LineString(ring), vec![]))),
            );
            f.id = i.to_string();
            f
        })
        .collect()
}

/// A wobbly 128-vertex polygon of about 70 km² somewhere in the synthetic extent.
pub fn town_polygon(seed: u64) -> PreparedArea {
    let mut rng = SmallRng::seed_from_u64(1000 + seed);
    let cx = rng.gen_range(WEST + 0.1..EAST - 0.1);
    let cy = rng.gen_range(SOUTH + 0.1..NORTH - 0.1);
    let mut ring: Vec<Coord<f64>> = (0..128)
        .map(|k| {
            let a = k as f64 / 128.0 * std::f64::consts::TAU;
            let r = 0.045 * rng.gen_range(0.85..1.0);
            Coord {
                x: cx + r * a.cos() / cy.to_radians().cos(),
                y: cy + r * a.sin(),
            }
        })
        .collect();
    ring.push(ring[0]);
    PreparedArea::new(geo::MultiPolygon(vec![Polygon::new(
        LineString(ring),
        vec![],
    )]))
}

/// `count` parcels of 0.3–5 ha spread over the core of `town`, overlapping here and there as plan
/// layers do, so that every one of them meets the town.
pub fn dense_parcels(town: &PreparedArea, count: usize) -> Vec<Feature> {
    let b = town.bbox().unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    synthetic(count, 5)
        .into_iter()
        .map(|mut f| {
            // Move each polygon to a random spot inside the town's core, so all 10,000 meet it.
            let (cx, cy) = (b.center().x, b.center().y);
            let dx = cx + rng.gen_range(-0.65..0.65) * b.width() / 2.0;
            let dy = cy + rng.gen_range(-0.65..0.65) * b.height() / 2.0;
            if let Some(Geometry::Polygon(p)) = f.geometry.take() {
                let c = geo::Centroid::centroid(&p).unwrap();
                let small = geo::Scale::scale(&p, 0.4);
                let moved = geo::Translate::translate(&small, dx - c.x(), dy - c.y());
                f.geometry = Some(Geometry::Polygon(moved));
            }
            f
        })
        .collect()
}
