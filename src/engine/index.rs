//! One layer's features, kept compact (see `compact`), and its R-tree over their slots.
//! Features are decoded only when a reader asks for them.

use geo::{BoundingRect, Geometry, Rect};
use rayon::prelude::*;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, RTreeObject, AABB};
use std::collections::BTreeMap;
use std::sync::Arc;

use super::compact::{self, Compact};
use crate::model::{Feature, Layer, RawFeature};

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
    slots: Vec<Option<Compact>>,
    by_id: IdMap,
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

/// Feature id → slot. The table holds only slot numbers (4 bytes a feature) and a byte of each
/// id's hash: ids are hashed and compared from the features in `slots`, which keeps no second
/// copy of each id (issue 15: a `HashMap<String, u32>` cost about 50 bytes a feature). Every
/// entry names a live slot.
///
/// Open addressing with linear probing over two arrays side by side, the tags and the slots.
/// A lookup's first tag and first slot lie at addresses the hash alone gives, so the two memory
/// reads go out at once; a table whose slots sit behind its control bytes (hashbrown's) makes
/// them one after the other, and the lookup of a feature by id is a chain of cache misses.
/// Deletion shifts the entries after the hole back (no tombstones), so a probe ends at the
/// first empty entry however many deletions came before.
#[derive(Default)]
struct IdMap {
    /// One a position: [`EMPTY`](IdMap::EMPTY), or 0x80 and the top seven bits of the hash.
    tags: Vec<u8>,
    /// The slot at each position whose tag is not empty.
    entries: Vec<u32>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

impl IdMap {
    const EMPTY: u8 = 0;
    /// The fewest positions a table that holds anything has.
    const MIN_POSITIONS: usize = 16;

    fn hash(&self, id: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, id)
    }

    fn tag(hash: u64) -> u8 {
        0x80 | (hash >> 57) as u8
    }

    fn id(slots: &[Option<Compact>], slot: u32) -> &str {
        slots[slot as usize].as_ref().map_or("", |c| c.id())
    }

    /// Whether live `slot` holds id `wanted` (compared as bytes: stored ids were checked).
    fn holds(slots: &[Option<Compact>], slot: u32, wanted: &str) -> bool {
        slots[slot as usize]
            .as_ref()
            .is_some_and(|c| c.id_bytes() == wanted.as_bytes())
    }

