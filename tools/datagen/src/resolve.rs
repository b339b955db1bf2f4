//! Name-to-code resolution: the alias table and the hierarchical gazetteer
//! (a village name is resolved inside its town, a town inside the plan's district).

use crate::admin::Admin;
use std::collections::BTreeMap;

/// How a place name was resolved.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub codes: Vec<String>,
    /// "exact", "alias", "stem", "area", "by-name"
    pub how: &'static str,
    pub note: Option<String>,
}

pub enum Outcome {
    Units(Resolved),
    /// the phrase only says "the whole district" or "unnamed places in it"
    District(String),
    /// a place outside the five districts
    External(String),
    /// a place that cannot be found
    Unknown(String),
}

/// (district, variant, canonical names (comma separated), kind, note)
pub const ALIASES: &[(&str, &str, &str, &str, &str)] = &[
    // --- spelling variants of admin names (catalog notes)
    ("500156", "庙坪乡", "庙垭乡", "admin-variant", "the plan writes both 庙坪乡 (专栏2, 专栏3, 3-23, the help-group table) and 庙垭乡/庙垭 (1-2, 3-4); the NBS name is 庙垭乡 and there is only one such township"),
    ("500156", "庙垭", "庙垭乡", "admin-variant", "short form in project 1-2 (庙垭 water supply) and 3-4 (庙垭生态旅游度假小镇)"),
    ("500156", "双河乡", "双河镇", "admin-variant", "第九章 writes 双河乡 (“蔬香小镇 康养双河”); everywhere else, and in the NBS list, it is 双河镇"),
    ("500156", "石桥乡", "石桥苗族土家族乡", "admin-variant", "short form of the ethnic township's NBS name"),
    ("500156", "石桥（苗族土家族）乡", "石桥苗族土家族乡", "admin-variant", "as written in 第九章"),
    ("500156", "文复乡", "文复苗族土家族乡", "admin-variant", "short form of the ethnic township's NBS name"),
    ("500156", "后坪乡", "后坪苗族土家族乡", "admin-variant", "short form of the ethnic township's NBS name"),
    ("500156", "后坪乡镇", "后坪苗族土家族乡", "admin-variant", "as written in 3-13 (“在后坪乡镇建设茶叶加工厂”)"),
    ("500156", "浩口乡", "浩口苗族仡佬族乡", "admin-variant", "short form of the ethnic township's NBS name"),
    ("500156", "香障树", "香树村", "admin-variant", "2-11 is named 桐梓镇香障树田园综合体 and its content says 香树村田园综合体; read as 桐梓镇香树村"),
    ("500156", "香树村田园综合体", "香树村", "place-in-unit", "the 田园综合体 of project 2-11 (also written 香障树田园综合体)"),
    // --- places inside one unit (by name)
    ("500156", "仙女山", "仙女山街道", "place-in-unit", "仙女山 (mountain, resort) read as 仙女山街道 by name"),
    ("500156", "仙女山度假区", "仙女山街道", "place-in-unit", "the 仙女山 resort, read as 仙女山街道 by name"),
    ("500156", "白马山", "白马镇", "place-in-unit", "白马山 read as 白马镇 by name (the mountain reaches beyond it)"),
    ("500156", "白马山灌区", "白马镇", "place-in-unit", "the 白马山 irrigation district, read as 白马镇 by name"),
    ("500156", "凤来新城", "凤来镇", "place-in-unit", "new town of 凤来镇"),
    ("500156", "羊角", "羊角街道", "place-in-unit", "prefix of 羊角电子商务特色产业园 / 羊角纤夫文化展览馆"),
    ("500156", "羊角新址", "羊角街道", "place-in-unit", "供水工程 羊角新址 (project 1-2)"),
    ("500156", "木根", "木根村", "place-in-unit", "木根 水厂/供水工程 read as 双河镇木根村 by name; the text does not say"),
    ("500156", "文复", "文复苗族土家族乡", "place-in-unit", "文复 水厂 read as 文复乡 by name"),
    ("500156", "江口片", "江口镇", "area", "cold-chain zone named after 江口镇"),
    ("500156", "西部新城鸭平片区", "鸭江镇,平桥镇", "area", "鸭平 = 鸭江 + 平桥 (西部新城), read by name"),
    ("500156", "石桥湖水库", "石桥苗族土家族乡", "place-in-unit", "reservoir read as 石桥乡 by name"),
    ("500156", "天池苗寨", "天池村", "place-in-unit", "read as 石桥乡天池村 by name; the text does not say"),
    ("500156", "后坪天坑", "后坪苗族土家族乡", "place-in-unit", "read as 后坪乡 by name"),
    ("500156", "懒坝", "清水村,松树村,荆竹村", "area", "project 3-15: 羊角街道清水村、松树村，仙女山街道荆竹村"),
    ("500156", "大石板", "香树村", "place-in-unit", "小地名 in 桐梓镇香树村 (project 3-10)"),
    ("500156", "双凤场", "桐梓镇", "place-in-unit", "小地名 in 桐梓镇 (project 1-6)"),
    ("500156", "新桥", "桐梓镇", "place-in-unit", "小地名 in 桐梓镇 (project 1-6)"),
    ("500156", "乌江", "江口镇,芙蓉街道,羊角街道,白马镇", "area", "the 乌江 main stream through 武隆, by general geography (approximate)"),
    ("500156", "乌江干流", "江口镇,芙蓉街道,羊角街道,白马镇", "area", "the 乌江 main stream through 武隆, by general geography (approximate)"),
    // --- 大足 / 龙水镇
    ("500111", "龙水新城", "龙水镇", "place-in-unit", "new town of 龙水镇"),
    ("500111", "龙水城区", "龙水镇", "place-in-unit", "urban area of 龙水镇"),
    ("500111", "大足高新区（龙水园区）", "龙水镇", "place-in-unit", "the 龙水 park of 大足高新区"),
    ("500111", "大足高新区", "龙水镇", "place-in-unit", "in this plan: its 龙水园区"),
    // --- 永川
    ("500118", "永川城区", "中山路街道,胜利路街道,南大街街道", "area", "the central urban area (一中心), read as its three core streets (approximate)"),
    ("500118", "中心城区", "中山路街道,胜利路街道,南大街街道", "area", "the central urban area (一中心), read as its three core streets (approximate)"),
    ("500118", "港桥", "朱沱镇", "area", "港桥产业园 (永川港桥) is read as 朱沱镇"),
    ("500118", "港桥产业园", "朱沱镇", "area", "read as 朱沱镇 (“实现朱沱镇、松溉镇和港桥产业园一体化发展”)"),
    ("500118", "港桥组团", "朱沱镇,松溉镇", "area", "“实现朱沱镇、松溉镇和港桥产业园一体化发展”"),
    ("500118", "三教组团", "三教镇,板桥镇", "area", "“实现三教产业园和三教镇、板桥镇融合发展”"),
    ("500118", "三教产业园", "三教镇", "area", "read as 三教镇 by name"),
    // --- 荣昌 / 吴家镇
    ("500153", "吴家场镇", "吴家镇", "place-in-unit", "the town centre (场镇) of 吴家镇"),
    // --- 开州
    ("500154", "开州城区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "the county-seat urban area, read as the five streets around 汉丰湖 (approximate)"),
    ("500154", "环汉丰湖片区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "the area round 汉丰湖, read as the five urban streets (approximate)"),
    ("500154", "环湖片区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "written also 环汉丰湖片区"),
    ("500154", "汉丰湖", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "the lake in the urban area"),
    ("500154", "浦里新区", "赵家街道", "area", "浦里 new district, read as 赵家街道 (approximate)"),
    ("500154", "浦里片区", "赵家街道", "area", "written also 浦里新区"),
    ("500154", "浦里工业新区", "赵家街道", "area", "written also 浦里新区"),
    ("500154", "浦里高新区", "赵家街道", "area", "开州高新区 (浦里), read as 赵家街道 (approximate)"),
    ("500154", "胡桥片区", "长沙镇", "area", "part of 浦里新区; 胡桥村 (500154123215) is in 长沙镇 by its NBS code, not in 赵家街道"),
    ("500154", "古迹片区", "长沙镇", "area", "part of 浦里新区; 古迹社区 (500154123004) is in 长沙镇 by its NBS code, not in 赵家街道"),
    ("500154", "文峰", "文峰街道", "admin-variant", "in 汉丰、文峰、赵家等5个片区 (streets): 文峰街道, not 文峰社区 or 文峰村"),
    ("500154", "赵家片区", "赵家街道", "area", "by name"),
    ("500154", "赵家污水处理厂", "赵家街道", "place-in-unit", "by name"),
    ("500154", "长沙组团", "长沙镇", "area", "高新区长沙组团, by name"),
    ("500154", "竹溪高铁片区", "竹溪镇", "area", "by name"),
    ("500154", "岳溪高铁片区", "岳溪镇", "area", "by name"),
    ("500154", "丰乐片区", "丰乐街道", "area", "by name"),
    ("500154", "丰乐大桥", "丰乐街道", "place-in-unit", "by name"),
    ("500154", "丰乐东河", "丰乐街道", "place-in-unit", "by name"),
    ("500154", "周都", "周都村", "admin-variant", "周都红色美丽村庄 in 赵家街道: 周都村"),
    ("500154", "井泉片区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "in 开州城区 (street not stated)"),
    ("500154", "三中老旧小区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "in 开州城区 (street not stated)"),
    ("500154", "盛山片区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "in 开州城区 (street not stated)"),
    ("500154", "西湖景区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "on 汉丰湖 (street not stated)"),
    ("500154", "迎仙山片区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "one of the 15 gas-network areas of 环湖片区"),
    ("500154", "东华片区", "白鹤街道", "area", "one of the 15 gas-network areas of 环湖片区; 东华社区 (500154006001) is in 白鹤街道"),
    ("500154", "宝华片区", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "one of the 15 gas-network areas of 环湖片区"),
    ("500154", "安康", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "安康移民小区 in 开州城区"),
    ("500154", "驷马", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "驷马移民小区 in 开州城区"),
    ("500154", "三中滨湖公寓", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "移民小区 in 开州城区"),
    ("500154", "南山路", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "road in 开州城区"),
    ("500154", "滨湖路", "汉丰街道,文峰街道,云枫街道,镇东街道,丰乐街道", "area", "road in 开州城区"),
    ("500154", "歇马路", "正安街道", "place-in-unit", "project 35-32: 正安街道"),
    ("500154", "策马路", "正安街道", "place-in-unit", "project 32: 正安街道"),
    ("500154", "福音街", "正安街道", "place-in-unit", "project 32: 正安街道"),
    ("500154", "开源街", "正安街道", "place-in-unit", "project 32: 正安街道"),
];

/// Names outside the five districts (never placed).
const EXTERNAL: &[&str] = &[
    "重庆",
    "重庆市",
    "成都",
    "成渝地区",
    "成渝地区双城经济圈",
    "渝西",
    "东部沿海地区",
    "东部沿海地区 / 东部地区",
    "永川",
    "内江东兴区",
    "内江市东兴区",
    "石子镇",
    "平坦镇",
    "重庆中心城区",
    "重庆主城及周边区县",
    "长江中上游",
    "成渝高效特色农业经济带",
    "万州",
    "达州",
    "云阳",
    "城口",
    "江津区",
    "万盛经开区",
    "潍坊",
    "四川省",
    "济南市",
    "南川区",
    "涪陵区",
    "川渝万达开地区",
];

/// Phrases that name the whole district or unnamed places in it.
fn is_district_phrase(s: &str) -> bool {
    const P: &[&str] = &[
        "全区",
        "相关乡镇",
        "各乡镇",
        "等",
        "农村地区",
        "未点名",
        "个乡镇",
        "个行政村",
        "个村",
        "安置点",
        "重点高山蔬菜基地乡镇",
        "有条件的",
        "示范工程区域",
        "搬迁劳动力",
        "文中未注明乡镇",
    ];
    P.iter().any(|p| s.contains(p))
}

/// An alias use: (canonical name, codes, kind, note).
pub type AliasUse = (String, Vec<String>, String, String);

pub struct Gazetteer<'a> {
    pub admin: &'a Admin,
    /// alias uses, for aliases.json: (district, variant) -> use
    pub used: BTreeMap<(String, String), AliasUse>,
}

fn strip_paren(s: &str) -> (String, Option<String>) {
    // remove the first （…） or (…) group; return the inside too
    for (o, c) in [('（', '）'), ('(', ')')] {
        if let (Some(i), Some(j)) = (s.find(o), s.rfind(c)) {
            if j > i {
                let inner = s[i + o.len_utf8()..j].to_string();
                let outer = format!("{}{}", &s[..i], &s[j + c.len_utf8()..]);
                return (outer.trim().to_string(), Some(inner));
            }
        }
    }
    (s.trim().to_string(), None)
}

impl<'a> Gazetteer<'a> {
    pub fn new(admin: &'a Admin) -> Self {
        Gazetteer {
            admin,
            used: BTreeMap::new(),
        }
    }

    pub fn town_by_name(&self, district: &str, name: &str) -> Option<String> {
        self.admin
            .towns_of(district)
            .find(|t| t.name == name)
            .map(|t| t.code.clone())
    }

    fn town_by_stem(&self, district: &str, stem: &str) -> Option<String> {
        let hits: Vec<&crate::admin::Town> = self
            .admin
            .towns_of(district)
            .filter(|t| {
                let n = t.name.as_str();
                ["镇", "乡", "街道"]
                    .iter()
                    .any(|suf| format!("{stem}{suf}") == n)
                    || (n.starts_with(stem) && n.ends_with('乡') && n.contains("族"))
            })
            .collect();
        if hits.len() == 1 {
            Some(hits[0].code.clone())
        } else {
            None
        }
    }

    /// A village by its short name ("横店村") or stem ("横店") inside the given towns
    /// (or the whole district when `towns` is empty).
    fn village(&self, district: &str, towns: &[String], name: &str) -> Option<(String, bool)> {
        let cands: Vec<&crate::admin::Village> = self
            .admin
            .villages
            .iter()
            .filter(|v| {
                v.district_code == district && (towns.is_empty() || towns.contains(&v.town_code))
            })
            .collect();
        let exact: Vec<_> = cands.iter().filter(|v| v.name == name).collect();
        if exact.len() == 1 {
            return Some((exact[0].code.clone(), false));
        }
        let stem: Vec<_> = cands
            .iter()
            .filter(|v| v.name == format!("{name}村") || v.name == format!("{name}社区"))
            .collect();
        if stem.len() == 1 {
            return Some((stem[0].code.clone(), true));
        }
        None
    }

    fn note_use(
        &mut self,
        district: &str,
        variant: &str,
        canonical: &str,
        codes: &[String],
        kind: &str,
        note: &str,
    ) {
        self.used.insert(
            (district.to_string(), variant.to_string()),
            (
                canonical.to_string(),
                codes.to_vec(),
                kind.to_string(),
                note.to_string(),
            ),
        );
    }

    /// Resolve one `located_in` phrase of a plan in `district`; `context` holds
    /// the towns already known for the entity (a village is looked up there
    /// first), `focus` the plan's focus towns.
    /// Resolve an entity's own name through the alias table only.
    pub fn alias_only(&mut self, district: &str, name: &str) -> Option<Resolved> {
        if ALIASES.iter().any(|a| a.0 == district && a.1 == name) {
            if let Some(Outcome::Units(r)) = self.resolve_clean(district, name, &[], &[]) {
                return Some(r);
            }
        }
        None
    }

    pub fn resolve(
        &mut self,
        district: &str,
        phrase: &str,
        context: &[String],
        focus: &[String],
    ) -> Outcome {
        let d = self.admin.district(district);
        let raw = phrase.trim();
        if raw.is_empty() {
            return Outcome::Unknown("empty".into());
        }
        if let Some(o) = self.resolve_clean(district, raw, context, focus) {
            return o;
        }
        let (outer, inner) = strip_paren(raw);
        if raw == d.name || outer == d.name || raw == "武隆区（文中未注明乡镇）" {
            return Outcome::District(format!("the text names only {}", d.name));
        }
        if !outer.is_empty() && outer != raw {
            if let Some(o) = self.resolve_clean(district, &outer, context, focus) {
                return o;
            }
        }
        // hints inside the parentheses: "文复（文复乡，按名推断）", "懒坝（羊角街道清水村、…）"
        if let Some(inner) = inner {
            let mut codes = Vec::new();
            for part in inner.split(['、', '，', ',']) {
                let part = part.trim().trim_end_matches("按名推断").trim();
                if let Some(Outcome::Units(r)) = self.resolve_clean(district, part, context, focus)
                {
                    codes.extend(r.codes);
                }
            }
            if !codes.is_empty() {
                codes.sort();
                codes.dedup();
                return Outcome::Units(Resolved {
                    codes,
                    how: "by-name",
                    note: Some(format!("from the note in “{raw}”")),
                });
            }
        }
        if is_district_phrase(raw) {
            return Outcome::District(format!("“{raw}” names no particular place in {}", d.name));
        }
        if EXTERNAL.contains(&raw) || EXTERNAL.contains(&outer.as_str()) {
            return Outcome::External(format!("“{raw}” is outside the five districts"));
        }
        Outcome::Unknown(format!(
            "“{raw}” matches no town, village or known place of {}",
            d.name
        ))
    }

    fn resolve_clean(
        &mut self,
        district: &str,
        s: &str,
        context: &[String],
        focus: &[String],
    ) -> Option<Outcome> {
        let d = self.admin.district(district);
        if s == d.name {
            return Some(Outcome::District(format!("the text names only {}", d.name)));
        }
        if EXTERNAL.contains(&s) {
            return Some(Outcome::External(format!(
                "“{s}” is outside the five districts"
            )));
        }
        // alias table
        if let Some((_, v, canon, kind, note)) =
            ALIASES.iter().find(|a| a.0 == district && a.1 == s)
        {
            let mut codes = Vec::new();
            for c in canon.split(',') {
                if let Some(t) = self.town_by_name(district, c) {
                    codes.push(t);
                } else if let Some((vc, _)) = self
                    .village(district, context, c)
                    .or_else(|| self.village(district, &[], c))
                {
                    codes.push(vc);
                } else {
                    panic!("alias {v} -> {c} does not resolve in {district}");
                }
            }
            self.note_use(district, v, canon, &codes, kind, note);
            let how = if *kind == "area" { "area" } else { "alias" };
            return Some(Outcome::Units(Resolved {
                codes,
                how,
                note: Some(note.to_string()),
            }));
        }
        // exact town
        if let Some(t) = self.town_by_name(district, s) {
            return Some(Outcome::Units(Resolved {
                codes: vec![t],
                how: "exact",
                note: None,
            }));
        }
        // town + village written together: 羊角街道清水村
        for t in self.admin.towns_of(district) {
            if let Some(rest) = s.strip_prefix(t.name.as_str()) {
                if !rest.is_empty() {
                    if let Some((v, _)) =
                        self.village(district, std::slice::from_ref(&t.code), rest)
                    {
                        return Some(Outcome::Units(Resolved {
                            codes: vec![v],
                            how: "exact",
                            note: None,
                        }));
                    }
                }
            }
        }
        // village inside the context towns, the focus towns, then the district
        for scope in [context, focus] {
            if !scope.is_empty() {
                if let Some((v, by_stem)) = self.village(district, scope, s) {
                    if by_stem {
                        let name = self.admin.village(&v).name.clone();
                        self.note_use(
                            district,
                            s,
                            &name,
                            std::slice::from_ref(&v),
                            "stem",
                            "village written without 村/社区",
                        );
                    }
                    return Some(Outcome::Units(Resolved {
                        codes: vec![v],
                        how: if by_stem { "stem" } else { "exact" },
                        note: None,
                    }));
                }
            }
        }
        // town stem: 石马 -> 石马镇
        if let Some(t) = self.town_by_stem(district, s) {
            let name = self.admin.town(&t).name.clone();
            self.note_use(
                district,
                s,
                &name,
                std::slice::from_ref(&t),
                "stem",
                "town written without 镇/乡/街道",
            );
            return Some(Outcome::Units(Resolved {
                codes: vec![t],
                how: "stem",
                note: None,
            }));
        }
        if let Some((v, by_stem)) = self.village(district, &[], s) {
            if s.ends_with('村') || s.ends_with("社区") || by_stem {
                if by_stem {
                    let name = self.admin.village(&v).name.clone();
                    self.note_use(
                        district,
                        s,
                        &name,
                        std::slice::from_ref(&v),
                        "stem",
                        "village written without 村/社区",
                    );
                }
                return Some(Outcome::Units(Resolved {
                    codes: vec![v],
                    how: if by_stem { "stem" } else { "exact" },
                    note: None,
                }));
            }
        }
        None
    }
}
