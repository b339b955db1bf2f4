use geo::{Intersects, Rect};
use serde_json::Value;
use std::sync::Arc;

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

/// What a reader asks of one layer.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Features whose geometry intersects this box (CGCS2000 lon/lat).
    pub bbox: Option<Rect<f64>>,
    pub filters: Vec<PropertyFilter>,
    pub offset: usize,
    pub limit: usize,
}

/// One page of answers, in the layer's stable order, and how many match in all.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub features: Vec<Arc<Feature>>,
    pub matched: usize,
}

impl LayerIndex {
    /// Runs a query: R-tree candidates, then the exact geometry test, then property filters,
    /// then the page. Order is insertion order, so paging is stable between requests.
    pub fn query(&self, q: &Query) -> QueryResult {
        let keep = |f: &Feature| q.filters.iter().all(|p| p.matches(f));
        let mut page = Vec::with_capacity(q.limit.min(1024));
        let mut matched = 0usize;
        let mut take = |f: &Arc<Feature>| {
            if matched >= q.offset && page.len() < q.limit {
                page.push(Arc::clone(f));
            }
            matched += 1;
        };
        match q.bbox {
            Some(r) => {
                let mut slots: Vec<(u32, bool)> = self.candidates(r).collect();
                slots.sort_unstable();
                for (slot, inside) in slots {
                    let Some(f) = self.slot(slot) else { continue };
                    let hit = inside || f.geometry.as_ref().is_some_and(|g| g.intersects(&r));
                    if hit && keep(f) {
                        take(f);
                    }
                }
            }
            None if q.filters.is_empty() => {
                // Everything matches: count without visiting, then walk only to the page.
                matched = self.len();
                page.extend(
                    self.iter()
                        .skip(q.offset)
                        .take(q.limit)
                        .map(|(_, f)| Arc::clone(f)),
                );
            }
            None => {
                for (_, f) in self.iter() {
                    if keep(f) {
                        take(f);
                    }
                }
            }
        }
        QueryResult {
            features: page,
            matched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Feature, Layer};
    use geo::{coord, point, polygon, Geometry};

    fn feature(id: &str, g: Geometry<f64>, props: serde_json::Value) -> Feature {
        let serde_json::Value::Object(map) = props else {
            panic!()
        };
        let mut f = Feature::from_parts("t", id.to_string(), map, Some(g));
        f.id = id.to_string();
        f
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
                    serde_json::json!({"name": "远", "flag": true}),
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
    fn filters_and_pages() {
        let idx = index();
        let eq = |k: &str, v: &str| PropertyFilter::Equals {
            key: k.into(),
            value: v.into(),
        };
        let q = |filters, offset, limit| Query {
            bbox: None,
            filters,
            offset,
            limit,
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
