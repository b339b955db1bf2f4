//! The monitoring rules put to work on the running service: seeding the plan tables, adding
//! observations and progress reports (checked, then stored, then shown), and gathering an
//! area's report. Used by the CLI and the HTTP handlers.

use serde_json::Value;
use std::sync::Arc;

use super::indicators::{Indicator, Observation};
use super::lifecycle::{apply, current, Progress, PROJECT_LAYERS};
use super::plans::Plan;
use super::report::{self, Monitoring, UnitRef};
use super::{format_date, parse_date};
use crate::app::{App, AppError};
use crate::engine::Engine;
use crate::model::Feature;
use crate::store::{ImportMode, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The input is wrong; each line names the record and the field.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    App(#[from] AppError),
}

/// Every project feature the engine holds.
pub fn project_features(engine: &Engine) -> Vec<Arc<Feature>> {
    PROJECT_LAYERS
        .iter()
        .filter_map(|l| engine.layer(l))
        .flat_map(|idx| {
            let idx = idx.read();
            idx.iter().map(|(_, f)| f).collect::<Vec<_>>()
        })
        .collect()
}

/// Seeds plans, indicators and each project's first progress record (what the plan says) when
/// the plan tables are empty: a new database, or one made before they existed.
pub async fn seed(store: &Store, engine: &Engine) -> Result<(), AppError> {
    if !store.plans_empty().await? {
        return Ok(());
    }
    let plans =
        super::plans::bundled().map_err(|e| AppError::Task(format!("seeds/plans.json: {e}")))?;
    let bundle = super::indicators::bundled()
        .map_err(|e| AppError::Task(format!("seeds/indicators.json: {e}")))?;
    let progress: Vec<Progress> = project_features(engine)
        .iter()
        .map(|f| {
            let plan = plan_of(f, &plans);
            let mut p = current(f, plan);
            let seeded = super::lifecycle::seeded(f, plan);
            p.source = seeded.source;
            p.note = seeded.note;
            p.recorded_by = "seed".into();
            if p.reported_on.is_empty() {
                p.reported_on = seeded.reported_on;
            }
            p
        })
        .collect();
    store
        .seed_plans(&plans, &bundle.indicators, &progress)
        .await?;
    Ok(())
}

fn plan_of<'a>(f: &Feature, plans: &'a [Plan]) -> Option<&'a Plan> {
    let id = f.properties.get("plan").and_then(Value::as_str)?;
    plans.iter().find(|p| p.id == id)
}

