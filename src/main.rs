//! The `yizhangtu` command: parses flags and calls the library.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use yizhangtu::app::App;
use yizhangtu::config::{CheckArgs, Cli, Command, HttpSettings, ImportArgs, ServeArgs};
use yizhangtu::formats::geojson::{decode_feature_collection, DecodeError};
use yizhangtu::model::Layer;
use yizhangtu::store::{ImportMode, Store};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "yizhangtu=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Import(args) => import(args).await,
        Command::Layers(args) => layers(&args.db).await,
        Command::Check(args) => check(args).await,
    };
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

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let _ = tokio::task::spawn_blocking(yizhangtu::http::viewer::prepare_maplibre).await;
    let bar = progress_bar("seeding");
    let report = |n: usize| bar.set_position(n as u64);
    let app = App::open(&args.db.db, !args.no_seed, Some(&report)).await?;
    bar.finish_and_clear();
    let app = Arc::new(app);
    for idx in app.engine.layers() {
        let idx = idx.read();
        tracing::info!(layer = %idx.layer.id, features = idx.len(), "serving layer {} ({})", idx.layer.title_zh, idx.layer.title_en);
    }
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
    tracing::info!(%url, "listening");
    let state = yizhangtu::http::AppState::new(
        app,
        HttpSettings {
            max_body_bytes: args.max_body_bytes,
            read_only: args.read_only,
            tile_cache_bytes: args.tile_cache_mb * 1024 * 1024,
        },
    );
    yizhangtu::http::serve(listener, state).await?;
    Ok(())
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    if !Layer::valid_id(&args.layer) {
        anyhow::bail!(
            "invalid layer name '{}': use lower-case letters, digits, '_' or '-' (at most 64)",
            args.layer
        );
    }
    let bytes = if args.file.as_os_str() == "-" {
        use std::io::Read;
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(&args.file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?
    };
    let decoded = match decode_feature_collection(&bytes, &args.layer) {
        Ok(d) => d,
        Err(DecodeError::Features {
            problems,
            problems_total,
            total,
        }) => {
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
        Err(e) => anyhow::bail!("{}: {e}; nothing was imported", args.file.display()),
    };
    let features: Vec<_> = decoded
        .into_iter()
        .map(|(id, mut f)| {
            f.id = id.unwrap_or_default();
            f
        })
        .collect();
    let n = features.len();
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
    let summaries = store
        .import(&[layer], features, mode, Some(&report))
        .await?;
    bar.finish_and_clear();
    store.close().await;
    for s in summaries {
        println!(
            "{}: {} features read; {} inserted, {} updated, {} removed (revision {})",
            s.layer, n, s.inserted, s.updated, s.removed, s.revision
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
    let report = tokio::task::spawn_blocking({
        let engine = Arc::clone(&app.engine);
        move || yizhangtu::engine::check::check(&engine)
    })
    .await?;
    let unplaced = yizhangtu::seed::unplaced();
    if args.json {
        let doc = serde_json::json!({"layers": report.layers, "problems": report.problems, "unplaced": unplaced});
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
