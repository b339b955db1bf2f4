//! Writes (issue 10, repros 6–8): an import shows to readers all at once, a write waits for
//! another writer (or gets 503 with Retry-After, never 500), and a streamed import stores
//! exactly what the file says and nothing at all when any feature is bad.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection, Row};
use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;
use yizhangtu::http::AppState;
use yizhangtu::model::{Feature, Layer};
use yizhangtu::store::{ImportMode, Store, StoreOptions};

use common::run;

/// A server over `app`, on an ephemeral port; returns its base URL.
async fn serve(app: Arc<App>) -> String {
    app.follow(Duration::from_millis(50));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(app, HttpSettings::default());
    tokio::spawn(async move { yizhangtu::http::serve(listener, state).await.unwrap() });
    format!("http://{addr}")
}

/// A point feature of `layer` with id `p{i}` somewhere in Chongqing.
fn point(layer: &str, i: usize) -> Feature {
    let mut props = serde_json::Map::new();
    props.insert("n".into(), i.into());
    let x = 105.5 + (i % 1000) as f64 * 0.001;
    let y = 29.0 + (i / 1000) as f64 * 0.001;
    Feature::from_parts(
        layer,
        format!("p{i}"),
        props,
        Some(geo::Geometry::Point(geo::Point::new(x, y))),
    )
}

