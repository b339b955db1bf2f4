//! Plans, indicators (指标) and project lifecycles: the rules of 实施监测评估预警 — an indicator's
//! status against the straight line from baseline to target, a project's lateness, `datetime=`.
//!
//! The rules here are pure; `service` ties them to the store and the engine for the CLI and HTTP.

pub mod cli;
pub mod datetime;
pub mod indicators;
pub mod lifecycle;
pub mod plans;
pub mod report;
pub mod service;
pub mod xlsx;

pub use indicators::{assess, Assessment, Direction, Indicator, IndicatorStatus, Observation};
pub use lifecycle::{Progress, ProjectStatus};
pub use plans::Plan;

/// A calendar date `YYYY-MM-DD`; anything else is refused with a reason.
pub fn parse_date(text: &str) -> Result<time::Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim(), &format)
        .map_err(|_| format!("'{text}' is not a date YYYY-MM-DD"))
}

/// `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Today (UTC).
pub fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// A date as a fractional year on a month grid: 1 July is exactly half-way through the year,
/// so that hand-computed expectations come out exact.
pub fn year_fraction(d: time::Date) -> f64 {
    let days_in_month = f64::from(d.month().length(d.year()));
    f64::from(d.year())
        + (f64::from(u8::from(d.month())) - 1.0) / 12.0
        + (f64::from(d.day()) - 1.0) / (12.0 * days_in_month)
}
