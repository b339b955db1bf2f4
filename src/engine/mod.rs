//! The in-memory spatial engine: every feature of every layer, one R-tree per layer.
//! Pure: no I/O, no HTTP, no SQL. Reads take a shared lock on one layer; writes a short exclusive one.

pub mod admin;
pub mod budget;
pub mod check;
mod compact;
pub mod coverage;
pub mod filter;
mod index;
pub mod membership;
mod query;
pub mod snapshot;

pub use admin::{AdminLevel, AdminLookupError, AdminUnit};
pub use budget::{Budget, Stop};
pub(crate) use compact::Compact;
pub use filter::{Filter, FilterError, FilterLang};
pub use index::{CorruptFeature, LayerIndex, LayerStats};
pub use query::{Near, PropertyFilter, Query, QueryResult, SortKey};

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{Feature, Layer, RawFeature};

/// A change to one layer, prepared outside the engine, that [`Engine::apply`] makes visible to
/// readers in one step.
pub enum LayerUpdate {
    /// The layer is gone.
    Remove(String),
    /// The layer's whole content, built beside the old index (see [`EngineLoader::open`]):
    /// swapped in.
    Reload(LayerIndex),
    /// Some features changed: upserted and deleted under one short write lock of the layer.
    Change {
        layer: Layer,
        revision: u64,
        upserts: Vec<Feature>,
        deletes: Vec<String>,
    },
}

/// An engine being filled from stored rows as the store reads them: each chunk is checked and
/// tallied on every core while the store reads the next, and kept as it is (compact), so that
/// start-up holds little more than the engine itself.
pub struct EngineLoader {
    layers: BTreeMap<String, (LayerIndex, index::Pending)>,
    /// Whether a row of a layer not yet seen starts it (else it is left out).
    open: bool,
}

impl EngineLoader {
    /// A loader of whichever layers the rows name, each started at the first of its rows with
    /// placeholder metadata (an untitled layer, revision 0) for the caller to replace: the
    /// follower's reload of layers as the store streams them from one snapshot, holding a chunk
    /// of rows at a time rather than the whole layer decoded.
    pub fn open() -> EngineLoader {
        EngineLoader {
            layers: BTreeMap::new(),
            open: true,
        }
    }

    /// Adds rows in any order of layers; rows of layers not given to [`Engine::loader`] are
    /// left out (unless the loader is [`EngineLoader::open`]).
    pub fn add(&mut self, rows: Vec<RawFeature>) -> Result<(), CorruptFeature> {
        // Rows come ordered by layer: split into runs of one layer.
        let mut rows = rows.into_iter().peekable();
        while let Some(first) = rows.next() {
            let layer = first.layer.clone();
            let mut run = vec![first];
            while let Some(r) = rows.next_if(|r| r.layer == layer) {
                run.push(r);
            }
            if self.open && !self.layers.contains_key(&layer) {
                let started = LayerIndex::start(Layer::untitled(&layer), 0);
                self.layers.insert(layer.clone(), started);
            }
            if let Some((idx, pending)) = self.layers.get_mut(&layer) {
                idx.add_raw(run, pending)?;
            }
        }
        Ok(())
    }

    /// Each layer's index, its R-tree bulk-loaded, by layer id.
    pub fn finish_layers(self) -> BTreeMap<String, LayerIndex> {
        self.layers
            .into_iter()
            .map(|(id, (idx, pending))| (id, idx.finish(pending)))
            .collect()
    }

    /// The engine, every layer's R-tree bulk-loaded.
    pub fn finish(self) -> Engine {
        let engine = Engine::new();
        {
            let mut map = engine.layers.write();
            for (id, idx) in self.finish_layers() {
                map.insert(id, Arc::new(RwLock::new(idx)));
            }
        }
        engine
    }
}

/// Key of a prepared admin area: layer, feature id, feature version.
type AreaKey = (String, String, i64);

