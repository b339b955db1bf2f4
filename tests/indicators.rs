//! Indicators (指标): seeded counts per plan against the catalogs read here, the qualitative
//! ones in `check`, observations through the CLI, the store and HTTP (an editor of the
//! indicator's scope), and the computed status through `/indicators`.

mod common;

use serde_json::Value;
use std::collections::BTreeMap;

use yizhangtu::monitor::service::add_observations;
use yizhangtu::monitor::Observation;

/// A target counts as quantitative when it is a number, or one number with a comparator
/// (">96", "15以上") or a ratio "2:1"; results achieved before the plan (已完成) do not count.
fn quantitative(ind: &Value) -> bool {
    if ind["status"].as_str().is_some_and(|s| s.contains("已完成")) {
        return false;
    }
    match &ind["target"] {
        Value::Number(_) => true,
        Value::String(s) => {
            let s = s.trim();
            let body = s
                .trim_start_matches(['>', '<', '≥', '≤', '='])
                .trim()
                .trim_end_matches("以上")
                .trim_end_matches(":1")
                .trim();
            body.parse::<f64>().is_ok() && body != s || s.parse::<f64>().is_ok()
        }
        _ => false,
    }
}

fn catalog_counts() -> Option<(BTreeMap<String, usize>, usize)> {
    let dir = common::repo().join("../shared/reference/catalog");
    if !dir.exists() {
        common::missing_tool("../shared/reference/catalog (the plans' structured reading)");
        return None;
    }
    let mut counts = BTreeMap::new();
    let mut total = 0;
    for i in 0..5 {
        let text = std::fs::read_to_string(dir.join(format!("{i:03}.json"))).unwrap();
        let cat: Value = serde_json::from_str(&text).unwrap();
        let list = cat["indicators"].as_array().unwrap();
        total += list.len();
        counts.insert(
            format!("{i:03}"),
            list.iter().filter(|x| quantitative(x)).count(),
        );
    }
    Some((counts, total))
}

