//! GeoJSON output: rounded (7 decimals), RFC 7946 ring orientation, sorted
//! property keys, one feature per line.

use crate::util::{canonical, round7};
use geo::{Coord, Geometry, LineString, MultiPolygon, Polygon, Validation};
use serde_json::Value;
use std::fmt::Write as _;

pub struct Feature {
    pub id: String,
    pub props: Value,
    /// Longitude/latitude geometry.
    pub geom: Geometry,
}

fn rc(c: Coord) -> Coord {
    Coord {
        x: round7(c.x),
        y: round7(c.y),
    }
}

fn round_ring(ls: &LineString, ccw: bool) -> Option<LineString> {
    let mut v: Vec<Coord> = Vec::with_capacity(ls.0.len());
    for c in &ls.0 {
        let c = rc(*c);
        if v.last() != Some(&c) {
            v.push(c);
        }
    }
    if v.len() > 1 && v.first() == v.last() {
        v.pop();
    }
    if v.len() < 3 {
        return None;
    }
    // signed area (shoelace), positive = counter-clockwise
    let mut a = 0.0;
    for i in 0..v.len() {
        let p = v[i];
        let q = v[(i + 1) % v.len()];
        a += p.x * q.y - q.x * p.y;
    }
    if a == 0.0 {
        return None;
    }
    if (a > 0.0) != ccw {
        v.reverse();
    }
    v.push(v[0]);
    Some(LineString(v))
}

pub fn round_polygon(p: &Polygon) -> Option<Polygon> {
    let ext = round_ring(p.exterior(), true)?;
    let holes = p
        .interiors()
        .iter()
        .filter_map(|r| round_ring(r, false))
        .collect();
    Some(Polygon::new(ext, holes))
}

pub fn round_mp(mp: &MultiPolygon) -> MultiPolygon {
    MultiPolygon(mp.0.iter().filter_map(round_polygon).collect())
}

/// Round a geometry the way it will be written.
pub fn round_geom(g: &Geometry) -> Geometry {
    match g {
        Geometry::Point(p) => Geometry::Point(rc(p.0).into()),
        Geometry::MultiPoint(mp) => Geometry::MultiPoint(geo::MultiPoint(
            mp.0.iter().map(|p| rc(p.0).into()).collect(),
        )),
        Geometry::LineString(ls) => {
            let mut v: Vec<Coord> = Vec::new();
            for c in &ls.0 {
                let c = rc(*c);
                if v.last() != Some(&c) {
                    v.push(c);
                }
            }
            Geometry::LineString(LineString(v))
        }
        Geometry::MultiLineString(mls) => Geometry::MultiLineString(geo::MultiLineString(
            mls.0
                .iter()
                .map(|ls| match round_geom(&Geometry::LineString(ls.clone())) {
                    Geometry::LineString(l) => l,
                    _ => unreachable!(),
                })
                .filter(|l| l.0.len() >= 2)
                .collect(),
        )),
        Geometry::Polygon(p) => Geometry::Polygon(round_polygon(p).expect("degenerate polygon")),
        Geometry::MultiPolygon(mp) => Geometry::MultiPolygon(round_mp(mp)),
        other => other.clone(),
    }
}

pub fn is_valid(g: &Geometry) -> bool {
    match g {
        Geometry::LineString(ls) => ls.0.len() >= 2,
        Geometry::MultiLineString(m) => !m.0.is_empty() && m.0.iter().all(|l| l.0.len() >= 2),
        Geometry::MultiPoint(m) => !m.0.is_empty(),
        Geometry::MultiPolygon(m) => !m.0.is_empty() && m.is_valid(),
        other => other.is_valid(),
    }
}

fn coord_json(c: &Coord, s: &mut String) {
    write!(s, "[{},{}]", fmt(c.x), fmt(c.y)).unwrap();
}

fn fmt(x: f64) -> String {
    // serde_json (ryu) gives the shortest text that reads back as the same f64.
    serde_json::to_string(&serde_json::Number::from_f64(x).unwrap()).unwrap()
}

fn ring_json(ls: &LineString, s: &mut String) {
    s.push('[');
    for (i, c) in ls.0.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        coord_json(c, s);
    }
    s.push(']');
}

fn poly_json(p: &Polygon, s: &mut String) {
    s.push('[');
    ring_json(p.exterior(), s);
    for r in p.interiors() {
        s.push(',');
        ring_json(r, s);
    }
    s.push(']');
}

/// The stand-in for a feature without geometry (written as `null`).
pub fn no_geometry() -> Geometry {
    Geometry::GeometryCollection(geo::GeometryCollection(vec![]))
}

/// Whether a geometry is [`no_geometry`].
pub fn is_null(g: &Geometry) -> bool {
    matches!(g, Geometry::GeometryCollection(gc) if gc.0.is_empty())
}

/// Geometry JSON from an already rounded geometry.
pub fn geom_json(g: &Geometry) -> String {
    if is_null(g) {
        return "null".to_string();
    }
    let mut s = String::new();
    match g {
        Geometry::Point(p) => {
            s.push_str("{\"type\":\"Point\",\"coordinates\":");
            coord_json(&p.0, &mut s);
        }
        Geometry::MultiPoint(mp) => {
            s.push_str("{\"type\":\"MultiPoint\",\"coordinates\":[");
            for (i, p) in mp.0.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                coord_json(&p.0, &mut s);
            }
            s.push(']');
        }
        Geometry::LineString(ls) => {
            s.push_str("{\"type\":\"LineString\",\"coordinates\":");
            ring_json(ls, &mut s);
        }
        Geometry::MultiLineString(m) => {
            s.push_str("{\"type\":\"MultiLineString\",\"coordinates\":[");
            for (i, l) in m.0.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                ring_json(l, &mut s);
            }
            s.push(']');
        }
        Geometry::Polygon(p) => {
            s.push_str("{\"type\":\"Polygon\",\"coordinates\":");
            poly_json(p, &mut s);
        }
        Geometry::MultiPolygon(m) => {
            s.push_str("{\"type\":\"MultiPolygon\",\"coordinates\":[");
            for (i, p) in m.0.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                poly_json(p, &mut s);
            }
            s.push(']');
        }
        _ => panic!("unsupported geometry"),
    }
    s.push('}');
    s
}

/// Write a FeatureCollection; geometries must already be rounded.
pub fn write_fc(path: &std::path::Path, name: &str, features: &[Feature]) -> std::io::Result<()> {
    let mut s = String::new();
    writeln!(
        s,
        "{{\"type\":\"FeatureCollection\",\"name\":{},\"features\":[",
        serde_json::to_string(name).unwrap()
    )
    .unwrap();
    for (i, f) in features.iter().enumerate() {
        write!(
            s,
            "{{\"type\":\"Feature\",\"id\":{},\"properties\":{},\"geometry\":{}}}",
            serde_json::to_string(&f.id).unwrap(),
            canonical(&f.props),
            geom_json(&f.geom)
        )
        .unwrap();
        s.push_str(if i + 1 < features.len() { ",\n" } else { "\n" });
    }
    s.push_str("]}\n");
    std::fs::write(path, s)
}
