//! `yizhangtu check`: every feature validated — valid geometry, inside the admin units it names,
//! codes that exist, numeric attributes with known units — with counts per layer.

use serde_json::Value;
use std::collections::BTreeMap;

use super::admin::AdminLevel;
use super::coverage::unit_of;
use super::Engine;
use crate::geom::validate_topology;

/// Share of a feature allowed outside its units: the bundled coordinates are rounded to 1e-7°
/// (about 1 cm), which can put a clipped line's vertex a hair across the boundary.
const INSIDE_TOLERANCE: f64 = 1e-4;

/// One thing wrong with one feature.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    pub layer: String,
    pub id: String,
    pub name: Option<String>,
    pub problem: String,
}

/// Counts per layer and the problems found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    /// layer → (features, invalid features)
    pub layers: BTreeMap<String, (usize, usize)>,
    pub problems: Vec<Problem>,
    /// The admin units as a coverage, and how features sit in them.
    pub units: UnitsReport,
    /// Not faults: what was knowingly left out (qualitative plan targets, with the reason);
    /// filled by the caller, which knows the plans.
    pub notes: Vec<Problem>,
}

/// Figures on the admin units and on how coarsely features are placed in them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UnitsReport {
    /// admin layer → pairs of its units that overlap by more than [`UNIT_OVERLAP_M2`].
    pub overlapping_pairs: BTreeMap<String, usize>,
    /// admin layer → their overlap in m² (geodesic).
    pub overlap_m2: BTreeMap<String, f64>,
    /// Towns sized to a figure a plan gives (`area_target_source: "plan"`): area against it.
    pub town_sizes: Vec<TownSize>,
    /// Features whose geometry is a whole district polygon (`geometry_method` district-polygon).
    pub district_polygon_features: usize,
    /// Features without geometry that name their units (tied to a district only).
    pub without_geometry: usize,
    /// Features placed more coarsely than the text names them: (layer, id, name, method).
    pub coarse_placements: Vec<Problem>,
    /// (feature, town or village) pairs where a feature is a member of the unit by less than
    /// [`SLIVER_M2`] of overlap (and not wholly inside): a member by a sliver.
    pub sliver_members: usize,
    /// (feature, town or village) pairs where a feature overlaps a unit by a positive area that
    /// the membership rule does not count (a sliver, not a member).
    pub sliver_contacts: usize,
}

/// Overlap below which a member of a unit is reported as a member by a sliver (m²).
pub const SLIVER_M2: f64 = 100.0;

/// A town's generated area against the figure its plan gives.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TownSize {
    pub code: String,
    pub name: String,
    pub area_km2: f64,
    pub plan_km2: f64,
    pub error_percent: f64,
}

/// Overlap between two units of one level above which they are reported (m²).
pub const UNIT_OVERLAP_M2: f64 = 1e-6;

impl UnitsReport {
    /// The report as lines of text, for `yizhangtu check`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec!["\nAdmin units:".to_string()];
        for (layer, n) in &self.overlapping_pairs {
            out.push(format!(
                "  {layer}: {n} overlapping pairs ({:.6} m²)",
                self.overlap_m2.get(layer).copied().unwrap_or(0.0)
            ));
        }
        for t in &self.town_sizes {
            out.push(format!(
                "  {} {}: {:.1} km², the plan says {:.1} km² ({:+.1}%)",
                t.code, t.name, t.area_km2, t.plan_km2, t.error_percent
            ));
        }
        out.push(format!(
            "  features drawn as a whole district: {}; without geometry (tied to a district only): {}",
            self.district_polygon_features, self.without_geometry
        ));
        out.push(format!(
            "  members of a town or village by a sliver (under {SLIVER_M2} m²): {}; slivers not counted as members: {}",
            self.sliver_members, self.sliver_contacts
        ));
        out.push(format!(
            "  coarse placements ({}):",
            self.coarse_placements.len()
        ));
        for p in &self.coarse_placements {
            out.push(format!(
                "    {}/{} ({}): {}",
                p.layer,
                p.id,
                p.name.as_deref().unwrap_or("-"),
                p.problem
            ));
        }
        out
    }
}

impl CheckReport {
    pub fn invalid(&self) -> usize {
        self.layers.values().map(|(_, bad)| bad).sum()
    }
}

