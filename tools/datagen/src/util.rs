//! Small deterministic helpers: hashing, a seeded generator, a local metric
//! projection, convex clipping, Voronoi cells and canonical JSON output.
//!
//! Everything here uses only IEEE arithmetic and `libm` (pure Rust), so the same
//! input gives bit-identical output on every machine.

use geo::{Area, BooleanOps, BoundingRect, Centroid, Coord, LineString, MultiPolygon, Polygon};
use serde_json::Value;
pub use yizhangtu::place::{inside, inside_by, power_cells, voronoi_cells, Proj, Rng};

pub fn ring_polygon(ring: &[Coord]) -> Polygon {
    let mut v = ring.to_vec();
    if let Some(f) = v.first().copied() {
        v.push(f);
    }
    Polygon::new(LineString(v), vec![])
}

/// Intersection of a convex cell with a region; tiny slivers are dropped.
pub fn clip_to(cell: &[Coord], region: &MultiPolygon) -> MultiPolygon {
    let p = ring_polygon(cell);
    let r = MultiPolygon(vec![p]).intersection(region);
    MultiPolygon(
        r.0.into_iter()
            .filter(|p| p.unsigned_area() > 1.0)
            .collect(),
    )
}

pub fn bbox(mp: &MultiPolygon, pad: f64) -> (Coord, Coord) {
    let r = mp.bounding_rect().expect("non-empty");
    (
        Coord {
            x: r.min().x - pad,
            y: r.min().y - pad,
        },
        Coord {
            x: r.max().x + pad,
            y: r.max().y + pad,
        },
    )
}

pub fn centroid(mp: &MultiPolygon) -> Coord {
    mp.centroid()
        .map(|p| p.0)
        .unwrap_or(Coord { x: 0.0, y: 0.0 })
}

pub fn round7(x: f64) -> f64 {
    let r = (x * 1e7).round() / 1e7;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

pub fn round_n(x: f64, n: i32) -> f64 {
    let k = 10f64.powi(n);
    let r = (x * k).round() / k;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

pub fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// JSON text with object keys sorted at every level (independent of
/// serde_json's `preserve_order` feature).
pub fn canonical(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap()),
    }
}

/// Pretty canonical JSON (two-space indent, sorted keys) for small files.
pub fn canonical_pretty(v: &Value) -> String {
    let mut s = String::new();
    pretty(v, 0, &mut s);
    s.push('\n');
    s
}

fn pretty(v: &Value, ind: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&pad(ind + 1));
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(": ");
                pretty(&m[k.as_str()], ind + 1, out);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(ind));
            out.push('}');
        }
        Value::Array(a) if !a.is_empty() && a.iter().any(|x| x.is_object() || x.is_array()) => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad(ind + 1));
                pretty(x, ind + 1, out);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&pad(ind));
            out.push(']');
        }
        other => write_canonical(other, out),
    }
}
