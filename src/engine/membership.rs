//! When a feature is "in" an area (an admin unit or a drawn polygon): one rule, used by
//! `/areas/{code}/features`, coverage, exports by area, the `within=` parameter and `check`.
//!
//! - a polygon is in the area when its overlap with it is more than [`MIN_OVERLAP_M2`] (1 m²)
//!   **and** more than [`MIN_OVERLAP_SHARE`] (1e-6) of the polygon's own area — or when all of it
//!   lies inside (a polygon smaller than 1 m² wholly inside is in);
//! - a line when more than [`MIN_LENGTH_M`] (1 m) of it lies inside, boundary included (or all
//!   of it);
//! - a point when it lies inside (boundary included).
//!
//! A feature that only touches the area, or overlaps it by a sliver of rounding noise along a
//! shared boundary (generalised boundaries of neighbouring units do), is not in it. Areas and
//! lengths are geodesic (WGS84 ellipsoid).
//!
//! Two kinds of plan item are in a unit by what they are tied to, not by area: an item tied only
//! to a whole district has no geometry and is in the district alone ([`names_unit`]); an item
//! drawn as the whole of the town(s) it names (a programme or designation of the town,
//! `placement_recipe.rule: "unit"`) is in the town and in none of its villages
//! ([`unit_wide_above`]). Area features, coverage (which counts them in
//! `unit_wide_features_not_counted`) and exports by area all apply this; `within=` keeps what
//! lies wholly inside the unit, so a town's own polygon is within the town and never within one
//! of its villages.

use geo::Geometry;

use super::coverage::lines_of;
use crate::geom::{geodesic_area_m2, polygons_of, BoxRelation, PreparedArea};

/// Least overlap (m²) that makes a polygon a member.
pub const MIN_OVERLAP_M2: f64 = 1.0;
/// Least share of a polygon's own area that must overlap.
pub const MIN_OVERLAP_SHARE: f64 = 1e-6;
/// Least length (m) of a line that must lie inside.
pub const MIN_LENGTH_M: f64 = 1.0;
/// The rule in words, for answers and documentation.
pub const RULE: &str = "a polygon is in an area when more than 1 m² and more than 1e-6 of its own area lie inside (or all of it); a line when more than 1 m lies inside (or all of it); a point when it lies inside";

/// Whether a polygon with `own_m2` of area and `inside_m2` of it inside the area is a member.
pub fn polygon_member(inside_m2: f64, own_m2: f64) -> bool {
    if own_m2 <= 0.0 || inside_m2 <= 0.0 {
        return false;
    }
    let wholly = inside_m2 >= own_m2 * (1.0 - 1e-9);
    wholly || (inside_m2 > MIN_OVERLAP_M2 && inside_m2 > MIN_OVERLAP_SHARE * own_m2)
}

/// Whether a line with `own_m` of length and `inside_m` of it inside the area is a member.
pub fn line_member(inside_m: f64, own_m: f64) -> bool {
    inside_m > 0.0 && (inside_m > MIN_LENGTH_M || inside_m >= own_m * (1.0 - 1e-9))
}

/// Whether a feature's geometry is in the area by the rule above.
pub fn is_member(area: &PreparedArea, g: &Geometry<f64>) -> bool {
    use geo::BoundingRect;
    let Some(r) = g.bounding_rect() else {
        return false;
    };
    match area.relate_box(r) {
        BoxRelation::Outside => return false,
        // wholly inside: every part of it is in
        BoxRelation::Inside => return true,
        BoxRelation::Boundary => {}
    }
    let polys = polygons_of(g);
    if !polys.0.is_empty() {
        let own = geodesic_area_m2(&Geometry::MultiPolygon(polys.clone()));
        let inside = geodesic_area_m2(&Geometry::MultiPolygon(area.clip_polygons(g)));
        if polygon_member(inside, own) {
            return true;
        }
    }
    let lines = lines_of(g);
    if !lines.0.is_empty() {
        let own = crate::geom::geodesic_length_m(&Geometry::MultiLineString(lines.clone()));
        if line_member(area.length_inside_m(&lines), own) {
            return true;
        }
    }
    points_of(g).any(|c| area.contains_coord(c))
}

