//! OGC API – Features against a real server: every endpoint, paging, filters, caching, errors.

mod common;

use common::{bundled, collect_all, feature_id, start, start_with, TestServer};
use geo::Intersects;
use std::collections::BTreeSet;
use yizhangtu::config::HttpSettings;

fn link<'a>(doc: &'a serde_json::Value, rel: &str) -> Option<&'a str> {
    doc["links"].as_array()?.iter().find(|l| l["rel"] == rel)?["href"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landing_conformance_and_api() {
    let s = start().await;
    let landing = s.json("/").await;
    for rel in ["self", "service-desc", "service-doc", "conformance", "data"] {
        assert!(
            link(&landing, rel).is_some(),
            "landing page lacks a {rel} link: {landing}"
        );
    }
    assert!(link(&landing, "data").unwrap().ends_with("/collections"));

    let conf = s.json("/conformance").await;
    let classes: Vec<&str> = conf["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in ["core", "geojson", "html", "oas30"] {
        assert!(
            classes.contains(
                &format!("http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{c}").as_str()
            ),
            "missing conformance class {c}"
        );
    }

    let r = s.get("/api").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/vnd.oai.openapi+json"));
    let api: serde_json::Value = r.json().await.unwrap();
    assert!(api["openapi"].as_str().unwrap().starts_with("3.0"));
    for p in [
        "/",
        "/conformance",
        "/api",
        "/collections",
        "/collections/{collectionId}",
        "/collections/{collectionId}/items",
        "/collections/{collectionId}/items/{featureId}",
        "/collections/{collectionId}/queryables",
        "/areas/{code}",
        "/areas/{code}/features",
        "/areas/{code}/coverage",
        "/analysis/coverage",
        "/tiles/{layers}/{z}/{x}/{y}.mvt",
        "/tiles/{layers}.json",
        "/export",
        "/export/land-consolidation",
    ] {
        assert!(api["paths"][p].is_object(), "OpenAPI lacks {p}");
    }
    let item_params: Vec<&str> = api["paths"]["/collections/{collectionId}/items"]["get"]
        ["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for p in [
        "filter",
        "filter-lang",
        "sortby",
        "within",
        "intersects",
        "near",
        "distance",
        "crs",
    ] {
        assert!(item_params.contains(&p), "OpenAPI items lack {p}");
    }
    for p in ["bbox", "limit", "offset", "f", "collectionId", "featureId"] {
        assert!(
            api["components"]["parameters"][p].is_object(),
            "OpenAPI lacks parameter {p}"
        );
    }
    let ids = &api["components"]["parameters"]["collectionId"]["schema"]["enum"];
    assert!(ids.as_array().unwrap().iter().any(|i| i == "towns"));
    // Every $ref resolves.
    let text = api.to_string();
    for r in text.split("\"$ref\":\"#/").skip(1) {
        let path = &r[..r.find('"').unwrap()];
        let mut node = &api;
        for part in path.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "dangling $ref #/{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_list_every_layer_with_counts_and_extent() {
    let s = start().await;
    let doc = s.json("/collections").await;
    let cols = doc["collections"].as_array().unwrap();
    let districts = cols
        .iter()
        .find(|c| c["id"] == "districts")
        .expect("districts");
    let towns = cols.iter().find(|c| c["id"] == "towns").expect("towns");
    assert_eq!(districts["numberOfFeatures"], 5);
    assert_eq!(
        towns["numberOfFeatures"],
        bundled("data/towns.geojson").features.len()
    );
    let bbox = districts["extent"]["spatial"]["bbox"][0]
        .as_array()
        .unwrap();
    let b: Vec<f64> = bbox.iter().map(|v| v.as_f64().unwrap()).collect();
    // The five districts lie between 105°E and 109°E, 28.5°N and 32°N.
    assert!(
        b[0] > 105.0 && b[2] < 109.0 && b[1] > 28.5 && b[3] < 32.0,
        "{b:?}"
    );
    for c in cols {
        let id = c["id"].as_str().unwrap();
        let one = s.json(&format!("/collections/{id}")).await;
        assert_eq!(one["id"], id);
        assert!(one["title"].is_string());
        assert!(link(&one, "items").is_some());
        let q = s.json(&format!("/collections/{id}/queryables")).await;
        assert_eq!(q["type"], "object");
        assert!(q["properties"]["name"].is_object(), "{id} queryables: {q}");
    }
    s.problem("/collections/nope", 404).await;
    s.problem("/collections/nope/items", 404).await;
    s.problem("/collections/nope/queryables", 404).await;
    s.problem("/collections/towns/items/999999999", 404).await;
    s.problem("/no/such/path", 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_feature_exactly_once() {
    let s = start().await;
    let expected: BTreeSet<String> = bundled("data/towns.geojson")
        .features
        .iter()
        .map(feature_id)
        .collect();
    for limit in [7usize, 100, 10_000] {
        let (ids, pages) =
            collect_all(&s, &format!("/collections/towns/items?limit={limit}")).await;
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "limit {limit}: a feature came back twice"
        );
        assert_eq!(unique, expected, "limit {limit}");
        assert_eq!(pages, expected.len().div_ceil(limit), "limit {limit}");
    }
    // Default page: 100, with numberMatched, timeStamp and a next link; the second has prev.
    let first = s.json("/collections/towns/items").await;
    assert_eq!(first["numberReturned"], 100);
    assert_eq!(first["numberMatched"], expected.len());
    assert!(first["timeStamp"].as_str().unwrap().ends_with('Z'));
    assert!(link(&first, "prev").is_none());
    let next = link(&first, "next").unwrap().to_string();
    let second: serde_json::Value = s
        .client
        .get(&next)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["numberReturned"], expected.len() - 100);
    assert!(link(&second, "prev").is_some());
    assert!(link(&second, "next").is_none());
    // Above the maximum, limit is reduced to it rather than refused.
    let big = s.json("/collections/towns/items?limit=50000").await;
    assert_eq!(big["numberReturned"], expected.len());
    // Paging with a filter keeps the filter in its links.
    let (ids, _) = collect_all(&s, "/collections/towns/items?level=town&limit=10").await;
    let towns = bundled("data/towns.geojson")
        .features
        .iter()
        .filter(|f| f.property("level").and_then(|v| v.as_str()) == Some("town"))
        .count();
    assert_eq!(ids.len(), towns);
}

/// bbox answers agree with an independent test of each bundled geometry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bbox_matches_an_independent_computation() {
    let s = start().await;
    for (layer, file) in [
        ("towns", "data/towns.geojson"),
        ("districts", "data/districts.geojson"),
    ] {
        let fc = bundled(file);
        for bbox in [
            [105.6, 29.4, 105.9, 29.8],
            [105.8, 29.3, 106.2, 29.6],
            [107.5, 29.2, 108.0, 29.5],
            [100.0, 20.0, 101.0, 21.0],
        ] {
            let rect = geo::Rect::new(
                geo::coord! {x: bbox[0], y: bbox[1]},
                geo::coord! {x: bbox[2], y: bbox[3]},
            );
            let expected: BTreeSet<String> = fc
                .features
                .iter()
                .filter(|f| {
                    f.geometry.as_ref().is_some_and(|g| {
                        let g: geo::Geometry<f64> = g.value.clone().try_into().unwrap();
                        g.intersects(&rect)
                    })
                })
                .map(feature_id)
                .collect();
            let q = format!(
                "/collections/{layer}/items?bbox={},{},{},{}&limit=10000",
                bbox[0], bbox[1], bbox[2], bbox[3]
            );
            let doc = s.json(&q).await;
            let got: BTreeSet<String> = doc["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(got, expected, "{q}");
            assert_eq!(doc["numberMatched"], expected.len());
        }
    }
    // 大足 alone around its centre.
    let doc = s
        .json("/collections/districts/items?bbox=105.70,29.70,105.71,29.71")
        .await;
    assert_eq!(doc["features"][0]["properties"]["name"], "大足区");
    assert_eq!(doc["numberMatched"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_filters_and_single_features() {
    let s = start().await;
    let doc = s
        .json("/collections/towns/items?name=%E9%BE%99%E6%B0%B4%E9%95%87")
        .await;
    assert_eq!(doc["numberMatched"], 1);
    let f = &doc["features"][0];
    assert_eq!(f["id"], "500111100");
    assert_eq!(f["properties"]["admin_code"], "500111100");
    let streets_of_dazu = bundled("data/towns.geojson")
        .features
        .iter()
        .filter(|f| {
            f.property("parent_code").and_then(|v| v.as_str()) == Some("500111")
                && f.property("level").and_then(|v| v.as_str()) == Some("street")
        })
        .count();
    let doc = s
        .json("/collections/towns/items?parent_code=500111&level=street")
        .await;
    assert_eq!(doc["numberMatched"], streets_of_dazu);
    assert!(streets_of_dazu > 0);
    let doc = s
        .json("/collections/towns/items?approximate=true&limit=1")
        .await;
    assert_eq!(
        doc["numberMatched"],
        bundled("data/towns.geojson").features.len()
    );
    let doc = s.json("/collections/towns/items?name=nowhere").await;
    assert_eq!(
        (
            doc["numberMatched"].as_u64(),
            doc["features"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    let doc = s
        .json("/collections/towns/items?name=%E9%BE%99%E6%B0%B4%E9%95%87&properties=name")
        .await;
    assert_eq!(
        doc["features"][0]["properties"].as_object().unwrap().len(),
        1
    );

    let r = s.get("/collections/towns/items/500111100").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/geo+json");
    let one: serde_json::Value = r.json().await.unwrap();
    assert_eq!(one["properties"]["name"], "龙水镇");
    assert_eq!(one["type"], "Feature");
    assert!(link(&one, "collection").is_some());
    let parsed: geojson::Feature = one
        .to_string()
        .parse::<geojson::GeoJson>()
        .unwrap()
        .try_into()
        .unwrap();
    assert!(parsed.geometry.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_etags_cors_and_compression() {
    let s = start().await;
    // HTML by f=html and by a browser's Accept header.
    let r = s
        .get("/collections/towns/items?f=html&name=%E9%BE%99%E6%B0%B4%E9%95%87")
        .await;
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(
        html.contains("龙水镇") && html.contains("500111100"),
        "{html}"
    );
    for path in [
        "/",
        "/collections",
        "/collections/towns",
        "/collections/towns/items/500111100",
        "/api",
        "/conformance",
        "/collections/towns/queryables",
    ] {
        let r = s
            .client
            .get(s.url(path))
            .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(r.text().await.unwrap().contains("</html>"));
    }
    let r = s
        .client
        .get(s.url("/collections/towns/items?limit=1"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = s.get("/collections/towns/items?limit=1").await;
    assert_eq!(r.headers()["content-type"], "application/geo+json");

    // ETag and 304 on items and features; a changed query is a different tag.
    for path in [
        "/collections/towns/items?limit=5",
        "/collections/towns/items/500111100",
        "/collections/towns",
        "/",
    ] {
        let r = s.get(path).await;
        let tag = r.headers()["etag"].to_str().unwrap().to_string();
        let again = s
            .client
            .get(s.url(path))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.headers()["etag"].to_str().unwrap(), tag);
        assert!(again.text().await.unwrap().is_empty());
        let other = s
            .client
            .get(s.url(path))
            .header("if-none-match", "W/\"other\"")
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), 200, "{path}");
    }
    let a = s.get("/collections/towns/items?limit=5").await.headers()["etag"].clone();
    let b = s.get("/collections/towns/items?limit=6").await.headers()["etag"].clone();
    assert_ne!(a, b);

    // CORS open for GET, including preflight.
    let r = s
        .client
        .get(s.url("/collections"))
        .header("origin", "http://example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    // The same answer for any origin: a shared cache may keep one copy (no `Vary: origin`).
    let vary = |r: &reqwest::Response| {
        r.headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(vary(&r), "accept, accept-encoding");
    let r = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/collections/towns/items"))
        .header("origin", "http://example.org")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "if-none-match")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("GET"));
    assert!(!vary(&r).contains("origin"), "{}", vary(&r));
    assert!(!vary(&r).contains("access-control-request"), "{}", vary(&r));

    // gzip and br when asked; the gzip body inflates to the plain one (timeStamp aside).
    let plain = s.json("/collections/districts/items").await;
    let r = s
        .client
        .get(s.url("/collections/districts/items"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let bytes = r.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text)
        .unwrap();
    let mut inflated: serde_json::Value = serde_json::from_str(&text).unwrap();
    inflated["timeStamp"] = plain["timeStamp"].clone();
    assert_eq!(inflated, plain);
    assert!(bytes.len() * 2 < text.len(), "gzip did not shrink the body");
    let r = s
        .client
        .get(s.url("/collections/districts/items"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "br");
    // Answers under 4 KiB go as they are: compressing them would save at most two segments.
    let r = s
        .client
        .get(s.url("/conformance"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    let len = r.bytes().await.unwrap().len();
    assert!(
        len > 32 && len < yizhangtu::http::COMPRESS_FROM_BYTES.into(),
        "{len}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_name_the_parameter() {
    let s = start().await;
    let cases: &[(&str, &str)] = &[
        ("bbox=1,2,3", "bbox"),
        ("bbox=1,2,3,4,5", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        ("bbox=106,29,105,30", "bbox"),
        ("bbox=105,30,106,29", "bbox"),
        ("bbox=105,29,106,95", "bbox"),
        ("bbox=", "bbox"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-3", "offset"),
        ("f=xml", "f"),
        ("colour=red", "colour"),
        ("limit=1&limit=2", "limit"),
        ("properties=nope", "properties"),
        ("bbox-crs=EPSG:9999", "bbox-crs"),
    ];
    for (q, param) in cases {
        let body = s
            .problem(&format!("/collections/towns/items?{q}"), 400)
            .await;
        assert_eq!(body["parameter"], *param, "{q}: {body}");
        assert!(
            body["description"].as_str().unwrap().contains(param),
            "{q}: {body}"
        );
    }
    for path in [
        "/?x=1",
        "/collections?x=1",
        "/conformance?x=1",
        "/collections/towns?x=1",
        "/collections/towns/items/500111100?x=1",
        "/api?x=1",
    ] {
        let body = s.problem(path, 400).await;
        assert_eq!(body["parameter"], "x");
    }
}

/// Whatever a client sends, the answer is never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_a_client_sends_makes_a_500() {
    let s = start().await;
    let paths = [
        "/collections/towns/items?bbox=1e400,0,1,1",
        "/collections/towns/items?bbox=%FF%FE,1,2,3",
        "/collections/towns/items?limit=99999999999999999999999",
        "/collections/towns/items?offset=99999999999999999999",
        "/collections/towns/items?offset=18446744073709551615",
        "/collections/towns/items?name=%00%01",
        "/collections/towns/items?%E9%BE%99=1",
        "/collections/towns/items/%2e%2e%2f%2e%2e",
        "/collections/%F0%9F%92%A9/items",
        "/collections/towns/items?f=html&name=%3Cscript%3E",
        "/collections/towns/items?bbox=-180,-90,180,90&limit=10000",
        "/collections/towns/items?datetime=2024-01-01T00:00:00Z",
        "/collections/towns/items/500111100?properties=",
        "/collections//items",
        "/%",
    ];
    for p in paths {
        let r = s.get(p).await;
        assert!(r.status().as_u16() < 500, "{p}: {}", r.status());
    }
    let r = s
        .client
        .get(s.url("/collections"))
        .header("accept", "\u{0}garbage")
        .send()
        .await;
    if let Ok(r) = r {
        assert!(r.status().as_u16() < 500);
    }
    let html = s
        .get("/collections/towns/items?f=html&name=%3Cscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_all_or_nothing_and_show_at_once() {
    let s = start_with(
        HttpSettings {
            max_body_bytes: 4096,
            ..Default::default()
        },
        true,
    )
    .await;
    let before = s.json("/collections/towns/items?limit=1").await["numberMatched"]
        .as_u64()
        .unwrap();
    let post = |body: String| {
        s.client
            .post(s.url("/collections/towns/items"))
            .header("content-type", "application/geo+json")
            .body(body)
            .send()
    };
    // One good feature and one with latitude 95: nothing lands, the bad one is named.
    let bad = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","id":"t1","properties":{"name":"测试点"},"geometry":{"type":"Point","coordinates":[105.7,29.6]}},
        {"type":"Feature","id":"t2","properties":{"name":"坏点"},"geometry":{"type":"Point","coordinates":[105.7,95]}}]}"#;
    let r = post(bad.into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["problems"][0]["id"], "t2", "{body}");
    assert!(body["problems"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("latitude 95"));
    assert_eq!(
        s.json("/collections/towns/items?limit=1").await["numberMatched"]
            .as_u64()
            .unwrap(),
        before
    );

    let good = r#"{"type":"Feature","id":"t1","properties":{"name":"测试点"},"geometry":{"type":"Point","coordinates":[105.7,29.6]}}"#;
    let r = post(good.into()).await.unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/collections/towns/items/t1"));
    let doc = s
        .json("/collections/towns/items?name=%E6%B5%8B%E8%AF%95%E7%82%B9")
        .await;
    assert_eq!(doc["features"][0]["id"], "t1");
    let doc = s
        .json("/collections/towns/items?bbox=105.69,29.59,105.71,29.61")
        .await;
    assert!(doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "t1"));

    // Too large → 413; wrong type → 415; not JSON → 400.
    let r = post("x".repeat(10_000)).await.unwrap();
    assert_eq!(r.status(), 413);
    let r = s
        .client
        .post(s.url("/collections/towns/items"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = post("{".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .client
        .delete(s.url("/collections/towns"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_import_shows_in_a_running_server_without_restart() {
    let s: TestServer = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sites.geojson");
    std::fs::write(
        &file,
        r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":"a","properties":{"name":"甲"},"geometry":{"type":"Point","coordinates":[107.75,29.33]}},
            {"type":"Feature","properties":{"name":"乙"},"geometry":{"type":"Polygon","coordinates":[[[107.7,29.3],[107.8,29.3],[107.8,29.4],[107.7,29.3]]]}}]}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
        .args([
            "import",
            file.to_str().unwrap(),
            "--layer",
            "sites",
            "--db",
            s.db.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = s
            .get("/collections/sites/items?bbox=107.74,29.32,107.76,29.34")
            .await;
        if r.status() == 200 {
            let doc: serde_json::Value = r.json().await.unwrap();
            if doc["numberMatched"] == 2 {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the import never showed in the running server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let col = s.json("/collections/sites").await;
    assert_eq!(col["numberOfFeatures"], 2);
}
