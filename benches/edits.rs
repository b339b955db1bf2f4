//! Editing throughput over HTTP with history and audit on the embedded database: PATCH edits/s
//! with p50/p99 latency, and read throughput alone and while 50 edits/s run.
//! Run with `cargo bench --bench edits` (a release build); `EDITS_SECONDS` sets each phase's length.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;
use yizhangtu::http::AppState;
use yizhangtu::model::{Feature, Layer};
use yizhangtu::store::{Actor, ImportMode};

const FEATURES: usize = 2000;

fn point(i: usize) -> Feature {
    let mut props = serde_json::Map::new();
    props.insert("status".into(), "planned".into());
    props.insert("n".into(), i.into());
    Feature::from_parts(
        "bench",
        format!("f{i}"),
        props,
        Some(geo::Geometry::Point(geo::point!(
            x: 105.5 + (i % 100) as f64 * 0.002,
            y: 29.5 + (i / 100) as f64 * 0.002
        ))),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn patch(client: &reqwest::Client, base: &str, i: usize, n: usize) -> Duration {
    let t = Instant::now();
    let r = client
        .patch(format!("{base}/collections/bench/items/f{}", i % FEATURES))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .header("x-change-reason", "bench")
        .body(format!("{{\"properties\": {{\"n\": {n}}}}}"))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    t.elapsed()
}

/// Reads (one page of 100 features, and one feature) for `secs` seconds by 4 clients; reads/s.
async fn reads(client: &reqwest::Client, base: &str, secs: f64) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (client, base, done) = (client.clone(), base.to_string(), Arc::clone(&done));
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < end {
                let url = if i % 2 == 0 {
                    format!(
                        "{base}/collections/bench/items?limit=100&offset={}",
                        (i * 37) % 1900
                    )
                } else {
                    format!("{base}/collections/bench/items/f{}", (i * 13) % FEATURES)
                };
                let r = client.get(url).send().await.expect("GET");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
                done.fetch_add(1, Ordering::Relaxed);
                i += 4;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / secs
}

fn main() {
    let secs: f64 = std::env::var("EDITS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bench.db");
        let app = Arc::new(App::open(db.to_str().unwrap(), false, None).await.unwrap());
        app.import(
            &[Layer::untitled("bench")],
            (0..FEATURES).map(point).collect(),
            ImportMode::Upsert,
        )
        .await
        .unwrap();
        app.follow(Duration::from_millis(1000));
        let t = yizhangtu::auth::new_token().unwrap();
        let entry = Actor::cli(None).entry("user add", None, vec!["bench".into()]);
        app.store
            .add_user("bench", "admin", &[], &t.id, &t.hash, &entry)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(Arc::clone(&app), HttpSettings::default());
        tokio::spawn(async move { yizhangtu::http::serve(listener, state).await.unwrap() });
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", t.token).parse().unwrap(),
        );
        let client = reqwest::Client::builder().default_headers(h).build().unwrap();
        // Warm up (and verify the token once).
        for i in 0..20 {
            patch(&client, &base, i, 0).await;
        }

        // 1. PATCH throughput: 4 clients editing different features as fast as they can.
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let (client, base) = (client.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = w;
                while Instant::now() < end {
                    lat.push(patch(&client, &base, i, i).await);
                    i += 4;
                }
                lat
            }));
        }
        let mut lat: Vec<Duration> = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let elapsed = start.elapsed().as_secs_f64();
        lat.sort();
        println!(
            "PATCH (history + audit, 4 clients): {} edits in {elapsed:.1} s = {:.0} edits/s; p50 {:.2} ms, p99 {:.2} ms",
            lat.len(),
            lat.len() as f64 / elapsed,
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3
        );

        // 2. Reads alone, then while 50 edits/s run.
        let alone = reads(&client, &base, secs).await;
        let stop = Arc::new(AtomicBool::new(false));
        let edits = Arc::new(AtomicUsize::new(0));
        let editor = {
            let (client, base, stop, edits) =
                (client.clone(), base.clone(), Arc::clone(&stop), Arc::clone(&edits));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    patch(&client, &base, i, i).await;
                    edits.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        };
        let t0 = Instant::now();
        let busy = reads(&client, &base, secs).await;
        stop.store(true, Ordering::Relaxed);
        editor.await.unwrap();
        let rate = edits.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
        println!(
            "reads (4 clients: pages of 100 and single features): {alone:.0}/s alone, {busy:.0}/s while {rate:.0} edits/s run ({:+.1}%)",
            (busy / alone - 1.0) * 100.0
        );
        let history: i64 = app.store.history("bench", "f0").await.unwrap().len() as i64;
        println!("history of f0: {history} versions");
    });
}
