//! Test support: a real yizhangtu server on an ephemeral port with a temporary SQLite file, or,
//! when `YIZHANGTU_TEST_PG` names a PostgreSQL server (`postgres://…`), a fresh database on it.
#![allow(dead_code)]

pub mod pg;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;
use yizhangtu::http::AppState;

/// A test needs something outside Rust (GDAL's ogrinfo, Chromium, Node packages, the plan
/// documents in ../shared) and it is missing: the test FAILS, naming what to install. Only a
/// developer who says so (`YIZHANGTU_ALLOW_MISSING_TOOLS=1`, never honoured under `CI`) gets a
/// printed SKIPPED instead; then this returns and the caller returns early.
pub fn missing_tool(what: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    let allowed = std::env::var("YIZHANGTU_ALLOW_MISSING_TOOLS").is_ok_and(|v| v == "1");
    if ci || !allowed {
        panic!(
            "{what} is missing; .ci/run installs it (set YIZHANGTU_ALLOW_MISSING_TOOLS=1 outside CI \
             to skip the parts that need it)"
        );
    }
    eprintln!("SKIPPED: {what} is missing and YIZHANGTU_ALLOW_MISSING_TOOLS=1");
}

/// The database a test server runs on: a new PostgreSQL database (`t_<random>`, with PostGIS)
/// on the server `YIZHANGTU_TEST_PG` names, else the SQLite file `dir/file`.
pub async fn test_db(dir: &Path, file: &str) -> String {
    match test_pg() {
        Some(base) => fresh_pg_database(&base).await,
        None => dir
            .join(file)
            .to_str()
            .expect("UTF-8 temp path")
            .to_string(),
    }
}

/// The PostgreSQL server of the PostgreSQL run (`YIZHANGTU_TEST_PG`), if this is that run.
pub fn test_pg() -> Option<String> {
    std::env::var("YIZHANGTU_TEST_PG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Creates an empty database on the server of `base` (a postgres:// URL of any of its
/// databases) and returns its URL. The databases stay until the throwaway cluster goes.
pub async fn fresh_pg_database(base: &str) -> String {
    use sqlx::Connection;
    let name = format!("t_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .unwrap_or_else(|e| panic!("YIZHANGTU_TEST_PG={base}: cannot connect: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let _ = conn.close().await;
    let (url, query) = match base.split_once('?') {
        Some((u, q)) => (u, format!("?{q}")),
        None => (base, String::new()),
    };
    let server = match url.rsplit_once('/') {
        Some((server, _))
            if server.contains("://") && server.len() > server.find("://").unwrap() + 3 =>
        {
            server
        }
        _ => url,
    };
    let url = format!("{server}/{name}{query}");
    CREATED
        .lock()
        .unwrap()
        .insert(url.clone(), (base.to_string(), name));
    url
}

/// The databases [`fresh_pg_database`] made: URL → (the server's URL, the database's name).
static CREATED: std::sync::Mutex<std::collections::BTreeMap<String, (String, String)>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Drops a database [`fresh_pg_database`] made (its connections closed by force), so that a
/// run of the suite does not fill the disk with a database per test server.
pub fn drop_pg_database(url: &str) {
    let Some((base, name)) = CREATED.lock().unwrap().remove(url) else {
        return;
    };
    // Drop can run inside a runtime: the work gets a thread and a runtime of its own.
    let _ = std::thread::spawn(move || {
        use sqlx::Connection;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if let Ok(mut c) = sqlx::PgConnection::connect(&base).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
                let _ = c.close().await;
            }
        });
    })
    .join();
}

pub struct TestServer {
    pub base: String,
    /// The database: a SQLite file, or a postgres:// URL on the PostgreSQL run (either one is
    /// what `--db` takes).
    pub db: PathBuf,
    pub app: Arc<App>,
    /// Sends the token of an admin (`admin`) with every request.
    pub client: reqwest::Client,
    /// The admin's token.
    pub token: String,
    _dir: tempfile::TempDir,
    handle: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.abort();
        if let Some(url) = self.db.to_str() {
            drop_pg_database(url);
        }
    }
}

/// Starts a seeded server.
pub async fn start() -> TestServer {
    start_with(HttpSettings::default(), true).await
}

pub async fn start_with(settings: HttpSettings, seed: bool) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = test_db(dir.path(), "test.db").await;
    start_at(db, dir, settings, seed).await
}