/// All layers, by id.
#[derive(Default)]
pub struct Engine {
    layers: RwLock<BTreeMap<String, Arc<RwLock<LayerIndex>>>>,
    /// Prepared polygons of admin units asked about recently.
    areas: parking_lot::Mutex<std::collections::HashMap<AreaKey, Arc<crate::geom::PreparedArea>>>,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Builds the engine from everything the store holds, bulk-loading each layer's R-tree.
    pub fn load(layers: Vec<(Layer, u64)>, features: Vec<Feature>) -> Engine {
        let mut by_layer: BTreeMap<String, Vec<Feature>> = BTreeMap::new();
        for f in features {
            by_layer.entry(f.layer.clone()).or_default().push(f);
        }
        let engine = Engine::new();
        {
            let mut map = engine.layers.write();
            for (layer, revision) in layers {
                let feats = by_layer.remove(&layer.id).unwrap_or_default();
                let id = layer.id.clone();
                map.insert(
                    id,
                    Arc::new(RwLock::new(LayerIndex::build(layer, revision, feats))),
                );
            }
        }
        engine
    }

    /// Starts an engine to be filled from stored rows, a chunk at a time (see [`EngineLoader`]).
    pub fn loader(layers: Vec<(Layer, u64)>) -> EngineLoader {
        EngineLoader {
            layers: layers
                .into_iter()
                .map(|(layer, revision)| (layer.id.clone(), LayerIndex::start(layer, revision)))
                .collect(),
            open: false,
        }
    }

    pub fn layer(&self, id: &str) -> Option<Arc<RwLock<LayerIndex>>> {
        self.layers.read().get(id).cloned()
    }

    /// Every layer, in id order.
    pub fn layers(&self) -> Vec<Arc<RwLock<LayerIndex>>> {
        self.layers.read().values().cloned().collect()
    }

    pub fn layer_ids(&self) -> Vec<String> {
        self.layers.read().keys().cloned().collect()
    }

    /// Creates or updates a layer's metadata, keeping its features.
    pub fn put_layer(&self, layer: Layer, revision: u64) {
        let mut map = self.layers.write();
        match map.get(&layer.id) {
            Some(existing) => {
                let mut idx = existing.write();
                idx.layer = layer;
                idx.revision = idx.revision.max(revision);
            }
            None => {
                let id = layer.id.clone();
                map.insert(
                    id,
                    Arc::new(RwLock::new(LayerIndex::build(layer, revision, vec![]))),
                );
            }
        }
    }

    /// Applies changes to several layers so that a reader sees each layer either wholly before
    /// or wholly after them, never half-way: new indexes of reloaded layers are built first,
    /// without any lock, then swapped in together; changed features go in under one write
    /// lock of their layer.
    pub fn apply(&self, updates: Vec<LayerUpdate>) {
        let mut swaps = Vec::new();
        let mut removals = Vec::new();
        let mut changes = Vec::new();
        for u in updates {
            match u {
                LayerUpdate::Remove(id) => removals.push(id),
                LayerUpdate::Reload(idx) => {
                    swaps.push((idx.layer.id.clone(), Arc::new(RwLock::new(idx))));
                }
                LayerUpdate::Change {
                    layer,
                    revision,
                    upserts,
                    deletes,
                } => changes.push((layer, revision, upserts, deletes)),
            }
        }
        let mut targets = Vec::with_capacity(changes.len());
        {
            let mut map = self.layers.write();
            for id in removals {
                map.remove(&id);
            }
            for (id, idx) in swaps {
                map.insert(id, idx);
            }
            for (layer, revision, upserts, deletes) in changes {
                let idx = map
                    .entry(layer.id.clone())
                    .or_insert_with(|| {
                        Arc::new(RwLock::new(LayerIndex::build(
                            layer.clone(),
                            revision,
                            vec![],
                        )))
                    })
                    .clone();
                targets.push((idx, layer, revision, upserts, deletes));
            }
        }
        for (idx, layer, revision, upserts, deletes) in targets {
            let mut idx = idx.write();
            idx.layer = layer;
            for f in upserts {
                idx.upsert(f);
            }
            for id in &deletes {
                idx.delete(id);
            }
            idx.seal_changes(revision);
        }
    }