/// Whether a feature names the unit `code` (its `admin_code` or one of its `admin_codes`): how
/// a feature without geometry (tied to a whole district by the text) is in a unit.
pub fn names_unit(f: &crate::model::Feature, code: &str) -> bool {
    f.admin_code.as_deref() == Some(code)
        || f.properties
            .get("admin_codes")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|a| a.iter().any(|c| c.as_str() == Some(code)))
}

/// Whether a feature is a unit-wide item of a unit above `code`: its geometry IS the polygon of
/// the town (or district) it names (a programme or designation of the whole town, drawn as the
/// town, `placement_recipe.rule: "unit"`), and `code` is a unit inside it. Such an item is in
/// that town, but not in each of its villages: like a district-level item, it is listed in the
/// town's answers and left out of its villages' (a planner asking about 十烈社区 gets what the
/// plan puts there, not every programme of 吴家镇).
pub fn unit_wide_above(f: &crate::model::Feature, code: &str) -> bool {
    let Some(recipe) = f.properties.get("placement_recipe") else {
        return false;
    };
    if recipe.get("rule").and_then(serde_json::Value::as_str) != Some("unit") {
        return false;
    }
    let mut codes = recipe
        .get("groups")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("codes").and_then(serde_json::Value::as_array))
        .flatten()
        .filter_map(serde_json::Value::as_str);
    codes.any(|u| above(u, code))
}

/// [`unit_wide_above`] on a feature's properties as JSON text (the engine's compact form): only
/// the placement recipe is read, and only when the text has one.
pub fn unit_wide_above_json(properties: &str, code: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Props {
        placement_recipe: Option<Recipe>,
    }
    #[derive(serde::Deserialize)]
    struct Recipe {
        rule: Option<String>,
        #[serde(default)]
        groups: Vec<Group>,
    }
    #[derive(serde::Deserialize)]
    struct Group {
        #[serde(default)]
        codes: Vec<String>,
    }
    if !properties.contains("\"placement_recipe\"") {
        return false;
    }
    let Ok(Props {
        placement_recipe: Some(r),
    }) = serde_json::from_str::<Props>(properties)
    else {
        return false;
    };
    r.rule.as_deref() == Some("unit")
        && r.groups
            .iter()
            .flat_map(|g| g.codes.iter())
            .any(|u| above(u, code))
}

/// Whether unit `upper` contains unit `code` (a longer code with its prefix).
fn above(upper: &str, code: &str) -> bool {
    code.len() > upper.len() && code.starts_with(upper)
}

