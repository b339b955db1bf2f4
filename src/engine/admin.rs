//! The admin hierarchy — district (6-digit code) → town (9) → village (12) — read from the
//! `districts`, `towns` and `villages` layers, and lookups by code or by name.

use std::sync::Arc;

use super::Engine;
use crate::geom::{prepare, PreparedArea};
use crate::model::Feature;

/// A level of the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminLevel {
    /// 区县
    District,
    /// 乡镇街道
    Town,
    /// 村/社区
    Village,
}

impl AdminLevel {
    pub fn layer(self) -> &'static str {
        match self {
            AdminLevel::District => "districts",
            AdminLevel::Town => "towns",
            AdminLevel::Village => "villages",
        }
    }

    pub fn of_code(code: &str) -> Option<AdminLevel> {
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match code.len() {
            6 => Some(AdminLevel::District),
            9 => Some(AdminLevel::Town),
            12 => Some(AdminLevel::Village),
            _ => None,
        }
    }

    pub fn child(self) -> Option<AdminLevel> {
        match self {
            AdminLevel::District => Some(AdminLevel::Town),
            AdminLevel::Town => Some(AdminLevel::Village),
            AdminLevel::Village => None,
        }
    }
}

/// One admin unit, with its feature.
#[derive(Debug, Clone)]
pub struct AdminUnit {
    pub code: String,
    pub name: String,
    pub level: AdminLevel,
    pub feature: Arc<Feature>,
}

/// Why a name or code did not resolve to exactly one unit.
#[derive(Debug, Clone, PartialEq)]
pub enum AdminLookupError {
    /// Nothing by that code or name.
    Unknown(String),
    /// Several units share the name: (code, name, parent code) of each.
    Ambiguous(String, Vec<(String, String, String)>),
}

/// Official village names end in 村民委员会/居民委员会; people write 双流村 or 学坝社区.
pub fn short_name(name: &str) -> &str {
    for suffix in ["村民委员会", "居民委员会", "委员会"] {
        if let Some(s) = name.strip_suffix(suffix) {
            // 双流村村民委员会 → 双流村; 学坝社区居民委员会 → 学坝社区.
            if suffix == "村民委员会" && !s.ends_with('村') {
                return &name[..s.len() + '村'.len_utf8()];
            }
            return s;
        }
    }
    name
}

fn unit(level: AdminLevel, f: Arc<Feature>) -> AdminUnit {
    AdminUnit {
        code: f.admin_code.clone().unwrap_or_else(|| f.id.clone()),
        name: f.name.clone().unwrap_or_default(),
        level,
        feature: f,
    }
}

fn parent_code(code: &str) -> Option<&str> {
    match code.len() {
        12 => Some(&code[..9]),
        9 => Some(&code[..6]),
        _ => None,
    }
}

impl Engine {
    /// The unit with this NBS code, if its layer holds it.
    pub fn admin_unit(&self, code: &str) -> Option<AdminUnit> {
        let level = AdminLevel::of_code(code)?;
        let idx = self.layer(level.layer())?;
        let idx = idx.read();
        if let Some(f) = idx.get(code) {
            return Some(unit(level, f));
        }
        // Names and codes are read from the compact form: only the unit found is decoded.
        let found = idx
            .compact_iter()
            .find(|(_, c)| c.admin_code() == Some(code))
            .and_then(|(slot, _)| idx.slot(slot))
            .map(|f| unit(level, f));
        found
    }

    /// Resolves a code, an exact name (`龙水镇`, `双流村`), or `town/village` (`吴家镇/双流村`).
    pub fn resolve_admin(&self, text: &str) -> Result<AdminUnit, AdminLookupError> {
        let text = text.trim();
        if AdminLevel::of_code(text).is_some() {
            return self
                .admin_unit(text)
                .ok_or_else(|| AdminLookupError::Unknown(text.to_string()));
        }
        let (scope, name) = match text.rsplit_once('/') {
            Some((parent, child)) => (Some(self.resolve_admin(parent)?), child),
            None => (None, text),
        };
        let mut found = Vec::new();
        for level in [AdminLevel::District, AdminLevel::Town, AdminLevel::Village] {
            let Some(idx) = self.layer(level.layer()) else {
                continue;
            };
            let idx = idx.read();
            for (slot, c) in idx.compact_iter() {
                let Some(n) = c.name() else { continue };
                if n != name && short_name(n) != name {
                    continue;
                }
                let Some(f) = idx.slot(slot) else { continue };
                let u = unit(level, f);
                if scope
                    .as_ref()
                    .is_none_or(|s| u.code.starts_with(&s.code) && u.code != s.code)
                {
                    found.push(u);
                }
            }
        }
        match found.len() {
            0 => Err(AdminLookupError::Unknown(text.to_string())),
            1 => Ok(found.remove(0)),
            _ => Err(AdminLookupError::Ambiguous(
                text.to_string(),
                found
                    .into_iter()
                    .map(|u| {
                        let parent = parent_code(&u.code).unwrap_or("").to_string();
                        (u.code, u.name, parent)
                    })
                    .collect(),
            )),
        }
    }

    /// District, then town, above this unit (outermost first).
    pub fn admin_parents(&self, code: &str) -> Vec<AdminUnit> {
        let mut out = Vec::new();
        let mut c = parent_code(code);
        while let Some(p) = c {
            if let Some(u) = self.admin_unit(p) {
                out.push(u);
            }
            c = parent_code(p);
        }
        out.reverse();
        out
    }

    /// The units one level down (towns of a district, villages of a town), by code order.
    pub fn admin_children(&self, code: &str) -> Vec<AdminUnit> {
        let Some(level) = AdminLevel::of_code(code).and_then(AdminLevel::child) else {
            return vec![];
        };
        let Some(idx) = self.layer(level.layer()) else {
            return vec![];
        };
        let idx = idx.read();
        let mut out: Vec<AdminUnit> = idx
            .compact_iter()
            .filter(|(_, c)| {
                let own = c.admin_code().unwrap_or_else(|| c.id());
                own.len() == code.len() + 3 && own.starts_with(code)
            })
            .filter_map(|(slot, _)| idx.slot(slot))
            .map(|f| unit(level, f))
            .collect();
        out.sort_by(|a, b| a.code.cmp(&b.code));
        out
    }

    /// The unit's polygon prepared for queries; cached per feature version.
    pub fn admin_area(&self, unit: &AdminUnit) -> Option<Arc<PreparedArea>> {
        let key = (
            unit.level.layer().to_string(),
            unit.feature.id.clone(),
            unit.feature.version,
        );
        if let Some(a) = self.areas.lock().get(&key) {
            return Some(Arc::clone(a));
        }
        let area = Arc::new(prepare(unit.feature.geometry.as_ref()?)?);
        let mut cache = self.areas.lock();
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&area));
        Some(area)
    }
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn short_names() {
        assert_eq!(short_name("双流村村民委员会"), "双流村");
        assert_eq!(short_name("学坝社区居民委员会"), "学坝社区");
        assert_eq!(short_name("龙水镇"), "龙水镇");
    }
}
