//! The `yizhangtu` command: parses flags and calls the library.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use yizhangtu::app::{import_file_as, import_geojson, App, AppError, FileInput, GeoJsonInput};
use yizhangtu::auth::{new_token, parse_scope, Role};
use yizhangtu::config::{
    AuditCommand, CheckArgs, Cli, Command, ExportArgs, HttpSettings, ImportArgs, ServeArgs,
    TokenCommand, UserCommand,
};
use yizhangtu::formats::geojson::{DecodeError, StreamOptions};
use yizhangtu::formats::{read_geopackage, read_shapefile_zip};
use yizhangtu::geom::crs::Crs;
use yizhangtu::model::Layer;
use yizhangtu::store::Actor;
use yizhangtu::store::{ImportMode, Store};

/// mimalloc: the server's requests allocate and free many small blocks on two threads; it
/// spends less time on them than glibc's allocator (issue 15, `benches/landsurvey.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log lines' buffer, for [`flush_logs`].
static LOG_BUFFER: std::sync::OnceLock<Arc<yizhangtu::logs::LogBuffer>> =
    std::sync::OnceLock::new();

/// Writes the buffered log lines out (before the process leaves).
fn flush_logs() {
    if let Some(b) = LOG_BUFFER.get() {
        b.flush();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Buffered, written out 20 times a second and before the process leaves (src/logs.rs).
    let log_buffer =
        LOG_BUFFER.get_or_init(|| yizhangtu::logs::LogBuffer::start(Box::new(std::io::stderr())));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env();
    let span_directives = filter.is_ok()
        && std::env::var("RUST_LOG").is_ok_and(|f| yizhangtu::logs::filter_names_spans(&f));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter.unwrap_or_else(|_| "yizhangtu=info,tower_http=warn".into()))
        .with_ansi(ansi)
        .with_writer(yizhangtu::logs::LogWriter(Arc::clone(log_buffer)));
    // The lean path's access lines may skip `tracing` (src/logs.rs): the formats below, no
    // colour, and a filter deciding by target and level alone.
    if !ansi && !span_directives {
        yizhangtu::logs::write_access_lines_directly(
            Arc::clone(log_buffer),
            cli.log_format == "json",
        );
    }
    if cli.log_format == "json" {
        logs.json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Import(args) => import(args).await,
        Command::Layers(args) => layers(&args.db).await,
        Command::Check(args) => check(args).await,
        Command::Export(args) => export(args).await,
        Command::Indicators(args) => yizhangtu::monitor::cli::indicators(args).await,
        Command::Projects(args) => yizhangtu::monitor::cli::projects(args).await,
        Command::User(args) => user(args.command).await,
        Command::Token(args) => token(args.command).await,
        Command::Audit(args) => audit(args.command).await,
        Command::Migrate(args) => migrate(args).await,
        Command::PruneChanges(args) => prune_changes(args).await,
    };
    flush_logs();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn progress_bar(what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} features ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_message(what);
    bar
}

