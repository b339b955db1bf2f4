//! What the map and the HTML pages need from the server, without a browser: `GET /me` for the
//! sign-in box, `/map/config.json` (the 天地图 key from `--tianditu-key`), errors as HTML pages to
//! whoever asks for HTML (and declared so in `/api`), the items page's Chinese headers with the
//! name first, and coverage by village as one pivot table.

mod common;

use yizhangtu::config::HttpSettings;

#[tokio::test]
async fn me_names_the_user_and_their_units() {
    let s = common::start().await;
    let r = reqwest::get(s.url("/me")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"yizhangtu\""
    );
    let r = reqwest::Client::new()
        .get(s.url("/me"))
        .bearer_auth("yzt_nosuchid_nosuchsecret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let token = common::user_token(&s.app, "wulong", "editor", &["500156", "500111100"]).await;
    let me: serde_json::Value = common::client_with(&token)
        .get(s.url("/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "wulong");
    assert_eq!(me["role"], "editor");
    assert_eq!(me["scoped"], true);
    let scope = me["scope"].as_array().unwrap();
    assert_eq!(scope.len(), 2);
    assert!(scope.contains(&serde_json::json!({"code": "500156", "name": "武隆区"})));
    assert!(scope.contains(&serde_json::json!({"code": "500111100", "name": "龙水镇"})));
    // The admin of the test server is never scoped.
    let admin = s.json("/me").await;
    assert_eq!(admin["role"], "admin");
    assert_eq!(admin["scoped"], false);
}

#[tokio::test]
async fn the_map_gets_the_tianditu_key_from_the_server() {
    let s = common::start().await;
    assert!(s.json("/map/config.json").await["tianditu_key"].is_null());
    let keyed = common::start_with(
        HttpSettings {
            tianditu_key: Some("abc123".into()),
            ..HttpSettings::default()
        },
        true,
    )
    .await;
    assert_eq!(
        keyed.json("/map/config.json").await["tianditu_key"],
        "abc123"
    );
}

#[tokio::test]
async fn errors_are_html_pages_for_whoever_asks_for_html() {
    let s = common::start().await;
    let client = reqwest::Client::new();
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for (path, accept, status) in [
        ("/collections/projects/items?f=html&limit=abc", "*/*", 400),
        ("/collections/nosuchlayer/items?f=html", "*/*", 404),
        ("/areas/nosuchplace", browser, 404),
        ("/collections/projects/items?limit=0", browser, 400),
    ] {
        let r = client
            .get(s.url(path))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("</html>") && body.contains(&status.to_string()),
            "{path}: {body}"
        );
    }
    // API clients (no f, JSON or any Accept) keep the JSON problem, f=json too.
    let p = s
        .problem("/collections/projects/items?limit=abc", 400)
        .await;
    assert_eq!(p["parameter"], "limit");
    let r = client
        .get(s.url("/collections/projects/items?f=json&limit=abc"))
        .header("accept", browser)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    // 401s keep their WWW-Authenticate as pages.
    let r = client
        .post(s.url("/collections/projects/items?f=html"))
        .header("content-type", "application/geo+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn the_api_declares_html_for_every_json_error() {
    let s = common::start().await;
    let api = s.json("/api?f=json").await;
    let mut errors = 0;
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().into_iter().flatten() {
                let Some(content) = r["content"].as_object() else {
                    continue;
                };
                let error = status.starts_with('4') || status.starts_with('5');
                if error && content.contains_key("application/json") {
                    errors += 1;
                    assert!(
                        content.contains_key("text/html"),
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    assert!(errors > 50, "{errors}");
    assert!(api["paths"]["/me"]["get"]["responses"]["401"].is_object());
    assert!(api["paths"]["/map/config.json"]["get"].is_object());
}

#[tokio::test]
async fn items_pages_have_chinese_headers_and_the_name_first() {
    let s = common::start().await;
    let r = reqwest::get(s.url("/collections/towns/items?f=html&limit=3"))
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    let table = &body[body.find("<table><tr>").expect("a table")..];
    let first = &table[..table.find("</tr>").unwrap()];
    assert!(
        first.starts_with("<table><tr><th>名称 <span class=\"muted\">name</span></th><th>编号 <span class=\"muted\">id</span></th><th>几何类型"),
        "{first}"
    );
    assert!(first.contains("行政区划代码"), "{first}");
    // The first row's first cell is the town's name, linked to it.
    let row = &table[table.find("</tr><tr>").unwrap() + 9..];
    let towns = s.json("/collections/towns/items?limit=3").await;
    let name = towns["features"][0]["properties"]["name"].as_str().unwrap();
    let id = towns["features"][0]["id"].as_str().unwrap();
    assert!(
        row.starts_with(&format!(
            "<td><a href=\"/collections/towns/items/{id}?f=html\">{name}</a></td>"
        )),
        "{row}"
    );
}

#[tokio::test]
async fn coverage_by_village_is_one_pivot_table() {
    let s = common::start().await;
    let path = "/areas/500111100/coverage?layers=vegetable_bases,projects&by=village";
    let json = s.json(path).await;
    let villages = json["breakdown"].as_array().unwrap();
    let page = reqwest::get(s.url(&format!("{path}&f=html")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let alone =
        reqwest::get(s.url("/areas/500111100/coverage?layers=vegetable_bases,projects&f=html"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert_eq!(
        page.matches("<table").count(),
        alone.matches("<table").count() + 1,
        "one table for the breakdown"
    );
    let pivot = &page[page.find("<table class=\"pivot\">").unwrap()..];
    let pivot = &pivot[..pivot.find("</table>").unwrap()];
    assert_eq!(pivot.matches("<tr>").count(), villages.len() + 1);
    for v in villages {
        let name = v["name"].as_str().unwrap();
        let code = v["code"].as_str().unwrap();
        assert!(
            pivot.contains(&format!("<tr><td>{name}</td><td>{code}</td>")),
            "{name}"
        );
        // Each cell is the village's covered 亩 for the layer, as the JSON gives it (0.1 亩).
        for l in v["layers"].as_array().unwrap() {
            if l["feature_count"].as_u64().unwrap() == 0 {
                continue;
            }
            let mu = format!("{:.1}", l["covered_area"]["mu"].as_f64().unwrap());
            let row = &pivot[pivot.find(&format!("<td>{code}</td>")).unwrap()..];
            let row = &row[..row.find("</tr>").unwrap()];
            assert!(
                row.contains(&format!("项\">{mu}")),
                "{name} {}: {row}",
                l["layer"]
            );
        }
    }
}
