//! Indicators (指标): a plan's quantitative targets, their observations, and the status rule —
//! achieved, on track, behind the straight line from baseline to target, or no data.

use serde::{Deserialize, Serialize};

use super::{parse_date, year_fraction};

/// How far below the line from baseline to target the latest value may lie and still be on
/// track: this share of the whole planned change (5 %).
pub const TOLERANCE: f64 = 0.05;

/// Which way the plan wants the value to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// At least the target (增长, 达到, 以上).
    Increase,
    /// At most the target (下降, 控制在…以内).
    Decrease,
    /// Kept at or above the target all along (保持, 稳定在).
    Keep,
}

/// The categories an indicator falls in (from key words of its name; see the generator).
pub const CATEGORIES: &[&str] = &[
    "economy",
    "agriculture",
    "infrastructure",
    "ecology",
    "livelihood",
    "governance",
    "other",
];

/// One quantitative target of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Indicator {
    pub id: String,
    pub plan: String,
    pub name: String,
    /// The admin unit the target is for (district, town or village code).
    pub scope_code: String,
    /// The scope as the plan writes it.
    #[serde(default)]
    pub scope_text: String,
    pub unit: String,
    pub baseline_value: Option<f64>,
    pub baseline_year: Option<i32>,
    pub target_value: f64,
    pub target_year: i32,
    /// `binding` (约束性) or `expected` (预期性), as the plan marks it; `None` when it does not.
    pub binding: Option<String>,
    pub direction: Direction,
    /// economy, agriculture, infrastructure, ecology, livelihood, governance, other.
    pub category: String,
    /// The sentence (or table row) of the document the target comes from.
    pub quote: Option<String>,
    /// Where in `../shared/reference/catalog` it was read.
    #[serde(default)]
    pub catalog: String,
}

/// A value measured for an indicator. Observations are only ever added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Order of recording (database sequence); 0 before it is stored.
    #[serde(default)]
    pub seq: i64,
    /// Filled from the path when posted to `/indicators/{id}/observations`.
    #[serde(default)]
    pub indicator: String,
    pub value: f64,
    /// The date the value describes, `YYYY-MM-DD`.
    pub date: String,
    pub source: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub recorded_by: String,
    #[serde(default)]
    pub recorded_at: String,
}

/// An indicator's computed status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum IndicatorStatus {
    Achieved,
    OnTrack,
    Behind,
    NoData,
}

impl IndicatorStatus {
    pub const ALL: [IndicatorStatus; 4] = [
        IndicatorStatus::Achieved,
        IndicatorStatus::OnTrack,
        IndicatorStatus::Behind,
        IndicatorStatus::NoData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorStatus::Achieved => "achieved",
            IndicatorStatus::OnTrack => "on_track",
            IndicatorStatus::Behind => "behind",
            IndicatorStatus::NoData => "no_data",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            IndicatorStatus::Achieved => "已达成",
            IndicatorStatus::OnTrack => "正常推进",
            IndicatorStatus::Behind => "滞后",
            IndicatorStatus::NoData => "无数据",
        }
    }

    pub fn parse(text: &str) -> Option<IndicatorStatus> {
        IndicatorStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What the status rule found for one indicator at one date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub status: IndicatorStatus,
    /// The newest observation on or before the date.
    pub latest_value: Option<f64>,
    pub latest_date: Option<String>,
    /// Where the straight line from baseline to target stands at the latest observation's date
    /// (only with a baseline).
    pub expected_value: Option<f64>,
    /// Share of the way from baseline (or from 0 without one) to the target, 1.0 = reached.
    pub share_of_way: Option<f64>,
    /// How far the latest value lags the line, in the indicator's unit (positive = behind).
    pub shortfall: Option<f64>,
}