    /// Inserts or replaces features (by layer and id) and sets the layers' revisions.
    pub fn upsert(&self, features: Vec<Feature>, revision: u64) {
        let mut by_layer: BTreeMap<String, Vec<Feature>> = BTreeMap::new();
        for f in features {
            by_layer.entry(f.layer.clone()).or_default().push(f);
        }
        for (layer_id, feats) in by_layer {
            let idx = match self.layer(&layer_id) {
                Some(idx) => idx,
                None => {
                    self.put_layer(Layer::untitled(&layer_id), revision);
                    self.layer(&layer_id).expect("layer was just created")
                }
            };
            let mut idx = idx.write();
            for f in feats {
                idx.upsert(f);
            }
            idx.seal_changes(revision);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::wkb;
    use geo::{point, Geometry};

    fn row(layer: &str, id: &str, props: &str, g: Option<Geometry<f64>>) -> RawFeature {
        RawFeature {
            layer: layer.into(),
            id: id.into(),
            admin_code: None,
            name: Some(format!("名{id}")),
            properties: props.into(),
            geometry: g.as_ref().map(wkb::encode),
            version: 2,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-02T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_loader_keeps_rows_as_stored_and_names_a_corrupt_one() {
        let layers = vec![(Layer::untitled("a"), 3), (Layer::untitled("b"), 4)];
        let mut loader = Engine::loader(layers.clone());
        let p = Geometry::Point(point!(x: 105.5, y: 29.5));
        loader
            .add(vec![
                row("a", "1", r#"{"面积":12.5,"n":1}"#, Some(p.clone())),
                row("a", "2", "{}", None),
            ])
            .unwrap();
        // Chunks may split a layer and hold several; a layer not asked for is left out.
        loader
            .add(vec![
                row("a", "1", r#"{"面积":13}"#, Some(p.clone())),
                row("b", "9", r#"{"s":"x"}"#, Some(p.clone())),
                row("c", "1", "{}", None),
            ])
            .unwrap();
        let engine = loader.finish();
        assert_eq!(engine.layer_ids(), vec!["a", "b"]);
        let a = engine.layer("a").unwrap();
        let a = a.read();
        assert_eq!((a.len(), a.revision), (2, 3));
        // The later row of a duplicated id wins, as an upsert would.
        let f = a.get("1").unwrap();
        assert_eq!(f.properties["面积"], 13);
        assert_eq!(f.name.as_deref(), Some("名1"));
        assert_eq!(f.geometry, Some(p.clone()));
        assert_eq!((f.version, f.layer.as_str()), (2, "a"));
        assert_eq!(a.property_stats()["面积"].types, vec!["number", "integer"]);
        assert_eq!(a.property_stats()["name"].count, 3);
        let bbox = geo::Rect::new((105.0, 29.0), (106.0, 30.0));
        let found = a.query(&Query {
            bbox: Some(bbox),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(found.matched, 1);
        drop(a);

        let mut loader = Engine::loader(layers);
        let bad = loader.add(vec![
            row("a", "1", "{}", None),
            row("b", "7", "[1,2]", None),
        ]);
        assert_eq!(
            bad.unwrap_err(),
            CorruptFeature {
                layer: "b".into(),
                id: "7".into(),
                reason: "properties are not a JSON object".into()
            }
        );
        let mut loader = Engine::loader(vec![(Layer::untitled("a"), 1)]);
        let mut broken = row("a", "5", "{}", None);
        broken.geometry = Some(vec![1, 3, 0]);
        let e = loader.add(vec![broken]).unwrap_err();
        assert!(e.id == "5" && e.reason.starts_with("geometry"), "{e:?}");
    }
}
