//! Plans, indicators, their observations and project progress records (migration 0003).
//! Observations and progress records are only ever appended.

use super::rows::StoreRow;
use super::sqlite::{now, Store, StoreError};
use crate::monitor::indicators::{Direction, Indicator, Observation};
use crate::monitor::lifecycle::{Progress, ProjectStatus};
use crate::monitor::plans::{Period, Plan};

pub(super) fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Increase => "increase",
        Direction::Decrease => "decrease",
        Direction::Keep => "keep",
    }
}

pub(super) fn direction(text: &str) -> Direction {
    match text {
        "decrease" => Direction::Decrease,
        "keep" => Direction::Keep,
        _ => Direction::Increase,
    }
}

fn corrupt(table: &str, id: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        layer: table.into(),
        id: id.into(),
        reason: reason.into(),
    }
}

impl Store {
    /// Whether the plan tables are still empty (a database made before them, or a new one).
    pub async fn plans_empty(&self) -> Result<bool, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.plans_empty().await);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plans")
            .fetch_one(pool)
            .await?;
        Ok(n == 0)
    }

    /// Writes the plans, their indicators and the projects' first progress records in one
    /// transaction.
    pub async fn seed_plans(
        &self,
        plans: &[Plan],
        indicators: &[Indicator],
        progress: &[Progress],
    ) -> Result<(), StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.seed_plans(plans, indicators, progress).await);
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        for p in plans {
            sqlx::query(
                "INSERT INTO plans (id, title, issuer, doc_number, issued, period_start, period_end, \
                 period_text, district, district_code, focus_unit, focus_code, document) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&p.id)
            .bind(&p.title)
            .bind(&p.issuer)
            .bind(&p.doc_number)
            .bind(&p.date)
            .bind(p.period.start)
            .bind(p.period.end)
            .bind(&p.period.as_written)
            .bind(&p.district)
            .bind(&p.district_code)
            .bind(&p.focus_unit)
            .bind(&p.focus_code)
            .bind(&p.document)
            .execute(&mut *tx)
            .await?;
        }
        for i in indicators {
            sqlx::query(
                "INSERT INTO indicators (id, plan, name, scope_code, scope_text, unit, baseline_value, \
                 baseline_year, target_value, target_year, binding, direction, category, quote, catalog) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&i.id)
            .bind(&i.plan)
            .bind(&i.name)
            .bind(&i.scope_code)
            .bind(&i.scope_text)
            .bind(&i.unit)
            .bind(i.baseline_value)
            .bind(i.baseline_year)
            .bind(i.target_value)
            .bind(i.target_year)
            .bind(&i.binding)
            .bind(direction_str(i.direction))
            .bind(&i.category)
            .bind(&i.quote)
            .bind(&i.catalog)
            .execute(&mut *tx)
            .await?;
        }
        let at = now();
        for p in progress {
            insert_progress(&mut tx, p, &at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn plans(&self) -> Result<Vec<Plan>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.plans().await);
        let rows = sqlx::query("SELECT * FROM plans ORDER BY id")
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(plan_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub async fn indicators(&self) -> Result<Vec<Indicator>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.indicators().await);
        let rows = sqlx::query("SELECT * FROM indicators ORDER BY id")
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(indicator_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Every observation, in the order recorded.
    pub async fn observations(&self) -> Result<Vec<Observation>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.observations().await);
        let rows = sqlx::query("SELECT * FROM observations ORDER BY seq")
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(observation_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Appends observations in one transaction (all or none); returns their sequence numbers.
    /// The caller has checked them (known indicator, finite value, a date).
    pub async fn add_observations(
        &self,
        observations: &[Observation],
        recorded_by: &str,
    ) -> Result<Vec<i64>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.add_observations(observations, recorded_by).await);
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let at = now();
        let mut seqs = Vec::with_capacity(observations.len());
        for o in observations {
            let r = sqlx::query(
                "INSERT INTO observations (indicator, value, observed_on, source, note, recorded_by, recorded_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&o.indicator)
            .bind(o.value)
            .bind(&o.date)
            .bind(&o.source)
            .bind(&o.note)
            .bind(recorded_by)
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            seqs.push(r.last_insert_rowid());
        }
        tx.commit().await?;
        Ok(seqs)
    }

    /// Appends one progress record.
    pub async fn add_progress(&self, p: &Progress) -> Result<i64, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.add_progress(p).await);
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let seq = insert_progress(&mut tx, p, &now()).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// A project's progress records, oldest first.
    pub async fn progress_history(
        &self,
        layer: &str,
        feature_id: &str,
    ) -> Result<Vec<Progress>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.progress_history(layer, feature_id).await);
        let rows = sqlx::query(
            "SELECT * FROM project_progress WHERE layer = ? AND feature_id = ? ORDER BY seq",
        )
        .bind(layer)
        .bind(feature_id)
        .fetch_all(pool)
        .await?;
        rows.iter().map(progress_from_row).collect()
    }

    /// Every progress record of every project, oldest first.
    pub async fn all_progress(&self) -> Result<Vec<Progress>, StoreError> {
        let pool = sqlite_or_pg!(self, pg => pg.all_progress().await);
        let rows = sqlx::query("SELECT * FROM project_progress ORDER BY seq")
            .fetch_all(pool)
            .await?;
        rows.iter().map(progress_from_row).collect()
    }
}