    /// The position holding `id`, if any.
    fn position(&self, slots: &[Option<Compact>], id: &str) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let hash = self.hash(id);
        let (tag, mask) = (Self::tag(hash), self.tags.len() - 1);
        let mut at = hash as usize & mask;
        loop {
            // Both read before either is looked at: see the type's comment.
            let (t, slot) = (self.tags[at], self.entries[at]);
            if t == Self::EMPTY {
                return None;
            }
            if t == tag && Self::holds(slots, slot, id) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    fn get(&self, slots: &[Option<Compact>], id: &str) -> Option<u32> {
        self.position(slots, id).map(|at| self.entries[at])
    }

    /// Puts `slot`, whose id hashes to `hash`, at the first empty position from its home (there
    /// is one: the table is never full).
    fn place(&mut self, hash: u64, slot: u32) {
        let mask = self.tags.len() - 1;
        let mut at = hash as usize & mask;
        while self.tags[at] != Self::EMPTY {
            at = (at + 1) & mask;
        }
        self.tags[at] = Self::tag(hash);
        self.entries[at] = slot;
    }

    /// Adds live `slot` (its id must not be in the map yet).
    fn insert(&mut self, slots: &[Option<Compact>], slot: u32) {
        self.reserve(slots, 1);
        let hash = self.hash(Self::id(slots, slot));
        self.place(hash, slot);
        self.len += 1;
    }

    fn remove(&mut self, slots: &[Option<Compact>], id: &str) -> Option<u32> {
        let mut hole = self.position(slots, id)?;
        let slot = self.entries[hole];
        let mask = self.tags.len() - 1;
        let mut at = (hole + 1) & mask;
        // Each entry of the run after the hole moves back into it unless its home lies after
        // the hole (cyclically), where a probe for it starts past the hole.
        while self.tags[at] != Self::EMPTY {
            let home = self.hash(Self::id(slots, self.entries[at])) as usize & mask;
            if at.wrapping_sub(home) & mask >= at.wrapping_sub(hole) & mask {
                self.tags[hole] = self.tags[at];
                self.entries[hole] = self.entries[at];
                hole = at;
            }
            at = (at + 1) & mask;
        }
        self.tags[hole] = Self::EMPTY;
        self.len -= 1;
        Some(slot)
    }

    /// The positions for `n` entries: at most three quarters full, a power of two.
    fn positions_for(n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (n + n / 3 + 1).next_power_of_two().max(Self::MIN_POSITIONS)
    }

    /// Builds the table again with `positions` positions, every entry rehashed from its id.
    fn rebuild(&mut self, slots: &[Option<Compact>], positions: usize) {
        let tags = std::mem::replace(&mut self.tags, vec![Self::EMPTY; positions]);
        let entries = std::mem::replace(&mut self.entries, vec![0; positions]);
        for (t, slot) in tags.into_iter().zip(entries) {
            if t != Self::EMPTY {
                self.place(self.hash(Self::id(slots, slot)), slot);
            }
        }
    }

    fn reserve(&mut self, slots: &[Option<Compact>], more: usize) {
        let wanted = Self::positions_for(self.len + more);
        if wanted > self.tags.len() {
            self.rebuild(slots, wanted);
        }
    }

    fn shrink_to_fit(&mut self, slots: &[Option<Compact>]) {
        let wanted = Self::positions_for(self.len);
        if wanted < self.tags.len() {
            self.rebuild(slots, wanted);
        }
    }
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

/// The property statistics of a layer: key → types seen and count.
type Stats = BTreeMap<String, PropertyStats>;

fn tally(stats: &mut Stats, key: &str, t: &'static str) {
    // Avoid allocating the key for the common case of a known property.
    let s = match stats.get_mut(key) {
        Some(s) => s,
        None => stats.entry(key.to_string()).or_default(),
    };
    s.count += 1;
    if !s.types.contains(&t) {
        s.types.push(t);
    }
}

/// `b`'s figures added to `a`'s (types in first-seen order, `a` first).
fn merge_stats(mut a: Stats, b: Stats) -> Stats {
    for (key, s) in b {
        let into = a.entry(key).or_default();
        into.count += s.count;
        for t in s.types {
            if !into.types.contains(&t) {
                into.types.push(t);
            }
        }
    }
    a
}

fn tally_named(stats: &mut Stats, name: bool, admin_code: bool) {
    for (key, present) in [("name", name), ("admin_code", admin_code)] {
        if present {
            tally(stats, key, "string");
        }
    }
}

fn tally_feature(stats: &mut Stats, f: &Feature) {
    tally_named(stats, f.name.is_some(), f.admin_code.is_some());
    for (k, v) in &f.properties {
        if let Some(t) = json_type(v) {
            tally(stats, k, t);
        }
    }
}

/// The JSON type of each value of a properties object's text, without building the values.
struct TypeTally<'s>(&'s mut Stats);

/// A key, borrowed from the text when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A value's JSON type (`None` for null), its content skipped.
struct ValueType(Option<&'static str>);

impl<'de> serde::Deserialize<'de> for ValueType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::IgnoredAny;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ValueType;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<ValueType, E> {
                Ok(ValueType(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<ValueType, E> {
                Ok(ValueType(Some("boolean")))
            }
            fn visit_i64<E>(self, _: i64) -> Result<ValueType, E> {
                Ok(ValueType(Some("integer")))
            }
            fn visit_u64<E>(self, _: u64) -> Result<ValueType, E> {
                Ok(ValueType(Some("integer")))
            }
            fn visit_f64<E>(self, _: f64) -> Result<ValueType, E> {
                Ok(ValueType(Some("number")))
            }
            fn visit_str<E>(self, _: &str) -> Result<ValueType, E> {
                Ok(ValueType(Some("string")))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ValueType, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ValueType(Some("array")))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<ValueType, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ValueType(Some("object")))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for TypeTally<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        struct V<'s>(&'s mut Stats);
        impl<'de> serde::de::Visitor<'de> for V<'_> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<(), A::Error> {
                while let Some((k, v)) = a.next_entry::<Key, ValueType>()? {
                    if let Some(t) = v.0 {
                        tally(self.0, &k.0, t);
                    }
                }
                Ok(())
            }
        }
        d.deserialize_map(V(self.0))
    }
}

/// Tallies a stored row's property types; checks it on the way (see [`compact::validate`]).
fn tally_raw(stats: &mut Stats, r: &RawFeature) -> Result<Option<Rect<f64>>, String> {
    let bbox = compact::validate(r)?;
    tally_named(stats, r.name.is_some(), r.admin_code.is_some());
    let mut de = serde_json::Deserializer::from_str(&r.properties);
    serde::de::DeserializeSeed::deserialize(TypeTally(stats), &mut de)
        .map_err(|e| format!("properties: {e}"))?;
    Ok(bbox)
}

