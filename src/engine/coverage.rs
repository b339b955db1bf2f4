//! Coverage of an area by a layer: how many features meet it, how much of it they cover (their
//! union, so overlaps count once) on the ellipsoid, and sums of the plans' numeric attributes.

use geo::{Area, BooleanOps, Geometry, MultiLineString, MultiPolygon, Polygon, Rect};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;

use super::LayerIndex;
use crate::geom::{geodesic_length_m, polygons_of, union_area_m2, BoxRelation, PreparedArea};

/// The figures for one layer in one area.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LayerCoverage {
    pub layer: String,
    /// Features that meet the area.
    pub features: usize,
    /// Area of the union of the features' polygons inside the area, geodesic, m².
    pub covered_m2: f64,
    /// Length of the features' lines inside the area, geodesic, m.
    pub line_length_m: f64,
    /// Sums of numeric attributes over the features that meet the area, as written in the plans
    /// (not pro-rated by the share inside).
    pub sums: BTreeMap<String, f64>,
    /// Whether any counted feature has approximate geometry.
    pub approximate_inputs: bool,
    /// Candidates left out because the plans tie them only to a whole district.
    pub district_level_skipped: usize,
}

/// Whether a numeric property is a quantity worth summing (not a year, code or coordinate).
pub fn summable(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !(k.contains("year")
        || k.contains("code")
        || k.ends_with("_id")
        || k == "id"
        || k.contains("lon")
        || k.contains("lat")
        || k.ends_with("_no")
        || k.contains("rank")
        || k.contains("version")
        || k.contains("approx"))
}

/// The unit a property's name declares (`area_mu` → 亩), if any.
pub fn unit_of(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    let table: &[(&str, &str)] = &[
        ("_wan_yuan", "万元"),
        ("_yi_yuan", "亿元"),
        ("_yuan", "元"),
        ("_mu", "亩"),
        ("_ha", "ha"),
        ("_km2", "km²"),
        ("_m2", "m²"),
        ("_km", "km"),
        ("_m", "m"),
        ("households", "户"),
        ("people", "人"),
        ("population", "人"),
        ("_count", "个"),
        ("_sites", "处"),
    ];
    table
        .iter()
        .find(|(suffix, _)| k.ends_with(suffix))
        .map(|(_, u)| *u)
}

fn lines_of(g: &Geometry<f64>) -> MultiLineString<f64> {
    match g {
        Geometry::LineString(l) => MultiLineString(vec![l.clone()]),
        Geometry::MultiLineString(ml) => ml.clone(),
        Geometry::GeometryCollection(gc) => {
            MultiLineString(gc.0.iter().flat_map(|g| lines_of(g).0).collect())
        }
        _ => MultiLineString(vec![]),
    }
}

fn has_polygons(g: &Geometry<f64>) -> bool {
    match g {
        Geometry::Polygon(_) | Geometry::Rect(_) | Geometry::Triangle(_) => true,
        Geometry::MultiPolygon(mp) => !mp.0.is_empty(),
        Geometry::GeometryCollection(gc) => gc.0.iter().any(has_polygons),
        _ => false,
    }
}

/// Hands `f` each of the geometry's polygons by reference, if it holds them as polygons (not
/// rectangles or triangles) and each has a positive area; otherwise hands none and says so.
fn borrow_polygons<'a>(g: &'a Geometry<f64>, f: &mut impl FnMut(&'a Polygon<f64>)) -> bool {
    fn all<'a>(g: &'a Geometry<f64>, out: &mut Vec<&'a Polygon<f64>>) -> bool {
        match g {
            Geometry::Polygon(p) => {
                out.push(p);
                true
            }
            Geometry::MultiPolygon(mp) => {
                out.extend(mp.0.iter());
                true
            }
            Geometry::GeometryCollection(gc) => gc.0.iter().all(|g| all(g, out)),
            Geometry::Rect(_) | Geometry::Triangle(_) => false,
            _ => true,
        }
    }
    let mut found = Vec::new();
    if !all(g, &mut found) || found.is_empty() || found.iter().any(|p| p.unsigned_area() <= 0.0) {
        return false;
    }
    found.into_iter().for_each(f);
    true
}

