//! A county's land survey (国土调查, issue 15): N parcels tiling a county, imported, served and
//! asked, each step in its own process, with time and memory.
//!
//! `cargo bench --bench landsurvey` (N = 200,000). Environment:
//! - `LANDSURVEY_N=1000000` parcels (the generated file is kept in `LANDSURVEY_DIR`, default
//!   `target/landsurvey`, and reused by later runs with the same N);
//! - `LANDSURVEY_SECONDS=10` per throughput measurement, 16 connections each;
//! - `LANDSURVEY_OGR=1` also times `ogr2ogr` of the same file into a GeoPackage;
//! - `LANDSURVEY_ONLY=gen,import,ogr,serve` some of the steps (`serve` needs the database
//!   an earlier `import` left in `LANDSURVEY_DIR`);
//! - `YIZHANGTU_BENCH_BIN=/path/to/yizhangtu` to measure another build;
//! - `LANDSURVEY_VERTICES=20`: every parcel has exactly 20 vertices (the memory target
//!   is for 20-vertex polygons; files and databases get a `-v20` suffix);
//! - `LANDSURVEY_PG="host=127.0.0.1 port=5432 dbname=D user=postgres"` also runs `pgbench`
//!   with `benches/pgbench/{by_id,bbox}.sql` on PostGIS holding the same file (loaded as below),
//!   in `LANDSURVEY_ROUNDS=5` rounds that alternate with ours, and prints the ratios, of the
//!   throughputs and of the CPU each side spends on an answer (from `/proc`);
//! - `LANDSURVEY_MARTIN=http://127.0.0.1:3300/parcels` also asks a Martin tile server for the
//!   same distinct tiles, each zoom right after ours (set up: the same file into PostGIS with
//!   `ogr2ogr -f PostgreSQL PG:… FILE -nln parcels -lco GEOMETRY_NAME=geom`, then
//!   `martin --listen-addresses 127.0.0.1:3300 --cache-size 0 postgres://…`; README,
//!   "Benchmarks"). Martin keeps tiles in memory unless `--cache-size 0`: a second run against
//!   the same Martin would measure its cache, not distinct uncached tiles.
//!
//! Requests come from a lean HTTP/1.1 client: hyper's connection API, one keep-alive
//! connection for each of the 16 tasks, no pool, redirects or timeouts; it shares the two
//! cores with the server, as pgbench shares them with PostgreSQL. When `wrk` is installed
//! (`apt install wrk`), `items/{id}` and `items?bbox` are measured with it as well, and the
//! ratios to PostGIS use wrk's figures: a C client as lean as pgbench. Then wrk asks the same
//! of an "HTTP ceiling": hyper answering every request at once with one real answer's bytes,
//! the most a hyper server could do on this machine with wrk sharing its cores. (The server's
//! connection front, `src/http/front.rs`, answers plain `items/{id}` without hyper, so the
//! server can come close to it or pass it.)
//!
//! `lean` (at the end of `serve`, from the snapshot it made; alone, from the database or a
//! snapshot left beside it) measures the lean path's own work
//! for `items/{id}` in this process, without network: `Fast::lean_http1` (the answer's bytes,
//! head and body, as the connection front writes them) on 200,000 requests for random ids,
//! made before the clock starts, in three rounds. It is the steadiest
//! figure for a change to that path: wrk's throughput on a shared 2-core VM moves by ±8 %.
//!
//! `serve` starts the server twice: from the database alone (which then writes its engine
//! snapshot, `DB.snapshot`), and again from that snapshot; requests go to the second.
//!
//! The parcels: a jittered grid over 0.40° × 0.35° (about 1,500 km², a 大足-sized county).
//! Neighbours share their edges vertex for vertex (an edge's vertices are a function of the
//! edge alone); each edge has 4 inner vertices, one in five 5–49, so a parcel has 20–200
//! vertices. Attributes as in a 三调 layer: 图斑编号, 地类编码, 地类名称, 权属性质, 权属单位,
//! 坐落单位代码, 面积 (m², planar on the local scale, 2 decimals).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod measure;
use measure::{binary, cli_import, mb, memory_of, start_server, timed};

/// mimalloc, the allocator of the `yizhangtu` binary (src/main.rs): the steps measured in this
/// process (`lean`, the HTTP ceiling) allocate as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WEST: f64 = 105.55;
const SOUTH: f64 = 29.45;
const WIDTH: f64 = 0.40;
const HEIGHT: f64 = 0.35;

/// 地类: (地类编码, 地类名称, weight).
const LAND_CLASSES: [(&str, &str, u32); 14] = [
    ("0101", "水田", 22),
    ("0102", "水浇地", 3),
    ("0103", "旱地", 25),
    ("0201", "果园", 5),
    ("0204", "其他园地", 2),
    ("0301", "乔木林地", 15),
    ("0305", "灌木林地", 4),
    ("0404", "其他草地", 3),
    ("0702", "农村宅基地", 9),
    ("1003", "公路用地", 2),
    ("1006", "农村道路", 4),
    ("1101", "河流水面", 1),
    ("1104", "坑塘水面", 4),
    ("1202", "设施农用地", 1),
];