/// A stored row the engine cannot keep.
#[derive(Debug, Clone, PartialEq)]
pub struct CorruptFeature {
    pub layer: String,
    pub id: String,
    pub reason: String,
}

/// A layer's index being built from stored rows, a chunk at a time (see [`LayerIndex::add_raw`]).
pub(crate) struct Pending {
    entries: Vec<Entry>,
}

impl LayerIndex {
    fn empty(layer: Layer, revision: u64) -> LayerIndex {
        LayerIndex {
            layer,
            revision,
            slots: Vec::new(),
            by_id: IdMap::default(),
            tree: RTree::new(),
            live: 0,
            properties: BTreeMap::new(),
            dirty: Vec::new(),
            changes: std::collections::VecDeque::new(),
            changes_floor: revision,
        }
    }

    pub fn build(layer: Layer, revision: u64, features: Vec<Feature>) -> LayerIndex {
        let mut idx = LayerIndex::empty(layer, revision);
        idx.slots.reserve(features.len());
        idx.by_id.reserve(&idx.slots, features.len());
        // Encoding is most of the work: on every core, in order.
        let stats = features
            .par_iter()
            .fold(Stats::new, |mut s, f| {
                tally_feature(&mut s, f);
                s
            })
            .reduce(Stats::new, merge_stats);
        let prepared: Vec<(Option<Rect<f64>>, Compact)> = features
            .into_par_iter()
            .map(|f| (f.bbox(), Compact::encode(&f)))
            .collect();
        idx.properties = stats;
        let mut pending = Pending {
            entries: Vec::with_capacity(prepared.len()),
        };
        idx.add_prepared(prepared, &mut pending);
        idx.finish(pending)
    }

    /// An index from a snapshot's parts (see `snapshot`): features in slot order, the R-tree's
    /// entries (bulk-loaded again) and the property statistics; `None` if two features share
    /// an id.
    pub(super) fn from_snapshot(
        layer: Layer,
        revision: u64,
        slots: Vec<Compact>,
        entries: Vec<Entry>,
        properties: BTreeMap<String, PropertyStats>,
    ) -> Option<LayerIndex> {
        let mut idx = LayerIndex::empty(layer, revision);
        idx.slots = slots.into_iter().map(Some).collect();
        // The id map and the R-tree at once, on two cores.
        let (by_id, tree) = rayon::join(
            || {
                let mut by_id = IdMap::default();
                by_id.reserve(&idx.slots, idx.slots.len());
                for slot in 0..idx.slots.len() as u32 {
                    if by_id.get(&idx.slots, IdMap::id(&idx.slots, slot)).is_some() {
                        return None;
                    }
                    by_id.insert(&idx.slots, slot);
                }
                Some(by_id)
            },
            || RTree::bulk_load(entries),
        );
        idx.by_id = by_id?;
        idx.tree = tree;
        idx.live = idx.slots.len();
        idx.properties = properties;
        Some(idx)
    }

    /// How many slots (live or not) the layer has.
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// An empty index to fill with [`LayerIndex::add_raw`] and close with [`LayerIndex::finish`].
    pub(crate) fn start(layer: Layer, revision: u64) -> (LayerIndex, Pending) {
        (
            LayerIndex::empty(layer, revision),
            Pending {
                entries: Vec::new(),
            },
        )
    }

    /// Adds stored rows of this layer, checked and tallied on every core, kept as they are.
    pub(crate) fn add_raw(
        &mut self,
        rows: Vec<RawFeature>,
        pending: &mut Pending,
    ) -> Result<(), CorruptFeature> {
        let (stats, boxes) = rows
            .par_iter()
            .fold(
                || (Stats::new(), Ok(Vec::new())),
                |(mut s, boxes): (Stats, Result<Vec<_>, CorruptFeature>), r| {
                    let boxes = boxes.and_then(|mut b| {
                        let bbox = tally_raw(&mut s, r).map_err(|reason| CorruptFeature {
                            layer: r.layer.clone(),
                            id: r.id.clone(),
                            reason,
                        })?;
                        b.push(bbox);
                        Ok(b)
                    });
                    (s, boxes)
                },
            )
            .reduce(
                || (Stats::new(), Ok(Vec::new())),
                |(a, ab), (b, bb)| {
                    let boxes = ab.and_then(|mut x| {
                        x.extend(bb?);
                        Ok(x)
                    });
                    (merge_stats(a, b), boxes)
                },
            );
        let boxes = boxes?;
        self.properties = merge_stats(std::mem::take(&mut self.properties), stats);
        let prepared: Vec<(Option<Rect<f64>>, Compact)> = boxes
            .into_iter()
            .zip(rows)
            .map(|(b, r)| (b, Compact::from_raw(r)))
            .collect();
        self.add_prepared(prepared, pending);
        Ok(())
    }

