//! Official boundaries in one step: replace the approximate towns (or villages) with official
//! ones and redraw every approximate plan feature whose units changed, by its
//! [`Recipe`](super::Recipe) (`import FILE --layer towns --replace --rebase`).
//!
//! [`rebase`] is pure: it takes the current features and the official units and returns every
//! feature to write (the new units, the villages re-fitted to new towns, the redrawn plan
//! features) with a report of what moved, or an error and nothing. The caller writes the result
//! in one transaction.
//!
//! - Each official unit is matched to the existing unit by its code (the feature id, or its
//!   `admin_code` or `code` property); every existing unit must be in the official set and every
//!   official unit must be an existing one (the plans' features name them by code).
//! - The official unit keeps its own properties, takes the existing unit's hierarchy and seat
//!   properties it lacks, and loses `approximate` (and the generated-geometry properties).
//! - When towns are replaced, the approximate villages of a changed town are re-fitted to it:
//!   each keeps its part inside the new town, and the new town's land outside the old one goes
//!   to the village whose site is nearest (Voronoi cells of the sites). A village left with no
//!   land fails the rebase (import the official villages too).
//! - A town seat (`town_seats`, the town's `seat_lon`/`seat_lat`) or village point
//!   (`village_points`, `point_lon`/`point_lat`) that its changed unit leaves outside moves to a
//!   point inside the unit (its interior point, where the drawing anchors too), noted in
//!   `seat_moved`/`point_moved` and in the point's `geometry_method`.
//! - A plan feature is redrawn when it is approximate, has a `placement_recipe`, and one of its
//!   units changed (for a farm blob in a town: also one of the town's villages). Features whose
//!   geometry came from a source (no `approximate: true`) and features whose units did not
//!   change keep their geometry exactly. A redrawn one-site polygon (a lake, a 小区) declares the
//!   units it now reaches (`admin_codes`, `admin_names`, `admin_code`).

use super::{place, Proj, Recipe, Rule, Unit, Units};
use crate::model::Feature;
use geo::orient::{Direction, Orient};
use geo::{
    Area, BooleanOps, BoundingRect, Centroid, Coord, Geometry, InteriorPoint, Intersects,
    MultiPolygon, Polygon, Validation,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Layers of admin units, never redrawn as plan features.
const ADMIN_LAYERS: &[&str] = &[
    "districts",
    "towns",
    "villages",
    "town_seats",
    "village_points",
];

/// A feature the rebase changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub layer: String,
    pub id: String,
    pub name: String,
    /// `replaced` (an official unit), `re-fitted` (a village of a changed town), `moved` (a
    /// town seat or village point its new unit left outside) or `redrawn` (a plan feature).
    pub what: &'static str,
    /// How far the centroid moved, metres (0 for points that did not move).
    pub shift_m: f64,
    /// Area before and after, m² (planar in a local projection), for polygons.
    pub area_m2: Option<(f64, f64)>,
}

/// The outcome: every feature to write (upserted by id) and what moved.
#[derive(Debug, Clone)]
pub struct Rebased {
    pub features: Vec<Feature>,
    pub moved: Vec<Moved>,
    /// Approximate plan features with geometry but no recipe, left as they were (id, name).
    pub kept_without_recipe: Vec<(String, String)>,
}

/// Why a rebase cannot be done; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebaseError {
    #[error("--rebase replaces towns or villages, not '{0}'")]
    Layer(String),
    #[error("official feature {index} (id '{id}'): {problem}")]
    Official {
        index: usize,
        id: String,
        problem: String,
    },
    #[error("the official set lacks {} of the layer's units: {}", .0.len(), .0.join(", "))]
    Missing(Vec<String>),
    #[error("village {village} of {town}: no part of it lies in the official town; import the official villages too")]
    EmptyVillage { village: String, town: String },
    #[error("feature {id} ({name}) cannot be redrawn: {problem}")]
    Redraw {
        id: String,
        name: String,
        problem: String,
    },
}

fn str_prop<'a>(f: &'a Feature, key: &str) -> Option<&'a str> {
    f.properties.get(key).and_then(Value::as_str)
}

fn num_prop(f: &Feature, key: &str) -> Option<f64> {
    f.properties.get(key).and_then(Value::as_f64)
}