#[tokio::test]
async fn seeded_counts_per_plan_match_the_catalog() {
    let Some((expected, total)) = catalog_counts() else {
        return;
    };
    assert_eq!(total, 275);
    let server = common::start().await;
    let mut seeded = 0;
    for (plan, n) in &expected {
        let doc = server.json(&format!("/indicators?plan={plan}")).await;
        assert_eq!(
            doc["numberMatched"].as_u64().unwrap() as usize,
            *n,
            "plan {plan}"
        );
        assert_eq!(doc["by_status"]["no_data"].as_u64().unwrap() as usize, *n);
        for i in doc["indicators"].as_array().unwrap() {
            assert!(i["target_value"].is_number());
            assert!(i["scope_code"].as_str().unwrap().len() >= 6);
            assert!(["increase", "decrease", "keep"].contains(&i["direction"].as_str().unwrap()));
        }
        seeded += n;
    }
    let all = server.json("/indicators").await;
    assert_eq!(all["numberMatched"].as_u64().unwrap() as usize, seeded);
    // The plan marks 约束性 / 预期性 only in 武隆's table; they are carried over.
    let binding = all["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["binding"] == "binding")
        .count();
    assert!(binding >= 3, "{binding}");
    // The qualitative rest is listed by `check`, each with a reason.
    let (ok, out, err) = common::run(&["check", "--json", "--db", server.db.to_str().unwrap()]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let notes = report["notes"].as_array().unwrap();
    assert_eq!(notes.len(), total - seeded);
    assert!(notes
        .iter()
        .all(|n| n["layer"] == "indicators"
            && n["problem"].as_str().unwrap().contains("qualitative")));
    // Filters that name nothing known are 400s (or 404 for an unknown area).
    server.problem("/indicators?plan=999", 400).await;
    server.problem("/indicators?status=late", 400).await;
    server.problem("/indicators?category=sports", 400).await;
    server.problem("/indicators?area=不存在镇", 404).await;
    server.problem("/indicators?asof=2024-13-01", 400).await;
    server.problem("/indicators?plan=", 400).await;
    let town = server.json("/indicators?area=龙水镇").await;
    assert_eq!(
        town["numberMatched"].as_u64().unwrap() as usize,
        expected["000"]
    );
}

#[tokio::test]
async fn http_writes_need_an_editor_of_the_scope() {
    let server = common::start().await;
    let r = reqwest::Client::new()
        .post(server.url("/indicators/004-006/observations"))
        .header("content-type", "application/json")
        .body(r#"{"value": 86, "date": "2023-07-01", "source": "统计公报"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "Unauthorized");
    let r = reqwest::Client::new()
        .post(server.url("/projects/004-p-1-6/progress"))
        .header("content-type", "application/json")
        .body(r#"{"status": "completed", "source": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nothing was recorded.
    let doc = server.json("/indicators/004-006/observations").await;
    assert_eq!(doc["observations"], serde_json::json!([]));

    // 004-006 is 武隆 (500156)'s: a viewer and a 大足 editor are refused, a 武隆 editor is not.
    let post = |token: String, body: &'static str| {
        let url = server.url("/indicators/004-006/observations");
        async move {
            common::client_with(&token)
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let one = r#"{"value": 86, "date": "2023-07-01", "source": "统计公报"}"#;
    let viewer = common::user_token(&server.app, "v", "viewer", &[]).await;
    assert_eq!(post(viewer, one).await.status(), 403);
    let dazu = common::user_token(&server.app, "dazu", "editor", &["500111"]).await;
    let r = post(dazu, one).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "OutOfScope");
    assert_eq!(body["scope"], "500156");
    let doc = server.json("/indicators/004-006/observations").await;
    assert_eq!(doc["observations"], serde_json::json!([]));
    let wulong = common::user_token(&server.app, "wulong", "editor", &["500156"]).await;
    // A row for another indicator in the same body is refused, and nothing is kept.
    let mixed = r#"[{"value": 86, "date": "2023-07-01", "source": "a"}, {"indicator": "000-001", "value": 1, "date": "2023-07-01", "source": "b"}]"#;
    assert_eq!(post(wulong.clone(), mixed).await.status(), 400);
    assert_eq!(
        server.json("/indicators/004-006/observations").await["observations"],
        serde_json::json!([])
    );
    let r = post(wulong, one).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let doc = server.json("/indicators/004-006/observations").await;
    let list = doc["observations"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["value"], 86.0);
    assert_eq!(list[0]["recorded_by"], "wulong");
    // The write is in the audit log, with who made it.
    let audit = server
        .client
        .get(server.url("/audit?user=wulong"))
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), 200);
    let audit: Value = audit.json().await.unwrap();
    let rows = audit["rows"]
        .as_array()
        .or(audit.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        rows.iter()
            .any(|r| r["action"] == "add observation" && r["outcome"] == "ok"),
        "{audit}"
    );
}

fn obs(indicator: &str, value: f64, date: &str) -> Observation {
    Observation {
        seq: 0,
        indicator: indicator.into(),
        value,
        date: date.into(),
        source: "区统计局".into(),
        note: String::new(),
        recorded_by: String::new(),
        recorded_at: String::new(),
    }
}

#[tokio::test]
async fn observations_give_status_and_share_of_the_way() {
    let server = common::start().await;
    // 004-006 农村卫生户厕普及率: 82 % (2020) → 90 % (2025). Half-way along the line (mid-2023)
    // it stands at 86; the tolerance is 5 % of the planned rise of 8 points, 0.4.
    let ind = server.json("/indicators/004-006").await;
    assert_eq!(ind["baseline_value"], 82.0);
    assert_eq!(ind["target_value"], 90.0);
    assert_eq!(ind["status"], "no_data");
    let store = &server.app.store;
    add_observations(store, &[obs("004-006", 86.0, "2023-07-01")], "test")
        .await
        .unwrap();
    let ind = server.json("/indicators/004-006?asof=2023-12-31").await;
    assert_eq!(ind["status"], "on_track");
    assert_eq!(ind["expected_value"], 86.0);
    assert_eq!(ind["share_of_way"], 0.5);
    // An earlier date does not see it.
    let ind = server.json("/indicators/004-006?asof=2023-06-30").await;
    assert_eq!(ind["status"], "no_data");

    // The CLI imports a CSV, all or nothing: a bad row stops the whole file.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "indicator,value,date,source,note\n004-006,85.5,2023-07-02,区统计局,\n004-999,1,2023-01-01,x,\n004-006,abc,2023-01-01,x,\n",
    )
    .unwrap();
    let db = server.db.to_str().unwrap();
    let (ok, _, err) = common::run(&["indicators", "import", bad.to_str().unwrap(), "--db", db]);
    assert!(!ok);
    assert!(err.contains("line 4") && err.contains("abc"), "{err}");
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "\u{feff}indicator,value,date,source,note\n004-006,85.5,2023-07-02,区统计局,第二次\n004-017,50,2024-12-31,区农业农村委,\n",
    )
    .unwrap();
    let bad_id = dir.path().join("bad_id.csv");
    std::fs::write(
        &bad_id,
        "indicator,value,date,source\n004-999,1,2023-01-01,x\n",
    )
    .unwrap();
    let (ok, _, err) = common::run(&["indicators", "import", bad_id.to_str().unwrap(), "--db", db]);
    assert!(
        !ok && err.contains("004-999") && err.contains("no such indicator"),
        "{err}"
    );
    let (ok, out, err) = common::run(&["indicators", "import", good.to_str().unwrap(), "--db", db]);
    assert!(ok, "{err}");
    assert!(out.contains("recorded 2"), "{out}");
    let list = server.json("/indicators/004-006/observations").await;
    let list = list["observations"].as_array().unwrap();
    assert_eq!(list.len(), 2, "every observation is kept");
    assert_eq!(list[1]["note"], "第二次");
    assert_eq!(list[1]["recorded_by"], "cli");
    // The newest value, 85.5 on 2023-07-02, is 0.5 under the line: behind.
    let ind = server.json("/indicators/004-006?asof=2023-12-31").await;
    assert_eq!(ind["status"], "behind");
    assert_eq!(ind["latest_value"], 85.5);
    let behind = server
        .json("/indicators?plan=004&status=behind&asof=2025-01-01")
        .await;
    let ids: Vec<&str> = behind["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["004-006"]);
    // 004-017 reached its target of 50 %.
    let achieved = server.json("/indicators?status=achieved").await;
    assert_eq!(achieved["numberMatched"], 1);
    assert_eq!(achieved["indicators"][0]["id"], "004-017");
    let html = server
        .get("/indicators?plan=004&f=html")
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("农村卫生户厕普及率") && html.contains("滞后"));
}
