//! GeoJSON (RFC 7946): decoding FeatureCollections for imports, and a fast writer for responses.
//! Decoding checks every feature and reports the first problems by feature, never half a file.

use geo::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde_json::Value;
use std::fmt::Write as _;

use crate::geom::validate_geometry;
use crate::model::{Feature, Properties};

/// How many problems an import error lists before it just counts.
pub const MAX_LISTED_PROBLEMS: usize = 20;

/// One feature that could not be read, named by its position and id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FeatureProblem {
    /// 0-based position in the `features` array.
    pub index: usize,
    pub id: Option<String>,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not GeoJSON: {0}")]
    Syntax(String),
    #[error("expected a GeoJSON FeatureCollection, got {0}")]
    NotAFeatureCollection(String),
    #[error("{} of {total} features are invalid; first: {}", .problems_total, first_problems(.problems))]
    Features {
        problems: Vec<FeatureProblem>,
        problems_total: usize,
        total: usize,
    },
}

fn first_problems(p: &[FeatureProblem]) -> String {
    p.iter()
        .take(3)
        .map(|p| match &p.id {
            Some(id) => format!("feature {} (id {id}): {}", p.index, p.problem),
            None => format!("feature {}: {}", p.index, p.problem),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads a FeatureCollection into features of `layer`. Features without an `id` get `None` ids
/// (the store numbers them). Any invalid feature fails the whole collection.
pub fn decode_feature_collection(
    bytes: &[u8],
    layer: &str,
) -> Result<Vec<(Option<String>, Feature)>, DecodeError> {
    let root: Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Syntax(e.to_string()))?;
    let kind = root.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "FeatureCollection" {
        return Err(DecodeError::NotAFeatureCollection(if kind.is_empty() {
            "an object without \"type\"".into()
        } else {
            format!("\"{kind}\"")
        }));
    }
    let Some(features) = root.get("features").and_then(Value::as_array) else {
        return Err(DecodeError::NotAFeatureCollection(
            "no \"features\" array".into(),
        ));
    };
    let mut out = Vec::with_capacity(features.len());
    let mut problems = Vec::new();
    let mut problems_total = 0;
    let mut seen = std::collections::HashSet::new();
    for (index, f) in features.iter().enumerate() {
        let id = match f.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let result = decode_feature(f, layer).and_then(|feature| match &id {
            Some(id) if !seen.insert(id.clone()) => Err(format!("id {id} appears more than once")),
            _ => Ok(feature),
        });
        match result {
            Ok(feature) => out.push((id, feature)),
            Err(problem) => {
                problems_total += 1;
                if problems.len() < MAX_LISTED_PROBLEMS {
                    problems.push(FeatureProblem {
                        index,
                        id: id.clone(),
                        problem,
                    });
                }
            }
        }
    }
    if problems_total > 0 {
        return Err(DecodeError::Features {
            problems,
            problems_total,
            total: features.len(),
        });
    }
    Ok(out)
}

fn decode_feature(f: &Value, layer: &str) -> Result<Feature, String> {
    if f.get("type").and_then(Value::as_str) != Some("Feature") {
        return Err("not a GeoJSON Feature (\"type\": \"Feature\" missing)".into());
    }
    if let Some(id) = f.get("id") {
        if !(id.is_string() || id.is_number() || id.is_null()) {
            return Err("id must be a string or a number".into());
        }
    }
    let properties: Properties = match f.get("properties") {
        None | Some(Value::Null) => Properties::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("properties must be an object or null".into()),
    };
    let geometry = match f.get("geometry") {
        None | Some(Value::Null) => None,
        Some(g) => {
            let geom = decode_geometry(g, 0)?;
            validate_geometry(&geom).map_err(|p| format!("geometry: {p}"))?;
            crate::geom::within_china(&geom).map_err(|p| format!("geometry: {p}"))?;
            Some(geom)
        }
    };
    Ok(Feature::from_parts(
        layer,
        String::new(),
        properties,
        geometry,
    ))
}

fn position(v: &Value, at: &str) -> Result<Coord<f64>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{at}: a position must be an array of numbers"))?;
    if arr.len() < 2 {
        return Err(format!(
            "{at}: a position needs at least 2 numbers, has {}",
            arr.len()
        ));
    }
    let num = |i: usize| {
        arr[i]
            .as_f64()
            .ok_or_else(|| format!("{at}: coordinate {} is not a number: {}", i, arr[i]))
    };
    Ok(Coord {
        x: num(0)?,
        y: num(1)?,
    })
}

fn positions(v: &Value, at: &str) -> Result<LineString<f64>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{at}: expected an array of positions"))?;
    arr.iter()
        .enumerate()
        .map(|(i, p)| position(p, &format!("{at}point {i}")))
        .collect::<Result<Vec<_>, _>>()
        .map(LineString)
}