/// The same points as a GeoJSON FeatureCollection.
fn points_geojson(from: usize, to: usize) -> String {
    let features: Vec<String> = (from..to)
        .map(|i| {
            let x = 105.5 + (i % 1000) as f64 * 0.001;
            let y = 29.0 + (i / 1000) as f64 * 0.001;
            format!(
                r#"{{"type":"Feature","id":"p{i}","properties":{{"n":{i}}},"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"type":"FeatureCollection","features":[{}]}}"#,
        features.join(",\n")
    )
}

/// Watches the engine's count of `layer` on a thread of its own, as fast as it can, until
/// stopped; returns every count it saw.
fn watch_count(
    app: &Arc<App>,
    layer: &str,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeSet<usize>> {
    let (app, layer, stop) = (Arc::clone(app), layer.to_string(), Arc::clone(stop));
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        while !stop.load(Ordering::Relaxed) {
            let n = app.engine.layer(&layer).map_or(0, |l| l.read().len());
            seen.insert(n);
        }
        seen
    })
}

async fn number_matched(client: &reqwest::Client, base: &str, layer: &str) -> Option<u64> {
    let r = client
        .get(format!("{base}/collections/{layer}/items?limit=1"))
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json::<serde_json::Value>().await.ok()?["numberMatched"].as_u64()
}

/// Repro 6: a CLI import (another process) of 30,000 features into a layer a running server
/// serves. Readers (the engine and HTTP) must see the old count or the new one, nothing between
/// (the follower used to apply the change log 10,000 rows at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_by_another_process_shows_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap().to_string();
    let app = Arc::new(App::open(&db, false, None).await.unwrap());
    let old = 700;
    app.import(
        &[Layer::untitled("parcels")],
        (0..old).map(|i| point("parcels", i)).collect(),
        ImportMode::Upsert,
    )
    .await
    .unwrap();
    let base = serve(Arc::clone(&app)).await;
    let new = old + 30_000;
    let file = dir.path().join("more.geojson");
    std::fs::write(&file, points_geojson(old, new)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_count(&app, "parcels", &stop);
    let import = std::thread::spawn({
        let (file, db) = (file.clone(), db.clone());
        move || import_file(&file, "parcels", &db)
    });
    let client = reqwest::Client::new();
    let mut over_http = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(n) = number_matched(&client, &base, "parcels").await {
            over_http.insert(n as usize);
            if n as usize == new {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the import never showed: {over_http:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, out, err) = import.join().unwrap();
    assert!(ok && out.contains("30000 inserted"), "{out}{err}");
    let seen = watcher.join().unwrap();
    let allowed: BTreeSet<usize> = [old, new].into();
    assert!(
        seen.is_subset(&allowed),
        "the engine showed part of an import: {seen:?}"
    );
    assert!(
        over_http.is_subset(&allowed),
        "HTTP showed part of an import: {over_http:?}"
    );
}

/// Repro 6, in-process: `App::import` (what a POST does) is atomic for readers too, and so is a
/// second store handle writing to the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_in_process_or_by_another_connection_shows_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap().to_string();
    let app = Arc::new(App::open(&db, false, None).await.unwrap());
    app.import(
        &[Layer::untitled("parcels")],
        (0..10).map(|i| point("parcels", i)).collect(),
        ImportMode::Upsert,
    )
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_count(&app, "parcels", &stop);
    // In process: 25,000 more.
    app.import(
        &[],
        (10..25_010).map(|i| point("parcels", i)).collect(),
        ImportMode::Upsert,
    )
    .await
    .unwrap();
    assert_eq!(app.engine.layer("parcels").unwrap().read().len(), 25_010);
    // Another connection: 25,000 more, then a follow-up.
    let other = Store::open(&db).await.unwrap();
    other
        .import(
            &[],
            (25_010..50_010).map(|i| point("parcels", i)).collect(),
            ImportMode::Upsert,
            None,
        )
        .await
        .unwrap();
    other.close().await;
    app.catch_up().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert_eq!(app.engine.layer("parcels").unwrap().read().len(), 50_010);
    let allowed: BTreeSet<usize> = [10, 25_010, 50_010].into();
    assert!(
        seen.is_subset(&allowed),
        "readers saw part of an import: {seen:?}"
    );
}

/// Opens a second connection to `db` and takes SQLite's write lock with a real write, as a
/// CLI import does for the whole of its transaction.
async fn hold_write_lock(db: &str) -> sqlx::SqliteConnection {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS other_writer (x INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO other_writer VALUES (1)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn post_points(
    client: &reqwest::Client,
    base: &str,
    from: usize,
    to: usize,
) -> reqwest::Response {
    client
        .post(format!("{base}/collections/parcels/items"))
        .header("content-type", "application/geo+json")
        .body(points_geojson(from, to))
        .send()
        .await
        .unwrap()
}

/// Repro 7: a POST while another connection holds a write transaction waits for it (busy
/// timeout) and succeeds, instead of failing at once with "database is locked" (500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_waits_for_another_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap().to_string();
    let app = Arc::new(App::open(&db, false, None).await.unwrap());
    app.import(
        &[Layer::untitled("parcels")],
        (0..5).map(|i| point("parcels", i)).collect(),
        ImportMode::Upsert,
    )
    .await
    .unwrap();
    let base = serve(Arc::clone(&app)).await;
    let client = common::admin_client(&app).await;

    let mut other = hold_write_lock(&db).await;
    let post = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move { post_points(&client, &base, 5, 505).await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !post.is_finished(),
        "the POST did not wait for the other writer"
    );
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let r = post.await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["inserted"], 500);
    assert_eq!(app.engine.layer("parcels").unwrap().read().len(), 505);
}

/// Repro 7: when the other writer holds on longer than the busy timeout, the POST gets a
/// 503 JSON problem with Retry-After, nothing is written, and a retry afterwards succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_after_the_busy_timeout_gets_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap().to_string();
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(300),
    };
    let app = Arc::new(App::open_with(&db, false, None, &options).await.unwrap());
    app.import(
        &[Layer::untitled("parcels")],
        (0..5).map(|i| point("parcels", i)).collect(),
        ImportMode::Upsert,
    )
    .await
    .unwrap();
    let base = serve(Arc::clone(&app)).await;
    let client = common::admin_client(&app).await;

    let mut other = hold_write_lock(&db).await;
    let r = post_points(&client, &base, 5, 505).await;
    assert_eq!(r.status(), 503);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "Busy", "{body}");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    assert_eq!(app.engine.layer("parcels").unwrap().read().len(), 5);
    let r = post_points(&client, &base, 5, 505).await;
    assert_eq!(r.status(), 201);
    assert_eq!(app.engine.layer("parcels").unwrap().read().len(), 505);
}

