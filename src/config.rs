//! Settings from command-line flags and environment variables, with defaults that run out of
//! the box: a SQLite file in the working directory, listening on 127.0.0.1:8080.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "yizhangtu",
    version,
    about = "一张图 (one map): a county's spatial plans as OGC API – Features layers",
    long_about = "yizhangtu keeps planning layers (districts, towns, villages, plan features and \
                  projects) as geometries and serves them to map clients over OGC API – Features."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on standard error as `text` (for people) or `json` (one object a line, for log
    /// collectors); within a request each line carries its `request_id`.
    #[arg(long, global = true, env = "YIZHANGTU_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (OGC API – Features), seeding an empty database first.
    Serve(ServeArgs),
    /// Import a GeoJSON, GeoPackage or zipped Shapefile into a layer, all or nothing.
    Import(ImportArgs),
    /// List each layer with its feature count.
    Layers(DbArgs),
    /// Export layers (or a land-consolidation bundle) of an area to a file.
    Export(ExportArgs),
    /// Validate every feature (geometry, admin units, codes, units) and print counts per layer
    /// and the plan entities that could not be placed; exits non-zero on any invalid feature.
    Check(CheckArgs),
    /// Plan indicators (指标): `indicators import FILE.csv` appends observations.
    Indicators(crate::monitor::cli::IndicatorsArgs),
    /// Project lifecycles: `projects progress FILE.csv` records progress reports.
    Projects(crate::monitor::cli::ProjectsArgs),
    /// Manage users and their roles (add, list, revoke).
    User(UserArgs),
    /// Manage API tokens (rotate).
    Token(TokenArgs),
    /// The audit log (verify its hash chain).
    Audit(AuditArgs),
    /// Copy a SQLite database into an empty PostgreSQL one (all tables, one transaction,
    /// row counts checked).
    Migrate(MigrateArgs),
    /// Delete all but the newest change-log rows (history and audit keep every edit); a server
    /// whose position was pruned away reloads every layer.
    PruneChanges(PruneChangesArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PruneChangesArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// How many of the newest change-log rows to keep (at least 1). Keep more than the most
    /// edits any running server can be behind by (`/readyz`'s lag); one behind reloads.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: u64,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The SQLite database to copy (sqlite://FILE or a path).
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL database to fill (postgres://…); it must be empty.
    #[arg(long)]
    pub to: String,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// SQLite database file (or sqlite: URL); created, migrated and seeded when missing.
    #[arg(long, env = "DATABASE_URL", default_value = "yizhangtu.db")]
    pub db: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to listen on.
    #[arg(long, env = "YIZHANGTU_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "YIZHANGTU_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How often to look for changes written by other processes (e.g. `yizhangtu import`), in ms.
    #[arg(long, env = "YIZHANGTU_FOLLOW_INTERVAL_MS", default_value_t = 1000)]
    pub follow_interval_ms: u64,
    /// The engine snapshot file: read at start when it matches the database (start in seconds),
    /// written after a load from the database, every 100,000 changes and at a clean shutdown.
    /// Default: next to a SQLite database (`DB.snapshot`); none for PostgreSQL unless given.
    #[arg(long, env = "YIZHANGTU_SNAPSHOT")]
    pub snapshot: Option<std::path::PathBuf>,
    /// Keep no engine snapshot: always load from the database.
    #[arg(long, env = "YIZHANGTU_NO_SNAPSHOT", conflicts_with = "snapshot")]
    pub no_snapshot: bool,
    /// Do not seed an empty database with the bundled reference data and plans.
    #[arg(long, env = "YIZHANGTU_NO_SEED")]
    pub no_seed: bool,
    /// One of several processes on one PostgreSQL database: never seeds, follows the change log
    /// (LISTEN/NOTIFY, polling as the fallback); writes go to the database like any process's.
    #[arg(long, env = "YIZHANGTU_REPLICA")]
    pub replica: bool,
    /// Memory for the vector-tile cache, in MiB.
    #[arg(long, env = "YIZHANGTU_TILE_CACHE_MB", default_value_t = 256)]
    pub tile_cache_mb: usize,
    /// Refuse writes over HTTP (POST /collections/{id}/items).
    #[arg(long, env = "YIZHANGTU_READ_ONLY")]
    pub read_only: bool,
    /// Longest a heavy request (coverage, area features, exports, tiles, large filters) may
    /// run, queueing included, e.g. `30`, `2.5`, `500ms`; over it the answer is 503.
    #[arg(long, env = "YIZHANGTU_REQUEST_TIMEOUT", default_value = "30", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// After SIGTERM or Ctrl-C, how long requests in flight may take before the process exits
    /// anyway, e.g. `10`, `500ms`.
    #[arg(long, env = "YIZHANGTU_SHUTDOWN_GRACE", default_value = "10", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Longest a connection may take to send a whole request head, counted from its opening or
    /// its previous answer, e.g. `30`, `500ms`: an idle keep-alive connection is closed after
    /// it, one part-way through a head gets 408 and is closed.
    #[arg(long, env = "YIZHANGTU_HEADER_TIMEOUT", default_value = "30", value_parser = parse_duration)]
    pub header_timeout: Duration,
    /// Connections open at once; past it no more are accepted until one closes (they wait in
    /// the kernel's queue). The process's open-file limit is raised to fit it where allowed.
    #[arg(long, env = "YIZHANGTU_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Heavy requests that run at once (0: one per core); the others wait in a queue.
    #[arg(long, env = "YIZHANGTU_HEAVY_JOBS", default_value_t = 0)]
    pub heavy_jobs: usize,
    /// Heavy requests that may wait for a slot; more get 503 with Retry-After.
    #[arg(long, env = "YIZHANGTU_HEAVY_QUEUE", default_value_t = 64)]
    pub heavy_queue: usize,
    /// Largest export built in memory (GeoPackage, Shapefile, CSV, TXT, land-consolidation
    /// bundle), in MiB, as estimated from the features chosen; larger ones get 413.
    /// GeoJSON exports are streamed and not bound by it.
    #[arg(long, env = "YIZHANGTU_MAX_EXPORT_MB", default_value_t = 512)]
    pub max_export_mb: usize,
    /// Build links from X-Forwarded-Host and X-Forwarded-Proto (only behind a proxy that sets
    /// them); otherwise they are ignored.
    #[arg(long, env = "YIZHANGTU_TRUST_FORWARDED_HEADERS")]
    pub trust_forwarded_headers: bool,
    /// Reads need a token too (any role); without it reads are public and only writes need one.
    #[arg(long, env = "YIZHANGTU_PRIVATE")]
    pub private: bool,
    /// Every change must say why (X-Change-Reason header or a `reason` member); else 400.
    #[arg(long, env = "YIZHANGTU_REQUIRE_REASON")]
    pub require_reason: bool,
    #[command(flatten)]
    pub jwt: crate::auth::jwt::JwtArgs,
    /// `/readyz` answers 503 while the engine is more than this many change-log entries behind
    /// the database.
    #[arg(long, env = "YIZHANGTU_READY_MAX_LAG", default_value_t = 1000)]
    pub ready_max_lag: u64,
    /// 天地图 (Tianditu) key: the map shows its basemap by default (else the offline outlines).
    #[arg(long, env = "YIZHANGTU_TIANDITU_KEY")]
    pub tianditu_key: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserCommand {
    /// Create a user and print their API token (shown this once; only a hash is stored).
    Add {
        #[command(flatten)]
        db: DbArgs,
        name: String,
        /// viewer, editor, steward or admin.
        #[arg(long)]
        role: String,
        /// Comma-separated district (6-digit) or town (9-digit) codes an editor or steward may
        /// write in; without it, the whole county.
        #[arg(long)]
        districts: Option<String>,
    },
    /// List users: name, role, districts, whether revoked (never tokens).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a user: their token stops working at once; their history stays.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Give a user a new token (printed once); the old one stops working.
    Rotate {
        #[command(flatten)]
        db: DbArgs,
        name: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exits non-zero naming the first broken row.
    Verify {
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `30`, `2.5` (seconds), `30s` or `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = t.strip_suffix('s') {
        (s, 1.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = number.trim().parse().map_err(|_| {
        format!("'{text}' is not a duration: write seconds (30, 2.5, 30s) or 500ms")
    })?;
    if !(v.is_finite() && v > 0.0 && v * scale < 1e9) {
        return Err(format!("'{text}': give a positive duration"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Output file; its extension picks the format unless --format is given.
    #[arg(long, short)]
    pub out: std::path::PathBuf,
    /// geojson, gpkg, shp (zip), csv or txt (the ministry's boundary-coordinate file).
    #[arg(long)]
    pub format: Option<String>,
    /// Comma-separated layer ids (default: every layer).
    #[arg(long)]
    pub layers: Option<String>,
    /// Admin unit (code or name): features meeting it.
    #[arg(long)]
    pub area: Option<String>,
    /// minLon,minLat,maxLon,maxLat
    #[arg(long, allow_hyphen_values = true)]
    pub bbox: Option<String>,
    /// CQL2 text filter applied to every layer.
    #[arg(long)]
    pub filter: Option<String>,
    /// Output CRS: EPSG:4490, EPSG:4326, CRS84, EPSG:3857, EPSG:4513–4554, auto-gk, GCJ-02, BD-09.
    #[arg(long)]
    pub crs: Option<String>,
    /// Shapefile attribute encoding: gbk (default) or utf-8.
    #[arg(long, default_value = "gbk")]
    pub encoding: String,
    /// Write the land-consolidation bundle (zip) for --area instead.
    #[arg(long)]
    pub land_consolidation: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// GeoJSON FeatureCollection, GeoPackage (.gpkg), zipped Shapefile (.zip) or a .shp with
    /// its .dbf/.prj/.cpg beside it; `-` reads GeoJSON from standard input.
    pub file: PathBuf,
    /// CRS of the file when it does not say (or to override what it says), e.g. EPSG:4545.
    #[arg(long)]
    pub crs: Option<String>,
    /// Layer to import into; created when it does not exist.
    #[arg(long)]
    pub layer: String,
    /// Replace every feature of the layer with the file's features, in one transaction.
    #[arg(long)]
    pub replace: bool,
    /// With --replace on towns or villages: the file holds official boundaries; redraw every
    /// approximate plan feature whose units change, in the same transaction, and report what moved.
    #[arg(long, requires = "replace")]
    pub rebase: bool,
    /// Title of a new layer in Chinese (defaults to the layer id).
    #[arg(long)]
    pub title_zh: Option<String>,
    /// Title of a new layer in English (defaults to the layer id).
    #[arg(long)]
    pub title_en: Option<String>,
}

/// What the HTTP layer needs to know.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub read_only: bool,
    /// Memory the vector-tile cache may use, in bytes.
    pub tile_cache_bytes: usize,
    /// Longest a heavy request may take, queueing included.
    pub request_timeout: Duration,
    /// Time requests in flight get after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Longest wait for a whole request head (from a connection's opening or its last answer).
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Heavy requests that run at once (0: one per core).
    pub heavy_jobs: usize,
    /// Heavy requests that may wait for a slot.
    pub heavy_queue: usize,
    /// Largest export built in memory, in bytes (estimated before building).
    pub max_export_bytes: usize,
    /// Whether X-Forwarded-Host/-Proto are believed.
    pub trust_forwarded_headers: bool,
    /// Reads need a token (any role).
    pub private: bool,
    /// Changes without a reason get 400.
    pub require_reason: bool,
    /// JWT sign-in (`--jwt-jwks`), when configured.
    pub jwt: Option<std::sync::Arc<crate::auth::jwt::JwtVerifier>>,
    /// Change-log entries the engine may be behind and still be ready.
    pub ready_max_lag: u64,
    /// 天地图 key handed to the map page (`/map/config.json`).
    pub tianditu_key: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_bytes: 64 * 1024 * 1024,
            read_only: false,
            tile_cache_bytes: 256 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            max_connections: 4096,
            heavy_jobs: 0,
            heavy_queue: 64,
            max_export_bytes: 512 * 1024 * 1024,
            trust_forwarded_headers: false,
            private: false,
            require_reason: false,
            jwt: None,
            ready_max_lag: 1000,
            tianditu_key: None,
        }
    }
}

impl HttpSettings {
    /// The settings `serve` was given.
    pub fn from_args(args: &ServeArgs) -> HttpSettings {
        HttpSettings {
            max_body_bytes: args.max_body_bytes,
            read_only: args.read_only,
            tile_cache_bytes: args.tile_cache_mb.saturating_mul(1024 * 1024),
            request_timeout: args.request_timeout,
            shutdown_grace: args.shutdown_grace,
            header_timeout: args.header_timeout,
            max_connections: args.max_connections as usize,
            heavy_jobs: args.heavy_jobs,
            heavy_queue: args.heavy_queue,
            max_export_bytes: args.max_export_mb.saturating_mul(1024 * 1024),
            trust_forwarded_headers: args.trust_forwarded_headers,
            private: args.private,
            require_reason: args.require_reason,
            // Read asynchronously by `serve` (a file or URL): see `JwtVerifier::from_args`.
            jwt: None,
            ready_max_lag: args.ready_max_lag,
            tianditu_key: args.tianditu_key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_seconds_or_milliseconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "abc", "-1", "0", "NaN", "inf", "1e30"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
