//! 实施监测评估预警: `/monitoring/{area}` counts against the seeds read here, a late project that
//! leaves the warnings once completed (through the CLI, kept in its history), and the .xlsx
//! report opened with calamine.

mod common;

use calamine::{Reader, Xlsx};
use serde_json::Value;

/// Projects the seeds place in or under `code` (by the admin codes each names).
fn seeded_projects_in(code: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(common::repo().join("seeds")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("geojson") {
            continue;
        }
        let fc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for f in fc["features"].as_array().unwrap() {
            let p = &f["properties"];
            if p["layer"] != "projects" {
                continue;
            }
            let mut codes: Vec<&str> = p["admin_codes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            codes.extend(p["admin_code"].as_str());
            if codes.iter().any(|c| c.starts_with(code)) {
                n += 1;
            }
        }
    }
    n
}

fn warning_ids(doc: &Value) -> Vec<String> {
    doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_late_project_is_warned_until_it_is_completed() {
    let server = common::start().await;
    // Before the plan period ends nothing is late.
    let early = server.json("/monitoring/武隆区?asof=2025-06-30").await;
    assert_eq!(early["area"]["code"], "500156");
    assert_eq!(
        early["summary"]["projects_total"].as_u64().unwrap() as usize,
        seeded_projects_in("500156")
    );
    assert!(!warning_ids(&early).contains(&"004-p-1-6".to_string()));
    // 004-p-1-6 (桐梓镇双凤场至新桥公路, 新建, 2021—2025) is three months late on 2026-03-31.
    let doc = server.json("/monitoring/500156?asof=2026-03-31").await;
    let w = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "004-p-1-6")
        .expect("004-p-1-6 is late");
    assert_eq!(w["months_late"], 3);
    assert_eq!(w["status"], "planned");
    assert_eq!(w["end_date"], "2025-12-31");
    let late_before = doc["summary"]["late"].as_u64().unwrap();
    // The per-town breakdown counts it in 桐梓镇 (500156109).
    let town = doc["by_unit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["code"] == "500156109")
        .unwrap();
    assert!(town["late"].as_u64().unwrap() >= 1);
    assert_eq!(
        town["projects_total"].as_u64().unwrap() as usize,
        seeded_projects_in("500156109")
    );
    let town_doc = server.json("/monitoring/桐梓镇?asof=2026-03-31").await;
    assert!(warning_ids(&town_doc).contains(&"004-p-1-6".to_string()));

    // Completed, through the CLI: the feature, its history and the warnings show it.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("progress.csv");
    std::fs::write(
        &csv,
        "id,status,progress_percent,investment_done_wan_yuan,reported_on,source\n004-p-1-6,完成,100,1200,2026-02-15,区交通局\n",
    )
    .unwrap();
    let (ok, out, err) = common::run(&[
        "projects",
        "progress",
        csv.to_str().unwrap(),
        "--db",
        server.db.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("completed"), "{out}");
    server.app.catch_up().await.unwrap();
    let doc = server.json("/monitoring/500156?asof=2026-03-31").await;
    assert!(!warning_ids(&doc).contains(&"004-p-1-6".to_string()));
    assert_eq!(doc["summary"]["late"].as_u64().unwrap(), late_before - 1);
    assert_eq!(
        doc["summary"]["investment_done_wan_yuan"].as_f64().unwrap(),
        1200.0
    );
    // Looking back to before the report, it was still late.
    let then = server.json("/monitoring/500156?asof=2026-01-31").await;
    let w = then["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "004-p-1-6")
        .expect("late on 2026-01-31");
    assert_eq!(w["months_late"], 1);
    assert_eq!(w["status"], "planned");
    let f = server.json("/collections/projects/items/004-p-1-6").await;
    assert_eq!(f["properties"]["status"], "completed");
    assert_eq!(f["properties"]["progress_percent"], 100.0);
    let completed = server
        .json("/collections/projects/items?status=completed")
        .await;
    assert_eq!(completed["numberMatched"], 1);
    let history = server.json("/projects/004-p-1-6/progress").await;
    let history = history["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "the seeded record and the report");
    assert_eq!(history[0]["status"], "planned");
    assert_eq!(history[1]["status"], "completed");
    assert_eq!(history[1]["source"], "区交通局");

    // A bad report changes nothing and says which line.
    std::fs::write(&csv, "id,status,source\n004-p-1-6,done,x\n").unwrap();
    let (ok, _, err) = common::run(&[
        "projects",
        "progress",
        csv.to_str().unwrap(),
        "--db",
        server.db.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("line 2") && err.contains("'done'"),
        "{err}"
    );

    let html = server
        .get("/monitoring/武隆区?f=html&asof=2026-03-31")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("预警") && html.contains("桐梓镇"));
    server.problem("/monitoring/不存在镇", 404).await;
    server.problem("/monitoring/500156?asof=soon", 400).await;
    server.problem("/monitoring/500156?asof=", 400).await;
}

#[tokio::test]
async fn the_spreadsheet_holds_the_report() {
    let server = common::start().await;
    let doc = server.json("/monitoring/武隆区?asof=2026-03-31").await;
    let r = server
        .get("/monitoring/武隆区/report.xlsx?asof=2026-03-31")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let bytes = r.bytes().await.unwrap().to_vec();
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), vec!["项目", "指标", "预警"]);
    let projects = book.worksheet_range("项目").unwrap();
    // A title row, a header row, then one row per project.
    assert_eq!(
        projects.height(),
        2 + doc["projects"].as_array().unwrap().len()
    );
    assert_eq!(projects.get((1, 1)).unwrap().to_string(), "项目名称");
    let names: Vec<String> = (2..projects.height())
        .map(|r| projects.get((r, 1)).unwrap().to_string())
        .collect();
    assert!(names.contains(&"桐梓镇双凤场至新桥公路建设项目".to_string()));
    let indicators = book.worksheet_range("指标").unwrap();
    assert_eq!(
        indicators.height(),
        2 + doc["indicators"].as_array().unwrap().len()
    );
    let warnings = book.worksheet_range("预警").unwrap();
    let expected = doc["warnings"].as_array().unwrap().len()
        + doc["indicators_behind"].as_array().unwrap().len();
    assert!(expected > 0);
    assert_eq!(warnings.height(), 2 + expected);
    let row = (2..warnings.height())
        .find(|r| *warnings.get((*r, 1)).unwrap() == "004-p-1-6")
        .expect("the late project is in 预警");
    assert_eq!(warnings.get((row, 0)).unwrap().to_string(), "项目逾期");
    assert_eq!(warnings.get((row, 7)).unwrap().to_string(), "3");
    server
        .problem("/monitoring/不存在镇/report.xlsx", 404)
        .await;
    // The API documents it all.
    let api = server.json("/api?f=json").await;
    for path in [
        "/plans",
        "/plans/{id}",
        "/indicators",
        "/monitoring/{area}",
        "/monitoring/{area}/report.xlsx",
    ] {
        assert!(api["paths"][path].is_object(), "{path}");
    }
}