fn polygons(g: &Geometry) -> Option<MultiPolygon> {
    match g {
        Geometry::Polygon(p) => Some(MultiPolygon(vec![p.clone()])),
        Geometry::MultiPolygon(m) => Some(m.clone()),
        _ => None,
    }
}

/// The code an official feature names: its id, else `admin_code`, else a `code` property.
fn official_code(f: &Feature, codes: &BTreeSet<String>) -> Option<String> {
    let candidates = [
        Some(f.id.as_str()),
        f.admin_code.as_deref(),
        str_prop(f, "code"),
        str_prop(f, "admin_code"),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|c| codes.contains(*c))
        .map(str::to_string)
}

/// A local projection around a geometry (for areas and shifts in metres).
fn proj_of(mp: &MultiPolygon) -> Proj {
    let c = mp
        .centroid()
        .map(|p| p.0)
        .unwrap_or(Coord { x: 0.0, y: 0.0 });
    Proj::new(c.x, c.y)
}

fn planar_area(mp: &MultiPolygon) -> f64 {
    proj_of(mp).fwd_mp(mp).unsigned_area()
}

/// Properties an official unit takes over from the approximate one when it lacks them.
const CARRIED: &[&str] = &[
    "name",
    "layer",
    "level",
    "parent_code",
    "district",
    "district_code",
    "town",
    "town_code",
    "official_name",
    "seat_lon",
    "seat_lat",
    "seat_source",
    "point_lon",
    "point_lat",
    "village_count",
    "partners",
];