/// A mixed FeatureCollection: every geometry type, holes, null geometry, nested properties,
/// string and numeric ids, features without an id (numbered by the store).
fn mixed_collection(n: usize) -> String {
    let mut features = Vec::with_capacity(n);
    for i in 0..n {
        let x = 105.3 + (i % 200) as f64 * 0.01 + 0.000_123_456_789;
        let y = 28.5 + (i / 200) as f64 * 0.01 + 0.000_987_654_321;
        let geometry = match i % 7 {
            0 => format!(r#"{{"type":"Point","coordinates":[{x},{y},312.5]}}"#),
            1 => format!(
                r#"{{"type":"Polygon","coordinates":[[[{x},{y}],[{},{y}],[{},{}],[{x},{}],[{x},{y}]],[[{},{}],[{},{}],[{},{}],[{},{}]]]}}"#,
                x + 0.004,
                x + 0.004,
                y + 0.004,
                y + 0.004,
                x + 0.001,
                y + 0.001,
                x + 0.002,
                y + 0.001,
                x + 0.002,
                y + 0.002,
                x + 0.001,
                y + 0.001
            ),
            2 => format!(
                r#"{{"type":"MultiPolygon","coordinates":[[[[{x},{y}],[{},{y}],[{x},{}],[{x},{y}]]],[[[{},{}],[{},{}],[{},{}],[{},{}]]]]}}"#,
                x + 0.002,
                y + 0.002,
                x + 0.005,
                y + 0.005,
                x + 0.006,
                y + 0.005,
                x + 0.006,
                y + 0.006,
                x + 0.005,
                y + 0.005
            ),
            3 => format!(
                r#"{{"type":"LineString","coordinates":[[{x},{y}],[{},{}],[{},{y}]]}}"#,
                x + 0.003,
                y + 0.001,
                x + 0.005
            ),
            4 => format!(
                r#"{{"type":"MultiPoint","coordinates":[[{x},{y}],[{},{}]]}}"#,
                x + 0.001,
                y + 0.001
            ),
            5 => format!(
                r#"{{"type":"MultiLineString","coordinates":[[[{x},{y}],[{},{y}]],[[{x},{}],[{},{}]]]}}"#,
                x + 0.002,
                y + 0.001,
                x + 0.002,
                y + 0.001
            ),
            _ => "null".to_string(),
        };
        let id = match i % 3 {
            0 => format!(r#""id":"f-{i}","#),
            1 => format!(r#""id":{},"#, 100_000 + i),
            _ => String::new(),
        };
        features.push(format!(
            r#"{{"type":"Feature",{id}"properties":{{"name":"地块{i}","admin_code":"500111{:03}","area_mu":{}.25,"tags":["菜","{i}"],"meta":{{"ok":true,"note":null}},"z":-{i}}},"geometry":{geometry}}}"#,
            i % 1000,
            i
        ));
    }
    format!(
        "{{\"type\":\"FeatureCollection\",\"name\":\"test\",\"features\":[\n{}\n]}}",
        features.join(",\n")
    )
}

/// What the file says, read independently with the `geojson` crate: (id or None, name,
/// admin_code, the other properties as JSON text, the geometry).
type Expected = (
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<geo::Geometry<f64>>,
);

fn expected(text: &str) -> Vec<Expected> {
    let fc =
        geojson::FeatureCollection::try_from(text.parse::<geojson::GeoJson>().unwrap()).unwrap();
    fc.features
        .into_iter()
        .map(|f| {
            let id = f.id.as_ref().map(|id| match id {
                geojson::feature::Id::String(s) => s.clone(),
                geojson::feature::Id::Number(n) => n.to_string(),
            });
            let mut props = f.properties.clone().unwrap_or_default();
            let name = props
                .shift_remove("name")
                .and_then(|v| v.as_str().map(String::from));
            let code = props
                .shift_remove("admin_code")
                .and_then(|v| v.as_str().map(String::from));
            let geometry = f
                .geometry
                .map(|g| geo::Geometry::<f64>::try_from(g.value).unwrap());
            (
                id,
                name,
                code,
                serde_json::to_string(&props).unwrap(),
                geometry,
            )
        })
        .collect()
}

/// Every stored feature of `layer`, in insertion order: (id, name, admin_code, properties,
/// geometry bytes, version).
type Row6 = (
    String,
    Option<String>,
    Option<String>,
    String,
    Option<Vec<u8>>,
    i64,
);

async fn stored(db: &str, layer: &str) -> Vec<Row6> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::query("SELECT id, name, admin_code, properties, geometry, version FROM features WHERE layer = ? ORDER BY rowid")
        .bind(layer)
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("name"),
                r.get("admin_code"),
                r.get("properties"),
                r.get("geometry"),
                r.get("version"),
            )
        })
        .collect()
}

