//! Membership means area (issue 12, item 2), on the 大足/永川 border: a unit's features, coverage
//! and export hold only what lies in it by more than the stated tolerance
//! (`yizhangtu::engine::membership`), never neighbours that touch it or meet it by a sliver.
//! Expected sets are computed from the bundled files (codes), not from the server.

mod common;

use common::{bundled, feature_id, TestServer};
use serde_json::Value;
use std::collections::BTreeSet;

const DAZU: &str = "500111";

/// Admin codes a bundled feature names (`admin_code` and `admin_codes`).
fn codes(f: &geojson::Feature) -> Vec<String> {
    let mut out: Vec<String> = f
        .property("admin_code")
        .and_then(Value::as_str)
        .map(|s| vec![s.to_string()])
        .unwrap_or_default();
    if let Some(Value::Array(a)) = f.property("admin_codes") {
        out.extend(a.iter().filter_map(Value::as_str).map(str::to_string));
    }
    out
}

/// Ids of bundled features of `layer` (in the plan files) that name a unit of `district`:
/// with geometry, or (`null_geometry`) without.
fn plan_ids_of(layer: &str, district: &str, null_geometry: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(common::repo().join("seeds")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".geojson") {
            continue;
        }
        for f in bundled(&format!("seeds/{name}")).features {
            if f.property("layer").and_then(Value::as_str) == Some(layer)
                && f.geometry.is_none() == null_geometry
                && codes(&f).iter().any(|c| c.starts_with(district))
            {
                out.insert(feature_id(&f));
            }
        }
    }
    out
}

