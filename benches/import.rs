//! Memory and time of large writes (issue 10, repro 8), each in a process of its own:
//! (a) `yizhangtu import` of 300,000 synthetic 20-vertex polygons, (b) a POST of 100,000
//! small polygons,
//! (c) a POST of 640,000 points, (d) POSTs of zipped Shapefiles of 20,000, 40,000 and 80,000
//! 201-vertex polygons (45, 90 and 179 MB) and (e) `yizhangtu import` of the same zips
//! (issue 10 item 3: the extra memory of a write must not grow with its size). Peak RSS comes
//! from `/usr/bin/time -v` for the CLI and from the server's `/proc/<pid>/status` (VmHWM,
//! VmRSS) for the POSTs.
//!
//! `cargo bench --bench import`. `YIZHANGTU_BENCH_SCALE=0.1` for smaller inputs;
//! `YIZHANGTU_BENCH_BIN=/path/to/yizhangtu` to measure another build (e.g. an older commit);
//! `YIZHANGTU_BENCH_ONLY=d,e` for some of them. Memory hardly depends on the build profile:
//! `cargo bench --profile dev --bench import` measures the debug binary in less build time.
//!
//! (d)/(e) on the 2-core test machine, debug builds, before (761290d) → after streaming:
//!
//! | polygons (zip)     | POST peak above a fresh server on the result | CLI import peak RSS |
//! |--------------------|----------------------------------------------|---------------------|
//! | 20,000 (44.7 MB)   | 115 → 36 MB                                  | 217 → 69 MB         |
//! | 40,000 (89.5 MB)   | 203 → 37 MB                                  | 407 → 66 MB         |
//! | 80,000 (179.2 MB)  | 355 → 46 MB                                  | 785 → 74 MB         |
//!
//! (The server keeps every feature in its engine: a fresh server on the result takes 190, 337
//! and 625 MB; what a write adds above that no longer grows with its size.)

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use yizhangtu::formats::geojson::{write_feature, PropertySelection};
use yizhangtu::model::Feature;

