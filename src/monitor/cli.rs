//! `yizhangtu indicators …` and `yizhangtu projects …`: the local, trusted way to add
//! observations and progress reports (HTTP writes wait for accounts).

use clap::{Args, Subcommand};

use super::service::{self, MonitorError, ProgressUpdate};
use crate::app::App;

#[derive(Debug, Clone, Args)]
pub struct IndicatorsArgs {
    #[command(subcommand)]
    pub command: IndicatorsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum IndicatorsCommand {
    /// Append observations from a CSV file with the header `indicator,value,date,source[,note]`
    /// (UTF-8); all rows or none.
    Import {
        file: std::path::PathBuf,
        #[command(flatten)]
        db: crate::config::DbArgs,
        /// Who records them (kept with every observation).
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ProjectsArgs {
    #[command(subcommand)]
    pub command: ProjectsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ProjectsCommand {
    /// Record progress reports from a CSV file with the header `id,source` and any of `status`
    /// (planned/started/completed/suspended/cancelled or 计划/在建/完成/暂停/撤销), `progress_percent`,
    /// `investment_done_wan_yuan`, `reported_on`, `start_date`, `end_date`, `note`; each row
    /// updates the project feature (through the change log) and is kept in its history.
    Progress {
        file: std::path::PathBuf,
        #[command(flatten)]
        db: crate::config::DbArgs,
        #[arg(long, default_value = "cli")]
        by: String,
        /// The project layer.
        #[arg(long, default_value = "projects")]
        layer: String,
    },
}

fn read(file: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

fn explain(e: MonitorError) -> anyhow::Error {
    match e {
        MonitorError::Invalid(problems) => {
            anyhow::anyhow!("nothing recorded:\n  {}", problems.join("\n  "))
        }
        other => other.into(),
    }
}

pub async fn indicators(args: IndicatorsArgs) -> anyhow::Result<()> {
    let IndicatorsCommand::Import { file, db, by } = args.command;
    let observations = service::observations_from_csv(&read(&file)?).map_err(explain)?;
    let app = App::open(&db.db, true, None).await?;
    let seqs = service::add_observations(&app.store, &observations, &by)
        .await
        .map_err(explain)?;
    println!("recorded {} observations", seqs.len());
    Ok(())
}

/// Progress reports from CSV, each with its line number.
pub fn progress_from_csv(text: &str) -> Result<Vec<(usize, String, ProgressUpdate)>, MonitorError> {
    let (header, rows) = service::read_csv(text, &["id", "source"])?;
    let col = |name: &str| service::column(&header, name);
    let cid = col("id").unwrap_or(0);
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (line, rec) in rows {
        let get = |name: &str| {
            col(name)
                .and_then(|i| rec.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let mut num = |name: &str| match get(name) {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(x) => Some(x),
                Err(_) => {
                    problems.push(format!("CSV line {line}: {name} '{v}' is not a number"));
                    None
                }
            },
        };
        let update = ProgressUpdate {
            progress_percent: num("progress_percent"),
            investment_done_wan_yuan: num("investment_done_wan_yuan"),
            status: get("status"),
            start_date: get("start_date"),
            end_date: get("end_date"),
            reported_on: get("reported_on"),
            source: get("source").unwrap_or_default(),
            note: get("note").unwrap_or_default(),
        };
        out.push((line, rec.get(cid).unwrap_or("").to_string(), update));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(MonitorError::Invalid(problems))
    }
}

pub async fn projects(args: ProjectsArgs) -> anyhow::Result<()> {
    let ProjectsCommand::Progress {
        file,
        db,
        by,
        layer,
    } = args.command;
    let rows = progress_from_csv(&read(&file)?).map_err(explain)?;
    let app = App::open(&db.db, true, None).await?;
    for (n, (line, id, update)) in rows.iter().enumerate() {
        let p = service::record_progress(&app, &layer, id, update, &by)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "CSV line {line} (project {id}): {e}; the {n} rows before it were recorded"
                )
            })?;
        println!("{layer}/{id}: {} ({})", p.status.as_str(), p.status.zh());
    }
    println!("recorded {} progress reports", rows.len());
    Ok(())
}
