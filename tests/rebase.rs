//! Official boundaries in one command (issue 12, item 6): `import towns.geojson --layer towns
//! --replace --rebase` replaces the approximate towns and redraws every approximate plan
//! feature whose units changed, in one transaction. The "official" set is synthetic: the
//! generated towns with the border between 龙水镇 and a neighbour shifted (a 2 km square of
//! 龙水镇 given to the neighbour). Expectations are computed here from the geometry, not from the
//! service's own answers.

mod common;

use common::run;
use geo::{BooleanOps, Contains, GeodesicArea, Geometry, MultiPolygon, Rect};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use yizhangtu::model::Feature;
use yizhangtu::store::Store;

const LONGSHUI: &str = "500111100";

fn mp(g: &Option<Geometry>) -> MultiPolygon {
    match g {
        Some(Geometry::MultiPolygon(m)) => m.clone(),
        Some(Geometry::Polygon(p)) => MultiPolygon(vec![p.clone()]),
        other => panic!("not a polygon: {other:?}"),
    }
}

fn area(m: &MultiPolygon) -> f64 {
    m.geodesic_area_unsigned()
}

/// Area of a small remainder of a set operation, m² (planar at 29.6°N, good to a percent;
/// orientation-free, unlike the geodesic area of a ring the operation may turn round).
fn small_area(m: &MultiPolygon) -> f64 {
    geo::Area::unsigned_area(m) * 111_320.0 * 29.6f64.to_radians().cos() * 110_900.0
}

/// A seeded database in `dir`, and every feature in it.
async fn seeded(dir: &std::path::Path) -> (String, Vec<Feature>) {
    let db = dir.join("rebase.db").to_str().unwrap().to_string();
    let app = yizhangtu::app::App::open(&db, true, None)
        .await
        .expect("open");
    let all = app.store.all_features().await.expect("features");
    app.store.close().await;
    (db, all)
}

async fn features(db: &str) -> Vec<Feature> {
    let store = Store::open(db).await.expect("open");
    let all = store.all_features().await.expect("features");
    store.close().await;
    all
}

fn by_key(all: &[Feature]) -> BTreeMap<(String, String), Feature> {
    all.iter()
        .map(|f| ((f.layer.clone(), f.id.clone()), f.clone()))
        .collect()
}

