//! The map viewer in a real browser: starts a seeded server and runs `tests/browser/map.test.mjs`
//! (playwright-core from npm driving Debian's headless Chromium) against it. Screenshots go to
//! `test-artifacts/` (map.png is the default view).
//!
//! Needs node, `npm ci` (node_modules with maplibre-gl, terra-draw, proj4, write-excel-file and
//! playwright-core),
//! /usr/bin/chromium (or $CHROMIUM) and GDAL's `ogrinfo` (it opens the Shapefiles the map exports).
//! Without them it fails naming what is missing (see `common::missing_tool`).

mod common;

use std::path::Path;
use std::process::Command;

fn missing_tools(repo: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        missing.push(format!("{chromium} (apt-get install chromium)"));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node (apt-get install nodejs npm)".into());
    }
    if Command::new("ogrinfo").arg("--version").output().is_err() {
        missing.push("ogrinfo (apt-get install gdal-bin)".into());
    }
    for dir in [
        "node_modules/playwright-core",
        "node_modules/maplibre-gl/dist",
        "node_modules/terra-draw/dist",
        "node_modules/terra-draw-maplibre-gl-adapter/dist",
        "node_modules/proj4/dist",
        "node_modules/write-excel-file/bundle",
    ] {
        if !repo.join(dir).exists() {
            missing.push(format!("{dir} (npm ci)"));
        }
    }
    missing
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_viewer_in_headless_chromium() {
    let repo = common::repo();
    let missing = missing_tools(repo);
    if !missing.is_empty() {
        common::missing_tool(&format!("for the browser test, {}", missing.join(", ")));
        return;
    }
    let server = common::start().await;

    // The pages the browser will load answer as they should.
    let r = server.get("/map").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let r = server.get("/vendor/maplibre-gl/maplibre-gl.js").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    server
        .problem("/vendor/maplibre-gl/..%2fpackage.json", 404)
        .await;
    server.problem("/viewer/no-such-file.js", 404).await;
    server
        .problem("/vendor/terra-draw/..%2f..%2fpackage.json", 404)
        .await;
    for path in [
        "/vendor/terra-draw/terra-draw.umd.js",
        "/vendor/terra-draw-maplibre-gl-adapter/terra-draw-maplibre-gl-adapter.umd.js",
        "/vendor/proj4/proj4.js",
        "/vendor/write-excel-file/write-excel-file.min.js",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = server.get("/favicon.ico").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");

    let base = server.base.clone();
    let repo = repo.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("tests/browser/map.test.mjs")
            .arg(&base)
            .current_dir(&repo)
            .output()
    })
    .await
    .expect("join")
    .expect("run node tests/browser/map.test.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        common::repo().join("test-artifacts/map.png").is_file(),
        "no screenshot at test-artifacts/map.png"
    );
}
