//! Issue 10, HTTP side: repeated layer names, limits answered in JSON, forwarded headers, media
//! types, conformance, ETags per representation, deadlines, cancellation, busy servers and a
//! bounded shutdown — each against a real server.

mod common;

use common::{serve_binary, start, start_with, TestServer};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use yizhangtu::config::HttpSettings;
use yizhangtu::model::Feature;

// ---------------------------------------------------------------------------------------------
// A minimal protobuf walk over an MVT tile: the names of its layers (field 3, name = field 1).

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// (field, wire type, payload for length-delimited fields) of each field of a message.
fn fields(b: &[u8]) -> Vec<(u64, u64, &[u8])> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(b, &mut i);
                out.push((field, wire, &b[0..0]));
            }
            1 => i += 8,
            2 => {
                let n = varint(b, &mut i) as usize;
                out.push((field, wire, &b[i..i + n]));
                i += n;
            }
            5 => i += 4,
            w => panic!("wire type {w} in a tile"),
        }
    }
    out
}

fn layer_names(tile: &[u8]) -> Vec<String> {
    fields(tile)
        .into_iter()
        .filter(|(f, w, _)| *f == 3 && *w == 2)
        .map(|(_, _, layer)| {
            let name = fields(layer)
                .into_iter()
                .find(|(f, w, _)| *f == 1 && *w == 2)
                .expect("a layer has a name");
            String::from_utf8(name.2.to_vec()).unwrap()
        })
        .collect()
}

async fn assert_problem(r: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(r.status().as_u16(), status);
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    assert!(
        ct.starts_with("application/json"),
        "{status}: content type '{ct}', body {text}"
    );
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(body["code"].is_string(), "{body}");
    assert!(body["description"].is_string(), "{body}");
    body
}

// ---------------------------------------------------------------------------------------------
// Crash 3: repeated layer names

#[tokio::test]
async fn repeated_layer_names_in_a_tile_are_drawn_once() {
    let s = start().await;
    let one = s.get("/tiles/villages/3/6/3.mvt").await;
    assert_eq!(one.status(), 200);
    let one = one.bytes().await.unwrap();
    assert_eq!(layer_names(&one), vec!["villages"]);

    let spec = vec!["villages"; 300].join(",");
    let many = s.get(&format!("/tiles/{spec}/3/6/3.mvt")).await;
    assert_eq!(many.status(), 200);
    let many = many.bytes().await.unwrap();
    assert_eq!(layer_names(&many), vec!["villages"]);
    assert_eq!(many.len(), one.len());
    assert_eq!(many, one);

    // Order of first appearance is kept; each name once.
    let mixed = s
        .get("/tiles/towns,villages,towns,villages/3/6/3.mvt")
        .await;
    assert_eq!(mixed.status(), 200);
    assert_eq!(
        layer_names(&mixed.bytes().await.unwrap()),
        vec!["towns", "villages"]
    );
}

#[tokio::test]
async fn repeated_layer_names_in_exports_and_areas_count_once() {
    let s = start().await;
    let once = s.get("/export?layers=projects&area=500111").await;
    assert_eq!(once.status(), 200);
    let n_once = once.headers()["x-feature-count"]
        .to_str()
        .unwrap()
        .to_string();
    let spec = vec!["projects"; 200].join(",");
    let many = s.get(&format!("/export?layers={spec}&area=500111")).await;
    assert_eq!(many.status(), 200);
    assert_eq!(many.headers()["x-feature-count"].to_str().unwrap(), n_once);
    let doc: serde_json::Value = many.json().await.unwrap();
    assert_eq!(
        doc["features"].as_array().unwrap().len().to_string(),
        n_once
    );

    let cov = s
        .json(&format!("/areas/500111/coverage?layers={spec}"))
        .await;
    assert_eq!(cov["layers"].as_array().unwrap().len(), 1, "{cov}");
    let feats = s
        .json(&format!("/areas/500111/features?layers={spec}"))
        .await;
    assert_eq!(feats["counts"].as_object().unwrap().len(), 1, "{feats}");
}

// ---------------------------------------------------------------------------------------------
// Smaller items