/// Checks observations against the known indicators: an indicator id that exists, a finite
/// value, a date `YYYY-MM-DD` not after today, a source.
pub fn check_observations(
    observations: &[Observation],
    indicators: &[Indicator],
) -> Result<(), MonitorError> {
    let mut problems = Vec::new();
    let today = super::today();
    for (n, o) in observations.iter().enumerate() {
        let at = format!("observation {} (indicator '{}')", n + 1, o.indicator);
        if !indicators.iter().any(|i| i.id == o.indicator) {
            problems.push(format!("{at}: no such indicator"));
        }
        if !o.value.is_finite() {
            problems.push(format!("{at}: value must be a finite number"));
        }
        match parse_date(&o.date) {
            Err(e) => problems.push(format!("{at}: date: {e}")),
            Ok(d) if d > today => problems.push(format!(
                "{at}: date {} is in the future (today is {})",
                o.date,
                format_date(today)
            )),
            Ok(_) => {}
        }
        if o.source.trim().is_empty() {
            problems.push(format!(
                "{at}: source is required (where the value comes from)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MonitorError::Invalid(problems))
    }
}

/// Checks and appends observations, all or none; returns their sequence numbers.
pub async fn add_observations(
    store: &Store,
    observations: &[Observation],
    recorded_by: &str,
) -> Result<Vec<i64>, MonitorError> {
    let indicators = store.indicators().await?;
    check_observations(observations, &indicators)?;
    Ok(store.add_observations(observations, recorded_by).await?)
}

/// CSV text (UTF-8, a BOM is fine, fields trimmed): the header, which must name `required`
/// (any order, any case), and each record with its line number.
pub fn read_csv(
    text: &str,
    required: &[&str],
) -> Result<(csv::StringRecord, Vec<(usize, csv::StringRecord)>), MonitorError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| MonitorError::Invalid(vec![format!("CSV header: {e}")]))?
        .clone();
    let mut problems: Vec<String> = required
        .iter()
        .filter(|c| column(&header, c).is_none())
        .map(|c| {
            format!(
                "CSV header: column '{c}' is missing (have: {})",
                header.iter().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    let mut rows = Vec::new();
    for (n, rec) in reader.records().enumerate() {
        match rec {
            Ok(r) => rows.push((n + 2, r)),
            Err(e) => problems.push(format!("CSV line {}: {e}", n + 2)),
        }
    }
    if problems.is_empty() {
        Ok((header, rows))
    } else {
        Err(MonitorError::Invalid(problems))
    }
}

/// The position of a column, by name in any case.
pub fn column(header: &csv::StringRecord, name: &str) -> Option<usize> {
    header.iter().position(|h| h.eq_ignore_ascii_case(name))
}

/// Observations from CSV with a header row naming `indicator,value,date,source` and optionally
/// `note`.
pub fn observations_from_csv(text: &str) -> Result<Vec<Observation>, MonitorError> {
    let (header, rows) = read_csv(text, &["indicator", "value", "date", "source"])?;
    let col = |name: &str| column(&header, name).unwrap_or(0);
    let (ci, cv, cd, cs) = (col("indicator"), col("value"), col("date"), col("source"));
    let cn = column(&header, "note");
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (line, rec) in rows {
        let get = |i: usize| rec.get(i).unwrap_or("").to_string();
        let Ok(value) = get(cv).parse::<f64>() else {
            problems.push(format!(
                "CSV line {line}: value '{}' is not a number",
                get(cv)
            ));
            continue;
        };
        out.push(Observation {
            seq: 0,
            indicator: get(ci),
            value,
            date: get(cd),
            source: get(cs),
            note: cn.map(get).unwrap_or_default(),
            recorded_by: String::new(),
            recorded_at: String::new(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(MonitorError::Invalid(problems))
    }
}

/// A progress report for a project: what changes (unset fields keep their current value).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ProgressUpdate {
    pub status: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub progress_percent: Option<f64>,
    pub investment_done_wan_yuan: Option<f64>,
    /// Defaults to today.
    pub reported_on: Option<String>,
    pub source: String,
    #[serde(default)]
    pub note: String,
}

/// Records a project's progress: the feature's properties are updated through the store's
/// normal write path (so the change log, history and every reader see it) and the report is
/// appended to the project's history.
pub async fn record_progress(
    app: &App,
    layer: &str,
    id: &str,
    update: &ProgressUpdate,
    recorded_by: &str,
) -> Result<Progress, MonitorError> {
    if !PROJECT_LAYERS.contains(&layer) {
        return Err(MonitorError::NotFound(format!(
            "layer '{layer}' has no project lifecycle (project layers: {})",
            PROJECT_LAYERS.join(", ")
        )));
    }
    let feature = app
        .engine
        .layer(layer)
        .and_then(|idx| idx.read().get(id).map(|f| (*f).clone()))
        .ok_or_else(|| MonitorError::NotFound(format!("no project {layer}/{id}")))?;
    let plans = app.store.plans().await?;
    let mut p = current(&feature, plan_of(&feature, &plans));
    let mut problems = Vec::new();
    if let Some(s) = &update.status {
        match super::lifecycle::ProjectStatus::parse(s) {
            Some(s) => p.status = s,
            None => problems.push(format!(
                "status '{s}': use planned, started, completed, suspended or cancelled (计划, 在建, 完成, 暂停, 撤销)"
            )),
        }
    }
    for (name, v, slot) in [
        ("start_date", &update.start_date, &mut p.start_date),
        ("end_date", &update.end_date, &mut p.end_date),
    ] {
        if let Some(v) = v {
            match parse_date(v) {
                Ok(_) => *slot = Some(v.trim().to_string()),
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
    }
    if let Some(v) = update.progress_percent {
        if (0.0..=100.0).contains(&v) {
            p.progress_percent = Some(v);
        } else {
            problems.push(format!("progress_percent {v}: must be from 0 to 100"));
        }
    }
    if let Some(v) = update.investment_done_wan_yuan {
        if v.is_finite() && v >= 0.0 {
            p.investment_done_wan_yuan = Some(v);
        } else {
            problems.push(format!("investment_done_wan_yuan {v}: must be 0 or more"));
        }
    }
    p.reported_on = match &update.reported_on {
        Some(d) => match parse_date(d) {
            Ok(_) => d.trim().to_string(),
            Err(e) => {
                problems.push(format!("reported_on: {e}"));
                String::new()
            }
        },
        None => format_date(super::today()),
    };
    if update.source.trim().is_empty() {
        problems.push("source is required (who reports the progress, or the document)".into());
    }
    if !problems.is_empty() {
        return Err(MonitorError::Invalid(problems));
    }
    p.source = update.source.clone();
    p.note = update.note.clone();
    p.recorded_by = recorded_by.to_string();
    let mut changed = feature;
    apply(&mut changed.properties, &p);
    app.import(&[], vec![changed], ImportMode::Upsert).await?;
    p.seq = app.store.add_progress(&p).await?;
    Ok(p)
}

/// The monitoring report of an admin unit (district, town or village) on `asof`.
pub async fn monitoring(
    app: &App,
    area: &crate::engine::AdminUnit,
    asof: time::Date,
) -> Result<Monitoring, MonitorError> {
    let plans = app.store.plans().await?;
    let indicators = app.store.indicators().await?;
    let observations = app.store.observations().await?;
    let unit_ref = |u: &crate::engine::AdminUnit| UnitRef {
        code: u.code.clone(),
        name: u.name.clone(),
        level: format!("{:?}", u.level).to_lowercase(),
    };
    let children = app
        .engine
        .admin_children(&area.code)
        .iter()
        .map(unit_ref)
        .collect();
    // Before today, each project is as its newest report on or before `asof` says.
    let mut history = std::collections::HashMap::new();
    if asof < super::today() {
        for p in app.store.all_progress().await? {
            let on_time = parse_date(&p.reported_on).is_ok_and(|d| d <= asof);
            if on_time || !history.contains_key(&(p.layer.clone(), p.feature_id.clone())) {
                history.insert((p.layer.clone(), p.feature_id.clone()), p);
            }
        }
    }
    Ok(report::build(report::Inputs {
        area: unit_ref(area),
        children,
        projects: project_features(&app.engine),
        plans: &plans,
        indicators: &indicators,
        observations: &observations,
        asof,
        history: &history,
    }))
}

/// `yizhangtu check`'s lines for what was knowingly left out (qualitative targets).
pub fn print_notes(notes: &[crate::engine::check::Problem]) {
    if notes.is_empty() {
        return;
    }
    println!("\nPlan targets not seeded as indicators (qualitative), with the reason:");
    for n in notes {
        println!(
            "  {} {}: {}",
            n.id,
            n.name.as_deref().unwrap_or("-"),
            n.problem
        );
    }
}
