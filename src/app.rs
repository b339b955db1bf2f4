//! The running service's core: the store and the engine together, kept in step.
//! Opening seeds an empty database and loads every feature; `catch_up` follows the change log.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::snapshot::{self, Snapshot, SnapshotHead};
use crate::engine::{Engine, LayerUpdate};
use crate::formats::geojson::{
    stream_feature_collection, DecodeError, StreamOptions, StreamSummary,
};
use crate::formats::{ImportError, StreamedLayers};
use crate::geom::crs::Crs;
use crate::model::{Feature, Layer};
use crate::seed;
use crate::store::{
    Batch, ChangedFeatures, Ids, ImportMode, ImportSummary, Store, StoreError, StoreOptions,
    IMPORT_BATCH,
};

/// Changes to one layer above which the follower reloads the whole layer from the store and
/// swaps it in, rather than applying the changed features one by one under the layer's lock.
const RELOAD_ABOVE: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bundled seed data: {0}")]
    Seed(#[from] seed::SeedError),
    /// The GeoJSON of an import is unusable; nothing was imported.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The file of an import (Shapefile, GeoPackage) is unusable; nothing was imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("a background task failed: {0}")]
    Task(String),
}

/// Store and engine of one running service.
pub struct App {
    pub store: Store,
    pub engine: Arc<Engine>,
    /// The newest change-log entry the engine reflects.
    applied: AtomicI64,
    /// Held while changes are applied to the engine.
    catching_up: tokio::sync::Mutex<()>,
    /// What following the change log has done so far (for `/metrics`).
    pub follow_stats: FollowStats,
    /// The engine snapshot file kept for the next start, if any (see [`App::write_snapshot`]).
    snapshot: Option<SnapshotFile>,
}

/// The engine snapshot file of an [`App`] and the change-log position it was last written at.
struct SnapshotFile {
    path: std::path::PathBuf,
    /// The position of the last snapshot written or read (-1: none yet).
    written: AtomicI64,
    /// One writer at a time.
    writing: tokio::sync::Mutex<()>,
}

/// Counters of the engine's updates from the change log.
#[derive(Debug, Default)]
pub struct FollowStats {
    /// Change-log entries applied to the engine.
    pub changes_applied: AtomicU64,
    /// Layers rebuilt whole (more than a reload's worth of changes, or a replaced layer).
    pub layer_reloads: AtomicU64,
    /// Layers changed feature by feature.
    pub layer_updates: AtomicU64,
    /// Catch-ups that failed (the database could not be read).
    pub errors: AtomicU64,
}

/// A hook for progress reports: called with the number of features done so far.
pub type Progress<'a> = Option<&'a (dyn Fn(usize) + Send + Sync)>;

impl App {
    /// Opens the database at `db` (creating and migrating it), seeds it when it is empty and
    /// `seed` is set, and loads every feature into the engine.
    pub async fn open(db: &str, seed: bool, progress: Progress<'_>) -> Result<App, AppError> {
        App::open_with(db, seed, progress, &StoreOptions::default()).await
    }

    /// [`App::open`] with explicit store options (e.g. a shorter busy timeout).
    pub async fn open_with(
        db: &str,
        seed: bool,
        progress: Progress<'_>,
        options: &StoreOptions,
    ) -> Result<App, AppError> {
        let store = Store::open_with(db, options).await?;
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
        let engine = load_engine(&store).await?;
        if seed {
            crate::monitor::service::seed(&store, &engine).await?;
        }
        Ok(App::assemble(store, engine, applied, None))
    }