    /// Bulk-loads the R-tree of everything added.
    pub(crate) fn finish(mut self, pending: Pending) -> LayerIndex {
        self.tree = RTree::bulk_load(pending.entries);
        self.slots.shrink_to_fit();
        self.by_id.shrink_to_fit(&self.slots);
        self
    }

    fn add_prepared(&mut self, prepared: Vec<(Option<Rect<f64>>, Compact)>, pending: &mut Pending) {
        for (bbox, c) in prepared {
            if let Some(slot) = self.by_id.get(&self.slots, c.id()) {
                // A duplicate id in one load: the later row wins, as an upsert would; the
                // earlier one's box leaves the tree.
                if let Some(i) = pending.entries.iter().rposition(|e| e.data == slot) {
                    pending.entries.swap_remove(i);
                }
                if let Some(r) = bbox {
                    pending.entries.push(GeomWithData::new(envelope(r), slot));
                }
                self.slots[slot as usize] = Some(c);
                continue;
            }
            let slot = self.slots.len() as u32;
            if let Some(r) = bbox {
                pending.entries.push(GeomWithData::new(envelope(r), slot));
            }
            self.slots.push(Some(c));
            self.by_id.insert(&self.slots, slot);
            self.live += 1;
        }
    }

    fn note_properties(&mut self, f: &Feature) {
        tally_feature(&mut self.properties, f);
    }

    /// The feature with this id, decoded.
    pub fn get(&self, id: &str) -> Option<Arc<Feature>> {
        self.by_id
            .get(&self.slots, id)
            .and_then(|slot| self.slot(slot))
    }

    /// The compact form of the feature with this id (for encoders that read it directly).
    pub(crate) fn get_compact(&self, id: &str) -> Option<&Compact> {
        self.by_id
            .get(&self.slots, id)
            .and_then(|slot| self.slots[slot as usize].as_ref())
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
    /// Live features in insertion order, decoded one by one.
    pub fn iter(&self) -> impl Iterator<Item = (u32, Arc<Feature>)> + '_ {
        self.compact_iter()
            .map(|(i, c)| (i, Arc::new(c.decode(&self.layer.id))))
    }

