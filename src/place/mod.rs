//! Placement of plan features whose site no source gives: the rules that draw a point, a line
//! or a blob inside the units a plan's text names. `tools/datagen` draws the seeded features
//! with them, and `import … --replace --rebase` ([`rebase`]) redraws them on new (official)
//! boundaries, so both follow one implementation.
//!
//! Every approximate plan feature carries its [`Recipe`] as the property `placement_recipe`:
//! the rule, the units it was placed in (by NBS code, grouped as the text names them), the
//! seed of its deterministic choices, the local projection and its size (area or length).
//! The drawing is deterministic: the same recipe and the same units give the same geometry
//! (IEEE arithmetic and `libm` only).
//!
//! Pure: no I/O; lon/lat in, lon/lat out, metric work in a local projection.

pub mod rebase;

use geo::{
    Area, BooleanOps, Buffer, Contains, Coord, Distance, Euclidean, Geometry, LineString,
    MultiLineString, MultiPoint, MultiPolygon, Point, Polygon,
};
use serde::{Deserialize, Serialize};

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

/// A deterministic "blob": a disc whose radius wobbles a little, so bases do not
/// all look like coins. `seed` picks the wobble.
// 6.283 (not TAU) is part of the seeded shapes: the bundled data were drawn with it.
#[allow(clippy::approx_constant)]
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

/// How a feature's geometry is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The named units themselves, dissolved (a programme, a town-wide designation, a key-help
    /// village).
    Unit,
    /// A point near the anchor (seat or site) of one unit per group.
    Point,
    /// A straight line through the anchors of the groups' first units.
    LineBetween,
    /// A gently bent line of `length_m` through each group's units, clipped to them.
    LineInUnit,
    /// A blob of `area_m2` shared over the named units (on a town's rural villages when
    /// `rural`), clipped to them.
    Blob,
}

/// One place phrase of the text and the units it resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub text: String,
    pub codes: Vec<String>,
}

/// Everything needed to draw a feature again: the property `placement_recipe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub rule: Rule,
    /// Seeds every deterministic choice (`plan:catalog:name`).
    pub seed: String,
    /// Origin (lon, lat) of the local projection the drawing is done in (the district's).
    pub proj: [f64; 2],
    pub groups: Vec<Group>,
    /// Area to draw, m² (blobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_m2: Option<f64>,
    /// Length to draw, m (lines in a unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_m: Option<f64>,
    /// A farm, vegetable, forestry or land-consolidation blob: in a town it lies on the town's
    /// rural villages (村), not on its urban communities (社区).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rural: bool,
    /// How a blob over several units shares its area among them.
    #[serde(default, skip_serializing_if = "Spread::is_equal")]
    pub spread: Spread,
    /// One named site (a lake, a 小区, an area read as several units): one polygon somewhere in
    /// the named units, across their shared border when it spans two, not one piece in each.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_site: bool,
}

/// How a blob named in several units is shared among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    /// The same share in each group, and in each unit of a group (recipes from before the
    /// spread was recorded).
    #[default]
    Equal,
    /// In proportion to each unit's area where the blob may lie (its rural villages for a
    /// farm blob in a town, else the unit).
    ByArea,
}

impl Spread {
    fn is_equal(&self) -> bool {
        *self == Spread::Equal
    }
}