pub(super) fn progress_from_row(r: &impl StoreRow) -> Result<Progress, StoreError> {
    let status: String = r.col("status")?;
    let feature_id: String = r.col("feature_id")?;
    Ok(Progress {
        seq: r.col("seq")?,
        layer: r.col("layer")?,
        status: ProjectStatus::parse(&status).ok_or_else(|| {
            corrupt(
                "project_progress",
                &feature_id,
                format!("status '{status}'"),
            )
        })?,
        feature_id,
        start_date: r.col("start_date")?,
        end_date: r.col("end_date")?,
        progress_percent: r.col("progress_percent")?,
        investment_done_wan_yuan: r.col("investment_done_wan_yuan")?,
        reported_on: r.col("reported_on")?,
        source: r.col("source")?,
        note: r.col("note")?,
        recorded_by: r.col("recorded_by")?,
        recorded_at: r.col("recorded_at")?,
    })
}

pub(super) fn plan_from_row(r: &impl StoreRow) -> Result<Plan, sqlx::Error> {
    Ok(Plan {
        id: r.col("id")?,
        title: r.col("title")?,
        issuer: r.col("issuer")?,
        doc_number: r.col("doc_number")?,
        date: r.col("issued")?,
        period: Period {
            start: r.col("period_start")?,
            end: r.col("period_end")?,
            as_written: r.col("period_text")?,
        },
        district: r.col("district")?,
        district_code: r.col("district_code")?,
        focus_unit: r.col("focus_unit")?,
        focus_code: r.col("focus_code")?,
        document: r.col("document")?,
    })
}

pub(super) fn indicator_from_row(r: &impl StoreRow) -> Result<Indicator, sqlx::Error> {
    let dir: String = r.col("direction")?;
    Ok(Indicator {
        id: r.col("id")?,
        plan: r.col("plan")?,
        name: r.col("name")?,
        scope_code: r.col("scope_code")?,
        scope_text: r.col("scope_text")?,
        unit: r.col("unit")?,
        baseline_value: r.col("baseline_value")?,
        baseline_year: r.col("baseline_year")?,
        target_value: r.col("target_value")?,
        target_year: r.col("target_year")?,
        binding: r.col("binding")?,
        direction: direction(&dir),
        category: r.col("category")?,
        quote: r.col("quote")?,
        catalog: r.col("catalog")?,
    })
}

pub(super) fn observation_from_row(r: &impl StoreRow) -> Result<Observation, sqlx::Error> {
    Ok(Observation {
        seq: r.col("seq")?,
        indicator: r.col("indicator")?,
        value: r.col("value")?,
        date: r.col("observed_on")?,
        source: r.col("source")?,
        note: r.col("note")?,
        recorded_by: r.col("recorded_by")?,
        recorded_at: r.col("recorded_at")?,
    })
}

async fn insert_progress(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    p: &Progress,
    at: &str,
) -> Result<i64, StoreError> {
    let r = sqlx::query(
        "INSERT INTO project_progress (layer, feature_id, status, start_date, end_date, progress_percent, \
         investment_done_wan_yuan, reported_on, source, note, recorded_by, recorded_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&p.layer)
    .bind(&p.feature_id)
    .bind(p.status.as_str())
    .bind(&p.start_date)
    .bind(&p.end_date)
    .bind(p.progress_percent)
    .bind(p.investment_done_wan_yuan)
    .bind(&p.reported_on)
    .bind(&p.source)
    .bind(&p.note)
    .bind(&p.recorded_by)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(r.last_insert_rowid())
}