    /// [`App::open_with`], starting from the engine snapshot at `snapshot` when it belongs to
    /// this database and its change log still holds the position it was written at; then the
    /// changes after that position are applied as a follower would. A snapshot that is missing,
    /// damaged, of another database or of a history this one does not have is ignored (logged)
    /// and the engine loaded from the database; the snapshot is then written again in the
    /// background. `snapshot_used` in the result says which way it went.
    pub async fn open_with_snapshot(
        db: &str,
        seed: bool,
        progress: Progress<'_>,
        options: &StoreOptions,
        snapshot: &std::path::Path,
    ) -> Result<(App, bool), AppError> {
        let store = Store::open_with(db, options).await?;
        let fresh = seed && store.is_empty().await?;
        if fresh {
            let (layers, features) = seed::bundled()?;
            store
                .import(&layers, features, ImportMode::Upsert, progress)
                .await?;
        }
        let file = SnapshotFile {
            path: snapshot.to_path_buf(),
            written: AtomicI64::new(-1),
            writing: tokio::sync::Mutex::new(()),
        };
        let (engine, applied, used) = match read_snapshot(&store, snapshot).await {
            Ok((engine, seq)) => {
                file.written.store(seq, Ordering::SeqCst);
                (engine, seq, true)
            }
            Err(why) => {
                if snapshot.exists() {
                    tracing::warn!(path = %snapshot.display(), reason = %why, "engine snapshot not used; loading from the database");
                } else {
                    tracing::info!(path = %snapshot.display(), "no engine snapshot yet; loading from the database");
                }
                let applied = store.last_change().await?;
                (load_engine(&store).await?, applied, false)
            }
        };
        if seed {
            crate::monitor::service::seed(&store, &engine).await?;
        }
        let app = App::assemble(store, engine, applied, Some(file));
        app.catch_up().await?;
        Ok((app, used))
    }

    fn assemble(store: Store, engine: Engine, applied: i64, snapshot: Option<SnapshotFile>) -> App {
        App {
            store,
            engine: Arc::new(engine),
            applied: AtomicI64::new(applied),
            catching_up: tokio::sync::Mutex::new(()),
            follow_stats: FollowStats::default(),
            snapshot,
        }
    }

    /// Writes the engine snapshot (when this app keeps one and the engine moved since it was
    /// last written or read), atomically, on a blocking thread. Returns the position written.
    pub async fn write_snapshot(&self) -> Result<Option<i64>, AppError> {
        let Some(file) = &self.snapshot else {
            return Ok(None);
        };
        let _one = file.writing.lock().await;
        // The engine reflects at least `applied` (layers may be further on, which following
        // from `applied` again after a restart only repeats).
        let seq = self.applied.load(Ordering::SeqCst);
        if file.written.load(Ordering::SeqCst) == seq {
            return Ok(None);
        }
        let head = self.store.log_head().await?;
        let Some(fingerprint) = self.store.change_fingerprint(seq).await? else {
            // Pruned already: a snapshot at this position could not be checked at start.
            return Ok(None);
        };
        let head = SnapshotHead {
            instance: head.instance,
            seq,
            fingerprint,
        };
        let engine = Arc::clone(&self.engine);
        let path = file.path.clone();
        let t = std::time::Instant::now();
        let size = tokio::task::spawn_blocking(move || snapshot::write(&engine, &head, &path))
            .await
            .map_err(|e| AppError::Task(e.to_string()))?
            .map_err(|e| AppError::Task(format!("{}: {e}", file.path.display())))?;
        file.written.store(seq, Ordering::SeqCst);
        tracing::info!(path = %file.path.display(), seq, bytes = size, seconds = t.elapsed().as_secs_f64(), "engine snapshot written");
        Ok(Some(seq))
    }

    /// Change-log entries applied since the snapshot was last written (`None`: no snapshot kept).
    pub fn changes_since_snapshot(&self) -> Option<i64> {
        let file = self.snapshot.as_ref()?;
        Some(self.applied_change() - file.written.load(Ordering::SeqCst).max(0))
    }

    /// An app over an engine built elsewhere (benchmarks, tools); the change log is taken as applied.
    pub async fn from_parts(store: Store, engine: Engine) -> Result<App, AppError> {
        let applied = store.last_change().await?;
        Ok(App::assemble(store, engine, applied, None))
    }

    /// The newest change-log entry the engine reflects: the database's newest minus this is how
    /// far this process is behind.
    pub fn applied_change(&self) -> i64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Writes features through the store (one transaction) and then shows them to readers all
    /// at once.
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

    /// Streams a GeoJSON FeatureCollection (or single Feature) into layer `layer` with
    /// [`import_geojson`], then shows the result to readers all at once.
    pub async fn import_geojson(
        &self,
        layers: &[Layer],
        layer: &str,
        input: GeoJsonInput,
        options: StreamOptions,
        mode: ImportMode,
    ) -> Result<GeoJsonImport, AppError> {
        let done = import_geojson(&self.store, layers, layer, input, options, mode, None).await?;
        self.catch_up().await?;
        Ok(done)
    }