/// Replaces the units of `layer` (`towns` or `villages`) by `official` and redraws what depends
/// on them. `current` is every feature of the store; `source` names the file, for the record.
pub fn rebase(
    current: &[Feature],
    layer: &str,
    official: Vec<Feature>,
    source: &str,
) -> Result<Rebased, RebaseError> {
    if layer != "towns" && layer != "villages" {
        return Err(RebaseError::Layer(layer.to_string()));
    }
    let old_units: BTreeMap<String, &Feature> = current
        .iter()
        .filter(|f| f.layer == layer)
        .map(|f| (f.id.clone(), f))
        .collect();
    let codes: BTreeSet<String> = old_units.keys().cloned().collect();
    // ---- match the official units
    let mut new_units: BTreeMap<String, Feature> = BTreeMap::new();
    for (index, f) in official.into_iter().enumerate() {
        let problem = |p: String| RebaseError::Official {
            index,
            id: f.id.clone(),
            problem: p,
        };
        let Some(code) = official_code(&f, &codes) else {
            return Err(problem(format!(
                "names no unit of {layer}: its id, admin_code or code must be one of the layer's codes"
            )));
        };
        let Some(mp) = f.geometry.as_ref().and_then(polygons) else {
            return Err(problem(
                "the geometry is not a Polygon or MultiPolygon".into(),
            ));
        };
        if mp.0.is_empty() || !mp.is_valid() {
            return Err(problem("the geometry is empty or invalid".into()));
        }
        if new_units.contains_key(&code) {
            return Err(problem(format!("unit {code} appears twice")));
        }
        let old = old_units[&code];
        let mut props = f.properties.clone();
        for k in CARRIED {
            if !props.contains_key(*k) {
                if let Some(v) = old.properties.get(*k) {
                    props.insert(k.to_string(), v.clone());
                }
            }
        }
        for k in [
            "approximate",
            "area_km2_approx",
            "area_target_km2",
            "area_target_source",
            "coverage_cleaning",
        ] {
            props.remove(k);
        }
        props.insert(
            "geometry_method".into(),
            json!(format!(
                "official: the boundary as delivered in {source} (import --replace --rebase)"
            )),
        );
        new_units.insert(
            code.clone(),
            Feature {
                id: code.clone(),
                layer: layer.to_string(),
                admin_code: Some(code.clone()),
                name: f.name.clone().or_else(|| old.name.clone()),
                properties: props,
                geometry: Some(Geometry::MultiPolygon(mp)),
                version: old.version,
                created_at: old.created_at.clone(),
                updated_at: old.updated_at.clone(),
            },
        );
    }
    let missing: Vec<String> = codes
        .iter()
        .filter(|c| !new_units.contains_key(*c))
        .map(|c| format!("{c} {}", old_units[c].name.as_deref().unwrap_or("")))
        .collect();
    if !missing.is_empty() {
        return Err(RebaseError::Missing(missing));
    }

    let mut moved: Vec<Moved> = Vec::new();
    let mut out: Vec<Feature> = Vec::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    for (code, f) in &new_units {
        let old = old_units[code];
        if old.geometry != f.geometry {
            changed.insert(code.clone());
            moved.push(describe(old, f, "replaced"));
        }
    }
    out.extend(new_units.values().cloned());

    // ---- the unit set the plan features are drawn on
    let mut towns: BTreeMap<String, Feature> = current
        .iter()
        .filter(|f| f.layer == "towns")
        .map(|f| (f.id.clone(), f.clone()))
        .collect();
    let mut villages: BTreeMap<String, Feature> = current
        .iter()
        .filter(|f| f.layer == "villages")
        .map(|f| (f.id.clone(), f.clone()))
        .collect();
    if layer == "towns" {
        for (code, f) in &new_units {
            towns.insert(code.clone(), f.clone());
        }
        for town in changed.clone() {
            let old = polygons(
                old_units[&town]
                    .geometry
                    .as_ref()
                    .expect("a town has geometry"),
            )
            .expect("a town is a polygon");
            let new =
                polygons(new_units[&town].geometry.as_ref().expect("checked")).expect("checked");
            let refit = refit_villages(&villages, &town, &old, &new)?;
            for v in refit {
                let before = &villages[&v.id];
                if before.geometry != v.geometry {
                    changed.insert(v.id.clone());
                    moved.push(describe(before, &v, "re-fitted"));
                    out.push(v.clone());
                    villages.insert(v.id.clone(), v);
                }
            }
        }
    } else {
        for (code, f) in &new_units {
            villages.insert(code.clone(), f.clone());
        }
    }
    // ---- seats and village points follow their units: one the new boundary leaves outside
    // moves to a point inside (the same point the drawing anchors at)
    for code in &changed {
        let (units_layer, points_layer, keys) = match code.len() {
            9 => ("towns", "town_seats", ("seat_lon", "seat_lat")),
            12 => ("villages", "village_points", ("point_lon", "point_lat")),
            _ => continue,
        };
        let unit = match code.len() {
            9 => towns.get_mut(code),
            _ => villages.get_mut(code),
        };
        let Some(unit) = unit else { continue };
        let Some(mp) = unit.geometry.as_ref().and_then(polygons) else {
            continue;
        };
        let Some((x, y)) = num_prop(unit, keys.0).zip(num_prop(unit, keys.1)) else {
            continue;
        };
        if super::inside(Coord { x, y }, &mp) {
            continue;
        }
        let Some(to) = mp.interior_point() else {
            continue;
        };
        let note = format!(
            "moved inside the official boundary (import --rebase): it lay outside at {x:.7}, {y:.7}"
        );
        unit.properties.insert(keys.0.into(), json!(to.x()));
        unit.properties.insert(keys.1.into(), json!(to.y()));
        unit.properties.insert(
            format!("{}_moved", &keys.0[..keys.0.len() - 4]),
            json!(note),
        );
        if let Some(written) = out
            .iter_mut()
            .find(|f| f.layer == units_layer && &f.id == code)
        {
            written.properties = unit.properties.clone();
        }
        if let Some(point) = current
            .iter()
            .find(|f| f.layer == points_layer && &f.id == code)
        {
            let mut moved_point = point.clone();
            moved_point.geometry = Some(Geometry::Point(to));
            let m = format!(
                "{}; {note}",
                str_prop(point, "geometry_method").unwrap_or("a point of the unit")
            );
            moved_point
                .properties
                .insert("geometry_method".into(), json!(m));
            moved.push(describe(point, &moved_point, "moved"));
            out.push(moved_point);
        }
    }
    let units = StoreUnits { towns, villages };

    // ---- redraw the plan features whose units changed
    let mut kept_without_recipe = Vec::new();
    for f in current {
        if ADMIN_LAYERS.contains(&f.layer.as_str())
            || f.properties.get("approximate") != Some(&Value::Bool(true))
            || f.geometry.is_none()
        {
            continue;
        }
        let Some(rv) = f.properties.get("placement_recipe") else {
            kept_without_recipe.push((f.id.clone(), f.name.clone().unwrap_or_default()));
            continue;
        };
        let redraw_error = |problem: String| RebaseError::Redraw {
            id: f.id.clone(),
            name: f.name.clone().unwrap_or_default(),
            problem,
        };
        let recipe: Recipe = serde_json::from_value(rv.clone())
            .map_err(|e| redraw_error(format!("placement_recipe: {e}")))?;
        let depends = recipe.codes().iter().any(|c| {
            changed.contains(c)
                || (recipe.rural
                    && c.len() == 9
                    && changed
                        .iter()
                        .any(|v| v.len() == 12 && v.starts_with(c.as_str())))
        });
        if !depends {
            continue;
        }
        let placed = place(&recipe, &units).map_err(|e| redraw_error(e.to_string()))?;
        let mut g = f.clone();
        g.geometry = Some(placed.geometry);
        let note = "; redrawn on official boundaries (import --rebase)";
        if let Some(Value::String(m)) = g.properties.get_mut("geometry_method") {
            if !m.ends_with(note) {
                m.push_str(note);
            }
        }
        if let (Some(a), Rule::Blob) = (placed.area_m2, recipe.rule) {
            let mu = (a * 15.0 / 10000.0 * 10.0).round() / 10.0;
            g.properties.insert("geometry_area_mu".into(), json!(mu));
        }
        // one site declares the units it reaches, which the new boundaries may change
        if let Some(reached) = placed.reached.filter(|r| !r.is_empty()) {
            declare(&mut g, &reached, &units);
        }
        if g.geometry != f.geometry {
            moved.push(describe(f, &g, "redrawn"));
            out.push(g);
        }
    }
    Ok(Rebased {
        features: out,
        moved,
        kept_without_recipe,
    })
}

