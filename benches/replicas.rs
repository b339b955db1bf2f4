//! Replicas on one PostgreSQL (issue 13): items and tiles throughput of one process against two
//! `serve --replica` processes (per process and in all), replication lag p50/p99 while edits go
//! to the primary at 100/s, and the engine's start from 1,000,000 features on PostgreSQL and on
//! SQLite. Run with `cargo bench --bench replicas`; the database is `YIZHANGTU_BENCH_PG`
//! (a postgres:// URL of any database on a server with PostGIS) or the cluster
//! `tools/pg-test-server.sh start` runs. `REPLICAS_SECONDS` sets each phase's length (10),
//! `REPLICAS_START_FEATURES` the start measurement's size (1,000,000), `REPLICAS_PHASES` which of
//! `throughput,lag,start` run.

#[path = "measure/mod.rs"]
mod measure;

use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::Connection;

/// A server process, killed when dropped.
struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(db: &str, extra: &[&str]) -> Server {
    use std::io::BufRead;
    let mut child = std::process::Command::new(measure::binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
        .args(extra)
        .env("YIZHANGTU_NO_NPM", "1")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(at) = line.find(" at http://") {
            break line[at + 4..].trim().trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server(child, url)
}

/// The PostgreSQL server: `YIZHANGTU_BENCH_PG`, else target/pg-test's.
fn pg_server() -> String {
    if let Ok(url) = std::env::var("YIZHANGTU_BENCH_PG") {
        return url;
    }
    let out = std::process::Command::new("tools/pg-test-server.sh")
        .args(["url", "target/pg-test"])
        .output()
        .expect("tools/pg-test-server.sh");
    assert!(
        out.status.success(),
        "no PostgreSQL: set YIZHANGTU_BENCH_PG or run tools/pg-test-server.sh start"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new, empty database on the server of `base`.
async fn fresh_database(base: &str, name: &str) -> String {
    let mut c = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let r = client.get(url).send().await.unwrap();
    r.json().await.unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Web-Mercator tiles at z14 over the seeded county's centre.
fn tiles() -> Vec<String> {
    let z = 14u32;
    let n = (1u32 << z) as f64;
    let tx = |lon: f64| (((lon + 180.0) / 360.0) * n) as u32;
    let ty = |lat: f64| {
        let r: f64 = lat.to_radians();
        (((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0) * n) as u32
    };
    let mut out = Vec::new();
    for x in tx(105.6)..=tx(105.95) {
        for y in ty(29.75)..=ty(29.45) {
            out.push(format!("/tiles/towns,villages,projects/{z}/{x}/{y}.mvt"));
        }
    }
    out
}

/// `clients` readers per base URL for `secs` seconds, each request one of `paths` in turn;
/// requests/s per base.
async fn load(bases: &[String], paths: &[String], clients: usize, secs: f64) -> Vec<f64> {
    let client = reqwest::Client::new();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let counts: Vec<Arc<AtomicUsize>> = bases.iter().map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for (b, base) in bases.iter().enumerate() {
        for w in 0..clients {
            let (client, base, done) = (client.clone(), base.clone(), Arc::clone(&counts[b]));
            let paths = paths.to_vec();
            tasks.push(tokio::spawn(async move {
                let mut i = w * 7;
                while Instant::now() < end {
                    let r = client
                        .get(format!("{base}{}", paths[i % paths.len()]))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    let _ = r.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    counts
        .iter()
        .map(|c| c.load(Ordering::Relaxed) as f64 / secs)
        .collect()
}

async fn throughput(base_url: &str, secs: f64) {
    let db = fresh_database(base_url, "bench_replicas").await;
    let primary = tokio::task::spawn_blocking({
        let db = db.clone();
        move || serve(&db, &[])
    })
    .await
    .unwrap();
    let items: Vec<String> = [
        "/collections/towns/items?limit=20",
        "/collections/projects/items?limit=100",
        "/collections/villages/items?limit=50&offset=100",
        "/collections/towns/items/500111100",
        "/collections/projects/items?bbox=105.7,29.5,105.9,29.7&limit=100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tiles = tiles();
    let clients = 8;
    println!(
        "throughput: {clients} clients per process, {secs} s per phase, 2 cores shared by all"
    );
    for (what, paths) in [("items", &items), ("tiles", &tiles)] {
        let one = load(std::slice::from_ref(&primary.1), paths, clients, secs).await;
        println!("  {what}: one process {:.0}/s", one[0]);
    }
    let replicas: Vec<Server> = (0..2)
        .map(|_| serve(&db, &["--replica", "--no-seed"]))
        .collect();
    let bases: Vec<String> = replicas.iter().map(|r| r.1.clone()).collect();
    for (what, paths) in [("items", &items), ("tiles", &tiles)] {
        let two = load(&bases, paths, clients / 2, secs).await;
        println!(
            "  {what}: two replicas {:.0}/s + {:.0}/s = {:.0}/s",
            two[0],
            two[1],
            two[0] + two[1]
        );
    }
    drop(replicas);
    drop(primary);
}

/// Edits through the primary at `rate`/s for `secs` seconds, by `WRITERS` writers each editing a
/// town of its own in turn (one PATCH at a time each), while a poller per replica reads the
/// edited towns back; the lag of an edit is from its PATCH's answer to the first read of a
/// replica that shows it (or a later edit of the same town).
async fn lag(base_url: &str, rate: f64, secs: f64) {
    const WRITERS: usize = 8;
    let db = fresh_database(base_url, "bench_lag").await;
    let primary = tokio::task::spawn_blocking({
        let db = db.clone();
        move || serve(&db, &[])
    })
    .await
    .unwrap();
    let out = std::process::Command::new(measure::binary())
        .args(["user", "add", "bench", "--role", "admin", "--db", &db])
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success() && !token.is_empty());
    let replicas: Vec<Server> = (0..2)
        .map(|_| serve(&db, &["--replica", "--no-seed"]))
        .collect();
    let client = reqwest::Client::new();
    let page = get_json(
        &client,
        &format!("{}/collections/towns/items?limit={WRITERS}", primary.1),
    )
    .await;
    let paths: Vec<String> = page["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("/collections/towns/items/{}", f["id"].as_str().unwrap()))
        .collect();
    assert_eq!(paths.len(), WRITERS);
    let start = Instant::now();
    let per_writer = (rate * secs) as usize / WRITERS;
    // seen[replica][writer][k]: when that replica first showed edit k of that writer's town.
    type Times = Arc<parking_lot::Mutex<Vec<Vec<f64>>>>;
    let seen: Vec<Times> = replicas
        .iter()
        .map(|_| {
            Arc::new(parking_lot::Mutex::new(vec![
                vec![f64::NAN; per_writer + 1];
                WRITERS
            ]))
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pollers = Vec::new();
    for (r, seen) in replicas.iter().zip(&seen) {
        let (base, seen, done, paths) = (
            r.1.clone(),
            Arc::clone(seen),
            Arc::clone(&done),
            paths.clone(),
        );
        pollers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut best = [0usize; WRITERS];
            while !done.load(Ordering::Relaxed) {
                for (w, path) in paths.iter().enumerate() {
                    let v = get_json(&client, &format!("{base}{path}")).await;
                    let k = v["properties"]["bench_n"].as_u64().unwrap_or(0) as usize;
                    let now = start.elapsed().as_secs_f64();
                    {
                        let mut s = seen.lock();
                        for slot in s[w]
                            .iter_mut()
                            .take(k.min(per_writer) + 1)
                            .skip(best[w] + 1)
                        {
                            *slot = now;
                        }
                    }
                    best[w] = best[w].max(k);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    let mut writers = Vec::new();
    for (w, path) in paths.iter().enumerate() {
        let (client, url, token) = (
            client.clone(),
            format!("{}{path}", primary.1),
            token.clone(),
        );
        writers.push(tokio::spawn(async move {
            // Staggered so that the writers' edits spread evenly over each period.
            tokio::time::sleep(Duration::from_secs_f64(w as f64 / rate)).await;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(WRITERS as f64 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut committed = Vec::with_capacity(per_writer);
            for k in 1..=per_writer {
                tick.tick().await;
                let r = client
                    .patch(&url)
                    .bearer_auth(&token)
                    .header("if-match", "*")
                    .header("content-type", "application/merge-patch+json")
                    .body(format!("{{\"properties\": {{\"bench_n\": {k}}}}}"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                committed.push(start.elapsed().as_secs_f64());
            }
            committed
        }));
    }
    let mut committed = Vec::new();
    for w in writers {
        committed.push(w.await.unwrap());
    }
    let wrote = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    done.store(true, Ordering::Relaxed);
    for p in pollers {
        p.await.unwrap();
    }
    let mut lags = Vec::new();
    let mut missing = 0;
    for s in &seen {
        let s = s.lock();
        for (w, times) in committed.iter().enumerate() {
            for (k, at) in times.iter().enumerate() {
                let t = s[w][k + 1];
                if t.is_nan() {
                    missing += 1;
                } else {
                    lags.push(((t - at) * 1000.0).max(0.0));
                }
            }
        }
    }
    lags.sort_by(f64::total_cmp);
    let n = per_writer * WRITERS;
    println!(
        "replication lag: {n} edits in {wrote:.1} s ({:.0} edits/s, {WRITERS} writers) through the \
         primary, 2 replicas: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} edit×replica pairs never seen)",
        n as f64 / wrote,
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN),
        missing
    );
    drop(replicas);
    drop(primary);
}

/// 1,000,000 star-shaped parcels of 21 vertices over Chongqing, written by PostGIS into
/// PostgreSQL, then copied row for row into a SQLite file; the engine's start (`App::open`,
/// no seeding) from each.
async fn start_from_both(base_url: &str, n: usize) {
    let db = fresh_database(base_url, "bench_start").await;
    // The schema, by the store's own migrations.
    drop(yizhangtu::store::Store::open(&db).await.unwrap());
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    let t = Instant::now();
    sqlx::raw_sql(&format!(
        "INSERT INTO layers (id, title_zh, title_en, geometry_type, created_at, updated_at) \
         VALUES ('parcels', '地块', 'parcels', 'Polygon', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'); \
         INSERT INTO features (layer, id, name, properties, geometry, min_x, min_y, max_x, max_y, \
                               created_at, updated_at) \
         SELECT 'parcels', 'p' || i, '地块' || i, \
                '{{\"name\": \"地块' || i || '\", \"area_mu\": ' || round((random() * 20)::numeric, 2) || ', \"status\": \"planned\"}}', \
                ST_AsBinary(g, 'NDR'), ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g), \
                '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' \
         FROM (SELECT i, ST_Buffer(ST_MakePoint(105.2 + random() * 5, 28.1 + random() * 4.1), \
                                   0.0005 + random() * 0.0025, 5) AS g \
               FROM generate_series(1, {n}) AS i) AS s"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    println!(
        "engine start: {n} polygons written into PostgreSQL in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("start.db");
    let file = file.to_str().unwrap().to_string();
    drop(yizhangtu::store::Store::open(&file).await.unwrap());
    let t = Instant::now();
    let mut lite = sqlx::SqliteConnection::connect(&format!("sqlite:{file}"))
        .await
        .unwrap();
    let mut tx = lite.begin().await.unwrap();
    sqlx::query("INSERT INTO layers (id, title_zh, title_en, geometry_type, created_at, updated_at) \
                 VALUES ('parcels', '地块', 'parcels', 'Polygon', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
        .execute(&mut *tx)
        .await
        .unwrap();
    {
        let mut rows = sqlx::query_as::<_, (String, String, String, Vec<u8>, f64, f64, f64, f64)>(
            "SELECT id, name, properties, geometry, min_x, min_y, max_x, max_y FROM features ORDER BY pos",
        )
        .fetch(&mut c);
        while let Some(row) = std::future::poll_fn(|cx| rows.as_mut().poll_next(cx)).await {
            let (id, name, props, g, x0, y0, x1, y1) = row.unwrap();
            sqlx::query(
                "INSERT INTO features (layer, id, name, properties, geometry, min_x, min_y, max_x, \
                 max_y, created_at, updated_at) VALUES ('parcels', ?, ?, ?, ?, ?, ?, ?, ?, \
                 '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            )
            .bind(id)
            .bind(name)
            .bind(props)
            .bind(g)
            .bind(x0)
            .bind(y0)
            .bind(x1)
            .bind(y1)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
    }
    tx.commit().await.unwrap();
    drop(lite);
    println!(
        "engine start: the same rows copied into SQLite in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    drop(c);
    for round in 1..=2 {
        for (what, url) in [("PostgreSQL", &db), ("SQLite", &file)] {
            let t = Instant::now();
            let app = yizhangtu::app::App::open(url, false, None).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let features: usize = app.engine.layers().iter().map(|l| l.read().len()).sum();
            assert_eq!(features, n);
            println!("  start {round} from {what}: {features} features in {secs:.2} s");
            drop(app);
        }
    }
}

fn main() {
    let secs: f64 = std::env::var("REPLICAS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    let n: usize = std::env::var("REPLICAS_START_FEATURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let phases = std::env::var("REPLICAS_PHASES").unwrap_or("throughput,lag,start".into());
    let pg = pg_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if phases.contains("throughput") {
            throughput(&pg, secs).await;
        }
        if phases.contains("lag") {
            lag(&pg, 100.0, secs).await;
        }
        if phases.contains("start") {
            start_from_both(&pg, n).await;
        }
    });
}
