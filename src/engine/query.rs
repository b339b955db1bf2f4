use geo::{Contains, Coord, Distance, Geometry, HaversineClosestPoint, Intersects, Point, Rect};
use serde_json::Value;
use std::cmp::Ordering;
use std::sync::Arc;

use super::budget::{Budget, Stop};
use super::filter::Filter;
use super::LayerIndex;
use crate::model::Feature;

/// A property test: `?name=龙水镇` in the API.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyFilter {
    /// The property equals the text: strings exactly, numbers numerically, booleans as
    /// `true`/`false`; an array matches when one of its elements does.
    Equals { key: String, value: String },
}

impl PropertyFilter {
    pub fn key(&self) -> &str {
        match self {
            PropertyFilter::Equals { key, .. } => key,
        }
    }

    pub fn matches(&self, f: &Feature) -> bool {
        match self {
            PropertyFilter::Equals { key, value } => match key.as_str() {
                "name" => f.name.as_deref() == Some(value.as_str()),
                "admin_code" => f.admin_code.as_deref() == Some(value.as_str()),
                _ => f
                    .properties
                    .get(key)
                    .is_some_and(|v| value_equals(v, value)),
            },
        }
    }
}

fn value_equals(v: &Value, text: &str) -> bool {
    match v {
        Value::String(s) => s == text,
        Value::Number(n) => match (n.as_f64(), text.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Bool(b) => text == if *b { "true" } else { "false" },
        Value::Array(items) => items.iter().any(|i| !i.is_array() && value_equals(i, text)),
        Value::Null | Value::Object(_) => false,
    }
}

/// One key of `sortby`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub key: String,
    pub descending: bool,
}

/// `near=lon,lat&distance=m`: features within a geodesic distance, nearest first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub point: Coord<f64>,
    pub metres: f64,
}

impl Near {
    /// A lon/lat box that holds every point within the distance (generously).
    pub fn window(&self) -> Rect<f64> {
        let dlat = self.metres / 110_000.0 * 1.01;
        let cos = self.point.y.to_radians().cos().max(0.01);
        let dlon = self.metres / (111_320.0 * cos) * 1.01;
        Rect::new(
            Coord {
                x: self.point.x - dlon,
                y: self.point.y - dlat,
            },
            Coord {
                x: self.point.x + dlon,
                y: self.point.y + dlat,
            },
        )
    }

    /// Geodesic distance in metres from the point to the nearest part of `g` (0 inside polygons).
    pub fn distance(&self, g: &Geometry<f64>) -> Option<f64> {
        let p = Point(self.point);
        if g.contains(&p) {
            return Some(0.0);
        }
        let nearest = match g.haversine_closest_point(&p) {
            geo::Closest::Intersection(_) => return Some(0.0),
            geo::Closest::SinglePoint(q) => q,
            geo::Closest::Indeterminate => return None,
        };
        Some(geo::Geodesic.distance(p, nearest))
    }
}

/// What a reader asks of one layer.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Features whose geometry intersects this box (CGCS2000 lon/lat).
    pub bbox: Option<Rect<f64>>,
    pub filters: Vec<PropertyFilter>,
    /// A CQL2 filter or a spatial shortcut, compiled.
    pub filter: Option<Filter>,
    pub near: Option<Near>,
    pub sort: Vec<SortKey>,
    pub offset: usize,
    pub limit: usize,
}

/// One page of answers, in the layer's stable order (or the asked sort), and how many match.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub features: Vec<Arc<Feature>>,
    /// Geodesic distances of the page's features, for `near` queries.
    pub distances: Option<Vec<f64>>,
    pub matched: usize,
}

fn intersect(a: Rect<f64>, b: Rect<f64>) -> Option<Rect<f64>> {
    let min = Coord {
        x: a.min().x.max(b.min().x),
        y: a.min().y.max(b.min().y),
    };
    let max = Coord {
        x: a.max().x.min(b.max().x),
        y: a.max().y.min(b.max().y),
    };
    (min.x <= max.x && min.y <= max.y).then(|| Rect::new(min, max))
}