/// The status of `ind` on `asof` from its observations (dated on or before `asof`; the newest
/// counts, and of two on one day the later recorded).
///
/// - `no_data`: no observation yet.
/// - `achieved`: the latest value meets the target (≥ for increase and keep, ≤ for decrease).
/// - With a baseline (value and year): the line runs from the baseline value at the end of the
///   baseline year to the target at the end of the target year; `behind` when the latest value
///   is on the wrong side of the line by more than [`TOLERANCE`] × |target − baseline|, else
///   `on_track`. Past the target year the line stays at the target.
/// - Without a baseline there is no line: `behind` once the target year is over, else `on_track`.
/// - `keep` targets hold all along: below the target is `behind`.
pub fn assess(ind: &Indicator, observations: &[Observation], asof: time::Date) -> Assessment {
    let latest = observations
        .iter()
        .filter(|o| o.indicator == ind.id)
        .filter_map(|o| parse_date(&o.date).ok().map(|d| (d, o)))
        .filter(|(d, _)| *d <= asof)
        .max_by(|(da, a), (db, b)| da.cmp(db).then(a.seq.cmp(&b.seq)));
    let Some((date, obs)) = latest else {
        return Assessment {
            status: IndicatorStatus::NoData,
            latest_value: None,
            latest_date: None,
            expected_value: None,
            share_of_way: None,
            shortfall: None,
        };
    };
    let value = obs.value;
    let target = ind.target_value;
    // +1 when larger is better, −1 when smaller is.
    let sign = if ind.direction == Direction::Decrease {
        -1.0
    } else {
        1.0
    };
    let met = sign * (value - target) >= 0.0;
    let baseline = ind.baseline_value.zip(ind.baseline_year);
    let from = baseline.map_or(0.0, |(v, _)| v);
    let share_of_way = (target != from).then(|| (value - from) / (target - from));
    let end_of = |year: i32| f64::from(year) + 1.0;
    let now = year_fraction(date);
    let (status, expected, shortfall) = if met {
        (IndicatorStatus::Achieved, None, None)
    } else if ind.direction == Direction::Keep {
        (
            IndicatorStatus::Behind,
            Some(target),
            Some(sign * (target - value)),
        )
    } else if let Some((base, year)) = baseline {
        let (t0, t1) = (end_of(year), end_of(ind.target_year));
        let along = if t1 > t0 {
            ((now - t0) / (t1 - t0)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let expected = base + (target - base) * along;
        let shortfall = sign * (expected - value);
        let tolerance = TOLERANCE * (target - base).abs();
        let status = if shortfall > tolerance {
            IndicatorStatus::Behind
        } else {
            IndicatorStatus::OnTrack
        };
        (status, Some(expected), Some(shortfall))
    } else if year_fraction(asof) >= end_of(ind.target_year) {
        (IndicatorStatus::Behind, None, Some(sign * (target - value)))
    } else {
        (IndicatorStatus::OnTrack, None, None)
    };
    Assessment {
        status,
        latest_value: Some(value),
        latest_date: Some(obs.date.clone()),
        expected_value: expected,
        share_of_way,
        shortfall,
    }
}

/// The bundled seed file: the quantitative indicators and the qualitative ones left out.
#[derive(Debug, Clone, Deserialize)]
pub struct Bundle {
    pub indicators: Vec<Indicator>,
    pub qualitative: Vec<Qualitative>,
}

/// A target of a plan that is not one number, with the reason it is not seeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Qualitative {
    pub plan: String,
    pub catalog: String,
    pub name: String,
    pub target_as_written: serde_json::Value,
    pub reason: String,
}

static INDICATORS_JSON: &str = include_str!("../../seeds/indicators.json");

/// `seeds/indicators.json`, built by `tools/gen_plans_indicators.py`.
pub fn bundled() -> Result<Bundle, serde_json::Error> {
    serde_json::from_str(INDICATORS_JSON)
}

/// The qualitative targets as lines of `yizhangtu check`'s report (layer `indicators`).
pub fn qualitative_notes() -> Vec<crate::engine::check::Problem> {
    bundled()
        .map(|b| b.qualitative)
        .unwrap_or_default()
        .into_iter()
        .map(|q| crate::engine::check::Problem {
            layer: "indicators".into(),
            id: q.catalog,
            name: Some(q.name),
            problem: format!(
                "plan {}: qualitative target, not seeded as an indicator: {}",
                q.plan, q.reason
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ind(baseline: Option<(f64, i32)>, target: f64, direction: Direction) -> Indicator {
        Indicator {
            id: "t".into(),
            plan: "004".into(),
            name: "test".into(),
            scope_code: "500156".into(),
            scope_text: String::new(),
            unit: "%".into(),
            baseline_value: baseline.map(|b| b.0),
            baseline_year: baseline.map(|b| b.1),
            target_value: target,
            target_year: 2025,
            binding: None,
            direction,
            category: "other".into(),
            quote: None,
            catalog: String::new(),
        }
    }

    fn obs(value: f64, date: &str) -> Observation {
        Observation {
            seq: 0,
            indicator: "t".into(),
            value,
            date: date.into(),
            source: "test".into(),
            note: String::new(),
            recorded_by: String::new(),
            recorded_at: String::new(),
        }
    }

    fn day(s: &str) -> time::Date {
        parse_date(s).unwrap()
    }

    #[test]
    fn no_observation_is_no_data() {
        let a = assess(
            &ind(Some((100.0, 2020)), 200.0, Direction::Increase),
            &[],
            day("2023-07-01"),
        );
        assert_eq!(a.status, IndicatorStatus::NoData);
        assert_eq!(a.share_of_way, None);
    }

    #[test]
    fn exactly_on_the_line_is_on_track() {
        // Baseline 100 at the end of 2020 (2021.0), target 200 at the end of 2025 (2026.0):
        // on 2023-07-01 (2023.5) the line is half-way, at 150.
        let i = ind(Some((100.0, 2020)), 200.0, Direction::Increase);
        let a = assess(&i, &[obs(150.0, "2023-07-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::OnTrack);
        assert_eq!(a.expected_value, Some(150.0));
        assert_eq!(a.share_of_way, Some(0.5));
        assert_eq!(a.shortfall, Some(0.0));
        // The tolerance is 5 % of the planned change (100): 5 below the line is still on
        // track, more is behind.
        let a = assess(&i, &[obs(145.0, "2023-07-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::OnTrack);
        let a = assess(&i, &[obs(144.0, "2023-07-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::Behind);
        assert_eq!(a.shortfall, Some(6.0));
        // Reaching the target early is achieved.
        let a = assess(&i, &[obs(200.0, "2022-01-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::Achieved);
        assert_eq!(a.share_of_way, Some(1.0));
    }

    #[test]
    fn the_latest_observation_on_or_before_the_date_counts() {
        let i = ind(Some((100.0, 2020)), 200.0, Direction::Increase);
        let o = [obs(200.0, "2025-01-01"), obs(150.0, "2023-07-01")];
        assert_eq!(
            assess(&i, &o, day("2024-01-01")).status,
            IndicatorStatus::OnTrack
        );
        assert_eq!(
            assess(&i, &o, day("2025-06-01")).status,
            IndicatorStatus::Achieved
        );
    }

    #[test]
    fn without_a_baseline_only_the_deadline_tells() {
        let i = ind(None, 80.0, Direction::Increase);
        let a = assess(&i, &[obs(40.0, "2024-01-01")], day("2024-06-01"));
        assert_eq!(a.status, IndicatorStatus::OnTrack);
        assert_eq!(a.expected_value, None);
        assert_eq!(a.share_of_way, Some(0.5));
        let a = assess(&i, &[obs(40.0, "2024-01-01")], day("2026-01-01"));
        assert_eq!(a.status, IndicatorStatus::Behind);
        assert_eq!(a.shortfall, Some(40.0));
        let a = assess(&i, &[obs(81.0, "2024-01-01")], day("2026-01-01"));
        assert_eq!(a.status, IndicatorStatus::Achieved);
    }

    #[test]
    fn decreasing_targets_run_the_other_way() {
        // From 3.0 (end of 2020) down to 2.5 (end of 2025): mid-2023 the line is at 2.75.
        let i = ind(Some((3.0, 2020)), 2.5, Direction::Decrease);
        let a = assess(&i, &[obs(2.75, "2023-07-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::OnTrack);
        assert_eq!(a.share_of_way, Some(0.5));
        // Tolerance 0.025: 2.775 is on the edge, 2.8 is behind (above the line).
        let a = assess(&i, &[obs(2.8, "2023-07-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::Behind);
        let a = assess(&i, &[obs(2.4, "2023-07-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::Achieved);
        // A rise is no progress at all.
        let a = assess(&i, &[obs(3.1, "2021-07-01")], day("2024-01-01"));
        assert_eq!(a.status, IndicatorStatus::Behind);
        assert!(a.share_of_way.unwrap() < 0.0);
    }

    #[test]
    fn keep_targets_must_hold_all_along() {
        let i = ind(Some((95.0, 2020)), 95.0, Direction::Keep);
        let a = assess(&i, &[obs(95.0, "2022-01-01")], day("2022-06-01"));
        assert_eq!(a.status, IndicatorStatus::Achieved);
        assert_eq!(a.share_of_way, None);
        let a = assess(&i, &[obs(94.0, "2022-01-01")], day("2022-06-01"));
        assert_eq!(a.status, IndicatorStatus::Behind);
    }

    #[test]
    fn the_bundle_reads_and_lists_qualitative_targets() {
        let b = bundled().unwrap();
        assert!(b.indicators.len() > 200);
        assert!(!b.qualitative.is_empty());
        assert_eq!(qualitative_notes().len(), b.qualitative.len());
    }
}
