//! Issue 15: the lean path in front of the router (`src/http/fast.rs`) answers plain
//! `GET …/items/{id}` exactly as the router does. Each request goes to two servers over the
//! same engine, `http::serve` (with the lean path) and the router alone, and the answers are
//! compared status, header for header (all but `date`) and byte for byte; `/metrics` says how
//! many the lean path answered.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{metric, start_with, TestServer};
use yizhangtu::config::HttpSettings;
use yizhangtu::http::AppState;

/// The router alone, without the lean path, on the same engine and settings as `s`.
async fn router_only(s: &TestServer, settings: HttpSettings) -> String {
    let state = AppState::new(Arc::clone(&s.app), settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = yizhangtu::http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Some feature ids of every layer, as the API lists them.
async fn some_ids(s: &TestServer) -> Vec<(String, String)> {
    let collections = s.json("/collections").await;
    let mut out = Vec::new();
    for c in collections["collections"].as_array().unwrap() {
        let c = c["id"].as_str().unwrap().to_string();
        let items = s.json(&format!("/collections/{c}/items?limit=3")).await;
        for f in items["features"].as_array().unwrap() {
            let id = match &f["id"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push((c.clone(), id));
        }
    }
    out
}

/// Status, headers but `date` (and `x-request-id` when `same_id` is false), and body.
type Answer = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

async fn answer(
    client: &reqwest::Client,
    url: &str,
    method: reqwest::Method,
    headers: &[(&str, &str)],
    same_id: bool,
) -> Answer {
    let mut req = client.request(method, url);
    // The answers' links and ETags name the host asked: the same for both servers.
    if !headers.iter().any(|(k, _)| *k == "host") {
        req = req.header("host", "yizhangtu.test");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let mut hs: Vec<(String, Vec<u8>)> = r
        .headers()
        .iter()
        .filter(|(k, _)| *k != "date" && (same_id || *k != "x-request-id"))
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    if !same_id {
        let id = r.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "request id {id}");
        hs.push(("x-request-id".into(), b"<uuid>".to_vec()));
    }
    (status, hs, r.bytes().await.unwrap().to_vec())
}

async fn lean_answers(client: &reqwest::Client, base: &str) -> u64 {
    metric(client, base, "yizhangtu_http_lean_answers_total").await as u64
}

/// Asks both servers `path` with each header set; returns how many answers were 200 and not
/// compressed (the lean path's share) and how many were compressed.
async fn compare(
    lean: &str,
    router: &str,
    path: &str,
    method: reqwest::Method,
    header_sets: &[Vec<(&str, &str)>],
) -> (usize, usize) {
    let client = reqwest::Client::new();
    let (mut ok, mut compressed) = (0, 0);
    for headers in header_sets {
        let same_id = headers.iter().any(|(k, _)| *k == "x-request-id");
        let a = answer(
            &client,
            &format!("{lean}{path}"),
            method.clone(),
            headers,
            same_id,
        )
        .await;
        let b = answer(
            &client,
            &format!("{router}{path}"),
            method.clone(),
            headers,
            same_id,
        )
        .await;
        assert_eq!(a.0, b.0, "status of {method} {path} with {headers:?}");
        assert_eq!(a.1, b.1, "headers of {method} {path} with {headers:?}");
        assert!(a.2 == b.2, "body of {method} {path} with {headers:?}");
        let encoded = a.1.iter().any(|(k, _)| k == "content-encoding");
        ok += usize::from(a.0 == 200 && !encoded);
        compressed += usize::from(encoded);
    }
    (ok, compressed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_feature_answers_are_the_routers_header_for_header() {
    let s = start_with(HttpSettings::default(), true).await;
    let router = router_only(&s, HttpSettings::default()).await;
    let ids = some_ids(&s).await;
    assert!(ids.len() >= 20, "{ids:?}");
    let bearer = format!("Bearer {}", s.token);
    // Requests the lean path answers.
    let plain: Vec<Vec<(&str, &str)>> = vec![
        vec![("x-request-id", "fast-path-1")],
        vec![],
        vec![("accept", "application/json"), ("x-request-id", "r2")],
        vec![("accept", "application/geo+json"), ("x-request-id", "r3")],
        vec![("accept", "*/*"), ("origin", "https://example.org")],
        vec![("authorization", &bearer), ("x-request-id", "r4")],
        vec![("host", "gis.example.org"), ("x-request-id", "r5")],
        // Answers under COMPRESS_FROM_BYTES are not compressed by the router either; longer
        // ones are left to it.
        vec![("accept-encoding", "gzip"), ("x-request-id", "r6")],
        vec![("accept-encoding", "br, gzip"), ("x-request-id", "r7")],
    ];
    let before = lean_answers(&s.client, &s.base).await;
    let (mut lean_expected, mut compressed) = (0, 0);
    for (c, id) in &ids {
        let path = format!("/collections/{c}/items/{id}");
        if id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            let (ok, encoded) =
                compare(&s.base, &router, &path, reqwest::Method::GET, &plain).await;
            lean_expected += ok;
            compressed += encoded;
        } else {
            // Ids that need percent-encoding go to the router; the answers still agree.
            let enc = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
            let path = format!("/collections/{c}/items/{enc}");
            compare(&s.base, &router, &path, reqwest::Method::GET, &plain).await;
        }
    }
    let lean = lean_answers(&s.client, &s.base).await - before;
    assert!(lean_expected >= 100, "{lean_expected}");
    assert!(compressed >= 2, "no feature long enough to be compressed");
    assert_eq!(lean as usize, lean_expected);

    // Requests left to the router: conditional, compressed, HTML, a query, a body, unknown
    // features and collections, HEAD. Same answers, none counted as lean.
    let (c, id) = ids
        .iter()
        .find(|(_, id)| id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap()
        .clone();
    let path = format!("/collections/{c}/items/{id}");
    let etag = reqwest::Client::new()
        .get(format!("{}{path}", s.base))
        .header("host", "yizhangtu.test")
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let before = lean_answers(&s.client, &s.base).await;
    let others: Vec<Vec<(&str, &str)>> = vec![
        vec![("if-none-match", &etag), ("x-request-id", "o1")],
        vec![("accept", "text/html"), ("x-request-id", "o3")],
        vec![
            ("x-forwarded-host", "proxy.example.org"),
            ("x-request-id", "o4"),
        ],
        vec![("content-length", "0"), ("x-request-id", "o5")],
    ];
    assert_eq!(
        compare(&s.base, &router, &path, reqwest::Method::GET, &others)
            .await
            .0,
        3,
        "all but the 304"
    );
    let one: Vec<Vec<(&str, &str)>> = vec![vec![("x-request-id", "o6")]];
    for p in [
        format!("{path}?f=json"),
        format!("/collections/{c}/items/no-such-feature"),
        "/collections/no-such-layer/items/1".to_string(),
        format!("{path}/"),
    ] {
        compare(&s.base, &router, &p, reqwest::Method::GET, &one).await;
    }
    compare(&s.base, &router, &path, reqwest::Method::HEAD, &one).await;
    assert_eq!(
        lean_answers(&s.client, &s.base).await,
        before,
        "none by the lean path"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_forwarded_headers_and_private_servers_answer_as_the_router() {
    let trusting = HttpSettings {
        trust_forwarded_headers: true,
        ..HttpSettings::default()
    };
    let s = start_with(trusting.clone(), true).await;
    let router = router_only(&s, trusting).await;
    let (c, id) = some_ids(&s).await.swap_remove(0);
    let path = format!("/collections/{c}/items/{id}");
    let sets: Vec<Vec<(&str, &str)>> = vec![
        vec![("x-request-id", "t1")],
        vec![
            ("x-forwarded-host", "gis.example.org"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "t2"),
        ],
    ];
    let before = lean_answers(&s.client, &s.base).await;
    assert_eq!(
        compare(&s.base, &router, &path, reqwest::Method::GET, &sets)
            .await
            .0,
        2
    );
    assert_eq!(lean_answers(&s.client, &s.base).await, before + 2);

    // A private server checks every request's token: the router does.
    let private = HttpSettings {
        private: true,
        ..HttpSettings::default()
    };
    let p = start_with(private.clone(), true).await;
    let router = router_only(&p, private).await;
    let bearer = format!("Bearer {}", p.token);
    let sets: Vec<Vec<(&str, &str)>> = vec![
        vec![("x-request-id", "p1")],
        vec![("authorization", &bearer), ("x-request-id", "p2")],
    ];
    let (c, id) = some_ids(&p).await.swap_remove(0);
    let path = format!("/collections/{c}/items/{id}");
    let (ok, _) = compare(&p.base, &router, &path, reqwest::Method::GET, &sets).await;
    assert_eq!(ok, 1, "only with the token");
    assert_eq!(lean_answers(&p.client, &p.base).await, 0);
}

/// Reads one answer from `conn` (its head and its `content-length` body) after the bytes in
/// `pending`, which keeps what was read past it. `None` when the connection closed first.
async fn read_answer(
    conn: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    let head_end = loop {
        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if read_more(conn, pending).await == 0 {
            assert!(pending.is_empty(), "a partial answer: {pending:?}");
            return None;
        }
    };
    let head = String::from_utf8(pending[..head_end].to_vec()).unwrap();
    let length = common::content_length(&head);
    while pending.len() < head_end + length {
        assert!(read_more(conn, pending).await > 0, "closed in a body");
    }
    let body = pending[head_end..head_end + length].to_vec();
    pending.drain(..head_end + length);
    Some((head, body))
}

/// Reads what `conn` has next into `pending`; how many bytes (0: closed).
async fn read_more(conn: &mut tokio::net::TcpStream, pending: &mut Vec<u8>) -> usize {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 16 * 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), conn.read(&mut chunk))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    pending.extend_from_slice(&chunk[..n]);
    n
}

/// An answer's head without its `date` line.
fn dateless(head: &str) -> String {
    head.lines()
        .filter(|l| !l.starts_with("date: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The id in a feature's GeoJSON.
fn feature_id(body: &[u8]) -> String {
    let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
    match &doc["id"] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_answers_pipelined_requests_then_hands_the_connection_to_hyper() {
    use tokio::io::AsyncWriteExt;
    let s = start_with(HttpSettings::default(), true).await;
    let ids: Vec<(String, String)> = some_ids(&s)
        .await
        .into_iter()
        .filter(|(_, id)| id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .collect();
    let ((c, a), (c2, b)) = (ids[0].clone(), ids[1].clone());
    assert_ne!((&c, &a), (&c2, &b));
    let addr = s.base.trim_start_matches("http://").to_string();
    let get = |path: &str, rid: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: yizhangtu.test\r\nx-request-id: {rid}\r\n{extra}\r\n")
    };
    let first = format!("/collections/{c}/items/{a}");
    let second = format!("/collections/{c2}/items/{b}");

    // Four requests in one write: two lean ones (the front answers them), one the router must
    // answer (the connection goes to hyper there), and the first again (hyper's lean path).
    let [lean0, front0, handed0] = front_counts(&addr).await;
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // (`Connection: keep-alive`, as browsers send it, keeps a request the front's.)
    let batch = [
        get(&first, "q1", "Connection: keep-alive\r\n"),
        get(&second, "q2", ""),
        get("/collections", "q3", ""),
        get(&first, "q1", "Connection: keep-alive\r\n"),
    ]
    .concat();
    conn.write_all(batch.as_bytes()).await.unwrap();
    let mut pending = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(read_answer(&mut conn, &mut pending).await.unwrap());
    }
    for (head, _) in &answers {
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    }
    assert_eq!(feature_id(&answers[0].1), a);
    assert_eq!(feature_id(&answers[1].1), b);
    assert!(
        answers[1].0.contains("\r\nx-request-id: q2\r\n"),
        "{}",
        answers[1].0
    );
    let listing: serde_json::Value = serde_json::from_slice(&answers[2].1).unwrap();
    assert!(listing["collections"].as_array().unwrap().len() >= 5);
    // The front's bytes are hyper's: the same head, field for field and in the same order, and
    // the same body.
    assert_eq!(dateless(&answers[0].0), dateless(&answers[3].0));
    assert_eq!(answers[0].1, answers[3].1);
    let date = |head: &str| {
        let line = head.lines().find_map(|l| l.strip_prefix("date: ")).unwrap();
        httpdate::parse_http_date(line).unwrap()
    };
    let gap = date(&answers[3].0)
        .duration_since(date(&answers[0].0))
        .unwrap_or_default();
    assert!(gap.as_secs() <= 2, "{gap:?}");
    // The batch's connection, and this reading's.
    assert_eq!(
        front_counts(&addr).await,
        [lean0 + 3, front0 + 2, handed0 + 2]
    );

    // A request head split across two writes: the front reads on to its end.
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let whole = get(&second, "q4", "");
    let (head, tail) = whole.split_at(20);
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    conn.write_all(tail.as_bytes()).await.unwrap();
    let mut pending = Vec::new();
    let (h, body) = read_answer(&mut conn, &mut pending).await.unwrap();
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert_eq!(feature_id(&body), b);
    conn.write_all(get(&first, "q5", "").as_bytes())
        .await
        .unwrap();
    let (_, body) = read_answer(&mut conn, &mut pending).await.unwrap();
    assert_eq!(feature_id(&body), a);

    // `Connection: close` and HTTP/1.0 are hyper's: each answers and then closes.
    for request in [
        get(&first, "q6", "Connection: close\r\n"),
        format!("GET {first} HTTP/1.0\r\nHost: yizhangtu.test\r\n\r\n"),
    ] {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut pending = Vec::new();
        let (h, body) = read_answer(&mut conn, &mut pending).await.unwrap();
        assert!(h.contains(" 200 OK\r\n"), "{h}");
        assert_eq!(feature_id(&body), a);
        assert!(
            read_answer(&mut conn, &mut pending).await.is_none(),
            "{request}"
        );
    }

    // HTTP/2 with prior knowledge is hyper's: its first frame answers the client's preface
    // with SETTINGS (frame type 4 on stream 0).
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut frame = Vec::new();
    while frame.len() < 9 {
        assert!(
            read_more(&mut conn, &mut frame).await > 0,
            "closed: {frame:?}"
        );
    }
    assert_eq!(
        (frame[3], &frame[5..9]),
        (4, &[0u8, 0, 0, 0][..]),
        "{frame:?}"
    );

    // A head httparse rejects is hyper's too: its 400, as a JSON problem (`limits.rs`).
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    conn.write_all(b"GET /collections/x/items/1 HTTP/1.1\r\nBad Field: 1\r\n\r\n")
        .await
        .unwrap();
    let mut pending = Vec::new();
    let (h, body) = read_answer(&mut conn, &mut pending).await.unwrap();
    assert!(h.starts_with("HTTP/1.1 400 "), "{h}");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "BadRequest", "{problem}");
    // The batch's connection, the two that close, HTTP/2's, the bad head's and two readings.
    assert_eq!(
        front_counts(&addr).await,
        [lean0 + 7, front0 + 4, handed0 + 7]
    );
}

/// The lean path's answers, the front's and its handovers, from `/metrics` read on a
/// connection of its own (`Connection: close`, so one handover a reading, where a pooling
/// client may open a connection or not).
async fn front_counts(addr: &str) -> [u64; 3] {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: yizhangtu.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    [
        "yizhangtu_http_lean_answers_total",
        "yizhangtu_http_front_answers_total",
        "yizhangtu_http_front_handovers_total",
    ]
    .map(|name| common::metric_value(&text, name) as u64)
}
