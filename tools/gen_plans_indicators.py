#!/usr/bin/env python3
"""Builds seeds/plans.json and seeds/indicators.json from the structured reading of the five
plans (../shared/reference/catalog/*.json) and the plan documents (../shared/seeds/*.txt).

    python3 tools/gen_plans_indicators.py [--reference ../shared/reference] [--documents ../shared/seeds] [--out seeds]

Rules (the same ones tests/indicators.rs re-implements independently):
- An indicator is *quantitative* when its target is a number, or text that is one number with a
  comparator (">96", "≥95", "15以上") or a ratio "x:1"; it must also not be a record of results
  already achieved before the plan (`status` 已完成). Everything else is *qualitative* and is
  listed in `qualitative` with the reason; `yizhangtu check` prints that list.
- scope_code: the admin unit the catalog's `scope` names (district, town or village, by name in
  data/); when the scope is no admin unit (a park, "农村地区"), the plan's focus unit, and
  `scope_text` keeps what the plan wrote.
- direction: decrease when the target is an upper bound (comparator < / ≤, 以下, 以内, 控制在,
  下降, 降低, 减少); keep for 保持 / 稳定; otherwise increase.
- binding: the plan's own 约束性 / 预期性 mark (only the 武隆 plan marks them), else null.
- category: from key words of the name (see CATEGORY_WORDS).
- quote: the document line(s) where the indicator's name (or its longest prefix of at least 4
  characters) first occurs; table rows, which the documents split into one cell per line, are
  joined with " | ". null when nothing matches.
"""
import argparse
import glob
import json
import os
import re

PERIODS = {  # what each plan says its period is
    "000": (2024, 2025, "到2025年 (方案 2024-05-16)"),
    "001": (2022, 2025, "到2025年 (方案 2022-11-28)"),
    "002": (2023, 2025, "2023—2025"),
    "003": (2023, 2025, "试点期2023—2025年"),
    "004": (2021, 2025, "2021—2025年"),
}

CATEGORY_WORDS = [
    ("ecology", ["森林", "绿", "生态", "水质", "空气", "污水", "垃圾", "环境", "农膜", "化肥", "农药", "秸秆", "粪污", "厕", "林", "草", "河", "湿地", "水土"]),
    ("infrastructure", ["路", "供水", "饮水", "水利", "电", "网", "通信", "4G", "5G", "光纤", "桥", "物流", "水库", "管网", "燃气", "停车", "港", "自来水", "天然气", "气", "涝", "老旧小区", "公园"]),
    ("agriculture", ["粮", "蔬菜", "农田", "耕地", "农业", "农产品", "种植", "养殖", "畜", "渔", "茶", "果", "柑橘", "稻", "农机", "机械化", "食用菌", "良田", "亩", "品牌", "合作社", "家庭农场"]),
    ("livelihood", ["收入", "就业", "教育", "医", "养老", "住房", "危房", "人口", "城镇化", "社保", "保险", "卫生", "文化", "帮扶", "搬迁", "脱贫", "学", "托育", "居民", "藏书", "场馆", "津贴", "乡贤", "村集体", "集体经济", "治理", "党", "培训", "人才", "创业", "幼儿", "博物馆", "图书馆", "文明", "技能", "公共服务", "陈列馆"]),
    ("governance", ["改革", "公司", "村社", "示范", "五星", "组织化", "试点", "老字号"]),
    ("economy", ["产值", "增加值", "生产总值", "GDP", "增速", "投资", "企业", "工业", "旅游", "营业", "税", "产业", "园区", "电商", "消费", "劳动生产率", "研发", "市场主体", "贸易", "交易", "进出口", "商"]),
]

NUM = r"([0-9]+(?:\.[0-9]+)?)"


def category(name):
    for cat, words in CATEGORY_WORDS:
        if any(w in name for w in words):
            return cat
    return "other"


def parse_target(t):
    """(value, comparator) for a quantitative target, or (None, reason)."""
    if isinstance(t, bool) or t is None:
        return None, "no target value (the plan gives only a current or baseline figure)"
    if isinstance(t, (int, float)):
        return float(t), None
    s = str(t).strip()
    m = re.fullmatch(r"([<>≥≤]=?)\s*" + NUM, s)
    if m:
        return float(m.group(2)), m.group(1)
    m = re.fullmatch(NUM + r"\s*以上", s)
    if m:
        return float(m.group(1)), ">="
    m = re.fullmatch(NUM + r"\s*:\s*1", s)
    if m:
        return float(m.group(1)), None
    return None, f"target is not one number: {s}"