/// Whether a feature is pinned only to a whole district (`placement: "district"`): its polygon is
/// the district, so it says nothing about any town or village in it.
pub fn district_level(f: &crate::model::Feature) -> bool {
    f.properties.get("placement").and_then(Value::as_str) == Some("district")
}

/// Computes a layer's coverage of an area. With `skip_district_level`, features placed only at
/// district level are left out (counted in `district_level_skipped`).
pub fn coverage(idx: &LayerIndex, area: &PreparedArea, skip_district_level: bool) -> LayerCoverage {
    let mut out = LayerCoverage {
        layer: idx.layer.id.clone(),
        ..Default::default()
    };
    let Some(window) = area.bbox() else {
        return out;
    };
    let mut slots: Vec<(u32, Rect<f64>)> = idx.candidate_boxes(window).collect();
    slots.sort_unstable_by_key(|(slot, _)| *slot);
    // Large layers are read in two halves on two threads, merged in slot order.
    let halves: Vec<&[(u32, Rect<f64>)]> = if slots.len() >= 4_000 {
        let (a, b) = slots.split_at(slots.len() / 2);
        vec![a, b]
    } else {
        vec![&slots]
    };
    let parts: Vec<(LayerCoverage, Vec<Cow<'_, Polygon<f64>>>)> = if halves.len() > 1 {
        std::thread::scope(|scope| {
            let handles: Vec<_> = halves
                .iter()
                .map(|h| scope.spawn(|| meeting(idx, area, skip_district_level, h)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    } else {
        vec![meeting(idx, area, skip_district_level, &slots)]
    };
    let mut pieces = Vec::new();
    for (part, p) in parts {
        out.features += part.features;
        out.line_length_m += part.line_length_m;
        out.approximate_inputs |= part.approximate_inputs;
        out.district_level_skipped += part.district_level_skipped;
        for (k, v) in part.sums {
            *out.sums.entry(k).or_insert(0.0) += v;
        }
        pieces.extend(p);
    }
    out.covered_m2 = union_area_m2(&pieces);
    out
}

/// The features of `slots` that meet the area: their count, lengths and sums (no area yet), and
/// their polygons' parts inside it — borrowed from the index when wholly inside.
fn meeting<'a>(
    idx: &'a LayerIndex,
    area: &PreparedArea,
    skip_district_level: bool,
    slots: &[(u32, Rect<f64>)],
) -> (LayerCoverage, Vec<Cow<'a, Polygon<f64>>>) {
    let mut out = LayerCoverage::default();
    let mut pieces: Vec<Cow<'a, Polygon<f64>>> = Vec::new();
    for &(slot, r) in slots {
        let Some(f) = idx.slot(slot) else { continue };
        let Some(g) = f.geometry.as_ref() else {
            continue;
        };
        let relation = area.relate_box(r);
        if relation == BoxRelation::Outside {
            continue;
        }
        if skip_district_level && district_level(f) {
            if area.intersects(g) {
                out.district_level_skipped += 1;
            }
            continue;
        }
        // A feature counts when a positive part of it lies inside: neighbours that only share a
        // boundary with the area (as tiled admin units do) are not "in" it.
        let lines = lines_of(g);
        let mut meets = false;
        let has_polys = has_polygons(g);
        let has_lines = !lines.0.is_empty();
        if has_polys {
            if relation == BoxRelation::Inside
                && borrow_polygons(g, &mut |p| pieces.push(Cow::Borrowed(p)))
            {
                // Wholly inside: the stored polygons themselves, uncopied.
                meets = true;
            } else {
                let inside = match relation {
                    BoxRelation::Inside => polygons_of(g),
                    _ => polygons_of(g).intersection(&area.shape),
                };
                if inside.0.iter().any(|p| p.unsigned_area() > 0.0) {
                    meets = true;
                    pieces.extend(inside.0.into_iter().map(Cow::Owned));
                }
            }
        }
        if has_lines {
            let inside = match relation {
                BoxRelation::Inside => lines,
                _ => area.shape.clip(&lines, false),
            };
            let m = geodesic_length_m(&Geometry::MultiLineString(inside));
            if m > 0.0 {
                meets = true;
                out.line_length_m += m;
            }
        }
        if !has_polys && !has_lines {
            meets = geo::CoordsIter::coords_iter(g).any(|c| area.contains_coord(c));
        }
        if !meets {
            continue;
        }
        out.features += 1;
        if f.properties.get("approximate") == Some(&Value::Bool(true)) {
            out.approximate_inputs = true;
        }
        for (k, v) in &f.properties {
            if let Some(n) = v.as_f64() {
                if let Some(sum) = out.sums.get_mut(k) {
                    *sum += n;
                } else if summable(k) {
                    out.sums.insert(k.clone(), n);
                }
            }
        }
    }
    (out, pieces)
}

/// A prepared area for the part of `unit` inside `clip` (a child unit cut by a drawn polygon).
pub fn intersect_areas(unit: &MultiPolygon<f64>, clip: &MultiPolygon<f64>) -> PreparedArea {
    PreparedArea::new(unit.intersection(clip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::geodesic_area_m2;
    use crate::model::{Feature, Layer};
    use geo::{coord, Rect};

    fn square(id: &str, x0: f64, y0: f64, side: f64, props: serde_json::Value) -> Feature {
        let serde_json::Value::Object(m) = props else {
            panic!()
        };
        let r = Rect::new(coord! {x: x0, y: y0}, coord! {x: x0 + side, y: y0 + side});
        Feature::from_parts("t", id.into(), m, Some(Geometry::Polygon(r.to_polygon())))
    }

    #[test]
    fn union_counts_overlaps_once_and_clips_to_the_area() {
        // Area: 105.0–105.1 × 29.0–29.1. Features: two overlapping 0.02° squares inside, one half
        // outside, one far away.
        let area = PreparedArea::new(MultiPolygon(vec![Rect::new(
            coord! {x: 105.0, y: 29.0},
            coord! {x: 105.1, y: 29.1},
        )
        .to_polygon()]));
        let mut feats = vec![
            square(
                "a",
                105.01,
                29.01,
                0.02,
                serde_json::json!({"area_mu": 100, "target_year": 2025, "approximate": true}),
            ),
            square("b", 105.02, 29.01, 0.02, serde_json::json!({"area_mu": 50})),
            square(
                "c",
                105.09,
                29.05,
                0.02,
                serde_json::json!({"investment_wan_yuan": 7.5}),
            ),
            square(
                "far",
                106.0,
                30.0,
                0.02,
                serde_json::json!({"area_mu": 1000}),
            ),
        ];
        for (i, f) in feats.iter_mut().enumerate() {
            f.id = i.to_string();
        }
        let idx = LayerIndex::build(Layer::untitled("t"), 1, feats);
        let c = coverage(&idx, &area, false);
        assert_eq!(c.features, 3);
        assert_eq!(c.sums.get("area_mu"), Some(&150.0));
        assert_eq!(c.sums.get("investment_wan_yuan"), Some(&7.5));
        assert!(!c.sums.contains_key("target_year"));
        assert!(c.approximate_inputs);
        // Union: a∪b is 0.03×0.02, c inside is 0.01×0.02: 0.0008 deg² in all. Independent check:
        // the same rectangles measured one by one with the geodesic area.
        let rect_m2 = |x0: f64, y0: f64, x1: f64, y1: f64| {
            geodesic_area_m2(&Geometry::Polygon(
                Rect::new(coord! {x: x0, y: y0}, coord! {x: x1, y: y1}).to_polygon(),
            ))
        };
        let expected = rect_m2(105.01, 29.01, 105.04, 29.03) + rect_m2(105.09, 29.05, 105.1, 29.07);
        // (1e-8: the union splits edges at new vertices, which moves geodesic edges by a hair.)
        assert!(
            ((c.covered_m2 - expected) / expected).abs() < 1e-8,
            "{} vs {expected}",
            c.covered_m2
        );
    }

    #[test]
    fn units_from_names() {
        assert_eq!(unit_of("area_mu"), Some("亩"));
        assert_eq!(unit_of("investment_wan_yuan"), Some("万元"));
        assert_eq!(unit_of("households"), Some("户"));
        assert_eq!(unit_of("misc"), None);
    }
}
