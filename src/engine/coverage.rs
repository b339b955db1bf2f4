//! Coverage of an area by a layer: how many features meet it, how much of it they cover (their
//! union, so overlaps count once) on the ellipsoid, and sums of the plans' numeric attributes.

use geo::{Area, BooleanOps, Geometry, MultiLineString, MultiPolygon, Polygon, Rect};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use super::{membership, LayerIndex};
use crate::geom::{
    geodesic_area_m2, geodesic_length_m, polygons_of, union_area_within_measuring_m2, BoxRelation,
    PieceHint, PreparedArea,
};

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
    /// Candidates left out because they are unit-wide items of a unit above the area (a
    /// programme drawn as its whole town, asked about one of the town's villages; see
    /// [`membership::unit_wide_above`]).
    pub unit_wide_skipped: usize,
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
        || k.contains("approx")
        || k.ends_with("_percent"))
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
        ("_percent", "%"),
    ];
    table
        .iter()
        .find(|(suffix, _)| k.ends_with(suffix))
        .map(|(_, u)| *u)
}

pub(crate) fn lines_of(g: &Geometry<f64>) -> MultiLineString<f64> {
    match g {
        Geometry::LineString(l) => MultiLineString(vec![l.clone()]),
        Geometry::MultiLineString(ml) => ml.clone(),
        Geometry::GeometryCollection(gc) => {
            MultiLineString(gc.0.iter().flat_map(|g| lines_of(g).0).collect())
        }
        _ => MultiLineString(vec![]),
    }
}