fn sort_value(f: &Feature, key: &str) -> Option<Value> {
    match key {
        "id" => Some(Value::String(f.id.clone())),
        _ => f.property(key).filter(|v| !v.is_null()),
    }
}

/// Numbers before text, missing values last.
fn cmp_values(a: &Option<Value>, b: &Option<Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => x.cmp(y),
                _ => a.to_string().cmp(&b.to_string()),
            },
        },
    }
}

impl LayerIndex {
    /// Runs a query: R-tree candidates (from bbox, filter and near windows), then exact geometry
    /// tests, then property filters, then sort and page. Without a sort the order is insertion
    /// order, so paging is stable between requests.
    pub fn query(&self, q: &Query) -> QueryResult {
        self.query_within(q, &Budget::unlimited())
            .unwrap_or_else(|_| QueryResult {
                features: vec![],
                distances: None,
                matched: 0,
            })
    }

    /// [`LayerIndex::query`] that stops when `budget` runs out (checked every few hundred
    /// candidates).
    pub fn query_within(&self, q: &Query, budget: &Budget) -> Result<QueryResult, Stop> {
        let hint = q.filter.as_ref().and_then(Filter::bbox_hint);
        let windows = [q.bbox, hint, q.near.map(|n| n.window())];
        let mut window: Option<Rect<f64>> = None;
        for w in windows.into_iter().flatten() {
            window = match window {
                None => Some(w),
                Some(prev) => match intersect(prev, w) {
                    Some(r) => Some(r),
                    None => {
                        return Ok(QueryResult {
                            features: vec![],
                            distances: None,
                            matched: 0,
                        })
                    }
                },
            };
        }
        let keep = |f: &Feature| {
            q.filters.iter().all(|p| p.matches(f))
                && q.filter.as_ref().is_none_or(|flt| flt.matches(f))
        };
        let passes_bbox = |f: &Feature, inside: bool| match q.bbox {
            None => true,
            Some(r) => inside || f.geometry.as_ref().is_some_and(|g| g.intersects(&r)),
        };

        let needs_all = !q.sort.is_empty() || q.near.is_some();
        let mut page = Vec::with_capacity(q.limit.min(1024));
        let mut all: Vec<(Arc<Feature>, f64)> = Vec::new();
        let mut matched = 0usize;
        let mut take = |f: &Arc<Feature>| {
            let mut dist = 0.0;
            if let Some(n) = &q.near {
                match f.geometry.as_ref().and_then(|g| n.distance(g)) {
                    Some(d) if d <= n.metres => dist = d,
                    _ => return,
                }
            }
            if needs_all {
                all.push((Arc::clone(f), dist));
            } else if matched >= q.offset && page.len() < q.limit {
                page.push(Arc::clone(f));
            }
            matched += 1;
        };
        // Without filters and sorting only a page of features is decoded; the rest are tested
        // on their geometry alone (when their box is not inside the bbox).
        let plain = q.filters.is_empty() && q.filter.is_none() && q.near.is_none() && !needs_all;
        match window {
            Some(r) if plain && q.bbox == Some(r) => {
                let (slots, n) = self.bbox_page(r, q.offset, q.limit, budget)?;
                page.extend(slots.into_iter().filter_map(|s| self.slot(s)));
                matched = n;
            }
            Some(r) => {
                let mut slots: Vec<(u32, bool)> = self.candidates(r).collect();
                slots.sort_unstable();
                // "inside" is about the combined window; it proves the bbox test only when the
                // window is the bbox itself.
                let window_is_bbox = q.bbox == Some(r);
                for (i, (slot, inside)) in slots.into_iter().enumerate() {
                    budget.check_every(i)?;
                    let Some(f) = self.slot(slot) else { continue };
                    if passes_bbox(&f, inside && window_is_bbox) && keep(&f) {
                        take(&f);
                    }
                }
            }
            None if q.filters.is_empty() && q.filter.is_none() && !needs_all => {
                // Everything matches: count without visiting, then walk only to the page.
                matched = self.len();
                page.extend(self.iter().skip(q.offset).take(q.limit).map(|(_, f)| f));
            }
            None => {
                for (i, (_, f)) in self.iter().enumerate() {
                    budget.check_every(i)?;
                    if keep(&f) {
                        take(&f);
                    }
                }
            }
        }
        if !needs_all {
            return Ok(QueryResult {
                features: page,
                distances: None,
                matched,
            });
        }
        if q.near.is_some() && q.sort.is_empty() {
            all.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal));
        } else {
            all.sort_by(|(a, da), (b, db)| {
                for k in &q.sort {
                    let o = cmp_values(&sort_value(a, &k.key), &sort_value(b, &k.key));
                    let o = if k.descending { o.reverse() } else { o };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                da.partial_cmp(db).unwrap_or(Ordering::Equal)
            });
        }
        let chosen: Vec<(Arc<Feature>, f64)> =
            all.into_iter().skip(q.offset).take(q.limit).collect();
        let distances = q.near.map(|_| chosen.iter().map(|(_, d)| *d).collect());
        Ok(QueryResult {
            features: chosen.into_iter().map(|(f, _)| f).collect(),
            distances,
            matched,
        })
    }
}

