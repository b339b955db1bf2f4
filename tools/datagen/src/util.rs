//! Small deterministic helpers: hashing, a seeded generator, a local metric
//! projection, convex clipping, Voronoi cells and canonical JSON output.
//!
//! Everything here uses only IEEE arithmetic and `libm` (pure Rust), so the same
//! input gives bit-identical output on every machine.

use geo::{
    Area, BooleanOps, BoundingRect, Centroid, Contains, Coord, Distance, Euclidean, LineString,
    MultiPolygon, Point, Polygon,
};
use serde_json::Value;

/// FNV-1a, 64 bit: the fixed-seed hash used for every "random" choice.
pub fn hash64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64 seeded from a string.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: &str) -> Rng {
        Rng(hash64(seed))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A local equirectangular projection (metres) around a reference latitude,
/// with the WGS84/CGCS2000 ellipsoid's radii of curvature at that latitude.
#[derive(Clone, Copy, Debug)]
pub struct Proj {
    pub lon0: f64,
    pub lat0: f64,
    pub kx: f64,
    pub ky: f64,
}

impl Proj {
    pub fn new(lon0: f64, lat0: f64) -> Proj {
        let a = 6_378_137.0_f64;
        let f = 1.0 / 298.257_222_101; // CGCS2000 (GRS80); WGS84 differs by 1e-10
        let e2 = f * (2.0 - f);
        let phi = lat0.to_radians();
        let s = libm::sin(phi);
        let w = 1.0 - e2 * s * s;
        let n = a / libm::sqrt(w);
        let m = a * (1.0 - e2) / (w * libm::sqrt(w));
        let deg = std::f64::consts::PI / 180.0;
        Proj {
            lon0,
            lat0,
            kx: n * libm::cos(phi) * deg,
            ky: m * deg,
        }
    }
    pub fn fwd(&self, c: Coord) -> Coord {
        Coord {
            x: (c.x - self.lon0) * self.kx,
            y: (c.y - self.lat0) * self.ky,
        }
    }
    pub fn inv(&self, c: Coord) -> Coord {
        Coord {
            x: c.x / self.kx + self.lon0,
            y: c.y / self.ky + self.lat0,
        }
    }
    pub fn fwd_mp(&self, mp: &MultiPolygon) -> MultiPolygon {
        map_mp(mp, |c| self.fwd(c))
    }
    pub fn inv_mp(&self, mp: &MultiPolygon) -> MultiPolygon {
        map_mp(mp, |c| self.inv(c))
    }
    pub fn inv_ls(&self, ls: &LineString) -> LineString {
        LineString(ls.0.iter().map(|c| self.inv(*c)).collect())
    }
}

pub fn map_mp(mp: &MultiPolygon, f: impl Fn(Coord) -> Coord) -> MultiPolygon {
    MultiPolygon(
        mp.0.iter()
            .map(|p| {
                Polygon::new(
                    LineString(p.exterior().0.iter().map(|c| f(*c)).collect()),
                    p.interiors()
                        .iter()
                        .map(|r| LineString(r.0.iter().map(|c| f(*c)).collect()))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// Keep the part of a convex polygon (open ring, no repeated closing point)
/// where `n · p <= d`.
pub fn clip_halfplane(poly: &[Coord], n: Coord, d: f64) -> Vec<Coord> {
    let mut out = Vec::with_capacity(poly.len() + 2);
    let len = poly.len();
    for i in 0..len {
        let a = poly[i];
        let b = poly[(i + 1) % len];
        let fa = n.x * a.x + n.y * a.y - d;
        let fb = n.x * b.x + n.y * b.y - d;
        if fa <= 0.0 {
            out.push(a);
        }
        if (fa < 0.0 && fb > 0.0) || (fa > 0.0 && fb < 0.0) {
            let t = fa / (fa - fb);
            out.push(Coord {
                x: a.x + t * (b.x - a.x),
                y: a.y + t * (b.y - a.y),
            });
        }
    }
    out
}

/// Voronoi cells of `sites` (projected metres) inside the box `[min, max]`,
/// by half-plane intersection; returns open convex rings.
pub fn voronoi_cells(sites: &[Coord], min: Coord, max: Coord) -> Vec<Vec<Coord>> {
    power_cells(sites, &vec![0.0; sites.len()], min, max)
}

/// Power (weighted Voronoi) cells: the cell of site i is where
/// `|x - s_i|² - w_i <= |x - s_j|² - w_j` for every j, inside the box
/// `[min, max]`; open convex rings (empty when a weight swallows the cell).
pub fn power_cells(sites: &[Coord], weights: &[f64], min: Coord, max: Coord) -> Vec<Vec<Coord>> {
    let square = vec![
        Coord { x: min.x, y: min.y },
        Coord { x: max.x, y: min.y },
        Coord { x: max.x, y: max.y },
        Coord { x: min.x, y: max.y },
    ];
    sites
        .iter()
        .enumerate()
        .map(|(i, si)| {
            let mut cell = square.clone();
            for (j, sj) in sites.iter().enumerate() {
                if i == j || cell.is_empty() {
                    continue;
                }
                let n = Coord {
                    x: sj.x - si.x,
                    y: sj.y - si.y,
                };
                let d = (sj.x * sj.x + sj.y * sj.y - si.x * si.x - si.y * si.y + weights[i]
                    - weights[j])
                    / 2.0;
                cell = clip_halfplane(&cell, n, d);
            }
            cell
        })
        .collect()
}

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

/// Distance from a point to the boundary of a multipolygon (metres if projected).
pub fn dist_to_boundary(p: Coord, mp: &MultiPolygon) -> f64 {
    let pt = Point(p);
    let mut best = f64::INFINITY;
    for poly in &mp.0 {
        let d = Euclidean.distance(&pt, poly.exterior());
        if d < best {
            best = d;
        }
        for r in poly.interiors() {
            let d = Euclidean.distance(&pt, r);
            if d < best {
                best = d;
            }
        }
    }
    best
}

pub fn inside(p: Coord, mp: &MultiPolygon) -> bool {
    mp.contains(&Point(p))
}

/// Inside and at least `margin` from the boundary.
pub fn inside_by(p: Coord, mp: &MultiPolygon, margin: f64) -> bool {
    inside(p, mp) && dist_to_boundary(p, mp) >= margin
}

pub fn centroid(mp: &MultiPolygon) -> Coord {
    mp.centroid()
        .map(|p| p.0)
        .unwrap_or(Coord { x: 0.0, y: 0.0 })
}

/// A deterministic "blob": a disc whose radius wobbles a little, so bases do not
/// all look like coins. `seed` picks the wobble.
pub fn blob(c: Coord, r: f64, seed: &str) -> Polygon {
    let mut rng = Rng::new(seed);
    let a1 = 0.10 + 0.08 * rng.f64();
    let a2 = 0.05 + 0.05 * rng.f64();
    let p1 = rng.f64() * 6.283;
    let p2 = rng.f64() * 6.283;
    let n = 48;
    let mut v = Vec::with_capacity(n + 1);
    for i in 0..n {
        let t = 2.0 * std::f64::consts::PI * (i as f64) / (n as f64);
        let k = 1.0 + a1 * libm::cos(2.0 * t + p1) + a2 * libm::cos(3.0 * t + p2);
        v.push(Coord {
            x: c.x + r * k * libm::cos(t),
            y: c.y + r * k * libm::sin(t),
        });
    }
    v.push(v[0]);
    Polygon::new(LineString(v), vec![])
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