/// Starts a server on the database `db` (a SQLite path or a postgres:// URL); `dir` is kept
/// for as long as the server runs.
pub async fn start_at(
    db: String,
    dir: tempfile::TempDir,
    settings: HttpSettings,
    seed: bool,
) -> TestServer {
    let db = PathBuf::from(db);
    let app = Arc::new(
        App::open(db.to_str().unwrap(), seed, None)
            .await
            .expect("open app"),
    );
    app.follow(Duration::from_millis(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    // A second server on a database that has its admin already gets one of its own.
    let users = app.store.users().await.expect("users").len();
    let admin = match users {
        0 => "admin".to_string(),
        n => format!("admin{n}"),
    };
    let token = user_token(&app, &admin, "admin", &[]).await;
    let state = AppState::new(Arc::clone(&app), settings);
    let handle = tokio::spawn(async move {
        yizhangtu::http::serve(listener, state)
            .await
            .expect("serve");
    });
    TestServer {
        base: format!("http://{addr}"),
        db,
        app,
        client: client_with(&token),
        token,
        _dir: dir,
        handle,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// GET that must answer 200 with JSON.
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }

    /// GET that must fail with `status` and a JSON problem body; returns the body.
    pub async fn problem(&self, path: &str, status: u16) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status().as_u16(), status, "GET {path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            ct.starts_with("application/json"),
            "GET {path}: content type {ct}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["code"].is_string(), "GET {path}: {body}");
        assert!(body["description"].is_string(), "GET {path}: {body}");
        body
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled layer file, read with the `geojson` crate (independently of the server's code).
pub fn bundled(file: &str) -> geojson::FeatureCollection {
    let text = std::fs::read_to_string(repo().join(file)).expect("bundled file");
    text.parse::<geojson::GeoJson>()
        .ok()
        .and_then(|g| geojson::FeatureCollection::try_from(g).ok())
        .expect("a FeatureCollection")
}

pub fn feature_id(f: &geojson::Feature) -> String {
    match &f.id {
        Some(geojson::feature::Id::String(s)) => s.clone(),
        Some(geojson::feature::Id::Number(n)) => n.to_string(),
        None => panic!("bundled feature without id"),
    }
}

/// Follows `next` links from `path` to the end; returns every feature id in order.
pub async fn collect_all(server: &TestServer, path: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut url = server.url(path);
    let mut pages = 0;
    loop {
        let r = server.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        let page: serde_json::Value = r.json().await.unwrap();
        pages += 1;
        let features = page["features"].as_array().unwrap();
        assert_eq!(
            page["numberReturned"].as_u64().unwrap() as usize,
            features.len()
        );
        ids.extend(
            features
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_string()),
        );
        let next = page["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rel"] == "next")
            .map(|l| l["href"].as_str().unwrap().to_string());
        match next {
            Some(n) => url = n,
            None => break,
        }
        assert!(pages < 10_000, "next links never end");
    }
    (ids, pages)
}

/// Runs the `yizhangtu` binary: (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Creates a user with `role` (and district/town codes) in the app's database; returns its token.
pub async fn user_token(app: &App, name: &str, role: &str, scope: &[&str]) -> String {
    let t = yizhangtu::auth::new_token().expect("token");
    let scope: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
    let entry = yizhangtu::store::Actor::cli(None).entry("user add", None, vec![name.into()]);
    app.store
        .add_user(name, role, &scope, &t.id, &t.hash, &entry)
        .await
        .expect("add user")
        .expect("a new user name");
    t.token
}

/// A client that sends `Authorization: Bearer <token>` with every request.
pub fn client_with(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .unwrap()
}

/// A client signed in as a new admin of `app`.
pub async fn admin_client(app: &App) -> reqwest::Client {
    client_with(&user_token(app, "admin", "admin", &[]).await)
}

/// `yizhangtu serve` on a fresh database; returns the child, its base URL and its stderr lines
/// (collected by a thread until the process ends).
#[allow(clippy::zombie_processes)]
pub fn serve_binary(
    dir: &std::path::Path,
    extra: &[&str],
) -> (
    std::process::Child,
    String,
    std::thread::JoinHandle<Vec<String>>,
) {
    use std::io::{BufRead, Read};
    let db = dir.join("t.db");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
        .args([
            "serve",
            "--db",
            db.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("YIZHANGTU_NO_NPM", "1")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve ended before it listened: {:?}", logs.join());
        }
        if let Some(at) = line.find(" at http://") {
            let url = line[at + 4..].trim().trim_end_matches('/').to_string();
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = out.read_to_string(&mut sink);
            });
            return (child, url, logs);
        }
    }
}

/// The newest 1,000 audit rows of `app`'s database.
pub async fn audit(app: &App) -> Vec<yizhangtu::store::AuditRow> {
    app.store
        .audit_rows(&yizhangtu::store::AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit rows")
}

/// The value of the metric `name` (no labels) in the server's `/metrics`.
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_value(&text, name)
}

