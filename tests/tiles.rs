//! Vector tiles against a real server, decoded by GDAL's MVT driver.

mod common;

use common::{bundled, start, TestServer};
use serde_json::json;
use std::process::Command;

/// Web Mercator metres of a lon/lat.
fn mercator(lon: f64, lat: f64) -> (f64, f64) {
    let r = 6_378_137.0;
    (
        r * lon.to_radians(),
        r * (std::f64::consts::FRAC_PI_4 + lat.to_radians() / 2.0)
            .tan()
            .ln(),
    )
}

fn have_ogrinfo() -> bool {
    let ok = Command::new("ogrinfo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::missing_tool("GDAL's ogrinfo (apt-get install gdal-bin)");
    }
    ok
}

/// ogrinfo's reading of a tile saved as z/x/y.pbf.
fn ogrinfo_tile(bytes: &[u8], z: u32, x: u32, y: u32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{z}-{x}-{y}.pbf"));
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ogrinfo")
        .args([
            "-ro",
            "-al",
            "-oo",
            &format!("Z={z}"),
            "-oo",
            &format!("X={x}"),
            "-oo",
            &format!("Y={y}"),
            "-oo",
            "CLIP=NO",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn tile(s: &TestServer, path: &str) -> reqwest::Response {
    s.get(path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_decode_in_gdal_with_the_right_features() {
    let s = start().await;
    // 龙水镇's seat is at 105.76205E 29.56555N: tile 12/3251/1695.
    let r = tile(&s, "/tiles/towns,town_seats/12/3251/1695.mvt").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.mapbox-vector-tile"
    );
    let bytes = r.bytes().await.unwrap();
    let ogc = s
        .get("/collections/town_seats/tiles/WebMercatorQuad/12/1695/3251")
        .await;
    assert_eq!(ogc.status(), 200);
    if !have_ogrinfo() {
        return;
    }
    let text = ogrinfo_tile(&bytes, 12, 3251, 1695);
    assert!(
        text.contains("Layer name: towns") && text.contains("Layer name: town_seats"),
        "{text}"
    );
    assert!(text.contains("name (String) = 龙水镇"), "{text}");
    // Every seat in the tile's buffered bounds, within one tile unit of its true position.
    let unit = 2.0 * std::f64::consts::PI * 6_378_137.0 / 4096.0 / 4096.0; // z12: 2^12 tiles of 4096 units
    let seats = bundled("data/town_seats.geojson");
    let mut checked = 0;
    for section in text.split("OGRFeature(town_seats)").skip(1) {
        let id = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("id (String) = "))
            .unwrap()
            .to_string();
        let point = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("POINT ("))
            .unwrap();
        let nums: Vec<f64> = point
            .trim_end_matches(')')
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let f = seats
            .features
            .iter()
            .find(|f| common::feature_id(f) == id)
            .unwrap();
        let geojson::Value::Point(c) = &f.geometry.as_ref().unwrap().value else {
            panic!()
        };
        let (ex, ey) = mercator(c[0], c[1]);
        assert!(
            (nums[0] - ex).abs() <= unit && (nums[1] - ey).abs() <= unit,
            "{id}: {nums:?} vs ({ex}, {ey})"
        );
        checked += 1;
    }
    assert!(checked >= 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tilejson_errors_empty_tiles_and_filters() {
    let s = start().await;
    let tj = s.json("/tiles/towns,villages.json").await;
    assert_eq!(tj["tilejson"], "3.0.0");
    assert!(tj["tiles"][0]
        .as_str()
        .unwrap()
        .ends_with("/tiles/towns,villages/{z}/{x}/{y}.mvt"));
    let ids: Vec<&str> = tj["vector_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["towns", "villages"]);
    assert_eq!(tj["vector_layers"][0]["fields"]["name"], "String");
    let b = tj["bounds"].as_array().unwrap();
    assert!(b[0].as_f64().unwrap() > 105.0 && b[2].as_f64().unwrap() < 109.0);

    // Nothing there → 204; out of range → 400 naming the parameter.
    assert_eq!(tile(&s, "/tiles/towns/12/0/0.mvt").await.status(), 204);
    for (path, param) in [
        ("/tiles/towns/25/0/0.mvt", "z"),
        ("/tiles/towns/3/8/0.mvt", "x"),
        ("/tiles/towns/3/0/9.mvt", "y"),
        ("/tiles/towns/3/0/abc.mvt", "y"),
        ("/collections/towns/tiles/WebMercatorQuad/3/9/0", "tileRow"),
        ("/collections/towns/tiles/WebMercatorQuad/3/0/9", "tileCol"),
    ] {
        let b = s.problem(path, 400).await;
        assert_eq!(b["parameter"], param, "{path}: {b}");
    }
    s.problem("/tiles/nope/1/0/0.mvt", 404).await;
    s.problem("/tiles/towns/12/3251/1695.mvt?colour=red", 400)
        .await;
    s.problem("/tiles/towns/12/3251/1695.mvt?filter=colour%3D1", 400)
        .await;

    // A filter applies to tiles as to items.
    let all = tile(&s, "/tiles/towns/12/3251/1695.mvt")
        .await
        .bytes()
        .await
        .unwrap();
    let one = tile(
        &s,
        "/tiles/towns/12/3251/1695.mvt?filter=name%3D%27%E9%BE%99%E6%B0%B4%E9%95%87%27",
    )
    .await;
    assert_eq!(one.status(), 200);
    let one = one.bytes().await.unwrap();
    assert!(one.len() < all.len());
    if have_ogrinfo() {
        let text = ogrinfo_tile(&one, 12, 3251, 1695);
        assert_eq!(text.matches("OGRFeature(towns)").count(), 1, "{text}");
    }
    // ETag and 304.
    let r = tile(&s, "/tiles/towns/12/3251/1695.mvt").await;
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    let again = s
        .client
        .get(s.url("/tiles/towns/12/3251/1695.mvt"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_invalidates_exactly_the_tiles_it_touches() {
    let s = start().await;
    let touched = "/tiles/town_seats/12/3251/1695.mvt";
    let elsewhere = "/tiles/town_seats/8/203/106.mvt"; // the same layer in 武隆, far from 龙水
    for p in [touched, elsewhere] {
        let r = tile(&s, p).await;
        assert!(r.status().is_success(), "{p}");
        assert_eq!(r.headers()["x-tile-cache"], "miss", "{p}");
        let r = tile(&s, p).await;
        assert_eq!(r.headers()["x-tile-cache"], "hit", "{p}");
    }
    let before = tile(&s, touched).await.bytes().await.unwrap();
    let f = json!({"type": "Feature", "id": "new-seat", "properties": {"name": "新点"}, "geometry": {"type": "Point", "coordinates": [105.765, 29.56]}});
    let r = s
        .client
        .post(s.url("/collections/town_seats/items"))
        .header("content-type", "application/geo+json")
        .body(f.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = tile(&s, touched).await;
    assert_eq!(r.headers()["x-tile-cache"], "miss");
    let after = r.bytes().await.unwrap();
    assert_ne!(before, after);
    if have_ogrinfo() {
        assert!(ogrinfo_tile(&after, 12, 3251, 1695).contains("name (String) = 新点"));
    }
    // The edit touched the layer elsewhere: this tile is still served from the cache.
    assert_eq!(tile(&s, elsewhere).await.headers()["x-tile-cache"], "hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcj02_tiles_line_up_with_gcj02_basemaps() {
    let s = start().await;
    let tj = s
        .json("/tiles/town_seats.json?crs=urn:yizhangtu:crs:gcj02")
        .await;
    assert!(tj["tiles"][0].as_str().unwrap().contains("crs=urn"), "{tj}");
    let plain = tile(&s, "/tiles/town_seats/12/3251/1695.mvt")
        .await
        .bytes()
        .await
        .unwrap();
    let r = tile(
        &s,
        "/tiles/town_seats/12/3251/1695.mvt?crs=urn:yizhangtu:crs:gcj02",
    )
    .await;
    assert_eq!(r.status(), 200);
    let shifted = r.bytes().await.unwrap();
    assert_ne!(plain, shifted);
    s.problem("/tiles/town_seats/12/3251/1695.mvt?crs=EPSG:4545", 400)
        .await;
    if !have_ogrinfo() {
        return;
    }
    // 龙水镇's seat moves by the published GCJ-02 offset (a few hundred metres here).
    let pos = |bytes: &[u8]| -> (f64, f64) {
        let text = ogrinfo_tile(bytes, 12, 3251, 1695);
        let section = text
            .split("OGRFeature(town_seats)")
            .find(|s| s.contains("= 龙水镇"))
            .unwrap()
            .to_string();
        let p = section
            .lines()
            .find_map(|l| l.trim().strip_prefix("POINT (").map(String::from))
            .unwrap();
        let v: Vec<f64> = p
            .trim_end_matches(')')
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1])
    };
    let (a, b) = (pos(&plain), pos(&shifted));
    let (gx, gy) = yizhangtu::geom::crs::wgs84_to_gcj02(105.76205, 29.56555);
    let (ex, ey) = mercator(gx, gy);
    let unit = 2.0 * std::f64::consts::PI * 6_378_137.0 / 4096.0 / 4096.0;
    assert!(
        (b.0 - ex).abs() <= unit && (b.1 - ey).abs() <= unit,
        "{b:?} vs ({ex}, {ey})"
    );
    let moved = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    assert!(moved > 100.0, "{moved}");
}
