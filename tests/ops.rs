//! Operations (issue 13 items 8–9): `/readyz`, `/metrics` in Prometheus text format (parsed
//! here by hand, no promtool), JSON logs with the request id on every line of a request, and a
//! request in flight finishing after SIGTERM.

mod common;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client_with, serve_binary, user_token};
use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;
use yizhangtu::http::AppState;

/// One sample of the text format: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text format 0.0.4: `# HELP`/`# TYPE` lines are skipped; each other line is
/// `name{label="value",…} value` (labels optional, values with \\ \" \n escapes).
fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample line has a value");
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if rest.starts_with('{') {
            let mut chars = rest[1..].char_indices();
            let mut key = String::new();
            let end = loop {
                let (i, c) = chars.next().expect("labels end with }");
                match c {
                    '}' => break i + 2,
                    ',' | ' ' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            match chars.next().expect("a closed label value").1 {
                                '"' => break,
                                '\\' => match chars.next().expect("an escape").1 {
                                    'n' => value.push('\n'),
                                    other => value.push(other),
                                },
                                other => value.push(other),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    other => key.push(other),
                }
            };
            rest = &rest[end..];
        }
        let value = rest.split_whitespace().next().expect("a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {line}")),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the sample named `name` whose labels include all of `labels` (0 when absent).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map_or(0.0, |s| s.value)
}