const VILLAGE_FIRST: [&str; 16] = [
    "石", "马", "龙", "水", "高", "双", "金", "玉", "宝", "清", "新", "观", "太", "万", "中", "古",
];
const VILLAGE_SECOND: [&str; 12] = [
    "桥", "坝", "山", "河", "湾", "岩", "塘", "林", "溪", "坪", "寺", "堡",
];

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(a: u64, b: u64, c: u64) -> u64 {
    splitmix(splitmix(splitmix(a) ^ b) ^ c)
}

/// A uniform number in [-1, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// The grid of a county of `n` parcels: columns, rows, cell width and height in degrees.
struct Grid {
    /// Every edge with 4 inner vertices: 20 vertices a parcel (`LANDSURVEY_VERTICES=20`).
    twenty: bool,
    cols: u64,
    rows: u64,
    dx: f64,
    dy: f64,
}

impl Grid {
    fn new(n: u64, twenty: bool) -> Grid {
        let cols = ((n as f64 * WIDTH / HEIGHT).sqrt().ceil() as u64).max(1);
        let rows = n.div_ceil(cols);
        Grid {
            twenty,
            cols,
            rows,
            dx: WIDTH / cols as f64,
            dy: HEIGHT / rows as f64,
        }
    }

    /// Grid corner (i, j), jittered by up to a fifth of a cell (the county's border stays straight).
    fn corner(&self, i: u64, j: u64) -> (f64, f64) {
        let h = hash(1, i, j);
        let jx = if i == 0 || i == self.cols {
            0.0
        } else {
            unit(h) * 0.2
        };
        let jy = if j == 0 || j == self.rows {
            0.0
        } else {
            unit(splitmix(h)) * 0.2
        };
        (
            WEST + (i as f64 + jx) * self.dx,
            SOUTH + (j as f64 + jy) * self.dy,
        )
    }

    /// The inner vertices of the edge from corner `a` to corner `b` (in that direction); `key`
    /// names the edge so that both parcels along it get the very same vertices.
    fn edge(&self, key: (u64, u64, u64), a: (f64, f64), b: (f64, f64), out: &mut Vec<(f64, f64)>) {
        let h = hash(key.0 + 2, key.1, key.2);
        let inner = if h % 5 == 0 && !self.twenty {
            5 + (splitmix(h) % 45) as usize
        } else {
            4
        };
        let waves = 1.0 + (h >> 8) as f64 % 2.0;
        let amp = unit(splitmix(h ^ 7)) * 0.04;
        let (ex, ey) = (b.0 - a.0, b.1 - a.1);
        // Perpendicular, in cell units so that the wiggle scales with the parcel.
        let (px, py) = (-ey / self.dy * self.dx, ex / self.dx * self.dy);
        for m in 1..=inner {
            let t = m as f64 / (inner + 1) as f64;
            let off = amp * (std::f64::consts::PI * t * waves).sin();
            out.push((a.0 + ex * t + px * off, a.1 + ey * t + py * off));
        }
    }

    /// The ring of parcel (i, j), counter-clockwise, closed.
    fn ring(&self, i: u64, j: u64, out: &mut Vec<(f64, f64)>) {
        out.clear();
        let (c00, c10, c11, c01) = (
            self.corner(i, j),
            self.corner(i + 1, j),
            self.corner(i + 1, j + 1),
            self.corner(i, j + 1),
        );
        let mut reversed = Vec::new();
        out.push(c00);
        self.edge((0, i, j), c00, c10, out);
        out.push(c10);
        self.edge((1, i + 1, j), c10, c11, out);
        out.push(c11);
        // The top and left edges belong to the neighbours' bottom and right edges: walked backwards.
        self.edge((0, i, j + 1), c01, c11, &mut reversed);
        out.extend(reversed.drain(..).rev());
        out.push(c01);
        self.edge((1, i, j), c00, c01, &mut reversed);
        out.extend(reversed.drain(..).rev());
        out.push(c00);
    }
}

/// Planar area of a lon/lat ring in m² on the local scale.
fn area_m2(ring: &[(f64, f64)]) -> f64 {
    let lat = ring[0].1.to_radians();
    let (kx, ky) = (111_320.0 * lat.cos(), 110_574.0);
    let twice: f64 = ring
        .windows(2)
        .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
        .sum();
    (twice / 2.0).abs() * kx * ky
}

fn push_coord(out: &mut String, v: f64) {
    // To 1e-8° (about a millimetre), as survey data is delivered.
    let r = (v * 1e8).round() / 1e8;
    out.push_str(ryu::Buffer::new().format(r));
}

