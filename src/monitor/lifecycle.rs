//! A project's lifecycle: status (计划 planned, 在建 started, 完成 completed, 暂停 suspended,
//! 撤销 cancelled), period, progress and investment done. The current state lives in the
//! project feature's properties; every report is also kept in `project_progress`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::datetime::{END, START};
use super::plans::Plan;
use crate::model::{Feature, Properties};

/// Layers whose features are projects with a lifecycle.
pub const PROJECT_LAYERS: &[&str] = &["projects"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProjectStatus {
    Planned,
    Started,
    Completed,
    Suspended,
    Cancelled,
}

impl ProjectStatus {
    pub const ALL: [ProjectStatus; 5] = [
        ProjectStatus::Planned,
        ProjectStatus::Started,
        ProjectStatus::Completed,
        ProjectStatus::Suspended,
        ProjectStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectStatus::Planned => "planned",
            ProjectStatus::Started => "started",
            ProjectStatus::Completed => "completed",
            ProjectStatus::Suspended => "suspended",
            ProjectStatus::Cancelled => "cancelled",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            ProjectStatus::Planned => "计划",
            ProjectStatus::Started => "在建",
            ProjectStatus::Completed => "完成",
            ProjectStatus::Suspended => "暂停",
            ProjectStatus::Cancelled => "撤销",
        }
    }

    /// The English code or the Chinese word.
    pub fn parse(text: &str) -> Option<ProjectStatus> {
        let t = text.trim();
        ProjectStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(t) || s.zh() == t)
            .or(match t {
                "取消" | "已取消" => Some(ProjectStatus::Cancelled),
                "已完成" | "完工" | "竣工" => Some(ProjectStatus::Completed),
                "新建" | "新开工" => Some(ProjectStatus::Planned),
                "续建" => Some(ProjectStatus::Started),
                _ => None,
            })
    }

    /// Whether a project in this status can still be late.
    pub fn open(self) -> bool {
        !matches!(self, ProjectStatus::Completed | ProjectStatus::Cancelled)
    }
}

/// One progress report of a project (the seeded one says what the plan says).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub seq: i64,
    pub layer: String,
    pub feature_id: String,
    pub status: ProjectStatus,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub progress_percent: Option<f64>,
    pub investment_done_wan_yuan: Option<f64>,
    /// The date the report describes, `YYYY-MM-DD`.
    pub reported_on: String,
    pub source: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub recorded_by: String,
    #[serde(default)]
    pub recorded_at: String,
}