fn polygon(v: &Value, at: &str) -> Result<Polygon<f64>, String> {
    let rings = v
        .as_array()
        .ok_or_else(|| format!("{at}expected an array of rings"))?;
    let mut rings = rings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ring = positions(r, &format!("{at}ring {i}, "))?;
            // Checked here, before geo's Polygon::new silently closes rings.
            if ring.0.len() < 4 {
                return Err(format!(
                    "{at}ring {i}: a polygon ring needs at least 4 positions, has {}",
                    ring.0.len()
                ));
            }
            if ring.0.first() != ring.0.last() {
                return Err(format!(
                    "{at}ring {i}: ring is not closed (first and last positions differ)"
                ));
            }
            Ok(ring)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rings.is_empty() {
        return Ok(Polygon::new(LineString(vec![]), vec![]));
    }
    let exterior = rings.remove(0);
    Ok(Polygon::new(exterior, rings))
}

/// Converts a GeoJSON geometry object to a `geo` geometry, naming the place of any fault.
pub fn decode_geometry(g: &Value, depth: usize) -> Result<Geometry<f64>, String> {
    if depth > 8 {
        return Err("geometry collections nest too deep".into());
    }
    let kind = g
        .get("type")
        .and_then(Value::as_str)
        .ok_or("geometry has no \"type\"")?;
    if kind == "GeometryCollection" {
        let members = g
            .get("geometries")
            .and_then(Value::as_array)
            .ok_or("GeometryCollection has no \"geometries\" array")?;
        return members
            .iter()
            .map(|m| decode_geometry(m, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Geometry::GeometryCollection(geo::GeometryCollection(v)));
    }
    let c = g
        .get("coordinates")
        .ok_or_else(|| format!("{kind} geometry has no \"coordinates\""))?;
    let list = |at: &str| {
        c.as_array()
            .ok_or_else(|| format!("{at}: coordinates must be an array"))
    };
    Ok(match kind {
        "Point" => Geometry::Point(Point(position(c, "point")?)),
        "MultiPoint" => Geometry::MultiPoint(MultiPoint(
            positions(c, "")?.0.into_iter().map(Point).collect(),
        )),
        "LineString" => {
            let l = positions(c, "")?;
            if l.0.len() < 2 {
                return Err(format!(
                    "a LineString needs at least 2 positions, has {}",
                    l.0.len()
                ));
            }
            Geometry::LineString(l)
        }
        "MultiLineString" => Geometry::MultiLineString(MultiLineString(
            list("MultiLineString")?
                .iter()
                .enumerate()
                .map(|(i, l)| positions(l, &format!("line {i}, ")))
                .collect::<Result<_, _>>()?,
        )),
        "Polygon" => Geometry::Polygon(polygon(c, "")?),
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(
            list("MultiPolygon")?
                .iter()
                .enumerate()
                .map(|(i, p)| polygon(p, &format!("polygon {i}, ")))
                .collect::<Result<_, _>>()?,
        )),
        other => return Err(format!("unknown geometry type \"{other}\"")),
    })
}

/// Writes a number the shortest way that reads back exactly.
fn number(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        out.push_str(ryu::Buffer::new().format(v));
    }
}

fn coord(out: &mut String, c: &Coord<f64>) {
    out.push('[');
    number(out, c.x);
    out.push(',');
    number(out, c.y);
    out.push(']');
}

fn coords<'a>(out: &mut String, it: impl Iterator<Item = &'a Coord<f64>>) {
    out.push('[');
    for (i, c) in it.enumerate() {
        if i > 0 {
            out.push(',');
        }
        coord(out, c);
    }
    out.push(']');
}

fn polygon_coords(out: &mut String, p: &Polygon<f64>) {
    out.push('[');
    if !p.exterior().0.is_empty() {
        coords(out, p.exterior().0.iter());
        for hole in p.interiors() {
            out.push(',');
            coords(out, hole.0.iter());
        }
    }
    out.push(']');
}

/// Appends a geometry as a GeoJSON object.
pub fn write_geometry(out: &mut String, g: &Geometry<f64>) {
    let head = |out: &mut String, kind: &str| {
        out.push_str("{\"type\":\"");
        out.push_str(kind);
        out.push_str("\",\"coordinates\":");
    };
    match g {
        Geometry::Point(p) => {
            head(out, "Point");
            coord(out, &p.0);
        }
        Geometry::LineString(l) => {
            head(out, "LineString");
            coords(out, l.0.iter());
        }
        Geometry::Polygon(p) => {
            head(out, "Polygon");
            polygon_coords(out, p);
        }
        Geometry::MultiPoint(mp) => {
            head(out, "MultiPoint");
            coords(out, mp.0.iter().map(|p| &p.0));
        }
        Geometry::MultiLineString(ml) => {
            head(out, "MultiLineString");
            out.push('[');
            for (i, l) in ml.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                coords(out, l.0.iter());
            }
            out.push(']');
        }
        Geometry::MultiPolygon(mp) => {
            head(out, "MultiPolygon");
            out.push('[');
            for (i, p) in mp.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                polygon_coords(out, p);
            }
            out.push(']');
        }
        Geometry::GeometryCollection(gc) => {
            out.push_str("{\"type\":\"GeometryCollection\",\"geometries\":[");
            for (i, g) in gc.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_geometry(out, g);
            }
            out.push(']');
        }
        Geometry::Line(l) => return write_geometry(out, &Geometry::LineString((*l).into())),
        Geometry::Rect(r) => return write_geometry(out, &Geometry::Polygon(r.to_polygon())),
        Geometry::Triangle(t) => return write_geometry(out, &Geometry::Polygon(t.to_polygon())),
    }
    out.push('}');
}

