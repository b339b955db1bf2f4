//! Whether a feature lies in a user's districts/towns: by its `admin_code` and by geometry,
//! against the engine's district and town polygons.
//!
//! Tolerance: shared boundaries are digitised independently, so a feature drawn up to its
//! district's edge may poke out by a sliver. Up to [`SCOPE_TOLERANCE_M2`] (1 m², geodesic) of a
//! polygon and [`SCOPE_TOLERANCE_M`] (1 m) of a line may lie outside; a point must be inside or
//! on the boundary.

use geo::{BooleanOps, BoundingRect, Geometry, MultiLineString, MultiPolygon};

use crate::engine::Engine;
use crate::geom::{geodesic_area_m2, geodesic_length_m, polygons_of, BoxRelation};
use crate::model::Feature;

/// Area of a polygon feature that may lie outside the scope (boundary slivers), m².
pub const SCOPE_TOLERANCE_M2: f64 = 1.0;
/// Length of a line feature that may lie outside the scope, m.
pub const SCOPE_TOLERANCE_M: f64 = 1.0;

/// Why a feature is outside a scope.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfScope {
    /// The user's units, by code and name.
    pub scope: Vec<(String, String)>,
    pub problem: String,
}

/// `None` when the feature is within the union of the units `scope` names (admin codes),
/// else what is outside.
pub fn out_of_scope(engine: &Engine, scope: &[String], f: &Feature) -> Option<OutOfScope> {
    let units: Vec<_> = scope.iter().filter_map(|c| engine.admin_unit(c)).collect();
    let named = || {
        scope
            .iter()
            .map(|c| {
                let name = units
                    .iter()
                    .find(|u| &u.code == c)
                    .map(|u| u.name.clone())
                    .unwrap_or_default();
                (c.clone(), name)
            })
            .collect::<Vec<_>>()
    };
    let fail = |problem: String| {
        Some(OutOfScope {
            scope: named(),
            problem,
        })
    };
    if let Some(code) = f.admin_code.as_deref() {
        if !scope.iter().any(|s| code.starts_with(s.as_str())) {
            return fail(format!("its admin_code {code} is outside"));
        }
    }
    // Without a geometry the code alone decides (None: in scope).
    let g = f.geometry.as_ref()?;
    let bbox = g.bounding_rect()?;
    let areas: Vec<_> = units.iter().filter_map(|u| engine.admin_area(u)).collect();
    if areas.is_empty() {
        return fail("none of the units of the scope has a boundary on this server".into());
    }
    if areas
        .iter()
        .any(|a| a.relate_box(bbox) == BoxRelation::Inside)
    {
        return None;
    }
    let shapes: Vec<MultiPolygon<f64>> = units
        .iter()
        .filter_map(|u| u.feature.geometry.as_ref().map(polygons_of))
        .collect();
    let polys = polygons_of(g);
    if !polys.0.is_empty() {
        let mut rest = polys;
        for s in &shapes {
            rest = rest.difference(s);
        }
        let outside = geodesic_area_m2(&Geometry::MultiPolygon(rest));
        if outside > SCOPE_TOLERANCE_M2 {
            return fail(format!(
                "{outside:.1} m² of its geometry lies outside (tolerance {SCOPE_TOLERANCE_M2} m²)"
            ));
        }
        return None;
    }
    let lines = lines_of(g);
    if !lines.0.is_empty() {
        let mut rest = lines;
        for s in &shapes {
            rest = s.clip(&rest, true);
        }
        let outside = geodesic_length_m(&Geometry::MultiLineString(rest));
        if outside > SCOPE_TOLERANCE_M {
            return fail(format!(
                "{outside:.1} m of its geometry lies outside (tolerance {SCOPE_TOLERANCE_M} m)"
            ));
        }
        return None;
    }
    for c in geo::CoordsIter::coords_iter(g) {
        if !areas.iter().any(|a| a.contains_coord(c)) {
            return fail(format!("its point ({}, {}) lies outside", c.x, c.y));
        }
    }
    None
}

fn lines_of(g: &Geometry<f64>) -> MultiLineString<f64> {
    match g {
        Geometry::LineString(l) => MultiLineString(vec![l.clone()]),
        Geometry::Line(l) => MultiLineString(vec![l.into()]),
        Geometry::MultiLineString(m) => m.clone(),
        Geometry::GeometryCollection(gc) => {
            MultiLineString(gc.0.iter().flat_map(|g| lines_of(g).0).collect())
        }
        _ => MultiLineString(vec![]),
    }
}
