//! Engine and HTTP benchmark on 1,000,000 synthetic polygons (~20 vertices each) spread over
//! Chongqing: load time, memory per feature, bbox query latency, HTTP items latency.
//!
//! `cargo bench --bench engine` (set `YIZHANGTU_BENCH_N` for another size).

use geo::{Coord, Rect};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;
use yizhangtu::engine::coverage::coverage;
use yizhangtu::engine::{Engine, Filter, LayerIndex, Query};
use yizhangtu::geom::PreparedArea;
use yizhangtu::http::AppState;
use yizhangtu::model::Layer;
use yizhangtu::store::Store;

mod synthetic;
use synthetic::{synthetic, town_polygon, EAST, NORTH, SOUTH, WEST};

/// Counts live heap bytes, so memory per feature is what the engine holds, not what the
/// allocator kept from the transient input vector.
struct Counting;
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, std::sync::atomic::Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> usize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<44} p50 {:>9.1} µs   p90 {:>9.1} µs   p99 {:>9.1} µs   (n={})",
        percentile(&samples, 0.5).as_secs_f64() * 1e6,
        percentile(&samples, 0.9).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        samples.len()
    );
}

/// Random boxes sized to hold about `target` features at the synthetic density.
fn boxes(n: usize, count: usize, target: f64, seed: u64) -> Vec<Rect<f64>> {
    let density = n as f64 / ((EAST - WEST) * (NORTH - SOUTH));
    let side = (target / density).sqrt();
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let x = rng.gen_range(WEST..EAST - side);
            let y = rng.gen_range(SOUTH..NORTH - side);
            Rect::new(
                Coord { x, y },
                Coord {
                    x: x + side,
                    y: y + side,
                },
            )
        })
        .collect()
}

/// Distinct random tiles at zoom `z` inside the synthetic extent.
fn tiles_over(z: u8, count: usize, seed: u64) -> Vec<(u8, u32, u32)> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let n = 1u32 << z;
    let tx = |lon: f64| (((lon + 180.0) / 360.0) * n as f64) as u32;
    let ty = |lat: f64| {
        let r = lat.to_radians();
        (((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0) * n as f64) as u32
    };
    let (x0, x1, y0, y1) = (tx(WEST), tx(EAST), ty(NORTH), ty(SOUTH));
    let mut out = Vec::new();
    while out.len() < count && seen.len() < ((x1 - x0 + 1) * (y1 - y0 + 1)) as usize {
        let t = (z, rng.gen_range(x0..=x1), rng.gen_range(y0..=y1));
        if seen.insert(t) {
            out.push(t);
        }
    }
    out
}

