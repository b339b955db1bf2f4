//! Shapefile and GeoPackage imports are decoded record by record as they are written (issue 10
//! item 3): a large upload round-trips exactly, a bad record after several written batches
//! imports nothing, and the CLI import of a zip does the same.

mod common;

use geo::{Coord, Geometry, LineString, MultiPolygon, Polygon};
use serde_json::{json, Value};
use std::sync::Arc;
use yizhangtu::formats::{write_geopackage, write_shapefile_zip, DbfEncoding, ExportLayer};
use yizhangtu::geom::crs::Crs;
use yizhangtu::model::{Feature, Layer};

/// Rows of the store's batches: a bad record past this many is after a batch was written.
const BATCH: usize = yizhangtu::store::IMPORT_BATCH;

/// A ring of `n` vertices (closed) around (x, y), counter-clockwise, radius `r` degrees; the
/// radii vary so that no two features share a vertex pattern.
fn ring(x: f64, y: f64, r: f64, n: usize, seed: usize) -> LineString<f64> {
    let mut pts: Vec<Coord<f64>> = (0..n)
        .map(|k| {
            let a = k as f64 / n as f64 * std::f64::consts::TAU;
            let rr = r * (0.8 + 0.2 * ((seed * 31 + k * 7) % 11) as f64 / 11.0);
            Coord {
                x: x + rr * a.cos(),
                y: y + rr * a.sin(),
            }
        })
        .collect();
    pts.push(pts[0]);
    LineString(pts)
}

/// Feature `i` as the test writes it: polygons near 龙水镇 (every 7th with a hole, every 11th
/// a two-part MultiPolygon), with an integer, a fraction, a boolean and Chinese text.
fn expected(i: usize) -> (Geometry<f64>, Value) {
    let (x, y) = (
        105.70 + (i % 100) as f64 * 0.002,
        29.60 + (i / 100) as f64 * 0.002,
    );
    let outer = ring(x, y, 0.0008, 12, i);
    let holes = if i % 7 == 0 {
        let mut h = ring(x, y, 0.0002, 6, i + 1);
        h.0.reverse();
        vec![h]
    } else {
        vec![]
    };
    let poly = Polygon::new(outer, holes);
    let geometry = if i % 11 == 0 {
        let other = Polygon::new(ring(x + 0.001, y + 0.001, 0.0002, 5, i + 2), vec![]);
        Geometry::MultiPolygon(MultiPolygon(vec![poly, other]))
    } else {
        Geometry::Polygon(poly)
    };
    let props = json!({
        "plot": i,
        "share": i as f64 * 0.25 + 0.125,
        "irrigated": i % 2 == 0,
        "note": format!("地块 {i} 整治"),
        "batch": "stream-test",
    });
    (geometry, props)
}

fn features(n: usize, bad: Option<usize>) -> Vec<Arc<Feature>> {
    (0..n)
        .map(|i| {
            let (mut g, props) = expected(i);
            if Some(i) == bad {
                // Paris: a wrong CRS or axis order, refused on import.
                g = Geometry::Polygon(Polygon::new(ring(2.35, 48.85, 0.001, 8, i), vec![]));
            }
            let Value::Object(props) = props else {
                unreachable!()
            };
            Arc::new(Feature::from_parts(
                "upload",
                format!("p-{i}"),
                props,
                Some(g),
            ))
        })
        .collect()
}

fn shapefile_zip(n: usize, bad: Option<usize>) -> Vec<u8> {
    let layer = Layer::untitled("upload");
    write_shapefile_zip(
        &[ExportLayer {
            layer: &layer,
            features: features(n, bad),
        }],
        &Crs::from_epsg(4490).unwrap(),
        DbfEncoding::Gbk,
    )
    .expect("zip")
}

async fn geopackage(n: usize, bad: Option<usize>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload.gpkg");
    let layer = Layer::untitled("upload");
    write_geopackage(
        &path,
        &[ExportLayer {
            layer: &layer,
            features: features(n, bad),
        }],
        &Crs::from_epsg(4490).unwrap(),
    )
    .await
    .expect("gpkg");
    std::fs::read(&path).unwrap()
}

