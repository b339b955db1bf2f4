//! Single sign-on: JSON Web Tokens signed by a bureau's identity provider, checked against its
//! published keys (a JWKS file or URL), with claims mapped to a role and a district/town scope.
//!
//! Only asymmetric algorithms (RS*, PS*, ES*, EdDSA) are accepted, and a token's algorithm must be
//! the one its key is for: a token cannot choose `HS256` and have the public key used as a shared
//! secret, nor `none`. `exp` and `iss` are required; `aud` when an audience is configured.

use clap::Args;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use std::time::{Duration, Instant};

use super::{parse_scope, Principal, Role};

/// `serve` options for JWT sign-in; without `--jwt-jwks` only yizhangtu's own tokens work.
#[derive(Debug, Clone, Default, Args)]
pub struct JwtArgs {
    /// Accept JWTs signed with these keys: a JWKS file or an http(s) URL (fetched at start, and
    /// again, at most once a minute, when a token names a key it does not hold).
    #[arg(long, env = "YIZHANGTU_JWT_JWKS", requires = "jwt_issuer")]
    pub jwt_jwks: Option<String>,
    /// The issuer (`iss`) the tokens must carry.
    #[arg(long, env = "YIZHANGTU_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The audience (`aud`) the tokens must carry; without it `aud` is not checked.
    #[arg(long, env = "YIZHANGTU_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Claim holding the role: viewer, editor, steward or admin.
    #[arg(long, env = "YIZHANGTU_JWT_ROLE_CLAIM", default_value = "role")]
    pub jwt_role_claim: String,
    /// Claim holding the district/town codes an editor or steward may write in (an array or a
    /// comma-separated string); absent or empty: the whole county.
    #[arg(long, env = "YIZHANGTU_JWT_SCOPE_CLAIM", default_value = "districts")]
    pub jwt_scope_claim: String,
    /// Claim naming the user in the audit log and history.
    #[arg(long, env = "YIZHANGTU_JWT_NAME_CLAIM", default_value = "sub")]
    pub jwt_name_claim: String,
}

/// How long after a fetch of the key set a token with an unknown key may trigger another.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Largest key set document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Checks JWTs against the configured keys and maps their claims.
pub struct JwtVerifier {
    args: JwtArgs,
    source: String,
    issuer: String,
    keys: RwLock<JwkSet>,
    fetched: Mutex<Instant>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("source", &self.source)
            .field("issuer", &self.issuer)
            .field("keys", &self.keys.read().keys.len())
            .finish()
    }
}

/// Whether `token` is shaped like a JWT (three base64url parts), so worth verifying as one.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl JwtVerifier {
    /// Reads the key set; `None` when `--jwt-jwks` is not given.
    pub async fn from_args(args: &JwtArgs) -> anyhow::Result<Option<JwtVerifier>> {
        let Some(source) = args.jwt_jwks.clone() else {
            return Ok(None);
        };
        let issuer = args
            .jwt_issuer
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| anyhow::anyhow!("--jwt-jwks needs --jwt-issuer"))?;
        let keys = fetch(&source)
            .await
            .map_err(|e| anyhow::anyhow!("--jwt-jwks {source}: {e}"))?;
        if keys.keys.is_empty() {
            anyhow::bail!("--jwt-jwks {source}: the key set has no keys");
        }
        for k in &keys.keys {
            algorithm_of(k).map_err(|e| anyhow::anyhow!("--jwt-jwks {source}: {e}"))?;
        }
        Ok(Some(JwtVerifier {
            args: args.clone(),
            source,
            issuer,
            keys: RwLock::new(keys),
            fetched: Mutex::new(Instant::now()),
        }))
    }

    /// The principal of a valid token, or why it is not valid (said to the caller in the 401).
    pub async fn verify(&self, token: &str) -> Result<Principal, String> {
        let header = decode_header(token).map_err(|e| format!("its header cannot be read: {e}"))?;
        let kid = header.kid.clone();
        let mut key = self.find(kid.as_deref());
        if key.is_none() && self.may_refetch() {
            if let Ok(fresh) = fetch(&self.source).await {
                if !fresh.keys.is_empty() {
                    *self.keys.write() = fresh;
                }
            }
            key = self.find(kid.as_deref());
        }
        let jwk = key.ok_or_else(|| match &kid {
            Some(k) => format!("no key '{k}' in the configured key set"),
            None => "it names no key (kid) and the key set has more than one".to_string(),
        })?;
        let alg = algorithm_of(&jwk)?;
        if header.alg != alg {
            return Err(format!(
                "it is signed with {:?} but its key is for {alg:?}",
                header.alg
            ));
        }
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("its key: {e}"))?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        match &self.args.jwt_audience {
            Some(aud) if !aud.is_empty() => validation.set_audience(&[aud]),
            _ => validation.validate_aud = false,
        }
        let data = decode::<serde_json::Map<String, Value>>(token, &decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "it has expired".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    format!("its issuer is not {}", self.issuer)
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    "its audience is not this server's".to_string()
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    "its signature does not verify".to_string()
                }
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) => {
                    format!("it has no '{c}' claim")
                }
                _ => format!("it does not verify: {e}"),
            })?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &serde_json::Map<String, Value>) -> Result<Principal, String> {
        let a = &self.args;
        let name = match claims.get(&a.jwt_name_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(format!(
                    "it has no '{}' claim naming the user",
                    a.jwt_name_claim
                ))
            }
        };
        let role = claims
            .get(&a.jwt_role_claim)
            .and_then(Value::as_str)
            .and_then(Role::parse)
            .ok_or_else(|| {
                format!(
                    "its '{}' claim is not one of viewer, editor, steward, admin",
                    a.jwt_role_claim
                )
            })?;
        let scope_text = match claims.get(&a.jwt_scope_claim) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => {
                let codes: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                codes
                    .ok_or_else(|| {
                        format!("its '{}' claim is not a list of codes", a.jwt_scope_claim)
                    })?
                    .join(",")
            }
            Some(_) => {
                return Err(format!(
                    "its '{}' claim is not a list of codes",
                    a.jwt_scope_claim
                ))
            }
        };
        let scope = parse_scope(&scope_text)
            .map_err(|e| format!("its '{}' claim: {e}", a.jwt_scope_claim))?;
        Ok(Principal {
            // Told apart from local users of the same name in the audit log.
            name: format!("{name}@{}", self.issuer),
            role,
            scope: if role == Role::Admin {
                Vec::new()
            } else {
                scope
            },
        })
    }

    fn find(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.read();
        match kid {
            Some(k) => keys.find(k).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        }
    }

    fn may_refetch(&self) -> bool {
        if !self.source.starts_with("http://") && !self.source.starts_with("https://") {
            return false;
        }
        let mut last = self.fetched.lock();
        if last.elapsed() < REFETCH_AFTER {
            return false;
        }
        *last = Instant::now();
        true
    }
}