/// A CLI import of a large mixed file (streamed) stores exactly what the file says: ids (the
/// store numbering those without, 1, 2, 3 …), name and admin_code, the other properties in
/// their order, and geometry bytes equal to the WKB of the geometry read independently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_import_stores_exactly_what_the_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let db = db.to_str().unwrap();
    let n = 3_001;
    let text = mixed_collection(n);
    let file = dir.path().join("mixed.geojson");
    std::fs::write(&file, &text).unwrap();
    let (ok, out, err) = run(&[
        "import",
        file.to_str().unwrap(),
        "--layer",
        "mixed",
        "--db",
        db,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{n} inserted")), "{out}");

    let rows = stored(db, "mixed").await;
    let want = expected(&text);
    assert_eq!(rows.len(), want.len());
    let mut next_number = 1;
    for (i, (row, (id, name, code, props, geometry))) in rows.iter().zip(&want).enumerate() {
        let id = id.clone().unwrap_or_else(|| {
            next_number += 1;
            (next_number - 1).to_string()
        });
        assert_eq!(row.0, id, "feature {i}");
        assert_eq!(&row.1, name, "feature {i}");
        assert_eq!(&row.2, code, "feature {i}");
        assert_eq!(&row.3, props, "feature {i}");
        let wkb = geometry.as_ref().map(yizhangtu::formats::wkb::encode);
        assert_eq!(row.4, wkb, "feature {i}: geometry bytes");
        assert_eq!(row.5, 1, "feature {i}");
    }

    // The same file again through a server (POST): every feature with an id is updated in
    // place, those without are numbered on; and the server's engine holds what the store has.
    let app = Arc::new(App::open(db, false, None).await.unwrap());
    let base = serve(Arc::clone(&app)).await;
    let r = common::admin_client(&app)
        .await
        .post(format!("{base}/collections/mixed/items"))
        .header("content-type", "application/geo+json")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    let without_id = want.iter().filter(|w| w.0.is_none()).count();
    assert_eq!(body["updated"], n - without_id);
    assert_eq!(body["inserted"], without_id);
    let rows = stored(db, "mixed").await;
    assert_eq!(rows.len(), n + without_id);
    let idx = app.engine.layer("mixed").unwrap();
    let idx = idx.read();
    assert_eq!(idx.len(), rows.len());
    for row in &rows {
        let f = idx.get(&row.0).unwrap();
        assert_eq!(f.version, row.5);
        assert_eq!(
            f.geometry.as_ref().map(yizhangtu::formats::wkb::encode),
            row.4
        );
    }
}

/// Counts of what a database holds, to show that a failed import left it as it was.
async fn fingerprint(db: &str) -> (i64, i64, String) {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    let features: i64 = sqlx::query_scalar("SELECT count(*) FROM features")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let changes: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let layers: String = sqlx::query_scalar(
        "SELECT group_concat(id || ':' || revision || ':' || next_id, ',') FROM layers",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (features, changes, layers)
}

/// `yizhangtu import FILE --layer LAYER --db DB`: (success, stdout, stderr).
fn import_file(file: &Path, layer: &str, db: &str) -> (bool, String, String) {
    run(&[
        "import",
        file.to_str().unwrap(),
        "--layer",
        layer,
        "--db",
        db,
    ])
}

/// A new database in `dir` whose layer "parcels" holds p0..p9, imported by the CLI.
fn ten_parcels(dir: &Path) -> String {
    let db = dir.join("w.db").to_str().unwrap().to_string();
    let small = dir.join("small.geojson");
    std::fs::write(&small, points_geojson(0, 10)).unwrap();
    let (ok, _, err) = import_file(&small, "parcels", &db);
    assert!(ok, "{err}");
    db
}

/// Repro 8's other half: streaming must stay all or nothing. A bad feature (or broken JSON)
/// at the very END of a large file, after many batches were written inside the transaction,
/// leaves the database exactly as it was, for the CLI and for a POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_feature_at_the_end_of_a_large_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = ten_parcels(dir.path());
    let before = fingerprint(&db).await;

    let n = 20_000;
    let good = points_geojson(10, 10 + n);
    let end = good.rfind("]}").unwrap();
    let bad_end = format!(
        r#"{},{{"type":"Feature","id":"last","properties":{{}},"geometry":{{"type":"Point","coordinates":[105.7,95]}}}}]}}"#,
        &good[..end]
    );
    let broken_end = good[..good.len() - 2].to_string();
    let file = dir.path().join("bad.geojson");
    for (text, layer) in [
        (&bad_end, "parcels"),
        (&bad_end, "fresh"),
        (&broken_end, "parcels"),
    ] {
        std::fs::write(&file, text).unwrap();
        let (ok, out, err) = import_file(&file, layer, &db);
        assert!(!ok, "{out}");
        assert!(err.contains("nothing was imported"), "{err}");
        assert_eq!(fingerprint(&db).await, before, "{layer}: {err}");
    }
    std::fs::write(&file, &bad_end).unwrap();
    let (_, _, err) = import_file(&file, "parcels", &db);
    assert!(
        err.contains(&format!("1 of {} features are invalid", n + 1)),
        "{err}"
    );
    assert!(
        err.contains(&format!("feature {n} (id last): geometry: latitude 95")),
        "{err}"
    );

    let app = Arc::new(App::open(&db, false, None).await.unwrap());
    let base = serve(Arc::clone(&app)).await;
    let client = common::admin_client(&app).await;
    for text in [&bad_end, &broken_end] {
        let r = client
            .post(format!("{base}/collections/parcels/items"))
            .header("content-type", "application/geo+json")
            .body(text.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["description"]
                .as_str()
                .unwrap()
                .contains("nothing was imported"),
            "{body}"
        );
    }
    let r: serde_json::Value = client
        .post(format!("{base}/collections/parcels/items"))
        .header("content-type", "application/geo+json")
        .body(bad_end.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["problems"][0]["id"], "last", "{r}");
    assert_eq!(r["problems_total"], 1);
    assert_eq!(r["features_total"], n + 1);
    assert_eq!(fingerprint(&db).await, before);
    assert_eq!(app.engine.layer("parcels").unwrap().read().len(), 10);
    assert!(Path::new(&db).exists());
}

/// An import continues each feature's history: a feature deleted and imported again gets the
/// version after its deletion, not 1; one imported twice in the same import, or updated by a
/// later import, counts up from its stored version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_continue_each_features_history() {
    {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.db");
        let store = Store::open(db.to_str().unwrap()).await.unwrap();
        let layers = [Layer::untitled("pts")];
        // p0..p9, then p0..p4 deleted, then p0..p9 again with p3 twice in one import.
        store
            .import(
                &layers,
                (0..10).map(|i| point("pts", i)).collect(),
                ImportMode::Upsert,
                None,
            )
            .await
            .unwrap();
        for i in 0..5 {
            assert!(store.delete("pts", &format!("p{i}")).await.unwrap());
        }
        let mut again: Vec<Feature> = (0..10).map(|i| point("pts", i)).collect();
        // The second p3 differs from the first: each version keeps its own state.
        let mut second = point("pts", 3);
        second.properties.insert("n".into(), 33.into());
        again.push(second);
        let summaries = store
            .import(&layers, again, ImportMode::Upsert, None)
            .await
            .unwrap();
        assert_eq!(
            (summaries[0].inserted, summaries[0].updated),
            (5, 6),
            "p0..p4 inserted again; p5..p9 and the second p3 updates"
        );
        let versions = |id: &'static str| {
            let store = &store;
            async move {
                store
                    .history("pts", id)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.version, h.op))
                    .collect::<Vec<_>>()
            }
        };
        let ops = |v: &[(i64, &str)]| {
            v.iter()
                .map(|(n, op)| (*n, op.to_string()))
                .collect::<Vec<_>>()
        };
        // Oldest first or newest first: compare as sets of (version, op).
        let sorted = |mut v: Vec<(i64, String)>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(versions("p0").await),
            ops(&[(1, "insert"), (2, "delete"), (3, "insert")])
        );
        assert_eq!(
            sorted(versions("p3").await),
            // Twice in one import: stored as version 3, then 4, and both are in the history.
            ops(&[(1, "insert"), (2, "delete"), (3, "insert"), (4, "update")])
        );
        let n_of = |version: i64| {
            let store = &store;
            async move {
                store
                    .history("pts", "p3")
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|h| h.version == version)
                    .map(|h| h.feature.properties["n"].clone())
            }
        };
        assert_eq!(n_of(3).await, Some(3.into()));
        assert_eq!(n_of(4).await, Some(33.into()));
        let stored = store
            .all_features()
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.id == "p3")
            .unwrap();
        assert_eq!(
            (stored.version, stored.properties["n"].clone()),
            (4, 33.into()),
            "the later row wins"
        );
        assert_eq!(
            sorted(versions("p7").await),
            ops(&[(1, "insert"), (2, "update")])
        );
    }
}