    /// Live features in insertion order, compact.
    pub(crate) fn compact_iter(&self) -> impl Iterator<Item = (u32, &Compact)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i as u32, f)))
    }

    /// The feature in `slot`, decoded.
    pub(crate) fn slot(&self, slot: u32) -> Option<Arc<Feature>> {
        self.compact(slot)
            .map(|c| Arc::new(c.decode(&self.layer.id)))
    }

    /// The feature in `slot`, compact.
    pub(crate) fn compact(&self, slot: u32) -> Option<&Compact> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The geometry of the feature in `slot`, decoded (without its other fields).
    pub(crate) fn slot_geometry(&self, slot: u32) -> Option<Geometry<f64>> {
        self.compact(slot).and_then(Compact::geometry)
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
        match self.by_id.get(&self.slots, &f.id) {
            Some(slot) => {
                if let Some(old) = self.slots[slot as usize].take() {
                    if let Some(r) = old.geometry().and_then(|g| g.bounding_rect()) {
                        self.tree.remove(&GeomWithData::new(envelope(r), slot));
                        self.dirty.push(r);
                    }
                } else {
                    self.live += 1;
                }
                if let Some(e) = new_entry {
                    self.tree.insert(GeomWithData::new(e, slot));
                }
                self.slots[slot as usize] = Some(Compact::encode(&f));
            }
            None => {
                let slot = self.slots.len() as u32;
                if let Some(e) = new_entry {
                    self.tree.insert(GeomWithData::new(e, slot));
                }
                self.slots.push(Some(Compact::encode(&f)));
                self.by_id.insert(&self.slots, slot);
                self.live += 1;
            }
        }
    }

    pub fn delete(&mut self, id: &str) -> bool {
        let Some(slot) = self.by_id.remove(&self.slots, id) else {
            return false;
        };
        if let Some(old) = self.slots[slot as usize].take() {
            if let Some(r) = old.geometry().and_then(|g| g.bounding_rect()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: &str, x: f64) -> Feature {
        let point = Geometry::Point(geo::Point::new(x, 29.5));
        Feature::from_parts("t", id.to_string(), serde_json::Map::new(), Some(point))
    }

    /// The id map alone, against a plain map, through random inserts, deletions (which shift
    /// runs back, across the table's end too), lookups of present and absent ids, growth and
    /// shrinking; every operation is checked, and the table never gets more than three
    /// quarters full.
    #[test]
    fn id_map_agrees_with_a_plain_map() {
        let mut slots: Vec<Option<Compact>> = Vec::new();
        let mut map = IdMap::default();
        let mut model: std::collections::HashMap<String, u32> = Default::default();
        let mut live: Vec<String> = Vec::new();
        let mut x: u64 = 5;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        assert_eq!(map.get(&slots, "nothing"), None);
        assert_eq!(map.remove(&slots, "nothing"), None);
        for round in 0..40_000u64 {
            match next() % 10 {
                0..=4 => {
                    let id = format!("id{}", next() % 20_000);
                    if model.contains_key(&id) {
                        continue;
                    }
                    let slot = slots.len() as u32;
                    slots.push(Some(Compact::encode(&point(&id, 1.0))));
                    map.insert(&slots, slot);
                    model.insert(id.clone(), slot);
                    live.push(id);
                }
                5..=7 if !live.is_empty() => {
                    let id = live.swap_remove(next() as usize % live.len());
                    let slot = model.remove(&id).unwrap();
                    assert_eq!(map.remove(&slots, &id), Some(slot), "{id}");
                    slots[slot as usize] = None;
                    assert_eq!(map.remove(&slots, &id), None, "{id} removed twice");
                }
                8 if round % 1000 == 8 => map.shrink_to_fit(&slots),
                _ => {
                    let id = format!("id{}", next() % 20_000);
                    assert_eq!(map.get(&slots, &id), model.get(&id).copied(), "{id}");
                }
            }
            assert_eq!(map.len, model.len());
            assert!(map.len * 4 <= map.tags.len() * 3);
        }
        for (id, slot) in &model {
            assert_eq!(map.get(&slots, id), Some(*slot), "{id}");
        }
        let occupied = map.tags.iter().filter(|t| **t != IdMap::EMPTY).count();
        assert_eq!(occupied, model.len());
        // Emptied, it shrinks to nothing and still answers.
        for id in live {
            let slot = model[&id];
            assert_eq!(map.remove(&slots, &id), Some(slot));
            slots[slot as usize] = None;
        }
        map.shrink_to_fit(&slots);
        assert_eq!((map.len, map.tags.len()), (0, 0));
        assert_eq!(map.get(&slots, "id1"), None);
    }

    /// The id map follows builds, upserts, deletes and re-inserts: every live id finds its own
    /// feature, every deleted one none (compared with a plain map kept beside it).
    #[test]
    fn ids_find_their_features_through_changes() {
        let features: Vec<Feature> = (0..5000)
            .map(|i| point(&format!("f{i}"), i as f64))
            .collect();
        let mut idx = LayerIndex::build(Layer::untitled("t"), 1, features);
        let mut expected: std::collections::HashMap<String, f64> =
            (0..5000).map(|i| (format!("f{i}"), i as f64)).collect();
        for i in (0..5000).step_by(3) {
            assert!(idx.delete(&format!("f{i}")));
            expected.remove(&format!("f{i}"));
        }
        assert!(!idx.delete("f0"), "deleted twice");
        for i in (0..5000).step_by(6) {
            // Half of the deleted ids come back, with new places; some live ones move.
            idx.upsert(point(&format!("f{i}"), -(i as f64)));
            expected.insert(format!("f{i}"), -(i as f64));
            idx.upsert(point(&format!("f{}", i + 1), 0.5));
            expected.insert(format!("f{}", i + 1), 0.5);
        }
        for i in 5000..9000 {
            idx.upsert(point(&format!("g{i}"), i as f64));
            expected.insert(format!("g{i}"), i as f64);
        }
        assert_eq!(idx.len(), expected.len());
        for i in 0..9000 {
            for id in [format!("f{i}"), format!("g{i}")] {
                let got = idx.get(&id).map(|f| match f.geometry {
                    Some(Geometry::Point(p)) => p.x(),
                    _ => f64::NAN,
                });
                assert_eq!(got, expected.get(&id).copied(), "{id}");
                assert_eq!(
                    idx.get_compact(&id).map(|c| c.id()),
                    expected.get(&id).map(|_| id.as_str())
                );
            }
        }
    }
}