/// Sets a feature's `admin_codes`, `admin_names` and `admin_code` (the smallest unit holding
/// them all: the one unit, their common town, else their district) to `codes`.
fn declare(f: &mut Feature, codes: &[String], units: &StoreUnits) {
    let name = |c: &str| -> String {
        let own = units
            .feature(c)
            .and_then(|u| u.name.clone())
            .unwrap_or_default();
        match units.feature(&c[..c.len().min(9)]) {
            Some(t) if c.len() == 12 => format!("{}{own}", t.name.as_deref().unwrap_or("")),
            _ => own,
        }
    };
    let mut codes = codes.to_vec();
    codes.sort();
    let towns: BTreeSet<&str> = codes.iter().map(|c| &c[..c.len().min(9)]).collect();
    let code = match (codes.as_slice(), towns.len()) {
        ([one], _) => one.clone(),
        (_, 1) => towns.into_iter().next().unwrap_or_default().to_string(),
        _ => codes[0][..6].to_string(),
    };
    let names: Vec<String> = codes.iter().map(|c| name(c)).collect();
    f.properties.insert("admin_codes".into(), json!(codes));
    f.properties.insert("admin_names".into(), json!(names));
    f.properties.insert("admin_code".into(), json!(code));
    f.admin_code = Some(code);
}

/// How far `after` moved from `before`.
fn describe(before: &Feature, after: &Feature, what: &'static str) -> Moved {
    let c = |f: &Feature| f.geometry.as_ref().and_then(|g| g.centroid()).map(|p| p.0);
    let shift_m = match (c(before), c(after)) {
        (Some(a), Some(b)) => {
            let p = Proj::new(a.x, a.y);
            let (pa, pb) = (p.fwd(a), p.fwd(b));
            (pa.x - pb.x).hypot(pa.y - pb.y)
        }
        _ => 0.0,
    };
    let area = |f: &Feature| {
        f.geometry
            .as_ref()
            .and_then(polygons)
            .map(|m| planar_area(&m))
    };
    Moved {
        layer: after.layer.clone(),
        id: after.id.clone(),
        name: after.name.clone().unwrap_or_default(),
        what,
        shift_m,
        area_m2: area(before).zip(area(after)),
    }
}