/// The towns as an official GeoJSON file would bring them: code as id, a name, a polygon.
fn official_file(towns: &[(String, String, MultiPolygon)], path: &std::path::Path) {
    let features: Vec<Value> = towns
        .iter()
        .map(|(code, name, g)| {
            json!({"type": "Feature", "id": code,
                   "properties": {"name": name, "source": "synthetic official set"},
                   "geometry": geojson::Geometry::new(geojson::Value::from(g))})
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_string(&json!({"type": "FeatureCollection", "features": features})).unwrap(),
    )
    .unwrap();
}

/// The towns by code: (name, polygon).
fn towns_of(all: &[Feature]) -> BTreeMap<String, (String, MultiPolygon)> {
    all.iter()
        .filter(|f| f.layer == "towns")
        .map(|f| (f.id.clone(), (f.name.clone().unwrap(), mp(&f.geometry))))
        .collect()
}

/// The towns with 龙水镇 and `other` replaced by their new polygons.
fn moved_border(
    towns: &BTreeMap<String, (String, MultiPolygon)>,
    other: &str,
    new_ls: &MultiPolygon,
    new_other: &MultiPolygon,
) -> Vec<(String, String, MultiPolygon)> {
    towns
        .iter()
        .map(|(c, (n, g))| {
            let g = match c.as_str() {
                LONGSHUI => new_ls.clone(),
                c if c == other => new_other.clone(),
                _ => g.clone(),
            };
            (c.clone(), n.clone(), g)
        })
        .collect()
}

/// 龙水镇's neighbour with the longest shared border, and a vertex of that border.
fn neighbour(towns: &BTreeMap<String, (String, MultiPolygon)>) -> (String, geo::Coord) {
    let ls = &towns[LONGSHUI].1;
    let mine: BTreeSet<(u64, u64)> =
        ls.0.iter()
            .flat_map(|p| p.exterior().0.iter())
            .map(|c| (c.x.to_bits(), c.y.to_bits()))
            .collect();
    let mut best: Option<(usize, String, Vec<geo::Coord>)> = None;
    for (code, (_, g)) in towns {
        if code == LONGSHUI || !code.starts_with("500111") {
            continue;
        }
        let shared: Vec<geo::Coord> =
            g.0.iter()
                .flat_map(|p| p.exterior().0.iter().copied())
                .filter(|c| mine.contains(&(c.x.to_bits(), c.y.to_bits())))
                .collect();
        if best.as_ref().is_none_or(|b| shared.len() > b.0) {
            best = Some((shared.len(), code.clone(), shared));
        }
    }
    let (n, code, shared) = best.expect("龙水镇 has neighbours");
    assert!(n > 4, "龙水镇 shares a border");
    (code, shared[shared.len() / 2])
}

/// Unit codes a plan feature's recipe names.
fn recipe_codes(f: &Feature) -> Option<Vec<String>> {
    let r = f.properties.get("placement_recipe")?;
    Some(
        r["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["codes"].as_array().unwrap().iter())
            .map(|c| c.as_str().unwrap().to_string())
            .collect(),
    )
}

/// `yizhangtu import FILE --layer towns --replace --rebase --db DB`.
fn rebase_import(file: &std::path::Path, db: &str) -> (bool, String, String) {
    run(&[
        "import",
        file.to_str().unwrap(),
        "--layer",
        "towns",
        "--replace",
        "--rebase",
        "--db",
        db,
    ])
}

const ADMIN: &[&str] = &[
    "districts",
    "towns",
    "villages",
    "town_seats",
    "village_points",
];

#[tokio::test]
async fn official_towns_replace_the_generated_ones_and_plan_features_follow() {
    let dir = tempfile::tempdir().unwrap();
    let (db, before) = seeded(dir.path()).await;
    let towns = towns_of(&before);
    let (other, at) = neighbour(&towns);
    // a 2 km square (about 0.02°) round a border vertex: 龙水镇's part of it goes to `other`
    let d = (0.01, 0.009);
    let square = MultiPolygon(vec![Rect::new(
        geo::Coord {
            x: at.x - d.0,
            y: at.y - d.1,
        },
        geo::Coord {
            x: at.x + d.0,
            y: at.y + d.1,
        },
    )
    .to_polygon()]);
    let strip = towns[LONGSHUI].1.intersection(&square);
    assert!(
        area(&strip) > 500_000.0,
        "the shift moves land: {}",
        area(&strip)
    );
    let new_ls = towns[LONGSHUI].1.difference(&square);
    let new_other = towns[&other].1.union(&strip);
    let official = moved_border(&towns, &other, &new_ls, &new_other);
    let file = dir.path().join("towns.geojson");
    official_file(&official, &file);

    let (ok, out, err) = rebase_import(&file, &db);
    assert!(ok, "{err}\n{out}");
    assert!(out.contains(&format!("replaced towns/{LONGSHUI}")), "{out}");
    assert!(out.contains(&format!("replaced towns/{other}")), "{out}");

    let after = features(&db).await;
    let old = by_key(&before);
    let new = by_key(&after);
    assert_eq!(old.len(), new.len(), "no feature added or lost");

    // towns: the two changed ones have the official geometry; all lost `approximate`
    for (code, _, g) in &official {
        let t = &new[&("towns".to_string(), code.clone())];
        assert_eq!(t.properties.get("approximate"), None, "{code}");
        assert!(
            t.properties["geometry_method"]
                .as_str()
                .unwrap()
                .starts_with("official"),
            "{code}"
        );
        let diff = small_area(&mp(&t.geometry).xor(g));
        assert!(
            diff < 1.0,
            "{code} differs from the official polygon by {diff} m²"
        );
    }

    // villages of the two towns tile their new towns; other villages are untouched
    for (code, g) in [(LONGSHUI, &new_ls), (other.as_str(), &new_other)] {
        let vs: Vec<MultiPolygon> = after
            .iter()
            .filter(|f| f.layer == "villages" && f.id.starts_with(code))
            .map(|f| mp(&f.geometry))
            .collect();
        for v in &vs {
            assert!(
                area(v) < area(g),
                "a village of {code} is larger than it: {v:?}"
            );
        }
        let sum: f64 = vs.iter().map(area).sum();
        // the set operations along the changed border are exact to a few parts per million
        // of the town (tens of m² along kilometres of new border)
        let tolerance = 5e-6 * area(g);
        assert!(
            (sum - area(g)).abs() < tolerance,
            "villages of {code} add up to {sum} m², the town is {} m²",
            area(g)
        );
        for v in &vs {
            let off = small_area(&v.difference(g));
            assert!(off < 1.0, "a village of {code} lies {off} m² outside it");
        }
    }
    let moved_towns = [LONGSHUI, other.as_str()];
    for f in before.iter().filter(|f| f.layer == "villages") {
        if !moved_towns.iter().any(|t| f.id.starts_with(t)) {
            assert_eq!(new[&(f.layer.clone(), f.id.clone())].geometry, f.geometry);
        }
    }

    // plan features: those drawn in the two towns (or their villages) lie in their new units;
    // every other feature is exactly as it was
    let units: BTreeMap<String, MultiPolygon> = after
        .iter()
        .filter(|f| f.layer == "towns" || f.layer == "villages")
        .map(|f| (f.id.clone(), mp(&f.geometry)))
        .collect();
    let mut redrawn = 0;
    let mut names_moved = 0;
    for f in &before {
        if ADMIN.contains(&f.layer.as_str()) {
            continue;
        }
        let g = &new[&(f.layer.clone(), f.id.clone())];
        let codes = recipe_codes(f).unwrap_or_default();
        let touches = codes
            .iter()
            .any(|c| moved_towns.iter().any(|t| c.starts_with(t)));
        if !touches || f.properties.get("approximate") != Some(&Value::Bool(true)) {
            assert_eq!(g.geometry, f.geometry, "{} {:?} changed", f.id, f.name);
            assert_eq!(g.properties, f.properties, "{} {:?} changed", f.id, f.name);
            continue;
        }
        names_moved += 1;
        // a one-site polygon declares the units of its recipe it reaches
        if f.properties["placement_recipe"]["one_site"] == true {
            let declared: Vec<&str> = g.properties["admin_codes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                !declared.is_empty() && declared.iter().all(|c| codes.iter().any(|r| r == c)),
                "{}: {declared:?} not among {codes:?}",
                f.id
            );
        }
        if g.geometry != f.geometry {
            redrawn += 1;
            assert!(
                g.properties["geometry_method"]
                    .as_str()
                    .unwrap()
                    .contains("redrawn on official boundaries"),
                "{}",
                f.id
            );
            assert!(
                out.contains(&format!("redrawn {}/{}", f.layer, f.id)),
                "{out}"
            );
        }
        let region = codes
            .iter()
            .map(|c| units[c].clone())
            .reduce(|a, b| a.union(&b))
            .unwrap();
        match g.geometry.as_ref().unwrap() {
            Geometry::Point(p) => assert!(region.contains(p), "{} outside its unit", f.id),
            Geometry::MultiPoint(ps) => {
                for p in ps {
                    assert!(region.contains(p), "{} outside its units", f.id)
                }
            }
            Geometry::Polygon(_) | Geometry::MultiPolygon(_) => {
                let m = mp(&g.geometry);
                let outside = small_area(&m.difference(&region));
                assert!(outside < 1.0, "{}: {outside} m² outside its units", f.id);
                // in 龙水镇 only: nothing of it is left in the land 龙水镇 gave away
                if codes.iter().all(|c| c.starts_with(LONGSHUI)) {
                    let lost = small_area(&m.intersection(&strip));
                    assert!(lost < 1.0, "{}: {lost} m² in the land given away", f.id);
                }
            }
            _ => {}
        }
    }
    assert!(names_moved > 20, "龙水镇 has plan features: {names_moved}");
    assert!(redrawn > 0, "some features moved with the border");
}

#[tokio::test]
async fn a_failed_rebase_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, before) = seeded(dir.path()).await;
    let towns: Vec<(String, String, MultiPolygon)> = before
        .iter()
        .filter(|f| f.layer == "towns")
        .map(|f| (f.id.clone(), f.name.clone().unwrap(), mp(&f.geometry)))
        .collect();
    let import = |file: &std::path::Path| rebase_import(file, &db);

    // a town missing
    let file = dir.path().join("missing.geojson");
    official_file(&towns[1..], &file);
    let (ok, _, err) = import(&file);
    assert!(!ok);
    assert!(
        err.contains("lacks 1") && err.contains(&towns[0].0),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");

    // 龙水镇 shrunk to 1 km round its seat: its villages further out would have no land
    let ls = towns.iter().position(|t| t.0 == LONGSHUI).unwrap();
    let seat = before
        .iter()
        .find(|f| f.layer == "towns" && f.id == LONGSHUI)
        .map(|f| {
            let n = |k: &str| f.properties[k].as_f64().unwrap();
            geo::Coord {
                x: n("seat_lon"),
                y: n("seat_lat"),
            }
        })
        .unwrap();
    let mut shrunk = towns.clone();
    let near = Rect::new(
        geo::Coord {
            x: seat.x - 0.005,
            y: seat.y - 0.0045,
        },
        geo::Coord {
            x: seat.x + 0.005,
            y: seat.y + 0.0045,
        },
    )
    .to_polygon();
    shrunk[ls].2 = shrunk[ls].2.intersection(&MultiPolygon(vec![near]));
    let file = dir.path().join("shrunk.geojson");
    official_file(&shrunk, &file);
    let (ok, _, err) = import(&file);
    assert!(!ok);
    assert!(
        err.contains("no part of it lies in the official town"),
        "{err}"
    );

    // not a unit of the layer
    let mut wrong = towns.clone();
    wrong[0].0 = "999999999".into();
    let file = dir.path().join("wrong.geojson");
    official_file(&wrong, &file);
    let (ok, _, err) = import(&file);
    assert!(!ok);
    assert!(err.contains("names no unit of towns"), "{err}");

    // without --replace, clap refuses
    let (ok, _, err) = run(&[
        "import",
        file.to_str().unwrap(),
        "--layer",
        "towns",
        "--rebase",
        "--db",
        &db,
    ]);
    assert!(!ok);
    assert!(err.contains("--replace"), "{err}");

    let after = features(&db).await;
    assert_eq!(by_key(&before), by_key(&after), "nothing changed");
}

#[tokio::test]
async fn official_towns_equal_to_the_generated_ones_move_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, before) = seeded(dir.path()).await;
    let towns: Vec<(String, String, MultiPolygon)> = before
        .iter()
        .filter(|f| f.layer == "towns")
        .map(|f| (f.id.clone(), f.name.clone().unwrap(), mp(&f.geometry)))
        .collect();
    let file = dir.path().join("same.geojson");
    official_file(&towns, &file);
    let (ok, out, err) = rebase_import(&file, &db);
    assert!(ok, "{err}");
    assert!(
        !out.contains("redrawn") && !out.contains("re-fitted"),
        "{out}"
    );
    let after = by_key(&features(&db).await);
    for f in &before {
        let g = &after[&(f.layer.clone(), f.id.clone())];
        assert_eq!(g.geometry, f.geometry, "{}", f.id);
        if f.layer == "towns" {
            assert_eq!(g.properties.get("approximate"), None);
        } else {
            assert_eq!(g.properties, f.properties, "{}", f.id);
        }
    }
}

