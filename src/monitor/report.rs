//! The monitoring summary of an area (监测评估预警): its projects by status with investment
//! planned and done, projects past their end and not completed (预警), its indicators by status,
//! and the same per child unit. Built from features, indicators and observations handed in.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::indicators::{assess, Assessment, Indicator, IndicatorStatus, Observation};
use super::lifecycle::{current, months_late, Progress, ProjectStatus};
use super::plans::Plan;
use super::{format_date, parse_date};
use crate::model::Feature;

/// An admin unit as the report names it.
#[derive(Debug, Clone, Serialize)]
pub struct UnitRef {
    pub code: String,
    pub name: String,
    pub level: String,
}

/// Count and investment of the projects in one status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusCount {
    pub count: usize,
    pub investment_planned_wan_yuan: f64,
    pub investment_done_wan_yuan: f64,
}

/// One project as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectRow {
    pub layer: String,
    pub id: String,
    pub name: String,
    pub plan: String,
    pub status: ProjectStatus,
    pub status_zh: &'static str,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub progress_percent: Option<f64>,
    pub investment_planned_wan_yuan: Option<f64>,
    pub investment_done_wan_yuan: Option<f64>,
    /// Whole months past the end of its period while not completed or cancelled (预警).
    pub months_late: Option<i32>,
    pub admin_codes: Vec<String>,
    pub admin_names: Vec<String>,
}

/// One indicator with its status.
#[derive(Debug, Clone, Serialize)]
pub struct IndicatorRow {
    #[serde(flatten)]
    pub indicator: Indicator,
    #[serde(flatten)]
    pub assessment: Assessment,
    pub status_zh: &'static str,
}