/// A page of a plain query as slots of the layer, for encoders that read the compact features.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlotPage {
    pub slots: Vec<u32>,
    pub matched: usize,
}

impl LayerIndex {
    /// The page of a query with at most a bbox (no filter, distance or sort) as slots, or
    /// `None` for any other query; the same features in the same order as
    /// [`LayerIndex::query_within`] finds.
    pub(crate) fn plain_page(&self, q: &Query, budget: &Budget) -> Result<Option<SlotPage>, Stop> {
        if !(q.filters.is_empty() && q.filter.is_none() && q.near.is_none() && q.sort.is_empty()) {
            return Ok(None);
        }
        Ok(Some(match q.bbox {
            Some(r) => {
                let (slots, matched) = self.bbox_page(r, q.offset, q.limit, budget)?;
                SlotPage { slots, matched }
            }
            None => SlotPage {
                slots: self
                    .compact_iter()
                    .skip(q.offset)
                    .take(q.limit)
                    .map(|(slot, _)| slot)
                    .collect(),
                matched: self.len(),
            },
        }))
    }

    /// Slots of a page of the features that intersect `r`, in layer order, and how many do.
    /// Only boxes that reach out of `r` need a test of the geometry, read in place.
    fn bbox_page(
        &self,
        r: Rect<f64>,
        offset: usize,
        limit: usize,
        budget: &Budget,
    ) -> Result<(Vec<u32>, usize), Stop> {
        let mut slots: Vec<(u32, bool)> = self.candidates(r).collect();
        slots.sort_unstable();
        let mut page = Vec::with_capacity(limit.min(1024));
        let mut matched = 0usize;
        for (i, (slot, inside)) in slots.into_iter().enumerate() {
            budget.check_every(i)?;
            let hit = inside || self.compact(slot).is_some_and(|c| c.intersects_rect(r));
            if !hit {
                continue;
            }
            if matched >= offset && page.len() < limit {
                page.push(slot);
            }
            matched += 1;
        }
        Ok((page, matched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::filter::{parse, FilterLang};
    use crate::model::{Feature, Layer};
    use geo::{coord, line_string, point, polygon, Geometry};

    fn feature(id: &str, g: Geometry<f64>, props: serde_json::Value) -> Feature {
        let serde_json::Value::Object(map) = props else {
            panic!()
        };
        Feature::from_parts("t", id.to_string(), map, Some(g))
    }

    fn index() -> LayerIndex {
        let tri = polygon![(x: 0., y: 0.), (x: 10., y: 0.), (x: 0., y: 10.), (x: 0., y: 0.)];
        LayerIndex::build(
            Layer::untitled("t"),
            1,
            vec![
                feature(
                    "a",
                    Geometry::Polygon(tri),
                    serde_json::json!({"name": "三角", "n": 3}),
                ),
                feature(
                    "b",
                    Geometry::Point(point!(x: 8., y: 8.)),
                    serde_json::json!({"name": "点", "n": 3.0, "tags": ["x", "y"]}),
                ),
                feature(
                    "c",
                    Geometry::Point(point!(x: 20., y: 20.)),
                    serde_json::json!({"name": "远", "flag": true, "n": 1}),
                ),
            ],
        )
    }

    fn ids(r: &QueryResult) -> Vec<&str> {
        r.features.iter().map(|f| f.id.as_str()).collect()
    }

    #[test]
    fn bbox_uses_exact_geometry_not_just_boxes() {
        let idx = index();
        // The box (7,7)-(9,9) is inside the triangle's bounding box but outside the triangle.
        let r = Rect::new(coord! {x: 7., y: 7.}, coord! {x: 9., y: 9.});
        let res = idx.query(&Query {
            bbox: Some(r),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(ids(&res), vec!["b"]);
        let r = Rect::new(coord! {x: 1., y: 1.}, coord! {x: 9., y: 9.});
        let res = idx.query(&Query {
            bbox: Some(r),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(ids(&res), vec!["a", "b"]);
    }

    #[test]
    fn plain_pages_as_slots_hold_what_the_exact_test_finds() {
        // Rotated squares and segments on a grid: many boxes reach out of a query box while
        // their geometry does not meet it, some meet it without a vertex inside.
        let mut feats = Vec::new();
        for i in 0..30 {
            for j in 0..30 {
                let (cx, cy) = (i as f64, j as f64);
                let g = match (i + j) % 3 {
                    0 => Geometry::Polygon(polygon![
                        (x: cx, y: cy - 0.7), (x: cx + 0.7, y: cy), (x: cx, y: cy + 0.7),
                        (x: cx - 0.7, y: cy), (x: cx, y: cy - 0.7)]),
                    1 => Geometry::LineString(line_string![
                        (x: cx - 0.9, y: cy - 0.9), (x: cx + 0.9, y: cy + 0.9)]),
                    _ => Geometry::Point(point!(x: cx + 0.3, y: cy)),
                };
                feats.push(feature(&format!("{i}-{j}"), g, serde_json::json!({})));
            }
        }
        let all: Vec<(String, Geometry<f64>)> = feats
            .iter()
            .map(|f| (f.id.clone(), f.geometry.clone().unwrap()))
            .collect();
        let idx = LayerIndex::build(Layer::untitled("t"), 1, feats);
        let budget = Budget::unlimited();
        for (k, (x, y, w)) in [
            (3.1, 4.2, 2.3),
            (0.55, 0.55, 0.3),
            (10.0, 10.0, 5.0),
            (-5.0, -5.0, 2.0),
        ]
        .into_iter()
        .enumerate()
        {
            let r = Rect::new(coord! {x: x, y: y}, coord! {x: x + w, y: y + w * 0.7});
            let want: Vec<&str> = all
                .iter()
                .filter(|(_, g)| g.intersects(&r))
                .map(|(id, _)| id.as_str())
                .collect();
            for (offset, limit) in [(0, 1000), (1, 3), (0, 0), (5, 10)] {
                let q = Query {
                    bbox: Some(r),
                    offset,
                    limit,
                    ..Default::default()
                };
                let page = idx.plain_page(&q, &budget).unwrap().unwrap();
                let got: Vec<&str> = page
                    .slots
                    .iter()
                    .map(|&s| idx.compact(s).unwrap().id())
                    .collect();
                let expected: Vec<&str> = want.iter().copied().skip(offset).take(limit).collect();
                assert_eq!((got, page.matched), (expected, want.len()), "box {k}");
                assert_eq!(
                    ids(&idx.query(&q)),
                    want.iter()
                        .copied()
                        .skip(offset)
                        .take(limit)
                        .collect::<Vec<_>>()
                );
            }
        }
        let q = Query {
            offset: 899,
            limit: 5,
            ..Default::default()
        };
        let page = idx.plain_page(&q, &budget).unwrap().unwrap();
        assert_eq!((page.slots, page.matched), (vec![899], 900));
        let q = Query {
            sort: vec![SortKey {
                key: "id".into(),
                descending: false,
            }],
            ..Default::default()
        };
        assert_eq!(idx.plain_page(&q, &budget).unwrap(), None);
    }

    #[test]
    fn filters_sort_and_page() {
        let idx = index();
        let eq = |k: &str, v: &str| PropertyFilter::Equals {
            key: k.into(),
            value: v.into(),
        };
        let q = |filters, offset, limit| Query {
            filters,
            offset,
            limit,
            ..Default::default()
        };
        assert_eq!(
            ids(&idx.query(&q(vec![eq("n", "3")], 0, 10))),
            vec!["a", "b"]
        );
        assert_eq!(ids(&idx.query(&q(vec![eq("tags", "y")], 0, 10))), vec!["b"]);
        assert_eq!(
            ids(&idx.query(&q(vec![eq("flag", "true")], 0, 10))),
            vec!["c"]
        );
        assert_eq!(
            ids(&idx.query(&q(vec![eq("name", "远")], 0, 10))),
            vec!["c"]
        );
        let page = idx.query(&q(vec![], 1, 1));
        assert_eq!((ids(&page), page.matched), (vec!["b"], 3));
        let page = idx.query(&q(vec![eq("n", "3")], 1, 5));
        assert_eq!((ids(&page), page.matched), (vec!["b"], 2));
        let sorted = idx.query(&Query {
            sort: vec![
                SortKey {
                    key: "n".into(),
                    descending: false,
                },
                SortKey {
                    key: "name".into(),
                    descending: true,
                },
            ],
            limit: 10,
            ..Default::default()
        });
        assert_eq!(ids(&sorted), vec!["c", "b", "a"]);
        let f = parse(
            "n >= 3 AND S_INTERSECTS(geometry, BBOX(6, 6, 9, 9))",
            FilterLang::Cql2Text,
            &|_| true,
        )
        .unwrap();
        let res = idx.query(&Query {
            filter: Some(f),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(ids(&res), vec!["b"]);
    }

    #[test]
    fn near_orders_by_geodesic_distance() {
        let idx = LayerIndex::build(
            Layer::untitled("t"),
            1,
            vec![
                feature(
                    "far",
                    Geometry::Point(point!(x: 105.02, y: 29.0)),
                    serde_json::json!({}),
                ),
                feature(
                    "near",
                    Geometry::Point(point!(x: 105.001, y: 29.0)),
                    serde_json::json!({}),
                ),
                feature(
                    "out",
                    Geometry::Point(point!(x: 105.1, y: 29.0)),
                    serde_json::json!({}),
                ),
            ],
        );
        let res = idx.query(&Query {
            near: Some(Near {
                point: coord! {x: 105.0, y: 29.0},
                metres: 3000.0,
            }),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(ids(&res), vec!["near", "far"]);
        let d = res.distances.unwrap();
        // 0.001° of longitude at 29°N on WGS84: 97.4 m.
        assert!((d[0] - 97.43).abs() < 0.1, "{d:?}");
        assert_eq!(res.matched, 2);
    }

    #[test]
    fn upsert_and_delete_update_the_index() {
        let mut idx = index();
        let r = Rect::new(coord! {x: 19., y: 19.}, coord! {x: 21., y: 21.});
        let q = Query {
            bbox: Some(r),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(ids(&idx.query(&q)), vec!["c"]);
        idx.upsert(feature(
            "c",
            Geometry::Point(point!(x: 50., y: 50.)),
            serde_json::json!({}),
        ));
        assert!(idx.query(&q).features.is_empty());
        idx.upsert(feature(
            "d",
            Geometry::Point(point!(x: 20., y: 20.)),
            serde_json::json!({}),
        ));
        assert_eq!(ids(&idx.query(&q)), vec!["d"]);
        assert!(idx.delete("d"));
        assert!(!idx.delete("d"));
        assert!(idx.query(&q).features.is_empty());
        assert_eq!(idx.len(), 3);
    }
}
