//! The five plans (规划) as resources: title, issuing body, period, district and the document,
//! bundled as `seeds/plans.json` (built by `tools/gen_plans_indicators.py`).

use serde::{Deserialize, Serialize};

/// A plan's period in whole years, and how the plan writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub start: i32,
    pub end: i32,
    #[serde(default)]
    pub as_written: String,
}

/// One plan document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The number the seeds use in every feature's `plan` property ("000" … "004").
    pub id: String,
    pub title: String,
    /// 发文机关
    pub issuer: String,
    /// 文号, when the document has one.
    pub doc_number: Option<String>,
    /// The date the plan was issued, `YYYY-MM-DD`.
    pub date: Option<String>,
    pub period: Period,
    pub district: String,
    pub district_code: String,
    /// The unit the plan is about (a town for the 强镇带村 pilots, else the district).
    pub focus_unit: String,
    pub focus_code: String,
    /// The document's file name under `../shared/seeds/`.
    pub document: String,
}

static PLANS_JSON: &str = include_str!("../../seeds/plans.json");

/// The bundled plans.
pub fn bundled() -> Result<Vec<Plan>, serde_json::Error> {
    serde_json::from_str(PLANS_JSON)
}

/// `plan=` on feature queries: the features of that plan (each seeded feature names its plan in
/// `plan`); layers without plans (the admin layers) ignore it, as layers without periods ignore
/// `datetime`.
pub fn plan_filter(
    plan: &str,
    has_property: &dyn Fn(&str) -> bool,
) -> Option<crate::engine::Filter> {
    has_property("plan").then(|| crate::engine::Filter::Compare {
        key: "plan".into(),
        op: crate::engine::filter::CmpOp::Eq,
        value: crate::engine::filter::Scalar::Str(plan.to_string()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn five_plans_each_with_a_district() {
        let plans = super::bundled().unwrap();
        assert_eq!(plans.len(), 5);
        for p in &plans {
            assert_eq!(p.district_code.len(), 6, "{}", p.id);
            assert!(p.focus_code.starts_with(&p.district_code));
            assert!(p.period.start <= p.period.end);
        }
    }
}