/// The one algorithm a key is used with: its `alg`, or the usual one for its type.
fn algorithm_of(k: &Jwk) -> Result<Algorithm, String> {
    let by_alg = k.common.key_algorithm.map(|a| match a {
        KeyAlgorithm::RS256 => Ok(Algorithm::RS256),
        KeyAlgorithm::RS384 => Ok(Algorithm::RS384),
        KeyAlgorithm::RS512 => Ok(Algorithm::RS512),
        KeyAlgorithm::PS256 => Ok(Algorithm::PS256),
        KeyAlgorithm::PS384 => Ok(Algorithm::PS384),
        KeyAlgorithm::PS512 => Ok(Algorithm::PS512),
        KeyAlgorithm::ES256 => Ok(Algorithm::ES256),
        KeyAlgorithm::ES384 => Ok(Algorithm::ES384),
        KeyAlgorithm::EdDSA => Ok(Algorithm::EdDSA),
        other => Err(format!(
            "key {:?}: algorithm {other:?} is not accepted (only RS*, PS*, ES*, EdDSA)",
            k.common.key_id
        )),
    });
    if let Some(a) = by_alg {
        return a;
    }
    match &k.algorithm {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            jsonwebtoken::jwk::EllipticCurve::P256 => Ok(Algorithm::ES256),
            jsonwebtoken::jwk::EllipticCurve::P384 => Ok(Algorithm::ES384),
            jsonwebtoken::jwk::EllipticCurve::Ed25519 => Ok(Algorithm::EdDSA),
            ref c => Err(format!(
                "key {:?}: curve {c:?} is not supported",
                k.common.key_id
            )),
        },
        AlgorithmParameters::OctetKeyPair(_) => Ok(Algorithm::EdDSA),
        AlgorithmParameters::OctetKey(_) => Err(format!(
            "key {:?} is a shared secret; only public keys (RSA, EC, OKP) are accepted",
            k.common.key_id
        )),
    }
}

async fn fetch(source: &str) -> Result<JwkSet, String> {
    let bytes = if source.starts_with("http://") || source.starts_with("https://") {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let r = client
            .get(source)
            .send()
            .await
            .map_err(|e| format!("cannot fetch it: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("fetching it answered {}", r.status()));
        }
        let b = r
            .bytes()
            .await
            .map_err(|e| format!("cannot fetch it: {e}"))?;
        b.to_vec()
    } else {
        tokio::fs::read(source)
            .await
            .map_err(|e| format!("cannot read it: {e}"))?
    };
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("it is larger than {MAX_JWKS_BYTES} bytes"));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("it is not a JWKS document: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jwt_shaped_tokens_are_tried() {
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("yzt_12_secret"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c d"));
    }

    #[test]
    fn shared_secrets_are_refused_as_keys() {
        let set: JwkSet =
            serde_json::from_str(r#"{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0"}]}"#).unwrap();
        assert!(algorithm_of(&set.keys[0])
            .unwrap_err()
            .contains("shared secret"));
    }
}