/// Writes the county's `n` parcels as a GeoJSON FeatureCollection; returns the vertex count.
fn generate(n: u64, twenty: bool, path: &Path) -> u64 {
    let grid = Grid::new(n, twenty);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    w.write_all(b"{\"type\":\"FeatureCollection\",\"name\":\"dltb\",\"features\":[\n")
        .unwrap();
    let total_weight: u32 = LAND_CLASSES.iter().map(|c| c.2).sum();
    let mut ring = Vec::with_capacity(256);
    let mut out = String::with_capacity(8192);
    let mut vertices = 0u64;
    for k in 0..n {
        let (i, j) = (k % grid.cols, k / grid.cols);
        grid.ring(i, j, &mut ring);
        vertices += ring.len() as u64 - 1;
        let h = hash(9, i, j);
        let mut pick = (h % total_weight as u64) as u32;
        let class = LAND_CLASSES
            .iter()
            .find(|c| {
                if pick < c.2 {
                    true
                } else {
                    pick -= c.2;
                    false
                }
            })
            .unwrap();
        // Villages are blocks of about 2.5 km² of cells; towns blocks of villages.
        let (vi, vj) = (
            (i as f64 * grid.dx / 0.016) as u64,
            (j as f64 * grid.dy / 0.016) as u64,
        );
        let v = hash(11, vi, vj);
        let village = format!(
            "{}{}村",
            VILLAGE_FIRST[(v % 16) as usize],
            VILLAGE_SECOND[((v >> 8) % 12) as usize]
        );
        let town = 100 + (vi / 5) * 10 + vj / 5;
        let village_code = format!("500111{town:03}{:03}", 200 + (vi % 5) * 5 + vj % 5);
        let state_owned = matches!(class.0, "1003" | "1101") || h % 19 == 0;
        out.clear();
        if k > 0 {
            out.push_str(",\n");
        }
        out.push_str("{\"type\":\"Feature\",\"id\":\"");
        out.push_str(itoa::Buffer::new().format(k + 1));
        out.push_str("\",\"properties\":{\"图斑编号\":\"");
        out.push_str(itoa::Buffer::new().format(k + 1));
        out.push_str("\",\"地类编码\":\"");
        out.push_str(class.0);
        out.push_str("\",\"地类名称\":\"");
        out.push_str(class.1);
        out.push_str("\",\"权属性质\":\"");
        out.push_str(if state_owned { "20" } else { "30" });
        out.push_str("\",\"权属单位\":\"");
        if state_owned {
            out.push_str("国有");
        } else {
            out.push_str(&village);
            out.push_str("村民委员会");
        }
        out.push_str("\",\"坐落单位代码\":\"");
        out.push_str(&village_code);
        out.push_str("\",\"面积\":");
        let area = (area_m2(&ring) * 100.0).round() / 100.0;
        out.push_str(ryu::Buffer::new().format(area));
        out.push_str("},\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[");
        for (m, (x, y)) in ring.iter().enumerate() {
            if m > 0 {
                out.push(',');
            }
            out.push('[');
            push_coord(&mut out, *x);
            out.push(',');
            push_coord(&mut out, *y);
            out.push(']');
        }
        out.push_str("]]}}");
        w.write_all(out.as_bytes()).unwrap();
    }
    w.write_all(b"\n]}\n").unwrap();
    w.flush().unwrap();
    vertices
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// Whether to run `step`: all unless `LANDSURVEY_ONLY` lists some.
fn wanted(step: &str) -> bool {
    std::env::var("LANDSURVEY_ONLY").map_or(true, |only| only.split(',').any(|p| p == step))
}

/// One keep-alive HTTP/1.1 connection of the load client.
type Connection =
    hyper::client::conn::http1::SendRequest<http_body_util::Empty<hyper::body::Bytes>>;

/// GETs `url` on `connection` (opened to the URL's host when there is none) and reads the
/// whole body; an error for anything but a 2xx answer.
async fn get(connection: &mut Option<Connection>, url: &str) -> Result<(), String> {
    use http_body_util::BodyExt;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let authority = uri.authority().ok_or("no host")?.clone();
    if connection.is_none() {
        let stream = tokio::net::TcpStream::connect(authority.as_str())
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        *connection = Some(sender);
    }
    let sender = connection.as_mut().expect("connected");
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority.as_str())
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}"));
    }
    drop(body);
    Ok(())
}