/// See [`common::an_import_of_each_id_once_refuses_repeats`]: here on SQLite, where a layer
/// that held features keeps the import's ids in a temporary table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_each_id_once_refuses_repeats_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("once.db");
    let store = Store::open(db.to_str().unwrap()).await.unwrap();
    common::an_import_of_each_id_once_refuses_repeats(&store).await;
}

/// A GeoJSON file that names a feature again, far from its first time (batches apart), is
/// refused whole by the CLI and by a POST, into a new layer and into one that holds features:
/// the error names the id, and the database is as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_repeats_an_id_far_apart_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = ten_parcels(dir.path());
    let before = fingerprint(&db).await;
    // The last of 5,000 features names one written ten batches before: p20 (new to the layer),
    // or p3, which "parcels" holds and the file updates first.
    let n = 5_000;
    let collection = |ids: Vec<usize>| {
        let features: Vec<String> = ids
            .into_iter()
            .map(|i| {
                format!(
                    r#"{{"type":"Feature","id":"p{i}","properties":{{"n":{i}}},"geometry":{{"type":"Point","coordinates":[105.7,29.5]}}}}"#
                )
            })
            .collect();
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            features.join(",\n")
        )
    };
    let again = |i: usize| {
        let first = if i < 10 { 0..5 } else { 0..0 };
        collection(first.chain(10..10 + n).chain([i]).collect())
    };
    let file = dir.path().join("again.geojson");
    for (i, layer) in [(20, "parcels"), (20, "fresh"), (3, "parcels")] {
        std::fs::write(&file, again(i)).unwrap();
        let (ok, out, err) = import_file(&file, layer, &db);
        assert!(!ok, "{out}");
        assert!(
            err.contains(&format!(
                "feature id 'p{i}' of layer '{layer}' appears more than once"
            )) && err.contains("nothing was imported"),
            "{err}"
        );
        assert_eq!(fingerprint(&db).await, before, "{layer}: {err}");
    }
    // The same file without the repeat goes in whole.
    std::fs::write(&file, collection((10..10 + n).collect())).unwrap();
    let (ok, _, err) = import_file(&file, "fresh", &db);
    assert!(ok, "{err}");
    let before = fingerprint(&db).await;
    assert_eq!(before.0, 10 + n as i64);

    let app = Arc::new(App::open(&db, false, None).await.unwrap());
    let base = serve(Arc::clone(&app)).await;
    let client = common::admin_client(&app).await;
    let r = client
        .post(format!("{base}/collections/parcels/items"))
        .header("content-type", "application/geo+json")
        .body(again(20))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "InvalidFeatures", "{body}");
    assert!(
        body["description"].as_str().unwrap().contains(
            "nothing was imported: feature id 'p20' of layer 'parcels' appears more than once"
        ),
        "{body}"
    );
    assert_eq!(body["problems"][0]["id"], "p20", "{body}");
    assert_eq!(body["problems_total"], 1, "{body}");
    assert_eq!(fingerprint(&db).await, before);
    assert_eq!(app.engine.layer("parcels").unwrap().read().len(), 10);
}

