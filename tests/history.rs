//! History and audit (issue 11): imports and edits keep every version; the audit log is
//! hash-chained, readable by admins as JSON and CSV, and tampering is found by `audit verify`.

mod common;

use serde_json::{json, Value};
use sqlx::Connection;

use common::{client_with, run, start, user_token};

fn collection(ids: &[&str], status: &str) -> String {
    let features: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({"type": "Feature", "id": id, "properties": {"name": id, "status": status},
            "geometry": {"type": "Point", "coordinates": [105.70 + i as f64 * 0.01, 29.70]}})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_and_edits_are_kept_and_audited_with_request_ids() {
    let s = start().await;
    let post = |body: String, reason: &'static str| {
        s.client
            .post(s.url("/collections/projects/items"))
            .header("content-type", "application/geo+json")
            .header("x-change-reason", reason)
            .header("x-request-id", "req-from-client-1")
            .body(body)
            .send()
    };
    let r = post(collection(&["h1", "h2"], "planned"), "first load")
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], "req-from-client-1");
    let r = post(collection(&["h1"], "started"), "second load")
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Responses carry a request id even when the client sent none.
    let r = s.get("/collections").await;
    assert!(r.headers()["x-request-id"].to_str().unwrap().len() >= 16);

    let h = s.json("/collections/projects/items/h1/history").await;
    let v = h["versions"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["op"], "insert");
    assert_eq!(v[1]["op"], "update");
    assert_eq!(v[0]["reason"], "first load");
    assert_eq!(v[1]["reason"], "second load");
    assert_eq!(v[1]["request_id"], "req-from-client-1");
    let old = s.json("/collections/projects/items/h1/history/1").await;
    assert_eq!(old["properties"]["status"], "planned");
    assert_eq!(
        s.json("/collections/projects/items/h2/history").await["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.problem("/collections/projects/items/never/history", 404)
        .await;

    // The audit log: admins only; JSON and CSV; filters.
    let editor = client_with(&user_token(&s.app, "ed", "editor", &[]).await);
    assert_eq!(
        editor.get(s.url("/audit")).send().await.unwrap().status(),
        403
    );
    assert_eq!(
        reqwest::Client::new()
            .get(s.url("/audit"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let all = s.json("/audit?layer=projects&user=admin").await;
    let rows = all["rows"].as_array().unwrap();
    let imports: Vec<&Value> = rows.iter().filter(|r| r["action"] == "import").collect();
    assert_eq!(imports.len(), 2, "{all}");
    assert_eq!(imports[0]["user"], "admin");
    assert_eq!(imports[0]["reason"], "first load");
    assert_eq!(imports[0]["request_id"], "req-from-client-1");
    assert_eq!(imports[0]["address"], "127.0.0.1");
    // The refused attempts are rows too.
    let refused = s.json("/audit?user=ed").await;
    assert!(
        refused["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"].as_str().unwrap().starts_with("refused")),
        "{refused}"
    );
    let since = s.json("/audit?since=2999-01-01T00:00:00Z").await;
    assert_eq!(since["returned"], 0);
    s.problem("/audit?since=yesterday", 400).await;
    let csv = s
        .client
        .get(s.url("/audit?f=csv&layer=projects&user=admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("seq,at,user,role,address,action,layer,ids,reason,request_id,outcome,prev_hash,hash\r\n"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(",import,projects,"))
            .count(),
        2,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_first_changed_or_deleted_row() {
    let s = start().await;
    for (i, id) in ["t1", "t2", "t3"].iter().enumerate() {
        let r = s
            .client
            .post(s.url("/collections/projects/items"))
            .header("content-type", "application/geo+json")
            .header("x-change-reason", format!("load {i}"))
            .body(collection(&[id], "planned"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let db = s.db.to_str().unwrap().to_string();
    let (ok, out, err) = run(&["audit", "verify", "--db", &db]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("intact"), "{out}");

    // The row of the second import.
    let rows = s.json("/audit?layer=projects").await;
    let seq = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "load 1")
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{db}"))
        .await
        .unwrap();
    // The log refuses changes from ordinary SQL …
    assert!(sqlx::query("UPDATE audit SET reason = 'x' WHERE seq = ?")
        .bind(seq)
        .execute(&mut conn)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit WHERE seq = ?")
        .bind(seq)
        .execute(&mut conn)
        .await
        .is_err());
    // … but whoever has the file can drop the guard; the chain still tells.
    let tamper = |sql: &str| {
        let shell = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output();
        match shell {
            Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)),
            Err(_) => common::missing_tool("the sqlite3 shell"),
        }
    };
    tamper(&format!(
        "DROP TRIGGER audit_no_update; UPDATE audit SET reason = 'nothing happened' WHERE seq = {seq};"
    ));
    let (ok, out, err) = run(&["audit", "verify", "--db", &db]);
    assert!(!ok, "{out}");
    assert!(err.contains(&format!("audit row {seq} is broken")), "{err}");
    assert!(err.contains("changed"), "{err}");
    // Put back as it was: intact again.
    tamper(&format!(
        "UPDATE audit SET reason = 'load 1' WHERE seq = {seq};"
    ));
    let (ok, out, err) = run(&["audit", "verify", "--db", &db]);
    assert!(ok, "{out}{err}");
    // Deleting a row is found too.
    tamper(&format!(
        "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = {seq};"
    ));
    let (ok, _, err) = run(&["audit", "verify", "--db", &db]);
    assert!(!ok);
    assert!(
        err.contains(&format!("audit row {} is broken", seq + 1)),
        "{err}"
    );
    assert!(err.contains("missing"), "{err}");
    conn.close().await.unwrap();
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn square(x: f64, y: f64, d: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]]})
}

/// Geodesic area in 亩, computed here with geo (independently of the server's geom::area).
fn mu_of(d: f64, x: f64, y: f64) -> f64 {
    use geo::GeodesicArea;
    let ring = vec![(x, y), (x + d, y), (x + d, y + d), (x, y + d), (x, y)];
    let p = geo::Polygon::new(geo::LineString::from(ring), vec![]);
    p.geodesic_area_unsigned() / (10_000.0 / 15.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_reads_and_changes_between_two_times() {
    let s = start().await;
    let (x, y) = (105.75, 29.57);
    let post = |id: &str, d: f64| {
        let body = json!({"type": "Feature", "id": id, "properties": {"name": id, "status": "planned"}, "geometry": square(x, y, d)});
        s.client
            .post(s.url("/collections/projects/items"))
            .header("content-type", "application/geo+json")
            .body(body.to_string())
            .send()
    };
    assert_eq!(post("k1", 0.01).await.unwrap().status(), 201);
    assert_eq!(post("k2", 0.01).await.unwrap().status(), 201);
    assert_eq!(post("k3", 0.01).await.unwrap().status(), 201);
    let t1 = now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Between t1 and t2: k1 grows and changes status, k2 goes, k4 comes; k3 stays.
    let r = s
        .client
        .patch(s.url("/collections/projects/items/k1"))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(
            json!({"geometry": square(x, y, 0.02), "properties": {"status": "started"}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .delete(s.url("/collections/projects/items/k2"))
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(post("k4", 0.01).await.unwrap().status(), 201);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let t2 = now();
    let enc = |t: &str| t.replace('+', "%2B");

    // asof t1: the old geometry of k1, k2 still there, k4 not yet.
    let old = s
        .json(&format!(
            "/collections/projects/items?asof={}&limit=10000",
            enc(&t1)
        ))
        .await;
    let ids: Vec<&str> = old["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"k1") && ids.contains(&"k2") && !ids.contains(&"k4"),
        "{ids:?}"
    );
    let k1 = old["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "k1")
        .unwrap();
    assert_eq!(k1["properties"]["status"], "planned");
    assert_eq!(
        k1["geometry"]["coordinates"][0][1][0].as_f64().unwrap(),
        x + 0.01
    );
    let filtered = s
        .json(&format!(
            "/collections/projects/items?asof={}&status=planned&limit=10000",
            enc(&t1)
        ))
        .await;
    assert!(filtered["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "k1"));
    let now_ = s.json("/collections/projects/items/k1").await;
    assert_eq!(now_["properties"]["status"], "started");
    s.problem("/collections/projects/items?asof=yesterday", 400)
        .await;

    // changes between t1 and t2: exactly those three.
    let c = s
        .json(&format!(
            "/collections/projects/changes?from={}&to={}",
            enc(&t1),
            enc(&t2)
        ))
        .await;
    let ids = |k: &str| -> Vec<String> {
        c[k].as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("added"), ["k4"]);
    assert_eq!(ids("removed"), ["k2"]);
    assert_eq!(ids("changed"), ["k1"]);
    let ch = &c["changed"][0];
    assert_eq!(ch["changed"], json!(["status", "geometry"]));
    let want = mu_of(0.02, x, y) - mu_of(0.01, x, y);
    let got = ch["mu_difference"].as_f64().unwrap();
    assert!((got - want).abs() < 0.05 + want * 1e-6, "{got} vs {want}");
    // An area the features are not in: nothing; f=html renders.
    let far = s
        .json(&format!(
            "/collections/projects/changes?from={}&to={}&area=500156",
            enc(&t1),
            enc(&t2)
        ))
        .await;
    assert!(
        far["added"].as_array().unwrap().is_empty()
            && far["changed"].as_array().unwrap().is_empty()
    );
    let html = s
        .get(&format!(
            "/collections/projects/changes?from={}&to={}&f=html",
            enc(&t1),
            enc(&t2)
        ))
        .await;
    assert_eq!(html.status(), 200);
    assert!(html.text().await.unwrap().contains("k4"));
    s.problem("/collections/projects/changes", 400).await;
    s.problem(
        &format!(
            "/collections/projects/changes?from={}&to={}",
            enc(&t2),
            enc(&t1)
        ),
        400,
    )
    .await;
    s.problem("/collections/nope/changes?from=2020-01-01T00:00:00Z", 404)
        .await;
}