    /// Applies everything the change log holds beyond what the engine reflects, in one step per
    /// layer (see [`Engine::apply`]): a reader never sees part of an import. Returns how many
    /// change-log entries that was.
    pub async fn catch_up(&self) -> Result<usize, AppError> {
        // One at a time: an older snapshot applied after a newer one would step readers back.
        let _one_at_a_time = self.catching_up.lock().await;
        let from = self.applied.load(Ordering::SeqCst);
        // A reloaded layer's rows come from the store's snapshot a chunk at a time, and are
        // checked and kept (compact) on every core as the next is read: never the whole layer
        // decoded, beside the old index and the new one. The loader's thread starts only when
        // rows come, not at every look at the log.
        let (rows, mut received) = tokio::sync::mpsc::channel::<Vec<crate::model::RawFeature>>(2);
        let read = async move { self.store.changes_after(from, RELOAD_ABOVE, &rows).await };
        let build = async move {
            let Some(first) = received.recv().await else {
                return Ok(std::collections::BTreeMap::new());
            };
            tokio::task::spawn_blocking(move || {
                let mut loader = crate::engine::EngineLoader::open();
                loader.add(first)?;
                while let Some(chunk) = received.blocking_recv() {
                    loader.add(chunk)?;
                }
                Ok(loader.finish_layers())
            })
            .await
            .map_err(|e| AppError::Task(e.to_string()))?
            .map_err(corrupt)
        };
        let (read, built) = tokio::join!(read, build);
        let (set, mut built) = match (read, built) {
            (Ok(Some(set)), Ok(built)) => (set, built),
            (Ok(None), Ok(_)) => return Ok(0),
            (Err(e), _) => {
                self.follow_stats.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
            (_, Err(e)) => {
                self.follow_stats.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let gone = if set.complete {
            tracing::warn!(
                applied = from,
                "the change log was pruned past this process's position; reloading every layer"
            );
            gone_layers(&self.engine, &set.layers)
        } else {
            Vec::new()
        };
        let mut updates: Vec<LayerUpdate> = set
            .layers
            .into_iter()
            .map(|c| match (c.current, c.features) {
                (None, _) => LayerUpdate::Remove(c.layer),
                (Some((layer, revision)), ChangedFeatures::Reloaded) => {
                    let mut index = built.remove(&layer.id).unwrap_or_else(|| {
                        crate::engine::LayerIndex::build(layer.clone(), revision, vec![])
                    });
                    index.layer = layer;
                    index.revision = revision;
                    LayerUpdate::Reload(index)
                }
                (Some((layer, revision)), ChangedFeatures::Changed { upserts, deleted }) => {
                    LayerUpdate::Change {
                        layer,
                        revision,
                        upserts,
                        deletes: deleted,
                    }
                }
            })
            .collect();
        updates.extend(gone);
        let stats = &self.follow_stats;
        for u in &updates {
            let counter = match u {
                LayerUpdate::Reload { .. } => &stats.layer_reloads,
                LayerUpdate::Change { .. } => &stats.layer_updates,
                LayerUpdate::Remove(_) => continue,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        // Building a reloaded layer's R-tree is CPU work: off the async workers.
        let engine = Arc::clone(&self.engine);
        tokio::task::spawn_blocking(move || engine.apply(updates))
            .await
            .map_err(|e| AppError::Task(e.to_string()))?;
        self.applied.fetch_max(set.upto, Ordering::SeqCst);
        stats
            .changes_applied
            .fetch_add(set.changes as u64, Ordering::Relaxed);
        Ok(set.changes)
    }

    /// Follows the change log every `interval` until the process ends, so that writes by other
    /// processes (a CLI import, another server) show without a restart.
    pub fn follow(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // Polling by sequence number is the fallback; on PostgreSQL a NOTIFY wakes it early.
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = app.store.changed() => {}
                }
                match app.catch_up().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(changes = n, "applied changes from the change log"),
                    Err(e) => tracing::warn!(error = %e, "could not follow the change log"),
                }
            }
        })
    }
}

/// Change-log entries applied after which [`App::keep_snapshot`] writes the snapshot again.
pub const SNAPSHOT_EVERY: i64 = 100_000;