/// Numeric keys that carry no unit by nature: identifiers, coordinates in degrees, years, ranks.
fn unitless(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with("_id")
        || k.ends_with("_lat")
        || k.ends_with("_lon")
        || k.contains("_lat_")
        || k.contains("_lon_")
        || k.contains("year")
        || k == "version"
        || k.ends_with("_no")
        || k.contains("rank")
}

/// The unit of a numeric key, including `…_approx` variants (`area_km2_approx`).
pub fn known_unit(key: &str) -> bool {
    let base = key.strip_suffix("_approx").unwrap_or(key);
    unit_of(base).is_some() || unitless(base)
}

/// Whether every feature of a layer must carry an admin code: the admin layers, whose features
/// are the units the codes name. Other layers (an ordinary import, a project list) may name no
/// code; when they do name one, it must exist and hold the feature.
fn codes_required(layer: &str) -> bool {
    [AdminLevel::District, AdminLevel::Town, AdminLevel::Village]
        .iter()
        .any(|l| l.layer() == layer)
}

/// Admin codes a feature names: `admin_code` and any `admin_codes` list.
fn named_codes(f: &crate::model::Feature) -> Vec<String> {
    let mut codes: Vec<String> = f.admin_code.iter().cloned().collect();
    if let Some(Value::Array(list)) = f.properties.get("admin_codes") {
        for c in list.iter().filter_map(Value::as_str) {
            if !codes.iter().any(|x| x == c) {
                codes.push(c.to_string());
            }
        }
    }
    codes
}

/// Validates every feature of every layer.
pub fn check(engine: &Engine) -> CheckReport {
    let mut report = CheckReport::default();
    for layer in engine.layers() {
        let features: Vec<_> = {
            let idx = layer.read();
            idx.iter().map(|(_, f)| f).collect()
        };
        let Some(first) = features.first() else {
            report.layers.insert(layer.read().layer.id.clone(), (0, 0));
            continue;
        };
        let layer_id = first.layer.clone();
        let mut bad = 0;
        for f in &features {
            let mut problems = Vec::new();
            match &f.geometry {
                // a record the plans tie to a unit without a site: attributes only
                None if !named_codes(f).is_empty() => report.units.without_geometry += 1,
                None => problems.push("no geometry and no admin code".to_string()),
                Some(g) => {
                    if let Err(p) = validate_topology(g) {
                        problems.push(format!("invalid geometry: {p}"));
                    }
                }
            }
            let codes = named_codes(f);
            let mut share = 0.0;
            let mut all_exist = !codes.is_empty();
            for code in &codes {
                match engine.admin_unit(code) {
                    None => {
                        all_exist = false;
                        problems.push(format!("admin code {code} does not exist"));
                    }
                    Some(unit) => {
                        if let (Some(area), Some(g)) = (engine.admin_area(&unit), &f.geometry) {
                            share += area.share_inside(g).unwrap_or(0.0);
                        }
                    }
                }
            }
            if codes.is_empty() {
                if codes_required(&layer_id) {
                    problems.push("names no admin code (required in an admin layer)".into());
                }
            } else if all_exist && f.geometry.is_some() && share < 1.0 - INSIDE_TOLERANCE {
                problems.push(format!(
                    "only {:.4}% of it lies inside the units it names ({})",
                    share * 100.0,
                    codes.join(", ")
                ));
            }
            for (k, v) in &f.properties {
                if v.is_number() && !known_unit(k) {
                    problems.push(format!("numeric property '{k}' has no known unit (name it with a unit suffix such as _mu, _wan_yuan, _km)"));
                }
            }
            if !problems.is_empty() {
                bad += 1;
                for p in problems {
                    report.problems.push(Problem {
                        layer: layer_id.clone(),
                        id: f.id.clone(),
                        name: f.name.clone(),
                        problem: p,
                    });
                }
            }
        }
        report.layers.insert(layer_id, (features.len(), bad));
    }
    units(engine, &mut report.units);
    report
}

/// Whether a `geometry_method` says the placement is coarser than the text (the whole district,
/// the named units' polygons standing for a site, or units left unknown).
fn coarse(method: &str) -> bool {
    method.starts_with("district-polygon")
        || method.starts_with("unit-polygon")
        || method.contains("unknown")
        || method.contains("coarse")
}

