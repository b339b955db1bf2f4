//! Single sign-on (issue 11, item 1): JWTs from a bureau's identity provider, verified against
//! its JWKS (a file or a URL), mapped to a role and a district scope; every way a token can be
//! wrong is a 401 saying why, and is audited. The keys are test-only ones in tests/fixtures/jwt.

mod common;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use yizhangtu::auth::jwt::{JwtArgs, JwtVerifier};
use yizhangtu::config::HttpSettings;

use common::{client_with, repo, start_with, TestServer};

const ISSUER: &str = "https://sso.example.gov.cn/realms/dazu";

fn fixture(name: &str) -> std::path::PathBuf {
    repo().join("tests/fixtures/jwt").join(name)
}

fn args(jwks: String) -> JwtArgs {
    JwtArgs {
        jwt_jwks: Some(jwks),
        jwt_issuer: Some(ISSUER.into()),
        jwt_audience: Some("yizhangtu".into()),
        jwt_role_claim: "role".into(),
        jwt_scope_claim: "districts".into(),
        jwt_name_claim: "preferred_username".into(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with the key in `key_file` (PKCS#8 PEM) under `kid`.
fn sign(key_file: &str, kid: &str, claims: &Value) -> String {
    let pem = std::fs::read(fixture(key_file)).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(&header, claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

fn claims(user: &str, role: &str, districts: Value) -> Value {
    json!({
        "iss": ISSUER, "aud": "yizhangtu", "sub": format!("uuid-{user}"),
        "preferred_username": user, "role": role, "districts": districts,
        "iat": now(), "exp": now() + 600,
    })
}

async fn server() -> TestServer {
    let verifier =
        JwtVerifier::from_args(&args(fixture("jwks.json").to_string_lossy().into_owned()))
            .await
            .unwrap()
            .unwrap();
    let settings = HttpSettings {
        jwt: Some(Arc::new(verifier)),
        ..HttpSettings::default()
    };
    start_with(settings, true).await
}

/// A point feature at the seat of town `code`.
async fn feature_at(s: &TestServer, id: &str, code: &str) -> String {
    let seat = s
        .json(&format!("/collections/town_seats/items/{code}"))
        .await;
    json!({"type": "Feature", "id": id,
           "properties": {"name": format!("项目 {id}"), "admin_code": code},
           "geometry": seat["geometry"]})
    .to_string()
}

async fn post(s: &TestServer, token: &str, body: String) -> (u16, Value) {
    let r = client_with(token)
        .post(s.url("/collections/projects/items"))
        .header("content-type", "application/geo+json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_roles_and_districts_come_from_the_claims() {
    let s = server().await;
    let editor = sign(
        "idp.pem",
        "idp-2026",
        &claims("zhang.san", "editor", json!(["500111"])),
    );
    // 龙水镇 (大足) is in the editor's scope; 白马镇 (武隆) is not.
    let (status, body) = post(&s, &editor, feature_at(&s, "sso1", "500111100").await).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(&s, &editor, feature_at(&s, "sso2", "500156101").await).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        s.get("/collections/projects/items/sso1").await.status(),
        200
    );
    assert_eq!(
        s.get("/collections/projects/items/sso2").await.status(),
        404
    );

    // The audit log names the user with the issuer; an editor cannot read it, an admin can.
    let r = client_with(&editor)
        .get(s.url("/audit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let admin = sign(
        "idp.pem",
        "idp-2026",
        &claims("li.si", "admin", json!(null)),
    );
    let r = client_with(&admin)
        .get(s.url("/audit?limit=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let audit: Value = r.json().await.unwrap();
    let rows = audit
        .as_array()
        .or_else(|| audit["rows"].as_array())
        .unwrap();
    let user = format!("zhang.san@{ISSUER}");
    // POST …/items is an import of one feature.
    let created = rows
        .iter()
        .find(|r| r["user"] == user && r["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no audit row for the POST in {audit}"));
    assert_eq!(created["role"], "editor");
    assert_eq!(created["layer"], "projects");
    assert_eq!(created["ids"], json!(["inserted 1, updated 0, removed 0"]));
    assert!(rows
        .iter()
        .any(|r| r["user"] == user && r["outcome"].as_str().unwrap().starts_with("refused")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_jwt_is_a_401_saying_why() {
    let s = server().await;
    let ok = claims("wang.wu", "editor", json!("500111"));
    let mut expired = ok.clone();
    expired["exp"] = json!(now() - 3600);
    let mut other_issuer = ok.clone();
    other_issuer["iss"] = json!("https://evil.example.com");
    let mut other_audience = ok.clone();
    other_audience["aud"] = json!("someone-else");
    let hs256 = {
        // A token that picks HS256 hoping the public key is used as a shared secret.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("idp-2026".into());
        let x = "Gx7Wxh7n0qIHvGPJOj5XbhMz-hvCfQRNSsMgcxuLEMY";
        encode(&header, &ok, &EncodingKey::from_secret(x.as_bytes())).unwrap()
    };
    let cases = [
        (
            sign("other.pem", "idp-2026", &ok),
            "signature does not verify",
        ),
        (sign("other.pem", "rogue", &ok), "no key 'rogue'"),
        (sign("idp.pem", "idp-2026", &expired), "expired"),
        (sign("idp.pem", "idp-2026", &other_issuer), "issuer"),
        (sign("idp.pem", "idp-2026", &other_audience), "audience"),
        (hs256, "signed with HS256"),
        (
            sign("idp.pem", "idp-2026", &claims("a", "root", json!(null))),
            "'role' claim",
        ),
        (
            sign(
                "idp.pem",
                "idp-2026",
                &claims("a", "editor", json!(["5001"])),
            ),
            "'districts' claim",
        ),
        (
            sign("idp.pem", "idp-2026", &claims("", "editor", json!(null))),
            "'preferred_username'",
        ),
    ];
    for (token, needle) in &cases {
        let (status, body) = post(&s, token, feature_at(&s, "bad", "500111100").await).await;
        assert_eq!(status, 401, "{needle}: {body}");
        let d = body["description"].as_str().unwrap();
        assert!(d.contains("JWT") && d.contains(needle), "{needle}: {d}");
    }
    assert_eq!(s.get("/collections/projects/items/bad").await.status(), 404);
    let refused = common::audit(&s.app)
        .await
        .into_iter()
        .filter(|r| r.entry.action == "sign-in" && r.entry.outcome.contains("JWT"))
        .count();
    assert_eq!(refused, cases.len());
}

/// The key set from a URL, as identity providers publish it; a bad source stops `serve` with a
/// message naming the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_can_come_from_a_url() {
    let jwks = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let j = jwks.clone();
            async move { ([("content-type", "application/json")], j) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let v = JwtVerifier::from_args(&args(url.clone()))
        .await
        .unwrap()
        .unwrap();
    let token = sign(
        "idp.pem",
        "idp-2026",
        &claims("zhao", "steward", json!(["500111100"])),
    );
    let p = v.verify(&token).await.unwrap();
    assert_eq!(p.name, format!("zhao@{ISSUER}"));
    assert_eq!(p.role.as_str(), "steward");
    assert_eq!(p.scope, vec!["500111100".to_string()]);

    let missing = JwtVerifier::from_args(&args("/nonexistent/jwks.json".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("--jwt-jwks") && missing.contains("cannot read"),
        "{missing}"
    );
    let not_jwks = JwtVerifier::from_args(&args(url.replace("/certs", "/nothing")))
        .await
        .unwrap_err()
        .to_string();
    assert!(not_jwks.contains("404"), "{not_jwks}");
}