impl App {
    /// Keeps the engine snapshot current until the process ends: writes it once now when none
    /// was read at start, then whenever [`SNAPSHOT_EVERY`] changes have been applied since
    /// (looking every `interval`). Does nothing for an app without a snapshot file.
    pub fn keep_snapshot(
        self: &Arc<Self>,
        interval: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let file = self.snapshot.as_ref()?;
        let mut due = file.written.load(Ordering::SeqCst) < 0;
        let app = Arc::clone(self);
        Some(tokio::spawn(async move {
            loop {
                if due {
                    if let Err(e) = app.write_snapshot().await {
                        tracing::warn!(error = %e, "could not write the engine snapshot");
                    }
                }
                tokio::time::sleep(interval).await;
                due = app
                    .changes_since_snapshot()
                    .is_some_and(|n| n >= SNAPSHOT_EVERY);
            }
        }))
    }
}

/// The engine's layers that a complete change set (every layer of the database) lacks.
fn gone_layers(engine: &Engine, present: &[crate::store::LayerChanges]) -> Vec<LayerUpdate> {
    engine
        .layer_ids()
        .into_iter()
        .filter(|id| !present.iter().any(|c| &c.layer == id))
        .map(LayerUpdate::Remove)
        .collect()
}

/// The engine of the snapshot at `path` and the position it reflects, if it belongs to `store`'s
/// database and history; otherwise why not.
async fn read_snapshot(store: &Store, path: &std::path::Path) -> Result<(Engine, i64), String> {
    let path = path.to_path_buf();
    let snap = tokio::task::spawn_blocking(move || Snapshot::open(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let head = store.log_head().await.map_err(|e| e.to_string())?;
    let seq = snap.head.seq;
    if snap.head.instance != head.instance {
        return Err("written from another database".into());
    }
    if seq > head.seq {
        return Err(format!(
            "written at change {seq}, beyond this database's newest ({})",
            head.seq
        ));
    }
    let here = store
        .change_fingerprint(seq)
        .await
        .map_err(|e| e.to_string())?;
    if here.as_deref() != Some(snap.head.fingerprint.as_str()) {
        return Err(format!(
            "the change log no longer holds change {seq} as the snapshot saw it"
        ));
    }
    let engine = tokio::task::spawn_blocking(move || snap.load())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok((engine, seq))
}

/// Loads every stored feature into a new engine: the store reads rows while the engine checks
/// and keeps the previous chunk on every core (issue 15: start in seconds).
async fn load_engine(store: &Store) -> Result<Engine, AppError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<crate::model::RawFeature>>(2);
    let mut loader = Engine::loader(store.layers().await?);
    let build = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            loader.add(chunk)?;
        }
        Ok(loader.finish())
    });
    let read = store.raw_features(8192, tx).await;
    let built: Result<Engine, crate::engine::CorruptFeature> =
        build.await.map_err(|e| AppError::Task(e.to_string()))?;
    read?;
    built.map_err(corrupt)
}

/// The error of a stored row the engine could not read.
fn corrupt(c: crate::engine::CorruptFeature) -> AppError {
    AppError::Store(StoreError::Corrupt {
        layer: c.layer,
        id: c.id,
        reason: c.reason,
    })
}

/// Where the GeoJSON of an import comes from.
pub enum GeoJsonInput {
    /// A body already in memory (an HTTP request).
    Memory(Box<dyn AsRef<[u8]> + Send>),
    /// A file or standard input, read as the import goes.
    Reader(Box<dyn std::io::Read + Send>),
}

/// What a GeoJSON import read and wrote.
#[derive(Debug, Clone)]
pub struct GeoJsonImport {
    pub summaries: Vec<ImportSummary>,
    pub read: StreamSummary,
}

/// Imports a GeoJSON FeatureCollection into layer `layer` in one transaction, decoding it on a
/// blocking thread while the store writes what was decoded, [`IMPORT_BATCH`] features at a
/// time: memory stays a few batches whatever the size of the input. Any invalid feature (or
/// a syntax error, even at the very end) rolls everything back: [`AppError::Decode`].
/// `layers` are created or updated first, as with [`Store::import`].
pub async fn import_geojson(
    store: &Store,
    layers: &[Layer],
    layer: &str,
    input: GeoJsonInput,
    options: StreamOptions,
    mode: ImportMode,
    progress: Progress<'_>,
) -> Result<GeoJsonImport, AppError> {
    let actor = crate::store::Actor::cli(None);
    import_geojson_as(store, layers, layer, input, options, mode, progress, &actor).await
}