/// The villages of `town` fitted to its new boundary: each keeps its part inside `new`, and the
/// part of `new` outside `old` goes to the villages by the Voronoi cells of their sites.
fn refit_villages(
    villages: &BTreeMap<String, Feature>,
    town: &str,
    old: &MultiPolygon,
    new: &MultiPolygon,
) -> Result<Vec<Feature>, RebaseError> {
    let mine: Vec<&Feature> = villages
        .values()
        .filter(|v| v.id.len() == 12 && v.id.starts_with(town))
        .collect();
    if mine.is_empty() {
        return Ok(vec![]);
    }
    let proj = proj_of(new);
    // all in one metric frame (set operations in lon/lat snap to a coarser grid), and only
    // where the boundary changed: a village away from the change keeps its polygon exactly
    let newp = proj.fwd_mp(new);
    let oldp = proj.fwd_mp(old);
    let gained = newp.difference(&oldp);
    let lost = oldp.difference(&newp);
    let sites: Vec<Coord> = mine.iter().map(|v| proj.fwd(village_site(v))).collect();
    let r = newp.bounding_rect().expect("a town is not empty");
    let cells: Vec<Polygon> = super::voronoi_cells(&sites, r.min(), r.max())
        .into_iter()
        .map(|mut ring| {
            if let Some(f) = ring.first().copied() {
                ring.push(f);
            }
            Polygon::new(geo::LineString(ring), vec![])
        })
        .collect();
    let mut out = Vec::new();
    for (k, v) in mine.iter().enumerate() {
        let g = polygons(v.geometry.as_ref().expect("a village has geometry"))
            .expect("a village is a polygon");
        let vp = proj.fwd_mp(&g);
        let cell = MultiPolygon(vec![cells[k].clone()]);
        let touches_lost = !lost.0.is_empty() && vp.intersects(&lost);
        let touches_gained = !gained.0.is_empty() && cell.intersects(&gained);
        if !touches_lost && !touches_gained {
            out.push((*v).clone());
            continue;
        }
        let kept = if touches_lost {
            vp.intersection(&newp)
        } else {
            vp
        };
        let ext = if touches_gained {
            gained.intersection(&cell)
        } else {
            MultiPolygon(vec![])
        };
        let merged = if ext.0.is_empty() {
            kept
        } else if kept.0.is_empty() {
            ext
        } else {
            kept.union(&ext)
        };
        let merged = MultiPolygon(
            merged
                .0
                .into_iter()
                .filter(|p| p.unsigned_area() > 0.0)
                .collect(),
        );
        if merged.0.is_empty() {
            return Err(RebaseError::EmptyVillage {
                village: format!("{} {}", v.id, v.name.as_deref().unwrap_or("")),
                town: town.to_string(),
            });
        }
        let mut f = (*v).clone();
        // exterior rings counter-clockwise (RFC 7946), as the stored units have them
        let merged = proj.inv_mp(&merged).orient(Direction::Default);
        f.geometry = Some(Geometry::MultiPolygon(merged));
        let note = "; re-fitted to the official town boundary (import --rebase): the part inside it kept, the town's new land given to the nearest village site";
        if let Some(Value::String(m)) = f.properties.get_mut("geometry_method") {
            if !m.ends_with(note) {
                m.push_str(note);
            }
        }
        out.push(f);
    }
    Ok(out)
}

/// A village's generated site (`point_lon`/`point_lat`), else a point inside it.
fn village_site(v: &Feature) -> Coord {
    match (num_prop(v, "point_lon"), num_prop(v, "point_lat")) {
        (Some(x), Some(y)) => Coord { x, y },
        _ => v
            .geometry
            .as_ref()
            .and_then(|g| g.interior_point())
            .map(|p| p.0)
            .unwrap_or(Coord { x: 0.0, y: 0.0 }),
    }
}

/// The units as the stored features give them: towns anchored at their seat
/// (`seat_lon`/`seat_lat`), villages at their site; an anchor outside its unit (a seat the
/// official boundary leaves outside) is replaced by a point inside the unit.
struct StoreUnits {
    towns: BTreeMap<String, Feature>,
    villages: BTreeMap<String, Feature>,
}

