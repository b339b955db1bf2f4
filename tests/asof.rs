//! `asof=` (issue 11 item 9) and `plan=` (issue 14 item 1) beyond items: area features,
//! coverage (GET and POST), tiles and exports answer as the layers stood at an instant, or with
//! one plan's features only. Expected figures are computed here, independently: which features
//! were written when, and their geodesic areas (geo's `GeodesicArea`).

mod common;

use geo::{Contains, GeodesicArea};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::f64::consts::PI;

use common::{start, TestServer};

/// 龙水镇, 大足区: the town the features are written in.
const TOWN: &str = "500111100";
/// A layer with few features there (蔬菜基地), so that whole tiles of the town are free of it.
const LAYER: &str = "vegetable_bases";
const Z: u32 = 15;

fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    std::thread::sleep(std::time::Duration::from_millis(5));
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn tile_lon(x: f64) -> f64 {
    x / f64::from(1u32 << Z) * 360.0 - 180.0
}

fn tile_lat(y: f64) -> f64 {
    let n = PI * (1.0 - 2.0 * y / f64::from(1u32 << Z));
    n.sinh().atan().to_degrees()
}

/// A zoom-15 tile of the town: (x, y) and its lon/lat box.
#[derive(Debug, Clone, Copy)]
struct Tile {
    x: u32,
    y: u32,
    rect: geo::Rect<f64>,
}

impl Tile {
    fn path(&self, query: &str) -> String {
        format!("/tiles/{LAYER}/{Z}/{}/{}.mvt?{query}", self.x, self.y)
    }

    /// A square around the tile's centre, `half` degrees from it each way.
    fn square(&self, half: f64) -> geo::Polygon<f64> {
        let c = self.rect.center();
        geo::Rect::new(
            geo::coord! {x: c.x - half, y: c.y - half},
            geo::coord! {x: c.x + half, y: c.y + half},
        )
        .to_polygon()
    }
}

/// `n` tiles lying wholly inside the town whose surroundings hold no project, so that a square
/// written at a tile's centre is the only project there.
async fn free_tiles(s: &TestServer, n: usize) -> Vec<Tile> {
    let town = s.json(&format!("/collections/towns/items/{TOWN}")).await;
    let shape: geo::Geometry<f64> = geojson::Geometry::from_json_value(town["geometry"].clone())
        .unwrap()
        .try_into()
        .unwrap();
    let bbox = geo::BoundingRect::bounding_rect(&shape).unwrap();
    let scale = f64::from(1u32 << Z);
    let x0 = ((bbox.min().x + 180.0) / 360.0 * scale) as u32;
    let x1 = ((bbox.max().x + 180.0) / 360.0 * scale) as u32;
    let merc = |lat: f64| {
        let r = lat.to_radians();
        ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / PI) / 2.0 * scale) as u32
    };
    let (y0, y1) = (merc(bbox.max().y), merc(bbox.min().y));
    let mut out: Vec<Tile> = Vec::new();
    // Every other tile, so that the chosen tiles (and their buffers) never touch.
    for y in (y0..=y1).step_by(2) {
        for x in (x0..=x1).step_by(2) {
            let rect = geo::Rect::new(
                geo::coord! {x: tile_lon(f64::from(x) - 0.3), y: tile_lat(f64::from(y) + 1.3)},
                geo::coord! {x: tile_lon(f64::from(x) + 1.3), y: tile_lat(f64::from(y) - 0.3)},
            );
            if !shape.contains(&rect.to_polygon()) {
                continue;
            }
            let near = s
                .json(&format!(
                    "/collections/{LAYER}/items?limit=1&bbox={},{},{},{}",
                    rect.min().x,
                    rect.min().y,
                    rect.max().x,
                    rect.max().y
                ))
                .await;
            if near["numberMatched"] != 0 {
                continue;
            }
            let tile = geo::Rect::new(
                geo::coord! {x: tile_lon(f64::from(x)), y: tile_lat(f64::from(y) + 1.0)},
                geo::coord! {x: tile_lon(f64::from(x) + 1.0), y: tile_lat(f64::from(y))},
            );
            out.push(Tile { x, y, rect: tile });
            if out.len() == n {
                return out;
            }
        }
    }
    panic!("only {} free tiles in {TOWN}", out.len());
}