#[tokio::test]
async fn limit_answers_are_json() {
    let s = start_with(
        HttpSettings {
            max_body_bytes: 1024,
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    // Over the body limit, announced by Content-Length.
    let big = vec![b' '; 4096];
    let r = s
        .client
        .post(s.url("/analysis/coverage"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_problem(r, 413).await;

    // A request target over the limit.
    let long = "x".repeat(40 * 1024);
    let r = s
        .get(&format!("/collections/towns/items?name={long}"))
        .await;
    let body = assert_problem(r, 414).await;
    assert_eq!(body["limit"], "uri-bytes");

    // Headers over the limit.
    let r = s
        .client
        .get(s.url("/conformance"))
        .header("x-padding", "y".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 431).await;
    assert_eq!(body["limit"], "header-bytes");
}

fn hrefs(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for l in doc["links"].as_array().unwrap() {
        out.push(l["href"].as_str().unwrap().to_string());
    }
    out
}

#[tokio::test]
async fn forwarded_headers_are_ignored_unless_trusted() {
    let s = start().await;
    let r = s
        .client
        .get(s.url("/collections"))
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    for h in hrefs(&doc) {
        assert!(h.starts_with(&s.base), "{h}");
    }

    let trusted = start_with(
        HttpSettings {
            trust_forwarded_headers: true,
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    let r = trusted
        .client
        .get(trusted.url("/collections"))
        .header("x-forwarded-host", "maps.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let vary: Vec<String> = r
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(
        vary.iter().any(|v| v.contains("x-forwarded-host")),
        "{vary:?}"
    );
    let doc: serde_json::Value = r.json().await.unwrap();
    for h in hrefs(&doc) {
        assert!(h.starts_with("https://maps.example/"), "{h}");
    }
}

#[tokio::test]
async fn media_types_are_compared_whole() {
    let s = start().await;
    let body = r#"{"area": "500111100"}"#;
    for bad in ["application/jsonfoo", "application/json-seq", "text/plain"] {
        let r = s
            .client
            .post(s.url("/analysis/coverage?layers=projects"))
            .header("content-type", bad)
            .body(body)
            .send()
            .await
            .unwrap();
        let p = assert_problem(r, 415).await;
        assert_eq!(p["contentType"], bad);
    }
    for good in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/geo+json",
    ] {
        let r = s
            .client
            .post(s.url("/analysis/coverage?layers=projects"))
            .header("content-type", good)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{good}");
    }
}

#[tokio::test]
async fn conformance_declares_crs_and_filter_classes() {
    let s = start().await;
    let doc = s.json("/conformance").await;
    let classes: Vec<&str> = doc["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
        "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
        "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    ] {
        assert!(classes.contains(&c), "missing {c}");
    }
    // What is declared works: a CQL2 JSON filter, LIKE/IN/BETWEEN and a spatial function.
    let f = r#"{"op":"=","args":[{"property":"name"},"龙水镇"]}"#;
    let r = s
        .client
        .get(s.url("/collections/towns/items"))
        .query(&[("filter", f), ("filter-lang", "cql2-json")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["numberMatched"], 1);
    for text in [
        "name LIKE '龙水%'",
        "name IN ('龙水镇', '不存在')",
        "S_INTERSECTS(geometry, POINT(105.78 29.70))",
    ] {
        let r = s
            .client
            .get(s.url("/collections/towns/items"))
            .query(&[("filter", text)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{text}");
    }
}

#[tokio::test]
async fn etags_differ_by_media_type() {
    let s = start().await;
    let get = |accept: &'static str| {
        s.client
            .get(s.url("/collections/towns/items?limit=2"))
            .header("accept", accept)
            .send()
    };
    let geo = get("application/geo+json").await.unwrap();
    let plain = get("application/json").await.unwrap();
    assert_eq!(geo.headers()["content-type"], "application/geo+json");
    assert_eq!(plain.headers()["content-type"], "application/json");
    let (g, p) = (
        geo.headers()["etag"].clone(),
        plain.headers()["etag"].clone(),
    );
    assert_ne!(g, p);
    for r in [&geo, &plain] {
        let vary = r.headers()["vary"].to_str().unwrap();
        assert!(vary.contains("Accept"), "{vary}");
    }
    // A cached geo+json tag does not revalidate the plain JSON representation.
    let r = s
        .client
        .get(s.url("/collections/towns/items?limit=2"))
        .header("accept", "application/json")
        .header("if-none-match", g.to_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn tile_errors_are_the_standard_problem() {
    let s = start().await;
    let r = s.get("/tiles/towns/30/0/0.mvt").await;
    let body = assert_problem(r, 400).await;
    assert_eq!(body["parameter"], "z");
    assert_eq!(body["value"], "30");
    let r = s.get("/tiles/towns/3/9/0.mvt").await;
    let body = assert_problem(r, 400).await;
    assert_eq!(body["parameter"], "x");
    assert_eq!(body["value"], "9");
    let r = s
        .get("/collections/towns/tiles/WebMercatorQuad/2/7/0")
        .await;
    let body = assert_problem(r, 400).await;
    assert_eq!(body["parameter"], "tileRow");
    assert_eq!(body["value"], "7");
}

#[tokio::test]
async fn healthz_answers_json() {
    let s = start().await;
    let doc = s.json("/healthz").await;
    assert_eq!(doc["status"], "ok");
    assert!(doc["heavy"]["jobs"]["cancelled"].is_u64(), "{doc}");
}

// ---------------------------------------------------------------------------------------------
// Budgets

#[tokio::test]
async fn over_the_request_timeout_is_503_naming_the_limit() {
    let s = start_with(
        HttpSettings {
            request_timeout: Duration::from_millis(1),
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    for path in [
        "/areas/500111/coverage?by=village",
        "/areas/500111/features",
        "/export?format=gpkg",
        "/tiles/villages,towns,projects/3/6/3.mvt",
    ] {
        let r = s.get(path).await;
        assert!(r.headers().contains_key("retry-after"), "{path}");
        let body = assert_problem(r, 503).await;
        assert_eq!(body["code"], "RequestTimeout", "{path}");
        assert_eq!(body["limit"], "request-timeout", "{path}");
        assert!(
            body["description"]
                .as_str()
                .unwrap()
                .contains("--request-timeout"),
            "{body}"
        );
    }
    // Cheap resources are not subject to it.
    s.json("/conformance").await;
    s.json("/collections/towns/items?limit=1").await;
}

#[tokio::test]
async fn exports_over_the_memory_limit_are_413() {
    let s = start_with(
        HttpSettings {
            max_export_bytes: 64 * 1024,
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    let r = s.get("/export?layers=villages&format=gpkg").await;
    let body = assert_problem(r, 413).await;
    assert_eq!(body["limit"], "max-export-mb");
    // GeoJSON is streamed and not bound by it.
    let r = s.get("/export?layers=villages&format=geojson").await;
    assert_eq!(r.status(), 200);
}

/// A layer of `n` small squares spread over 大足 (500111), in memory only: a heavy layer.
fn add_big_layer(s: &TestServer, n: usize) {
    let (x0, y0, x1, y1) = (105.65, 29.55, 105.90, 29.80);
    let side = (n as f64).sqrt().ceil() as usize;
    let (dx, dy) = ((x1 - x0) / side as f64, (y1 - y0) / side as f64);
    let features: Vec<Feature> = (0..n)
        .map(|i| {
            let (cx, cy) = (x0 + (i % side) as f64 * dx, y0 + (i / side) as f64 * dy);
            let ring: Vec<(f64, f64)> = (0..=24)
                .map(|k| {
                    let a = k as f64 / 24.0 * std::f64::consts::TAU;
                    (cx + dx * 0.4 * a.cos(), cy + dy * 0.4 * a.sin())
                })
                .collect();
            let poly = geo::Polygon::new(geo::LineString::from(ring), vec![]);
            let mut props = serde_json::Map::new();
            props.insert("n".into(), serde_json::json!(i));
            Feature::from_parts("big", format!("b{i}"), props, Some(poly.into()))
        })
        .collect();
    s.app.engine.upsert(features, 1);
}

async fn healthz(s: &TestServer) -> serde_json::Value {
    s.json("/healthz").await
}

/// Waits (polling, bounded) until `/healthz` satisfies `cond`.
async fn wait_for(s: &TestServer, what: &str, cond: impl Fn(&serde_json::Value) -> bool) {
    for _ in 0..1200 {
        let h = healthz(s).await;
        if cond(&h) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never saw: {what}; last {}", healthz(s).await);
}

const HEAVY: &str = "/areas/500111/features?layers=big";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_and_healthz_answer_while_four_heavy_requests_run() {
    let s = Arc::new(
        start_with(
            HttpSettings {
                heavy_jobs: 2,
                request_timeout: Duration::from_secs(600),
                ..HttpSettings::default()
            },
            true,
        )
        .await,
    );
    add_big_layer(&s, 60_000);
    let mut heavy = Vec::new();
    for _ in 0..4 {
        let s = Arc::clone(&s);
        heavy.push(tokio::spawn(async move { s.get(HEAVY).await.status() }));
    }
    // Two run, two wait; meanwhile the cheap resources answer.
    wait_for(&s, "two heavy jobs running, two queued", |h| {
        h["heavy"]["jobs"]["running"] == 2 && h["heavy"]["jobs"]["queued"] == 2
    })
    .await;
    for _ in 0..5 {
        let c = s.json("/conformance").await;
        assert!(c["conformsTo"].is_array());
    }
    let h = healthz(&s).await;
    assert_eq!(h["heavy"]["jobs"]["completed"], 0, "{h}");
    for h in heavy {
        assert_eq!(h.await.unwrap(), 200);
    }
    let h = healthz(&s).await;
    assert_eq!(h["heavy"]["jobs"]["completed"], 4, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_503_with_retry_after() {
    let s = Arc::new(
        start_with(
            HttpSettings {
                heavy_jobs: 1,
                heavy_queue: 1,
                request_timeout: Duration::from_secs(600),
                ..HttpSettings::default()
            },
            true,
        )
        .await,
    );
    add_big_layer(&s, 60_000);
    let mut heavy = Vec::new();
    for _ in 0..2 {
        let s = Arc::clone(&s);
        heavy.push(tokio::spawn(async move { s.get(HEAVY).await.status() }));
    }
    wait_for(&s, "one running, one queued", |h| {
        h["heavy"]["jobs"]["running"] == 1 && h["heavy"]["jobs"]["queued"] == 1
    })
    .await;
    let r = s.get(HEAVY).await;
    assert_eq!(r.headers()["retry-after"], "1");
    let body = assert_problem(r, 503).await;
    assert_eq!(body["code"], "Busy");
    assert_eq!(body["limit"], "heavy-queue");
    for h in heavy {
        assert_eq!(h.await.unwrap(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_cancels_the_work() {
    let s = start_with(
        HttpSettings {
            request_timeout: Duration::from_secs(600),
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    add_big_layer(&s, 150_000);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(format!("GET {HEAVY} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    wait_for(&s, "the heavy job running", |h| {
        h["heavy"]["jobs"]["running"] == 1
    })
    .await;
    drop(conn);
    wait_for(&s, "the job cancelled and its slot free", |h| {
        h["heavy"]["jobs"]["cancelled"] == 1 && h["heavy"]["jobs"]["running"] == 0
    })
    .await;
    assert_eq!(healthz(&s).await["heavy"]["jobs"]["completed"], 0);
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[test]
fn sigterm_with_a_request_in_flight_exits_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let grace = 2.0;
    let (mut child, base, _logs) = serve_binary(dir.path(), &["--shutdown-grace", "2"]);
    let addr = base.trim_start_matches("http://").to_string();
    // A request in flight: its body never finishes arriving.
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut conn,
        format!(
            "POST /analysis/coverage HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"area\":"
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    // A correctness bound (3× the grace), not a performance target.
    let bound = Duration::from_secs_f64(grace * 3.0);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        if signalled.elapsed() > bound {
            let _ = child.kill();
            panic!("still running {bound:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(conn);
}
