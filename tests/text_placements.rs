//! Issue 12, items 4 and 5, on the committed seeds/ and data/: the figures the text gives (not
//! another number of the same sentence), each thing drawn once, the units the NBS codes put
//! places in, the missing entities added or listed with a reason, farm blobs over several towns
//! spread by their rural area, one named site drawn as one polygon of its size, and the count of
//! units a text leaves unnamed. Areas are measured here, on the ellipsoid, independently of the
//! generator.

mod common;

use geo::{BooleanOps, GeodesicArea, Geometry, Intersects, MultiPolygon};
use serde_json::Value;
use std::collections::BTreeMap;

const M2_PER_MU: f64 = 10000.0 / 15.0;

struct Seeds {
    features: BTreeMap<String, (Value, Option<Geometry>)>,
}

impl Seeds {
    fn load() -> Seeds {
        let mut features = BTreeMap::new();
        for e in std::fs::read_dir(common::repo().join("seeds")).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if !name.ends_with(".geojson") {
                continue;
            }
            for f in common::bundled(&format!("seeds/{name}")).features {
                let id = common::feature_id(&f);
                let props = Value::Object(f.properties.clone().unwrap_or_default());
                let g = f
                    .geometry
                    .map(|g| Geometry::try_from(g).expect("a geometry"));
                features.insert(id, (props, g));
            }
        }
        Seeds { features }
    }
    fn props(&self, id: &str) -> &Value {
        &self
            .features
            .get(id)
            .unwrap_or_else(|| panic!("no feature {id}"))
            .0
    }
    fn polygons(&self, id: &str) -> MultiPolygon {
        match &self.features[id].1 {
            Some(Geometry::MultiPolygon(m)) => m.clone(),
            Some(Geometry::Polygon(p)) => MultiPolygon(vec![p.clone()]),
            g => panic!("{id}: not a polygon: {g:?}"),
        }
    }
    fn named(&self, name: &str) -> Vec<&str> {
        self.features
            .iter()
            .filter(|(_, (p, _))| p["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

fn units(file: &str) -> BTreeMap<String, (Value, MultiPolygon)> {
    common::bundled(&format!("data/{file}"))
        .features
        .into_iter()
        .map(|f| {
            let id = common::feature_id(&f);
            let g = match Geometry::try_from(f.geometry.unwrap()).unwrap() {
                Geometry::MultiPolygon(m) => m,
                Geometry::Polygon(p) => MultiPolygon(vec![p]),
                g => panic!("{id}: {g:?}"),
            };
            (id, (Value::Object(f.properties.unwrap_or_default()), g))
        })
        .collect()
}

/// Geodesic area, m² (rings oriented first: a clockwise exterior would measure the rest of the
/// Earth).
fn m2(m: &MultiPolygon) -> f64 {
    use geo::orient::{Direction, Orient};
    m.orient(Direction::Default).geodesic_area_unsigned()
}

fn codes(p: &Value) -> Vec<String> {
    p["admin_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// A feature's name without what follows a parenthesis (安康移民小区, not 安康移民小区（…）).
fn base(p: &Value) -> &str {
    let n = p["name"].as_str().unwrap();
    n.split(['（', '(']).next().unwrap()
}

fn catalog(plan: &str) -> Value {
    let p = common::repo().join(format!("../shared/reference/catalog/{plan}.json"));
    if !p.exists() {
        common::missing_tool("../shared/reference (the plans' catalog beside the checkout)");
    }
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The six figures of item 5: the whole thing's area, or none when the text gives none.
#[test]
fn area_figures_are_the_things_own() {
    let s = Seeds::load();
    // a district's tea total and a town's vegetable scale are not these bases' areas
    for id in ["001-p001", "002-p001", "004-p-3-16", "004-p-6-1"] {
        let p = s.props(id);
        assert!(p["area_mu"].is_null(), "{id}: area_mu {}", p["area_mu"]);
        assert!(
            p["area_mu_note"].is_string(),
            "{id} says why it has no area"
        );
    }
    assert_eq!(s.props("004-p-3-11")["area_mu"], 1747.0);
    // 3-15: every part the text sizes in 亩, summed from the catalog's own metrics
    let cat = catalog("004");
    let p315 = cat["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "3-15")
        .unwrap();
    let parts: f64 = p315["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["unit"] == "亩")
        .map(|m| m["value"].as_f64().unwrap())
        .sum();
    assert_eq!(s.props("004-p-3-15")["area_mu"].as_f64(), Some(parts));
    assert!(parts > 600.0);
    // what is drawn follows the figure
    let drawn = m2(&s.polygons("004-p-3-11")) / M2_PER_MU;
    assert!((drawn - 1747.0).abs() < 17.5, "3-11 drawn {drawn} 亩");
}

/// 武隆's five 集中安置点 carry the group's figures once, not as each site's own.
#[test]
fn resettlement_group_totals_are_not_summed_per_site() {
    let s = Seeds::load();
    let sites: Vec<&Value> = s
        .features
        .values()
        .map(|(p, _)| p)
        .filter(|p| p["layer"] == "resettlement_sites" && p["plan"] == "004")
        .collect();
    assert_eq!(sites.len(), 5);
    let summed: f64 = sites.iter().filter_map(|p| p["households"].as_f64()).sum();
    assert_eq!(summed, 0.0, "no site carries households of its own");
    for p in &sites {
        assert_eq!(p["group"]["households"], 74);
        assert_eq!(p["group"]["people"], 270);
    }
}

/// 高山蔬菜产业园 is 附件1 project 3-5: drawn once, the other reference kept on the project.
#[test]
fn the_alpine_vegetable_park_is_drawn_once() {
    let s = Seeds::load();
    let drawn: Vec<&str> = s
        .features
        .iter()
        .filter(|(_, (p, g))| {
            g.is_some()
                && p["plan"] == "004"
                && (p["name"].as_str().unwrap().starts_with("高山蔬菜产业园")
                    || p["project_no"] == "3-5")
        })
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(drawn, vec!["004-p-3-5"]);
    let refs = s.props("004-p-3-5")["other_references"].to_string();
    assert!(refs.contains("高山蔬菜产业园"), "{refs}");
    // seven of its ten towns are unknown, and say so
    let u = &s.props("004-p-3-5")["units_unknown"];
    assert_eq!(
        (u["named"].as_u64(), u["total"].as_u64()),
        (Some(3), Some(10))
    );
}

/// Places in the units their NBS codes put them in (胡桥村 and 古迹社区 in 长沙镇, 东华社区 in
/// 白鹤街道); 长沙组团 does not reach 赵家街道.
#[test]
fn places_lie_in_the_units_of_their_codes() {
    let s = Seeds::load();
    let villages = units("villages.geojson");
    let town_of = |name: &str| -> String {
        let (id, _) = villages
            .iter()
            .find(|(id, (p, _))| id.starts_with("500154") && p["name"] == name)
            .unwrap_or_else(|| panic!("no village {name}"));
        id[..9].to_string()
    };
    let changsha = town_of("胡桥村");
    assert_eq!(town_of("古迹社区"), changsha);
    let baihe = town_of("东华社区");
    for (name, town) in [
        ("胡桥片区", &changsha),
        ("古迹片区", &changsha),
        ("东华片区", &baihe),
        ("胡桥智能装备制造产业园", &changsha),
        ("开州区浦里新区胡桥片区", &changsha),
        ("高新区长沙组团", &changsha),
    ] {
        for id in s.named(name) {
            assert_eq!(codes(s.props(id)), vec![town.clone()], "{id} {name}");
        }
    }
    let towns = units("towns.geojson");
    let zhaojia = &towns["500154007"].1;
    for id in s.named("高新区长沙组团") {
        let g = s.polygons(id);
        let inside = m2(&g.intersection(zhaojia));
        assert!(inside < 1.0, "{id} has {inside} m² in 赵家街道");
    }
    // "文峰" in a list of streets is 文峰街道, not 文峰社区
    let p2 = s.props("003-p-2");
    assert!(codes(p2).contains(&"500154002".to_string()));
    assert!(!codes(p2).iter().any(|c| c.len() == 12));
    // every alias's units lie in the district it is filed under
    let aliases: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("seeds/aliases.json")).unwrap(),
    )
    .unwrap();
    for a in aliases.as_array().unwrap() {
        let d = a["district_code"].as_str().unwrap();
        for c in a["codes"].as_array().unwrap() {
            assert!(c.as_str().unwrap().starts_with(d), "{a}");
        }
    }
}

/// Every entity the issue found missing is on the map or in unplaced.json with a reason, and
/// 开州 has land-consolidation features.
#[test]
fn missing_entities_are_added_or_listed() {
    let s = Seeds::load();
    let unplaced: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("seeds/unplaced.json")).unwrap(),
    )
    .unwrap();
    let listed = |name: &str| {
        ["not_placed", "partially_placed", "district_level", "merged"]
            .iter()
            .flat_map(|k| unplaced[*k].as_array().unwrap())
            .any(|u| {
                u["name"].as_str().unwrap().contains(name)
                    && u["reason"].as_str().is_some_and(|r| r.len() > 20)
            })
    };
    for (plan, name) in [
        ("000", "外向型产业园区"),
        ("000", "研发飞地"),
        ("002", "川南渝西融合发展试验区"),
        ("002", "国家畜牧科技城"),
        ("003", "科创飞地"),
        ("003", "产业飞地"),
        ("003", "水上运动产业孵化园"),
        ("000", "连片撂荒耕地统一整治"),
        ("003", "低丘缓坡地"),
        ("004", "耕地修复和宜机化改造工程"),
        ("004", "全国有机农产品示范区"),
    ] {
        let on_map = s
            .features
            .values()
            .any(|(p, _)| p["plan"] == plan && p["name"].as_str().unwrap().contains(name));
        assert!(
            on_map || listed(name),
            "{plan} {name}: neither on the map nor listed"
        );
    }
    let kaizhou_lc = s
        .features
        .values()
        .filter(|(p, _)| p["layer"] == "land_consolidation" && p["district_code"] == "500154")
        .count();
    assert!(
        kaizhou_lc >= 3,
        "开州 has {kaizhou_lc} land-consolidation features"
    );
}

/// A farm blob named in several towns lies in each in proportion to the rural area (村, not
/// 社区) of each; measured on the drawn polygon against the villages' polygons.
#[test]
fn a_multi_town_farm_blob_follows_rural_area() {
    let s = Seeds::load();
    let villages = units("villages.geojson");
    let rural = |town: &str| -> MultiPolygon {
        villages
            .iter()
            .filter(|(id, (p, _))| id.starts_with(town) && p["level"] == "village")
            .fold(MultiPolygon(vec![]), |acc, (_, (_, g))| acc.union(g))
    };
    let mut checked = 0;
    for (id, (p, g)) in &s.features {
        let Some(r) = p.get("placement_recipe") else {
            continue;
        };
        let method = p["geometry_method"].as_str().unwrap();
        if r["spread"] != "by-area" || r["rural"] != true || method.contains("capped") {
            continue;
        }
        let towns = codes(p);
        if towns.iter().any(|c| c.len() != 9) || g.is_none() {
            continue;
        }
        let g = s.polygons(id);
        let rurals: Vec<MultiPolygon> = towns.iter().map(|t| rural(t)).collect();
        let total_rural: f64 = rurals.iter().map(m2).sum();
        let total_drawn = m2(&g);
        for (t, r) in towns.iter().zip(&rurals) {
            let want = m2(r) / total_rural;
            let got = m2(&g.intersection(r)) / total_drawn;
            assert!(
                (got - want).abs() < 0.02,
                "{id} in {t}: {got:.3} of it, rural share {want:.3}"
            );
        }
        assert!(method.contains("coarse: spread over"), "{id}: {method}");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} multi-town farm blobs checked");
}

/// One named site is one polygon: 汉丰湖 about 15 km², the 移民小区, 芙蓉湖 across the border
/// of its two towns; 石桥湖水库 the 10000 亩 the text gives it.
#[test]
fn one_named_site_is_one_polygon_of_its_size() {
    let s = Seeds::load();
    let towns = units("towns.geojson");
    let one = |name: &str| -> (String, MultiPolygon) {
        let ids: Vec<&str> = s
            .named(name)
            .into_iter()
            .filter(|id| base(s.props(id)) == name)
            .collect();
        let drawn: Vec<&&str> = ids
            .iter()
            .filter(|id| s.features[**id].1.is_some())
            .collect();
        assert_eq!(drawn.len(), 1, "{name}: {ids:?}");
        let g = s.polygons(drawn[0]);
        assert_eq!(g.0.len(), 1, "{name} is {} polygons", g.0.len());
        (drawn[0].to_string(), g)
    };
    let (_, lake) = one("汉丰湖");
    let km2 = m2(&lake) / 1e6;
    assert!((km2 - 15.0).abs() < 0.3, "汉丰湖 {km2} km²");
    one("安康移民小区");
    one("驷马移民小区");
    let (id, furong) = one("芙蓉湖");
    let declared = codes(s.props(&id));
    assert_eq!(declared.len(), 2, "芙蓉湖 declares {declared:?}");
    for c in &declared {
        let inside = m2(&furong.intersection(&towns[c].1));
        assert!(inside > 0.05 * m2(&furong), "芙蓉湖 has {inside} m² in {c}");
    }
    let (_, shiqiao) = one("石桥湖水库");
    let mu = m2(&shiqiao) / M2_PER_MU;
    assert!((mu - 10000.0).abs() < 100.0, "石桥湖水库 {mu} 亩");
    // every one-site feature declares exactly the units it reaches
    for (id, (p, g)) in &s.features {
        if p["placement_recipe"]["one_site"] != true {
            continue;
        }
        let g = match g {
            Some(Geometry::MultiPolygon(m)) => m,
            _ => panic!("{id}: a one-site blob is a MultiPolygon"),
        };
        assert_eq!(g.0.len(), 1, "{id}");
        for c in codes(p) {
            let unit = towns
                .get(&c)
                .map(|t| t.1.clone())
                .unwrap_or_else(|| units("villages.geojson")[&c].1.clone());
            assert!(g.intersects(&unit), "{id} does not reach {c}");
        }
    }
}

/// A text naming some of a counted set of units ("等10个乡镇", "20 个乡镇（街道）") records how
/// many are unknown, and the placement says so.
#[test]
fn unknown_units_are_counted() {
    let s = Seeds::load();
    let u = &s.props("004-p-3-16")["units_unknown"];
    assert_eq!(
        (u["named"].as_u64(), u["total"].as_u64()),
        (Some(0), Some(20))
    );
    let water = s.named("供水工程11处")[0];
    let p = s.props(water);
    assert_eq!(p["units_unknown"]["unknown"], 1);
    assert!(p["geometry_method"].as_str().unwrap().contains("unknown"));
    // the works are points at the places they are named after
    assert!(matches!(
        s.features[water].1,
        Some(Geometry::MultiPoint(ref m)) if m.0.len() == 8
    ));
    for (id, (p, _)) in &s.features {
        if p.get("units_unknown").is_some() {
            assert!(
                p["geometry_method"].as_str().unwrap().contains("unknown"),
                "{id}"
            );
        }
    }
}