/// What a coarse placement is: the method's name and the clauses that say what is coarse
/// (units left unknown, a site spread over its units, one site across several units).
fn coarse_reason(method: &str) -> String {
    let head = method.split(':').next().unwrap_or(method);
    let clauses: Vec<&str> = method
        .split("; ")
        .skip(1)
        .filter(|c| c.contains("unknown") || c.contains("coarse"))
        .collect();
    if clauses.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {}", clauses.join("; "))
    }
}

/// Overlaps between units of each admin level, town sizes against the plans' figures, and the
/// coarse placements of every other layer.
fn units(engine: &Engine, out: &mut UnitsReport) {
    use geo::{BooleanOps, BoundingRect, Intersects};
    let admin_layers: Vec<&str> = [AdminLevel::District, AdminLevel::Town, AdminLevel::Village]
        .iter()
        .map(|l| l.layer())
        .collect();
    for layer in engine.layers() {
        let idx = layer.read();
        let id = idx.layer.id.clone();
        if admin_layers.contains(&id.as_str()) {
            let units: Vec<(geo::MultiPolygon<f64>, geo::Rect<f64>)> = idx
                .compact_iter()
                .filter_map(|(slot, _)| idx.slot_geometry(slot))
                .map(|g| crate::geom::polygons_of(&g))
                .filter_map(|mp| mp.bounding_rect().map(|r| (mp, r)))
                .collect();
            let (mut pairs, mut m2) = (0usize, 0.0);
            for i in 0..units.len() {
                for j in i + 1..units.len() {
                    if !units[i].1.intersects(&units[j].1) {
                        continue;
                    }
                    let x = units[i].0.intersection(&units[j].0);
                    if x.0.is_empty() {
                        continue;
                    }
                    let a = crate::geom::geodesic_area_m2(&geo::Geometry::MultiPolygon(x));
                    if a > UNIT_OVERLAP_M2 {
                        pairs += 1;
                        m2 += a;
                    }
                }
            }
            out.overlapping_pairs.insert(id.clone(), pairs);
            out.overlap_m2.insert(id.clone(), m2);
            if id == AdminLevel::Town.layer() {
                for (_, f) in idx.iter() {
                    let plan = f
                        .properties
                        .get("area_target_source")
                        .and_then(Value::as_str);
                    let target = f.properties.get("area_target_km2").and_then(Value::as_f64);
                    if let (Some("plan"), Some(t), Some(g)) = (plan, target, &f.geometry) {
                        let a = crate::geom::geodesic_area_m2(g) / 1e6;
                        out.town_sizes.push(TownSize {
                            code: f.id.clone(),
                            name: f.name.clone().unwrap_or_default(),
                            area_km2: (a * 100.0).round() / 100.0,
                            plan_km2: t,
                            error_percent: ((a - t) / t * 1000.0).round() / 10.0,
                        });
                    }
                }
            }
            continue;
        }
        for (_, f) in idx.iter() {
            if let Some(g) = &f.geometry {
                slivers(engine, g, out);
            }
            let Some(method) = f.properties.get("geometry_method").and_then(Value::as_str) else {
                continue;
            };
            if method.starts_with("district-polygon") {
                out.district_polygon_features += 1;
            }
            if coarse(method) || f.geometry.is_none() {
                out.coarse_placements.push(Problem {
                    layer: id.clone(),
                    id: f.id.clone(),
                    name: f.name.clone(),
                    problem: coarse_reason(method),
                });
            }
        }
    }
    out.town_sizes.sort_by(|a, b| a.code.cmp(&b.code));
    out.coarse_placements
        .sort_by(|a, b| (&a.layer, &a.id).cmp(&(&b.layer, &b.id)));
}

