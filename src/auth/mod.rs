//! Identity and rights: roles, API tokens (random, shown once, stored as argon2 hashes) and the
//! district/town scope of editors and stewards, checked by code and by geometry.

pub mod jwt;
mod scope;
mod token;

pub use scope::{out_of_scope, OutOfScope, SCOPE_TOLERANCE_M, SCOPE_TOLERANCE_M2};
pub use token::{hash_secret, new_token, parse_token, verify_secret, NewToken};

/// What a user may do; each role can do everything the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads (only needed when the server is started with `--private`).
    Viewer,
    /// Creates, changes and deletes features of plan layers, within its scope.
    Editor,
    /// Also imports, replaces layers and writes the reference layers (districts, towns …).
    Steward,
    /// Also manages users and reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Steward, Role::Admin];

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Steward => "steward",
            Role::Admin => "admin",
        }
    }
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Admin codes (6-digit districts, 9-digit towns) the user may write in; empty: anywhere.
    /// Admins are never scoped.
    pub scope: Vec<String>,
}

impl Principal {
    pub fn scoped(&self) -> bool {
        self.role != Role::Admin && !self.scope.is_empty()
    }
}

/// Layers that hold the admin hierarchy and its points: only stewards and admins write them.
pub const REFERENCE_LAYERS: [&str; 5] = [
    "districts",
    "towns",
    "villages",
    "town_seats",
    "village_points",
];

pub fn is_reference_layer(layer: &str) -> bool {
    REFERENCE_LAYERS.contains(&layer)
}

/// Checks `--districts 500111,500156100`: 6-digit district or 9-digit town codes.
pub fn parse_scope(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for code in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if !(code.len() == 6 || code.len() == 9) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "'{code}' is not a district (6 digits) or town (9 digits) code"
            ));
        }
        if !out.iter().any(|c| c == code) {
            out.push(code.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Steward);
        assert!(Role::Steward < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn scopes_are_district_or_town_codes() {
        assert_eq!(
            parse_scope("500111, 500156100,500111").unwrap(),
            vec!["500111", "500156100"]
        );
        assert!(parse_scope("5001").is_err());
        assert!(parse_scope("50011110000a").is_err());
        assert!(parse_scope("").unwrap().is_empty());
    }
}
