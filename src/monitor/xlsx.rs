//! The monitoring report as a spreadsheet to hand in (监测评估报告): sheets 项目, 指标 and 预警, in
//! Chinese, written with `rust_xlsxwriter` (a maintained writer of the full .xlsx format; no
//! spreadsheet library of ours).

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::report::{IndicatorRow, Monitoring, ProjectRow};

/// A cell: text, a number, or empty.
enum Cell {
    Text(String),
    Num(f64),
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Cell {
        v.map_or(Cell::Empty, Cell::Num)
    }
}

impl From<Option<&String>> for Cell {
    fn from(v: Option<&String>) -> Cell {
        v.map_or(Cell::Empty, |s| Cell::Text(s.clone()))
    }
}

fn sheet(
    book: &mut Workbook,
    name: &str,
    title: &str,
    header: &[&str],
    rows: Vec<Vec<Cell>>,
) -> Result<(), XlsxError> {
    let bold = Format::new().set_bold();
    let ws: &mut Worksheet = book.add_worksheet();
    ws.set_name(name)?;
    ws.write_string_with_format(0, 0, title, &bold)?;
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(1, c as u16, *h, &bold)?;
    }
    for (r, row) in rows.into_iter().enumerate() {
        let r = r as u32 + 2;
        for (c, cell) in row.into_iter().enumerate() {
            match cell {
                Cell::Text(s) => {
                    ws.write_string(r, c as u16, s)?;
                }
                Cell::Num(n) if n.is_finite() => {
                    ws.write_number(r, c as u16, n)?;
                }
                _ => {}
            }
        }
    }
    ws.set_freeze_panes(2, 0)?;
    Ok(())
}

fn project_cells(p: &ProjectRow) -> Vec<Cell> {
    vec![
        p.id.as_str().into(),
        p.name.as_str().into(),
        p.plan.as_str().into(),
        p.admin_names.join("、").into(),
        p.status_zh.into(),
        p.start_date.as_ref().into(),
        p.end_date.as_ref().into(),
        p.progress_percent.into(),
        p.investment_planned_wan_yuan.into(),
        p.investment_done_wan_yuan.into(),
        p.months_late.map(f64::from).into(),
    ]
}

const PROJECT_HEADER: &[&str] = &[
    "编号",
    "项目名称",
    "规划",
    "所在区域",
    "状态",
    "开始日期",
    "结束日期",
    "进度（%）",
    "计划投资（万元）",
    "完成投资（万元）",
    "逾期（月）",
];

fn indicator_cells(i: &IndicatorRow) -> Vec<Cell> {
    let ind = &i.indicator;
    let a = &i.assessment;
    vec![
        ind.id.as_str().into(),
        ind.name.as_str().into(),
        ind.plan.as_str().into(),
        ind.scope_text.as_str().into(),
        ind.unit.as_str().into(),
        ind.baseline_value.into(),
        ind.baseline_year.map(f64::from).into(),
        Some(ind.target_value).into(),
        Some(f64::from(ind.target_year)).into(),
        match ind.binding.as_deref() {
            Some("binding") => "约束性".into(),
            Some("expected") => "预期性".into(),
            _ => Cell::Empty,
        },
        a.latest_value.into(),
        a.latest_date.as_ref().into(),
        a.expected_value.into(),
        a.share_of_way.map(|s| (s * 1000.0).round() / 10.0).into(),
        i.status_zh.into(),
    ]
}

const INDICATOR_HEADER: &[&str] = &[
    "编号",
    "指标名称",
    "规划",
    "范围",
    "单位",
    "基期值",
    "基期年",
    "目标值",
    "目标年",
    "属性",
    "最新值",
    "最新值日期",
    "按进度应达",
    "完成进度（%）",
    "状态",
];

const WARNING_HEADER: &[&str] = &[
    "预警类型",
    "编号",
    "名称",
    "规划",
    "区域/范围",
    "状态",
    "期限",
    "逾期（月）",
    "最新值/进度",
    "按进度应达",
    "目标值",
    "单位",
];

/// The report as .xlsx bytes.
pub fn workbook(m: &Monitoring) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let title = |what: &str| {
        format!(
            "{}（{}）{} · 截至 {}",
            m.area.name, m.area.code, what, m.asof
        )
    };
    sheet(
        &mut book,
        "项目",
        &title("项目实施情况"),
        PROJECT_HEADER,
        m.projects.iter().map(project_cells).collect(),
    )?;
    sheet(
        &mut book,
        "指标",
        &title("指标监测"),
        INDICATOR_HEADER,
        m.indicators.iter().map(indicator_cells).collect(),
    )?;
    let mut warnings: Vec<Vec<Cell>> = m
        .warnings
        .iter()
        .map(|p| {
            vec![
                "项目逾期".into(),
                p.id.as_str().into(),
                p.name.as_str().into(),
                p.plan.as_str().into(),
                p.admin_names.join("、").into(),
                p.status_zh.into(),
                p.end_date.as_ref().into(),
                p.months_late.map(f64::from).into(),
                p.progress_percent.into(),
                Cell::Empty,
                Cell::Empty,
                "进度 %".into(),
            ]
        })
        .collect();
    warnings.extend(m.indicators_behind.iter().map(|i| {
        let a = &i.assessment;
        vec![
            "指标滞后".into(),
            i.indicator.id.as_str().into(),
            i.indicator.name.as_str().into(),
            i.indicator.plan.as_str().into(),
            i.indicator.scope_text.as_str().into(),
            i.status_zh.into(),
            format!("{}年", i.indicator.target_year).into(),
            Cell::Empty,
            a.latest_value.into(),
            a.expected_value.into(),
            Some(i.indicator.target_value).into(),
            i.indicator.unit.as_str().into(),
        ]
    }));
    sheet(&mut book, "预警", &title("预警"), WARNING_HEADER, warnings)?;
    book.save_to_buffer()
}
