//! API tokens: `yzt_<id>_<secret>`. The id (public, 16 hex digits) finds the user's row, so a
//! request costs one hash check; only the argon2 hash of the secret (256 random bits) is stored.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

/// A token just made: the whole token is shown once, the id and hash are stored.
pub struct NewToken {
    pub token: String,
    pub id: String,
    pub hash: String,
}

/// Makes a random token.
pub fn new_token() -> Result<NewToken, String> {
    let mut rng = rand::rngs::OsRng;
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    let hash = hash_secret(&secret)?;
    Ok(NewToken {
        token: format!("yzt_{id}_{secret}"),
        id,
        hash,
    })
}

/// The argon2id PHC string (salted) of a secret.
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `secret` matches a stored PHC string.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Splits a token into (id, secret); `None` when it is not shaped like one of ours.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("yzt_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_their_hash_only() {
        let t = new_token().unwrap();
        let (id, secret) = parse_token(&t.token).unwrap();
        assert_eq!(id, t.id);
        assert!(!t.hash.contains(secret));
        assert!(t.hash.starts_with("$argon2id$"));
        assert!(verify_secret(secret, &t.hash));
        let other = new_token().unwrap();
        let (_, other_secret) = parse_token(&other.token).unwrap();
        assert!(!verify_secret(other_secret, &t.hash));
        assert!(parse_token("yzt_abc_def").is_none());
        assert!(parse_token("Bearer x").is_none());
    }
}
