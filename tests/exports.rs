//! Exports for land-consolidation plans and imports of planners' files, read back by GDAL.

mod common;

use common::{run, start, TestServer};
use std::io::Read;
use std::process::Command;

fn ogrinfo(args: &[&str]) -> Option<String> {
    match Command::new("ogrinfo").args(args).output() {
        Ok(o) => {
            assert!(
                o.status.success(),
                "ogrinfo {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            Some(String::from_utf8_lossy(&o.stdout).to_string())
        }
        Err(_) => {
            common::missing_tool("GDAL's ogrinfo (apt-get install gdal-bin)");
            None
        }
    }
}

async fn download(s: &TestServer, path: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let r = s.get(path).await;
    assert_eq!(r.status(), 200, "{path}");
    let h = r.headers().clone();
    (h, r.bytes().await.unwrap().to_vec())
}

fn villages_of_longshui() -> usize {
    common::bundled("data/villages.geojson")
        .features
        .iter()
        .filter(|f| f.property("parent_code").and_then(|v| v.as_str()) == Some("500111100"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_opens_in_gdal_with_the_right_crs_and_count() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let n = villages_of_longshui();
    // GeoPackage in the auto-chosen zone: 龙水镇 is at 105.76°E, zone 35 → EPSG:4544.
    let (h, bytes) = download(
        &s,
        "/export?layers=villages&area=500111100&format=gpkg&crs=auto-gk",
    )
    .await;
    assert_eq!(
        h["content-crs"],
        "<http://www.opengis.net/def/crs/EPSG/0/4544>"
    );
    let gpkg = dir.path().join("v.gpkg");
    std::fs::write(&gpkg, &bytes).unwrap();
    if let Some(text) = ogrinfo(&["-ro", "-so", "-al", gpkg.to_str().unwrap()]) {
        assert!(text.contains(&format!("Feature Count: {n}")), "{text}");
        assert!(text.contains("ID[\"EPSG\",4544]"), "{text}");
    }
    // Zipped Shapefile, GBK, read straight from the zip; Chinese names decode.
    let (_, bytes) = download(
        &s,
        "/export?layers=villages&area=%E9%BE%99%E6%B0%B4%E9%95%87&format=shp&crs=EPSG:4523",
    )
    .await;
    let zip = dir.path().join("v.zip");
    std::fs::write(&zip, &bytes).unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip).unwrap()).unwrap();
    let mut cpg = String::new();
    archive
        .by_name("villages.cpg")
        .unwrap()
        .read_to_string(&mut cpg)
        .unwrap();
    assert!(cpg.to_uppercase().contains("GBK"));
    for part in [
        "villages.shp",
        "villages.shx",
        "villages.dbf",
        "villages.prj",
        "fields.csv",
    ] {
        assert!(archive.by_name(part).is_ok(), "{part}");
    }
    if let Some(text) = ogrinfo(&["-ro", "-al", &format!("/vsizip/{}", zip.display())]) {
        assert!(
            text.contains(&format!("Feature Count: {n}")),
            "{}",
            &text[..2000.min(text.len())]
        );
        assert!(text.contains("ID[\"EPSG\",4523]"));
        assert!(
            text.contains("name (String) = 朝阳社区"),
            "GBK names decode"
        );
    }
    // CSV with a BOM and a WKT column; one row per feature.
    let (_, bytes) = download(&s, "/export?layers=villages&area=500111100&format=csv").await;
    assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    assert!(text.lines().next().unwrap().ends_with("wkt"));
    assert_eq!(text.lines().count(), n + 1);
    // GeoJSON is streamed in CRS84 by default, and says so when another CRS is asked.
    let (h, bytes) = download(&s, "/export?layers=villages&area=500111100").await;
    assert_eq!(h["x-feature-count"].to_str().unwrap(), n.to_string());
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["features"].as_array().unwrap().len(), n);
    assert!(doc.get("crs").is_none());
    let (_, bytes) = download(&s, "/export?layers=villages&area=500111100&crs=EPSG:4490").await;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        doc["crs"]["properties"]["name"],
        "http://www.opengis.net/def/crs/EPSG/0/4490"
    );
    // The ministry TXT of the land-consolidation parcels.
    let (_, bytes) = download(
        &s,
        "/export?layers=land_consolidation&area=500111100&format=txt",
    )
    .await;
    let (text, _, bad) = encoding_rs::GBK.decode(&bytes);
    assert!(!bad);
    assert!(text.starts_with("[属性描述]"), "{text}");
    assert!(
        text.contains("坐标系=2000国家大地坐标系")
            && text.contains("带号=35")
            && text.contains("[地块坐标]")
    );
    // Errors.
    s.problem("/export?format=xyz", 400).await;
    s.problem("/export?area=%E4%B8%8D%E5%AD%98%E5%9C%A8", 404)
        .await;
    s.problem(
        "/export?layers=villages&area=500111100&format=gpkg&crs=urn:yizhangtu:crs:gcj02",
        400,
    )
    .await;
    s.problem(
        "/export?layers=villages&area=500111100&format=txt&crs=EPSG:4490",
        400,
    )
    .await;
    s.problem("/export?layers=nope", 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_land_consolidation_bundle_for_longshui() {
    let s = start().await;
    let (h, bytes) = download(
        &s,
        "/export/land-consolidation?area=%E9%BE%99%E6%B0%B4%E9%95%87",
    )
    .await;
    assert_eq!(h["content-type"], "application/zip");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bundle.zip");
    std::fs::write(&path, &bytes).unwrap();
    let mut z = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
    let names: Vec<String> = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().to_string())
        .collect();
    for want in [
        "README.txt",
        "summary_mu_by_village.csv",
        "shp/villages.shp",
        "shp/land_consolidation.shp",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let gpkg_name = names.iter().find(|n| n.ends_with(".gpkg")).unwrap().clone();
    assert!(names.iter().any(|n| n.ends_with("界址点坐标.txt")));
    let mut readme = String::new();
    z.by_name("README.txt")
        .unwrap()
        .read_to_string(&mut readme)
        .unwrap();
    assert!(
        readme.contains("zone 35")
            && readme.contains("EPSG/0/4523")
            && readme.contains("approximate"),
        "{readme}"
    );
    let mut summary = String::new();
    z.by_name("summary_mu_by_village.csv")
        .unwrap()
        .read_to_string(&mut summary)
        .unwrap();
    assert!(
        summary.lines().any(|l| l.contains(",vegetable_bases,")),
        "{summary}"
    );
    let mut gpkg = Vec::new();
    z.by_name(&gpkg_name)
        .unwrap()
        .read_to_end(&mut gpkg)
        .unwrap();
    let gpkg_path = dir.path().join("b.gpkg");
    std::fs::write(&gpkg_path, gpkg).unwrap();
    if let Some(text) = ogrinfo(&["-ro", "-so", "-al", gpkg_path.to_str().unwrap()]) {
        assert!(
            text.contains("Layer name: villages")
                && text.contains(&format!("Feature Count: {}", villages_of_longshui()))
        );
        assert!(
            text.contains("ID[\"EPSG\",4523]"),
            "the area's zone, with the zone prefix"
        );
    }
    if let Some(text) = ogrinfo(&[
        "-ro",
        "-so",
        "-al",
        &format!("/vsizip/{}/shp/villages.shp", path.display()),
    ]) {
        assert!(text.contains("ID[\"EPSG\",4523]"));
    }
}

/// A steward's GK-zone Shapefile with GBK attributes imports in place; exports round-trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_round_trip_and_refuse_bad_files() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = s.db.to_str().unwrap().to_string();
    // Export 龙水's villages as a GBK Shapefile in EPSG:4545 (zone 36 without prefix, as some
    // stewards' data comes) and as a GeoPackage, then import both into new layers.
    let (_, shp) = download(
        &s,
        "/export?layers=villages&area=500111100&format=shp&crs=EPSG:4544",
    )
    .await;
    let shp_path = dir.path().join("gk.zip");
    std::fs::write(&shp_path, &shp).unwrap();
    let (_, gpkg) = download(
        &s,
        "/export?layers=villages&area=500111100&format=gpkg&crs=EPSG:4523",
    )
    .await;
    let gpkg_path = dir.path().join("gk.gpkg");
    std::fs::write(&gpkg_path, &gpkg).unwrap();
    for (file, layer) in [(&shp_path, "rt_shp"), (&gpkg_path, "rt_gpkg")] {
        let (ok, out, err) = run(&[
            "import",
            file.to_str().unwrap(),
            "--layer",
            layer,
            "--db",
            &db,
        ]);
        assert!(ok, "{err}");
        assert!(
            out.contains(&format!("{} inserted", villages_of_longshui())),
            "{out}"
        );
    }
    // The running server picks them up; every feature is where it was, within 1 mm.
    let original = s
        .json("/collections/villages/items?within=500111100&limit=1000")
        .await;
    for layer in ["rt_shp", "rt_gpkg"] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let back = loop {
            let r = s
                .get(&format!("/collections/{layer}/items?limit=1000"))
                .await;
            if r.status() == 200 {
                break r.json::<serde_json::Value>().await.unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "{layer} never showed");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        for f in original["features"].as_array().unwrap() {
            let id = f["id"].as_str().unwrap();
            let b = back["features"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == id)
                .unwrap_or_else(|| panic!("{layer} lacks {id}"));
            assert_eq!(
                b["properties"]["name"], f["properties"]["name"],
                "{layer}/{id}"
            );
            assert_eq!(
                b["properties"]["official_name"],
                f["properties"]["official_name"]
            );
            let (a, c) = (
                f["geometry"]["coordinates"].to_string(),
                b["geometry"]["coordinates"].to_string(),
            );
            let nums = |t: &str| {
                t.split(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-'))
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse::<f64>().unwrap())
                    .collect::<Vec<_>>()
            };
            let (na, nc) = (nums(&a), nums(&c));
            assert_eq!(na.len(), nc.len(), "{layer}/{id}: vertex count");
            // 1e-8° is about 1 mm.
            assert!(
                na.iter().zip(&nc).all(|(x, y)| (x - y).abs() < 1e-8),
                "{layer}/{id} moved"
            );
        }
    }
    // A zip without .prj and no --crs: refused, nothing imported; with --crs it goes in.
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(shp.clone())).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..src.len() {
        let mut e = src.by_index(i).unwrap();
        if e.name().ends_with(".prj") {
            continue;
        }
        let name = e.name().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        out.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut out, &bytes).unwrap();
    }
    let noprj = dir.path().join("noprj.zip");
    std::fs::write(&noprj, out.finish().unwrap().into_inner()).unwrap();
    let (ok, _, err) = run(&[
        "import",
        noprj.to_str().unwrap(),
        "--layer",
        "noprj",
        "--db",
        &db,
    ]);
    assert!(!ok && err.contains("nothing was imported"), "{err}");
    let (_, layers, _) = run(&["layers", "--db", &db]);
    assert!(!layers.contains("noprj"));
    let (ok, out, err) = run(&[
        "import",
        noprj.to_str().unwrap(),
        "--layer",
        "noprj",
        "--crs",
        "EPSG:4544",
        "--db",
        &db,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("inserted"));
    let (ok, _, err) = run(&[
        "import",
        noprj.to_str().unwrap(),
        "--layer",
        "x",
        "--crs",
        "EPSG:9999",
        "--db",
        &db,
    ]);
    assert!(!ok && err.contains("--crs"), "{err}");
}

