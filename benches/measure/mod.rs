//! Process measurements the benchmarks share: the binary under test, a CLI run under GNU time,
//! a server on a free port, and a process's memory from /proc.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The binary to measure: `YIZHANGTU_BENCH_BIN`, else this build's.
pub fn binary() -> PathBuf {
    std::env::var_os("YIZHANGTU_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_yizhangtu")))
}

/// Megabytes (10^6 bytes).
pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// A command under `/usr/bin/time -v`: (seconds, peak RSS in kB, stdout). Panics when it fails.
pub fn timed(program: &Path, args: &[&std::ffi::OsStr]) -> (f64, u64, String) {
    let t = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(program)
        .args(args)
        .output()
        .expect("/usr/bin/time (GNU time) is needed for the CLI measurement");
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed: {err}", program.display());
    let kb = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (secs, kb, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `yizhangtu import` under `/usr/bin/time -v`: (seconds, peak RSS in kB).
pub fn cli_import(file: &Path, layer: &str, db: &Path) -> (f64, u64) {
    let (secs, kb, _) = timed(
        &binary(),
        &[
            "import".as_ref(),
            file.as_os_str(),
            "--layer".as_ref(),
            layer.as_ref(),
            "--db".as_ref(),
            db.as_os_str(),
        ],
    );
    (secs, kb)
}

/// A server process on a free port over `db` (not seeded); returns it with its base URL once
/// it listens, which is after it has loaded every feature.
pub fn start_server(db: &Path) -> (Child, String) {
    // 640,000 points with ids and a property are a little over the default 64 MiB.
    start_server_with(db, 128 << 20)
}

/// [`start_server`] taking bodies of up to `max_body_bytes`.
pub fn start_server_with(db: &Path, max_body_bytes: u64) -> (Child, String) {
    let mut child = Command::new(binary())
        .args(["serve", "--no-seed", "--listen", "127.0.0.1:0"])
        .args(["--max-body-bytes", &max_body_bytes.to_string(), "--db"])
        .arg(db)
        .env("YIZHANGTU_NO_NPM", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(at) = line.find("http://") {
            break line[at..]
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string();
        }
    };
    // Keep draining stdout so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// (VmHWM, VmRSS) of a process in kB.
pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