/// Start and end years from the catalog's `period`: "2021-2025", "2022", or
/// `{"start": 2024, "end": 2025}`.
fn period_years(v: Option<&Value>) -> Option<(i32, i32)> {
    match v? {
        Value::Object(m) => {
            let year = |k: &str| m.get(k).and_then(Value::as_i64).map(|y| y as i32);
            Some((year("start")?, year("end")?))
        }
        Value::String(s) => {
            let years: Vec<i32> = s
                .split(|c: char| !c.is_ascii_digit())
                .filter(|t| t.len() == 4)
                .filter_map(|t| t.parse().ok())
                .collect();
            match years[..] {
                [y] => Some((y, y)),
                [a, b, ..] => Some((a, b)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// What the plan says of a project: its period (from the annex's 建设年限, else its target year,
/// else the plan's period) and its status (续建 = started when the plan was written; 新建 and
/// everything else = planned).
pub fn seeded(f: &Feature, plan: Option<&Plan>) -> Progress {
    let attrs = f.properties.get("attributes");
    let attr = |k: &str| attrs.and_then(|a| a.get(k));
    let target_year = f
        .properties
        .get("target_year")
        .and_then(Value::as_i64)
        .map(|y| y as i32);
    let (plan_start, plan_end) =
        plan.map_or((None, None), |p| (Some(p.period.start), Some(p.period.end)));
    let (start, end) = match period_years(attr("period")) {
        Some((s, e)) => (Some(s), Some(e)),
        None => {
            let end = target_year.or(plan_end);
            (plan_start.map(|s| end.map_or(s, |e| s.min(e))), end)
        }
    };
    let nature = attr("nature").and_then(Value::as_str).unwrap_or("");
    let status = if nature.contains("续建") {
        ProjectStatus::Started
    } else {
        ProjectStatus::Planned
    };
    Progress {
        seq: 0,
        layer: f.layer.clone(),
        feature_id: f.id.clone(),
        status,
        start_date: start.map(|y| format!("{y:04}-01-01")),
        end_date: end.map(|y| format!("{y:04}-12-31")),
        progress_percent: None,
        investment_done_wan_yuan: None,
        reported_on: plan
            .and_then(|p| p.date.clone())
            .unwrap_or_else(|| "1970-01-01".into()),
        source: match plan {
            Some(p) => format!("{} ({})", p.title, p.document),
            None => "seed".into(),
        },
        note: if nature.is_empty() {
            String::new()
        } else {
            format!("建设性质: {nature}")
        },
        recorded_by: "seed".into(),
        recorded_at: String::new(),
    }
}

/// Writes a report's state into a project's properties (what items, tiles and exports see).
pub fn apply(props: &mut Properties, p: &Progress) {
    let set = |props: &mut Properties, k: &str, v: Value| {
        props.insert(k.to_string(), v);
    };
    set(props, "status", p.status.as_str().into());
    set(props, "status_zh", p.status.zh().into());
    set(
        props,
        START,
        p.start_date.clone().map_or(Value::Null, Value::from),
    );
    set(
        props,
        END,
        p.end_date.clone().map_or(Value::Null, Value::from),
    );
    set(
        props,
        "progress_percent",
        p.progress_percent.map_or(Value::Null, Value::from),
    );
    set(
        props,
        "investment_done_wan_yuan",
        p.investment_done_wan_yuan.map_or(Value::Null, Value::from),
    );
    set(props, "status_reported_on", p.reported_on.clone().into());
}

/// The state of a project feature as its properties hold it (for features seeded or written
/// before lifecycles existed: what the plan says).
pub fn current(f: &Feature, plan: Option<&Plan>) -> Progress {
    let status = f
        .properties
        .get("status")
        .and_then(Value::as_str)
        .and_then(ProjectStatus::parse);
    let Some(status) = status else {
        return seeded(f, plan);
    };
    let text = |k: &str| {
        f.properties
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let num = |k: &str| f.properties.get(k).and_then(Value::as_f64);
    Progress {
        seq: 0,
        layer: f.layer.clone(),
        feature_id: f.id.clone(),
        status,
        start_date: text(START),
        end_date: text(END),
        progress_percent: num("progress_percent"),
        investment_done_wan_yuan: num("investment_done_wan_yuan"),
        reported_on: text("status_reported_on").unwrap_or_default(),
        source: String::new(),
        note: String::new(),
        recorded_by: String::new(),
        recorded_at: String::new(),
    }
}

/// Called on the bundled features before they are first stored: every project gets the state
/// the plan gives it, so the change log and every reader carry it from the start.
pub fn annotate_bundled(features: &mut [Feature]) {
    let plans = super::plans::bundled().unwrap_or_default();
    for f in features
        .iter_mut()
        .filter(|f| PROJECT_LAYERS.contains(&f.layer.as_str()))
    {
        let plan = f
            .properties
            .get("plan")
            .and_then(Value::as_str)
            .and_then(|id| plans.iter().find(|p| p.id == id));
        let p = seeded(f, plan);
        apply(&mut f.properties, &p);
    }
}

/// Whole months from the end of a project's period to `asof` (0 when not yet over).
pub fn months_late(end_date: &str, asof: time::Date) -> Option<i32> {
    let end = super::parse_date(end_date).ok()?;
    if asof <= end {
        return Some(0);
    }
    let months = (asof.year() - end.year()) * 12 + i32::from(u8::from(asof.month()))
        - i32::from(u8::from(end.month()));
    // A month counts once its day has come round again (period ends are month ends).
    let full = if asof.day() >= end.day() || asof.day() == asof.month().length(asof.year()) {
        months
    } else {
        months - 1
    };
    Some(full.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_nature_from_the_plan() {
        let plans = crate::monitor::plans::bundled().unwrap();
        let mut props = Properties::new();
        props.insert(
            "attributes".into(),
            serde_json::json!({"period": "2022-2025", "nature": "续建"}),
        );
        props.insert("plan".into(), "004".into());
        let f = Feature::from_parts("projects", "1".into(), props, None);
        let p = seeded(&f, plans.iter().find(|p| p.id == "004"));
        assert_eq!(p.status, ProjectStatus::Started);
        assert_eq!(p.start_date.as_deref(), Some("2022-01-01"));
        assert_eq!(p.end_date.as_deref(), Some("2025-12-31"));
        let mut props = Properties::new();
        props.insert("target_year".into(), 2024.into());
        let f = Feature::from_parts("projects", "2".into(), props, None);
        let p = seeded(&f, plans.iter().find(|p| p.id == "003"));
        assert_eq!(p.status, ProjectStatus::Planned);
        assert_eq!(p.start_date.as_deref(), Some("2023-01-01"));
        assert_eq!(p.end_date.as_deref(), Some("2024-12-31"));
    }

    #[test]
    fn months_late_count_whole_months() {
        let d = |s| crate::monitor::parse_date(s).unwrap();
        assert_eq!(months_late("2025-12-31", d("2025-12-31")), Some(0));
        assert_eq!(months_late("2025-12-31", d("2026-01-30")), Some(0));
        assert_eq!(months_late("2025-12-31", d("2026-01-31")), Some(1));
        assert_eq!(months_late("2025-12-31", d("2026-02-28")), Some(2));
        assert_eq!(months_late("2025-12-31", d("2026-11-29")), Some(10));
        assert_eq!(months_late("2024-12-31", d("2026-11-29")), Some(22));
    }

    #[test]
    fn statuses_read_in_both_languages() {
        assert_eq!(ProjectStatus::parse("完成"), Some(ProjectStatus::Completed));
        assert_eq!(
            ProjectStatus::parse("Started"),
            Some(ProjectStatus::Started)
        );
        assert_eq!(ProjectStatus::parse("nonsense"), None);
    }
}