/// Counts the feature's sliver memberships and sliver contacts with the towns and villages its
/// box meets (polygons only: a line or point is in a unit by length or position, never by a
/// sliver of area).
fn slivers(engine: &Engine, g: &geo::Geometry<f64>, out: &mut UnitsReport) {
    use geo::BoundingRect;
    let polys = crate::geom::polygons_of(g);
    let Some(window) = polys.bounding_rect() else {
        return;
    };
    let own = crate::geom::geodesic_area_m2(&geo::Geometry::MultiPolygon(polys));
    for level in [AdminLevel::Town, AdminLevel::Village] {
        let Some(layer) = engine.layer(level.layer()) else {
            continue;
        };
        let candidates: Vec<_> = {
            let idx = layer.read();
            idx.candidates(window)
                .filter_map(|(slot, _)| idx.slot(slot))
                .collect()
        };
        for unit in candidates {
            let Some(unit) = engine.admin_unit(&unit.id) else {
                continue;
            };
            let Some(area) = engine.admin_area(&unit) else {
                continue;
            };
            if area.relate_box(window) != crate::geom::BoxRelation::Boundary {
                continue;
            }
            let inside =
                crate::geom::geodesic_area_m2(&geo::Geometry::MultiPolygon(area.clip_polygons(g)));
            if inside <= 0.0 {
                continue;
            }
            let member = super::membership::polygon_member(inside, own);
            if member && inside < SLIVER_M2 && inside < own * (1.0 - 1e-9) {
                out.sliver_members += 1;
            } else if !member && inside < own * (1.0 - 1e-9) {
                out.sliver_contacts += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Feature, Layer};
    use geo::{coord, Geometry, Rect};

    fn square(layer: &str, id: &str, props: serde_json::Value) -> Feature {
        let serde_json::Value::Object(m) = props else {
            panic!()
        };
        let r = Rect::new(coord! {x: 106.0, y: 29.0}, coord! {x: 106.01, y: 29.01});
        let mut f =
            Feature::from_parts(layer, id.into(), m, Some(Geometry::Polygon(r.to_polygon())));
        f.id = id.into();
        f
    }

    #[test]
    fn an_ordinary_import_without_codes_passes_but_an_admin_unit_without_one_does_not() {
        let engine = crate::engine::Engine::load(
            vec![
                (Layer::untitled("parcels"), 1),
                (Layer::untitled("towns"), 1),
            ],
            vec![
                square(
                    "parcels",
                    "p1",
                    serde_json::json!({"name": "地块", "area_mu": 15}),
                ),
                square("towns", "t1", serde_json::json!({"name": "某镇"})),
            ],
        );
        let report = check(&engine);
        assert_eq!(
            report.layers.get("parcels"),
            Some(&(1, 0)),
            "{:?}",
            report.problems
        );
        assert_eq!(report.layers.get("towns"), Some(&(1, 1)));
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].id, "t1");
        assert!(report.problems[0].problem.contains("admin code"));
        // A code that is named must still exist.
        let engine = crate::engine::Engine::load(
            vec![(Layer::untitled("parcels"), 1)],
            vec![square(
                "parcels",
                "p2",
                serde_json::json!({"admin_code": "500111999"}),
            )],
        );
        let report = check(&engine);
        assert_eq!(report.invalid(), 1);
        assert!(report.problems[0]
            .problem
            .contains("500111999 does not exist"));
    }

    fn rect(layer: &str, id: &str, x0: f64, x1: f64) -> Feature {
        let r = Rect::new(coord! {x: x0, y: 29.0}, coord! {x: x1, y: 29.01});
        let m = serde_json::json!({"admin_code": id, "name": id});
        let serde_json::Value::Object(m) = m else {
            panic!()
        };
        let mut f =
            Feature::from_parts(layer, id.into(), m, Some(Geometry::Polygon(r.to_polygon())));
        f.id = id.into();
        f
    }

    #[test]
    fn members_by_a_sliver_and_slivers_are_counted() {
        // two towns side by side at 106.01°E; three blobs in the west one, reaching over the
        // border by 10 m (a member, 11,000 m²), by 2 cm (a member by 21 m²: a sliver member)
        // and by half a millimetre (0.5 m²: a sliver, not a member)
        let engine = crate::engine::Engine::load(
            vec![
                (Layer::untitled("towns"), 1),
                (Layer::untitled("projects"), 1),
            ],
            vec![
                rect("towns", "500111100", 106.0, 106.01),
                rect("towns", "500111101", 106.01, 106.02),
                rect("projects", "a", 106.001, 106.01 + 1e-4),
                rect("projects", "b", 106.001, 106.01 + 2e-7),
                rect("projects", "c", 106.001, 106.01 + 5e-9),
            ],
        );
        let report = check(&engine);
        assert_eq!(report.units.sliver_members, 1);
        assert_eq!(report.units.sliver_contacts, 1);
    }

    #[test]
    fn units() {
        for k in [
            "area_mu",
            "area_km2_approx",
            "investment_wan_yuan",
            "households",
            "seat_lat",
            "target_year",
            "geonames_id",
            "village_count",
        ] {
            assert!(known_unit(k), "{k}");
        }
        assert!(!known_unit("mystery"));
        assert!(!known_unit("area"));
    }
}