/// [`import_geojson`] on behalf of `actor` (kept in the history and audit rows).
#[allow(clippy::too_many_arguments)]
pub async fn import_geojson_as(
    store: &Store,
    layers: &[Layer],
    layer: &str,
    input: GeoJsonInput,
    options: StreamOptions,
    mode: ImportMode,
    progress: Progress<'_>,
    actor: &crate::store::Actor,
) -> Result<GeoJsonImport, AppError> {
    let (mut batches, rx) = Batcher::channel();
    let layer_id = layer.to_string();
    let options = StreamOptions {
        store_checks_repeats: true,
        ..options
    };
    let decoder = tokio::task::spawn_blocking(move || {
        let read = {
            let mut sink = |f: Feature| batches.push(f);
            match input {
                GeoJsonInput::Memory(bytes) => stream_feature_collection(
                    serde_json::de::SliceRead::new((*bytes).as_ref()),
                    &layer_id,
                    &options,
                    &mut sink,
                ),
                GeoJsonInput::Reader(r) => stream_feature_collection(
                    serde_json::de::IoRead::new(std::io::BufReader::with_capacity(1 << 16, r)),
                    &layer_id,
                    &options,
                    &mut sink,
                ),
            }
        };
        if read.is_ok() {
            batches.commit();
        }
        read
    });
    // An id repeated in the file is found by the store, which keeps none of the ids it wrote.
    let stored = store
        .import_batches_as(layers, rx, mode, Ids::Once, progress, actor)
        .await;
    let (read, summaries) = import_outcome(decoder, "GeoJSON decoder", stored, |e| {
        matches!(e, DecodeError::Cancelled)
    })
    .await?;
    Ok(GeoJsonImport { summaries, read })
}

/// A decoder's features on their way to the store, [`IMPORT_BATCH`] at a time, sent from the
/// decoder's blocking thread as each batch fills. A few batches in flight keep decoding and
/// writing busy at once, and memory bounded.
struct Batcher {
    tx: tokio::sync::mpsc::Sender<Batch>,
    batch: Vec<Feature>,
}

impl Batcher {
    /// A batcher and the receiver the store reads from.
    fn channel() -> (Batcher, tokio::sync::mpsc::Receiver<Batch>) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(4);
        let batch = Vec::with_capacity(IMPORT_BATCH);
        (Batcher { tx, batch }, rx)
    }

    /// Adds `f`; false once the store has gone (the receiver was dropped): the decoder stops.
    fn push(&mut self, f: Feature) -> bool {
        self.batch.push(f);
        if self.batch.len() < IMPORT_BATCH {
            return true;
        }
        let full = std::mem::replace(&mut self.batch, Vec::with_capacity(IMPORT_BATCH));
        self.tx.blocking_send(Batch::Features(full)).is_ok()
    }

    /// The channel itself, for a decoder that sends whole batches of its own.
    fn sender(&self) -> tokio::sync::mpsc::Sender<Batch> {
        self.tx.clone()
    }

    /// After the whole input was read without a problem: the last batch, then the commit.
    fn commit(self) {
        // The store has gone if these fail; its error is the one to report.
        let _ = self.tx.blocking_send(Batch::Features(self.batch));
        let _ = self.tx.blocking_send(Batch::Commit);
    }
}

/// A streamed import's outcome from its decoder's and its store's results: the decoder's
/// error when the input was bad (unless `cancelled` says it only stopped because the store had
/// gone), else the store's.
async fn import_outcome<T, E: Into<AppError>>(
    decoder: tokio::task::JoinHandle<Result<T, E>>,
    what: &str,
    stored: Result<Vec<ImportSummary>, StoreError>,
    cancelled: impl Fn(&E) -> bool,
) -> Result<(T, Vec<ImportSummary>), AppError> {
    let read = decoder
        .await
        .map_err(|e| AppError::Task(format!("{what}: {e}")))?;
    match (read, stored) {
        (Ok(read), Ok(summaries)) => Ok((read, summaries)),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), Err(stored)) if cancelled(&e) => Err(stored.into()),
        (Err(e), _) => Err(e.into()),
    }
}