/// A follower reloads a replaced layer from the rows the store streams to it, and a layer
/// replaced by nothing (no rows to stream) becomes empty, not left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reloads_a_replaced_layer_even_when_it_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let db = db.to_str().unwrap().to_string();
    let writer = Store::open(&db).await.unwrap();
    let layers = [Layer::untitled("pts")];
    let points = |ids: std::ops::Range<usize>| ids.map(|i| point("pts", i)).collect::<Vec<_>>();
    writer
        .import(&layers, points(0..10), ImportMode::Upsert, None)
        .await
        .unwrap();
    let follower = App::open(&db, false, None).await.unwrap();
    let len = || follower.engine.layer("pts").unwrap().read().len();
    assert_eq!(len(), 10);
    writer
        .import(&layers, points(20..23), ImportMode::Replace, None)
        .await
        .unwrap();
    follower.catch_up().await.unwrap();
    let pts = follower.engine.layer("pts").unwrap();
    let ids: BTreeSet<String> = (20..23).map(|i| format!("p{i}")).collect();
    for id in &ids {
        let f = pts.read().get(id).expect("reloaded feature");
        assert_eq!(f.properties["n"], id[1..].parse::<usize>().unwrap());
    }
    assert_eq!(len(), 3);
    assert_eq!(
        follower.engine.layer("pts").unwrap().read().layer.title_zh,
        "pts"
    );
    writer
        .import(&layers, vec![], ImportMode::Replace, None)
        .await
        .unwrap();
    follower.catch_up().await.unwrap();
    assert_eq!(len(), 0);
    assert_eq!(
        follower.follow_stats.layer_reloads.load(Ordering::Relaxed),
        2
    );
}
