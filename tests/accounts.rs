//! Accounts (issue 11): users and tokens from the command line, bearer sign-in, rotation and
//! revocation, failed sign-ins limited and recorded; tokens never logged nor stored in clear.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;
use yizhangtu::http::AppState;

use common::{client_with, run, start};

/// A server over the database file `db`; returns its base URL.
async fn serve(db: &str) -> (String, Arc<App>) {
    let app = Arc::new(App::open(db, false, None).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(Arc::clone(&app), HttpSettings::default());
    tokio::spawn(async move { yizhangtu::http::serve(listener, state).await.unwrap() });
    (format!("http://{addr}"), app)
}

/// `user add` / `token rotate`: the token is the only line on stdout.
fn token_of(out: &(bool, String, String)) -> String {
    assert!(out.0, "{}", out.2);
    let t = out.1.trim().to_string();
    assert!(t.starts_with("yzt_") && !t.contains('\n'), "{t}");
    t
}

async fn post_status(client: &reqwest::Client, base: &str) -> u16 {
    let body = r#"{"type": "Feature", "id": "a1", "properties": {"name": "点"}, "geometry": {"type": "Point", "coordinates": [105.72, 29.70]}}"#;
    client
        .post(format!("{base}/collections/parcels/items"))
        .header("content-type", "application/geo+json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let db = db.to_str().unwrap();
    // An empty layer to write into (no seeding: quick).
    let (ok, _, err) = run(&["layers", "--db", db]);
    assert!(ok, "{err}");
    let admin = token_of(&run(&["user", "add", "ann", "--role", "admin", "--db", db]));
    let editor = token_of(&run(&[
        "user",
        "add",
        "ed",
        "--role",
        "editor",
        "--districts",
        "500111",
        "--db",
        db,
    ]));
    assert_ne!(admin, editor);
    // Refused: a taken name, an unknown role, a bad code, a scoped admin.
    for args in [
        vec!["user", "add", "ann", "--role", "viewer"],
        vec!["user", "add", "x", "--role", "root"],
        vec![
            "user",
            "add",
            "x",
            "--role",
            "editor",
            "--districts",
            "5001",
        ],
        vec![
            "user",
            "add",
            "x",
            "--role",
            "admin",
            "--districts",
            "500111",
        ],
    ] {
        let mut a = args.clone();
        a.extend(["--db", db]);
        let (ok, _, err) = run(&a);
        assert!(!ok, "{args:?}");
        assert!(err.contains("error"), "{err}");
    }
    let (ok, list, _) = run(&["user", "list", "--db", db]);
    assert!(ok);
    assert!(list.contains("ann\tadmin\t*\tactive"), "{list}");
    assert!(list.contains("ed\teditor\t500111\tactive"), "{list}");
    assert!(!list.contains("yzt_"), "{list}");

    // Not in the database in clear: neither the token nor its secret part.
    let bytes = std::fs::read(db).unwrap();
    let wal = std::fs::read(format!("{db}-wal")).unwrap_or_default();
    for t in [&admin, &editor] {
        let secret = t.rsplit('_').next().unwrap();
        for hay in [&bytes, &wal] {
            assert!(!hay.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }

    let (base, app) = serve(db).await;
    app.import(
        &[yizhangtu::model::Layer::untitled("parcels")],
        vec![],
        yizhangtu::store::ImportMode::Upsert,
    )
    .await
    .unwrap();
    assert_eq!(post_status(&client_with(&admin), &base).await, 201);

    // Rotation: the old token stops working, the new one works.
    let rotated = token_of(&run(&["token", "rotate", "ann", "--db", db]));
    assert_eq!(post_status(&client_with(&admin), &base).await, 401);
    assert_eq!(post_status(&client_with(&rotated), &base).await, 201);
    // Revocation: at once.
    let (ok, _, err) = run(&["user", "revoke", "ann", "--db", db]);
    assert!(ok, "{err}");
    assert_eq!(post_status(&client_with(&rotated), &base).await, 401);
    let (ok, _, _) = run(&["user", "revoke", "ann", "--db", db]);
    assert!(!ok, "revoking twice");
    let (ok, list, _) = run(&["user", "list", "--db", db]);
    assert!(ok && list.contains("ann\tadmin\t*\trevoked"), "{list}");
    let (ok, _, _) = run(&["token", "rotate", "ann", "--db", db]);
    assert!(!ok, "a revoked user gets no new token");

    // Every user change is in the audit log, and the chain holds.
    let rows = common::audit(&app).await;
    let actions: Vec<&str> = rows.iter().map(|r| r.entry.action.as_str()).collect();
    for a in ["user add", "token rotate", "user revoke", "sign-in"] {
        assert!(actions.contains(&a), "{actions:?}");
    }
    let (ok, out, err) = run(&["audit", "verify", "--db", db]);
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_limited_per_address_and_audited() {
    let s = start().await;
    let bad = client_with(
        "yzt_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000",
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = bad
            .post(s.url("/collections/projects/items"))
            .header("content-type", "application/geo+json")
            .body("{}")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    // While the address is limited even a good token waits (the limit is per address).
    let r = s
        .client
        .post(s.url("/collections/projects/items"))
        .header("content-type", "application/geo+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Tokens not shaped like ours cannot be guessed: a plain 401, and no more audit rows.
    let r = client_with("not-a-token")
        .post(s.url("/collections/projects/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let audit = common::audit(&s.app).await;
    let failed = audit.iter().filter(|r| r.entry.action == "sign-in").count();
    assert_eq!(failed, 10);
    assert!(audit
        .iter()
        .filter(|r| r.entry.action == "sign-in")
        .all(|r| r.entry.address.as_deref() == Some("127.0.0.1")
            && r.entry.outcome.starts_with("refused")));
}

/// The binary, with every log line switched on, never prints a token; a fresh server says how
/// to create the first admin.
#[test]
fn tokens_are_never_logged_and_a_fresh_server_explains_the_first_admin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let db = db.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
        .args(["serve", "--no-seed", "--listen", "127.0.0.1:0", "--db", db])
        .env("RUST_LOG", "trace")
        .env("YIZHANGTU_NO_NPM", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let mut url = None;
    for _ in 0..20 {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        first.push_str(&line);
        if let Some(u) = line.split(" at ").nth(1).filter(|_| url.is_none()) {
            url = Some(u.trim().trim_end_matches('/').to_string());
        }
        if first.contains("Authorization") {
            break;
        }
    }
    assert!(
        first.contains("yizhangtu user add NAME --role admin"),
        "{first}"
    );
    let url = url.expect("the server's address");
    let token = token_of(&run(&["user", "add", "ann", "--role", "admin", "--db", db]));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        let c = client_with(&token);
        let mut last = 0;
        for _ in 0..50 {
            last = c
                .post(format!("{url}/collections/nothing/items"))
                .header("content-type", "application/geo+json")
                .header("x-change-reason", "log test")
                .body("{}")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if last != 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // And a bad one, which is audited.
        client_with(&format!("{token}0"))
            .post(format!("{url}/collections/nothing/items"))
            .send()
            .await
            .unwrap();
        last
    });
    assert_eq!(status, 404, "signed in, the layer does not exist");
    let _ = child.kill();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(
        err.contains("TRACE") || err.contains("DEBUG"),
        "trace logging is on: {err}"
    );
    let secret = token.rsplit('_').next().unwrap();
    for text in [&first, &rest, &err] {
        assert!(!text.contains(secret), "a token was printed");
    }
}