/// The value of the metric `name` (no labels) in a `/metrics` text.
pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The `content-length` of an HTTP answer's head.
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no content-length in {head}"))
        .parse()
        .unwrap()
}

/// An import that takes each feature once (`Ids::Once`, as a GeoJSON file's does) refuses a
/// feature it has already written, wherever the two are: in a layer it creates, in a layer that
/// held features, both in one batch, a stored feature updated twice, after a replace. Each
/// refusal names the feature and writes nothing; without a repeat, stored ids are updated once
/// and new ones inserted. Run on SQLite (`tests/writes.rs`) and PostgreSQL (`tests/postgres.rs`).
pub async fn an_import_of_each_id_once_refuses_repeats(store: &yizhangtu::store::Store) {
    use yizhangtu::model::{Feature, Layer};
    use yizhangtu::store::{Batch, Ids, ImportMode, StoreError};
    let point = |layer: &str, i: usize| {
        let mut props = serde_json::Map::new();
        props.insert("n".into(), i.into());
        let p = geo::Point::new(105.5 + i as f64 * 0.001, 29.0);
        Feature::from_parts(layer, format!("p{i}"), props, Some(p.into()))
    };
    let points = |layer: &str, ids: &[usize]| -> Vec<Feature> {
        ids.iter().map(|&i| point(layer, i)).collect()
    };
    // Streamed three features a batch, as a decoder would.
    let once = |features: Vec<Feature>, mode: ImportMode| async move {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let send = async move {
            for batch in features.chunks(3) {
                if tx.send(Batch::Features(batch.to_vec())).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(Batch::Commit).await;
        };
        let (stored, ()) = tokio::join!(store.import_batches(&[], rx, mode, Ids::Once, None), send);
        stored
    };
    let repeated = |r: Result<Vec<yizhangtu::store::ImportSummary>, StoreError>| match r {
        Err(StoreError::RepeatedId { layer, id }) => (layer, id),
        other => panic!("expected a repeated id, got {other:?}"),
    };
    let held: Vec<usize> = (0..10).collect();
    store
        .import(
            &[Layer::untitled("held")],
            points("held", &held),
            ImportMode::Upsert,
            None,
        )
        .await
        .unwrap();
    let state = || async {
        let mut ids: Vec<(String, String, i64)> = store
            .all_features()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.layer, f.id, f.version))
            .collect();
        ids.sort();
        (ids, store.last_change().await.unwrap())
    };
    let before = state().await;
    assert_eq!(before.0.len(), 10);
    let cases: [(&str, Vec<usize>, ImportMode, &str); 5] = [
        // p2 again in the third batch of a layer the import creates.
        (
            "new",
            vec![0, 1, 2, 3, 4, 5, 6, 7, 2],
            ImportMode::Upsert,
            "p2",
        ),
        // p12 (new to the layer) again four batches on.
        (
            "held",
            vec![5, 12, 6, 7, 8, 9, 10, 11, 13, 14, 15, 12],
            ImportMode::Upsert,
            "p12",
        ),
        // p7 (stored before) updated, then named again.
        ("held", vec![7, 20, 21, 22, 7], ImportMode::Upsert, "p7"),
        // Twice in one batch.
        ("held", vec![30, 31, 30], ImportMode::Upsert, "p30"),
        // After a replace emptied the layer.
        ("held", vec![0, 1, 2, 3, 1], ImportMode::Replace, "p1"),
    ];
    for (layer, ids, mode, again) in cases {
        let got = repeated(once(points(layer, &ids), mode).await);
        assert_eq!(got, (layer.to_string(), again.to_string()), "{ids:?}");
        assert_eq!(
            state().await,
            before,
            "{layer} {ids:?} {mode:?}: nothing written"
        );
    }
    assert!(store.layer("new").await.unwrap().is_none());
    // Without a repeat: p5..p9 updated once (version 2), p10..p14 inserted; then again, which
    // a temporary table of the first import's ids must not have kept.
    for version in [2, 3] {
        let ids: Vec<usize> = (5..15).collect();
        let s = once(points("held", &ids), ImportMode::Upsert)
            .await
            .unwrap();
        let (inserted, updated) = if version == 2 { (5, 5) } else { (0, 10) };
        assert_eq!((s[0].inserted, s[0].updated), (inserted, updated));
        let (features, _) = state().await;
        assert_eq!(features.len(), 15);
        let p7 = features.iter().find(|f| f.1 == "p7").unwrap();
        assert_eq!(p7.2, version);
    }
    let s = once(points("new", &[1, 2, 3, 4]), ImportMode::Upsert)
        .await
        .unwrap();
    assert_eq!((s[0].inserted, s[0].updated), (4, 0));
}
