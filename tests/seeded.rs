//! The seeded plans answer planners' questions; `check` passes; a second start seeds nothing.

mod common;

use common::{bundled, start};
use geo::{BooleanOps, GeodesicArea};
use std::collections::BTreeSet;
use std::process::Command;

/// Every feature of a plan layer across the five seed files, read with the geojson crate.
fn seeds_of(layer: &str) -> Vec<geojson::Feature> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(common::repo().join("seeds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("geojson") {
            continue;
        }
        let rel = format!("seeds/{}", path.file_name().unwrap().to_str().unwrap());
        out.extend(
            bundled(&rel)
                .features
                .into_iter()
                .filter(|f| f.property("layer").and_then(|v| v.as_str()) == Some(layer)),
        );
    }
    out
}

fn codes(f: &geojson::Feature) -> Vec<String> {
    f.property("admin_codes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plan_layer_is_served_with_its_features() {
    let s = start().await;
    let cols = s.json("/collections").await;
    let layers: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(
        &std::fs::read_to_string(common::repo().join("seeds/layers.json")).unwrap(),
    )
    .unwrap()
    .iter()
    .map(|l| l["id"].as_str().unwrap().to_string())
    .collect();
    assert!(layers.len() >= 7);
    for l in &layers {
        let c = cols["collections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == l.as_str())
            .unwrap_or_else(|| panic!("{l} not served"));
        assert_eq!(
            c["numberOfFeatures"].as_u64().unwrap() as usize,
            seeds_of(l).len(),
            "{l}"
        );
    }
    // Every served plan feature cites its document and says how its geometry was made.
    for l in &layers {
        let (ids, _) =
            common::collect_all(&s, &format!("/collections/{l}/items?limit=10000")).await;
        let doc = s.json(&format!("/collections/{l}/items?limit=10000")).await;
        for f in doc["features"].as_array().unwrap() {
            let p = &f["properties"];
            assert!(
                p["source"]["quote"].as_str().is_some_and(|q| !q.is_empty()),
                "{l}/{}",
                f["id"]
            );
            assert_eq!(p["approximate"], true, "{l}/{}", f["id"]);
            assert!(p["geometry_method"].is_string(), "{l}/{}", f["id"]);
        }
        assert_eq!(ids.len(), doc["features"].as_array().unwrap().len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_of_huolu_and_key_help_of_canggou() {
    let s = start().await;
    // Which projects does the plan tie to 火炉镇 (500156104)? From the seed file directly:
    let expected: BTreeSet<String> = seeds_of("projects")
        .iter()
        .filter(|f| codes(f).iter().any(|c| c == "500156104"))
        .map(common::feature_id)
        .collect();
    assert!(expected.len() >= 5, "{expected:?}");
    let doc = s
        .json("/collections/projects/items?admin_codes=500156104&limit=1000")
        .await;
    let got: BTreeSet<String> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    // The annex numbers come along (3-11, 生态渔业基地, names 火炉镇; 3-1, 官桥·云村, is in
    // its village 关桥村).
    assert!(doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["properties"]["project_no"] == "3-11"));
    // By geometry: every one of them meets 火炉镇, and none tied only to the district is listed.
    let doc = s
        .json("/areas/%E7%81%AB%E7%82%89%E9%95%87/features?layers=projects")
        .await;
    let by_geometry: BTreeSet<String> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        expected.is_subset(&by_geometry),
        "{expected:?} vs {by_geometry:?}"
    );
    assert!(doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["properties"]["placement"] != "district"));
    let inside = s
        .json("/collections/projects/items?within=%E7%81%AB%E7%82%89%E9%95%87")
        .await;
    for f in inside["features"].as_array().unwrap() {
        assert!(
            expected.contains(f["id"].as_str().unwrap())
                || f["properties"]["placement"] != "district"
        );
    }

    // Key help: 沧沟乡 is the city-level key town, found inside 沧沟乡 by geometry.
    let doc = s
        .json("/collections/key_help_villages/items?within=%E6%B2%A7%E6%B2%9F%E4%B9%A1")
        .await;
    let names: Vec<&str> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("沧沟乡")), "{names:?}");
    let expected = seeds_of("key_help_villages")
        .iter()
        .filter(|f| codes(f).iter().all(|c| c.starts_with("500156204")))
        .count();
    assert_eq!(names.len(), expected);
    // 22 villages + 4 towns in 武隆.
    let all = s
        .json("/collections/key_help_villages/items?limit=1000")
        .await;
    assert_eq!(all["numberMatched"], 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vegetable_base_share_of_longshui() {
    let s = start().await;
    let cov = s
        .json("/areas/%E9%BE%99%E6%B0%B4%E9%95%87/coverage?layers=vegetable_bases")
        .await;
    let row = &cov["layers"][0];
    // Independent: clip each vegetable base to the town polygon with geo, union, measure.
    let town: geo::Geometry<f64> = bundled("data/towns.geojson")
        .features
        .into_iter()
        .find(|f| common::feature_id(f) == "500111100")
        .unwrap()
        .geometry
        .unwrap()
        .value
        .try_into()
        .unwrap();
    let geo::Geometry::MultiPolygon(town) = town else {
        panic!("town is a MultiPolygon")
    };
    let mut union = geo::MultiPolygon::<f64>(vec![]);
    let mut count = 0;
    for f in seeds_of("vegetable_bases") {
        if f.property("placement").and_then(|v| v.as_str()) == Some("district") {
            continue;
        }
        let g: geo::Geometry<f64> = f.geometry.unwrap().value.try_into().unwrap();
        let polys = match g {
            geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
            geo::Geometry::MultiPolygon(mp) => mp,
            _ => continue,
        };
        let inside = polys.intersection(&town);
        if geo::Area::unsigned_area(&inside) > 0.0 {
            count += 1;
            union = union.union(&inside);
        }
    }
    let expected = union.geodesic_area_unsigned();
    assert!(count >= 2, "龙水 has 沿濑溪河万亩蔬菜基地 and 横店蔬菜基地");
    assert_eq!(row["feature_count"], count);
    let got = row["covered_area"]["m2"].as_f64().unwrap();
    assert!(
        ((got - expected) / expected).abs() < 1e-6,
        "{got} vs {expected}"
    );
    let town_m2 = town.geodesic_area_unsigned();
    assert!((row["share_of_area"].as_f64().unwrap() - expected / town_m2).abs() < 1e-6);
    // 亩 are given to 0.1: half of that, plus the m² figure's tolerance (relative 1e-6)
    let mu = expected * 15.0 / 10_000.0;
    assert!(
        (row["covered_area"]["mu"].as_f64().unwrap() - mu).abs() <= 0.05 + 1e-6 * mu,
        "{} 亩 vs {mu}",
        row["covered_area"]["mu"]
    );
    // The 万亩 base is about 10,000 亩 as the plan says (its polygon was sized from the text).
    assert!(got * 15.0 / 10_000.0 > 5_000.0, "{got}");
    assert_eq!(cov["approximate_inputs"], true);
}

#[test]
fn check_passes_and_a_second_start_seeds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("check.db");
    let db = db.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
        .args(["check", "--db", db])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    let nums: Vec<usize> = total
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(nums[1], 0, "{total}");
    assert!(
        text.contains("not_placed"),
        "the unplaced report is printed"
    );
    let layers = |db: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
            .args(["layers", "--db", db])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = layers(db);
    // `check` opened (and seeded) the database; running it again must load nothing twice.
    let out = Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
        .args(["check", "--db", db])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(layers(db), first);
    let n: usize = first
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        .sum();
    assert_eq!(nums[0], n);
}
