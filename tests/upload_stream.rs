//! Shapefile and GeoPackage uploads are spooled to a temporary file as they arrive (memory
//! independent of their size) and read from there: a large upload imports whole, one over the
//! body limit is refused with the JSON 413 and imports nothing.

mod common;

use geo::{Geometry, LineString, Polygon};
use std::sync::Arc;
use yizhangtu::config::HttpSettings;
use yizhangtu::formats::{write_shapefile_zip, DbfEncoding, ExportLayer};
use yizhangtu::geom::crs::Crs;
use yizhangtu::model::{Feature, Layer};

/// `n` 20 m squares on a grid near 龙水镇, each with its index and a text, as features.
fn squares(n: usize) -> Vec<Arc<Feature>> {
    let d = 0.0002;
    (0..n)
        .map(|i| {
            let (x, y) = (
                105.70 + (i % 500) as f64 * 2.0 * d,
                29.60 + (i / 500) as f64 * 2.0 * d,
            );
            let ring =
                LineString::from(vec![(x, y), (x + d, y), (x + d, y + d), (x, y + d), (x, y)]);
            let props =
                serde_json::json!({"plot": i, "note": format!("地块 {i} of a large upload")});
            let serde_json::Value::Object(props) = props else {
                unreachable!()
            };
            Arc::new(Feature::from_parts(
                "upload",
                format!("up-{i}"),
                props,
                Some(Geometry::Polygon(Polygon::new(ring, vec![]))),
            ))
        })
        .collect()
}

fn shapefile_zip(n: usize) -> Vec<u8> {
    let layer = Layer::untitled("upload");
    write_shapefile_zip(
        &[ExportLayer {
            layer: &layer,
            features: squares(n),
        }],
        &Crs::from_epsg(4490).unwrap(),
        DbfEncoding::Utf8,
    )
    .expect("zip")
}

async fn count(s: &common::TestServer, layer: &str) -> u64 {
    s.json(&format!("/collections/{layer}/items?limit=1")).await["numberMatched"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_shapefile_upload_imports_whole_from_its_spool_file() {
    const N: usize = 12_000;
    let zip = shapefile_zip(N);
    let s = common::start().await;
    let before = count(&s, "land_consolidation").await;
    let r = s
        .client
        .post(s.url("/collections/land_consolidation/items"))
        .header("content-type", "application/zip")
        .body(zip.clone())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["inserted"], N as u64, "{body}");
    assert_eq!(count(&s, "land_consolidation").await, before + N as u64);
    // A feature read back as written: its properties and its square.
    let doc = s
        .json("/collections/land_consolidation/items?plot=4321&limit=5")
        .await;
    let features = doc["features"].as_array().unwrap();
    assert_eq!(features.len(), 1, "{doc}");
    let f = &features[0];
    assert_eq!(f["properties"]["note"], "地块 4321 of a large upload");
    let ring = f["geometry"]["coordinates"][0].as_array().unwrap();
    let x0 = 105.70 + (4321 % 500) as f64 * 0.0004;
    let y0 = 29.60 + (4321 / 500) as f64 * 0.0004;
    let xs: Vec<f64> = ring.iter().map(|c| c[0].as_f64().unwrap()).collect();
    let ys: Vec<f64> = ring.iter().map(|c| c[1].as_f64().unwrap()).collect();
    let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        (min(&xs) - x0).abs() < 1e-9 && (min(&ys) - y0).abs() < 1e-9,
        "{ring:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_body_limit_is_a_json_413_and_imports_nothing() {
    let zip = shapefile_zip(3_000);
    let max = zip.len() / 2;
    let settings = HttpSettings {
        max_body_bytes: max,
        ..Default::default()
    };
    let s = common::start_with(settings, true).await;
    let before = count(&s, "land_consolidation").await;
    let r = s
        .client
        .post(s.url("/collections/land_consolidation/items"))
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await;
    // Refused from the Content-Length before the body is read: the client may see the
    // connection close while still sending (see tests/queries.rs).
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let b: serde_json::Value = r.json().await.unwrap();
        assert_eq!(b["code"], "PayloadTooLarge", "{b}");
        assert_eq!(b["limit"], "body-bytes", "{b}");
        assert_eq!(b["max"], max as u64, "{b}");
    }
    assert_eq!(count(&s, "land_consolidation").await, before);
    // Under the limit, the same server takes a smaller upload.
    let small = shapefile_zip(50);
    assert!(small.len() < max);
    let r = s
        .client
        .post(s.url("/collections/land_consolidation/items"))
        .header("content-type", "application/zip")
        .body(small)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(count(&s, "land_consolidation").await, before + 50);
}