/// Gives the memory the engine's load freed back to the system now. mimalloc returns freed
/// memory lazily, at a later collection such as a thread's exit: after a start from the
/// snapshot of 1,000,000 parcels about 90 MB of scratch (the index entries before the R-tree
/// was built, read buffers) stayed resident until a thread of tokio's blocking pool ended,
/// 10 s later.
fn return_freed_memory() {
    // SAFETY: `mi_collect` takes no pointers and only walks mimalloc's own structures; it may
    // be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let _ = tokio::task::spawn_blocking(yizhangtu::http::viewer::prepare_maplibre).await;
    let bar = progress_bar("seeding");
    let report = |n: usize| bar.set_position(n as u64);
    let on_postgres =
        args.db.db.starts_with("postgres://") || args.db.db.starts_with("postgresql://");
    if args.replica && !on_postgres {
        anyhow::bail!(
            "--replica follows a database shared by several processes: give --db postgres://…"
        );
    }
    let seed = !args.no_seed && !args.replica;
    let app = match snapshot_path(&args) {
        Some(path) => {
            let options = yizhangtu::store::StoreOptions::default();
            let t = std::time::Instant::now();
            let (app, used) =
                App::open_with_snapshot(&args.db.db, seed, Some(&report), &options, &path).await?;
            tracing::info!(
                snapshot = used,
                seconds = t.elapsed().as_secs_f64(),
                "engine loaded"
            );
            app
        }
        None => App::open(&args.db.db, seed, Some(&report)).await?,
    };
    bar.finish_and_clear();
    return_freed_memory();
    let app = Arc::new(app);
    app.keep_snapshot(Duration::from_secs(10));
    for idx in app.engine.layers() {
        let idx = idx.read();
        tracing::info!(layer = %idx.layer.id, features = idx.len(), "serving layer {} ({})", idx.layer.title_zh, idx.layer.title_en);
    }
    let mut settings = HttpSettings::from_args(&args);
    settings.jwt = yizhangtu::auth::jwt::JwtVerifier::from_args(&args.jwt)
        .await?
        .map(Arc::new);
    app.follow(Duration::from_millis(args.follow_interval_ms.max(50)));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let url = format!("http://{host}:{}/", addr.port());
    println!(
        "yizhangtu serves {} layers from {} at {url}",
        app.engine.layer_ids().len(),
        args.db.db
    );
    println!("  landing page: {url}   collections: {url}collections   API: {url}api");
    if !app.store.has_active_users().await? {
        println!(
            "  no users yet: every write answers 401. Create the first admin with\n    \
             yizhangtu user add NAME --role admin --db {}\n  and send its token as \
             `Authorization: Bearer <token>`.",
            args.db.db
        );
    }
    tracing::info!(%url, "listening");
    let state = yizhangtu::http::AppState::new(Arc::clone(&app), settings);
    yizhangtu::http::serve(listener, state).await?;
    // A clean shutdown leaves a current snapshot for the next start.
    if let Err(e) = app.write_snapshot().await {
        tracing::warn!(error = %e, "could not write the engine snapshot");
    }
    // Work that outlived the grace period (a blocking computation) must not hold the process:
    // leaving through `main` would wait for it when the runtime drops.
    tracing::info!("stopped");
    flush_logs();
    std::process::exit(0)
}

/// The engine snapshot file of `serve`: `--snapshot`, else `DB.snapshot` beside a SQLite file;
/// none with `--no-snapshot`, for PostgreSQL without `--snapshot`, or for an in-memory database.
fn snapshot_path(args: &ServeArgs) -> Option<std::path::PathBuf> {
    if args.no_snapshot {
        return None;
    }
    if let Some(p) = &args.snapshot {
        return Some(p.clone());
    }
    let db = args.db.db.as_str();
    if db.contains("://") && !db.starts_with("sqlite://") {
        return None;
    }
    let file = db
        .strip_prefix("sqlite://")
        .or_else(|| db.strip_prefix("sqlite:"))
        .unwrap_or(db);
    let file = file.split('?').next().unwrap_or_default();
    if file.is_empty() || file.contains(":memory:") {
        return None;
    }
    Some(format!("{file}.snapshot").into())
}

