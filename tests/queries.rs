//! Planners' questions against a real server: CQL2, spatial shortcuts, areas and coverage.
//! Expected areas come from the closed-form area of ellipsoidal zones, not from the server's code.

mod common;

use common::{bundled, start, start_with, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use yizhangtu::config::HttpSettings;

/// Exact area (m²) of the WGS84 ellipsoid between two latitudes over `dlon` degrees of longitude.
fn zone_m2(lat1: f64, lat2: f64, dlon: f64) -> f64 {
    let a: f64 = 6_378_137.0;
    let f: f64 = 1.0 / 298.257_223_563;
    let e2 = f * (2.0 - f);
    let e = e2.sqrt();
    let q = |phi: f64| {
        let s = phi.to_radians().sin();
        (1.0 - e2)
            * (s / (1.0 - e2 * s * s) - (1.0 / (2.0 * e)) * ((1.0 - e * s) / (1.0 + e * s)).ln())
    };
    std::f64::consts::PI * a * a * (q(lat2) - q(lat1)) * dlon / 360.0
}

/// A lon/lat rectangle whose north and south edges follow the parallels (densified), as GeoJSON.
fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Value {
    let n = 400;
    let mut ring: Vec<[f64; 2]> = (0..=n)
        .map(|i| [x0 + (x1 - x0) * i as f64 / n as f64, y0])
        .collect();
    ring.extend((0..=n).map(|i| [x1 - (x1 - x0) * i as f64 / n as f64, y1]));
    ring.push([x0, y0]);
    json!({"type": "Polygon", "coordinates": [ring]})
}

async fn post_json(s: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    s.client
        .post(s.url(path))
        .header("content-type", "application/geo+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Adds the test layers: three plots (two overlapping) and three sites.
async fn with_test_layers() -> TestServer {
    let s = start_with(
        HttpSettings {
            max_body_bytes: 2 * 1024 * 1024,
            ..Default::default()
        },
        true,
    )
    .await;
    let plots = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "A", "geometry": rect(105.70, 29.50, 105.72, 29.52),
         "properties": {"name": "甲地块", "kind": "veg", "area_mu": 100, "investment_wan_yuan": 50, "target_year": 2024}},
        {"type": "Feature", "id": "B", "geometry": rect(105.71, 29.50, 105.73, 29.52),
         "properties": {"name": "乙地块", "kind": "veg", "area_mu": 30, "target_year": 2025, "note": null}},
        {"type": "Feature", "id": "C", "geometry": rect(106.50, 29.30, 106.52, 29.32),
         "properties": {"name": "丙园区", "kind": "park", "area_mu": 900, "target_year": 2023}}
    ]});
    let sites = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "s1", "geometry": {"type": "Point", "coordinates": [105.711, 29.51]}, "properties": {"name": "一号点"}},
        {"type": "Feature", "id": "s2", "geometry": {"type": "Point", "coordinates": [105.74, 29.51]}, "properties": {"name": "二号点"}},
        {"type": "Feature", "id": "s3", "geometry": {"type": "Point", "coordinates": [106.0, 29.0]}, "properties": {"name": "三号点"}}
    ]});
    for (layer, fc) in [("plots", plots), ("sites", sites)] {
        let layer_def = yizhangtu::model::Layer::untitled(layer);
        let features = yizhangtu::formats::geojson::decode_feature_collection(
            fc.to_string().as_bytes(),
            layer,
        )
        .unwrap()
        .into_iter()
        .map(|(id, mut f)| {
            f.id = id.unwrap();
            f
        })
        .collect();
        s.app
            .import(&[layer_def], features, yizhangtu::store::ImportMode::Upsert)
            .await
            .unwrap();
    }
    s
}