impl StoreUnits {
    fn feature(&self, code: &str) -> Option<&Feature> {
        match code.len() {
            9 => self.towns.get(code),
            12 => self.villages.get(code),
            _ => None,
        }
    }

    fn anchor_ll(&self, f: &Feature, mp: &MultiPolygon) -> Coord {
        let a = match f.layer.as_str() {
            "towns" => num_prop(f, "seat_lon").zip(num_prop(f, "seat_lat")),
            _ => num_prop(f, "point_lon").zip(num_prop(f, "point_lat")),
        };
        match a {
            Some((x, y)) if super::inside(Coord { x, y }, mp) => Coord { x, y },
            _ => mp
                .interior_point()
                .map(|p| p.0)
                .unwrap_or(Coord { x: 0.0, y: 0.0 }),
        }
    }
}

impl Units for StoreUnits {
    fn unit(&self, code: &str, proj: &Proj) -> Option<Unit> {
        let f = self.feature(code)?;
        let mp = polygons(f.geometry.as_ref()?)?;
        let anchor = proj.fwd(self.anchor_ll(f, &mp));
        Some(Unit {
            geom: proj.fwd_mp(&mp),
            anchor,
        })
    }

    fn rural(&self, code: &str, proj: &Proj) -> Option<Unit> {
        if code.len() != 9 {
            return None;
        }
        let town = self.towns.get(code)?;
        let town_mp = polygons(town.geometry.as_ref()?)?;
        let seat = proj.fwd(self.anchor_ll(town, &town_mp));
        let mut parts: Vec<MultiPolygon> = Vec::new();
        let mut nearest: Option<(f64, &str, Coord)> = None;
        for v in self.villages.values() {
            if !(v.id.len() == 12 && v.id.starts_with(code))
                || str_prop(v, "level") != Some("village")
            {
                continue;
            }
            let Some(mp) = v.geometry.as_ref().and_then(polygons) else {
                continue;
            };
            let site = proj.fwd(self.anchor_ll(v, &mp));
            let d = (site.x - seat.x).hypot(site.y - seat.y);
            if nearest.is_none_or(|(bd, bc, _)| d < bd || (d == bd && v.id.as_str() < bc)) {
                nearest = Some((d, v.id.as_str(), site));
            }
            parts.push(mp);
        }
        let (_, _, site) = nearest?;
        let dissolved = parts
            .iter()
            .skip(1)
            .fold(parts[0].clone(), |acc, p| acc.union(p));
        Some(Unit {
            geom: proj.fwd_mp(&dissolved),
            anchor: site,
        })
    }

    fn dissolve(&self, codes: &[String]) -> Option<MultiPolygon> {
        let mut parts = Vec::new();
        for c in codes {
            parts.push(polygons(self.feature(c)?.geometry.as_ref()?)?);
        }
        let first = parts.first()?.clone();
        Some(parts.iter().skip(1).fold(first, |acc, p| acc.union(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(layer: &str, code: &str, name: &str) -> (String, Feature) {
        let m = json!({"name": name});
        let Value::Object(m) = m else { unreachable!() };
        let mut f = Feature::from_parts(layer, code.into(), m, None);
        f.name = Some(name.into());
        (code.to_string(), f)
    }

    #[test]
    fn a_redrawn_site_declares_the_units_it_reaches() {
        let units = StoreUnits {
            towns: [
                unit("towns", "500153103", "吴家镇"),
                unit("towns", "500153104", "清流镇"),
            ]
            .into_iter()
            .collect(),
            villages: [unit("villages", "500153103200", "代兴村")]
                .into_iter()
                .collect(),
        };
        let mut f = Feature::from_parts("projects", "x".into(), Default::default(), None);
        declare(&mut f, &["500153103200".to_string()], &units);
        assert_eq!(f.properties["admin_names"], json!(["吴家镇代兴村"]));
        assert_eq!(f.admin_code.as_deref(), Some("500153103200"));
        declare(
            &mut f,
            &["500153104".to_string(), "500153103".to_string()],
            &units,
        );
        assert_eq!(
            f.properties["admin_codes"],
            json!(["500153103", "500153104"])
        );
        assert_eq!(f.properties["admin_names"], json!(["吴家镇", "清流镇"]));
        assert_eq!(f.properties["admin_code"], json!("500153"));
    }
}
