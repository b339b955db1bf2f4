//! The running service's core: the store and the engine together, kept in step.
//! Opening seeds an empty database and loads every feature; `catch_up` follows the change log.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Engine;
use crate::model::{Feature, Layer};
use crate::seed;
use crate::store::{ChangeOp, ImportMode, ImportSummary, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bundled seed data: {0}")]
    Seed(#[from] seed::SeedError),
}

/// Store and engine of one running service.
pub struct App {
    pub store: Store,
    pub engine: Arc<Engine>,
    /// The newest change-log entry the engine reflects.
    applied: AtomicI64,
}

/// A hook for progress reports: called with the number of features done so far.
pub type Progress<'a> = Option<&'a (dyn Fn(usize) + Send + Sync)>;

impl App {
    /// Opens the database at `db` (creating and migrating it), seeds it when it is empty and
    /// `seed` is set, and loads every feature into the engine.
    pub async fn open(db: &str, seed: bool, progress: Progress<'_>) -> Result<App, AppError> {
        let store = Store::open(db).await?;
        if seed && store.is_empty().await? {
            let (layers, features) = seed::bundled()?;
            tracing::info!(
                features = features.len(),
                layers = layers.len(),
                "seeding an empty database"
            );
            store
                .import(&layers, features, ImportMode::Upsert, progress)
                .await?;
        }
        // Read the log position first: anything written while we load is applied again, harmlessly.
        let applied = store.last_change().await?;
        let engine = Engine::load(store.layers().await?, store.all_features().await?);
        Ok(App {
            store,
            engine: Arc::new(engine),
            applied: AtomicI64::new(applied),
        })
    }

    /// An app over an engine built elsewhere (benchmarks, tools); the change log is taken as applied.
    pub async fn from_parts(store: Store, engine: Engine) -> Result<App, AppError> {
        let applied = store.last_change().await?;
        Ok(App {
            store,
            engine: Arc::new(engine),
            applied: AtomicI64::new(applied),
        })
    }

    /// Writes features through the store and applies them to the engine at once.
    pub async fn import(
        &self,
        layers: &[Layer],
        features: Vec<Feature>,
        mode: ImportMode,
    ) -> Result<Vec<ImportSummary>, AppError> {
        let summaries = self.store.import(layers, features, mode, None).await?;
        self.catch_up().await?;
        Ok(summaries)
    }

    /// Applies every change-log entry newer than what the engine has; returns how many.
    pub async fn catch_up(&self) -> Result<usize, AppError> {
        let mut total = 0;
        loop {
            let from = self.applied.load(Ordering::SeqCst);
            let changes = self.store.changes_since(from, 10_000).await?;
            let Some(last) = changes.last().map(|c| c.seq) else {
                break;
            };
            // Per layer: whole-layer reloads win over single features.
            let mut touched: BTreeMap<String, (bool, Vec<(String, ChangeOp)>)> = BTreeMap::new();
            for c in &changes {
                let entry = touched.entry(c.layer.clone()).or_default();
                match (c.op, &c.feature_id) {
                    (ChangeOp::Replace, _) => entry.0 = true,
                    (op, Some(id)) => entry.1.push((id.clone(), op)),
                    _ => {}
                }
            }
            for (layer_id, (reload, feature_changes)) in touched {
                let Some((layer, revision)) = self.store.layer(&layer_id).await? else {
                    self.engine.remove_layer(&layer_id);
                    continue;
                };
                if reload {
                    let features = self.store.features_of(&layer_id).await?;
                    self.engine.replace_layer(layer, revision, features);
                    continue;
                }
                self.engine.put_layer(layer, revision);
                let mut upserts = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for (id, _) in feature_changes.iter().rev() {
                    if !seen.insert(id.clone()) {
                        continue;
                    }
                    match self.store.feature(&layer_id, id).await? {
                        Some(f) => upserts.push(f),
                        None => {
                            self.engine.delete(&layer_id, id, revision);
                        }
                    }
                }
                upserts.reverse();
                self.engine.upsert(upserts, revision);
            }
            total += changes.len();
            self.applied.fetch_max(last, Ordering::SeqCst);
        }
        Ok(total)
    }

    /// Follows the change log every `interval` until the process ends, so that writes by other
    /// processes (a CLI import, another server) show without a restart.
    pub fn follow(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match app.catch_up().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(changes = n, "applied changes from the change log"),
                    Err(e) => tracing::warn!(error = %e, "could not follow the change log"),
                }
            }
        })
    }
}
