//! The map viewer in a real browser: starts a seeded server and runs `tests/browser/map.test.mjs`
//! (playwright-core from npm driving Debian's headless Chromium) against it, then
//! `tests/browser/work.test.mjs` (signing in, editing, history, comparison, the monitoring view,
//! the HTML pages, the 天地图 basemap from `--tianditu-key`) with an editor made by the CLI.
//! Screenshots go to `test-artifacts/` (map.png is the default view). The two run one at a time.
//!
//! Needs node, `npm ci` (node_modules with maplibre-gl, terra-draw, proj4, write-excel-file,
//! chart.js and playwright-core),
//! /usr/bin/chromium (or $CHROMIUM) and GDAL's `ogrinfo` (it opens the Shapefiles the map exports).
//! Without them it fails naming what is missing (see `common::missing_tool`).

mod common;

use std::path::Path;
use std::process::Command;

use yizhangtu::config::HttpSettings;

/// One Chromium at a time (the machine is small; both tests start their own).
static CHROMIUM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
        "node_modules/chart.js/dist/chart.umd.min.js",
    ] {
        if !repo.join(dir).exists() {
            missing.push(format!("{dir} (npm ci)"));
        }
    }
    missing
}

/// Fails naming what is missing (see `common::missing_tool`); else waits for the browser and
/// starts a seeded server.
async fn prepare() -> Option<(tokio::sync::MutexGuard<'static, ()>, common::TestServer)> {
    let missing = missing_tools(common::repo());
    if !missing.is_empty() {
        common::missing_tool(&format!("for the browser test, {}", missing.join(", ")));
        return None;
    }
    let one = CHROMIUM.lock().await;
    Some((one, common::start().await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_viewer_in_headless_chromium() {
    let Some((_one, server)) = prepare().await else {
        return;
    };

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
        "/vendor/chart.js/chart.umd.min.js",
    ] {
        let r = server.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = server.get("/favicon.ico").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");

    run_node("tests/browser/map.test.mjs", vec![server.base.clone()]).await;
    assert!(
        common::repo().join("test-artifacts/map.png").is_file(),
        "no screenshot at test-artifacts/map.png"
    );
}

/// Runs one of the node scripts against the servers; fails with its output.
async fn run_node(script: &str, args: Vec<String>) {
    let repo = common::repo().to_path_buf();
    let script = script.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args(&args)
            .current_dir(&repo)
            .output()
    })
    .await
    .expect("join")
    .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_editing_monitoring_and_pages_in_headless_chromium() {
    let Some((_one, server)) = prepare().await else {
        return;
    };

    // An editor for 大足, made with the CLI as a bureau would.
    let db = server.db.to_str().unwrap().to_string();
    let (ok, out, err) = common::run(&[
        "user",
        "add",
        "dazu",
        "--role",
        "editor",
        "--districts",
        "500111",
        "--db",
        &db,
    ]);
    assert!(ok, "user add: {err}");
    let token = out.trim().to_string();
    assert!(token.starts_with("yzt_"), "{out}");

    // One observation on a 武隆 indicator with a baseline, so that a chart has a point of its own.
    let inds = server.json("/indicators?area=500156").await;
    let ind = inds["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["baseline_value"].is_number())
        .expect("a 武隆 indicator with a baseline")
        .clone();
    let value =
        (ind["baseline_value"].as_f64().unwrap() + ind["target_value"].as_f64().unwrap()) / 2.0;
    let r = server
        .client
        .post(server.url(&format!(
            "/indicators/{}/observations",
            ind["id"].as_str().unwrap()
        )))
        .json(&serde_json::json!({"value": value, "date": "2024-12-31", "source": "浏览器测试"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // A second server with a 天地图 key: the map shows that basemap by default.
    let keyed = common::start_with(
        HttpSettings {
            tianditu_key: Some("browser-test-key".into()),
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    run_node(
        "tests/browser/work.test.mjs",
        vec![server.base.clone(), token, keyed.base.clone()],
    )
    .await;
    assert!(
        common::repo().join("test-artifacts/monitor.png").is_file(),
        "no screenshot at test-artifacts/monitor.png"
    );
}