/// What `import` writes: a file of a tabular format, or GeoJSON, each streamed.
enum ImportInput {
    File(FileInput),
    GeoJson(GeoJsonInput),
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    if !Layer::valid_id(&args.layer) {
        anyhow::bail!(
            "invalid layer name '{}': use lower-case letters, digits, '_' or '-' (at most 64)",
            args.layer
        );
    }
    let ext = args
        .file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let crs = match &args.crs {
        Some(c) => Some(Crs::parse(c).map_err(|e| anyhow::anyhow!("--crs: {e}"))?),
        None => None,
    };
    if args.rebase {
        return rebase(args, crs.as_ref(), &ext).await;
    }
    // Every format is decoded as it is written, so memory does not grow with the file: GeoJSON
    // (a file or `-` for standard input), Shapefile zips and GeoPackages.
    if ext == "gpkg" || ext == "zip" || ext == "shp" {
        std::fs::File::open(&args.file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    }
    // A bare .shp is zipped with the parts beside it into a temporary file (kept until the end).
    let mut _parts = None;
    let input = if ext == "gpkg" {
        ImportInput::File(FileInput::GeoPackage(args.file.clone()))
    } else if ext == "zip" {
        ImportInput::File(FileInput::ShapefileZip(args.file.clone()))
    } else if ext == "shp" {
        let zipped = tempfile::NamedTempFile::new()
            .and_then(|t| yizhangtu::formats::zip_shapefile_parts(&args.file, t))
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
        let input = ImportInput::File(FileInput::ShapefileZip(zipped.path().to_path_buf()));
        _parts = Some(zipped);
        input
    } else if args.file.as_os_str() == "-" {
        ImportInput::GeoJson(GeoJsonInput::Reader(Box::new(std::io::stdin())))
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
        ImportInput::GeoJson(GeoJsonInput::Reader(Box::new(file)))
    };
    let store = Store::open(&args.db.db).await?;
    let existing = store.layer(&args.layer).await?;
    let layer = match existing {
        Some((mut l, _)) => {
            if let Some(t) = args.title_zh {
                l.title_zh = t;
            }
            if let Some(t) = args.title_en {
                l.title_en = t;
            }
            l
        }
        None => {
            let mut l = Layer::untitled(&args.layer);
            l.title_zh = args.title_zh.unwrap_or_else(|| args.layer.clone());
            l.title_en = args.title_en.unwrap_or_else(|| args.layer.clone());
            l
        }
    };
    let mode = if args.replace {
        ImportMode::Replace
    } else {
        ImportMode::Upsert
    };
    let bar = progress_bar("importing");
    let report = |k: usize| bar.set_position(k as u64);
    let (summaries, n) = match input {
        ImportInput::File(input) => {
            let actor = yizhangtu::store::Actor::cli(None);
            let done = import_file_as(
                &store,
                &[layer],
                &args.layer,
                input,
                crs,
                mode,
                Some(&report),
                &actor,
            )
            .await;
            match done {
                Ok(done) => (done.summaries, done.read.total()),
                Err(AppError::Import(e)) => {
                    bar.finish_and_clear();
                    anyhow::bail!("{}: {e}; nothing was imported", args.file.display())
                }
                Err(e) => return Err(e.into()),
            }
        }
        ImportInput::GeoJson(input) => {
            let options = StreamOptions {
                crs,
                allow_single_feature: false,
                ..Default::default()
            };
            let done = import_geojson(
                &store,
                &[layer],
                &args.layer,
                input,
                options,
                mode,
                Some(&report),
            )
            .await;
            match done {
                Ok(done) => (done.summaries, done.read.total),
                Err(AppError::Decode(DecodeError::Features {
                    problems,
                    problems_total,
                    total,
                })) => {
                    bar.finish_and_clear();
                    eprintln!(
                        "{}: {problems_total} of {total} features are invalid; nothing was imported:",
                        args.file.display()
                    );
                    for p in &problems {
                        match &p.id {
                            Some(id) => eprintln!("  feature {} (id {id}): {}", p.index, p.problem),
                            None => eprintln!("  feature {}: {}", p.index, p.problem),
                        }
                    }
                    if problems_total > problems.len() {
                        eprintln!("  … and {} more", problems_total - problems.len());
                    }
                    anyhow::bail!("import failed");
                }
                Err(AppError::Decode(e)) => {
                    anyhow::bail!("{}: {e}; nothing was imported", args.file.display())
                }
                Err(AppError::Store(e @ yizhangtu::store::StoreError::RepeatedId { .. })) => {
                    bar.finish_and_clear();
                    anyhow::bail!("{}: {e}; nothing was imported", args.file.display())
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    bar.finish_and_clear();
    // The next start should not have to read the import back out of the write-ahead log.
    store.checkpoint().await?;
    store.close().await;
    for s in summaries {
        println!(
            "{}: {} features read; {} inserted, {} updated, {} removed (revision {})",
            s.layer, n, s.inserted, s.updated, s.removed, s.revision
        );
    }
    Ok(())
}

/// `import FILE --layer towns --replace --rebase`: official units in, approximate plan features
/// redrawn on them, all in one transaction (see `yizhangtu::place::rebase`).
async fn rebase(args: ImportArgs, crs: Option<&Crs>, ext: &str) -> anyhow::Result<()> {
    let fail = |e: String| anyhow::anyhow!("{}: {e}; nothing was imported", args.file.display());
    let layers = if ext == "gpkg" {
        read_geopackage(&args.file, crs).await
    } else {
        let bytes = if args.file.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).map(|_| b)
        } else {
            std::fs::read(&args.file)
        }
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
        if ext == "zip" {
            read_shapefile_zip(&bytes, crs)
        } else {
            yizhangtu::formats::exchange::read_geojson(&bytes, &args.layer, crs).map(|l| vec![l])
        }
    }
    .map_err(|e| fail(e.to_string()))?;
    let official: Vec<yizhangtu::model::Feature> =
        layers.into_iter().flat_map(|l| l.features).collect();
    let store = Store::open(&args.db.db).await?;
    let Some((layer, _)) = store.layer(&args.layer).await? else {
        anyhow::bail!("no layer '{}' to rebase; nothing was imported", args.layer);
    };
    let current = store.all_features().await?;
    let name = args
        .file
        .file_name()
        .map_or_else(|| "-".into(), |n| n.to_string_lossy().into_owned());
    let done = yizhangtu::place::rebase::rebase(&current, &args.layer, official, &name)
        .map_err(|e| fail(e.to_string()))?;
    let summaries = store
        .import(&[layer], done.features, ImportMode::Upsert, None)
        .await?;
    store.close().await;
    for m in &done.moved {
        let area = m.area_m2.map_or(String::new(), |(a, b)| {
            format!(", {:.1} → {:.1} 亩", a * 15.0 / 10000.0, b * 15.0 / 10000.0)
        });
        println!(
            "{} {}/{} {}: centroid moved {:.0} m{area}",
            m.what, m.layer, m.id, m.name, m.shift_m
        );
    }
    for (id, name) in &done.kept_without_recipe {
        println!("kept {id} {name}: approximate, but it has no placement_recipe to redraw it by");
    }
    for s in summaries {
        println!(
            "{}: {} updated (revision {})",
            s.layer,
            s.inserted + s.updated,
            s.revision
        );
    }
    Ok(())
}

async fn layers(db: &str) -> anyhow::Result<()> {
    let store = Store::open(db).await?;
    let counts = store.counts().await?;
    let layers = store.layers().await?;
    if layers.is_empty() {
        println!("no layers in {db} (`yizhangtu serve` seeds an empty database)");
    }
    for (layer, _) in layers {
        let n = counts
            .iter()
            .find(|(id, _)| id == &layer.id)
            .map_or(0, |(_, n)| *n);
        println!(
            "{:<24} {:>8}  {} / {}",
            layer.id, n, layer.title_zh, layer.title_en
        );
    }
    store.close().await;
    Ok(())
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let bar = progress_bar("seeding");
    let report_progress = |n: usize| bar.set_position(n as u64);
    let app = App::open(&args.db.db, true, Some(&report_progress)).await?;
    bar.finish_and_clear();
    let mut report = tokio::task::spawn_blocking({
        let engine = Arc::clone(&app.engine);
        move || yizhangtu::engine::check::check(&engine)
    })
    .await?;
    report.notes = yizhangtu::monitor::indicators::qualitative_notes();
    let unplaced = yizhangtu::seed::unplaced();
    if args.json {
        let doc = serde_json::json!({"layers": report.layers, "problems": report.problems, "units": report.units, "notes": report.notes, "unplaced": unplaced});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("{:<22} {:>9} {:>9}", "layer", "features", "invalid");
        for (layer, (n, bad)) in &report.layers {
            println!("{layer:<22} {n:>9} {bad:>9}");
        }
        let total: usize = report.layers.values().map(|(n, _)| n).sum();
        println!("{:<22} {:>9} {:>9}", "total", total, report.invalid());
        for p in report.problems.iter().take(200) {
            println!(
                "INVALID {}/{} ({}): {}",
                p.layer,
                p.id,
                p.name.as_deref().unwrap_or("-"),
                p.problem
            );
        }
        if report.problems.len() > 200 {
            println!("… and {} more problems", report.problems.len() - 200);
        }
        report.units.lines().iter().for_each(|l| println!("{l}"));
        yizhangtu::monitor::service::print_notes(&report.notes);
        if let Some(u) = unplaced {
            println!("\nPlan entities not placed, or not placed as finely as the text names them:");
            for section in ["not_placed", "partially_placed", "district_level", "merged"] {
                let items = u
                    .get(section)
                    .and_then(|v| v.as_array())
                    .cloned()
                    .unwrap_or_default();
                println!("  {section} ({}):", items.len());
                for item in items {
                    let get = |k: &str| {
                        item.get(k)
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string()
                    };
                    println!("    [{}] {} — {}", get("plan"), get("name"), get("reason"));
                }
            }
        }
    }
    app.store.close().await;
    if report.invalid() > 0 {
        anyhow::bail!("{} invalid features", report.invalid());
    }
    Ok(())
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use yizhangtu::export::{self as ex, ExportFormat, Selection};
    use yizhangtu::geom::crs::CrsRequest;
    let app = App::open(&args.db.db, true, None).await?;
    let engine = Arc::clone(&app.engine);
    let area = match &args.area {
        None => None,
        Some(a) => {
            let unit = engine
                .resolve_admin(a)
                .map_err(|e| anyhow::anyhow!("--area {a}: {e:?}"))?;
            let prepared = engine
                .admin_area(&unit)
                .ok_or_else(|| anyhow::anyhow!("--area {a}: the unit has no polygon"))?;
            Some((unit, prepared))
        }
    };
    let layers: Vec<String> = match &args.layers {
        Some(l) => l
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => engine.layer_ids(),
    };
    for l in &layers {
        if engine.layer(l).is_none() {
            anyhow::bail!("--layers: no layer '{l}' (see `yizhangtu layers`)");
        }
    }
    let bar = progress_bar("exporting");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    if args.land_consolidation {
        let Some((unit, prepared)) = area else {
            anyhow::bail!("--land-consolidation needs --area <code or name>")
        };
        let file = ex::land_consolidation(&engine, &engine, &unit, prepared, layers)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        bar.finish_and_clear();
        std::fs::write(&args.out, &file.bytes)?;
        println!(
            "{}: land-consolidation bundle for {} {} ({} features, {} bytes)",
            args.out.display(),
            unit.code,
            unit.name,
            file.features,
            file.bytes.len()
        );
        return Ok(());
    }
    let ext = args.out.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format_text = args.format.clone().unwrap_or_else(|| ext.to_string());
    let format = ExportFormat::parse(&format_text).ok_or_else(|| {
        anyhow::anyhow!("--format {format_text}: use geojson, gpkg, shp, csv or txt")
    })?;
    let encoding = yizhangtu::formats::DbfEncoding::parse(&args.encoding)
        .ok_or_else(|| anyhow::anyhow!("--encoding {}: use gbk or utf-8", args.encoding))?;
    let bbox = match &args.bbox {
        Some(b) => Some(
            yizhangtu::geom::Bbox::parse(b)
                .map_err(|e| anyhow::anyhow!("--bbox: {e}"))?
                .to_rect(),
        ),
        None => None,
    };
    let sel = Selection {
        layers,
        area,
        bbox,
        filter: args.filter.clone(),
        plan: None,
    };
    let chosen = ex::select(&engine, &sel).map_err(|e| anyhow::anyhow!(e))?;
    let default = match format {
        ExportFormat::Txt => CrsRequest::AutoGk { zone_prefix: true },
        ExportFormat::GeoJson => CrsRequest::Fixed(Crs::Crs84),
        _ => CrsRequest::Fixed(Crs::Epsg4490),
    };
    let req = match &args.crs {
        Some(c) => CrsRequest::parse(c).map_err(|e| anyhow::anyhow!("--crs: {e}"))?,
        None => default,
    };
    let crs = req.resolve(ex::centre_lon(
        &chosen,
        sel.area.as_ref().map(|(_, a)| a.as_ref()),
    ));
    let total: usize = chosen.iter().map(|(_, f)| f.len()).sum();
    bar.set_length(total as u64);
    if format == ExportFormat::GeoJson {
        let file = std::fs::File::create(&args.out)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let n = ex::write_geojson_stream(&chosen, &crs, &mut w)?;
        std::io::Write::flush(&mut w)?;
        bar.finish_and_clear();
        println!(
            "{}: {n} features as GeoJSON in {}",
            args.out.display(),
            crs.uri()
        );
        return Ok(());
    }
    let file = ex::write(&chosen, format, &crs, encoding, "export")
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    bar.finish_and_clear();
    std::fs::write(&args.out, &file.bytes)?;
    println!(
        "{}: {} features in {}",
        args.out.display(),
        file.features,
        crs.uri()
    );
    Ok(())
}

/// The audit row of a user change made from the command line.
fn cli_entry(action: &str, name: &str) -> yizhangtu::store::AuditEntry {
    Actor::cli(None).entry(action, None, vec![name.to_string()])
}

fn print_token(name: &str, token: &str) {
    println!("{token}");
    eprintln!(
        "This is {name}'s API token; it is shown only now (only a hash is stored). \
         Send it as `Authorization: Bearer <token>`."
    );
}

async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            db,
            name,
            role,
            districts,
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                anyhow::bail!("a user name is 1 to 128 printable characters");
            }
            let Some(r) = Role::parse(&role) else {
                anyhow::bail!("--role '{role}': use viewer, editor, steward or admin");
            };
            let scope = parse_scope(districts.as_deref().unwrap_or(""))
                .map_err(|e| anyhow::anyhow!("--districts: {e}"))?;
            if !scope.is_empty() && matches!(r, Role::Viewer | Role::Admin) {
                anyhow::bail!("--districts scopes editors and stewards; a {role} has no scope");
            }
            let store = Store::open(&db.db).await?;
            let t = new_token().map_err(|e| anyhow::anyhow!("cannot make a token: {e}"))?;
            let mut entry = cli_entry("user add", &name);
            entry.reason = Some(format!("role {role}, districts [{}]", scope.join(",")));
            match store
                .add_user(&name, r.as_str(), &scope, &t.id, &t.hash, &entry)
                .await?
            {
                None => anyhow::bail!("a user named '{name}' exists already"),
                Some(_) => print_token(&name, &t.token),
            }
            if matches!(r, Role::Editor | Role::Steward) && scope.is_empty() {
                eprintln!("{name} may write anywhere in the county (no --districts given).");
            }
            Ok(())
        }
        UserCommand::List { db } => {
            let store = Store::open(&db.db).await?;
            println!("name\trole\tdistricts\tstatus\tcreated");
            for u in store.users().await? {
                let status = match &u.revoked_at {
                    Some(t) => format!("revoked {t}"),
                    None => "active".into(),
                };
                let scope = if u.scope.is_empty() {
                    "*".to_string()
                } else {
                    u.scope.join(",")
                };
                println!(
                    "{}\t{}\t{scope}\t{status}\t{}",
                    u.name, u.role, u.created_at
                );
            }
            Ok(())
        }
        UserCommand::Revoke { db, name } => {
            let store = Store::open(&db.db).await?;
            if !store
                .revoke_user(&name, &cli_entry("user revoke", &name))
                .await?
            {
                anyhow::bail!("no active user named '{name}'");
            }
            println!("revoked {name}");
            Ok(())
        }
    }
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Rotate { db, name } => {
            let store = Store::open(&db.db).await?;
            let t = new_token().map_err(|e| anyhow::anyhow!("cannot make a token: {e}"))?;
            if !store
                .set_token(&name, &t.id, &t.hash, &cli_entry("token rotate", &name))
                .await?
            {
                anyhow::bail!("no active user named '{name}'");
            }
            print_token(&name, &t.token);
            Ok(())
        }
    }
}