def number_or_none(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        value, _ = parse_target(v.lstrip("≈"))
        return value
    return None


def direction(ind, comparator):
    text = " ".join(str(ind.get(k) or "") for k in ("what", "note", "as_written", "source"))
    comp = comparator or ind.get("comparator")
    if comp in ("<", "<=", "≤") or any(w in text for w in ("以下", "以内", "控制在", "下降", "降低", "减少")):
        return "decrease"
    if any(w in ind["what"] for w in ("收入比", "能耗", "排放", "发生率")) and "缩小" not in ind["what"]:
        return "decrease"
    if any(w in text for w in ("保持", "稳定")):
        return "keep"
    return "increase"


def find_quote(lines, ind):
    names = [ind["what"]]
    for k in ("as_written",):
        if ind.get(k):
            names.append(str(ind[k]))
    src = str(ind.get("source") or "")
    if "text: " in src:
        names.append(src.split("text: ", 1)[1])
    for name in names:
        base = re.sub(r"[（(].*?[)）]", "", name).strip()
        for n in range(len(base), 3, -1):
            probe = base[:n]
            for i, line in enumerate(lines):
                if probe in line:
                    if len(line.strip()) >= 25:
                        for sentence in re.split(r"(?<=[。；;])", line.strip()):
                            if probe in sentence:
                                return sentence.strip()[:300]
                    cells = [l.strip() for l in lines[i:i + 6] if l.strip()]
                    return " | ".join(cells)[:300]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", default="../shared/reference")
    ap.add_argument("--documents", default="../shared/seeds")
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default="seeds")
    a = ap.parse_args()

    names = {}
    for layer in ("districts", "towns", "villages"):
        for f in json.load(open(os.path.join(a.data, layer + ".geojson")))["features"]:
            p = f["properties"]
            names.setdefault((p.get("district_code") or p["admin_code"][:6], p["name"]), p["admin_code"])
    district_codes = {n: c for (d, n), c in names.items() if len(c) == 6}

    def resolve(district_code, text):
        for cut in (text, re.sub(r"[（(].*", "", text).strip()):
            c = names.get((district_code, cut))
            if c:
                return c
        return None

    plans, indicators, qualitative = [], [], []
    for path in sorted(glob.glob(os.path.join(a.reference, "catalog", "*.json"))):
        cat = json.load(open(path))
        pid = os.path.basename(path)[:3]
        dcode = district_codes[cat["district"]]
        focus = re.sub(r"[（(].*", "", cat["focus_unit"]).strip()
        focus_code = resolve(dcode, focus) or dcode
        start, end, as_written = PERIODS[pid]
        doc = cat["document"]
        plans.append({
            "id": pid, "title": cat["title"], "issuer": cat["issuer"],
            "doc_number": cat.get("doc_number"), "date": cat.get("date"),
            "period": {"start": start, "end": end, "as_written": as_written},
            "district": cat["district"], "district_code": dcode,
            "focus_unit": focus, "focus_code": focus_code, "document": doc,
        })
        lines = open(os.path.join(a.documents, doc), encoding="utf-8").read().splitlines()
        for i, ind in enumerate(cat["indicators"]):
            ref = f"catalog/{pid}.json indicators[{i}]"
            target, why = parse_target(ind.get("target"))
            if target is not None and "已完成" in str(ind.get("status") or ""):
                target, why = None, "a result already achieved before the plan (历史实绩), not a target"
            if target is None:
                qualitative.append({"plan": pid, "catalog": ref, "name": ind["what"],
                                    "target_as_written": ind.get("target"), "reason": why})
                continue
            comparator = why
            scope_code = resolve(dcode, ind["scope"])
            indicators.append({
                "id": f"{pid}-{i:03d}", "plan": pid, "name": ind["what"],
                "scope_code": scope_code or focus_code, "scope_text": ind["scope"],
                "unit": ind.get("unit") or "",
                "baseline_value": number_or_none(ind.get("baseline")),
                "baseline_year": ind.get("baseline_year"),
                "target_value": target,
                "target_year": ind.get("target_year") or end,
                "binding": {"约束性": "binding", "预期性": "expected"}.get(ind.get("type")),
                "direction": direction(ind, comparator),
                "category": category(ind["what"]),
                "quote": find_quote(lines, ind),
                "catalog": ref,
            })
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "plans.json"), "w", encoding="utf-8") as f:
        json.dump(plans, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "indicators.json"), "w", encoding="utf-8") as f:
        json.dump({"generated_by": "tools/gen_plans_indicators.py", "indicators": indicators,
                   "qualitative": qualitative}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(plans)} plans, {len(indicators)} quantitative indicators, {len(qualitative)} qualitative")


if __name__ == "__main__":
    main()