fn points_of(g: &Geometry<f64>) -> Box<dyn Iterator<Item = geo::Coord<f64>> + '_> {
    match g {
        Geometry::Point(p) => Box::new(std::iter::once(p.0)),
        Geometry::MultiPoint(mp) => Box::new(mp.0.iter().map(|p| p.0)),
        Geometry::GeometryCollection(gc) => Box::new(gc.0.iter().flat_map(points_of)),
        _ => Box::new(std::iter::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{coord, LineString, Rect};

    fn unit() -> PreparedArea {
        // about 1 km × 1.1 km at 29.5°N
        PreparedArea::new(geo::MultiPolygon(vec![Rect::new(
            coord! {x: 105.70, y: 29.50},
            coord! {x: 105.71, y: 29.51},
        )
        .to_polygon()]))
    }

    #[test]
    fn a_sliver_or_a_touch_is_not_membership() {
        let a = unit();
        // a neighbour sharing the east edge, overlapping it by 1e-8° (about 1 mm × 1.1 km ≈ 1 m²)
        let sliver = Rect::new(
            coord! {x: 105.71 - 1e-8, y: 29.50},
            coord! {x: 105.72, y: 29.51},
        )
        .to_polygon();
        assert!(!is_member(&a, &Geometry::Polygon(sliver)));
        let touch =
            Rect::new(coord! {x: 105.71, y: 29.50}, coord! {x: 105.72, y: 29.51}).to_polygon();
        assert!(!is_member(&a, &Geometry::Polygon(touch)));
        // 10 m into it: about 11,000 m², a member
        let real = Rect::new(
            coord! {x: 105.71 - 1e-4, y: 29.50},
            coord! {x: 105.72, y: 29.51},
        )
        .to_polygon();
        assert!(is_member(&a, &Geometry::Polygon(real)));
        // a tiny polygon wholly inside is in
        let tiny = Rect::new(
            coord! {x: 105.705, y: 29.505},
            coord! {x: 105.705 + 1e-6, y: 29.505 + 1e-6},
        )
        .to_polygon();
        assert!(is_member(&a, &Geometry::Polygon(tiny)));
    }

    #[test]
    fn lines_need_a_metre_inside_and_points_lie_inside() {
        let a = unit();
        // a line along the boundary counts as inside (the boundary belongs to the area)
        let along = LineString::from(vec![(105.71, 29.50), (105.71, 29.51)]);
        assert!(is_member(&a, &Geometry::LineString(along)));
        // 0.5 m inside (5e-6° of longitude ≈ 0.48 m)
        let poke = LineString::from(vec![(105.72, 29.505), (105.71 - 5e-6, 29.505)]);
        assert!(!is_member(&a, &Geometry::LineString(poke)));
        let cross = LineString::from(vec![(105.72, 29.505), (105.709, 29.505)]);
        assert!(is_member(&a, &Geometry::LineString(cross)));
        assert!(is_member(
            &a,
            &Geometry::Point(geo::Point::new(105.705, 29.505))
        ));
        assert!(!is_member(
            &a,
            &Geometry::Point(geo::Point::new(105.8, 29.505))
        ));
    }

    #[test]
    fn a_town_wide_item_is_not_in_each_village() {
        let f = |rule: &str, codes: &[&str]| crate::model::Feature {
            id: "x".into(),
            layer: "projects".into(),
            admin_code: None,
            name: None,
            properties: serde_json::json!({"placement_recipe": {
                "rule": rule, "seed": "s", "proj": [0.0, 0.0],
                "groups": [{"text": "吴家镇", "codes": codes}]}})
            .as_object()
            .unwrap()
            .clone(),
            geometry: None,
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        };
        // the feature's properties and their JSON text (the engine's compact form) agree
        let wide = |f: &crate::model::Feature, code: &str| {
            let text = serde_json::to_string(&f.properties).unwrap();
            let answer = unit_wide_above(f, code);
            assert_eq!(answer, unit_wide_above_json(&text, code), "{text} {code}");
            answer
        };
        let town_wide = f("unit", &["500153103"]);
        assert!(wide(&town_wide, "500153103001"));
        assert!(!wide(&town_wide, "500153103"));
        assert!(!wide(&town_wide, "500153"));
        assert!(!wide(&town_wide, "500153104001"));
        // the village's own polygon (a key-help village) is in the village
        assert!(!wide(&f("unit", &["500153103001"]), "500153103001"));
        // a blob drawn in the town lies somewhere in it: membership by area decides
        assert!(!wide(&f("blob", &["500153103"]), "500153103001"));
        // two towns drawn as one: in neither town's villages, and not elsewhere
        let two = f("unit", &["500153103", "500153104"]);
        assert!(wide(&two, "500153104002"));
        assert!(!wide(&two, "500153105001"));
    }

    #[test]
    fn thresholds() {
        assert!(!polygon_member(0.9, 1e6));
        assert!(polygon_member(1.1, 1e6));
        // more than 1 m² but under 1e-6 of a huge polygon
        assert!(!polygon_member(5.0, 1e7 * 1e6));
        assert!(polygon_member(0.5, 0.5));
        assert!(line_member(1.5, 100.0));
        assert!(!line_member(0.5, 100.0));
        assert!(line_member(0.5, 0.5));
    }
}