fn feature(id: &str, plan: &str, square: &geo::Polygon<f64>) -> Value {
    json!({"type": "Feature", "id": id,
           "properties": {"name": format!("测试 {id}"), "plan": plan},
           "geometry": geojson::Geometry::new(geojson::Value::from(square))})
}

async fn post(s: &TestServer, features: Vec<Value>) {
    let r = s
        .client
        .post(s.url(&format!("/collections/{LAYER}/items")))
        .header("content-type", "application/geo+json")
        .body(json!({"type": "FeatureCollection", "features": features}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

fn ids(doc: &Value) -> BTreeSet<String> {
    doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// `(feature_count, covered m²)` of the layer in a coverage answer.
fn layer_coverage(doc: &Value) -> (u64, f64) {
    let row = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == LAYER)
        .unwrap_or_else(|| panic!("no {LAYER} row: {doc}"));
    (
        row["feature_count"].as_u64().unwrap(),
        row["covered_area"]["m2"].as_f64().unwrap(),
    )
}

/// The layer's row of `/areas/{TOWN}/coverage?layers={LAYER}&{query}`.
async fn coverage(s: &TestServer, query: &str) -> (u64, f64) {
    layer_coverage(
        &s.json(&format!("/areas/{TOWN}/coverage?layers={LAYER}&{query}"))
            .await,
    )
}

fn assert_area(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 0.02 + want * 1e-6,
        "{what}: {got} m², expected {want} m²"
    );
}

async fn exported(s: &TestServer, query: &str) -> BTreeSet<String> {
    let r = s
        .get(&format!(
            "/export?layers={LAYER}&area={TOWN}&format=geojson&{query}"
        ))
        .await;
    assert_eq!(r.status(), 200);
    ids(&r.json().await.unwrap())
}

/// 亩 of the layer in the town, summed over the villages of the land-consolidation bundle's CSV.
async fn bundle_mu(s: &TestServer, query: &str) -> f64 {
    let r = s
        .get(&format!(
            "/export/land-consolidation?area={TOWN}&layers={LAYER}&{query}"
        ))
        .await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut text = String::new();
    let mut csv = zip.by_name("summary_mu_by_village.csv").unwrap();
    std::io::Read::read_to_string(&mut csv, &mut text).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|c| c[2] == LAYER)
        .map(|c| c[4].parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asof_answers_as_the_layers_stood_at_that_instant() {
    let s = start().await;
    let tiles = free_tiles(&s, 2).await;
    let first = tiles[0].square(0.002);
    let moved = tiles[1].square(0.003);
    let (a1, a2) = (
        first.geodesic_area_unsigned(),
        moved.geodesic_area_unsigned(),
    );
    // t0: before; t1: created; t2: moved and grown; t3: deleted.
    let t0 = now();
    post(&s, vec![feature("asof-a", "000", &first)]).await;
    let t1 = now();
    let r = s
        .client
        .patch(s.url(&format!("/collections/{LAYER}/items/asof-a")))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(json!({"geometry": geojson::Geometry::new(geojson::Value::from(&moved))}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let t2 = now();
    let r = s
        .client
        .delete(s.url(&format!("/collections/{LAYER}/items/asof-a")))
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let t3 = now();

    let features = |t: &str| format!("/areas/{TOWN}/features?layers={LAYER}&asof={t}");
    let before = s.json(&features(&t0)).await;
    let base_ids = ids(&before);
    assert!(!base_ids.contains("asof-a"));
    let (base_n, base_m2) = coverage(&s, &format!("asof={t0}")).await;
    let base_mu = bundle_mu(&s, &format!("asof={t0}")).await;
    // Without asof: today's map, where the feature is deleted: the same as at t0.
    let live = s
        .json(&format!("/areas/{TOWN}/features?layers={LAYER}"))
        .await;
    assert_eq!(ids(&live), base_ids);

    for (t, shape, area) in [
        (&t0, None, 0.0),
        (&t1, Some(&first), a1),
        (&t2, Some(&moved), a2),
        (&t3, None, 0.0),
    ] {
        let doc = s.json(&features(t)).await;
        let mut want = base_ids.clone();
        if shape.is_some() {
            want.insert("asof-a".into());
        }
        assert_eq!(ids(&doc), want, "features at {t}");
        if let Some(shape) = shape {
            let f = doc["features"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == "asof-a")
                .unwrap();
            assert_eq!(f["properties"]["share_inside"], 1.0);
            let g: geo::Geometry<f64> = geojson::Geometry::from_json_value(f["geometry"].clone())
                .unwrap()
                .try_into()
                .unwrap();
            assert_area(g.geodesic_area_unsigned(), area, "the feature as it stood");
            let c = geo::Centroid::centroid(&g).unwrap();
            let want_c = geo::Centroid::centroid(shape).unwrap();
            assert!((c.x() - want_c.x()).abs() < 1e-9 && (c.y() - want_c.y()).abs() < 1e-9);
        }
        let (n, m2) = coverage(&s, &format!("asof={t}")).await;
        assert_eq!(
            n,
            base_n + u64::from(shape.is_some()),
            "coverage count at {t}"
        );
        assert_area(m2 - base_m2, area, &format!("coverage at {t}"));
        // POST /analysis/coverage with asof in the body gives the same figures.
        let r = s
            .client
            .post(s.url("/analysis/coverage"))
            .json(&json!({"area": TOWN, "layers": [LAYER], "asof": t}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(layer_coverage(&r.json().await.unwrap()), (n, m2));
        // Tiles: the feature's tile has it exactly while it stood there.
        for (i, tile) in tiles.iter().enumerate() {
            let r = s.get(&tile.path(&format!("asof={t}"))).await;
            assert_eq!(r.headers()["x-tile-cache"], "bypass");
            let here = match (i, shape) {
                (0, Some(sh)) => std::ptr::eq(sh, &first),
                (1, Some(sh)) => std::ptr::eq(sh, &moved),
                _ => false,
            };
            if here {
                assert_eq!(r.status(), 200, "tile {i} at {t}");
                let bytes = r.bytes().await.unwrap();
                assert!(bytes.windows(6).any(|w| w == b"asof-a"));
            } else {
                assert_eq!(r.status(), 204, "tile {i} at {t}");
            }
        }
        // The land-consolidation bundle's 亩 per village (rounded to 0.01 亩 a row).
        let mu = bundle_mu(&s, &format!("asof={t}")).await;
        assert!(
            (mu - base_mu - area * 3.0 / 2000.0).abs() < 0.05,
            "bundle at {t}: {mu} 亩, expected {base_mu} + {}",
            area * 3.0 / 2000.0
        );
        // Exports.
        let exported_ids = exported(&s, &format!("asof={t}")).await;
        assert_eq!(
            exported_ids.contains("asof-a"),
            shape.is_some(),
            "export at {t}"
        );
    }
    // Live tiles: the feature is gone.
    assert_eq!(s.get(&tiles[0].path("")).await.status(), 204);
    assert!(!exported(&s, "").await.contains("asof-a"));

    // A time that is not RFC 3339 is a 400 naming asof, everywhere.
    for path in [
        format!("/areas/{TOWN}/features?asof=yesterday"),
        format!("/areas/{TOWN}/coverage?asof=yesterday"),
        tiles[0].path("asof=yesterday"),
        format!("/export?layers={LAYER}&asof=yesterday"),
        format!("/export/land-consolidation?area={TOWN}&asof=yesterday"),
    ] {
        let p = s.problem(&path, 400).await;
        assert!(
            p["description"].as_str().unwrap().contains("asof"),
            "{path}: {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_selects_one_plans_features_in_areas_and_coverage() {
    let s = start().await;
    let tiles = free_tiles(&s, 3).await;
    let squares: Vec<geo::Polygon<f64>> = tiles.iter().map(|t| t.square(0.002)).collect();
    let t0 = now();
    // Two features of plan 001 (铜梁's) and one of 000 (大足's) in 龙水镇.
    post(
        &s,
        vec![
            feature("plan-b1", "001", &squares[0]),
            feature("plan-b2", "001", &squares[1]),
            feature("plan-c", "000", &squares[2]),
        ],
    )
    .await;
    let area_of = |i: usize| squares[i].geodesic_area_unsigned();

    let all = s
        .json(&format!("/areas/{TOWN}/features?layers={LAYER}"))
        .await;
    let all_ids = ids(&all);
    let plan_of = |doc: &Value, id: &str| {
        doc["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .map(|f| f["properties"]["plan"].clone())
    };
    for plan in ["000", "001", "004"] {
        let doc = s
            .json(&format!(
                "/areas/{TOWN}/features?layers={LAYER}&plan={plan}"
            ))
            .await;
        // Independently: the unfiltered answer's features whose plan is this one.
        let want: BTreeSet<String> = all_ids
            .iter()
            .filter(|id| plan_of(&all, id) == Some(json!(plan)))
            .cloned()
            .collect();
        assert_eq!(ids(&doc), want, "plan {plan}");
        assert_eq!(doc["counts"][LAYER], want.len(), "plan {plan}");
    }
    let b: BTreeSet<String> = ["plan-b1".to_string(), "plan-b2".to_string()].into();
    let only_001 = s
        .json(&format!("/areas/{TOWN}/features?layers={LAYER}&plan=001"))
        .await;
    assert_eq!(ids(&only_001), b);
    let only_000 = ids(&s
        .json(&format!("/areas/{TOWN}/features?layers={LAYER}&plan=000"))
        .await);
    assert!(only_000.contains("plan-c") && only_000.len() > 1);
    assert_eq!(only_000.len() + 2, all_ids.len());

    // Coverage: the count and the union area of the plan's features alone.
    let (n, m2) = coverage(&s, "plan=001").await;
    assert_eq!(n, 2);
    assert_area(m2, area_of(0) + area_of(1), "plan 001's coverage");
    let (n_all, m2_all) = coverage(&s, "f=json").await;
    let (n_000, m2_000) = coverage(&s, "plan=000").await;
    assert_eq!(n_000 + 2, n_all);
    assert_area(m2_all - m2_000, area_of(0) + area_of(1), "all minus 000");
    assert_eq!(coverage(&s, "plan=002").await, (0, 0.0));
    // With asof before the features were written: none of plan 001.
    assert_eq!(coverage(&s, &format!("plan=001&asof={t0}")).await, (0, 0.0));

    // POST /analysis/coverage: plan in the query or in the body, for a unit or a drawn polygon.
    for (query, body) in [
        ("?plan=001", json!({"area": TOWN, "layers": LAYER})),
        ("", json!({"area": TOWN, "layers": LAYER, "plan": "001"})),
    ] {
        let r = s
            .client
            .post(s.url(&format!("/analysis/coverage{query}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(layer_coverage(&r.json().await.unwrap()), (n, m2));
    }
    let drawn = geojson::Geometry::new(geojson::Value::from(&squares[1]));
    let r = s
        .client
        .post(s.url(&format!("/analysis/coverage?layers={LAYER}&plan=001")))
        .json(&json!({"type": "Feature", "properties": {}, "geometry": drawn}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (n1, m1) = layer_coverage(&r.json().await.unwrap());
    assert_eq!(n1, 1);
    assert_area(m1, area_of(1), "plan 001 in a drawn square");

    // An empty plan is a 400 naming it.
    let p = s
        .problem(&format!("/areas/{TOWN}/coverage?plan="), 400)
        .await;
    assert!(p["description"].as_str().unwrap().contains("plan"), "{p}");
    let r = s
        .client
        .post(s.url("/analysis/coverage"))
        .json(&json!({"area": TOWN, "plan": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