/// Throughput and latency of `requests` made by 16 connections for `seconds`.
struct Load {
    done: usize,
    failed: usize,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Makes the URL of request `k` from a task's random source.
type UrlMaker = Arc<dyn Fn(&mut SmallRng, usize) -> String + Send + Sync>;

/// Runs `next_url` (given a task's random source) from 16 tasks until `seconds` pass or, when
/// `limit` is set, until that many requests were made in all.
fn load(
    rt: &tokio::runtime::Runtime,
    seconds: f64,
    limit: Option<usize>,
    next_url: UrlMaker,
) -> Load {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(seconds);
    let results: Vec<(Vec<f64>, usize)> = rt.block_on(async {
        let tasks: Vec<_> = (0..16u64)
            .map(|task| {
                let next_url = Arc::clone(&next_url);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut rng = SmallRng::seed_from_u64(task);
                    let mut times = Vec::new();
                    let mut failed = 0;
                    let mut connection: Option<Connection> = None;
                    loop {
                        let k = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if limit.is_some_and(|l| k >= l) || Instant::now() >= deadline {
                            break;
                        }
                        let url = next_url(&mut rng, k);
                        let s = Instant::now();
                        match get(&mut connection, &url).await {
                            Ok(()) => times.push(s.elapsed().as_secs_f64() * 1e3),
                            Err(e) => {
                                if failed == 0 {
                                    eprintln!("{url}: {e}");
                                }
                                failed += 1;
                                connection = None;
                            }
                        }
                    }
                    (times, failed)
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.push(task.await.unwrap());
        }
        all
    });
    let secs = t.elapsed().as_secs_f64();
    let failed = results.iter().map(|r| r.1).sum();
    let mut times: Vec<f64> = results.into_iter().flat_map(|r| r.0).collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if times.is_empty() {
            f64::NAN
        } else {
            times[((times.len() - 1) as f64 * q) as usize]
        }
    };
    Load {
        done: times.len(),
        failed,
        per_second: times.len() as f64 / secs,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

fn report(what: &str, l: &Load) {
    println!(
        "  {what}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({} answers, {} failed)",
        l.per_second, l.p50_ms, l.p99_ms, l.done, l.failed
    );
}

/// Our throughput for `what`; with `pg` (DSN, pgbench script, N) also PostGIS's for the same
/// question, in `LANDSURVEY_ROUNDS` rounds that alternate between the two, and the ratio of
/// the sums.
///
/// Also the CPU each side spends on an answer, from `/proc`: the server's own, and the
/// PostgreSQL backends' (their postmaster's reaped children, which pgbench's connections are
/// when they end); the clients' (wrk, pgbench: this process's reaped children) beside them.
/// On two shared cores the client's share limits either side's throughput.
#[allow(clippy::too_many_arguments)]
fn compare(
    rt: &tokio::runtime::Runtime,
    what: &str,
    seconds: f64,
    next_url: UrlMaker,
    wrk_request: (&str, &str),
    pg: Option<(&str, &str, u64)>,
    server_pid: u32,
) -> Option<f64> {
    let rounds = if pg.is_some() {
        env_u64("LANDSURVEY_ROUNDS", 5)
    } else {
        1
    };
    let postmaster = pg.and_then(|(dsn, _, _)| postmaster_pid(dsn));
    // PostgreSQL's first round after a while idle is slower (its backends and caches start
    // cold); ours is warmed by the hyper client's round before wrk. A short round each, uncounted
    // (its table and indexes were read in once before, by `prewarm`).
    if let Some((dsn, script, n)) = pg {
        pgbench(dsn, script, n, 3.0);
    }
    let (mut ours, mut theirs) = (0.0, 0.0);
    // Each round's ratio, ours to theirs: their spread shows how far one round can be trusted.
    let mut round_ratios = Vec::new();
    // CPU seconds: (server, our client, answers), (backends, pgbench, queries).
    let (mut our_cpu, mut their_cpu) = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0));
    for _ in 0..rounds {
        let l = load(rt, seconds, None, Arc::clone(&next_url));
        report(what, &l);
        let (server0, client0) = (
            cpu_seconds(server_pid, false),
            cpu_seconds(std::process::id(), true),
        );
        let w = wrk(wrk_request.0, wrk_request.1, seconds);
        let (server1, client1) = (
            cpu_seconds(server_pid, false),
            cpu_seconds(std::process::id(), true),
        );
        let l = match w {
            Some(w) => {
                report(&format!("{what}, wrk"), &w);
                our_cpu.0 += server1 - server0;
                our_cpu.1 += client1 - client0;
                our_cpu.2 += w.done as f64;
                w
            }
            None => l,
        };
        ours += l.per_second;
        if let Some((dsn, script, n)) = pg {
            let backends0 = postmaster.map_or(0.0, |p| cpu_seconds(p, true));
            let client0 = cpu_seconds(std::process::id(), true);
            let (tps, queries) = pgbench(dsn, script, n, seconds);
            let backends1 = postmaster.map_or(0.0, reaped_cpu_seconds);
            let client1 = cpu_seconds(std::process::id(), true);
            their_cpu.0 += backends1 - backends0;
            their_cpu.1 += client1 - client0;
            their_cpu.2 += queries as f64;
            println!("  PostGIS alone (pgbench {script}, 16 clients): {tps:.0} tps");
            theirs += tps;
            round_ratios.push(l.per_second / tps);
        }
    }
    if pg.is_some() {
        let text: Vec<String> = round_ratios.iter().map(|r| format!("{r:.2}")).collect();
        round_ratios.sort_by(f64::total_cmp);
        println!(
            "  {what}: yizhangtu / PostGIS = {:.2} over {rounds} alternating rounds \
             (rounds {}; median {:.2})",
            ours / theirs,
            text.join(", "),
            median(&round_ratios)
        );
    }
    if our_cpu.2 > 0.0 {
        let per = |cpu: f64, n: f64| cpu / n * 1e6;
        println!(
            "  {what}, CPU an answer: yizhangtu {:.1} µs (wrk {:.1} µs)",
            per(our_cpu.0, our_cpu.2),
            per(our_cpu.1, our_cpu.2)
        );
        if their_cpu.2 > 0.0 && their_cpu.0 > 0.0 {
            println!(
                "  {what}, CPU a query: PostgreSQL backends {:.1} µs (pgbench {:.1} µs); \
                 PostgreSQL / yizhangtu = {:.2}",
                per(their_cpu.0, their_cpu.2),
                per(their_cpu.1, their_cpu.2),
                (their_cpu.0 / their_cpu.2) / (our_cpu.0 / our_cpu.2)
            );
        }
    }
    pg.map(|_| theirs / rounds as f64)
}

/// The middle of sorted `v` (the mean of the two middle values for an even count).
fn median(v: &[f64]) -> f64 {
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What any HTTP server could do here with wrk sharing the cores: hyper (which our server is
/// built on) answering every request at once with the same bytes as one real answer by id (its
/// headers and body), in this process, asked by wrk as `items/{id}` is (`lua`). Beside
/// PostGIS's by-id throughput (`postgis`, tps) it shows what ratio the machine leaves room for
/// before an answer does any work.
fn ceiling(rt: &tokio::runtime::Runtime, url: &str, lua: &str, seconds: f64, postgis: Option<f64>) {
    use hyper::header::{HeaderName, HeaderValue};
    let (head, body) = rt.block_on(async {
        let r = reqwest::get(format!("{url}/collections/parcels/items/1"))
            .await
            .unwrap();
        let head: Vec<(HeaderName, HeaderValue)> = r
            .headers()
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "content-length" | "date"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (head, r.bytes().await.unwrap())
    });
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = server
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let size = body.len();
    let answer = Arc::new((head, body));
    server.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_| {
                    let mut r = hyper::Response::new(http_body_util::Full::new(answer.1.clone()));
                    r.headers_mut().extend(answer.0.iter().cloned());
                    std::future::ready(Ok::<_, std::convert::Infallible>(r))
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    let cpu0 = cpu_seconds(std::process::id(), false);
    let Some(w) = wrk(&format!("http://{addr}"), lua, seconds) else {
        return;
    };
    let cpu = cpu_seconds(std::process::id(), false) - cpu0;
    server.shutdown_background();
    println!(
        "  HTTP ceiling (hyper answering every request with one answer's headers and {size} \
         bytes, no work): {:.0} req/s, {:.1} µs CPU an answer{}",
        w.per_second,
        cpu / w.done as f64 * 1e6,
        postgis.map_or(String::new(), |tps| format!(
            "; {:.2} × PostGIS's items/{{id}}",
            w.per_second / tps
        ))
    );
}

/// Reads table `parcels` and its indexes into PostgreSQL's buffers and the OS page cache
/// (`pg_prewarm`, from PostgreSQL's contrib); says so when it cannot.
fn prewarm(dsn: &str) {
    let (args, dbname) = psql_args(dsn);
    let out = std::process::Command::new("psql")
        .args(&args)
        .args(["-v", "ON_ERROR_STOP=1", "-Atc"])
        .arg(
            "CREATE EXTENSION IF NOT EXISTS pg_prewarm; \
             SELECT sum(pg_prewarm(c.oid::regclass)) FROM pg_class c \
             WHERE c.oid = 'parcels'::regclass \
             OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'parcels'::regclass)",
        )
        .arg(&dbname)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let blocks = text.lines().last().unwrap_or("").trim().to_string();
            println!("  PostgreSQL: pg_prewarm read {blocks} blocks of parcels and its indexes");
        }
        Ok(o) => println!(
            "  PostgreSQL: pg_prewarm failed, not prewarmed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => println!("  PostgreSQL: psql not run, not prewarmed: {e}"),
    }
}

/// CPU seconds (user + system) of process `pid`, or with `children` of its children that
/// have ended and been waited for.
fn cpu_seconds(pid: u32, children: bool) -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis, from the state (field 3) on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let at = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (user, system) = if children { (13, 14) } else { (11, 12) };
    (at(user) + at(system)) / ticks
}

/// [`cpu_seconds`] of the postmaster's ended children once the backends of a finished
/// pgbench have all been waited for (it stops changing; at most 5 s).
fn reaped_cpu_seconds(postmaster: u32) -> f64 {
    let mut last = cpu_seconds(postmaster, true);
    for _ in 0..25 {
        std::thread::sleep(Duration::from_millis(200));
        let now = cpu_seconds(postmaster, true);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// The PostgreSQL postmaster's process id (from `postmaster.pid` in its data directory), when
/// this process can read it.
fn postmaster_pid(dsn: &str) -> Option<u32> {
    let (args, dbname) = psql_args(dsn);
    let out = std::process::Command::new("psql")
        .args(&args)
        .args(["-Atc", "show data_directory", &dbname])
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let pid = std::fs::read_to_string(Path::new(&dir).join("postmaster.pid")).ok()?;
    pid.lines().next()?.trim().parse().ok()
}

/// `-h/-p/-U` arguments and the database name of a `key=value` DSN.
fn psql_args(dsn: &str) -> (Vec<String>, String) {
    let mut args: Vec<String> = Vec::new();
    let mut dbname = String::from("postgres");
    for pair in dsn.split_whitespace() {
        match pair.split_once('=') {
            Some(("host", v)) => args.extend(["-h".into(), v.into()]),
            Some(("port", v)) => args.extend(["-p".into(), v.into()]),
            Some(("user", v)) => args.extend(["-U".into(), v.into()]),
            Some(("dbname", v)) => dbname = v.into(),
            _ => panic!("LANDSURVEY_PG: cannot read '{pair}'"),
        }
    }
    (args, dbname)
}

/// Throughput of `wrk` (when it is installed: `apt install wrk`; 2 threads, 16 connections) at
/// `base` for `seconds`, asking for the paths the Lua function body `lua` returns. `wrk` is a
/// client as lean as pgbench: with it the server gets the share of the two cores that
/// PostgreSQL gets under pgbench. To keep it so, each request is the path joined to the rest of
/// a request made once (no `wrk.format` for each, ~1 µs of wrk's CPU), and each thread draws its
/// own random numbers (its own seed, as pgbench's threads do).
fn wrk(base: &str, lua: &str, seconds: f64) -> Option<Load> {
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .ok()?;
    let script = std::env::temp_dir().join(format!("landsurvey-{}.lua", std::process::id()));
    std::fs::write(
        &script,
        format!(
            "local threads = 0\n\
             function setup(thread)\n  threads = threads + 1\n  thread:set(\"seed\", 15 + threads)\nend\n\
             local function path()\n{lua}\nend\n\
             local rest = \"\"\n\
             function init(args)\n  math.randomseed(seed)\n  rest = wrk.format(\"GET\", \"/\"):sub(6)\nend\n\
             function request()\n  return \"GET \" .. path() .. rest\nend\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c16", "--latency", "-d"])
        .arg(format!("{}s", seconds.round().max(1.0) as u64))
        .arg("-s")
        .arg(&script)
        .arg(base)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let ms = |v: &str| -> Option<f64> {
        let (number, factor) = if let Some(x) = v.strip_suffix("us") {
            (x, 1e-3)
        } else if let Some(x) = v.strip_suffix("ms") {
            (x, 1.0)
        } else {
            (v.strip_suffix('s')?, 1e3)
        };
        number.parse::<f64>().ok().map(|x| x * factor)
    };
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let per_second: f64 = field("Requests/sec:")?.parse().ok()?;
    let done: usize = text
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let failed = field("Non-2xx or 3xx responses:").map_or(0, |v| v.parse().unwrap_or(0));
    Some(Load {
        done,
        failed,
        per_second,
        p50_ms: field("50%").and_then(ms).unwrap_or(f64::NAN),
        p99_ms: field("99%").and_then(ms).unwrap_or(f64::NAN),
    })
}

/// Transactions a second of `benches/pgbench/SCRIPT` run by pgbench (16 clients, 2 threads,
/// prepared statements) against the PostGIS of `dsn` (`host=… port=… dbname=… user=…`).
fn pgbench(dsn: &str, script: &str, n: u64, seconds: f64) -> (f64, u64) {
    let (args, dbname) = psql_args(dsn);
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/pgbench")
        .join(script);
    let out = std::process::Command::new("pgbench")
        .args(&args)
        .args(["-n", "-M", "prepared", "-c", "16", "-j", "2", "-T"])
        .arg(format!("{}", seconds.round().max(1.0) as u64))
        .arg("-D")
        .arg(format!("n={n}"))
        .arg("-f")
        .arg(&file)
        .arg(&dbname)
        .output()
        .expect("pgbench (apt install postgresql-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench gave no tps: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let done = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next()?.trim().parse().ok())
        .unwrap_or(0);
    (tps, done)
}

/// Web Mercator tile of a lon/lat at zoom `z`.
fn tile_of(lon: f64, lat: f64, z: u32) -> (u64, u64) {
    let n = (1u64 << z) as f64;
    let x = ((lon + 180.0) / 360.0 * n).floor() as u64;
    let lat = lat.to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor()
        as u64;
    (x, y)
}

/// Every tile over the county at zoom `z`, in a fixed random order.
fn county_tiles(z: u32) -> Vec<(u32, u64, u64)> {
    let (x0, y1) = tile_of(WEST, SOUTH, z);
    let (x1, y0) = tile_of(WEST + WIDTH, SOUTH + HEIGHT, z);
    let mut tiles: Vec<(u32, u64, u64)> = (x0..=x1)
        .flat_map(|x| (y0..=y1).map(move |y| (z, x, y)))
        .collect();
    let mut rng = SmallRng::seed_from_u64(z as u64);
    for i in (1..tiles.len()).rev() {
        tiles.swap(i, rng.gen_range(0..=i));
    }
    tiles
}

/// Starts a server on `db` and waits for its first answer: (server, URL, seconds).
fn started(db: &Path, rt: &tokio::runtime::Runtime) -> (std::process::Child, String, f64) {
    let t = Instant::now();
    let (server, url) = start_server(db);
    // The server listens once every feature is loaded; the first answer follows.
    let first = format!("{url}/collections/parcels/items/1");
    rt.block_on(async {
        loop {
            if let Ok(r) = reqwest::get(&first).await {
                if r.status().is_success() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    (server, url, t.elapsed().as_secs_f64())
}

/// Prints a server's memory after start: RSS, per parcel, peak.
fn report_start(what: &str, secs: f64, pid: u32, n: u64) {
    std::thread::sleep(Duration::from_millis(300));
    let (hwm, rss) = memory_of(pid);
    println!(
        "start {what}: first answer after {secs:.2} s; RSS {:.0} MB ({:.0} B a parcel), peak during start {:.0} MB",
        rss as f64 / 1e3,
        rss as f64 * 1e3 / n as f64,
        hwm as f64 / 1e3
    );
}

fn serve(db: &Path, n: u64, seconds: f64, twenty: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Cold: no snapshot, every feature read from the database; the server then writes the
    // snapshot (DB.snapshot) that the second start reads.
    let snapshot = PathBuf::from(format!("{}.snapshot", db.display()));
    let _ = std::fs::remove_file(&snapshot);
    let (mut cold, _, secs) = started(db, &rt);
    report_start("from the database", secs, cold.id(), n);
    let t = Instant::now();
    while !snapshot.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(1800),
            "no snapshot written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "  snapshot written {:.1} s after the first answer, {:.0} MB",
        t.elapsed().as_secs_f64(),
        mb(std::fs::metadata(&snapshot).map_or(0, |m| m.len()))
    );
    let _ = cold.kill();
    let _ = cold.wait();

    let (mut server, url, start) = started(db, &rt);
    let pid = server.id();
    report_start("from the snapshot", start, pid, n);
    if twenty {
        // Issue 15's memory target: at most twice the raw coordinates plus 200 B a feature.
        // What a feature costs is the RSS above that of the same server with no features.
        let (_, rss) = memory_of(pid);
        let empty = db.with_extension("empty.db");
        let _ = std::fs::remove_file(&empty);
        let (mut bare, url) = start_server(&empty);
        rt.block_on(async {
            let _ = reqwest::get(format!("{url}/collections")).await;
        });
        let (_, base) = memory_of(bare.id());
        let _ = bare.kill();
        let _ = bare.wait();
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", empty.display()));
        }
        let raw = 20.0 * 16.0;
        println!(
            "  20-vertex parcels: RSS {:.0} B a parcel; {:.0} B a parcel above the same server \
             with no features (RSS {:.0} MB); target ≤ {:.0} B (2 × {raw:.0} B of raw coordinates + 200 B)",
            rss as f64 * 1e3 / n as f64,
            (rss - base.min(rss)) as f64 * 1e3 / n as f64,
            base as f64 / 1e3,
            2.0 * raw + 200.0
        );
    }

    let base = Arc::new(url.clone());
    let pg = std::env::var("LANDSURVEY_PG").ok();
    // PostgreSQL's table and indexes read in once, as our server holds every feature in memory.
    if let Some(dsn) = &pg {
        prewarm(dsn);
    }
    let b = Arc::clone(&base);
    let by_id = format!("return \"/collections/parcels/items/\" .. math.random(1, {n})");
    let postgis = compare(
        &rt,
        "items/{id}",
        seconds,
        Arc::new(move |rng, _| format!("{b}/collections/parcels/items/{}", rng.gen_range(1..=n))),
        (&url, &by_id),
        pg.as_deref().map(|dsn| (dsn, "by_id.sql", n)),
        pid,
    );
    ceiling(&rt, &url, &by_id, seconds, postgis);
    let b = Arc::clone(&base);
    let _ = compare(
        &rt,
        "items?bbox (0.02°, limit 100)",
        seconds,
        Arc::new(move |rng, _| {
            let x = rng.gen_range(WEST..WEST + WIDTH - 0.02);
            let y = rng.gen_range(SOUTH..SOUTH + HEIGHT - 0.02);
            format!(
                "{b}/collections/parcels/items?bbox={x:.5},{y:.5},{:.5},{:.5}&limit=100",
                x + 0.02,
                y + 0.02
            )
        }),
        (
            &url,
            &format!(
                "local x = {WEST} + math.random() * {}\nlocal y = {SOUTH} + math.random() * {}\n\
                 return string.format(\"/collections/parcels/items?bbox=%.5f,%.5f,%.5f,%.5f&limit=100\", x, y, x + 0.02, y + 0.02)",
                WIDTH - 0.02,
                HEIGHT - 0.02
            ),
        ),
        pg.as_deref().map(|dsn| (dsn, "bbox.sql", n)),
        pid,
    );
    for z in [12u32, 14] {
        let tiles = Arc::new(county_tiles(z));
        let count = tiles.len();
        let b = Arc::clone(&base);
        let t2 = Arc::clone(&tiles);
        let l = load(
            &rt,
            seconds.max(60.0),
            Some(count),
            Arc::new(move |_, k| {
                let (z, x, y) = t2[k];
                format!("{b}/tiles/parcels/{z}/{x}/{y}.mvt")
            }),
        );
        report(
            &format!("tiles z{z}, {count} distinct (uncached), tiles/s"),
            &l,
        );
        if let Ok(martin) = std::env::var("LANDSURVEY_MARTIN") {
            let t2 = Arc::clone(&tiles);
            let m = load(
                &rt,
                seconds.max(60.0),
                Some(count),
                Arc::new(move |_, k| {
                    let (z, x, y) = t2[k];
                    format!("{martin}/{z}/{x}/{y}")
                }),
            );
            report(&format!("Martin, the same z{z} tiles, tiles/s"), &m);
            println!(
                "  tiles z{z}: yizhangtu / Martin = {:.2}",
                l.per_second / m.per_second
            );
        }
    }
    // Coverage of a town-sized square (about 5 × 5 km) in the county's middle.
    let (cx, cy) = (WEST + WIDTH / 2.0, SOUTH + HEIGHT / 2.0);
    let body = serde_json::json!({"type": "Polygon", "coordinates": [[
        [cx - 0.025, cy - 0.0225], [cx + 0.025, cy - 0.0225], [cx + 0.025, cy + 0.0225],
        [cx - 0.025, cy + 0.0225], [cx - 0.025, cy - 0.0225]]]})
    .to_string();
    let mut times = Vec::new();
    for _ in 0..3 {
        let s = Instant::now();
        let (status, text) = rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{url}/analysis/coverage?layers=parcels"))
                .header("content-type", "application/geo+json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        });
        assert!(status.is_success(), "coverage: {status} {text}");
        times.push(s.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "  coverage of a 5 × 5 km square: {:.0} ms (median of 3)",
        times[1]
    );
    let (hwm, rss) = memory_of(pid);
    println!(
        "  after the requests: RSS {:.0} MB, peak {:.0} MB",
        rss as f64 / 1e3,
        hwm as f64 / 1e3
    );
    let _ = server.kill();
    let _ = server.wait();
    if wanted("lean") {
        lean(db, n);
    }
    let _ = std::fs::remove_file(&snapshot);
}

fn main() {
    let n = env_u64("LANDSURVEY_N", 200_000);
    let twenty = env_u64("LANDSURVEY_VERTICES", 0) == 20;
    let suffix = if twenty { "-v20" } else { "" };
    let seconds = env_u64("LANDSURVEY_SECONDS", 10) as f64;
    let dir = std::env::var_os("LANDSURVEY_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/landsurvey"));
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "binary: {}; {n} parcels; {} cores",
        binary().display(),
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    let file = dir.join(format!("dltb-{n}{suffix}.geojson"));
    if wanted("gen") || !file.exists() {
        let t = Instant::now();
        let vertices = generate(n, twenty, &file);
        println!(
            "generated {} ({:.0} MB, {:.1} vertices a parcel) in {:.1} s",
            file.display(),
            mb(std::fs::metadata(&file).unwrap().len()),
            vertices as f64 / n as f64,
            t.elapsed().as_secs_f64()
        );
    }
    let db = dir.join(format!("dltb-{n}{suffix}.db"));
    if wanted("import") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let (secs, kb) = cli_import(&file, "parcels", &db);
        println!(
            "import: {secs:.1} s ({:.0} features/s), peak RSS {:.0} MB; database {:.0} MB",
            n as f64 / secs,
            kb as f64 / 1e3,
            mb(std::fs::metadata(&db).unwrap().len())
        );
    }
    let listed = |step: &str| {
        std::env::var("LANDSURVEY_ONLY").is_ok_and(|only| only.split(',').any(|p| p == step))
    };
    if listed("ogr") || std::env::var_os("LANDSURVEY_OGR").is_some() {
        let gpkg = dir.join(format!("dltb-{n}{suffix}.gpkg"));
        let _ = std::fs::remove_file(&gpkg);
        let (secs, kb, _) = timed(
            Path::new("ogr2ogr"),
            &[
                "-f".as_ref(),
                "GPKG".as_ref(),
                gpkg.as_os_str(),
                file.as_os_str(),
            ],
        );
        println!(
            "ogr2ogr → GeoPackage: {secs:.1} s ({:.0} features/s), peak RSS {:.0} MB",
            n as f64 / secs,
            kb as f64 / 1e3
        );
    }
    if wanted("serve") {
        serve(&db, n, seconds, twenty);
    }
    if wanted("lean") && !wanted("serve") {
        lean(&db, n);
    }
}

/// The lean path's own time an answer for `items/{id}` (see the module comment): the engine
/// loaded in this process from the snapshot `serve` left (or from the database), each answer
/// written as HTTP/1.1 bytes into one reused buffer, its bytes counted.
fn lean(db: &Path, n: u64) {
    use yizhangtu::http::fast::{Fast, Head};
    use yizhangtu::http::{router, AppState};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let snapshot = PathBuf::from(format!("{}.snapshot", db.display()));
    let (app, from_snapshot) = rt
        .block_on(yizhangtu::app::App::open_with_snapshot(
            db.to_str().unwrap(),
            false,
            None,
            &Default::default(),
            &snapshot,
        ))
        .unwrap();
    let state = AppState::new(Arc::new(app), Default::default());
    let fast = Fast::new(router(state.clone()), state);
    let mut rng = SmallRng::seed_from_u64(15);
    let paths: Vec<String> = (0..200_000)
        .map(|_| format!("/collections/parcels/items/{}", rng.gen_range(1..=n)))
        .collect();
    // The heads as the connection front reads them (`Host` their one field, as wrk sends).
    let requests: Vec<Head> = paths
        .iter()
        .map(|path| {
            let mut head = Head {
                path,
                ..Head::default()
            };
            head.field(b"host", b"127.0.0.1:7400");
            head
        })
        .collect();
    let mut rounds = Vec::new();
    let mut bytes = 0;
    let mut out = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        bytes = 0;
        for r in &requests {
            out.clear();
            assert!(
                fast.lean_http1(r, &mut out),
                "the lean path answers a plain items/{{id}}"
            );
            assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
            bytes += out.len() as u64;
        }
        rounds.push(t.elapsed().as_secs_f64() * 1e6 / requests.len() as f64);
    }
    let text: Vec<String> = rounds.iter().map(|us| format!("{us:.2}")).collect();
    rounds.sort_by(f64::total_cmp);
    println!(
        "lean path alone (items/{{id}}, in this process, {} random ids, engine from the {}): \
         {:.2} µs an answer (rounds {}), {} bytes an answer",
        requests.len(),
        if from_snapshot {
            "snapshot"
        } else {
            "database"
        },
        rounds[1],
        text.join(", "),
        bytes / requests.len() as u64
    );
}