/// Counts for one unit (the area itself or one of its children).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub projects: BTreeMap<&'static str, StatusCount>,
    pub projects_total: usize,
    pub investment_planned_wan_yuan: f64,
    pub investment_done_wan_yuan: f64,
    pub late: usize,
    pub indicators: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChildRow {
    #[serde(flatten)]
    pub unit: UnitRef,
    #[serde(flatten)]
    pub counts: Counts,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Monitoring {
    pub area: UnitRef,
    pub asof: String,
    pub summary: Counts,
    /// Projects past their end and not completed, latest first by months late.
    pub warnings: Vec<ProjectRow>,
    /// Indicators behind the line.
    pub indicators_behind: Vec<IndicatorRow>,
    pub by_unit: Vec<ChildRow>,
    pub projects: Vec<ProjectRow>,
    pub indicators: Vec<IndicatorRow>,
}

/// Admin codes a feature names (`admin_code` and `admin_codes`).
pub fn feature_codes(f: &Feature) -> Vec<String> {
    let mut codes: Vec<String> = f.admin_code.iter().cloned().collect();
    if let Some(Value::Array(list)) = f.properties.get("admin_codes") {
        for c in list.iter().filter_map(Value::as_str) {
            if !codes.iter().any(|x| x == c) {
                codes.push(c.to_string());
            }
        }
    }
    codes
}

/// A feature is in a unit when one of the codes it names is the unit's or lies under it. A
/// project the plan ties only to a whole district is in the district, not in its towns.
pub fn in_unit(codes: &[String], unit: &str) -> bool {
    codes.iter().any(|c| c.starts_with(unit))
}

fn text_list(f: &Feature, key: &str) -> Vec<String> {
    match f.properties.get(key) {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

/// A project's row on `asof`.
pub fn project_row(
    f: &Feature,
    plans: &[Plan],
    asof: time::Date,
    then: Option<&Progress>,
) -> ProjectRow {
    let plan_id = f
        .properties
        .get("plan")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let plan = plans.iter().find(|p| p.id == plan_id);
    let p = then.cloned().unwrap_or_else(|| current(f, plan));
    let months_late = match (&p.end_date, p.status.open()) {
        (Some(end), true) => months_late(end, asof).filter(|m| *m > 0 || past(end, asof)),
        _ => None,
    };
    ProjectRow {
        layer: f.layer.clone(),
        id: f.id.clone(),
        name: f.name.clone().unwrap_or_default(),
        plan: plan_id,
        status: p.status,
        status_zh: p.status.zh(),
        start_date: p.start_date,
        end_date: p.end_date,
        progress_percent: p.progress_percent,
        investment_planned_wan_yuan: f
            .properties
            .get("investment_wan_yuan")
            .and_then(Value::as_f64),
        investment_done_wan_yuan: p.investment_done_wan_yuan,
        months_late,
        admin_codes: feature_codes(f),
        admin_names: text_list(f, "admin_names"),
    }
}

fn past(end: &str, asof: time::Date) -> bool {
    parse_date(end).is_ok_and(|e| asof > e)
}

fn count(rows: &[&ProjectRow], indicators: &[&IndicatorRow]) -> Counts {
    let mut c = Counts::default();
    for s in ProjectStatus::ALL {
        c.projects.insert(s.as_str(), StatusCount::default());
    }
    for s in IndicatorStatus::ALL {
        c.indicators.insert(s.as_str(), 0);
    }
    for r in rows {
        let e = c.projects.entry(r.status.as_str()).or_default();
        e.count += 1;
        e.investment_planned_wan_yuan += r.investment_planned_wan_yuan.unwrap_or(0.0);
        e.investment_done_wan_yuan += r.investment_done_wan_yuan.unwrap_or(0.0);
        c.projects_total += 1;
        c.investment_planned_wan_yuan += r.investment_planned_wan_yuan.unwrap_or(0.0);
        c.investment_done_wan_yuan += r.investment_done_wan_yuan.unwrap_or(0.0);
        if r.months_late.is_some() {
            c.late += 1;
        }
    }
    for i in indicators {
        *c.indicators
            .entry(i.assessment.status.as_str())
            .or_default() += 1;
    }
    c
}

/// Everything the report needs, gathered by the caller.
pub struct Inputs<'a> {
    pub area: UnitRef,
    pub children: Vec<UnitRef>,
    pub projects: Vec<Arc<Feature>>,
    pub plans: &'a [Plan],
    pub indicators: &'a [Indicator],
    pub observations: &'a [Observation],
    pub asof: time::Date,
    /// A project's state on `asof` when it differs from today's: its newest progress record
    /// reported on or before `asof`, by (layer, id). Projects not in it are as they are now.
    pub history: &'a std::collections::HashMap<(String, String), Progress>,
}

/// Builds the report: projects and indicators in the area or below it.
pub fn build(inputs: Inputs<'_>) -> Monitoring {
    let area = &inputs.area.code;
    let asof = inputs.asof;
    let projects: Vec<ProjectRow> = inputs
        .projects
        .iter()
        .filter(|f| in_unit(&feature_codes(f), area))
        .map(|f| {
            let then = inputs.history.get(&(f.layer.clone(), f.id.clone()));
            project_row(f, inputs.plans, asof, then)
        })
        .collect();
    let indicators: Vec<IndicatorRow> = inputs
        .indicators
        .iter()
        .filter(|i| i.scope_code.starts_with(area.as_str()))
        .map(|i| {
            let assessment = assess(i, inputs.observations, asof);
            IndicatorRow {
                indicator: i.clone(),
                status_zh: assessment.status.zh(),
                assessment,
            }
        })
        .collect();
    let all_p: Vec<&ProjectRow> = projects.iter().collect();
    let all_i: Vec<&IndicatorRow> = indicators.iter().collect();
    let by_unit = inputs
        .children
        .iter()
        .map(|u| {
            let p: Vec<&ProjectRow> = projects
                .iter()
                .filter(|r| in_unit(&r.admin_codes, &u.code))
                .collect();
            let i: Vec<&IndicatorRow> = indicators
                .iter()
                .filter(|r| r.indicator.scope_code.starts_with(u.code.as_str()))
                .collect();
            ChildRow {
                unit: u.clone(),
                counts: count(&p, &i),
            }
        })
        .collect();
    let mut warnings: Vec<ProjectRow> = projects
        .iter()
        .filter(|r| r.months_late.is_some())
        .cloned()
        .collect();
    warnings.sort_by(|a, b| b.months_late.cmp(&a.months_late).then(a.id.cmp(&b.id)));
    let indicators_behind = indicators
        .iter()
        .filter(|i| i.assessment.status == IndicatorStatus::Behind)
        .cloned()
        .collect();
    Monitoring {
        summary: count(&all_p, &all_i),
        area: inputs.area,
        asof: format_date(asof),
        warnings,
        indicators_behind,
        by_unit,
        projects,
        indicators,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: &str, codes: &[&str], end_year: i32, status: &str) -> Arc<Feature> {
        let mut p = crate::model::Properties::new();
        p.insert("admin_code".into(), codes[0].into());
        p.insert("admin_codes".into(), serde_json::json!(codes));
        p.insert("status".into(), status.into());
        p.insert("start_date".into(), "2021-01-01".into());
        p.insert("end_date".into(), format!("{end_year}-12-31").into());
        p.insert("investment_wan_yuan".into(), 100.into());
        Arc::new(Feature::from_parts("projects", id.into(), p, None))
    }

    fn unit(code: &str) -> UnitRef {
        UnitRef {
            code: code.into(),
            name: code.into(),
            level: "town".into(),
        }
    }

    #[test]
    fn late_projects_are_warned_until_completed() {
        let features = vec![
            project("a", &["500156104"], 2024, "started"),
            project("b", &["500156104"], 2024, "completed"),
            project("c", &["500156105"], 2027, "planned"),
            project("d", &["500111100"], 2020, "planned"),
            project("e", &["500156"], 2025, "suspended"),
        ];
        let m = build(Inputs {
            area: UnitRef {
                code: "500156".into(),
                name: "武隆区".into(),
                level: "district".into(),
            },
            children: vec![unit("500156104"), unit("500156105")],
            projects: features,
            plans: &[],
            indicators: &[],
            observations: &[],
            asof: parse_date("2026-03-31").unwrap(),
            history: &Default::default(),
        });
        assert_eq!(m.summary.projects_total, 4);
        let late: Vec<_> = m
            .warnings
            .iter()
            .map(|w| (w.id.as_str(), w.months_late))
            .collect();
        assert_eq!(late, vec![("a", Some(15)), ("e", Some(3))]);
        assert_eq!(m.summary.late, 2);
        assert_eq!(m.summary.projects["completed"].count, 1);
        assert_eq!(m.summary.investment_planned_wan_yuan, 400.0);
        // The district-wide project is in no town.
        assert_eq!(m.by_unit[0].counts.projects_total, 2);
        assert_eq!(m.by_unit[0].counts.late, 1);
        assert_eq!(m.by_unit[1].counts.projects_total, 1);
        assert_eq!(m.by_unit[1].counts.late, 0);
    }
}