impl Recipe {
    /// Every unit code the recipe names, sorted, without repeats.
    pub fn codes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.groups.iter().flat_map(|g| g.codes.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A unit as the drawing sees it: its polygon and its anchor (town seat or village site), both
/// in the recipe's projection (metres).
#[derive(Debug, Clone)]
pub struct Unit {
    pub geom: MultiPolygon,
    pub anchor: Coord,
}

/// Where the drawing gets its units from.
pub trait Units {
    /// The unit `code` (9 or 12 digits) in `proj`.
    fn unit(&self, code: &str, proj: &Proj) -> Option<Unit>;
    /// The rural part of town `code` (its villages, 村, not its communities) with the site of the
    /// village nearest the seat, in `proj`; `None` for a village code or a town without 村.
    fn rural(&self, code: &str, proj: &Proj) -> Option<Unit>;
    /// The named units dissolved into one polygon (lon/lat).
    fn dissolve(&self, codes: &[String]) -> Option<MultiPolygon>;
}

/// What [`place`] drew.
#[derive(Debug, Clone)]
pub struct Placed {
    /// Lon/lat.
    pub geometry: Geometry,
    /// A blob lies on a town's rural villages.
    pub on_villages: bool,
    /// A blob was capped at 90% of a unit too small for its share.
    pub capped: bool,
    /// Area drawn (m², planar in the projection) for blobs.
    pub area_m2: Option<f64>,
    /// For a one-site blob: the units it reaches, by the membership rule (more than 1 m² and
    /// more than 1e-6 of its area inside), in the recipe's order.
    pub reached: Option<Vec<String>>,
}

/// Why a recipe could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("unit {0} is not known")]
    UnknownUnit(String),
    #[error("the recipe names no units")]
    NoUnits,
    #[error("no part of the line lies inside {0}")]
    EmptyLine(String),
    #[error("the recipe lacks {0}")]
    Missing(&'static str),
}

/// Draws `r` against `units`.
pub fn place(r: &Recipe, units: &dyn Units) -> Result<Placed, PlaceError> {
    let proj = Proj::new(r.proj[0], r.proj[1]);
    let mut rng = Rng::new(&r.seed);
    if r.groups.iter().all(|g| g.codes.is_empty()) {
        return Err(PlaceError::NoUnits);
    }
    let unit = |c: &str| {
        units
            .unit(c, &proj)
            .ok_or(PlaceError::UnknownUnit(c.into()))
    };
    let plain = |g: Geometry| Placed {
        geometry: g,
        on_villages: false,
        capped: false,
        area_m2: None,
        reached: None,
    };
    match r.rule {
        Rule::Unit => {
            let codes = r.codes();
            let mp = units
                .dissolve(&codes)
                .ok_or_else(|| PlaceError::UnknownUnit(codes.join(",")))?;
            Ok(plain(Geometry::MultiPolygon(mp)))
        }
        Rule::Point => {
            let mut pts = Vec::new();
            for g in &r.groups {
                let k = (hash64(&format!("{}:{}", r.seed, g.text)) % g.codes.len() as u64) as usize;
                let c = &g.codes[k];
                let Unit { geom: u, anchor: a } = unit(c)?;
                let scale = (u.unsigned_area()).sqrt();
                let rmax = if c.len() == 12 {
                    0.25 * scale
                } else {
                    (0.25 * scale).min(1500.0)
                };
                let mut p = a;
                for _ in 0..200 {
                    let rr = rmax * rng.f64().sqrt();
                    let t = rng.f64() * std::f64::consts::TAU;
                    let q = Coord {
                        x: a.x + rr * libm::cos(t),
                        y: a.y + rr * libm::sin(t),
                    };
                    if inside_by(q, &u, 20.0) {
                        p = q;
                        break;
                    }
                }
                pts.push(Point(proj.inv(p)));
            }
            Ok(plain(if pts.len() == 1 {
                Geometry::Point(pts[0])
            } else {
                Geometry::MultiPoint(MultiPoint(pts))
            }))
        }
        Rule::LineBetween => {
            let mut pts = Vec::new();
            for g in &r.groups {
                pts.push(proj.inv(unit(&g.codes[0])?.anchor));
            }
            Ok(plain(Geometry::LineString(LineString(pts))))
        }
        Rule::LineInUnit => {
            let len = r.length_m.ok_or(PlaceError::Missing("length_m"))?;
            let mut lines: Vec<LineString> = Vec::new();
            for g in &r.groups {
                let us = g
                    .codes
                    .iter()
                    .map(|c| unit(c))
                    .collect::<Result<Vec<Unit>, _>>()?;
                let mut region = us[0].geom.clone();
                for u in &us[1..] {
                    region = region.union(&u.geom);
                }
                // a line through the anchor may miss an odd-shaped unit:
                // draw again (deterministically) until a part lies inside
                for _attempt in 0..32 {
                    let pts: Vec<Coord> = if us.len() >= 2 {
                        us.iter().map(|u| u.anchor).collect()
                    } else {
                        let a = us[0].anchor;
                        let scale = region.unsigned_area().sqrt();
                        let l = len.min(1.2 * scale);
                        let t = rng.f64() * std::f64::consts::PI;
                        let bend = (rng.f64() - 0.5) * 0.3 * l;
                        let (dx, dy) = (libm::cos(t), libm::sin(t));
                        let off = (rng.f64() - 0.5) * 0.2 * scale;
                        let c = Coord {
                            x: a.x - dy * off,
                            y: a.y + dx * off,
                        };
                        vec![
                            Coord {
                                x: c.x - dx * l / 2.0,
                                y: c.y - dy * l / 2.0,
                            },
                            Coord {
                                x: c.x - dx * l / 6.0 - dy * bend,
                                y: c.y - dy * l / 6.0 + dx * bend,
                            },
                            Coord {
                                x: c.x + dx * l / 6.0 + dy * bend * 0.5,
                                y: c.y + dy * l / 6.0 - dx * bend * 0.5,
                            },
                            Coord {
                                x: c.x + dx * l / 2.0,
                                y: c.y + dy * l / 2.0,
                            },
                        ]
                    };
                    let clipped = region.clip(&MultiLineString(vec![LineString(pts)]), false);
                    let before = lines.len();
                    for ls in clipped.0 {
                        if ls.0.len() >= 2 {
                            lines.push(proj.inv_ls(&ls));
                        }
                    }
                    if lines.len() > before {
                        break;
                    }
                }
            }
            if lines.is_empty() {
                return Err(PlaceError::EmptyLine(r.codes().join(",")));
            }
            Ok(plain(if lines.len() == 1 {
                Geometry::LineString(lines.remove(0))
            } else {
                Geometry::MultiLineString(MultiLineString(lines))
            }))
        }
        Rule::Blob if r.one_site => one_site(r, units, &proj, &mut rng),
        Rule::Blob => {
            let target_m2 = r.area_m2.ok_or(PlaceError::Missing("area_m2"))?;
            // where each unit's piece may lie (its rural villages for a farm blob in a town)
            let mut spots: Vec<Vec<Spot>> = Vec::new();
            let mut on_villages = false;
            for g in &r.groups {
                let mut row = Vec::new();
                for c in &g.codes {
                    let plain_unit = unit(c)?;
                    let own_anchor = plain_unit.anchor;
                    let rural = if r.rural { units.rural(c, &proj) } else { None };
                    let (u, anchor) = match rural {
                        Some(Unit { geom, anchor }) => {
                            on_villages = true;
                            // 5 m in from the communities' edges, so rounding the blob's
                            // coordinates cannot put a sliver of it in them
                            (geom.buffer(-5.0), anchor)
                        }
                        None => (plain_unit.geom, plain_unit.anchor),
                    };
                    let ua = u.unsigned_area();
                    row.push(Spot {
                        code: c.clone(),
                        room: u,
                        anchor,
                        area: ua,
                        own_anchor,
                    });
                }
                spots.push(row);
            }
            let total_area: f64 = spots.iter().flatten().map(|s| s.area).sum();
            let mut pieces = MultiPolygon(vec![]);
            let mut capped = false;
            for (g, row) in r.groups.iter().zip(&spots) {
                // group centre: mean of the units' own anchors
                let n = g.codes.len() as f64;
                let gc = row.iter().fold(Coord { x: 0.0, y: 0.0 }, |s, u| Coord {
                    x: s.x + u.own_anchor.x / n,
                    y: s.y + u.own_anchor.y / n,
                });
                for spot in row {
                    let share = match r.spread {
                        Spread::Equal => target_m2 / r.groups.len() as f64 / n,
                        Spread::ByArea if total_area > 0.0 => target_m2 * spot.area / total_area,
                        Spread::ByArea => target_m2 / spots.iter().flatten().count() as f64,
                    };
                    let (piece, cap) = grow_piece(
                        &spot.room,
                        spot.area,
                        share,
                        spot.anchor,
                        gc,
                        &format!("{}:{}", r.seed, spot.code),
                        &mut rng,
                    );
                    capped |= cap;
                    pieces = if pieces.0.is_empty() {
                        piece
                    } else {
                        pieces.union(&piece)
                    };
                }
            }
            let area = pieces.unsigned_area();
            Ok(Placed {
                geometry: Geometry::MultiPolygon(proj.inv_mp(&pieces)),
                on_villages,
                capped,
                area_m2: Some(area),
                reached: None,
            })
        }
    }
}

/// Where a blob's piece in one unit may lie.
struct Spot {
    code: String,
    /// The unit, or its rural villages for a farm blob in a town.
    room: MultiPolygon,
    /// Where the piece starts (the seat, or the village nearest it).
    anchor: Coord,
    /// Area of `room`, m².
    area: f64,
    /// The unit's own anchor (the group centre is the mean of these).
    own_anchor: Coord,
}

/// Cracks narrower than twice this between a site's units are closed before it is drawn, m.
const SITE_CLOSE_M: f64 = 0.5;
/// How far a one-site polygon stays inside the outer edge of its units' union, m.
const SITE_INSET_M: f64 = 1.0;

/// One named site over its units: a single blob of `area_m2` in their union (their rural
/// villages for a farm blob), centred on their shared border when they meet (so a lake named in
/// two towns lies across the border between them), else near the mean of their anchors.
fn one_site(
    r: &Recipe,
    units: &dyn Units,
    proj: &Proj,
    rng: &mut Rng,
) -> Result<Placed, PlaceError> {
    let target_m2 = r.area_m2.ok_or(PlaceError::Missing("area_m2"))?;
    let codes: Vec<String> = {
        let mut seen = Vec::new();
        for c in r.groups.iter().flat_map(|g| g.codes.iter()) {
            if !seen.contains(c) {
                seen.push(c.clone());
            }
        }
        seen
    };
    let mut parts: Vec<(String, MultiPolygon, Coord)> = Vec::new();
    let mut on_villages = false;
    for c in &codes {
        let rural = if r.rural { units.rural(c, proj) } else { None };
        let u = match rural {
            Some(u) => {
                on_villages = true;
                Unit {
                    geom: u.geom.buffer(-5.0),
                    anchor: u.anchor,
                }
            }
            None => units
                .unit(c, proj)
                .ok_or(PlaceError::UnknownUnit(c.clone()))?,
        };
        parts.push((c.clone(), u.geom, u.anchor));
    }
    let n = parts.len() as f64;
    let mean = parts.iter().fold(Coord { x: 0.0, y: 0.0 }, |s, p| Coord {
        x: s.x + p.2.x / n,
        y: s.y + p.2.y / n,
    });
    // The units' union, closed (cracks under 1 m between them vanish) and then kept 1 m in from
    // its outer edge: the site's clipped edge is then never on the border of a unit it does not
    // declare, where rounding its coordinates would leave millimetre slivers of it in that unit
    // (汉丰湖 clipped to five streets left such slivers in 正安街道).
    let region = parts
        .iter()
        .skip(1)
        .fold(parts[0].1.clone(), |acc, p| acc.union(&p.1))
        .buffer(SITE_CLOSE_M)
        .buffer(-SITE_CLOSE_M - SITE_INSET_M);
    let ua = region.unsigned_area();
    // the centre: on the border the first two units share, nearest the mean of the anchors
    let centre = if parts.len() >= 2 {
        shared_border_point(&parts[0].1, &parts[1].1, mean)
    } else {
        None
    };
    let (piece, capped) = match centre {
        Some(c) if target_m2 < 0.9 * ua => (grow_to(&region, c, target_m2, &r.seed), false),
        _ => grow_piece(
            &region,
            ua,
            target_m2,
            parts[0].2,
            mean,
            &format!("{}:site", r.seed),
            rng,
        ),
    };
    let own = piece.unsigned_area();
    let reached = parts
        .iter()
        .filter(|(_, u, _)| {
            let inside = piece.intersection(u).unsigned_area();
            inside > 1.0 && inside > 1e-6 * own
        })
        .map(|(c, _, _)| c.clone())
        .collect();
    Ok(Placed {
        geometry: Geometry::MultiPolygon(proj.inv_mp(&piece)),
        on_villages,
        capped,
        area_m2: Some(own),
        reached: Some(reached),
    })
}

/// The point of the border two units share (within 1 m) that lies nearest `towards`, if they
/// share one.
fn shared_border_point(a: &MultiPolygon, b: &MultiPolygon, towards: Coord) -> Option<Coord> {
    use geo::{Closest, ClosestPoint};
    let rings: Vec<LineString> = a
        .0
        .iter()
        .flat_map(|p| std::iter::once(p.exterior().clone()).chain(p.interiors().iter().cloned()))
        .collect();
    let shared = b.buffer(1.0).clip(&MultiLineString(rings), false);
    if shared.0.iter().all(|l| l.0.len() < 2) {
        return None;
    }
    match shared.closest_point(&Point(towards)) {
        Closest::Intersection(p) | Closest::SinglePoint(p) => Some(p.0),
        Closest::Indeterminate => None,
    }
}

/// A blob of `target` m² inside `u` around a seeded point, pulled towards `gc`.
fn grow_piece(
    u: &MultiPolygon,
    ua: f64,
    target: f64,
    anchor: Coord,
    gc: Coord,
    seed: &str,
    rng: &mut Rng,
) -> (MultiPolygon, bool) {
    let scale = ua.sqrt();
    let margin = (target.sqrt() * 0.3).min(scale * 0.2);
    // a seeded interior point, drawn near the anchor, then pulled towards the group centre
    let mut p = anchor;
    for _ in 0..300 {
        let r = 0.35 * scale * rng.f64().sqrt();
        let t = rng.f64() * std::f64::consts::TAU;
        let q = Coord {
            x: anchor.x + r * libm::cos(t),
            y: anchor.y + r * libm::sin(t),
        };
        if inside_by(q, u, margin) {
            p = q;
            break;
        }
    }
    let pulled = Coord {
        x: p.x + 0.4 * (gc.x - p.x),
        y: p.y + 0.4 * (gc.y - p.y),
    };
    if inside_by(pulled, u, margin) {
        p = pulled;
    }
    if target >= 0.9 * ua {
        // the unit itself is too small: use 90% of it
        let piece = grow_to(u, p, 0.9 * ua, seed);
        return (piece, true);
    }
    (grow_to(u, p, target, seed), false)
}

fn grow_to(u: &MultiPolygon, c: Coord, target: f64, seed: &str) -> MultiPolygon {
    let mut lo = 0.0;
    let mut hi = (target / std::f64::consts::PI).sqrt() * 1.2;
    let area_at = |r: f64| -> (MultiPolygon, f64) {
        let b = MultiPolygon(vec![blob(c, r, seed)]);
        let x = b.intersection(u);
        let a = x.unsigned_area();
        (x, a)
    };
    // grow hi until it covers the target
    let mut tries = 0;
    while area_at(hi).1 < target && tries < 40 {
        hi *= 1.5;
        tries += 1;
    }
    let mut best = area_at(hi).0;
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        let (g, a) = area_at(mid);
        if a < target {
            lo = mid;
        } else {
            hi = mid;
            best = g;
        }
        if (a - target).abs() < target * 0.002 {
            best = area_at(mid).0;
            break;
        }
    }
    // keep the part containing the most area if clipping split it into slivers
    MultiPolygon(
        best.0
            .into_iter()
            .filter(|p| p.unsigned_area() > target * 0.01)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{coord, Rect};

    /// Two towns side by side in metres round (106°E, 29°N): a 4 km × 4 km one to the west and
    /// an 8 km × 4 km one to the east, seats at their centres.
    struct TwoTowns;

    impl TwoTowns {
        fn rect(code: &str) -> Option<(Rect, Coord)> {
            match code {
                "500111100" => Some((
                    Rect::new(coord! {x: -4000.0, y: 0.0}, coord! {x: 0.0, y: 4000.0}),
                    coord! {x: -2000.0, y: 2000.0},
                )),
                "500111101" => Some((
                    Rect::new(coord! {x: 0.0, y: 0.0}, coord! {x: 8000.0, y: 4000.0}),
                    coord! {x: 4000.0, y: 2000.0},
                )),
                _ => None,
            }
        }
    }

    impl Units for TwoTowns {
        fn unit(&self, code: &str, _proj: &Proj) -> Option<Unit> {
            let (r, anchor) = Self::rect(code)?;
            Some(Unit {
                geom: MultiPolygon(vec![r.to_polygon()]),
                anchor,
            })
        }
        fn rural(&self, _code: &str, _proj: &Proj) -> Option<Unit> {
            None
        }
        fn dissolve(&self, _codes: &[String]) -> Option<MultiPolygon> {
            None
        }
    }

    fn recipe(spread: Spread, one_site: bool) -> Recipe {
        Recipe {
            rule: Rule::Blob,
            seed: "test".into(),
            proj: [106.0, 29.0],
            groups: ["500111100", "500111101"]
                .iter()
                .map(|c| Group {
                    text: c.to_string(),
                    codes: vec![c.to_string()],
                })
                .collect(),
            area_m2: Some(3_000_000.0),
            length_m: None,
            rural: false,
            spread,
            one_site,
        }
    }

    /// The drawn geometry back in the test's metres, and its part in each town.
    fn parts(placed: &Placed) -> (MultiPolygon, f64, f64) {
        let proj = Proj::new(106.0, 29.0);
        let Geometry::MultiPolygon(m) = &placed.geometry else {
            panic!("a blob is a MultiPolygon")
        };
        let m = proj.fwd_mp(m);
        let area_in = |code: &str| {
            let u = TwoTowns.unit(code, &proj).unwrap().geom;
            m.intersection(&u).unsigned_area()
        };
        let (w, e) = (area_in("500111100"), area_in("500111101"));
        (m, w, e)
    }

    #[test]
    fn a_blob_over_two_towns_follows_their_areas() {
        let placed = place(&recipe(Spread::ByArea, false), &TwoTowns).unwrap();
        let (_, w, e) = parts(&placed);
        // the east town is twice the west one: two thirds of the blob lie in it
        assert!((e / (w + e) - 2.0 / 3.0).abs() < 0.01, "{w} {e}");
        assert!(((w + e) - 3e6).abs() < 3e4);
        // the old rule shares it equally
        let placed = place(&recipe(Spread::Equal, false), &TwoTowns).unwrap();
        let (_, w, e) = parts(&placed);
        assert!((e / (w + e) - 0.5).abs() < 0.01, "{w} {e}");
    }

    #[test]
    fn one_site_is_one_polygon_across_the_shared_border() {
        let placed = place(&recipe(Spread::Equal, true), &TwoTowns).unwrap();
        let (m, w, e) = parts(&placed);
        assert_eq!(m.0.len(), 1, "one polygon");
        assert!(((w + e) - 3e6).abs() < 3e4, "{}", w + e);
        // centred on the border at the seats' height: about half in each town
        assert!(w > 0.3 * (w + e) && e > 0.3 * (w + e), "{w} {e}");
        assert_eq!(
            placed.reached,
            Some(vec!["500111100".to_string(), "500111101".to_string()])
        );
        // the same recipe draws the same polygon
        let again = place(&recipe(Spread::Equal, true), &TwoTowns).unwrap();
        assert_eq!(again.geometry, placed.geometry);
    }

    #[test]
    fn a_clipped_site_stays_off_the_outer_edge_of_its_units() {
        // 30 km² round the shared border of two 4 km-high towns: clipped by their top and bottom
        // edges, which it must not reach (a neighbour there would get rounding slivers)
        let mut r = recipe(Spread::Equal, true);
        r.area_m2 = Some(30_000_000.0);
        let placed = place(&r, &TwoTowns).unwrap();
        let (m, w, e) = parts(&placed);
        let ys: Vec<f64> =
            m.0.iter()
                .flat_map(|p| p.exterior().0.iter().map(|c| c.y))
                .collect();
        let (lo, hi) = ys
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
        assert!(lo >= 0.99 && hi <= 4000.0 - 0.99, "{lo} {hi}");
        // ...and is clipped there (it would otherwise be far wider than 4 km)
        assert!(lo < 1.5 && hi > 4000.0 - 1.5, "{lo} {hi}");
        assert!(((w + e) - 3e7).abs() < 3e5, "{}", w + e);
    }

    #[test]
    fn recipes_without_the_new_options_read_as_before() {
        let r: Recipe = serde_json::from_value(serde_json::json!({
            "rule": "blob", "seed": "s", "proj": [106.0, 29.0],
            "groups": [{"text": "a", "codes": ["500111100"]}], "area_m2": 1.0}))
        .unwrap();
        assert_eq!(r.spread, Spread::Equal);
        assert!(!r.one_site);
        let back = serde_json::to_value(&r).unwrap();
        assert!(back.get("spread").is_none() && back.get("one_site").is_none());
    }
}