async fn ids(s: &TestServer, path: &str) -> Vec<String> {
    let doc = s.json(path).await;
    doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql2_text_and_json_every_operator() {
    let s = with_test_layers().await;
    let cases: &[(&str, &[&str])] = &[
        ("kind = 'veg'", &["A", "B"]),
        ("kind <> 'veg'", &["C"]),
        ("area_mu > 50", &["A", "C"]),
        ("area_mu >= 100 AND kind = 'veg'", &["A"]),
        ("area_mu < 50 OR kind = 'park'", &["B", "C"]),
        ("NOT (kind = 'veg')", &["C"]),
        ("name LIKE '%地块'", &["A", "B"]),
        ("name LIKE '_园区'", &["C"]),
        ("kind IN ('park', 'forest')", &["C"]),
        ("target_year BETWEEN 2024 AND 2025", &["A", "B"]),
        ("investment_wan_yuan IS NULL", &["B", "C"]),
        ("NOT (investment_wan_yuan IS NULL)", &["A"]),
        ("S_INTERSECTS(geometry, POINT(105.715 29.51))", &["A", "B"]),
        ("S_INTERSECTS(geometry, BBOX(106, 29, 107, 30))", &["C"]),
        ("S_WITHIN(geometry, POLYGON((105.69 29.49, 105.725 29.49, 105.725 29.53, 105.69 29.53, 105.69 29.49)))", &["A"]),
        ("S_CONTAINS(geometry, LINESTRING(105.701 29.501, 105.709 29.509))", &["A"]),
        ("S_DISJOINT(geometry, POLYGON((105.69 29.49, 105.705 29.49, 105.705 29.53, 105.69 29.53, 105.69 29.49)))", &["B", "C"]),
    ];
    for (filter, expected) in cases {
        let got = ids(
            &s,
            &format!("/collections/plots/items?filter={}", enc(filter)),
        )
        .await;
        assert_eq!(got, *expected, "filter {filter}");
    }
    let json_filter = json!({"op": "and", "args": [
        {"op": "=", "args": [{"property": "kind"}, "veg"]},
        {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [105.725, 29.51]}]}]});
    let got = ids(
        &s,
        &format!(
            "/collections/plots/items?filter-lang=cql2-json&filter={}",
            enc(&json_filter.to_string())
        ),
    )
    .await;
    assert_eq!(got, ["B"]);

    // Sorting, property selection and paging with a filter.
    assert_eq!(
        ids(&s, "/collections/plots/items?sortby=-area_mu").await,
        ["C", "A", "B"]
    );
    assert_eq!(
        ids(&s, "/collections/plots/items?sortby=kind,-target_year").await,
        ["C", "B", "A"]
    );
    let doc = s
        .json("/collections/plots/items?properties=name,area_mu&limit=1")
        .await;
    let props = doc["features"][0]["properties"].as_object().unwrap();
    assert_eq!(props.keys().collect::<Vec<_>>(), ["name", "area_mu"]);
    let (all, pages) = common::collect_all(
        &s,
        &format!(
            "/collections/plots/items?limit=1&sortby=name&filter={}",
            enc("area_mu > 10")
        ),
    )
    .await;
    assert_eq!((all.len(), pages), (3, 3));
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 3);
    let q = s.json("/collections/plots/queryables").await;
    for p in ["name", "kind", "area_mu", "geometry"] {
        assert!(q["properties"][p].is_object(), "queryables lack {p}");
    }
    assert_eq!(q["properties"]["area_mu"]["type"], "integer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_errors_name_the_problem() {
    let s = with_test_layers().await;
    let b = s
        .problem(
            &format!("/collections/plots/items?filter={}", enc("colour = 'red'")),
            400,
        )
        .await;
    assert_eq!(b["property"], "colour", "{b}");
    assert!(b["description"].as_str().unwrap().contains("colour"));
    let b = s
        .problem(
            &format!("/collections/plots/items?filter={}", enc("kind = 'veg")),
            400,
        )
        .await;
    assert_eq!(
        (b["line"].as_u64(), b["column"].as_u64()),
        (Some(1), Some(8)),
        "{b}"
    );
    let b = s
        .problem(
            &format!(
                "/collections/plots/items?filter={}",
                enc("S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))")
            ),
            400,
        )
        .await;
    assert!(
        b["description"]
            .as_str()
            .unwrap()
            .contains("self-intersection"),
        "{b}"
    );
    s.problem(
        "/collections/plots/items?filter=kind%3D1&filter-lang=cql3",
        400,
    )
    .await;
    s.problem("/collections/plots/items?filter-lang=cql2-text", 400)
        .await;
    s.problem(
        "/collections/plots/items?filter=%7B&filter-lang=cql2-json",
        400,
    )
    .await;
    let b = s
        .problem("/collections/plots/items?sortby=-colour", 400)
        .await;
    assert_eq!(b["property"], "colour");
    s.problem(
        "/collections/plots/items?intersects=POLYGON((0%200,%201%201",
        400,
    )
    .await;
    s.problem("/collections/plots/items?near=105.7", 400).await;
    s.problem("/collections/plots/items?near=105.7,29.5", 400)
        .await;
    s.problem("/collections/plots/items?near=105.7,29.5&distance=-5", 400)
        .await;
    s.problem("/collections/plots/items?near=205.7,29.5&distance=5", 400)
        .await;
    s.problem("/collections/plots/items?distance=5", 400).await;
    // A polygon with more vertices than the configured bound is refused before any work.
    let ring: Vec<String> = (0..100_001)
        .map(|i| format!("{} 29.5", 105.0 + i as f64 * 1e-7))
        .collect();
    let wkt = format!("POLYGON(({}, 105 29.6, 105 29.5))", ring.join(", "));
    let r = s.client.post(s.url("/analysis/coverage?layers=plots")).header("content-type", "application/json")
        .body(json!({"type": "Polygon", "coordinates": [(0..100_001).map(|i| [105.0 + i as f64 * 1e-7, 29.5]).chain([[105.0, 29.6], [105.0, 29.5]]).collect::<Vec<_>>()]}).to_string())
        .send().await.unwrap();
    assert_eq!(r.status(), 413);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["description"]
            .as_str()
            .unwrap()
            .contains("at most 100000 vertices"),
        "{b}"
    );
    assert!(wkt.len() > 1_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spatial_shortcuts() {
    let s = with_test_layers().await;
    // within=<town>: by geometry; checked against the villages' own town_code attribute.
    let expected: BTreeSet<String> = bundled("data/village_points.geojson")
        .features
        .iter()
        .filter(|f| f.property("parent_code").and_then(|v| v.as_str()) == Some("500111100"))
        .map(common::feature_id)
        .collect();
    assert!(!expected.is_empty());
    for within in ["500111100", "龙水镇", &enc("龙水镇")] {
        let doc = s
            .json(&format!(
                "/collections/village_points/items?within={within}&limit=1000"
            ))
            .await;
        let got: BTreeSet<String> = doc["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "within={within}");
    }
    // A village resolved inside its town, and a district.
    let village = bundled("data/villages.geojson")
        .features
        .into_iter()
        .find(|f| f.property("parent_code").and_then(|v| v.as_str()) == Some("500111100"))
        .unwrap();
    let vname = village
        .property("name")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let vcode = village
        .property("admin_code")
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let doc = s
        .json(&format!("/areas/{}", enc(&format!("龙水镇/{vname}"))))
        .await;
    assert_eq!(doc["code"], vcode);
    assert_eq!(
        s.json("/collections/towns/items?within=500111&limit=1")
            .await["numberMatched"],
        bundled("data/towns.geojson")
            .features
            .iter()
            .filter(|f| f.property("parent_code").and_then(|v| v.as_str()) == Some("500111"))
            .count()
    );

    // An ambiguous name lists its candidates; an unknown one is a 404.
    let villages = bundled("data/villages.geojson");
    let mut seen = std::collections::HashMap::new();
    let mut dup = None;
    for f in &villages.features {
        let n = f.property("name").unwrap().as_str().unwrap().to_string();
        if let Some(prev) = seen.insert(
            n.clone(),
            f.property("admin_code")
                .unwrap()
                .as_str()
                .unwrap()
                .to_string(),
        ) {
            dup = Some((n, prev));
            break;
        }
    }
    let (dup_name, dup_code) = dup.expect("some village name repeats across towns");
    let b = s
        .problem(
            &format!("/collections/plots/items?within={}", enc(&dup_name)),
            400,
        )
        .await;
    let candidates = b["candidates"].as_array().unwrap();
    assert!(candidates.len() >= 2, "{b}");
    assert!(candidates
        .iter()
        .any(|c| c["code"] == dup_code.as_str() && c["parent_code"].is_string()));
    let b = s
        .problem(
            "/collections/plots/items?within=%E4%B8%8D%E5%AD%98%E5%9C%A8%E9%95%87",
            404,
        )
        .await;
    assert_eq!(b["parameter"], "within");

    // intersects=<WKT>, and near= ordered by geodesic distance with the distance given.
    assert_eq!(
        ids(
            &s,
            "/collections/plots/items?intersects=LINESTRING(105.705%2029.51,%20105.715%2029.51)"
        )
        .await,
        ["A", "B"]
    );
    let doc = s
        .json("/collections/sites/items?near=105.71,29.51&distance=5000")
        .await;
    let got: Vec<&str> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["s1", "s2"]);
    // 0.001° and 0.03° of longitude at 29.51°N on WGS84: 96.93 m and 2907.8 m.
    let d: Vec<f64> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["distance_m"].as_f64().unwrap())
        .collect();
    assert!(
        (d[0] - 96.93).abs() < 0.1 && (d[1] - 2907.8).abs() < 1.0,
        "{d:?}"
    );
    let doc = s
        .json("/collections/plots/items?near=105.735,29.51&distance=1000")
        .await;
    assert_eq!(doc["features"][0]["id"], "B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_of_a_drawn_area_agrees_with_the_exact_formula() {
    let s = with_test_layers().await;
    let region = rect(105.69, 29.49, 105.75, 29.53);
    let r = post_json(&s, "/analysis/coverage?layers=plots,sites", &region).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    let region_m2 = zone_m2(29.49, 29.53, 0.06);
    let covered = zone_m2(29.50, 29.52, 0.03); // A ∪ B, the overlap counted once
    let plots = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "plots")
        .unwrap();
    let got = plots["covered_area"]["m2"].as_f64().unwrap();
    assert!(
        ((got - covered) / covered).abs() < 1e-6,
        "{got} vs {covered}"
    );
    assert!((plots["covered_area"]["ha"].as_f64().unwrap() - covered / 10_000.0).abs() < 1e-3);
    assert!(
        (plots["covered_area"]["mu"].as_f64().unwrap() - covered * 15.0 / 10_000.0).abs() < 0.01
    );
    assert!((doc["area"]["m2"].as_f64().unwrap() - region_m2).abs() / region_m2 < 1e-6);
    assert!((plots["share_of_area"].as_f64().unwrap() - covered / region_m2).abs() < 1e-6);
    assert_eq!(plots["feature_count"], 2);
    assert_eq!(plots["sums"]["area_mu"]["value"], 130.0);
    assert_eq!(plots["sums"]["area_mu"]["unit"], "亩");
    assert_eq!(plots["sums"]["investment_wan_yuan"]["unit"], "万元");
    assert!(plots["sums"].get("target_year").is_none());
    let sites = doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "sites")
        .unwrap();
    assert_eq!(sites["feature_count"], 2);
    assert!(doc["units"]["mu"].as_str().unwrap().contains("亩"));

    // Half of A: the region's east edge at 105.71 cuts it in two.
    let r = post_json(&s, "/analysis/coverage?layers=plots", &json!({"type": "Feature", "properties": {}, "geometry": rect(105.69, 29.49, 105.71, 29.53)})).await;
    let doc: Value = r.json().await.unwrap();
    let got = doc["layers"][0]["covered_area"]["m2"].as_f64().unwrap();
    let half = zone_m2(29.50, 29.52, 0.01);
    assert!(((got - half) / half).abs() < 1e-6, "{got} vs {half}");
    // B only touches that region along 105.71: not counted.
    assert_eq!(doc["layers"][0]["feature_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn areas_and_breakdowns() {
    let s = with_test_layers().await;
    let towns = bundled("data/towns.geojson");
    let longshui = towns
        .features
        .iter()
        .find(|f| common::feature_id(f) == "500111100")
        .unwrap();
    let doc = s.json("/areas/500111100").await;
    assert_eq!(doc["name"], "龙水镇");
    assert_eq!(doc["parents"][0]["code"], "500111");
    let expected_children: Vec<String> = bundled("data/villages.geojson")
        .features
        .iter()
        .filter(|f| f.property("town_code").and_then(|v| v.as_str()) == Some("500111100"))
        .map(|f| {
            f.property("admin_code")
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let children: Vec<String> = doc["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(children.len(), expected_children.len());
    assert_eq!(
        children.iter().collect::<BTreeSet<_>>(),
        expected_children.iter().collect::<BTreeSet<_>>()
    );
    // The town's area, measured here with geo's geodesic area on the bundled file.
    let g: geo::Geometry<f64> = longshui.geometry.clone().unwrap().value.try_into().unwrap();
    let town_m2 = geo::GeodesicArea::geodesic_area_unsigned(&g);
    assert!((doc["area"]["m2"].as_f64().unwrap() - town_m2).abs() / town_m2 < 1e-6);
    assert_eq!(doc["approximate"], true);

    // Villages tile the town: coverage 100%, and the breakdown gives each village all of itself.
    let cov = s
        .json("/areas/500111100/coverage?layers=villages&by=village")
        .await;
    let v = &cov["layers"][0];
    assert_eq!(
        v["feature_count"].as_u64().unwrap() as usize,
        expected_children.len()
    );
    assert!(
        (v["share_of_area"].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "{v}"
    );
    assert_eq!(cov["approximate_inputs"], true);
    let parts = cov["breakdown"].as_array().unwrap();
    assert_eq!(parts.len(), expected_children.len());
    let mut sum = 0.0;
    for p in parts {
        let l = &p["layers"][0];
        assert!(
            (l["share_of_area"].as_f64().unwrap() - 1.0).abs() < 1e-6,
            "{p}"
        );
        assert_eq!(l["feature_count"], 1, "{}: exactly itself", p["code"]);
        sum += p["area"]["m2"].as_f64().unwrap();
    }
    assert!(
        (sum - town_m2).abs() / town_m2 < 1e-6,
        "villages sum {sum} vs town {town_m2}"
    );

    // Features of the area, with the share inside; a plot inside the town is found, C is not.
    let point = bundled("data/village_points.geojson")
        .features
        .into_iter()
        .find(|f| f.property("parent_code").and_then(|v| v.as_str()) == Some("500111100"))
        .unwrap();
    let geojson::Value::Point(c) = point.geometry.unwrap().value else {
        panic!()
    };
    let tiny = json!({"type": "Feature", "id": "inside", "properties": {"name": "内"}, "geometry": rect(c[0] - 1e-4, c[1] - 1e-4, c[0] + 1e-4, c[1] + 1e-4)});
    assert_eq!(
        post_json(&s, "/collections/plots/items", &tiny)
            .await
            .status(),
        201
    );
    let doc = s
        .json("/areas/500111100/features?layers=plots,sites&relation=within")
        .await;
    let got: BTreeSet<&str> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(got.contains("inside") && !got.contains("C"), "{got:?}");
    let f = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "inside")
        .unwrap();
    assert_eq!(f["properties"]["share_inside"], 1.0);
    assert_eq!(f["properties"]["layer"], "plots");
    assert_eq!(
        doc["counts"]["plots"].as_u64().unwrap(),
        doc["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["properties"]["layer"] == "plots")
            .count() as u64
    );

    // POST with an admin code gives the same figures as GET.
    let r = post_json(
        &s,
        "/analysis/coverage",
        &json!({"area": "500111100", "layers": ["villages"]}),
    )
    .await;
    let posted: Value = r.json().await.unwrap();
    assert_eq!(
        posted["layers"][0]["covered_area"],
        cov["layers"][0]["covered_area"]
    );
    // HTML views.
    for p in [
        "/areas/500111100?f=html",
        "/areas/500111100/coverage?f=html&layers=villages",
        "/areas/500111100/features?f=html&layers=plots",
    ] {
        let r = s.get(p).await;
        assert_eq!(r.status(), 200, "{p}");
        assert!(r.text().await.unwrap().contains("龙水镇"), "{p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_areas_and_polygons_are_400s_naming_the_fault() {
    let s = with_test_layers().await;
    s.problem("/areas/999999999", 404).await;
    s.problem("/areas/500111100/coverage?layers=nope", 400)
        .await;
    s.problem("/areas/500111100/coverage?by=county", 400).await;
    s.problem("/areas/500111100/coverage?by=town", 400).await;
    s.problem("/areas/500111100/features?relation=near", 400)
        .await;
    let cases = [
        (
            json!({"type": "Polygon", "coordinates": [[[105, 29], [106, 30], [106, 29], [105, 30], [105, 29]]]}),
            "self-intersection",
        ),
        (
            json!({"type": "Polygon", "coordinates": [[[105, 29], [106, 29], [106, 30], [105, 30]]]}),
            "not closed",
        ),
        (
            json!({"type": "Polygon", "coordinates": [[[105, 29], [106, 29], [105, 29]]]}),
            "at least 4",
        ),
        (
            json!({"type": "Polygon", "coordinates": [[[105, 29], [196, 29], [106, 30], [105, 29]]]}),
            "longitude 196",
        ),
        (
            json!({"type": "Polygon", "coordinates": [[[105, 29], ["NaN", 29], [106, 30], [105, 29]]]}),
            "not a number",
        ),
        (
            json!({"type": "Point", "coordinates": [105, 29]}),
            "Polygon or MultiPolygon",
        ),
        (json!({"area": "不存在"}), "no district, town or village"),
        (json!({"nothing": 1}), "send a GeoJSON"),
    ];
    for (body, needle) in cases {
        let r = post_json(&s, "/analysis/coverage?layers=plots", &body).await;
        let status = r.status().as_u16();
        let b: Value = r.json().await.unwrap();
        assert!(status == 400 || status == 404, "{body}: {status}");
        assert!(
            b["description"].as_str().unwrap().contains(needle),
            "{body}: {b}"
        );
    }
    // Several rounds: a reused half-closed connection shows only under some timings.
    for _ in 0..10 {
        let r = s
            .client
            .post(s.url("/analysis/coverage"))
            .header("content-type", "application/json")
            .body("x".repeat(3 * 1024 * 1024))
            .send()
            .await;
        // The server answers 413 from the Content-Length before reading the body; a client still
        // uploading may see the connection close instead of reading that answer. The answer says
        // `Connection: close`, so the client does not reuse that connection for the next request.
        match r {
            Ok(r) => {
                assert_eq!(r.status(), 413);
                assert_eq!(r.headers()["connection"], "close");
            }
            Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
        }
        let r = s
            .client
            .post(s.url("/analysis/coverage"))
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseeded_start_has_no_admin_units() {
    let s = start_with(HttpSettings::default(), false).await;
    s.problem("/areas/500111100", 404).await;
    let _ = start;
}

/// OGC API – Features Part 2: output in another CRS with `crs`, boxes and filters in one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinate_reference_systems() {
    let s = with_test_layers().await;
    // Site s1 at 105.711E 29.51N. Reference values from PROJ:
    //   echo 29.51 105.711 | cs2cs -f %.4f EPSG:4490 EPSG:4544   → 3266008.4140 568937.1723
    //   (checked again below with cs2cs when it is installed)
    let r = s
        .get("/collections/sites/items/s1?crs=http://www.opengis.net/def/crs/EPSG/0/4544")
        .await;
    assert_eq!(
        r.headers()["content-crs"],
        "<http://www.opengis.net/def/crs/EPSG/0/4544>"
    );
    let f: Value = r.json().await.unwrap();
    let c = f["geometry"]["coordinates"].as_array().unwrap();
    let (north, east) = (c[0].as_f64().unwrap(), c[1].as_f64().unwrap());
    if let Ok(out) = std::process::Command::new("cs2cs")
        .args(["-f", "%.4f", "EPSG:4490", "EPSG:4544"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin.take().unwrap().write_all(b"29.51 105.711\n")?;
            ch.wait_with_output()
        })
    {
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = text
            .split_whitespace()
            .take(2)
            .map(|t| t.parse().unwrap())
            .collect();
        assert!(
            (north - v[0]).abs() < 0.001 && (east - v[1]).abs() < 0.001,
            "{north},{east} vs cs2cs {v:?}"
        );
    }
    assert!(
        (north - 3_266_008.414).abs() < 0.001 && (east - 568_937.172_3).abs() < 0.001,
        "{north},{east}"
    );
    // Zone-prefixed easting, lat/lon order for EPSG:4490, and auto-gk choosing zone 35 here.
    let f = s.json("/collections/sites/items/s1?crs=EPSG:4523").await;
    assert!((f["geometry"]["coordinates"][1].as_f64().unwrap() - 35_568_937.172_3).abs() < 0.001);
    let f = s.json("/collections/sites/items/s1?crs=EPSG:4490").await;
    assert_eq!(f["geometry"]["coordinates"], json!([29.51, 105.711]));
    let r = s.get("/collections/sites/items?crs=auto-gk").await;
    assert_eq!(
        r.headers()["content-crs"],
        "<http://www.opengis.net/def/crs/EPSG/0/4544>"
    );
    // A bbox and a filter given in Gauss-Krüger metres find the same site.
    let doc = s
        .json("/collections/sites/items?bbox-crs=EPSG:4544&bbox=3265950,568900,3266050,569000")
        .await;
    assert_eq!(
        doc["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["s1"]
    );
    let filter = enc("S_INTERSECTS(geometry, POLYGON((3265950 568900, 3265950 569000, 3266050 569000, 3266050 568900, 3265950 568900)))");
    let doc = s
        .json(&format!(
            "/collections/sites/items?filter-crs=EPSG:4544&filter={filter}"
        ))
        .await;
    assert_eq!(doc["numberMatched"], 1);
    // GCJ-02 output is offset by a few hundred metres in Chongqing.
    let f = s
        .json("/collections/sites/items/s1?crs=urn:yizhangtu:crs:gcj02")
        .await;
    let dx = (f["geometry"]["coordinates"][0].as_f64().unwrap() - 105.711) * 96_900.0;
    let dy = (f["geometry"]["coordinates"][1].as_f64().unwrap() - 29.51) * 110_850.0;
    let shift = (dx * dx + dy * dy).sqrt();
    assert!((200.0..600.0).contains(&shift), "{shift}");
    // Collections list what they offer; unknown CRSs are a 400 that lists the supported ones.
    let col = s.json("/collections/sites").await;
    assert!(col["crs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "http://www.opengis.net/def/crs/EPSG/0/4545"));
    let b = s
        .problem("/collections/sites/items?crs=EPSG:9999", 400)
        .await;
    assert!(b["supported"].as_array().unwrap().len() > 40);
    s.problem(
        "/collections/sites/items?bbox-crs=auto-gk&bbox=1,2,3,4",
        400,
    )
    .await;
}
