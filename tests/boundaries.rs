//! The reference units form a coverage at every level: districts, towns and villages do not
//! overlap (pairwise intersection area below `OVERLAP_M2`, across district borders too), and
//! the children of each unit add up to it and their union is it (to `REL` of its area).
//! Areas are geodesic (`yizhangtu::geom::geodesic_area_m2`), intersections and unions are
//! `geo`'s boolean operations on the stored lon/lat coordinates.

use geo::{Area, BooleanOps, BoundingRect, Geometry, Intersects, MultiPolygon, Rect};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use yizhangtu::geom::geodesic_area_m2;

/// Largest intersection area two units of one level may have (m²): a floating-point residue.
const OVERLAP_M2: f64 = 1e-6;
/// Children's area sum against the parent, relative.
const REL: f64 = 1e-9;
/// Children's union (by `geo`'s boolean operations, which snap to an integer grid of about
/// 1e-8 of the extent) against the parent, relative. The exact statement is
/// `boundary_edges_match`: the children's edges that are not shared are the parent's edges.
const REL_BOOLEAN: f64 = 1e-8;

struct Unit {
    id: String,
    parent: String,
    geom: MultiPolygon,
    bbox: Rect,
}

fn load(file: &str, parent_key: &str) -> Vec<Unit> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(file);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let g: geojson::Geometry = serde_json::from_value(f["geometry"].clone()).unwrap();
            let geom: Geometry = g.try_into().unwrap();
            let geom = match geom {
                Geometry::MultiPolygon(m) => m,
                Geometry::Polygon(p) => MultiPolygon(vec![p]),
                other => panic!("{file}: not a polygon: {other:?}"),
            };
            let p = &f["properties"];
            Unit {
                id: f["id"].as_str().unwrap().to_string(),
                parent: p[parent_key].as_str().unwrap_or("").to_string(),
                bbox: geom.bounding_rect().unwrap(),
                geom,
            }
        })
        .collect()
}

fn m2(mp: &MultiPolygon) -> f64 {
    geodesic_area_m2(&Geometry::MultiPolygon(mp.clone()))
}

/// Pairs of units of one level whose intersection is more than `OVERLAP_M2`.
fn overlaps(units: &[Unit]) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for i in 0..units.len() {
        for j in i + 1..units.len() {
            if !units[i].bbox.intersects(&units[j].bbox) {
                continue;
            }
            let x = units[i].geom.intersection(&units[j].geom);
            if x.unsigned_area() == 0.0 {
                continue;
            }
            let a = m2(&x);
            if a > OVERLAP_M2 {
                out.push((units[i].id.clone(), units[j].id.clone(), a));
            }
        }
    }
    out
}

fn assert_no_overlaps(level: &str, units: &[Unit]) {
    let o = overlaps(units);
    let total: f64 = o.iter().map(|x| x.2).sum();
    assert!(
        o.is_empty(),
        "{level}: {} overlapping pairs, {total:.3} m² in all; first: {:?}",
        o.len(),
        &o[..o.len().min(5)]
    );
}

/// Children of each parent: their union equals the parent (symmetric difference) and their
/// areas add up to it, to `REL` of the parent's area.
fn assert_children_cover(level: &str, parents: &[Unit], children: &[Unit]) {
    let mut by: BTreeMap<&str, Vec<&Unit>> = BTreeMap::new();
    for c in children {
        by.entry(c.parent.as_str()).or_default().push(c);
    }
    for p in parents {
        let kids = by.get(p.id.as_str()).expect("parent without children");
        let pa = m2(&p.geom);
        let sum: f64 = kids.iter().map(|k| m2(&k.geom)).sum();
        assert!(
            ((sum - pa) / pa).abs() < REL,
            "{level} of {}: areas add up to {sum} m², the parent is {pa} m²",
            p.id
        );
        let mut u = MultiPolygon(vec![]);
        for k in kids {
            u = u.union(&k.geom);
        }
        let gap = m2(&p.geom.difference(&u));
        let out = m2(&u.difference(&p.geom));
        assert!(
            gap / pa < REL_BOOLEAN && out / pa < REL_BOOLEAN,
            "{level} of {}: union differs from the parent by {gap} m² of gaps and {out} m² outside",
            p.id
        );
    }
}

type P = (i64, i64);

fn key(c: &geo::Coord) -> P {
    ((c.x * 1e7).round() as i64, (c.y * 1e7).round() as i64)
}

/// Directed edges of the polygons with those of opposite direction cancelled: for a
/// coverage whose shared edges are identical vertex for vertex, what is left is its outline.
fn outline(polys: &[&MultiPolygon]) -> std::collections::BTreeSet<(P, P)> {
    let mut edges = std::collections::BTreeSet::new();
    for mp in polys {
        for p in &mp.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                for w in r.0.windows(2) {
                    let (a, b) = (key(&w[0]), key(&w[1]));
                    assert_ne!(a, b, "repeated vertex");
                    assert!(edges.insert((a, b)), "edge twice in one direction");
                    if edges.remove(&(b, a)) {
                        edges.remove(&(a, b));
                    }
                }
            }
        }
    }
    edges
}

/// Exact: the children's edges that are not shared (in opposite directions) with a sibling
/// are exactly the parent's edges, vertex for vertex (7-decimal coordinates).
fn boundary_edges_match(level: &str, parents: &[Unit], children: &[Unit]) {
    for p in parents {
        let kids: Vec<&MultiPolygon> = children
            .iter()
            .filter(|c| c.parent == p.id)
            .map(|c| &c.geom)
            .collect();
        let a = outline(&kids);
        let b = outline(&[&p.geom]);
        let extra = a.difference(&b).count();
        let missing = b.difference(&a).count();
        assert!(
            extra == 0 && missing == 0,
            "{level} of {}: {extra} outline edges the parent lacks, {missing} parent edges no child has",
            p.id
        );
    }
}

#[test]
fn shared_edges_are_identical() {
    let d = load("districts.geojson", "admin_code");
    let t = load("towns.geojson", "district_code");
    let v = load("villages.geojson", "town_code");
    boundary_edges_match("towns", &d, &t);
    boundary_edges_match("villages", &t, &v);
    // across district borders: the districts' own shared edges cancel too, so their outline
    // is the outline of all towns and of all villages
    let all = |u: &[Unit]| outline(&u.iter().map(|x| &x.geom).collect::<Vec<_>>());
    assert_eq!(all(&d), all(&t), "towns' outline is not the districts'");
    assert_eq!(all(&d), all(&v), "villages' outline is not the districts'");
}

#[test]
fn districts_do_not_overlap() {
    assert_no_overlaps("districts", &load("districts.geojson", "admin_code"));
}

#[test]
fn towns_do_not_overlap_and_cover_their_district() {
    let towns = load("towns.geojson", "district_code");
    assert_no_overlaps("towns", &towns);
    assert_children_cover("towns", &load("districts.geojson", "admin_code"), &towns);
}

#[test]
fn villages_do_not_overlap_and_cover_their_town() {
    let villages = load("villages.geojson", "town_code");
    assert_no_overlaps("villages", &villages);
    assert_children_cover("villages", &load("towns.geojson", "admin_code"), &villages);
}