mod measure;
mod synthetic;
use measure::{binary, cli_import, mb, memory_of, start_server_with};
use synthetic::{synthetic, EAST, NORTH, SOUTH, WEST};

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("YIZHANGTU_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

/// Writes features as a GeoJSON FeatureCollection; returns its size in bytes.
fn write_collection(path: &Path, features: impl Iterator<Item = Feature>) -> u64 {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[\n")
        .unwrap();
    let mut out = String::new();
    for (i, f) in features.enumerate() {
        out.clear();
        if i > 0 {
            out.push_str(",\n");
        }
        write_feature(&mut out, &f, &PropertySelection::All, None, &[]);
        w.write_all(out.as_bytes()).unwrap();
    }
    w.write_all(b"\n]}\n").unwrap();
    w.flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// `n` points spread over Chongqing, with a name and a number.
fn points(n: usize) -> impl Iterator<Item = Feature> {
    (0..n).map(move |i| {
        let t = i as f64 / n as f64;
        let x = WEST + (EAST - WEST) * ((i * 7919) % n) as f64 / n as f64;
        let y = SOUTH + (NORTH - SOUTH) * t;
        let mut props = serde_json::Map::new();
        props.insert("name".into(), format!("点{i}").into());
        props.insert("n".into(), i.into());
        let mut f = Feature::from_parts(
            "points",
            String::new(),
            props,
            Some(geo::Geometry::Point(geo::Point::new(x, y))),
        );
        f.id = format!("pt{i}");
        f
    })
}

/// `n` small quadrilateral parcels (coordinates to 1e-6°, about 0.1 m), about 250 bytes of
/// GeoJSON each, as in the 24.6 MB POST of 100,000 polygons.
fn parcels(n: usize) -> impl Iterator<Item = Feature> {
    let round = |v: f64| (v * 1e6).round() / 1e6;
    (0..n).map(move |i| {
        let cx = WEST + (EAST - WEST) * ((i * 7919) % n) as f64 / n as f64;
        let cy = SOUTH + (NORTH - SOUTH) * i as f64 / n as f64;
        let d = 0.0005 + (i % 7) as f64 * 0.0001;
        let ring: Vec<(f64, f64)> = [(0.0, 0.0), (d, 0.0), (d, d), (0.0, d), (0.0, 0.0)]
            .iter()
            .map(|(dx, dy)| (round(cx + dx), round(cy + dy)))
            .collect();
        let mut props = serde_json::Map::new();
        props.insert("name".into(), format!("地块{i}").into());
        props.insert("area_mu".into(), ((i % 500) as f64 + 0.5).into());
        let mut f = Feature::from_parts(
            "parcels",
            String::new(),
            props,
            Some(geo::Geometry::Polygon(geo::Polygon::new(
                ring.into(),
                vec![],
            ))),
        );
        f.id = format!("pa{i}");
        f
    })
}

/// POSTs `file` (GeoJSON) into `layer` (created first with one feature) of a fresh server;
/// prints time and memory.
fn post(label: &str, dir: &Path, file: &Path, layer: &str, first: Feature) {
    post_as(label, dir, file, layer, first, "application/geo+json");
}

/// [`post`] of a file of any type.
fn post_as(label: &str, dir: &Path, file: &Path, layer: &str, first: Feature, content_type: &str) {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let db = dir.join(format!("{layer}-post-{run}.db"));
    let seed = dir.join(format!("{layer}-first.geojson"));
    write_collection(&seed, std::iter::once(first));
    cli_import(&seed, layer, &db);
    // Writes need a signed-in user.
    let out = std::process::Command::new(binary())
        .args(["user", "add", "bench", "--role", "admin", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success() && !token.is_empty());
    let (mut server, url) = start_server_with(&db, 1 << 30);
    let pid = server.id();
    let (_, rss_before) = memory_of(pid);
    let body = std::fs::read(file).unwrap();
    let size = body.len() as u64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let (status, text) = rt.block_on(async {
        let r = reqwest::Client::builder()
            .timeout(Duration::from_secs(3600))
            .build()
            .unwrap()
            .post(format!("{url}/collections/{layer}/items"))
            .header("content-type", content_type)
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    });
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(status, 201, "{text}");
    std::thread::sleep(Duration::from_millis(500));
    let (hwm, rss_after) = memory_of(pid);
    println!(
        "{label}: {:.1} MB body in {secs:.1} s; server RSS {:.0} MB before, peak {:.0} MB (+{:.0}), {:.0} MB after",
        mb(size),
        rss_before as f64 / 1e3,
        hwm as f64 / 1e3,
        (hwm.saturating_sub(rss_before)) as f64 / 1e3,
        rss_after as f64 / 1e3,
    );
    let _ = server.kill();
    let _ = server.wait();
    // What the engine keeps of the result: a fresh server over the same database. The write's
    // own memory is the peak above this.
    let (mut fresh, _) = start_server_with(&db, 1 << 30);
    std::thread::sleep(Duration::from_millis(500));
    let (_, kept) = memory_of(fresh.id());
    println!(
        "    a fresh server on the result: {:.0} MB; the write's own peak above it: {:.0} MB",
        kept as f64 / 1e3,
        hwm.saturating_sub(kept) as f64 / 1e3
    );
    let _ = fresh.kill();
    let _ = fresh.wait();
}

/// Whether to run part `part` ("a", "b" or "c"): all unless `YIZHANGTU_BENCH_ONLY` lists some.
fn wanted(part: &str) -> bool {
    std::env::var("YIZHANGTU_BENCH_ONLY").map_or(true, |only| only.split(',').any(|p| p == part))
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    println!("binary: {}", binary().display());

    if wanted("a") {
        import_polygons(dir);
    }
    if wanted("b") {
        post_polygons(dir);
    }
    if wanted("c") {
        post_points(dir);
    }
    if wanted("d") || wanted("e") {
        shapefiles(dir);
    }
}

/// `n` polygons of 201 vertices (200 and the closing one) spread over Chongqing, with a name
/// and an area: 20,000 of them make a 45 MB zipped Shapefile (full-precision coordinates
/// hardly compress).
fn round_polygons(n: usize) -> impl Iterator<Item = Feature> {
    (0..n).map(move |i| {
        let cx = WEST + (EAST - WEST) * ((i * 7919) % n) as f64 / n as f64;
        let cy = SOUTH + (NORTH - SOUTH) * i as f64 / n as f64;
        let r = 0.0004 + (i % 13) as f64 * 0.00003;
        let mut ring: Vec<(f64, f64)> = (0..200)
            .map(|k| {
                let a = k as f64 / 200.0 * std::f64::consts::TAU;
                let rr = r * (0.9 + 0.1 * ((i + k * 37) % 17) as f64 / 17.0);
                (cx + rr * a.cos(), cy + rr * a.sin())
            })
            .collect();
        ring.push(ring[0]);
        let mut props = serde_json::Map::new();
        props.insert("name".into(), format!("图斑{i}").into());
        props.insert("area_mu".into(), ((i % 500) as f64 + 0.5).into());
        Feature::from_parts(
            "parcels",
            format!("pg{i}"),
            props,
            Some(geo::Geometry::Polygon(geo::Polygon::new(
                ring.into(),
                vec![],
            ))),
        )
    })
}

/// (d) and (e): the same write at 1, 2 and 4 times the size, over HTTP and from the CLI.
fn shapefiles(dir: &Path) {
    use yizhangtu::formats::{write_shapefile_zip, DbfEncoding, ExportLayer};
    for times in [1, 2, 4] {
        let n = scaled(20_000) * times;
        let mut all = round_polygons(n + 1);
        let first = all.next().unwrap();
        let layer = yizhangtu::model::Layer::untitled("parcels");
        let zip = write_shapefile_zip(
            &[ExportLayer {
                layer: &layer,
                features: all.map(std::sync::Arc::new).collect(),
            }],
            &yizhangtu::geom::crs::Crs::from_epsg(4490).unwrap(),
            DbfEncoding::Gbk,
        )
        .unwrap();
        let file = dir.join(format!("parcels-{times}.zip"));
        std::fs::write(&file, &zip).unwrap();
        let size = zip.len() as u64;
        drop(zip);
        if wanted("d") {
            post_as(
                &format!("(d) POST of a zipped Shapefile of {n} 201-vertex polygons"),
                dir,
                &file,
                "parcels",
                first,
                "application/zip",
            );
        }
        if wanted("e") {
            let db = dir.join(format!("cli-shp-{times}.db"));
            let (secs, kb) = cli_import(&file, "parcels", &db);
            println!(
                "(e) CLI import of a zipped Shapefile of {n} 201-vertex polygons ({:.1} MB): {secs:.1} s, peak RSS {:.0} MB",
                mb(size),
                kb as f64 / 1e3
            );
            std::fs::remove_file(&db).ok();
        }
        std::fs::remove_file(&file).unwrap();
    }
}

fn import_polygons(dir: &Path) {
    let n = scaled(300_000);
    let file = dir.join("polygons.geojson");
    let size = write_collection(&file, synthetic(n, 1).into_iter());
    let (secs, kb) = cli_import(&file, "parcels", &dir.join("cli.db"));
    println!(
        "(a) CLI import of {n} polygons ({:.1} MB): {secs:.1} s, peak RSS {:.0} MB",
        mb(size),
        kb as f64 / 1e3
    );
    std::fs::remove_file(&file).unwrap();
}

fn post_polygons(dir: &Path) {
    let n = scaled(100_000);
    let file = dir.join("polygons-100k.geojson");
    let mut small = parcels(n + 1);
    let first = small.next().unwrap();
    write_collection(&file, small);
    post(
        &format!("(b) POST of {n} polygons"),
        dir,
        &file,
        "parcels",
        first,
    );
}

fn post_points(dir: &Path) {
    let n = scaled(640_000);
    let file = dir.join("points.geojson");
    let mut pts = points(n + 1);
    let first = pts.next().unwrap();
    write_collection(&file, pts);
    post(
        &format!("(c) POST of {n} points"),
        dir,
        &file,
        "points",
        first,
    );
}