async fn area_feature_ids(server: &TestServer, code: &str, layers: &str) -> Vec<(String, String)> {
    let v = server
        .json(&format!("/areas/{code}/features?layers={layers}"))
        .await;
    v["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| {
            (
                f["properties"]["layer"].as_str().unwrap().to_string(),
                f["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_district_holds_its_own_towns_and_villages_only() {
    let server = common::start().await;
    let towns: BTreeSet<String> = bundled("data/towns.geojson")
        .features
        .iter()
        .filter(|f| f.property("district_code").and_then(Value::as_str) == Some(DAZU))
        .map(feature_id)
        .collect();
    let villages: BTreeSet<String> = bundled("data/villages.geojson")
        .features
        .iter()
        .filter(|f| f.property("district_code").and_then(Value::as_str) == Some(DAZU))
        .map(feature_id)
        .collect();
    assert_eq!(towns.len(), 27, "大足 has 27 towns (NBS)");
    let got = area_feature_ids(&server, DAZU, "towns,villages").await;
    let got_towns: BTreeSet<String> = got
        .iter()
        .filter(|(l, _)| l == "towns")
        .map(|(_, id)| id.clone())
        .collect();
    let got_villages: BTreeSet<String> = got
        .iter()
        .filter(|(l, _)| l == "villages")
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(got_towns, towns, "towns in 大足");
    assert_eq!(got_villages, villages, "villages in 大足");

    // a town on the border (邮亭镇 500111108 meets 永川's 500118116) holds its own villages only
    let town = "500111108";
    let own: BTreeSet<String> = villages
        .iter()
        .filter(|v| v.starts_with(town))
        .cloned()
        .collect();
    let got: BTreeSet<String> = area_feature_ids(&server, town, "villages")
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(got, own);
}

#[tokio::test]
async fn a_districts_projects_are_its_own() {
    let server = common::start().await;
    let expected = plan_ids_of("projects", DAZU, false);
    let attributes_only = plan_ids_of("projects", DAZU, true);
    assert!(!expected.is_empty());
    let got: BTreeSet<String> = area_feature_ids(&server, DAZU, "projects")
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let all: BTreeSet<String> = expected.union(&attributes_only).cloned().collect();
    assert_eq!(got, all, "projects listed in 大足");
    let cov = server
        .json(&format!("/areas/{DAZU}/coverage?layers=projects"))
        .await;
    let text = cov.to_string();
    let count = find_count(&cov, "projects").unwrap_or_else(|| panic!("no projects row: {text}"));
    assert_eq!(
        count as usize,
        expected.len(),
        "projects counted in 大足's coverage"
    );
    // and 永川's are 永川's
    let yc: BTreeSet<String> = plan_ids_of("projects", "500118", false)
        .union(&plan_ids_of("projects", "500118", true))
        .cloned()
        .collect();
    let got: BTreeSet<String> = area_feature_ids(&server, "500118", "projects")
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(got, yc, "projects listed in 永川");
}

/// `feature_count` of the row for `layer` anywhere in a coverage answer.
fn find_count(v: &Value, layer: &str) -> Option<u64> {
    match v {
        Value::Object(m) => {
            if m.get("layer").and_then(Value::as_str) == Some(layer) {
                if let Some(n) = m.get("feature_count").and_then(Value::as_u64) {
                    return Some(n);
                }
            }
            m.values().find_map(|x| find_count(x, layer))
        }
        Value::Array(a) => a.iter().find_map(|x| find_count(x, layer)),
        _ => None,
    }
}

#[tokio::test]
async fn an_export_of_a_district_holds_its_own_towns() {
    let server = common::start().await;
    let r = server
        .get(&format!("/export?area={DAZU}&layers=towns&format=geojson"))
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let ids: Vec<&str> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["id"]
                .as_str()
                .or(f["properties"]["id"].as_str())
                .unwrap_or("")
        })
        .collect();
    assert_eq!(ids.len(), 27, "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with(DAZU)), "{ids:?}");
}

/// Features the text ties to a district only have no geometry (item 3): 永川's are listed by the
/// district with `share_inside: null`, not by its towns, not counted in coverage, and exported in
/// every format as attribute rows (null shapes).
#[tokio::test]
async fn district_level_items_have_no_geometry_and_export_as_attributes() {
    let server = common::start().await;
    let yc = "500118";
    let nulls = plan_ids_of("projects", yc, true);
    let drawn = plan_ids_of("projects", yc, false);
    assert!(
        nulls.len() > 10,
        "永川 has district-level projects: {}",
        nulls.len()
    );
    let v = server
        .json(&format!("/areas/{yc}/features?layers=projects"))
        .await;
    let listed: BTreeSet<String> = v["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["geometry"].is_null())
        .map(|f| {
            assert!(f["properties"]["share_inside"].is_null(), "{f}");
            f["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(listed, nulls);
    // not in a town of it
    let town = server
        .json("/areas/500118100/features?layers=projects")
        .await;
    assert!(town["features"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| !f["geometry"].is_null()));
    let cov = server
        .json(&format!("/areas/{yc}/coverage?layers=projects"))
        .await;
    assert_eq!(find_count(&cov, "projects"), Some(drawn.len() as u64));
    for format in ["geojson", "gpkg", "shp", "csv"] {
        let r = server
            .get(&format!(
                "/export?area={yc}&layers=projects&format={format}"
            ))
            .await;
        let status = r.status();
        let body = r.bytes().await.unwrap();
        assert_eq!(status, 200, "{format}: {}", String::from_utf8_lossy(&body));
        if format == "geojson" {
            let v: Value = serde_json::from_slice(&body).unwrap();
            let n = v["features"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["geometry"].is_null())
                .count();
            assert_eq!(n, nulls.len(), "null-geometry rows in the GeoJSON export");
            assert_eq!(
                v["features"].as_array().unwrap().len(),
                nulls.len() + drawn.len()
            );
        }
    }
    // a tile over 永川 draws none of them (and does not fail)
    let r = server.get("/tiles/projects/9/405/211.mvt").await;
    assert!(r.status() == 200 || r.status() == 204, "{}", r.status());
}

/// Farm, vegetable and land-consolidation blobs the text ties to a town lie on its villages (村),
/// never in its urban communities (社区) (item 4): no community of the town holds one by the
/// membership rule, and 十烈社区 (吴家镇's seat) holds none of them.
#[tokio::test]
async fn rural_blobs_are_not_on_communities() {
    use yizhangtu::engine::membership::is_member;
    let dir = tempfile::tempdir().unwrap();
    let app = yizhangtu::app::App::open(dir.path().join("r.db").to_str().unwrap(), true, None)
        .await
        .unwrap();
    let engine = &app.engine;
    let communities: Vec<(String, String)> = bundled("data/villages.geojson")
        .features
        .iter()
        .filter(|f| f.property("level").and_then(Value::as_str) == Some("community"))
        .map(|f| {
            (
                feature_id(f),
                f.property("name")
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let mut checked = 0;
    for layer in [
        "agricultural_bases",
        "vegetable_bases",
        "land_consolidation",
    ] {
        let idx = engine.layer(layer).unwrap();
        let idx = idx.read();
        for (_, f) in idx.iter() {
            let method = f.properties["geometry_method"].as_str().unwrap();
            if !method.contains("rural villages") {
                continue;
            }
            let Some(g) = f.geometry.as_ref() else {
                continue;
            };
            let towns: Vec<&str> = f.properties["admin_codes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            for (code, name) in &communities {
                if !towns.iter().any(|t| code.starts_with(t)) {
                    continue;
                }
                let unit = engine.admin_unit(code).unwrap();
                let area = engine.admin_area(&unit).unwrap();
                assert!(
                    !is_member(&area, g),
                    "{layer}/{} ({:?}) lies in {name} {code}: {} m²",
                    f.id,
                    f.name,
                    yizhangtu::geom::geodesic_area_m2(&geo::Geometry::MultiPolygon(
                        area.clip_polygons(g)
                    ))
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} pairs checked");
}

/// 吴家镇's twinned villages (item 5) are relations between the village features: each names the
/// other by id, both ways, and the pair is the plan's (十烈社区–代兴村 …).
#[tokio::test]
async fn twinned_villages_name_each_other() {
    let server = common::start().await;
    let pairs = [
        ("500153103003", "500153103200"),
        ("500153103204", "500153103203"),
        ("500153103001", "500153103002"),
        ("500153103201", "500153103202"),
    ];
    for (a, b) in pairs {
        for (x, y) in [(a, b), (b, a)] {
            let f = server
                .json(&format!("/collections/villages/items/{x}"))
                .await;
            let ids: Vec<&str> = f["properties"]["partners"]
                .as_array()
                .unwrap_or_else(|| panic!("{x} has no partners: {f}"))
                .iter()
                .filter_map(|p| p["id"].as_str())
                .collect();
            assert_eq!(ids, vec![y], "{x}");
        }
    }
    // a village of another town has none
    let f = server
        .json("/collections/villages/items/500111100200")
        .await;
    assert!(f["properties"]["partners"].is_null());
}

const PLAN_LAYERS: &str = "projects,land_consolidation,other_places,agricultural_bases,vegetable_bases,ecological_areas,tourism_sites,markets,public_facilities,infrastructure,industrial_parks,resettlement_sites,key_help_villages";

/// Bundled plan features drawn as the whole of town `town` (`placement_recipe.rule: "unit"`):
/// id → (layer, every unit the recipe names).
fn town_wide(town: &str) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(common::repo().join("seeds")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".geojson") {
            continue;
        }
        for f in bundled(&format!("seeds/{name}")).features {
            let Some(r) = f.property("placement_recipe") else {
                continue;
            };
            let codes: Vec<String> = r["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["codes"].as_array().unwrap().iter())
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            if r["rule"] == "unit" && codes.iter().any(|c| c == town) {
                let layer = f.property("layer").and_then(Value::as_str).unwrap();
                out.insert(feature_id(&f), (layer.to_string(), codes));
            }
        }
    }
    out
}

fn town_wide_ids(town: &str) -> BTreeSet<String> {
    town_wide(town).into_keys().collect()
}

/// 吴家镇's town-wide programmes (drawn as the whole town) are in 吴家镇, not in each of its
/// villages: 十烈社区 lists what the plan puts there (issue 12, item 5).
#[tokio::test]
async fn a_town_wide_item_is_in_the_town_not_in_its_villages() {
    let server = common::start().await;
    let wujia = "500153103";
    let wide = town_wide_ids(wujia);
    assert!(wide.len() >= 5, "吴家镇 has town-wide items: {wide:?}");
    let in_town: BTreeSet<String> = area_feature_ids(&server, wujia, PLAN_LAYERS)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let named: Vec<&String> = wide.iter().filter(|id| !in_town.contains(*id)).collect();
    assert!(
        named.iter().all(|id| !id.starts_with("002")),
        "missing from 吴家镇: {named:?}"
    );
    let shilie = server.json("/areas/十烈社区").await;
    let code = shilie["id"]
        .as_str()
        .or(shilie["code"].as_str())
        .unwrap()
        .to_string();
    let in_village = area_feature_ids(&server, &code, PLAN_LAYERS).await;
    for (_, id) in &in_village {
        assert!(
            !wide.contains(id),
            "{id} is a town-wide item of 吴家镇, not in 十烈社区"
        );
    }
    assert!(in_village.len() < in_town.len());
}

/// The town-wide rule is the same in every endpoint: a village's coverage counts exactly the
/// features `/areas/{village}/features` lists (a town's programmes drawn as the whole town in
/// neither, counted as `unit_wide_features_not_counted`), the village rows of the town's
/// breakdown say the same, and `within=` the village never returns a town-wide item.
#[tokio::test]
async fn coverage_and_within_follow_the_town_wide_rule() {
    let server = common::start().await;
    let wujia = "500153103";
    let wide_items = town_wide(wujia);
    let wide: BTreeSet<String> = wide_items.keys().cloned().collect();
    let shilie = "500153103003";
    let listed = area_feature_ids(&server, shilie, PLAN_LAYERS).await;
    let cov = server
        .json(&format!("/areas/{shilie}/coverage?layers={PLAN_LAYERS}"))
        .await;
    let town = server
        .json(&format!(
            "/areas/{wujia}/coverage?layers={PLAN_LAYERS}&by=village"
        ))
        .await;
    let row = town["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == shilie)
        .expect("十烈社区 in 吴家镇's breakdown");
    let mut skipped = 0;
    for l in cov["layers"].as_array().unwrap() {
        let layer = l["layer"].as_str().unwrap();
        let n = listed.iter().filter(|(ly, _)| ly == layer).count() as u64;
        assert_eq!(l["feature_count"], n, "{layer}: coverage vs features");
        let wide_here = wide_items.values().filter(|(ly, _)| ly == layer).count() as u64;
        assert_eq!(l["unit_wide_features_not_counted"], wide_here, "{layer}");
        skipped += wide_here;
        let in_row = row["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["layer"] == layer)
            .unwrap();
        assert_eq!(in_row["feature_count"], l["feature_count"], "{layer}");
    }
    assert!(skipped >= 5, "only {skipped} town-wide items skipped");
    // in the town itself they count
    let whole = town["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["unit_wide_features_not_counted"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(whole, 0);
    for layer in ["projects", "land_consolidation", "agricultural_bases"] {
        let v = server
            .json(&format!(
                "/collections/{layer}/items?within={shilie}&limit=1000"
            ))
            .await;
        for f in v["features"].as_array().unwrap() {
            let id = f["id"].as_str().unwrap();
            assert!(!wide.contains(id), "{id} is town-wide, not within 十烈社区");
            assert!(
                listed.iter().any(|(_, x)| x == id),
                "{id} is within 十烈社区 but not among its features"
            );
        }
        let v = server
            .json(&format!(
                "/collections/{layer}/items?within={wujia}&limit=1000"
            ))
            .await;
        let ids: BTreeSet<&str> = v["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap())
            .collect();
        // (a programme of 吴家镇 and its neighbours lies in all of them, within none)
        for (id, _) in wide_items
            .iter()
            .filter(|(_, (ly, codes))| ly == layer && codes.len() == 1)
        {
            assert!(ids.contains(id.as_str()), "{id} is within 吴家镇");
        }
    }
}
