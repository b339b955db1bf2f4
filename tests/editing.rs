//! Editing (issue 11): OGC API – Features Part 4 with roles, district scope, ETags and
//! If-Match, on a real server with the bundled data.

mod common;

use serde_json::{json, Value};
use yizhangtu::config::HttpSettings;

use common::{client_with, start, start_with, user_token, TestServer};

/// The town seat of `code` (a point inside the town), from the server itself.
async fn seat(s: &TestServer, code: &str) -> [f64; 2] {
    let f = s
        .json(&format!("/collections/town_seats/items/{code}"))
        .await;
    let c = &f["geometry"]["coordinates"];
    [c[0].as_f64().unwrap(), c[1].as_f64().unwrap()]
}

/// 龙水镇 (大足, 500111) and 白马镇 (武隆, 500156).
const DAZU_TOWN: &str = "500111100";
const WULONG_TOWN: &str = "500156101";

fn square(c: [f64; 2], d: f64) -> Value {
    let [x, y] = c;
    json!({"type": "Polygon", "coordinates": [[[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]]})
}

fn feature(id: &str, admin_code: &str, geometry: Value) -> String {
    json!({"type": "Feature", "id": id, "properties": {"name": format!("项目 {id}"), "admin_code": admin_code, "status": "planned"}, "geometry": geometry}).to_string()
}

async fn post(client: &reqwest::Client, s: &TestServer, body: String) -> reqwest::Response {
    client
        .post(s.url("/collections/projects/items"))
        .header("content-type", "application/geo+json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn etag(s: &TestServer, id: &str) -> String {
    let r = s.get(&format!("/collections/projects/items/{id}")).await;
    assert_eq!(r.status(), 200);
    r.headers()["etag"].to_str().unwrap().to_string()
}

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_viewers_and_editors_outside_their_district_are_refused() {
    let s = start().await;
    let anon = reqwest::Client::new();
    let inside = seat(&s, DAZU_TOWN).await;
    let outside = seat(&s, WULONG_TOWN).await;

    // Anonymous: 401 with WWW-Authenticate on every write method.
    let r = post(
        &anon,
        &s,
        feature(
            "e1",
            DAZU_TOWN,
            json!({"type": "Point", "coordinates": inside}),
        ),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for m in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let r = anon
            .request(m.clone(), s.url("/collections/towns/items/500111100"))
            .header("if-match", "\"1\"")
            .header("content-type", "application/json")
            .body(r#"{"properties": {"name": "HACKED"}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{m}");
        assert!(r.headers().contains_key("www-authenticate"));
    }
    // A made-up token: 401 too.
    let r = post(
        &client_with("yzt_0000000000000000_00"),
        &s,
        feature(
            "e1",
            DAZU_TOWN,
            json!({"type": "Point", "coordinates": inside}),
        ),
    )
    .await;
    assert_eq!(r.status(), 401);

    // A viewer may not write.
    let viewer = client_with(&user_token(&s.app, "v", "viewer", &[]).await);
    let (status, body) = status_and_body(
        post(
            &viewer,
            &s,
            feature(
                "e1",
                DAZU_TOWN,
                json!({"type": "Point", "coordinates": inside}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // A 大足 editor: not the reference layers, not 武隆, not an admin_code outside 大足.
    let editor = client_with(&user_token(&s.app, "dazu", "editor", &["500111"]).await);
    let r = editor
        .patch(s.url("/collections/towns/items/500111100"))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"name": "HACKED"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.json("/collections/towns/items/500111100").await["properties"]["name"],
        "龙水镇"
    );

    let (status, body) = status_and_body(
        post(
            &editor,
            &s,
            feature(
                "w1",
                WULONG_TOWN,
                json!({"type": "Point", "coordinates": outside}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "OutOfScope");
    assert_eq!(body["feature"], "w1");
    assert_eq!(body["scope"][0]["code"], "500111");
    assert!(
        body["description"].as_str().unwrap().contains("大足区"),
        "{body}"
    );
    s.problem("/collections/projects/items/w1", 404).await;

    // Geometry in 大足 but a code of 武隆: refused by code.
    let (status, body) = status_and_body(
        post(
            &editor,
            &s,
            feature(
                "w2",
                WULONG_TOWN,
                json!({"type": "Point", "coordinates": inside}),
            ),
        )
        .await,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // A polygon reaching from 大足 into 武隆 (far apart, so the square spans both): refused.
    let big = json!({"type": "Polygon", "coordinates": [[[inside[0], inside[1]], [outside[0], outside[1]], [outside[0], inside[1]], [inside[0], inside[1]]]]});
    let (status, _) = status_and_body(post(&editor, &s, feature("w3", DAZU_TOWN, big)).await).await;
    assert_eq!(status, 403);

    // Inside 大足: created, 201 with Location.
    let r = post(&editor, &s, feature("d1", DAZU_TOWN, square(inside, 0.001))).await;
    assert_eq!(r.status(), 201);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/collections/projects/items/d1"));
    // Posting the same id again is an update: editors must use PUT/PATCH with If-Match.
    let r = post(&editor, &s, feature("d1", DAZU_TOWN, square(inside, 0.001))).await;
    assert_eq!(r.status(), 409);

    // Moving it into 武隆: 403 and nothing changed.
    let tag = etag(&s, "d1").await;
    let r = editor
        .patch(s.url("/collections/projects/items/d1"))
        .header("if-match", &tag)
        .header("content-type", "application/merge-patch+json")
        .body(
            json!({"geometry": square(outside, 0.001), "properties": {"admin_code": null}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let now = s.json("/collections/projects/items/d1").await;
    let x = now["geometry"]["coordinates"][0][0][0].as_f64().unwrap();
    assert!((x - (inside[0] - 0.001)).abs() < 1e-9, "{now}");
    assert_eq!(etag(&s, "d1").await, tag);

    // A 武隆 editor cannot delete 大足's feature; the 大足 editor can.
    let wulong = client_with(&user_token(&s.app, "wulong", "editor", &["500156"]).await);
    let r = wulong
        .delete(s.url("/collections/projects/items/d1"))
        .header("if-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = editor
        .delete(s.url("/collections/projects/items/d1"))
        .header("if-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    s.problem("/collections/projects/items/d1", 404).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_patch_and_delete_need_the_current_version() {
    let s = start().await;
    let inside = seat(&s, DAZU_TOWN).await;
    let r = post(
        &s.client,
        &s,
        feature("p1", DAZU_TOWN, square(inside, 0.002)),
    )
    .await;
    assert_eq!(r.status(), 201);
    let v1 = etag(&s, "p1").await;
    assert!(v1.starts_with("W/\"1."), "{v1}");

    let patch = |tag: Option<&str>, body: Value| {
        let mut rq = s
            .client
            .patch(s.url("/collections/projects/items/p1"))
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string());
        if let Some(t) = tag {
            rq = rq.header("if-match", t);
        }
        rq.send()
    };
    let r = patch(None, json!({"properties": {"status": "started"}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 428);
    let r = patch(
        Some(&v1),
        json!({"properties": {"status": "started", "investment_wan": 120}, "reason": "开工"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"2\"");
    let f = s.json("/collections/projects/items/p1").await;
    assert_eq!(f["properties"]["status"], "started");
    assert_eq!(f["properties"]["investment_wan"], 120);
    assert_eq!(f["properties"]["name"], "项目 p1");
    // The old ETag is stale now: 412 with the current version.
    let (status, body) = status_and_body(
        patch(Some(&v1), json!({"properties": {"status": "x"}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 412);
    assert_eq!(body["currentVersion"], 2);
    // null removes a property; a geometry may be patched (validated like imports).
    let bad = json!({"geometry": {"type": "Polygon", "coordinates": [[[106.0, 29.5], [106.01, 29.51], [106.01, 29.5], [106.0, 29.51], [106.0, 29.5]]]}});
    let (status, body) = status_and_body(patch(Some("\"2\""), bad).await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    let r = patch(Some("\"2\""), json!({"properties": {"investment_wan": null}, "geometry": {"type": "Point", "coordinates": inside}})).await.unwrap();
    assert_eq!(r.status(), 200);
    let f = s.json("/collections/projects/items/p1").await;
    assert!(f["properties"].get("investment_wan").is_none());
    assert_eq!(f["geometry"]["type"], "Point");

    // PUT replaces the whole feature.
    let put = |tag: &str, body: String| {
        s.client
            .put(s.url("/collections/projects/items/p1"))
            .header("content-type", "application/geo+json")
            .header("if-match", tag)
            .header("x-change-reason", "%E6%9B%B4%E6%AD%A3")
            .body(body)
            .send()
    };
    let r = put("\"2\"", feature("p1", DAZU_TOWN, square(inside, 0.001)))
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = put("\"3\"", feature("p1", DAZU_TOWN, square(inside, 0.001)))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"4\"");
    let f = s.json("/collections/projects/items/p1").await;
    assert_eq!(f["properties"]["status"], "planned");
    assert_eq!(f["geometry"]["type"], "Polygon");
    // Unknown features: 404; deleting with a stale version: 412.
    let r = s
        .client
        .delete(s.url("/collections/projects/items/nope"))
        .header("if-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .client
        .delete(s.url("/collections/projects/items/p1"))
        .header("if-match", "\"3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = s
        .client
        .delete(s.url("/collections/projects/items/p1"))
        .header("if-match", "\"4\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    s.problem("/collections/projects/items/p1", 404).await;

    // The history keeps every version, the deletion too, with who and why.
    let h = s.json("/collections/projects/items/p1/history").await;
    let versions = h["versions"].as_array().unwrap();
    let ops: Vec<&str> = versions.iter().map(|v| v["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["insert", "update", "update", "update", "delete"]);
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    assert_eq!(h["deleted"], true);
    assert_eq!(versions[1]["reason"], "开工");
    assert_eq!(versions[3]["reason"], "更正");
    assert!(versions.iter().all(|v| v["user"] == "admin"));
    assert!(versions
        .iter()
        .all(|v| v["request_id"].as_str().is_some_and(|r| !r.is_empty())));
    let v2 = s.json("/collections/projects/items/p1/history/2").await;
    assert_eq!(v2["properties"]["investment_wan"], 120);
    assert_eq!(v2["history"]["version"], 2);
    s.problem("/collections/projects/items/p1/history/9", 404)
        .await;
    s.problem("/collections/projects/items/p1/history/x", 400)
        .await;

    // Created again, it continues the numbering.
    let r = post(
        &s.client,
        &s,
        feature("p1", DAZU_TOWN, square(inside, 0.001)),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(etag(&s, "p1").await.starts_with("W/\"6."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_patches_with_one_if_match_exactly_one_wins() {
    let s = start().await;
    let inside = seat(&s, DAZU_TOWN).await;
    let r = post(
        &s.client,
        &s,
        feature("c1", DAZU_TOWN, square(inside, 0.001)),
    )
    .await;
    assert_eq!(r.status(), 201);
    let tag = etag(&s, "c1").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = s.client.clone();
        let url = s.url("/collections/projects/items/c1");
        let tag = tag.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .patch(url)
                .header("if-match", tag)
                .header("content-type", "application/merge-patch+json")
                .body(json!({"properties": {"writer": i}}).to_string())
                .send()
                .await
                .unwrap();
            (i, r.status().as_u16())
        }));
    }
    let mut ok = Vec::new();
    let mut stale = 0;
    for t in tasks {
        let (i, status) = t.await.unwrap();
        match status {
            200 => ok.push(i),
            412 => stale += 1,
            other => panic!("PATCH answered {other}"),
        }
    }
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(stale, 19);
    let f = s.json("/collections/projects/items/c1").await;
    assert_eq!(f["properties"]["writer"], ok[0]);
    let h = s.json("/collections/projects/items/c1/history").await;
    assert_eq!(h["versions"].as_array().unwrap().len(), 2);
    assert!(etag(&s, "c1").await.starts_with("W/\"2."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasons_private_reads_and_read_only() {
    let settings = HttpSettings {
        require_reason: true,
        private: true,
        ..HttpSettings::default()
    };
    let s = start_with(settings, true).await;
    // Private: reads need a token (any role); /healthz does not.
    let anon = reqwest::Client::new();
    let r = anon.get(s.url("/collections")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(
        anon.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let viewer = client_with(&user_token(&s.app, "v", "viewer", &[]).await);
    assert_eq!(
        viewer
            .get(s.url("/collections"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let inside = seat(&s, DAZU_TOWN).await;
    let r = post(
        &s.client,
        &s,
        feature("r1", DAZU_TOWN, square(inside, 0.001)),
    )
    .await;
    assert_eq!(r.status(), 400, "a POST without a reason");
    let r = s
        .client
        .post(s.url("/collections/projects/items"))
        .header("content-type", "application/geo+json")
        .header("x-change-reason", "new project")
        .body(feature("r1", DAZU_TOWN, square(inside, 0.001)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = s
        .client
        .patch(s.url("/collections/projects/items/r1"))
        .header("if-match", "\"1\"")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"status": "started"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "ReasonRequired");
    let r = s
        .client
        .patch(s.url("/collections/projects/items/r1"))
        .header("if-match", "\"1\"")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"status": "started"}, "reason": "开工"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let ro = start_with(
        HttpSettings {
            read_only: true,
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    let r = ro
        .client
        .delete(ro.url("/collections/towns/items/500111100"))
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        ro.json("/collections/towns/items/500111100").await["properties"]["name"],
        "龙水镇"
    );
}
