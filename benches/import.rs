//! Memory and time of large writes (issue 10, repro 8), each in a process of its own:
//! (a) `yizhangtu import` of 300,000 synthetic 20-vertex polygons, (b) a POST of 100,000
//! small polygons,
//! (c) a POST of 640,000 points. Peak RSS comes from `/usr/bin/time -v` for the CLI and from the
//! server's `/proc/<pid>/status` (VmHWM, VmRSS) for the POSTs.
//!
//! `cargo bench --bench import`. `YIZHANGTU_BENCH_SCALE=0.1` for smaller inputs;
//! `YIZHANGTU_BENCH_BIN=/path/to/yizhangtu` to measure another build (e.g. an older commit);
//! `YIZHANGTU_BENCH_ONLY=b,c` for some of the three.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use yizhangtu::formats::geojson::{write_feature, PropertySelection};
use yizhangtu::model::Feature;

mod measure;
mod synthetic;
use measure::{binary, cli_import, mb, memory_of, start_server};
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

/// POSTs `file` into `layer` (created first with one feature) of a fresh server; prints time
/// and memory.
fn post(label: &str, dir: &Path, file: &Path, layer: &str, first: Feature) {
    let db = dir.join(format!("{layer}-post.db"));
    let seed = dir.join(format!("{layer}-first.geojson"));
    write_collection(&seed, std::iter::once(first));
    cli_import(&seed, layer, &db);
    let (mut server, url) = start_server(&db);
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
            .header("content-type", "application/geo+json")
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
