//! Coverage on the bundled data is exact: each town covered by the `towns` layer is the town's own
//! geodesic area, and no layer covers more of any unit than the unit (issue 10, item 10).

mod common;

use common::bundled;
use geo::GeodesicArea;
use std::sync::Arc;

use yizhangtu::app::App;
use yizhangtu::engine::admin::AdminLevel;
use yizhangtu::engine::coverage::coverage;

/// The seeded dataset, opened as the server opens it.
async fn seeded() -> (tempfile::TempDir, Arc<App>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("areas.db");
    let app = App::open(db.to_str().unwrap(), true, None)
        .await
        .expect("open app");
    (dir, Arc::new(app))
}

/// A unit's geodesic area from the bundled file, read with the geojson crate and measured ring
/// by ring with geo's GeographicLib (independently of the server's code).
fn bundled_area_m2(f: &geojson::Feature) -> f64 {
    let g: geo::Geometry<f64> = f.geometry.clone().unwrap().try_into().unwrap();
    let polys = match g {
        geo::Geometry::Polygon(p) => vec![p],
        geo::Geometry::MultiPolygon(mp) => mp.0,
        other => panic!("not a polygon: {other:?}"),
    };
    let ring = |r: &geo::LineString<f64>| {
        geo::Polygon::new(r.clone(), vec![])
            .geodesic_area_signed()
            .abs()
    };
    polys
        .iter()
        .map(|p| ring(p.exterior()) - p.interiors().iter().map(ring).sum::<f64>())
        .sum()
}

/// Every unit of `level`, covered by its own layer, is its own area (to 1e-9 relative): its
/// neighbours share its edges, or (across district lines, whose generalised boundaries do not
/// quite meet) overlap it a little, which adds nothing to its area.
fn each_unit_covered_by_its_layer_is_its_area(app: &App, level: AdminLevel, file: &str) {
    let engine = &app.engine;
    let units = bundled(file);
    assert!(!units.features.is_empty());
    let layer = engine.layer(level.layer()).expect("admin layer");
    let idx = layer.read();
    for f in &units.features {
        let code = f
            .property("admin_code")
            .and_then(|v| v.as_str())
            .expect("a code")
            .to_string();
        let unit = engine.admin_unit(&code).expect("the unit is loaded");
        let area = engine.admin_area(&unit).expect("its area");
        let own = bundled_area_m2(f);
        let c = coverage(&idx, &area, false);
        let rel = (c.covered_m2 - own).abs() / own;
        assert!(
            rel < 1e-9,
            "{code}: covered {} m², its own area {own} m² ({rel:e})",
            c.covered_m2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_town_is_covered_by_the_towns_layer_exactly() {
    let (_dir, app) = seeded().await;
    each_unit_covered_by_its_layer_is_its_area(&app, AdminLevel::Town, "data/towns.geojson");
    each_unit_covered_by_its_layer_is_its_area(
        &app,
        AdminLevel::District,
        "data/districts.geojson",
    );
    each_unit_covered_by_its_layer_is_its_area(&app, AdminLevel::Village, "data/villages.geojson");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_layer_covers_more_of_a_unit_than_the_unit() {
    let (_dir, app) = seeded().await;
    let engine = &app.engine;
    let layers = engine.layer_ids();
    let mut answers = 0;
    for level in [AdminLevel::District, AdminLevel::Town, AdminLevel::Village] {
        let units: Vec<String> = {
            let layer = engine.layer(level.layer()).expect("admin layer");
            let idx = layer.read();
            idx.iter()
                .filter_map(|(_, f)| f.admin_code.clone())
                .collect()
        };
        for code in units {
            let unit = engine.admin_unit(&code).expect("unit");
            let area = engine.admin_area(&unit).expect("area");
            let area_m2 =
                yizhangtu::geom::geodesic_area_m2(&geo::Geometry::MultiPolygon(area.shape.clone()));
            for l in &layers {
                let layer = engine.layer(l).unwrap();
                let c = coverage(&layer.read(), &area, level != AdminLevel::District);
                assert!(
                    c.covered_m2 >= 0.0 && c.covered_m2 <= area_m2,
                    "{l} in {code}: {} of {area_m2} m²",
                    c.covered_m2
                );
                answers += 1;
            }
        }
    }
    assert!(answers > 1000, "{answers}");
}