/// A file to import, read from disk as the import goes.
#[derive(Debug, Clone)]
pub enum FileInput {
    /// A zipped Shapefile (or several).
    ShapefileZip(std::path::PathBuf),
    /// A GeoPackage.
    GeoPackage(std::path::PathBuf),
}

/// What a file import read and wrote.
#[derive(Debug, Clone)]
pub struct FileImport {
    pub summaries: Vec<ImportSummary>,
    pub read: StreamedLayers,
}

/// The decoder of a file import: its result once it has read the whole file.
pub type FileDecoder = tokio::task::JoinHandle<Result<StreamedLayers, ImportError>>;

/// Starts reading `input` on a blocking thread, every feature into layer `layer`, in CRS `crs`
/// if given (else the file's). The batches come out of the receiver, [`IMPORT_BATCH`] features
/// at a time, and [`Batch::Commit`] only once the whole file was read without a problem; a
/// file with a bad record ends the stream without it (the decoder's result says why), so a
/// store fed from the receiver rolls everything back. Dropping the receiver stops the decoder
/// ([`ImportError::Cancelled`]).
pub fn decode_file(
    input: FileInput,
    layer: &str,
    crs: Option<Crs>,
) -> (tokio::sync::mpsc::Receiver<Batch>, FileDecoder) {
    let (mut batches, rx) = Batcher::channel();
    let tx = batches.sender();
    let layer = layer.to_string();
    let handle = tokio::runtime::Handle::current();
    let decoder = tokio::task::spawn_blocking(move || {
        let mut sink = |mut f: Feature| {
            f.layer.clone_from(&layer);
            batches.push(f)
        };
        let read = match &input {
            FileInput::ShapefileZip(path) => crate::formats::stream_shapefile_zip(
                &|| {
                    std::fs::File::open(path).map(|f| std::io::BufReader::with_capacity(1 << 16, f))
                },
                crs.as_ref(),
                &mut sink,
            ),
            FileInput::GeoPackage(path) => {
                // sqlx reads the file asynchronously: driven from this blocking thread.
                let emit = |mut features: Vec<Feature>| {
                    for f in &mut features {
                        f.layer.clone_from(&layer);
                    }
                    let tx = tx.clone();
                    async move { tx.send(Batch::Features(features)).await.is_ok() }
                };
                handle.block_on(crate::formats::gpkg::stream_geopackage(
                    path,
                    crs.as_ref(),
                    IMPORT_BATCH,
                    emit,
                ))
            }
        };
        if read.is_ok() {
            batches.commit();
        }
        read
    });
    (rx, decoder)
}

/// Imports a file into layer `layer` in one transaction on behalf of `actor`, decoding it
/// (see [`decode_file`]) while the store writes what was decoded: memory stays a few batches
/// whatever the size of the file. Any unusable record rolls everything back:
/// [`AppError::Import`]. `layers` are created or updated first, as with [`Store::import`].
#[allow(clippy::too_many_arguments)]
pub async fn import_file_as(
    store: &Store,
    layers: &[Layer],
    layer: &str,
    input: FileInput,
    crs: Option<Crs>,
    mode: ImportMode,
    progress: Progress<'_>,
    actor: &crate::store::Actor,
) -> Result<FileImport, AppError> {
    let (rx, decoder) = decode_file(input, layer, crs);
    // The decoders take a column as the ids only when no value repeats (or number the records).
    let stored = store
        .import_batches_as(layers, rx, mode, Ids::Repeatable, progress, actor)
        .await;
    file_import_result(decoder, stored).await
}

/// The outcome of a file import from its decoder's and its store's results: the decoder's
/// error when the file was bad, else the store's.
pub async fn file_import_result(
    decoder: FileDecoder,
    stored: Result<Vec<ImportSummary>, StoreError>,
) -> Result<FileImport, AppError> {
    let (read, summaries) = import_outcome(decoder, "file decoder", stored, |e| {
        matches!(e, ImportError::Cancelled)
    })
    .await?;
    Ok(FileImport { summaries, read })
}
