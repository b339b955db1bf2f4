//! The engine snapshot (issue 15, start in seconds): a server started from it answers as one
//! loaded from the database does, sees changes written after it, and never serves a damaged,
//! foreign or outdated one.

mod common;

use std::path::Path;
use std::sync::Arc;

use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;
use yizhangtu::http::AppState;
use yizhangtu::model::Feature;
use yizhangtu::store::{Actor, ImportMode, StoreOptions};

/// Opens the app on `db` with the snapshot file `snap`; says whether the snapshot was used.
async fn open(db: &str, snap: &Path) -> (Arc<App>, bool) {
    let (app, used) = App::open_with_snapshot(db, true, None, &StoreOptions::default(), snap)
        .await
        .expect("open");
    (Arc::new(app), used)
}

/// A seeded database in a new directory, its app, and the snapshot written of it.
async fn snapshotted() -> (tempfile::TempDir, String, std::path::PathBuf, Arc<App>) {
    let dir = tempfile::tempdir().unwrap();
    let db = common::test_db(dir.path(), "s.db").await;
    let snap = dir.path().join("s.snapshot");
    let (app, _) = open(&db, &snap).await;
    app.write_snapshot().await.unwrap().expect("written");
    (dir, db, snap, app)
}

/// Everything the engine holds, layer by layer: id, revision and every feature in order.
fn contents(app: &App) -> Vec<(String, u64, Vec<Feature>)> {
    app.engine
        .layers()
        .iter()
        .map(|l| {
            let l = l.read();
            let features = l.iter().map(|(_, f)| (*f).clone()).collect();
            (l.layer.id.clone(), l.revision, features)
        })
        .collect()
}

/// What a client gets over HTTP: pages of items by bbox and tiles, as bytes.
async fn answers(app: &Arc<App>) -> Vec<(String, Vec<u8>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(Arc::clone(app), HttpSettings::default());
    let server = tokio::spawn(async move { yizhangtu::http::serve(listener, state).await });
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for path in [
        "/collections/villages/items?bbox=105.6,29.5,105.8,29.7&limit=1000",
        "/collections/towns/items?limit=1000",
        "/collections/town_seats/items?bbox=105.5,29.4,106.0,29.9&limit=1000",
        "/tiles/towns,town_seats/12/3251/1695.mvt",
        "/tiles/villages/14/13006/6780.mvt",
        "/tiles/villages/10/812/423.mvt",
    ] {
        let r = client.get(format!("{base}{path}")).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let body = r.bytes().await.unwrap().to_vec();
        let body = if path.contains("/items") {
            // The ids of the page (the response also holds a timestamp).
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let ids: Vec<String> = v["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].to_string())
                .collect();
            assert!(!ids.is_empty(), "{path} found nothing");
            ids.join(",").into_bytes()
        } else {
            body
        };
        out.push((path.to_string(), body));
    }
    server.abort();
    out
}

#[tokio::test]
async fn a_snapshot_serves_what_the_database_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::test_db(dir.path(), "s.db").await;
    let snap = dir.path().join("s.snapshot");
    let (app, used) = open(&db, &snap).await;
    assert!(!used, "no snapshot yet");
    let seq = app.write_snapshot().await.unwrap().expect("written");
    assert_eq!(seq, app.applied_change());
    // Nothing changed since: not written again.
    assert_eq!(app.write_snapshot().await.unwrap(), None);
    let (want, want_http) = (contents(&app), answers(&app).await);
    drop(app);

    let (app, used) = open(&db, &snap).await;
    assert!(used, "the snapshot was not used");
    assert_eq!(app.applied_change(), seq);
    assert_eq!(contents(&app), want);
    assert_eq!(answers(&app).await, want_http);
    assert_eq!(app.changes_since_snapshot(), Some(0));
}