fn json_string(out: &mut String, s: &str) {
    // serde_json's escaping is correct for every input; strings never fail to serialise.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// Which properties to write.
#[derive(Debug, Clone, Default)]
pub enum PropertySelection {
    #[default]
    All,
    Only(Vec<String>),
}

impl PropertySelection {
    fn wants(&self, key: &str) -> bool {
        match self {
            PropertySelection::All => true,
            PropertySelection::Only(keys) => keys.iter().any(|k| k == key),
        }
    }
}

/// Appends a feature as a GeoJSON Feature; `name` and `admin_code` lead the properties.
/// `links` (already JSON) is written as the feature's `links` member when given.
pub fn write_feature(
    out: &mut String,
    f: &Feature,
    selection: &PropertySelection,
    links: Option<&str>,
    extra: &[(&str, Value)],
) {
    out.push_str("{\"type\":\"Feature\",\"id\":");
    json_string(out, &f.id);
    out.push_str(",\"geometry\":");
    match &f.geometry {
        Some(g) => write_geometry(out, g),
        None => out.push_str("null"),
    }
    out.push_str(",\"properties\":{");
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        json_string(out, k);
        out.push(':');
    };
    if let (Some(name), true) = (&f.name, selection.wants("name")) {
        key(out, "name");
        json_string(out, name);
    }
    if let (Some(code), true) = (&f.admin_code, selection.wants("admin_code")) {
        key(out, "admin_code");
        json_string(out, code);
    }
    for (k, v) in &f.properties {
        if selection.wants(k) {
            key(out, k);
            out.push_str(&v.to_string());
        }
    }
    for (k, v) in extra {
        key(out, k);
        out.push_str(&v.to_string());
    }
    out.push('}');
    if let Some(links) = links {
        out.push_str(",\"links\":");
        out.push_str(links);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_writes_back() {
        let text = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":"a","properties":{"name":"龙水镇","admin_code":"500111108","area_mu":10000},
             "geometry":{"type":"Polygon","coordinates":[[[105,29],[106,29],[106,30],[105,29]]]}},
            {"type":"Feature","id":7,"properties":null,"geometry":{"type":"Point","coordinates":[105.5,29.25,300]}}]}"#;
        let fs = decode_feature_collection(text.as_bytes(), "towns").unwrap();
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].0.as_deref(), Some("a"));
        assert_eq!(fs[1].0.as_deref(), Some("7"));
        let mut f = fs[0].1.clone();
        assert_eq!(f.name.as_deref(), Some("龙水镇"));
        assert_eq!(f.admin_code.as_deref(), Some("500111108"));
        f.id = "a".into();
        let mut out = String::new();
        write_feature(&mut out, &f, &PropertySelection::All, None, &[]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["properties"]["name"], "龙水镇");
        assert_eq!(v["properties"]["area_mu"], 10000);
        assert_eq!(
            v["geometry"]["coordinates"][0][1],
            serde_json::json!([106, 29])
        );
    }

    #[test]
    fn lists_every_bad_feature() {
        let text = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":"ok","properties":{},"geometry":{"type":"Point","coordinates":[105,29]}},
            {"type":"Feature","id":"lat","properties":{},"geometry":{"type":"Point","coordinates":[105,99]}},
            {"type":"Feature","id":"open","properties":{},"geometry":{"type":"Polygon","coordinates":[[[105,29],[106,29],[106,30],[105,30]]]}},
            {"type":"Feature","id":"ok","properties":{},"geometry":null}]}"#;
        match decode_feature_collection(text.as_bytes(), "x") {
            Err(DecodeError::Features {
                problems,
                problems_total,
                total,
            }) => {
                assert_eq!((problems_total, total), (3, 4));
                assert_eq!(problems[0].index, 1);
                assert!(
                    problems[0].problem.contains("latitude 99"),
                    "{}",
                    problems[0].problem
                );
                assert!(
                    problems[1].problem.contains("not closed"),
                    "{}",
                    problems[1].problem
                );
                assert!(problems[2].problem.contains("more than once"));
            }
            other => panic!("expected feature problems, got {other:?}"),
        }
        assert!(matches!(
            decode_feature_collection(b"{\"type\":\"Feature\"}", "x"),
            Err(DecodeError::NotAFeatureCollection(_))
        ));
        assert!(matches!(
            decode_feature_collection(b"{", "x"),
            Err(DecodeError::Syntax(_))
        ));
    }
}