async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { db } => {
            let store = Store::open(&db.db).await?;
            match store.verify_audit().await? {
                Ok(n) => {
                    println!("audit log intact: {n} rows, hash chain verified");
                    Ok(())
                }
                Err(b) => anyhow::bail!("audit row {} is broken: {}", b.seq, b.why),
            }
        }
    }
}

async fn prune_changes(args: yizhangtu::config::PruneChangesArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.db.db).await?;
    let p = store.prune_changes(args.keep, &Actor::cli(None)).await?;
    println!(
        "deleted {} change-log rows; the log now starts after {} (newest {})",
        p.deleted, p.pruned_upto, p.newest
    );
    Ok(())
}

async fn migrate(args: yizhangtu::config::MigrateArgs) -> anyhow::Result<()> {
    let from = args.from.strip_prefix("sqlite://").unwrap_or(&args.from);
    if !std::path::Path::new(from.split('?').next().unwrap_or(from)).is_file() {
        anyhow::bail!("{}: no such SQLite file", args.from);
    }
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        anyhow::bail!(
            "--to {}: migrate fills a PostgreSQL database (postgres://…)",
            args.to
        );
    }
    let source = Store::open(&args.from).await?;
    let target = Store::open(&args.to).await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let counts = source
        .migrate_to(&args.from, &target, &|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let counts = counts?;
    for (table, n) in counts {
        println!("{table}: {n} rows copied and counted");
    }
    source.close().await;
    target.close().await;
    Ok(())
}
