//! PostgreSQL test support: the server to test against, a private throwaway cluster a test may
//! stop and start (`tools/pg-test-server.sh` in a temporary directory, on a port of its own) and
//! `yizhangtu serve` processes killed when dropped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{missing_tool, repo, TestServer};

/// The PostgreSQL server to test against, or `None` after [`missing_tool`] allowed a skip:
/// `YIZHANGTU_TEST_PG`, or the cluster `tools/pg-test-server.sh start` runs in target/pg-test.
pub fn pg_server() -> Option<String> {
    if let Some(url) = super::test_pg() {
        return Some(url);
    }
    let out = std::process::Command::new(repo().join("tools/pg-test-server.sh"))
        .arg("url")
        .arg(repo().join("target/pg-test"))
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        _ => {
            missing_tool(
                "a PostgreSQL server with PostGIS (set YIZHANGTU_TEST_PG=postgres://…, or run \
                 tools/pg-test-server.sh start)",
            );
            None
        }
    }
}

/// A throwaway cluster of the test's own (so that stopping it disturbs no other test), stopped
/// and its directory deleted when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    script: PathBuf,
    /// Its `yizhangtu` database (with PostGIS).
    pub url: String,
}

impl Cluster {
    /// Initialises and starts a cluster, or `None` when [`pg_server`] found no PostgreSQL to
    /// test with (and a skip was allowed).
    pub fn start() -> Option<Cluster> {
        pg_server()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = Cluster {
            dir,
            port,
            script: repo().join("tools/pg-test-server.sh"),
            url: String::new(),
        };
        c.url = c.run("start");
        Some(c)
    }

    /// Runs `pg-test-server.sh CMD` on this cluster; returns its standard output.
    pub fn run(&self, cmd: &str) -> String {
        let out = std::process::Command::new(&self.script)
            .args([cmd, self.dir.path().to_str().unwrap()])
            .env("PGTEST_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg-test-server.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// A `yizhangtu serve` process, killed when dropped.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `yizhangtu serve ARGS --listen 127.0.0.1:0`; returns it and its base URL once it
/// listens (blocking: call it from `spawn_blocking`).
pub fn serve_process(args: &[&str]) -> (Process, String) {
    use std::io::BufRead;
    let mut child = spawn_serve(args);
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(at) = line.find(" at http://") {
            let url = line[at + 4..].trim_end_matches('/').to_string();
            // Keep reading: a closed pipe would end the process at its next line.
            std::thread::spawn(move || lines.for_each(drop));
            return (process, url);
        }
    }
    panic!("serve {args:?} ended without saying where it listens");
}

/// `yizhangtu serve ARGS --listen 127.0.0.1:0` with its standard output piped (where it says
/// it listens) and its standard error dropped.
pub fn spawn_serve(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_yizhangtu"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("YIZHANGTU_NO_NPM", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start yizhangtu serve")
}

/// Waits (at most a generous minute: this is no speed test) until `path` on `s` satisfies `ok`.
pub async fn eventually(
    s: &TestServer,
    path: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually_at(&s.client, &s.url(path), ok).await
}

/// [`eventually`] for any URL (another process), read with `client`; a failed request or a
/// non-JSON answer counts as not yet.
pub async fn eventually_at(
    client: &reqwest::Client,
    url: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let v = match client.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or(serde_json::Value::Null),
            Err(_) => serde_json::Value::Null,
        };
        if ok(&v) || start.elapsed() > Duration::from_secs(60) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