fn has_lines(g: &Geometry<f64>) -> bool {
    match g {
        Geometry::LineString(_) => true,
        Geometry::MultiLineString(ml) => !ml.0.is_empty(),
        Geometry::GeometryCollection(gc) => gc.0.iter().any(has_lines),
        _ => false,
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

/// Hands `f` each of the geometry's polygons of positive area, by reference where it holds them
/// as polygons, copied from rectangles and triangles.
fn each_polygon<'a>(g: &'a Geometry<f64>, f: &mut impl FnMut(Cow<'a, Polygon<f64>>)) {
    match g {
        Geometry::Polygon(p) if p.unsigned_area() > 0.0 => f(Cow::Borrowed(p)),
        Geometry::MultiPolygon(mp) => {
            mp.0.iter()
                .filter(|p| p.unsigned_area() > 0.0)
                .for_each(|p| f(Cow::Borrowed(p)))
        }
        Geometry::Rect(_) | Geometry::Triangle(_) => polygons_of(g)
            .0
            .into_iter()
            .filter(|p| p.unsigned_area() > 0.0)
            .for_each(|p| f(Cow::Owned(p))),
        Geometry::GeometryCollection(gc) => gc.0.iter().for_each(|g| each_polygon(g, f)),
        _ => {}
    }
}

/// Whether a feature is pinned only to a whole district (`placement: "district"`): its polygon is
/// the district, so it says nothing about any town or village in it.
pub fn district_level(f: &crate::model::Feature) -> bool {
    f.properties.get("placement").and_then(Value::as_str) == Some("district")
}

/// The work was stopped by its cancellation check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the coverage computation was cancelled")]
pub struct Cancelled;

/// Computes a layer's coverage of an area. With `skip_district_level`, features placed only at
/// district level are left out (counted in `district_level_skipped`).
pub fn coverage(idx: &LayerIndex, area: &PreparedArea, skip_district_level: bool) -> LayerCoverage {
    coverage_cancellable(idx, area, skip_district_level, &|| false).unwrap_or_default()
}

/// [`coverage`], calling `cancelled` between pieces of the work (every 256 features, every few
/// grid rows and every ring of the union) and returning `Err(Cancelled)` soon after it returns
/// true.
///
/// The covered area is the union of the features' polygons restricted to the area, computed
/// without clipping any feature (see [`crate::geom::union_area_within_m2`]), so a feature that shares the
/// area's vertices adds exactly the area's own terms; it never exceeds the area's geodesic area
/// ([`PreparedArea::area_m2`]).
pub fn coverage_cancellable(
    idx: &LayerIndex,
    area: &PreparedArea,
    skip_district_level: bool,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<LayerCoverage, Cancelled> {
    coverage_of_unit(idx, area, None, skip_district_level, cancelled)
}

/// [`coverage_cancellable`] of the admin unit `unit` (its code), whose area `area` is: the
/// unit-wide items of a unit above it (a programme drawn as the whole town, asked about one of
/// its villages) are not in it, as in `/areas/{code}/features` and exports
/// ([`membership::unit_wide_above`]), and are counted in `unit_wide_skipped`.
pub fn coverage_of_unit(
    idx: &LayerIndex,
    area: &PreparedArea,
    unit: Option<&str>,
    skip_district_level: bool,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<LayerCoverage, Cancelled> {
    let mut out = LayerCoverage {
        layer: idx.layer.id.clone(),
        ..Default::default()
    };
    let Some(window) = area.bbox() else {
        return Ok(out);
    };
    let mut slots: Vec<(u32, Rect<f64>)> = idx.candidate_boxes(window).collect();
    slots.sort_unstable_by_key(|(slot, _)| *slot);
    // Features that may count, with their polygons (uncopied) in `pieces`.
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    let mut pieces: Vec<Cow<'_, Polygon<f64>>> = Vec::new();
    // The engine keeps features compact: decode the geometries of the candidates whose box meets
    // the area, once, up front (on a few threads when there are many: it precedes the union's
    // parallel work); their other fields are read from the compact form as needed.
    let decode = |chunk: &[(u32, Rect<f64>)]| {
        let mut decoded = Vec::with_capacity(chunk.len());
        for (n, &(slot, r)) in chunk.iter().enumerate() {
            if n % 256 == 255 && cancelled() {
                return Err(Cancelled);
            }
            let relation = area.relate_box(r);
            if relation == BoxRelation::Outside {
                continue;
            }
            if let Some(c) = idx.compact(slot) {
                if let Some(g) = c.geometry() {
                    decoded.push((relation, c, g));
                }
            }
        }
        Ok(decoded)
    };
    let decoded = in_order_on_threads(&slots, PARALLEL_DECODE, decode)?;
    for (n, (relation, f, g)) in decoded.iter().enumerate() {
        if n % 256 == 255 && cancelled() {
            return Err(Cancelled);
        }
        let relation = *relation;
        if skip_district_level && district_level_json(f.properties_json()) {
            if area.intersects(g) {
                out.district_level_skipped += 1;
            }
            continue;
        }
        if unit.is_some_and(|code| membership::unit_wide_above_json(f.properties_json(), code)) {
            out.unit_wide_skipped += 1;
            continue;
        }
        let first = pieces.len();
        if has_polygons(g) {
            each_polygon(g, &mut |p| pieces.push(p));
        }
        let polygons = first..pieces.len();
        let mut line_length_m = 0.0;
        if has_lines(g) {
            let lines = lines_of(g);
            line_length_m = match relation {
                BoxRelation::Inside => geodesic_length_m(&Geometry::MultiLineString(lines)),
                _ => area.length_inside_m(&lines),
            };
        }
        // A feature counts when it is in the area by the membership rule
        // (`super::membership`); for polygons across the boundary that is known after the union.
        let own_length_m = if line_length_m > 0.0 && relation != BoxRelation::Inside {
            geodesic_length_m(&Geometry::MultiLineString(lines_of(g)))
        } else {
            line_length_m
        };
        let line_member = membership::line_member(line_length_m, own_length_m);
        if !line_member {
            line_length_m = 0.0;
        }
        let sure = (relation == BoxRelation::Inside && !polygons.is_empty())
            || line_member
            || (!has_polygons(g)
                && !has_lines(g)
                && geo::CoordsIter::coords_iter(g).any(|c| area.contains_coord(c)));
        if !sure && polygons.is_empty() {
            continue;
        }
        out.line_length_m += line_length_m;
        candidates.push(Candidate {
            feature: f,
            polygons,
            sure,
            inside: relation == BoxRelation::Inside,
        });
    }
    // Only features across the boundary need their own overlap measured; those inside need no
    // test against the area.
    let mut hints = vec![PieceHint::default(); pieces.len()];
    for c in &candidates {
        let hint = PieceHint {
            measure: !c.sure,
            inside_area: c.inside,
        };
        hints[c.polygons.clone()].fill(hint);
    }
    let mut not_summed = std::collections::HashSet::new();
    let union = union_area_within_measuring_m2(&pieces, &|k| hints[k], &area.shape.0, cancelled)
        .ok_or(Cancelled)?;
    // Never more than the area, whatever the rounding.
    out.covered_m2 = union.area_m2.clamp(0.0, area.area_m2());
    for c in candidates {
        let meets = c.sure || {
            let inside: f64 = union.overlap_m2[c.polygons.clone()].iter().sum();
            let own = geodesic_area_m2(&Geometry::MultiPolygon(geo::MultiPolygon(
                pieces[c.polygons.clone()]
                    .iter()
                    .map(|p| p.clone().into_owned())
                    .collect(),
            )));
            membership::polygon_member(inside, own)
        };
        if !meets {
            continue;
        }
        out.features += 1;
        add_properties(c.feature.properties_json(), &mut out, &mut not_summed);
    }
    Ok(out)
}

/// Candidates from which their decoding is split between threads.
const PARALLEL_DECODE: usize = 2048;

/// `work` over `items` split into a few runs on their own threads (one run on the calling thread
/// below `min_items`), the runs' results concatenated in order: the same as `work(items)`.
fn in_order_on_threads<I: Sync, T: Send, E: Send>(
    items: &[I],
    min_items: usize,
    work: impl Fn(&[I]) -> Result<Vec<T>, E> + Sync,
) -> Result<Vec<T>, E> {
    let threads = if items.len() < min_items {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    if threads < 2 {
        return work(items);
    }
    let work = &work;
    let runs: Vec<Result<Vec<T>, E>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|run| scope.spawn(move || work(run)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for run in runs {
        out.extend(run?);
    }
    Ok(out)
}

/// [`district_level`] of a feature's properties as JSON text: parsed only when they name a
/// placement at all.
fn district_level_json(properties: &str) -> bool {
    properties.contains("\"placement\"")
        && serde_json::from_str::<serde_json::Map<String, Value>>(properties)
            .is_ok_and(|m| m.get("placement").and_then(Value::as_str) == Some("district"))
}

/// Adds a counted feature's numeric properties to the sums ([`summable`] ones) and notes
/// `approximate: true`, reading the properties' JSON text without building them: keys are
/// borrowed where they have no escapes, and nothing else is kept. `not_summed` remembers the
/// keys already refused.
fn add_properties(
    properties: &str,
    out: &mut LayerCoverage,
    not_summed: &mut std::collections::HashSet<String>,
) {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// A key, borrowed from the text where possible.
    struct Key<'de>(Cow<'de, str>);
    impl<'de> serde::Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a key")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                    Ok(Key(Cow::Owned(v.to_string())))
                }
            }
            d.deserialize_str(V)
        }
    }

    /// A value as coverage sees it: a number, `true`, or anything else (skipped).
    enum Scalar {
        Number(f64),
        True,
        Other,
    }
    impl<'de> serde::Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Scalar;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                    Ok(if v { Scalar::True } else { Scalar::Other })
                }
                fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar::Number(v as f64))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar::Number(v as f64))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar::Number(v))
                }
                fn visit_str<E>(self, _: &str) -> Result<Scalar, E> {
                    Ok(Scalar::Other)
                }
                fn visit_unit<E>(self) -> Result<Scalar, E> {
                    Ok(Scalar::Other)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
                    while a.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Scalar::Other)
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
                    while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Scalar::Other)
                }
            }
            d.deserialize_any(V)
        }
    }

    struct Scan<'a> {
        out: &'a mut LayerCoverage,
        not_summed: &'a mut std::collections::HashSet<String>,
    }
    impl<'de> DeserializeSeed<'de> for Scan<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Scan<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
            while let Some(Key(k)) = a.next_key::<Key<'de>>()? {
                match a.next_value::<Scalar>()? {
                    Scalar::True if k == "approximate" => self.out.approximate_inputs = true,
                    Scalar::Number(n) => {
                        if let Some(sum) = self.out.sums.get_mut(k.as_ref()) {
                            *sum += n;
                        } else if !self.not_summed.contains(k.as_ref()) {
                            if summable(&k) {
                                self.out.sums.insert(k.into_owned(), n);
                            } else {
                                self.not_summed.insert(k.into_owned());
                            }
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }

    // Kept only as checked JSON objects (`compact::validate`): a failure leaves the sums as read.
    let mut d = serde_json::Deserializer::from_str(properties);
    let _ = Scan { out, not_summed }.deserialize(&mut d);
}

/// A feature that meets the area's box, and its polygons' places in the union's input.
struct Candidate<'a> {
    feature: &'a super::compact::Compact,
    polygons: Range<usize>,
    /// Known to have a positive part inside (wholly inside, or lines or points inside).
    sure: bool,
    /// Its box lies inside the area.
    inside: bool,
}