/// A seeded server on an ephemeral port; it follows the change log only when `follow` is set
/// (else a test can hold it behind the database).
struct Server {
    base: String,
    app: Arc<App>,
    /// Signed in as an admin.
    client: reqwest::Client,
    handle: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

async fn server(settings: HttpSettings, follow: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ops.db");
    let app = Arc::new(App::open(db.to_str().unwrap(), true, None).await.unwrap());
    if follow {
        app.follow(Duration::from_millis(100));
    }
    let token = user_token(&app, "admin", "admin", &[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(Arc::clone(&app), settings);
    let handle = tokio::spawn(async move {
        yizhangtu::http::serve(listener, state).await.unwrap();
    });
    Server {
        base,
        app,
        client: client_with(&token),
        handle,
        _dir: dir,
    }
}

async fn start() -> Server {
    server(HttpSettings::default(), true).await
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// GET answered `status` with a JSON body.
    async fn answer(&self, path: &str, status: u16) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status().as_u16(), status, "GET {path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("application/"), "GET {path}: {ct}");
        r.json().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        self.answer(path, 200).await
    }

    async fn problem(&self, path: &str, status: u16) -> Value {
        let doc = self.answer(path, status).await;
        assert!(
            doc["code"].is_string() && doc["description"].is_string(),
            "{doc}"
        );
        doc
    }
}

async fn scrape(s: &Server) -> Vec<Sample> {
    let r = s.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse_prometheus(&r.text().await.unwrap())
}

#[test]
fn the_parser_reads_labels_escapes_and_infinity() {
    let s = parse_prometheus(
        "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"uote\"} 3\nh_bucket{le=\"+Inf\"} 2\ng 1.5e3\n",
    );
    assert_eq!(s.len(), 3);
    assert_eq!(value(&s, "x_total", &[("a", "1"), ("b", "q\"uote")]), 3.0);
    assert_eq!(value(&s, "h_bucket", &[("le", "+Inf")]), 2.0);
    assert_eq!(value(&s, "g", &[]), 1500.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_per_route_and_status() {
    let s = start().await;
    let route = "/collections/{collection}/items/{feature}";
    let ok = [("route", route), ("status", "200"), ("method", "GET")];
    let missing = [("route", route), ("status", "404"), ("method", "GET")];
    let before = scrape(&s).await;
    for _ in 0..3 {
        assert_eq!(
            s.get("/collections/towns/items/500111100").await.status(),
            200
        );
    }
    assert_eq!(s.get("/collections/towns/items/nope").await.status(), 404);
    let after = scrape(&s).await;
    let counted = |m: &[Sample], l: &[(&str, &str)]| value(m, "yizhangtu_http_requests_total", l);
    assert_eq!(counted(&after, &ok) - counted(&before, &ok), 3.0);
    assert_eq!(counted(&after, &missing) - counted(&before, &missing), 1.0);
    // The latency histogram saw the same requests, each under the +Inf bucket.
    let timed = |m: &[Sample], suffix: &str, extra: &[(&str, &str)]| {
        let mut l = ok.to_vec();
        l.extend_from_slice(extra);
        value(
            m,
            &format!("yizhangtu_http_request_duration_seconds_{suffix}"),
            &l,
        )
    };
    assert_eq!(
        timed(&after, "count", &[]) - timed(&before, "count", &[]),
        3.0
    );
    assert_eq!(
        timed(&after, "bucket", &[("le", "+Inf")]) - timed(&before, "bucket", &[("le", "+Inf")]),
        3.0
    );
    assert!(timed(&after, "sum", &[]) > timed(&before, "sum", &[]));
    // Unrouted paths are one label, not one per path.
    s.get("/no/such/path/1").await;
    s.get("/no/such/path/2").await;
    let m = scrape(&s).await;
    assert_eq!(
        value(
            &m,
            "yizhangtu_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        2.0
    );
    // Invented methods are one label too, whatever they are called.
    let client = reqwest::Client::new();
    for name in ["BREW", "WHEN", "XYZZY"] {
        let r = client
            .request(
                reqwest::Method::from_bytes(name.as_bytes()).unwrap(),
                s.url("/collections"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{name}");
    }
    let m = scrape(&s).await;
    let invented = |method: &str| {
        value(
            &m,
            "yizhangtu_http_requests_total",
            &[
                ("route", "/collections"),
                ("method", method),
                ("status", "405"),
            ],
        )
    };
    assert_eq!(invented("OTHER"), 3.0);
    assert_eq!(invented("BREW"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_layers_tile_cache_pool_and_heavy_pool() {
    let s = start().await;
    let m = scrape(&s).await;
    // Features per layer, against the collection's own count.
    for layer in ["towns", "villages", "projects"] {
        let page = s.json(&format!("/collections/{layer}/items?limit=1")).await;
        let n = page["numberMatched"].as_f64().unwrap();
        assert!(n > 0.0);
        assert_eq!(
            value(&m, "yizhangtu_layer_features", &[("layer", layer)]),
            n,
            "{layer}"
        );
    }
    // Tile cache: a miss, then a hit; the bytes held are those of the tile.
    let m = scrape(&s).await;
    let hits = |m: &[Sample]| value(m, "yizhangtu_tile_cache_hits_total", &[]);
    let misses = |m: &[Sample]| value(m, "yizhangtu_tile_cache_misses_total", &[]);
    let tile = "/tiles/towns/10/812/423.mvt";
    let first = s.get(tile).await;
    assert_eq!(first.headers()["x-tile-cache"], "miss");
    let size = first.bytes().await.unwrap().len();
    assert!(size > 0);
    assert_eq!(s.get(tile).await.headers()["x-tile-cache"], "hit");
    let after = scrape(&s).await;
    assert_eq!(misses(&after) - misses(&m), 1.0);
    assert_eq!(hits(&after) - hits(&m), 1.0);
    assert_eq!(value(&after, "yizhangtu_tile_cache_tiles", &[]), 1.0);
    let held = value(&after, "yizhangtu_tile_cache_bytes", &[]);
    assert!(
        held >= size as f64 && held < size as f64 + 200.0,
        "{held} for {size}"
    );
    // The database pool and the heavy pool, as /healthz reports the latter.
    let max = value(&after, "yizhangtu_db_pool_max", &[]);
    let open = value(&after, "yizhangtu_db_pool_connections", &[]);
    assert!(max >= 1.0 && open >= 1.0 && open <= max, "{open} of {max}");
    assert!(value(&after, "yizhangtu_db_pool_idle", &[]) <= open);
    let health = s.json("/healthz").await;
    assert_eq!(
        value(&after, "yizhangtu_heavy_slots", &[]),
        health["heavy"]["slots"].as_f64().unwrap()
    );
    // The tile was built as one heavy job.
    let done = |m: &[Sample]| value(m, "yizhangtu_heavy_completed_total", &[]);
    assert_eq!(done(&after) - done(&m), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_with_no_lag_after_an_edit() {
    let s = start().await;
    let r = s.json("/readyz").await;
    assert_eq!(r["status"], "ready");
    assert_eq!(r["checks"]["database"]["ok"], true);
    let towns = s.json("/collections/towns/items?limit=1").await["numberMatched"].clone();
    assert!(r["checks"]["engine"]["features"].as_u64().unwrap() > towns.as_u64().unwrap());
    let body = json!({"type": "Feature", "id": "ops-1", "properties": {"name": "运维测试"},
        "geometry": {"type": "Point", "coordinates": [105.72, 29.70]}});
    let w = s
        .client
        .post(s.url("/collections/projects/items"))
        .header("content-type", "application/geo+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), 201);
    let r = s.json("/readyz").await;
    let log = &r["checks"]["changelog"];
    assert_eq!(log["lag"], 0, "{r}");
    assert_eq!(log["applied"], log["database"]);
    // The edit is in the change log: the position moved past what it was at start.
    let last = s.app.store.last_change().await.unwrap();
    assert_eq!(log["database"], last);
    let m = scrape(&s).await;
    assert_eq!(value(&m, "yizhangtu_changelog_lag", &[]), 0.0);
    assert_eq!(value(&m, "yizhangtu_changelog_applied", &[]), last as f64);
    assert_eq!(value(&m, "yizhangtu_changelog_database", &[]), last as f64);
    assert!(value(&m, "yizhangtu_engine_changes_applied_total", &[]) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_behind_the_change_log_then_ready_once_caught_up() {
    let s = server(
        HttpSettings {
            ready_max_lag: 1,
            ..HttpSettings::default()
        },
        false,
    )
    .await;
    assert_eq!(s.get("/readyz").await.status(), 200);
    let start = s.app.store.last_change().await.unwrap();
    // Another process writes three changes to the database (here: the store directly).
    let layers: Vec<_> = s.app.store.layers().await.unwrap();
    let (projects, _) = layers
        .into_iter()
        .find(|(l, _)| l.id == "projects")
        .unwrap();
    for i in 0..3 {
        let f = yizhangtu::model::Feature::from_parts(
            "projects",
            format!("behind-{i}"),
            serde_json::Map::new(),
            Some(geo::Geometry::Point(geo::point!(x: 105.7, y: 29.7))),
        );
        s.app
            .store
            .import(
                std::slice::from_ref(&projects),
                vec![f],
                yizhangtu::store::ImportMode::Upsert,
                None,
            )
            .await
            .unwrap();
    }
    // Each import logs its features and the layer's revision.
    let lag = s.app.store.last_change().await.unwrap() - start;
    assert!(lag >= 3);
    let r = s.problem("/readyz", 503).await;
    assert_eq!(r["not_ready"], json!(["changelog"]), "{r}");
    assert_eq!(r["checks"]["changelog"]["lag"], lag);
    assert_eq!(r["checks"]["changelog"]["max_lag"], 1);
    assert_eq!(s.problem("/readyz", 503).await["status"], "not ready");
    let m = scrape(&s).await;
    assert_eq!(value(&m, "yizhangtu_changelog_lag", &[]), lag as f64);
    let updates = value(&m, "yizhangtu_engine_layer_updates_total", &[]);

    assert_eq!(s.app.catch_up().await.unwrap() as i64, lag);
    let r = s.json("/readyz").await;
    assert_eq!(r["checks"]["changelog"]["lag"], 0);
    let m = scrape(&s).await;
    assert_eq!(value(&m, "yizhangtu_changelog_lag", &[]), 0.0);
    assert_eq!(
        value(&m, "yizhangtu_engine_layer_updates_total", &[]) - updates,
        1.0,
        "the changes to one layer are applied as one update"
    );
    assert_eq!(
        value(&m, "yizhangtu_engine_changes_applied_total", &[]),
        lag as f64
    );
    assert_eq!(
        s.json("/collections/projects/items/behind-2").await["id"],
        "behind-2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_when_the_database_is_unreachable() {
    let s = start().await;
    s.app.store.close().await;
    let r = s.problem("/readyz", 503).await;
    let named: Vec<&str> = r["not_ready"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(named.contains(&"database"), "{r}");
    assert_eq!(r["checks"]["database"]["ok"], false);
    assert!(r["checks"]["database"]["error"].as_str().unwrap().len() > 3);
    // /healthz stays up: the process is alive, only not ready.
    assert_eq!(s.get("/healthz").await.status(), 200);
    // Metrics still answer, without a database position.
    let m = scrape(&s).await;
    assert!(!m.iter().any(|x| x.name == "yizhangtu_changelog_database"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_public_on_a_private_server() {
    let s = server(
        HttpSettings {
            private: true,
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    let anonymous = reqwest::Client::new();
    let get = |p: &str| anonymous.get(s.url(p)).send();
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    assert_eq!(get("/collections").await.unwrap().status(), 401);
    assert_eq!(get("/metrics").await.unwrap().status(), 401);
    assert_eq!(s.get("/metrics").await.status(), 200);
}

// ---------------------------------------------------------------------------------------------
// The binary: JSON logs and SIGTERM

fn sigterm(child: &std::process::Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits for the child to exit by itself (a correctness bound, not a performance target).
fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("still running a minute after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends raw HTTP/1.1 and reads one whole response (the server closes after it).
fn read_response(conn: &mut std::net::TcpStream) -> (u16, String) {
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn json_logs_carry_the_request_id_on_every_line_of_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, logs) = serve_binary(dir.path(), &["--log-format", "json"]);
    let addr = base.trim_start_matches("http://").to_string();
    // The third request, a plain feature by id, is answered by the lean path (src/http/fast.rs).
    let ids = ["ops-log-test-1", "ops-log-test-2", "ops-log-test-3"];
    let mut path = "/collections/towns/items?limit=2".to_string();
    let mut feature = String::new();
    for (i, id) in ids.iter().enumerate() {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-request-id: {id}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (status, body) = read_response(&mut conn);
        assert_eq!(status, if i == 1 { 404 } else { 200 }, "{path}");
        if i == 0 {
            let doc: Value = serde_json::from_str(&body).unwrap();
            let town = doc["features"][0]["id"].as_str().unwrap().to_string();
            assert!(town.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            feature = format!("/collections/towns/items/{town}");
            path = "/no/such".to_string();
        } else {
            path = feature.clone();
        }
    }
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
    let lines = logs.join().unwrap();
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(parsed
        .iter()
        .all(|v| v["level"].is_string() && v["timestamp"].is_string()));
    // Every line logged within a request names it; each request logged its answer.
    let in_requests: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["span"]["name"] == "request")
        .collect();
    for v in &in_requests {
        let id = v["span"]["request_id"].as_str().unwrap_or("");
        assert!(ids.contains(&id), "a line of a request without its id: {v}");
    }
    for (id, status) in ids.iter().zip([200, 404, 200]) {
        let answered: Vec<&&Value> = in_requests
            .iter()
            .filter(|v| v["span"]["request_id"] == *id && v["fields"]["message"] == "answered")
            .collect();
        assert_eq!(answered.len(), 1, "{id}: {lines:#?}");
        assert_eq!(answered[0]["fields"]["status"], status);
    }
    // Lines outside requests (start-up, shutdown) are JSON too.
    assert!(parsed
        .iter()
        .any(|v| v["fields"]["message"] == "shutting down"));
}

/// Sends a GET with `x-request-id: id` on a new connection; the status and the body.
fn get_raw(addr: &str, path: &str, id: &str) -> (u16, String) {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-request-id: {id}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut conn)
}

#[test]
fn the_lean_paths_access_line_is_the_one_the_router_logs() {
    // The lean path writes its access line itself (src/logs.rs); the router's goes through
    // `tracing`. For the same feature, id and request id they differ only in the time.
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, base, logs) = serve_binary(dir.path(), &["--log-format", format]);
        let addr = base.trim_start_matches("http://").to_string();
        let (_, page) = get_raw(&addr, "/collections/towns/items?limit=1", "first");
        let page: Value = serde_json::from_str(&page).unwrap();
        let town = page["features"][0]["id"].as_str().unwrap().to_string();
        let feature = format!("/collections/towns/items/{town}");
        let id = r#"same-id "quoted" \ {braced}"#;
        let lean = get_raw(&addr, &feature, id);
        let routed = get_raw(&addr, &format!("{feature}?f=json"), id);
        assert_eq!((lean.0, routed.0), (200, 200));
        assert_eq!(lean.1, routed.1);
        let (_, metrics) = get_raw(&addr, "/metrics", "metrics");
        assert!(
            metrics.contains("yizhangtu_http_lean_answers_total 1\n"),
            "{metrics}"
        );
        sigterm(&child);
        assert!(wait_exit(&mut child).success());
        let lines = logs.join().unwrap();
        let answered: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("answered") && l.contains(&feature))
            .collect();
        assert_eq!(answered.len(), 2, "{format}: {lines:#?}");
        // Without the time and the milliseconds.
        let untimed = |line: &str| -> String {
            if format == "json" {
                let mut v: Value = serde_json::from_str(line).unwrap();
                assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
                assert!(v["fields"]["ms"].is_f64(), "{v}");
                v["timestamp"] = Value::Null;
                v["fields"]["ms"] = Value::Null;
                // The text as written, not only the same document.
                let at = line.find(r#""level""#).unwrap();
                let ms = line.find(r#","ms":"#).unwrap();
                let after_ms = line[ms + 6..].find('}').unwrap() + ms + 6;
                format!("{v} {}{}", &line[at..ms], &line[after_ms..])
            } else {
                let (_, rest) = line.split_once(' ').unwrap();
                let (head, ms) = rest.rsplit_once(" ms=").unwrap();
                assert!(ms.parse::<f64>().is_ok(), "{line}");
                head.to_string()
            }
        };
        assert_eq!(untimed(answered[0]), untimed(answered[1]), "{format}");
        if format == "text" {
            assert!(
                answered[0].contains(&format!(
                    "  INFO request{{request_id={id} method=GET path={feature}}}: \
                     yizhangtu::access: answered status=200 \
                     route=/collections/{{collection}}/items/{{feature}} ms="
                )),
                "{}",
                answered[0]
            );
        }
    }
}

/// Metric `name` of the server at `addr`, read on a connection of its own.
fn metric_at(addr: &str, name: &str) -> f64 {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    common::metric_value(&read_response(&mut c).1, name)
}

/// Reads one keep-alive answer (head and `content-length` body) from `conn`.
fn read_keep_alive_answer(conn: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(bytes[..end + 4].to_vec()).unwrap();
            let length = common::content_length(&head);
            if bytes.len() >= end + 4 + length {
                return (head, bytes[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the answer was whole: {bytes:?}");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn an_idle_keep_alive_connection_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, _logs) = serve_binary(dir.path(), &["--shutdown-grace", "60"]);
    let addr = base.trim_start_matches("http://").to_string();
    let connect = || {
        let c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c
    };
    let mut conn = connect();
    // A listing (the connection goes to hyper), and on a second connection a plain feature by
    // id, which the connection front answers itself and then waits on for the next request.
    write!(
        conn,
        "GET /collections/towns/items?limit=1 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let (head, body) = read_keep_alive_answer(&mut conn);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let town = doc["features"][0]["id"].as_str().unwrap().to_string();
    let mut front = connect();
    write!(
        front,
        "GET /collections/towns/items/{town} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let (head, body) = read_keep_alive_answer(&mut front);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let feature: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(feature["id"], town.as_str());
    assert_eq!(metric_at(&addr, "yizhangtu_http_front_answers_total"), 1.0);

    // Both connections idle: each closes at the signal, and the process exits long before the
    // 60 s grace (the bound is a correctness bound, not a performance target).
    let signalled = Instant::now();
    sigterm(&child);
    assert!(wait_exit(&mut child).success());
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "an idle connection held shutdown for {:?}",
        signalled.elapsed()
    );
    for c in [&mut conn, &mut front] {
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0, "{rest:?}");
    }
}

#[test]
fn a_request_in_flight_at_sigterm_is_answered_and_the_process_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, _logs) = serve_binary(dir.path(), &["--shutdown-grace", "60"]);
    let addr = base.trim_start_matches("http://").to_string();
    let body = br#"{"area": "500111100", "layers": "projects"}"#;
    let (head, tail) = body.split_at(10);
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /analysis/coverage HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(head).unwrap();
    conn.flush().unwrap();
    // The request is in flight (its head read, its body not yet whole) when the signal comes.
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    // Shutdown has begun once new connections are refused.
    let started = Instant::now();
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    conn.write_all(tail).unwrap();
    let (status, answer) = read_response(&mut conn);
    assert_eq!(status, 200, "{answer}");
    let doc: Value =
        serde_json::from_str(answer.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    assert_eq!(doc["code"], "500111100");
    assert_eq!(doc["layers"][0]["layer"], "projects");
    assert!(wait_exit(&mut child).success());
}

/// Reads until the server closes `conn`: everything it wrote.
fn read_to_close(conn: &mut std::net::TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    rest
}

#[test]
fn connections_that_send_no_whole_request_head_in_time_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, _logs) = serve_binary(dir.path(), &["--header-timeout", "2"]);
    let addr = base.trim_start_matches("http://").to_string();
    let budget = Duration::from_secs(2);
    let connect = || {
        let c = std::net::TcpStream::connect(&addr).unwrap();
        // Far past the budget: a connection the server kept would fail the read here.
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        c
    };
    let town = {
        let mut c = connect();
        write!(
            c,
            "GET /collections/towns/items?limit=1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (_, body) = read_response(&mut c);
        let doc: Value = serde_json::from_str(&body).unwrap();
        doc["features"][0]["id"].as_str().unwrap().to_string()
    };
    let feature = format!("GET /collections/towns/items/{town} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let listing = format!("GET /collections HTTP/1.1\r\nHost: {addr}\r\n\r\n");

    std::thread::scope(|s| {
        // Opened and never written to: closed without a word, not before the budget.
        let idle = s.spawn(|| {
            let mut c = connect();
            let opened = Instant::now();
            assert_eq!(read_to_close(&mut c), b"");
            opened.elapsed()
        });
        // Part of a head, then nothing: 408 naming the limit, then closed.
        let partial = s.spawn(|| {
            let mut c = connect();
            let head = format!("GET /collections/towns/items/{town} HTTP/1.1\r\nHost: {addr}\r\n");
            c.write_all(head.as_bytes()).unwrap();
            let answer = String::from_utf8(read_to_close(&mut c)).unwrap();
            assert!(
                answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
                "{answer}"
            );
            assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
            let body: Value =
                serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
            assert_eq!(body["code"], "RequestTimeout");
            assert_eq!(body["limit"], "header-timeout");
            assert_eq!(body["seconds"], 2.0);
            assert!(
                body["description"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("{} bytes of it came", head.len())),
                "{body}"
            );
        });
        // A connection in use: the budget is per wait, so one asking every quarter second for
        // longer than the budget is answered every time on the same connection.
        let busy = s.spawn(|| {
            let mut c = connect();
            let started = Instant::now();
            let mut answered = 0;
            while started.elapsed() < budget * 2 {
                c.write_all(feature.as_bytes()).unwrap();
                let (head, _) = read_keep_alive_answer(&mut c);
                assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
                answered += 1;
                std::thread::sleep(Duration::from_millis(250));
            }
            (answered, started.elapsed())
        });
        // Handed to hyper (a listing first), then idle, or part-way through its next head:
        // hyper's timer, set to the same budget, closes both.
        let hyper_idle = s.spawn(|| {
            let mut c = connect();
            // Before the server could have answered, so before its wait for the next head.
            let asked = Instant::now();
            c.write_all(listing.as_bytes()).unwrap();
            let (head, _) = read_keep_alive_answer(&mut c);
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert_eq!(read_to_close(&mut c), b"");
            asked.elapsed()
        });
        let hyper_partial = s.spawn(|| {
            let mut c = connect();
            c.write_all(listing.as_bytes()).unwrap();
            read_keep_alive_answer(&mut c);
            c.write_all(b"GET /collections HTTP/1.1\r\nHo").unwrap();
            read_to_close(&mut c);
        });
        let idle_for = idle.join().unwrap();
        assert!(idle_for >= budget, "closed after {idle_for:?}");
        assert!(
            idle_for < Duration::from_secs(30),
            "closed after {idle_for:?}"
        );
        partial.join().unwrap();
        // Answered every time, past the budget (the last request went after it).
        let (answered, lasted) = busy.join().unwrap();
        assert!(
            answered > 1 && lasted > budget,
            "{answered} answers in {lasted:?}"
        );
        let hyper_idle_for = hyper_idle.join().unwrap();
        assert!(hyper_idle_for >= budget, "closed after {hyper_idle_for:?}");
        hyper_partial.join().unwrap();
    });
    // The busy connection ended on the client's side, the other four on the server's.
    assert_eq!(
        metric_at(&addr, "yizhangtu_http_header_timeouts_total"),
        4.0
    );
}

#[test]
fn past_max_connections_none_is_accepted_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, _logs) = serve_binary(dir.path(), &["--max-connections", "2"]);
    let addr = base.trim_start_matches("http://").to_string();
    let ask = |c: &mut std::net::TcpStream| {
        write!(c, "GET /collections HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    };
    let open = || {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        ask(&mut c);
        let (head, _) = read_keep_alive_answer(&mut c);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        c
    };
    let (first, mut second) = (open(), open());
    // A third is connected by the kernel but not accepted: its request waits.
    let mut third = std::net::TcpStream::connect(&addr).unwrap();
    ask(&mut third);
    third
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    let err = third.read(&mut byte).expect_err("answered past the limit");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    // One closes: the third is accepted and answered.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (head, _) = read_keep_alive_answer(&mut third);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // The second asks for the metrics: two open (it and the third) of two.
    write!(second, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let (_, body) = read_keep_alive_answer(&mut second);
    let metrics = String::from_utf8(body).unwrap();
    assert_eq!(
        common::metric_value(&metrics, "yizhangtu_http_connections_open"),
        2.0
    );
    assert_eq!(
        common::metric_value(&metrics, "yizhangtu_http_connections_max"),
        2.0
    );
}

#[test]
fn a_connection_served_by_hyper_that_moves_no_byte_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The idle timeout: the head budget and the request budget together, 2 s.
    let (_child, base, _logs) = serve_binary(
        dir.path(),
        &["--header-timeout", "1", "--request-timeout", "1"],
    );
    let addr = base.trim_start_matches("http://").to_string();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // HTTP/2 with prior knowledge (hyper's): the preface and an empty SETTINGS frame, then
    // nothing. hyper's header timer is HTTP/1's only; the sweeper's idle timeout closes it.
    let sent = Instant::now();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let frames = read_to_close(&mut c);
    let lasted = sent.elapsed();
    // The server's SETTINGS (frame type 4 on stream 0) came first.
    assert!(frames.len() >= 9 && frames[3] == 4, "{frames:?}");
    assert!(lasted >= Duration::from_secs(2), "closed after {lasted:?}");
    assert!(lasted < Duration::from_secs(30), "closed after {lasted:?}");
    assert_eq!(metric_at(&addr, "yizhangtu_http_idle_timeouts_total"), 1.0);
}

#[test]
fn a_client_that_stops_reading_its_answers_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, base, _logs) = serve_binary(dir.path(), &["--header-timeout", "1"]);
    let addr = base.trim_start_matches("http://").to_string();
    // A district (a few KB) asked 6,000 times in one go, and no answer read: tens of MB, more
    // than the two sockets' buffers hold, so the front's write blocks on the client.
    let ask = format!("GET /collections/districts/items/500111 HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(ask.repeat(6000).as_bytes()).unwrap();
    // The sweeper ends the write once it has waited the budget: poll for it (the bound is a
    // correctness bound; without the budget the count stays 0).
    let started = Instant::now();
    while metric_at(&addr, "yizhangtu_http_idle_timeouts_total") < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a client that does not read still holds its connection"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Its connection is closed: the only one open is the metrics reading's own.
    assert_eq!(metric_at(&addr, "yizhangtu_http_connections_open"), 1.0);
    drop(c);
}