/// Tiles over the five districts (105.2–108.9E, 28.9–31.7N), in order, capped at `count`.
fn seeded_tiles(z: u8, count: usize) -> Vec<(u8, u32, u32)> {
    let n = 1u32 << z;
    let tx = |lon: f64| (((lon + 180.0) / 360.0) * n as f64) as u32;
    let ty = |lat: f64| {
        let r: f64 = lat.to_radians();
        (((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0) * n as f64) as u32
    };
    let mut all = Vec::new();
    for x in tx(105.2)..=tx(108.9) {
        for y in ty(31.7)..=ty(28.9) {
            all.push((z, x, y));
        }
    }
    let step = (all.len() / count).max(1);
    all.into_iter().step_by(step).take(count).collect()
}

async fn fetch_tiles(
    client: &reqwest::Client,
    base: &str,
    layers: &str,
    tiles: &[(u8, u32, u32)],
) -> (Vec<Duration>, usize) {
    let mut samples = Vec::with_capacity(tiles.len());
    let mut bytes = 0;
    for (z, x, y) in tiles {
        let url = format!("{base}/tiles/{layers}/{z}/{x}/{y}.mvt");
        let t = Instant::now();
        let r = client.get(&url).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        bytes += r.bytes().await.unwrap().len();
        samples.push(t.elapsed());
    }
    (samples, bytes)
}

async fn concurrent_tiles(
    client: &reqwest::Client,
    base: &str,
    layers: &str,
    tiles: Vec<(u8, u32, u32)>,
    connections: usize,
) {
    let queue = Arc::new(std::sync::Mutex::new(tiles));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, queue, base, layers) = (
            client.clone(),
            Arc::clone(&queue),
            base.to_string(),
            layers.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().unwrap().pop();
                let Some((z, x, y)) = next else { break };
                let r = client
                    .get(format!("{base}/tiles/{layers}/{z}/{x}/{y}.mvt"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn vm(field: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<usize>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// GeoJSON export of every synthetic polygon, streamed to a file, against GDAL's ogr2ogr writing
/// the same GeoJSON from a GeoPackage of the same data.
fn export_benchmark(idx: &Arc<parking_lot::RwLock<LayerIndex>>) {
    use yizhangtu::export::write_geojson_stream;
    use yizhangtu::geom::crs::Crs;
    let dir = tempfile::tempdir().unwrap();
    let chosen = {
        let idx = idx.read();
        vec![(
            idx.layer.clone(),
            idx.iter().map(|(_, f)| f).collect::<Vec<_>>(),
        )]
    };
    let out = dir.path().join("export.geojson");
    // Reset the peak-RSS mark (Linux: clear_refs 5) so the peak is the export's own.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss = vm("VmRSS:");
    let t = Instant::now();
    let file = std::fs::File::create(&out).unwrap();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let n = write_geojson_stream(&chosen, &Crs::Crs84, &mut w).unwrap();
    std::io::Write::flush(&mut w).unwrap();
    drop(w);
    let secs = t.elapsed().as_secs_f64();
    let peak = vm("VmHWM:");
    println!(
        "GeoJSON export of {n} polygons (streamed)     {:>9.2} s   {:.0} MB written   peak RSS growth {:.0} MB",
        secs,
        std::fs::metadata(&out).unwrap().len() as f64 / 1e6,
        peak.saturating_sub(rss) as f64 / 1e6
    );
    std::fs::remove_file(&out).ok();
    if std::process::Command::new("ogr2ogr")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("ogr2ogr not installed: comparison skipped");
        return;
    }
    let gpkg = dir.path().join("same.gpkg");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let layers = [yizhangtu::formats::ExportLayer {
        layer: &chosen[0].0,
        features: chosen[0].1.clone(),
    }];
    rt.block_on(yizhangtu::formats::write_geopackage(
        &gpkg,
        &layers,
        &Crs::Epsg4490,
    ))
    .unwrap();
    let t = Instant::now();
    let status = std::process::Command::new("ogr2ogr")
        .args([
            "-f",
            "GeoJSON",
            out.to_str().unwrap(),
            gpkg.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    println!(
        "ogr2ogr GeoPackage → GeoJSON, same data      {:>9.2} s",
        t.elapsed().as_secs_f64()
    );
}

fn main() {
    let n: usize = std::env::var("YIZHANGTU_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("yizhangtu engine benchmark: {n} synthetic polygons of 20 vertices over Chongqing");
    let rss0 = rss_bytes();
    let live0 = live_bytes();
    let t = Instant::now();
    let features = synthetic(n, 42);
    println!(
        "generate features                            {:>9.2} s",
        t.elapsed().as_secs_f64()
    );
    let layer = Layer {
        title_zh: "合成地块".into(),
        title_en: "Synthetic parcels".into(),
        ..Layer::untitled("parcels")
    };
    let t = Instant::now();
    let engine = Engine::load(vec![(layer, 1)], features);
    let load = t.elapsed();
    let rss1 = rss_bytes();
    let live1 = live_bytes();
    println!(
        "engine load (index build)                    {:>9.2} s",
        load.as_secs_f64()
    );
    println!(
        "memory per feature (live heap / n)           {:>9.0} B   ({:.0} MB in all)",
        (live1.saturating_sub(live0)) as f64 / n as f64,
        (live1.saturating_sub(live0)) as f64 / 1e6
    );
    println!(
        "process RSS growth / n (incl. freed input)          {:>9.0} B   ({:.0} MB in all)",
        (rss1.saturating_sub(rss0)) as f64 / n as f64,
        (rss1.saturating_sub(rss0)) as f64 / 1e6
    );

    let idx = engine.layer("parcels").unwrap();
    export_benchmark(&idx);
    let queries = boxes(n, 20_000, 100.0, 7);
    let mut returned = 0usize;
    let mut samples = Vec::with_capacity(queries.len());
    {
        let idx = idx.read();
        for r in &queries {
            let t = Instant::now();
            let res = idx.query(&Query {
                bbox: Some(*r),
                limit: 100,
                ..Default::default()
            });
            samples.push(t.elapsed());
            returned += res.features.len();
        }
    }
    println!(
        "bbox queries: mean {:.1} features returned",
        returned as f64 / queries.len() as f64
    );
    report("engine bbox query (~100 features, limit 100)", samples);

    // within=<town>: town-sized polygons (~70 km², 128 vertices) at random places.
    let towns: Vec<Arc<PreparedArea>> = (0..200).map(|i| Arc::new(town_polygon(i))).collect();
    let mut samples = Vec::new();
    let mut returned = 0usize;
    let mut matched = 0usize;
    {
        let idx = idx.read();
        for round in 0..10 {
            for t in &towns {
                let q = Query {
                    filter: Some(Filter::InArea {
                        area: Arc::clone(t),
                        within: true,
                    }),
                    limit: 100,
                    ..Default::default()
                };
                let t0 = Instant::now();
                let res = idx.query(&q);
                samples.push(t0.elapsed());
                if round == 0 {
                    returned += res.features.len();
                    matched += res.matched;
                }
            }
        }
    }
    println!(
        "within=<town>: mean {:.0} features matched, {:.0} returned",
        matched as f64 / towns.len() as f64,
        returned as f64 / towns.len() as f64
    );
    report("engine within=<town> (limit 100, counts all)", samples);
    let t0 = Instant::now();
    let _ = town_polygon(9999);
    println!(
        "prepare one town polygon (cached per unit)    {:>9.1} µs",
        t0.elapsed().as_secs_f64() * 1e6
    );

    // Coverage of a town-sized polygon over 10,000 intersecting polygons (parcels of 0.3–5 ha
    // spread over the town, overlapping here and there as plan layers do).
    let town = town_polygon(1);
    let dense = synthetic::dense_parcels(&town, 10_000);
    let dense_idx = LayerIndex::build(Layer::untitled("dense"), 1, dense);
    let mut samples = Vec::new();
    let mut last = None;
    for _ in 0..20 {
        let t0 = Instant::now();
        let c = coverage(&dense_idx, &town, false);
        samples.push(t0.elapsed());
        last = Some(c);
    }
    let c = last.unwrap();
    println!(
        "coverage: {} features meet the town, union {:.0} m² of it",
        c.features, c.covered_m2
    );
    samples.sort();
    println!(
        "coverage of a town over 10,000 polygons       p50 {:>9.1} ms   max {:>9.1} ms   (n={})",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("bench.db").to_str().unwrap()).await.unwrap();
        let app = Arc::new(App::from_parts(store, engine).await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(app, HttpSettings::default());
        tokio::spawn(async move { yizhangtu::http::serve(listener, state).await.unwrap() });
        let client = reqwest::Client::new();
        let urls: Vec<String> = boxes(n, 3_000, 100.0, 11)
            .iter()
            .map(|r| {
                format!(
                    "http://{addr}/collections/parcels/items?bbox={:.6},{:.6},{:.6},{:.6}&limit=100",
                    r.min().x, r.min().y, r.max().x, r.max().y
                )
            })
            .collect();
        for u in urls.iter().take(200) {
            client.get(u).send().await.unwrap().bytes().await.unwrap();
        }
        let mut samples = Vec::with_capacity(urls.len());
        let mut bytes = 0usize;
        for u in &urls {
            let t = Instant::now();
            let r = client.get(u).send().await.unwrap();
            assert_eq!(r.status(), 200);
            bytes += r.bytes().await.unwrap().len();
            samples.push(t.elapsed());
        }
        println!("HTTP items: mean body {:.0} kB", bytes as f64 / urls.len() as f64 / 1e3);
        report("HTTP GET items?bbox=…&limit=100 (sequential)", samples);

        // Vector tiles of the synthetic layer: every request a distinct tile, so none is cached.
        let base = format!("http://{addr}");
        for z in [8u8, 12, 14] {
            let tiles = tiles_over(z, 400, 21 + z as u64);
            let (samples, bytes) = fetch_tiles(&client, &base, "parcels", &tiles).await;
            println!("z{z} tiles: mean {:.0} kB", bytes as f64 / tiles.len() as f64 / 1e3);
            report(&format!("synthetic tile z{z} (uncached, sequential)"), samples);
        }
        let tiles = tiles_over(12, 4000, 99);
        let t0 = Instant::now();
        concurrent_tiles(&client, &base, "parcels", tiles.clone(), 64).await;
        println!(
            "synthetic z12, 64 connections: {:>9.0} tiles/s ({} distinct tiles)",
            tiles.len() as f64 / t0.elapsed().as_secs_f64(),
            tiles.len()
        );
    });

    // The seeded dataset: every layer in one tile, over the five districts.
    let rt2 = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt2.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("seeded.db");
        let app = Arc::new(App::open(db.to_str().unwrap(), true, None).await.unwrap());
        let layers = app.engine.layer_ids().join(",");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(app, HttpSettings::default());
        tokio::spawn(async move { yizhangtu::http::serve(listener, state).await.unwrap() });
        let client = reqwest::Client::new();
        let base = format!("http://{addr}");
        for z in [8u8, 12, 14] {
            let tiles = seeded_tiles(z, 300);
            let (samples, bytes) = fetch_tiles(&client, &base, &layers, &tiles).await;
            println!(
                "seeded z{z} tiles (all {} layers): mean {:.1} kB",
                layers.split(',').count(),
                bytes as f64 / tiles.len() as f64 / 1e3
            );
            report(&format!("seeded tile z{z} (uncached, sequential)"), samples);
        }
    });
}
