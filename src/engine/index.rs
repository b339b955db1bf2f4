use geo::{BoundingRect, Rect};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, RTreeObject, AABB};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{Feature, Layer};

/// An R-tree entry: a feature's bounding box and its slot in `LayerIndex::slots`.
pub(crate) type Entry = GeomWithData<Rectangle<[f64; 2]>, u32>;

/// What the engine knows about one property of a layer, for its schema and queryables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropertyStats {
    /// JSON types seen: "string", "number", "integer", "boolean", "array", "object".
    pub types: Vec<&'static str>,
    pub count: usize,
}

/// Summary figures of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    pub count: usize,
    pub extent: Option<Rect<f64>>,
}

/// One layer's features and spatial index.
pub struct LayerIndex {
    pub layer: Layer,
    /// Bumped by every change; part of ETags.
    pub revision: u64,
    /// Features in insertion order; deleted ones leave `None` so slots stay stable.
    slots: Vec<Option<Arc<Feature>>>,
    by_id: HashMap<String, u32>,
    pub(crate) tree: RTree<Entry>,
    live: usize,
    properties: BTreeMap<String, PropertyStats>,
    /// Boxes touched by changes not yet stamped with a revision.
    dirty: Vec<Rect<f64>>,
    /// Recent changes: (revision, box touched), oldest first, for exact cache invalidation.
    changes: std::collections::VecDeque<(u64, Rect<f64>)>,
    /// Changes at or below this revision are no longer in `changes` (unknown extent).
    changes_floor: u64,
}

/// How many recent change boxes a layer remembers for cache invalidation.
const CHANGE_LOG: usize = 20_000;

fn envelope(r: Rect<f64>) -> Rectangle<[f64; 2]> {
    Rectangle::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y])
}

fn json_type(v: &serde_json::Value) -> Option<&'static str> {
    use serde_json::Value::*;
    Some(match v {
        Null => return None,
        Bool(_) => "boolean",
        Number(n) if n.is_i64() || n.is_u64() => "integer",
        Number(_) => "number",
        String(_) => "string",
        Array(_) => "array",
        Object(_) => "object",
    })
}

impl LayerIndex {
    pub fn build(layer: Layer, revision: u64, features: Vec<Feature>) -> LayerIndex {
        let mut idx = LayerIndex {
            layer,
            revision,
            slots: Vec::with_capacity(features.len()),
            by_id: HashMap::with_capacity(features.len()),
            tree: RTree::new(),
            live: 0,
            properties: BTreeMap::new(),
            dirty: Vec::new(),
            changes: std::collections::VecDeque::new(),
            changes_floor: revision,
        };
        let mut entries = Vec::with_capacity(features.len());
        for f in features {
            if let Some(&slot) = idx.by_id.get(&f.id) {
                // A duplicate id in one load: the later row wins, as an upsert would.
                idx.slots[slot as usize] = Some(Arc::new(f));
                continue;
            }
            let slot = idx.slots.len() as u32;
            if let Some(r) = f.geometry.as_ref().and_then(|g| g.bounding_rect()) {
                entries.push(GeomWithData::new(envelope(r), slot));
            }
            idx.note_properties(&f);
            idx.by_id.insert(f.id.clone(), slot);
            idx.slots.push(Some(Arc::new(f)));
            idx.live += 1;
        }
        idx.tree = RTree::bulk_load(entries);
        idx
    }