/// Seats and village points move with their units: an official 龙水镇 that leaves its GeoNames
/// seat outside (a square round the seat, and one round a village's site, given to a
/// neighbour) gets its seat moved inside, in `town_seats` and on the town, and every village
/// point of the two changed towns lies in its re-fitted village; no other seat moves.
#[tokio::test]
async fn seats_and_village_points_move_with_their_units() {
    let dir = tempfile::tempdir().unwrap();
    let (db, before) = seeded(dir.path()).await;
    let towns = towns_of(&before);
    let (other, _) = neighbour(&towns);
    let old = by_key(&before);
    let seat = match &old[&("town_seats".to_string(), LONGSHUI.to_string())].geometry {
        Some(Geometry::Point(p)) => *p,
        g => panic!("seat {g:?}"),
    };
    assert!(towns[LONGSHUI].1.contains(&seat));
    let around = |c: geo::Coord, h: f64| {
        MultiPolygon(vec![Rect::new(
            geo::Coord {
                x: c.x - h,
                y: c.y - h,
            },
            geo::Coord {
                x: c.x + h,
                y: c.y + h,
            },
        )
        .to_polygon()])
    };
    let villages: Vec<&Feature> = before
        .iter()
        .filter(|f| f.layer == "villages" && f.id.starts_with(LONGSHUI))
        .collect();
    // round the seat, small enough to leave every village some land
    let mut h = 0.004;
    while villages
        .iter()
        .any(|v| small_area(&mp(&v.geometry).difference(&around(seat.0, h))) < 1e4)
    {
        h /= 2.0;
    }
    // and round the site of a large village (so its point must move)
    let big = villages
        .iter()
        .find(|v| v.properties["level"] == "village" && area(&mp(&v.geometry)) > 4e6)
        .expect("龙水镇 has a large village");
    let site = geo::Coord {
        x: big.properties["point_lon"].as_f64().unwrap(),
        y: big.properties["point_lat"].as_f64().unwrap(),
    };
    let square = around(seat.0, h).union(&around(site, 0.003));
    let cut = towns[LONGSHUI].1.intersection(&square);
    let new_ls = towns[LONGSHUI].1.difference(&square);
    let new_other = towns[&other].1.union(&cut);
    let official = moved_border(&towns, &other, &new_ls, &new_other);
    let file = dir.path().join("towns.geojson");
    official_file(&official, &file);
    let (ok, out, err) = rebase_import(&file, &db);
    assert!(ok, "{err}\n{out}");
    assert!(
        out.contains(&format!("moved town_seats/{LONGSHUI}")),
        "{out}"
    );

    let new = by_key(&features(&db).await);
    let new_ls = mp(&new[&("towns".to_string(), LONGSHUI.to_string())].geometry);
    let moved = match &new[&("town_seats".to_string(), LONGSHUI.to_string())].geometry {
        Some(Geometry::Point(p)) => *p,
        g => panic!("seat {g:?}"),
    };
    assert!(
        new_ls.contains(&moved),
        "the seat lies in the official 龙水镇"
    );
    let town = &new[&("towns".to_string(), LONGSHUI.to_string())];
    let near = |v: &Value, x: f64| v.as_f64().is_some_and(|v| (v - x).abs() < 1e-9);
    assert!(near(&town.properties["seat_lon"], moved.x()));
    assert!(near(&town.properties["seat_lat"], moved.y()));
    assert!(town.properties["seat_moved"].is_string());
    // every village point of the changed towns lies in its village, on the village too
    let mut moved_points = 0;
    for ((layer, id), f) in &new {
        if layer != "village_points"
            || !(id.starts_with(LONGSHUI) || id.starts_with(other.as_str()))
        {
            continue;
        }
        let Some(Geometry::Point(p)) = f.geometry else {
            panic!("{id}")
        };
        let village = &new[&("villages".to_string(), id.clone())];
        assert!(
            mp(&village.geometry).contains(&p),
            "{id} outside its village"
        );
        if old[&(layer.clone(), id.clone())].geometry != f.geometry {
            moved_points += 1;
            assert_eq!(
                village.properties["point_lon"].as_f64(),
                Some(p.x()),
                "{id}"
            );
            assert!(out.contains(&format!("moved village_points/{id}")), "{out}");
        }
    }
    assert!(
        moved_points > 0,
        "a village site lay in the square given away"
    );
    // the other seats stay where they were
    for ((layer, id), f) in &old {
        if layer == "town_seats" && id != LONGSHUI {
            assert_eq!(
                new[&(layer.clone(), id.clone())].geometry,
                f.geometry,
                "{id}"
            );
        }
    }
}