/// A ring without its closing point, starting at its smallest vertex, in the orientation
/// given by `ccw`: the same for any ring through the same vertices in the same cyclic order.
fn normal_ring(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut pts: Vec<[f64; 2]> = points[..points.len() - 1].to_vec();
    let area2: f64 = (0..pts.len())
        .map(|k| {
            let (a, b) = (pts[k], pts[(k + 1) % pts.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    if area2 < 0.0 {
        pts.reverse();
    }
    let start = (0..pts.len())
        .min_by(|&a, &b| pts[a].partial_cmp(&pts[b]).unwrap())
        .unwrap();
    pts.rotate_left(start);
    pts
}

fn polygons_of_geo(g: &Geometry<f64>) -> Vec<Vec<Vec<[f64; 2]>>> {
    let polygon = |p: &Polygon<f64>| -> Vec<Vec<[f64; 2]>> {
        std::iter::once(p.exterior())
            .chain(p.interiors())
            .map(|r| normal_ring(&r.0.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>()))
            .collect()
    };
    match g {
        Geometry::Polygon(p) => vec![polygon(p)],
        Geometry::MultiPolygon(mp) => mp.0.iter().map(polygon).collect(),
        _ => unreachable!(),
    }
}

/// Signed area (shoelace, doubled) of a ring: positive when counter-clockwise.
fn ring_area2(ring: &LineString<f64>) -> f64 {
    ring.lines()
        .map(|l| l.start.x * l.end.y - l.end.x * l.start.y)
        .sum()
}

/// The query that finds the uploaded features.
const UPLOADED: &str = "filter=batch%3D%27stream-test%27";

async fn matched(s: &common::TestServer, query: &str) -> u64 {
    s.json(&format!(
        "/collections/land_consolidation/items?limit=1&{query}"
    ))
    .await["numberMatched"]
        .as_u64()
        .unwrap()
}

/// Every feature of the upload as stored equals what was written: ids, properties (types
/// too), every coordinate bit for bit, exteriors counter-clockwise and holes clockwise; and
/// the API lists them all.
async fn assert_round_trip(s: &common::TestServer, n: usize) {
    assert_eq!(matched(s, UPLOADED).await, n as u64);
    let all = s.app.store.all_features().await.unwrap();
    let got: Vec<&Feature> = all
        .iter()
        .filter(|f| f.layer == "land_consolidation" && f.id.starts_with("p-"))
        .collect();
    assert_same_features(&got, n);
}

/// `features` are the `n` written, exactly (see [`assert_round_trip`]).
fn assert_same_features(features: &[&Feature], n: usize) {
    assert_eq!(features.len(), n);
    let mut seen = vec![false; n];
    for f in features {
        let id = &f.id;
        let i: usize = id.strip_prefix("p-").unwrap().parse().unwrap();
        assert!(!seen[i], "{id} twice");
        seen[i] = true;
        let (g, props) = expected(i);
        assert_eq!(Value::Object(f.properties.clone()), props, "{id}");
        let back = f.geometry.as_ref().unwrap();
        assert_eq!(polygons_of_geo(back), polygons_of_geo(&g), "{id} geometry");
        let polys: Vec<&Polygon<f64>> = match back {
            Geometry::Polygon(p) => vec![p],
            Geometry::MultiPolygon(mp) => mp.0.iter().collect(),
            other => panic!("{id}: {other:?}"),
        };
        for p in polys {
            assert!(ring_area2(p.exterior()) > 0.0, "{id} exterior orientation");
            assert!(
                p.interiors().iter().all(|h| ring_area2(h) < 0.0),
                "{id} hole orientation"
            );
        }
    }
}

async fn post(s: &common::TestServer, body: Vec<u8>, content_type: &str) -> (u16, Value) {
    let r = s
        .client
        .post(s.url("/collections/land_consolidation/items"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_streamed_shapefile_upload_round_trips_exactly() {
    let n = 6 * BATCH + 123;
    let s = common::start().await;
    let before = matched(&s, "").await;
    let (status, body) = post(&s, shapefile_zip(n, None), "application/zip").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["inserted"], n as u64, "{body}");
    assert_eq!(matched(&s, "").await, before + n as u64);
    assert_round_trip(&s, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_after_written_batches_imports_nothing() {
    let n = 4 * BATCH;
    let bad = 2 * BATCH + 233; // after two batches went to the store
    let s = common::start().await;
    let before = matched(&s, "").await;
    let (status, body) = post(&s, shapefile_zip(n, Some(bad)), "application/zip").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "InvalidFeatures", "{body}");
    assert_eq!(body["features_total"], n as u64, "{body}");
    assert_eq!(body["problems_total"], 1, "{body}");
    assert_eq!(body["problems"][0]["index"], bad as u64, "{body}");
    assert_eq!(body["problems"][0]["id"], format!("p-{bad}"), "{body}");
    let d = body["description"].as_str().unwrap();
    assert!(
        d.contains("nothing was imported")
            && d.contains(&format!("feature {} (id p-{bad})", bad + 1))
            && d.contains("outside China"),
        "{d}"
    );
    // Nothing of it: not the records before the bad one, not after.
    assert_eq!(matched(&s, "").await, before);
    let all = s.app.store.all_features().await.unwrap();
    assert!(!all.iter().any(|f| f.id.starts_with("p-")));
    // The same server takes the good file afterwards.
    let (status, body) = post(&s, shapefile_zip(n, None), "application/zip").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(matched(&s, "").await, before + n as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_streamed_geopackage_upload_round_trips_and_a_bad_row_imports_nothing() {
    let n = 3 * BATCH + 7;
    let s = common::start().await;
    let before = matched(&s, "").await;
    let bad = 2 * BATCH + 5;
    let (status, body) = post(
        &s,
        geopackage(n, Some(bad)).await,
        "application/geopackage+sqlite3",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["problems"][0]["index"], bad as u64, "{body}");
    assert_eq!(body["features_total"], n as u64, "{body}");
    assert_eq!(matched(&s, "").await, before);
    let (status, body) = post(
        &s,
        geopackage(n, None).await,
        "application/geopackage+sqlite3",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["inserted"], n as u64, "{body}");
    assert_round_trip(&s, n).await;
}

/// The features of `layer` in the database at `db`, by id.
async fn stored(db: &str, layer: &str) -> Vec<Feature> {
    let store = yizhangtu::store::Store::open(db).await.unwrap();
    let all = store.all_features().await.unwrap();
    store.close().await;
    all.into_iter().filter(|f| f.layer == layer).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_imports_a_zip_as_it_reads_it_and_a_bad_record_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let db = db.to_str().unwrap();
    let n = 3 * BATCH + 1;
    let good = dir.path().join("parcels.zip");
    std::fs::write(&good, shapefile_zip(n, None)).unwrap();
    let bad = dir.path().join("bad.zip");
    std::fs::write(&bad, shapefile_zip(n + 10, Some(n + 3))).unwrap();

    let args = |file: &std::path::Path| {
        vec![
            "import".to_string(),
            file.to_str().unwrap().to_string(),
            "--layer".into(),
            "parcels".into(),
            "--db".into(),
            db.to_string(),
        ]
    };
    let run = |file: &std::path::Path| {
        let a = args(file);
        common::run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (ok, out, err) = run(&good);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("parcels: {n} features read; {n} inserted")),
        "{out}"
    );
    let features = stored(db, "parcels").await;
    assert_same_features(&features.iter().collect::<Vec<_>>(), n);

    // A bad record in the fourth batch: a message naming it, a failed exit, nothing written
    // (the layer keeps the first import's features, unchanged).
    let (ok, _, err) = run(&bad);
    assert!(!ok);
    assert!(
        err.contains("nothing was imported")
            && err.contains(&format!("feature {} (id p-{})", n + 4, n + 3))
            && err.contains("outside China"),
        "{err}"
    );
    let after = stored(db, "parcels").await;
    assert_eq!(after.len(), n);
    assert!(after.iter().all(|f| f.version == 1), "no feature rewritten");

    // A bare .shp with its parts beside it, into another layer: the same features.
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(shapefile_zip(n, None))).unwrap();
    z.extract(&parts).unwrap();
    let shp = parts.join("upload.shp");
    assert!(shp.exists());
    let mut a = args(&shp);
    a[3] = "parcels2".into();
    let (ok, out, err) = common::run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("parcels2: {n} features read")),
        "{out}"
    );
    let features = stored(db, "parcels2").await;
    assert_same_features(&features.iter().collect::<Vec<_>>(), n);

    // A file that is not there: a clear message, nothing else.
    let (ok, _, err) = run(&dir.path().join("missing.zip"));
    assert!(!ok && err.contains("cannot read"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_steward_upload_outside_the_scope_is_refused_and_imports_nothing() {
    // 武隆 (500156) lies far east of these parcels near 龙水镇 (大足).
    let s = common::start().await;
    let token = common::user_token(&s.app, "wulong", "steward", &["500156"]).await;
    let client = common::client_with(&token);
    let before = matched(&s, "").await;
    let r = client
        .post(s.url("/collections/land_consolidation/items"))
        .header("content-type", "application/zip")
        .body(shapefile_zip(2 * BATCH + 3, None))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(matched(&s, "").await, before);
    let all = s.app.store.all_features().await.unwrap();
    assert!(!all.iter().any(|f| f.id.starts_with("p-")));
}