/// A prepared area for the part of `unit` inside `clip` (a child unit cut by a drawn polygon).
pub fn intersect_areas(unit: &MultiPolygon<f64>, clip: &MultiPolygon<f64>) -> PreparedArea {
    PreparedArea::new(unit.intersection(clip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Feature, Layer};
    use geo::{coord, Coord, LineString, Rect};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

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
        let chords = rect_m2(105.01, 29.01, 105.04, 29.03) + rect_m2(105.09, 29.05, 105.1, 29.07);
        assert!(((c.covered_m2 - chords) / chords).abs() < 1e-5);
        // Exactly, the rectangles' geodesic edges cut one another and the area's: an overlay of
        // the squares densified along their geodesics.
        let squares: Vec<Polygon<f64>> = [(105.01, 29.01), (105.02, 29.01), (105.09, 29.05)]
            .iter()
            .map(|&(x, y)| Rect::new(coord! {x: x, y: y}, coord! {x: x + 0.02, y: y + 0.02}))
            .map(|r| r.to_polygon())
            .collect();
        let expected = crate::geom::overlay_union_within_m2(&squares, &area.shape.0[0]);
        assert!(
            ((c.covered_m2 - expected) / expected).abs() < 1e-8,
            "{} vs {expected}",
            c.covered_m2
        );
    }

    /// A jittered grid of `nx` × `ny` cells from (x0, y0), `cell` degrees, whose neighbours
    /// share their vertices bit for bit; each edge is cut into `steps` pieces at points computed
    /// the same way from both sides (so short edges, as real boundaries have, when `steps` is
    /// large).
    struct Tiling {
        corners: Vec<Vec<Coord<f64>>>,
        steps: usize,
    }

    impl Tiling {
        fn new(x0: f64, y0: f64, cell: f64, nx: usize, ny: usize, steps: usize, seed: u64) -> Self {
            let mut rng = SmallRng::seed_from_u64(seed);
            let corners = (0..=nx)
                .map(|i| {
                    (0..=ny)
                        .map(|j| {
                            let inner = i > 0 && i < nx && j > 0 && j < ny;
                            let jitter = |rng: &mut SmallRng| {
                                if inner {
                                    rng.gen_range(-0.3..0.3) * cell
                                } else {
                                    0.0
                                }
                            };
                            coord! {x: x0 + i as f64 * cell + jitter(&mut rng), y: y0 + j as f64 * cell + jitter(&mut rng)}
                        })
                        .collect()
                })
                .collect();
            Tiling { corners, steps }
        }

        /// The points of the edge between corners p and q, p included, q not, computed from
        /// the lesser corner so that both neighbours get the same bits.
        fn edge(&self, p: (usize, usize), q: (usize, usize), out: &mut Vec<Coord<f64>>) {
            let (lo, hi, flip) = if p < q { (p, q, false) } else { (q, p, true) };
            let (a, b) = (self.corners[lo.0][lo.1], self.corners[hi.0][hi.1]);
            let mut pts: Vec<Coord<f64>> = (0..=self.steps)
                .map(|k| {
                    let t = k as f64 / self.steps as f64;
                    coord! {x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y)}
                })
                .collect();
            if flip {
                pts.reverse();
            }
            out.extend_from_slice(&pts[..pts.len() - 1]);
        }

        /// The ring around cells i0..i1 × j0..j1, counter-clockwise.
        fn block(&self, i0: usize, i1: usize, j0: usize, j1: usize) -> Polygon<f64> {
            let mut walk = Vec::new();
            walk.extend((i0..i1).map(|i| ((i, j0), (i + 1, j0))));
            walk.extend((j0..j1).map(|j| ((i1, j), (i1, j + 1))));
            walk.extend((i0..i1).rev().map(|i| ((i + 1, j1), (i, j1))));
            walk.extend((j0..j1).rev().map(|j| ((i0, j + 1), (i0, j))));
            let mut ring = Vec::new();
            for (p, q) in walk {
                self.edge(p, q, &mut ring);
            }
            ring.push(ring[0]);
            Polygon::new(LineString(ring), vec![])
        }

        fn cells(&self) -> Vec<Polygon<f64>> {
            let (nx, ny) = (self.corners.len() - 1, self.corners[0].len() - 1);
            (0..nx)
                .flat_map(|i| (0..ny).map(move |j| (i, j)))
                .map(|(i, j)| self.block(i, i + 1, j, j + 1))
                .collect()
        }
    }

    fn layer_of(polys: &[Polygon<f64>]) -> LayerIndex {
        let feats = polys
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let mut f = Feature::from_parts(
                    "t",
                    k.to_string(),
                    serde_json::Map::new(),
                    Some(Geometry::Polygon(p.clone())),
                );
                f.id = k.to_string();
                f
            })
            .collect();
        LayerIndex::build(Layer::untitled("t"), 1, feats)
    }

    fn area_of(p: &Polygon<f64>) -> PreparedArea {
        PreparedArea::new(MultiPolygon(vec![p.clone()]))
    }

    fn relative(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn a_feature_identical_to_a_town_inside_its_district_covers_exactly_the_town() {
        // Issue 10, item 10: towns tiling a district, with long edges (0.02°) and with short
        // ones (the same cut into 50 pieces). A feature identical to a town, measured in the
        // district, covers the town's geodesic area; so does the towns layer in each town,
        // and in the district the district's.
        for steps in [1, 50] {
            let tiling = Tiling::new(105.7, 29.4, 0.02, 4, 3, steps, 7);
            let towns = tiling.cells();
            let district = area_of(&tiling.block(0, 4, 0, 3));
            for town in &towns {
                let own = geodesic_area_m2(&Geometry::Polygon(town.clone()));
                let c = coverage(&layer_of(std::slice::from_ref(town)), &district, false);
                assert_eq!(c.features, 1);
                assert!(
                    relative(c.covered_m2, own) < 1e-9,
                    "{steps}: {} vs {own}",
                    c.covered_m2
                );
                let c = coverage(&layer_of(&towns), &area_of(town), false);
                assert_eq!(c.features, 1, "neighbours only touch the town");
                assert!(
                    relative(c.covered_m2, own) < 1e-9,
                    "{steps}: {} vs {own}",
                    c.covered_m2
                );
            }
            let c = coverage(&layer_of(&towns), &district, false);
            assert_eq!(c.features, towns.len());
            let whole = district.area_m2();
            assert!(
                relative(c.covered_m2, whole) < 1e-9,
                "{} vs {whole}",
                c.covered_m2
            );
            let sum: f64 = towns
                .iter()
                .map(|t| geodesic_area_m2(&Geometry::Polygon(t.clone())))
                .sum();
            assert!(relative(sum, whole) < 1e-9, "the towns tile the district");
        }
    }

    #[test]
    fn near_duplicate_features_count_once() {
        // The same town three times (as a layer may hold a project and its copies), and once
        // more with its ring starting elsewhere and wound the other way.
        let tiling = Tiling::new(105.7, 29.4, 0.02, 3, 3, 20, 9);
        let towns = tiling.cells();
        let town = towns[4].clone();
        let mut other = town.clone();
        other.exterior_mut(|r| {
            r.0.pop();
            r.0.rotate_left(7);
            r.0.reverse();
            let first = r.0[0];
            r.0.push(first);
        });
        let own = geodesic_area_m2(&Geometry::Polygon(town.clone()));
        let district = area_of(&tiling.block(0, 3, 0, 3));
        let layer = layer_of(&[town.clone(), town.clone(), town.clone(), other]);
        let c = coverage(&layer, &district, false);
        assert!(
            relative(c.covered_m2, own) < 1e-9,
            "{} vs {own}",
            c.covered_m2
        );
        let c = coverage(&layer, &area_of(&town), false);
        assert!(
            relative(c.covered_m2, own) < 1e-9,
            "{} vs {own}",
            c.covered_m2
        );
    }

    /// A random star-shaped polygon of `n` vertices around (cx, cy).
    fn random_star(rng: &mut SmallRng, cx: f64, cy: f64, r: f64, n: usize) -> Polygon<f64> {
        let mut ring: Vec<Coord<f64>> = (0..n)
            .map(|k| {
                let a = k as f64 / n as f64 * std::f64::consts::TAU;
                let rr = r * rng.gen_range(0.3..1.0);
                coord! {x: cx + rr * a.cos(), y: cy + rr * a.sin()}
            })
            .collect();
        ring.push(ring[0]);
        Polygon::new(LineString(ring), vec![])
    }

    #[test]
    fn random_tilings_cover_random_polygons_exactly() {
        // Tiles with shared edges, long or cut short, under random polygons with long or short
        // edges: the tiles cover each polygon's whole geodesic area, never more.
        let mut rng = SmallRng::seed_from_u64(3);
        for round in 0..12 {
            let steps = [1, 8, 40][round % 3];
            let tiling = Tiling::new(106.0, 29.0, 0.01, 8, 8, steps, round as u64);
            let layer = layer_of(&tiling.cells());
            let n = [7, 40, 400][round / 4 % 3];
            let (cx, cy) = (
                106.04 + rng.gen_range(-0.01..0.01),
                29.04 + rng.gen_range(-0.01..0.01),
            );
            let r = rng.gen_range(0.005..0.03);
            let poly = random_star(&mut rng, cx, cy, r, n);
            let area = area_of(&poly);
            let c = coverage(&layer, &area, false);
            let whole = geodesic_area_m2(&Geometry::Polygon(poly.clone()));
            assert!(c.covered_m2 <= area.area_m2());
            assert!(
                relative(c.covered_m2, whole) < 1e-9,
                "round {round}: {} vs {whole}: {:e}",
                c.covered_m2,
                relative(c.covered_m2, whole)
            );
        }
    }

    #[test]
    fn cancelled_coverage_stops() {
        let tiling = Tiling::new(106.0, 29.0, 0.01, 4, 4, 1, 1);
        let layer = layer_of(&tiling.cells());
        let area = area_of(&tiling.block(0, 4, 0, 4));
        assert_eq!(
            coverage_cancellable(&layer, &area, false, &|| true),
            Err(Cancelled)
        );
        let c = coverage_cancellable(&layer, &area, false, &|| false).unwrap();
        assert_eq!(c, coverage(&layer, &area, false));
    }

    #[test]
    fn lines_are_measured_inside_without_clipping() {
        let area = area_of(
            &Rect::new(coord! {x: 106.0, y: 29.0}, coord! {x: 106.01, y: 29.01}).to_polygon(),
        );
        // Crosses the square from west to east and leaves: the inside part is 0.01° of the
        // parallel 29.005° (a geodesic from edge to edge).
        let line = MultiLineString(vec![LineString::from(vec![
            (105.99, 29.005),
            (106.02, 29.005),
        ])]);
        let inside = area.length_inside_m(&line);
        let expected = geodesic_length_m(&Geometry::LineString(LineString::from(vec![
            (106.0, 29.005),
            (106.01, 29.005),
        ])));
        assert!((inside - expected).abs() < 1e-6, "{inside} vs {expected}");
    }

    /// The sums read from the properties' text are those of the decoded properties.
    #[test]
    fn sums_read_from_text_match_the_decoded_properties() {
        let texts = [
            r#"{"area_mu": 12.5, "target_year": 2025, "name\u0041": 3, "approximate": true}"#,
            r#"{"area_mu": 7, "nested": {"area_mu": 100, "x": [1, 2, {"y": 3}]}, "list": [4.5], "households": 1e3}"#,
            r#"{"area_mu": "12", "approximate": false, "admin_code": 500111, "invest_wan_yuan": -2.25, "n": null}"#,
            r#"{}"#,
        ];
        let mut fast = LayerCoverage::default();
        let mut not_summed = std::collections::HashSet::new();
        let mut slow = LayerCoverage::default();
        for t in texts {
            add_properties(t, &mut fast, &mut not_summed);
            let m: serde_json::Map<String, Value> = serde_json::from_str(t).unwrap();
            if m.get("approximate") == Some(&Value::Bool(true)) {
                slow.approximate_inputs = true;
            }
            for (k, v) in &m {
                if let Some(n) = v.as_f64() {
                    if summable(k) {
                        *slow.sums.entry(k.clone()).or_insert(0.0) += n;
                    }
                }
            }
        }
        assert_eq!(fast.sums, slow.sums);
        assert_eq!(fast.sums["area_mu"], 19.5);
        assert_eq!(fast.sums["nameA"], 3.0);
        assert!(fast.approximate_inputs);
        assert!(!fast.sums.contains_key("target_year"));
        assert!(district_level_json(r#"{"placement": "district", "a": 1}"#));
        assert!(!district_level_json(r#"{"placement": "town"}"#));
        assert!(!district_level_json(r#"{"note": "district"}"#));
    }

    #[test]
    fn units_from_names() {
        assert_eq!(unit_of("area_mu"), Some("亩"));
        assert_eq!(unit_of("investment_wan_yuan"), Some("万元"));
        assert_eq!(unit_of("households"), Some("户"));
        assert_eq!(unit_of("misc"), None);
    }
}
