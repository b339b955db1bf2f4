//! Limits that hyper enforces before any of our code runs (a request target of 64 KiB or more,
//! more than 100 header fields, a head larger than hyper's read buffer) still answer with the
//! project's JSON problem, naming the limit. Spoken over a raw TCP stream, so that no client
//! library shapes the request or hides the answer.

mod common;

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` as is and reads the answer until the server closes the connection (or
/// `Connection: close` with a complete body). Returns (status, headers lower-cased, body).
async fn raw(base: &str, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let addr = base.trim_start_matches("http://");
    let s = TcpStream::connect(addr).await.expect("connect");
    // Written while the answer is read: the server may answer (and close) before it has read
    // all of a request over a limit.
    let (mut s, mut w) = s.into_split();
    let request = request.to_vec();
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&request).await;
        w
    });
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(done) = complete(&buf) {
                buf.truncate(done);
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("an answer within 30 s");
    writer.abort();
    parse(&buf)
}

/// The length of a complete response with a Content-Length in `buf`, if it is all there.
fn complete(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    (buf.len() >= end + len).then_some(end + len)
}

fn parse(buf: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)))
        + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, buf[end..].to_vec())
}

/// Asserts a JSON problem with `status` and returns its body.
fn problem(answer: (u16, Vec<(String, String)>, Vec<u8>), status: u16) -> serde_json::Value {
    let (got, headers, body) = answer;
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(got, status, "{headers:?} {text}");
    let ct = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no content type: {headers:?} {text}"));
    assert!(ct.starts_with("application/json"), "{ct}");
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse::<usize>().unwrap());
    assert_eq!(len, Some(body.len()), "{headers:?}");
    let doc: serde_json::Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(doc["code"].is_string(), "{doc}");
    assert!(doc["description"].is_string(), "{doc}");
    doc
}

#[tokio::test]
async fn a_request_target_of_64_kib_and_more_gets_the_json_414() {
    let s = common::start_with(Default::default(), false).await;
    // hyper refuses targets of 65,535 bytes and more itself; 32 KiB..64 KiB are ours.
    for len in [40 * 1024, 70 * 1024, 200 * 1024] {
        let target = format!("/collections/towns/items?name={}", "x".repeat(len));
        let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
        let doc = problem(raw(&s.base, req.as_bytes()).await, 414);
        assert_eq!(doc["code"], "UriTooLong", "{len}: {doc}");
        assert_eq!(doc["limit"], "uri-bytes", "{len}: {doc}");
        assert_eq!(doc["max"], yizhangtu::http::MAX_URI_BYTES, "{len}: {doc}");
    }
    // The server still answers afterwards.
    let (status, _, _) = raw(
        &s.base,
        b"GET /conformance HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn too_many_or_too_large_header_fields_get_the_json_431() {
    let s = common::start_with(Default::default(), false).await;
    // 150 small fields: over the count, far under the byte limit.
    let mut req = String::from("GET /conformance HTTP/1.1\r\nHost: t\r\n");
    for i in 0..150 {
        req.push_str(&format!("x-h{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let doc = problem(raw(&s.base, req.as_bytes()).await, 431);
    assert_eq!(doc["code"], "HeadersTooLarge", "{doc}");
    assert_eq!(doc["limit"], "header-count", "{doc}");
    assert_eq!(doc["max"], yizhangtu::http::MAX_HEADER_FIELDS, "{doc}");

    // One field larger than hyper's read buffer (about 400 KiB), and one of 40 KiB: under
    // hyper's buffer, over ours.
    for kib in [600, 40] {
        let req = format!(
            "GET /conformance HTTP/1.1\r\nHost: t\r\nx-pad: {}\r\n\r\n",
            "y".repeat(kib * 1024)
        );
        let doc = problem(raw(&s.base, req.as_bytes()).await, 431);
        assert_eq!(doc["code"], "HeadersTooLarge", "{kib}: {doc}");
        assert_eq!(doc["limit"], "header-bytes", "{kib}: {doc}");
        assert_eq!(
            doc["max"],
            yizhangtu::http::MAX_HEADER_BYTES,
            "{kib}: {doc}"
        );
    }
}

#[tokio::test]
async fn a_malformed_request_head_gets_a_json_400() {
    let s = common::start_with(Default::default(), false).await;
    let doc = problem(
        raw(
            &s.base,
            b"GET /conformance HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
        )
        .await,
        400,
    );
    assert_eq!(doc["code"], "BadRequest", "{doc}");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_gets_the_json_413() {
    let settings = yizhangtu::config::HttpSettings {
        max_body_bytes: 64 * 1024,
        ..Default::default()
    };
    let s = common::start_with(settings, false).await;
    // No Content-Length: the limit is only seen while the body streams in.
    let mut req = String::from(
        "POST /analysis/coverage HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
    );
    let chunk = " ".repeat(16 * 1024);
    for _ in 0..8 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let doc = problem(raw(&s.base, req.as_bytes()).await, 413);
    assert_eq!(doc["code"], "PayloadTooLarge", "{doc}");
    assert_eq!(doc["limit"], "body-bytes", "{doc}");
    assert_eq!(doc["max"], 64 * 1024, "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_streamed_past_the_limit_is_a_json_413_and_imports_nothing() {
    let settings = yizhangtu::config::HttpSettings {
        max_body_bytes: 64 * 1024,
        ..Default::default()
    };
    let s = common::start_with(settings, true).await;
    let count = |doc: serde_json::Value| doc["numberMatched"].as_u64().unwrap();
    let before = count(s.json("/collections/villages/items?limit=1").await);
    // Chunked, so that only the spooling sees the size: 80 KiB of a "zip".
    let mut req = format!(
        "POST /collections/villages/items HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/zip\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.token
    );
    let chunk = "P".repeat(16 * 1024);
    for _ in 0..5 {
        req.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    req.push_str("0\r\n\r\n");
    let doc = problem(raw(&s.base, req.as_bytes()).await, 413);
    assert_eq!(doc["code"], "PayloadTooLarge", "{doc}");
    assert_eq!(doc["limit"], "body-bytes", "{doc}");
    assert_eq!(doc["max"], 64 * 1024, "{doc}");
    assert_eq!(
        count(s.json("/collections/villages/items?limit=1").await),
        before
    );
}

#[tokio::test]
async fn the_limits_are_in_the_api_definition() {
    let s = common::start_with(Default::default(), false).await;
    let api = s.json("/api?f=json").await;
    let mut ops = 0;
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let r = &op["responses"];
            for status in ["414", "431"] {
                assert!(
                    r[status]["content"]["application/json"].is_object(),
                    "{method} {path}: no {status}"
                );
            }
            if op.get("requestBody").is_some() {
                assert!(r["413"].is_object(), "{method} {path}: no 413");
            }
            ops += 1;
        }
    }
    assert!(ops > 20, "{ops}");
    let d = api["paths"]["/collections/{collectionId}/items"]["get"]["responses"]["414"]
        ["description"]
        .as_str()
        .unwrap();
    assert!(
        d.contains(&yizhangtu::http::MAX_URI_BYTES.to_string()),
        "{d}"
    );
}
