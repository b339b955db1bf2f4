//! Issue 10, "no request can bring the server down": the crash repros 1, 2, 4 and 5 (validation)
//! run against a real server; each must get a clear JSON answer, and the server must still answer
//! `/conformance` afterwards.

mod common;

use common::{start, TestServer};
use std::io::Write;

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn still_alive(s: &TestServer) {
    let r = s.get("/conformance").await;
    assert_eq!(r.status(), 200, "the server no longer answers /conformance");
}

/// GET that must give 400 JSON naming `param` and containing `needle`.
async fn refused(s: &TestServer, path: &str, param: &str, needle: &str) {
    let body = s.problem(path, 400).await;
    assert_eq!(body["parameter"], param, "{path:.100}: {body}");
    let d = body["description"].as_str().unwrap();
    assert!(d.contains(needle), "{path:.100}: {d}");
}

/// Crash 1: deep nesting in `filter` and `intersects` aborted the process (stack overflow), on
/// items, tiles and exports alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_filters_are_refused_not_fatal() {
    let s = start().await;
    let deep = "nested deeper than 16 levels";
    let parens = format!("{}name = 'x'{}", "(".repeat(400), ")".repeat(400));
    let nots = format!("{}name = 'x'", "NOT ".repeat(5000));
    // 2,500 levels stay under the 32 KiB request-target limit once percent-encoded; the issue's
    // 5,810 levels go past it and are refused before any parsing, as a 414 problem.
    let parens_2500 = format!("{}name = 'x'{}", "(".repeat(2500), ")".repeat(2500));
    let parens_5810 = format!("{}name = 'x'{}", "(".repeat(5810), ")".repeat(5810));
    let long = s
        .problem(
            &format!("/collections/towns/items?filter={}", enc(&parens_5810)),
            414,
        )
        .await;
    assert_eq!(long["code"], "UriTooLong", "{long}");
    still_alive(&s).await;
    for f in [&parens, &nots, &parens_2500] {
        let q = enc(f);
        refused(
            &s,
            &format!("/collections/towns/items?filter={q}"),
            "filter",
            deep,
        )
        .await;
        refused(
            &s,
            &format!("/tiles/towns/10/813/423.mvt?filter={q}"),
            "filter",
            deep,
        )
        .await;
        let body = s
            .problem(&format!("/export?layers=towns&filter={q}"), 400)
            .await;
        assert!(
            body["description"].as_str().unwrap().contains(deep),
            "{body}"
        );
        still_alive(&s).await;
    }
    // 1,000 levels (the issue's 2,000 pass the 32 KiB request-target limit and get the 414).
    let gc = format!(
        "{}POINT(105.7 29.7){}",
        "GEOMETRYCOLLECTION(".repeat(1000),
        ")".repeat(1000)
    );
    refused(
        &s,
        &format!("/collections/towns/items?intersects={}", enc(&gc)),
        "intersects",
        deep,
    )
    .await;
    refused(
        &s,
        &format!(
            "/collections/towns/items?filter={}",
            enc(&format!("S_INTERSECTS(geometry, {gc})"))
        ),
        "filter",
        deep,
    )
    .await;
    let mut json = String::from(r#"{"op":"=","args":[{"property":"name"},"x"]}"#);
    for _ in 0..60 {
        json = format!(r#"{{"op":"not","args":[{json}]}}"#);
    }
    refused(
        &s,
        &format!(
            "/collections/towns/items?filter-lang=cql2-json&filter={}",
            enc(&json)
        ),
        "filter",
        "nested deeper than 40 levels",
    )
    .await;
    still_alive(&s).await;
    // Ordinary nesting still works and gives the right answer.
    let all = s.json("/collections/towns/items?limit=1000").await;
    let first = all["features"][0]["properties"]["name"].as_str().unwrap();
    let f = format!("((NOT (NOT (name = '{first}'))))");
    let one = s
        .json(&format!("/collections/towns/items?filter={}", enc(&f)))
        .await;
    assert_eq!(one["numberMatched"], 1);
    assert_eq!(one["features"][0]["properties"]["name"], first);
}

/// Crash 2: `LIKE` backtracked exponentially (`'%%%%#'` took over 60 s on projects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_with_many_wildcards_answers_right() {
    let s = start().await;
    let all = s.json("/collections/projects/items?limit=10000").await;
    let names: Vec<String> = all["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["properties"]["name"].as_str().map(String::from))
        .collect();
    assert!(names.len() > 10);
    // Computed here independently: which names contain "项目" somewhere after their first
    // character, and which end with '#'.
    let with_xm = names
        .iter()
        .filter(|n| n.chars().skip(1).collect::<String>().contains("项目"))
        .count();
    let hash = names.iter().filter(|n| n.ends_with('#')).count();
    for (pattern, expected) in [
        ("%%%#", hash),
        ("%%%%#", hash),
        ("%%%%%%%%%%%%#", hash),
        ("_%%%%%项目%%%%%", with_xm),
    ] {
        let f = format!("name LIKE '{pattern}'");
        let page = s
            .json(&format!(
                "/collections/projects/items?limit=10000&filter={}",
                enc(&f)
            ))
            .await;
        assert_eq!(
            page["numberMatched"].as_u64().unwrap() as usize,
            expected,
            "{f}"
        );
    }
    still_alive(&s).await;
}

/// Crash 4: a zip bomb (entries of zeros, ~1000:1) took 2.36 GB before its 400. Now it stops
/// after a bounded amount with a 413, names the entry and the limit, and imports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_bomb_is_refused_early_and_imports_nothing() {
    let s = start().await;
    let before = s.json("/collections/villages").await["numberOfFeatures"].clone();
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let zeros = vec![0u8; 1 << 20];
    for name in ["villages.shp", "villages.dbf"] {
        z.start_file(name, opts).unwrap();
        for _ in 0..16 {
            z.write_all(&zeros).unwrap();
        }
    }
    z.start_file("villages.prj", opts).unwrap();
    z.write_all(br#"GEOGCS["China Geodetic Coordinate System 2000",DATUM["China_2000",SPHEROID["CGCS2000",6378137,298.257222101]],PRIMEM["Greenwich",0],UNIT["Degree",0.017453292519943295]]"#).unwrap();
    let bomb = z.finish().unwrap().into_inner();
    assert!(bomb.len() < 100_000);
    let r = s
        .client
        .post(s.url("/collections/villages/items"))
        .header("content-type", "application/zip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let b: serde_json::Value = r.json().await.unwrap();
    let d = b["description"].as_str().unwrap();
    assert!(
        d.contains("nothing was imported")
            && d.contains("'villages.shp'")
            && d.contains("200 times"),
        "{d}"
    );
    assert_eq!(
        s.json("/collections/villages").await["numberOfFeatures"],
        before
    );
    still_alive(&s).await;
}

/// A polygon of `n` vertices around (105.7, 29.7), star-shaped so that it is simple.
fn big_ring(n: usize, r: f64) -> Vec<[f64; 2]> {
    let mut pts: Vec<[f64; 2]> = (0..n)
        .map(|i| {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            let rr = r * (0.9 + 0.1 * ((i * 7919) % 13) as f64 / 13.0);
            [105.7 + rr * a.cos(), 29.7 + rr * a.sin()]
        })
        .collect();
    pts.push(pts[0]);
    pts
}

/// Crash 5 (validation part): validating a 50,000-vertex polygon was quadratic (~57 s). A
/// self-intersection near the end of the ring is found and named at once now; vertex limits are
/// stated and answered with 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_polygons_are_validated_quickly_and_bounded() {
    let s = start().await;
    let mut ring = big_ring(50_000, 0.01);
    // Two far-apart vertices swapped: the ring now crosses itself, late in the ring.
    ring.swap(30_000, 45_000);
    let post = |body: serde_json::Value| {
        s.client
            .post(s.url("/analysis/coverage?layers=projects"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let r = post(serde_json::json!({"type": "Polygon", "coordinates": [ring]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.unwrap();
    assert!(
        b["description"]
            .as_str()
            .unwrap()
            .contains("self-intersection"),
        "{b}"
    );
    let max = yizhangtu::http::query::MAX_REQUEST_VERTICES;
    let huge = big_ring(max + 10, 0.01);
    let r = post(serde_json::json!({"type": "Polygon", "coordinates": [huge]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["code"], "GeometryTooLarge");
    assert_eq!(b["max_vertices"], max);
    still_alive(&s).await;
}

/// Small: `near` needs exactly two finite numbers; empty parameters are a 400 naming them; `limit`
/// above the maximum is clamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_edge_cases() {
    let s = start().await;
    for bad in [
        "105.7,abc,29.7",
        "105.7,29.7,1",
        "105.7",
        "NaN,29.7",
        "inf,29.7",
        ",",
    ] {
        refused(
            &s,
            &format!("/collections/towns/items?near={}&distance=100", enc(bad)),
            "near",
            "two finite numbers",
        )
        .await;
    }
    for empty in [
        "filter=",
        "datetime=",
        "sortby=",
        "intersects=",
        "within=",
        "filter=%20",
        "limit=",
        "bbox=",
        "offset=",
        "name=",
    ] {
        let b = s
            .problem(&format!("/collections/towns/items?{empty}"), 400)
            .await;
        assert_eq!(b["parameter"], empty.split('=').next().unwrap(), "{b}");
    }
    let page = s.json("/collections/projects/items?limit=20000").await;
    let max = yizhangtu::http::MAX_LIMIT as u64;
    let expected = page["numberMatched"].as_u64().unwrap().min(max);
    assert_eq!(page["numberReturned"].as_u64().unwrap(), expected);
    still_alive(&s).await;
}
