//! Plans as resources (`/plans`), `plan=` on items, `datetime=` on project periods and the
//! temporal extent of the project layer — checked against the catalogs and seeds read here.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;

fn catalogs() -> Option<Vec<Value>> {
    let dir = common::repo().join("../shared/reference/catalog");
    if !dir.exists() {
        common::missing_tool("../shared/reference/catalog (the plans' structured reading)");
        return None;
    }
    Some(
        (0..5)
            .map(|i| {
                let text = std::fs::read_to_string(dir.join(format!("{i:03}.json"))).unwrap();
                serde_json::from_str(&text).unwrap()
            })
            .collect(),
    )
}

/// (plan, layer) → count, from the bundled seed files (each feature names its plan and layer).
fn seeded_counts() -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for entry in std::fs::read_dir(common::repo().join("seeds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("geojson") {
            continue;
        }
        let fc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for f in fc["features"].as_array().unwrap() {
            let p = &f["properties"];
            let key = (
                p["plan"].as_str().unwrap().to_string(),
                p["layer"].as_str().unwrap().to_string(),
            );
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

#[tokio::test]
async fn five_plans_with_their_documents_and_features() {
    let Some(catalogs) = catalogs() else { return };
    let server = common::start().await;
    let doc = server.json("/plans").await;
    let plans = doc["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 5);
    let counts = seeded_counts();
    for (i, cat) in catalogs.iter().enumerate() {
        let id = format!("{i:03}");
        let p = plans.iter().find(|p| p["id"] == id.as_str()).unwrap();
        assert_eq!(p["document"], cat["document"], "plan {id}");
        assert_eq!(p["issuer"], cat["issuer"], "plan {id}");
        assert_eq!(p["district"], cat["district"], "plan {id}");
        assert!(common::repo()
            .join("../shared/seeds")
            .join(p["document"].as_str().unwrap())
            .exists());
        let one = server.json(&format!("/plans/{id}")).await;
        assert_eq!(one["title"], cat["title"]);
        let layers = one["layers"].as_array().unwrap();
        let expected: BTreeMap<&str, usize> = counts
            .iter()
            .filter(|((plan, _), _)| *plan == id)
            .map(|((_, layer), n)| (layer.as_str(), *n))
            .collect();
        let got: BTreeMap<&str, usize> = layers
            .iter()
            .map(|l| {
                (
                    l["layer"].as_str().unwrap(),
                    l["features"].as_u64().unwrap() as usize,
                )
            })
            .collect();
        assert_eq!(got, expected, "plan {id}");
        // Each layer's link selects exactly those features.
        for l in layers {
            let href = l["href"].as_str().unwrap();
            let path = &href[href.find("/collections").unwrap()..];
            let items = server.json(&format!("{path}&limit=1")).await;
            assert_eq!(items["numberMatched"], l["features"], "{path}");
        }
        let links = one["links"].to_string();
        assert!(links.contains(&format!("/indicators?plan={id}")));
        assert!(links.contains(&format!("/collections/projects/items?plan={id}")));
    }
    // plan= on items of a layer without plans changes nothing; on tiles it keeps one plan's
    // features: the 龙水镇 tile has plan 000's projects and none of 武隆's plan 004.
    let towns = server
        .json("/collections/towns/items?plan=004&limit=1")
        .await;
    assert_eq!(towns["numberMatched"], 137);
    for (plan, status) in [("000", 200), ("004", 204)] {
        let r = server
            .get(&format!("/tiles/projects/10/812/423.mvt?plan={plan}"))
            .await;
        assert_eq!(r.status(), status, "plan={plan}");
    }
    server
        .problem("/tiles/projects/10/812/423.mvt?plan=", 400)
        .await;
    // … and on exports: towns stay whole, projects are the plan's.
    let r = server
        .get("/export?layers=towns,projects&plan=004&format=geojson")
        .await;
    assert_eq!(r.status(), 200);
    let fc: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let mut per_layer: BTreeMap<String, usize> = BTreeMap::new();
    for f in fc["features"].as_array().unwrap() {
        let layer = f["properties"]["layer"].as_str().unwrap_or("?").to_string();
        *per_layer.entry(layer).or_default() += 1;
    }
    let expected = counts[&("004".to_string(), "projects".to_string())];
    assert_eq!(per_layer.get("projects"), Some(&expected), "{per_layer:?}");
    assert_eq!(per_layer.get("towns"), Some(&137), "{per_layer:?}");
    let html = server.get("/plans/004?f=html").await.text().await.unwrap();
    assert!(html.contains("武隆区巩固拓展脱贫攻坚成果"));
    server.problem("/plans/999", 404).await;
    server.problem("/plans?f=", 400).await;
    server.problem("/plans?bogus=1", 400).await;
}

fn ids(doc: &Value) -> Vec<String> {
    let mut v: Vec<String> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn datetime_selects_projects_whose_period_overlaps() {
    let Some(catalogs) = catalogs() else { return };
    let server = common::start().await;
    let all = server.json("/collections/projects/items?limit=10000").await;
    let features = all["features"].as_array().unwrap();
    // Every project has a period from its plan.
    for f in features {
        let p = &f["properties"];
        assert!(
            p["start_date"].is_string() && p["end_date"].is_string(),
            "{}",
            f["id"]
        );
        assert!(p["status"].is_string(), "{}", f["id"]);
    }
    let overlapping = |a: &str, b: &str| -> Vec<String> {
        let mut v: Vec<String> = features
            .iter()
            .filter(|f| {
                let p = &f["properties"];
                p["start_date"].as_str().unwrap() <= b && p["end_date"].as_str().unwrap() >= a
            })
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    for (datetime, a, b) in [
        ("2024-01-01/2024-12-31", "2024-01-01", "2024-12-31"),
        ("2024", "2024-01-01", "2024-12-31"),
        ("../2022-06-30", "0000-00-00", "2022-06-30"),
        ("2025-06-01/..", "2025-06-01", "9999-99-99"),
        ("2026-03-01T10:00:00Z", "2026-03-01", "2026-03-01"),
    ] {
        let got = server
            .json(&format!(
                "/collections/projects/items?limit=10000&datetime={datetime}"
            ))
            .await;
        assert_eq!(ids(&got), overlapping(a, b), "datetime={datetime}");
    }
    // Independently of the server's periods: the catalog of the 开州 plan gives periods that run
    // past 2025 (2024—2026, 2024—2028, 2023—2027) and one that began in 2020; no plan is
    // longer.
    let period_end = |p: &Value| p["period"]["end"].as_i64();
    let kaizhou = catalogs[3]["projects"].as_array().unwrap();
    let after_2025 = kaizhou
        .iter()
        .filter(|p| period_end(p).is_some_and(|e| e > 2025))
        .count();
    let got = server
        .json("/collections/projects/items?datetime=2026-01-01/..&limit=10000")
        .await;
    assert_eq!(got["numberMatched"].as_u64().unwrap() as usize, after_2025);
    let before_2021 = kaizhou
        .iter()
        .filter(|p| p["period"]["start"].as_i64().is_some_and(|s| s < 2021))
        .count();
    let got = server
        .json("/collections/projects/items?datetime=../2020-12-31&limit=10000")
        .await;
    assert_eq!(got["numberMatched"].as_u64().unwrap() as usize, before_2021);
    // The layer declares its temporal extent.
    let c = server.json("/collections/projects").await;
    let interval = &c["extent"]["temporal"]["interval"][0];
    let last_end = kaizhou.iter().filter_map(period_end).max().unwrap();
    assert_eq!(interval[0], "2020-01-01T00:00:00Z");
    assert_eq!(interval[1], format!("{last_end}-12-31T23:59:59Z").as_str());
    // Layers without periods ignore datetime; bad values are 400 naming it.
    let towns = server
        .json("/collections/towns/items?datetime=2024&limit=1")
        .await;
    assert_eq!(towns["numberMatched"], 137);
    for bad in ["yesterday", "2025-01-01/2024-01-01", "..", "2024-02-30"] {
        let p = server
            .problem(&format!("/collections/projects/items?datetime={bad}"), 400)
            .await;
        assert_eq!(p["parameter"], "datetime", "{bad}");
    }
}