#[test]
fn cli_export_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let db = db.to_str().unwrap();
    for (file, needle) in [
        ("a.geojson", "features as GeoJSON"),
        ("a.gpkg", "features in"),
        ("a.zip", "features in"),
        ("a.csv", "features in"),
        ("a.txt", "features in"),
    ] {
        let out = dir.path().join(file);
        let layers = if file.ends_with(".txt") {
            "land_consolidation"
        } else {
            "villages,projects"
        };
        let (ok, text, err) = run(&[
            "export",
            "--db",
            db,
            "--area",
            "500111100",
            "--layers",
            layers,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{file}: {err}");
        assert!(text.contains(needle), "{text}");
        assert!(std::fs::metadata(&out).unwrap().len() > 100, "{file}");
    }
    let out = dir.path().join("lc.zip");
    let (ok, text, err) = run(&[
        "export",
        "--db",
        db,
        "--area",
        "龙水镇",
        "--land-consolidation",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok && text.contains("land-consolidation bundle"), "{err}");
    let (ok, _, err) = run(&[
        "export",
        "--db",
        db,
        "--out",
        dir.path().join("x.xyz").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--format"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_shapefiles_and_geopackages() {
    let s = start().await;
    let n = villages_of_longshui();
    for (format, ct) in [
        ("shp", "application/zip"),
        ("gpkg", "application/geopackage+sqlite3"),
    ] {
        let (_, bytes) = download(
            &s,
            &format!("/export?layers=villages&area=500111100&format={format}&crs=EPSG:4544"),
        )
        .await;
        let r = s
            .client
            .post(s.url("/collections/villages/items"))
            .header("content-type", ct)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{format}");
        let body: serde_json::Value = r.json().await.unwrap();
        // Same ids: every village of 龙水 is updated in place, none added.
        assert_eq!(
            (body["inserted"].as_u64(), body["updated"].as_u64()),
            (Some(0), Some(n as u64)),
            "{format}: {body}"
        );
    }
    let r = s
        .client
        .post(s.url("/collections/villages/items"))
        .header("content-type", "application/zip")
        .body("not a zip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.unwrap();
    assert!(b["description"]
        .as_str()
        .unwrap()
        .contains("nothing was imported"));
    assert_eq!(
        s.json("/collections/villages").await["numberOfFeatures"],
        1481
    );
}