    fn note_properties(&mut self, f: &Feature) {
        let named = [
            ("name", f.name.is_some()),
            ("admin_code", f.admin_code.is_some()),
        ];
        for (key, present) in named {
            if present {
                let s = self.properties.entry(key.to_string()).or_default();
                s.count += 1;
                if !s.types.contains(&"string") {
                    s.types.push("string");
                }
            }
        }
        for (k, v) in &f.properties {
            let Some(t) = json_type(v) else { continue };
            // Avoid allocating the key for the common case of a known property.
            let s = match self.properties.get_mut(k) {
                Some(s) => s,
                None => self.properties.entry(k.clone()).or_default(),
            };
            s.count += 1;
            if !s.types.contains(&t) {
                s.types.push(t);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Feature>> {
        self.by_id
            .get(id)
            .and_then(|&slot| self.slots[slot as usize].as_ref())
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The properties seen in this layer's features, with their JSON types.
    pub fn property_stats(&self) -> &BTreeMap<String, PropertyStats> {
        &self.properties
    }

    pub fn has_property(&self, key: &str) -> bool {
        self.properties.contains_key(key)
    }

    pub fn stats(&self) -> LayerStats {
        let extent = if self.tree.size() == 0 {
            None
        } else {
            let e = self.tree.root().envelope();
            Some(Rect::new(
                geo::coord! { x: e.lower()[0], y: e.lower()[1] },
                geo::coord! { x: e.upper()[0], y: e.upper()[1] },
            ))
        };
        LayerStats {
            count: self.live,
            extent,
        }
    }

    /// Live features in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Arc<Feature>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i as u32, f)))
    }

    pub(crate) fn slot(&self, slot: u32) -> Option<&Arc<Feature>> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Slots whose bounding boxes intersect `r`, unordered, each with whether its box lies
    /// wholly inside `r` (then the feature surely intersects and needs no exact test).
    pub(crate) fn candidates(&self, r: Rect<f64>) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.candidate_boxes(r).map(move |(slot, b)| {
            let inside = b.min().x >= r.min().x
                && b.min().y >= r.min().y
                && b.max().x <= r.max().x
                && b.max().y <= r.max().y;
            (slot, inside)
        })
    }

    /// Slots whose bounding boxes intersect `r`, unordered, with their boxes.
    pub(crate) fn candidate_boxes(
        &self,
        r: Rect<f64>,
    ) -> impl Iterator<Item = (u32, Rect<f64>)> + '_ {
        let aabb = AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]);
        self.tree.locate_in_envelope_intersecting(&aabb).map(|e| {
            let env = e.geom().envelope();
            let (lo, hi) = (env.lower(), env.upper());
            (e.data, Rect::new((lo[0], lo[1]), (hi[0], hi[1])))
        })
    }

    /// Stamps the changes since the last call with `revision` (the layer's new revision).
    pub fn seal_changes(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
        for r in self.dirty.drain(..) {
            self.changes.push_back((self.revision, r));
        }
        while self.changes.len() > CHANGE_LOG {
            if let Some((rev, _)) = self.changes.pop_front() {
                self.changes_floor = self.changes_floor.max(rev);
            }
        }
    }

    /// Whether anything changed inside `r` after `since`: `None` when the log does not reach
    /// back that far (treat as changed).
    pub fn changed_since(&self, since: u64, r: Rect<f64>) -> Option<bool> {
        if since < self.changes_floor {
            return None;
        }
        Some(
            self.changes
                .iter()
                .rev()
                .take_while(|(rev, _)| *rev > since)
                .any(|(_, b)| {
                    b.min().x <= r.max().x
                        && b.max().x >= r.min().x
                        && b.min().y <= r.max().y
                        && b.max().y >= r.min().y
                }),
        )
    }

    pub fn upsert(&mut self, f: Feature) {
        self.note_properties(&f);
        if let Some(r) = f.bbox() {
            self.dirty.push(r);
        }
        let new_entry = f
            .geometry
            .as_ref()
            .and_then(|g| g.bounding_rect())
            .map(envelope);
        match self.by_id.get(&f.id).copied() {
            Some(slot) => {
                if let Some(old) = self.slots[slot as usize].take() {
                    if let Some(r) = old.bbox() {
                        self.tree.remove(&GeomWithData::new(envelope(r), slot));
                        self.dirty.push(r);
                    }
                } else {
                    self.live += 1;
                }
                if let Some(e) = new_entry {
                    self.tree.insert(GeomWithData::new(e, slot));
                }
                self.slots[slot as usize] = Some(Arc::new(f));
            }
            None => {
                let slot = self.slots.len() as u32;
                if let Some(e) = new_entry {
                    self.tree.insert(GeomWithData::new(e, slot));
                }
                self.by_id.insert(f.id.clone(), slot);
                self.slots.push(Some(Arc::new(f)));
                self.live += 1;
            }
        }
    }

    pub fn delete(&mut self, id: &str) -> bool {
        let Some(slot) = self.by_id.remove(id) else {
            return false;
        };
        if let Some(old) = self.slots[slot as usize].take() {
            if let Some(r) = old.bbox() {
                self.tree.remove(&GeomWithData::new(envelope(r), slot));
                self.dirty.push(r);
            }
            self.live -= 1;
            true
        } else {
            false
        }
    }
}