#[tokio::test]
async fn changes_after_the_snapshot_show_after_a_restart() {
    let (_dir, db, snap, app) = snapshotted().await;
    // Written by another process: the snapshot is not rewritten.
    let gone = app
        .engine
        .layer("villages")
        .unwrap()
        .read()
        .iter()
        .next()
        .unwrap()
        .1;
    let mut added = (*gone).clone();
    added.id = "新-1".into();
    added.name = Some("新村".into());
    drop(app);
    let store = yizhangtu::store::Store::open(&db).await.unwrap();
    store
        .delete_feature("villages", &gone.id, gone.version, &Actor::cli(None))
        .await
        .unwrap();
    store
        .import(&[], vec![added], ImportMode::Upsert, None)
        .await
        .unwrap();
    drop(store);

    let (app, used) = open(&db, &snap).await;
    assert!(used, "the snapshot was not used");
    let villages = app.engine.layer("villages").unwrap();
    assert!(villages.read().get(&gone.id).is_none());
    assert_eq!(
        villages.read().get("新-1").unwrap().name.as_deref(),
        Some("新村")
    );
    // The same as loading from the database alone.
    let cold = App::open(&db, false, None).await.unwrap();
    let ids = |c: Vec<(String, u64, Vec<Feature>)>| {
        c.into_iter()
            .map(|(l, _, fs)| {
                let mut fs: Vec<Feature> = fs;
                fs.sort_by(|a, b| a.id.cmp(&b.id));
                (l, fs)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(contents(&app)), ids(contents(&cold)));
    assert_eq!(app.applied_change(), cold.applied_change());
}

#[tokio::test]
async fn a_damaged_foreign_or_unknown_snapshot_is_not_used() {
    let (dir, db, snap, app) = snapshotted().await;
    let (want, want_http) = (contents(&app), answers(&app).await);
    drop(app);
    let good = std::fs::read(&snap).unwrap();

    // Another database with the same content has another identity.
    let other_dir = tempfile::tempdir().unwrap();
    let other_db = common::test_db(other_dir.path(), "o.db").await;
    let other_snap = other_dir.path().join("o.snapshot");
    let (other, _) = open(&other_db, &other_snap).await;
    other.write_snapshot().await.unwrap().expect("written");
    drop(other);
    let foreign = std::fs::read(&other_snap).unwrap();

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let mut in_header = good.clone();
    in_header[20] ^= 0x01;
    let cases: [(&str, Vec<u8>); 5] = [
        ("truncated", good[..good.len() - 100].to_vec()),
        ("a flipped bit", flipped),
        ("a flipped bit in the header", in_header),
        ("another database's", foreign),
        (
            "not a snapshot",
            b"{\"type\":\"FeatureCollection\"}".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        std::fs::write(&snap, &bytes).unwrap();
        let (app, used) = open(&db, &snap).await;
        assert!(!used, "{what}: used");
        assert_eq!(contents(&app), want, "{what}");
        assert_eq!(answers(&app).await, want_http, "{what}");
        // Rewritten for the next start.
        assert!(app.write_snapshot().await.unwrap().is_some(), "{what}");
        drop(app);
        assert_eq!(std::fs::read(&snap).unwrap().len(), good.len(), "{what}");
    }

    // A snapshot of a history the database does not have: the log's entry at the snapshot's
    // position differs (the database was restored from an older copy, then written to).
    let copy = dir.path().join("copy.db");
    let (app, _) = open(&db, &snap).await;
    app.write_snapshot().await.unwrap();
    drop(app);
    if !db.starts_with("postgres") {
        // The database with its write-ahead log, as a backup tool would take it.
        for suffix in ["", "-wal", "-shm"] {
            let from = format!("{db}{suffix}");
            if Path::new(&from).exists() {
                std::fs::copy(&from, format!("{}{suffix}", copy.display())).unwrap();
            }
        }
        delete_one(&db, "towns").await;
        let (app, _) = open(&db, &snap).await;
        assert!(app.write_snapshot().await.unwrap().is_some());
        drop(app);
        // The copy is at the older position; write something else there.
        let copy_db = copy.to_str().unwrap().to_string();
        delete_one(&copy_db, "villages").await;
        let (app, used) = open(&copy_db, &snap).await;
        assert!(!used, "a snapshot of another history was used");
        let cold = App::open(&copy_db, false, None).await.unwrap();
        assert_eq!(contents(&app), contents(&cold));
    }
}

/// Deletes a feature of `layer` through another store, as another process would.
async fn delete_one(db: &str, layer: &str) {
    let store = yizhangtu::store::Store::open(db).await.unwrap();
    let f = store
        .all_features()
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.layer == layer)
        .unwrap();
    store
        .delete_feature(layer, &f.id, f.version, &Actor::cli(None))
        .await
        .unwrap();
}

#[tokio::test]
async fn without_a_file_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::test_db(dir.path(), "s.db").await;
    let app = App::open(&db, true, None).await.unwrap();
    assert_eq!(app.write_snapshot().await.unwrap(), None);
    assert_eq!(app.changes_since_snapshot(), None);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("snapshot")), "{names:?}");
}
