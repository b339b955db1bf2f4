//! Who is asking: `Authorization: Bearer <token>` checked once per request by a middleware
//! (which also answers 401/429 and records failed sign-ins), and the role and scope checks
//! write handlers call. Tokens are never logged: the trace layer records no headers.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::error::ApiError;
use super::AppState;
use crate::auth::{self, Principal, Role};
use crate::model::Feature;
use crate::store::{Actor, AuditEntry};

/// Failed sign-ins an address may make per [`FAIL_WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 10;
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Addresses (and verified tokens) remembered at most; beyond that the oldest half is forgotten.
const MAX_REMEMBERED: usize = 10_000;

/// Sign-in state shared by all requests.
#[derive(Default)]
pub struct AuthState {
    /// token id → (SHA-256 of the secret, the PHC string it verified against): a token that
    /// verified once costs one fast hash afterwards, not another argon2 run, and stops working
    /// as soon as the stored hash changes (rotation) or the user is revoked.
    verified: Mutex<HashMap<String, ([u8; 32], String)>>,
    /// address → (failures in the window, window start)
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// The caller of one request, put in the request's extensions by [`identify`].
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub principal: Option<Principal>,
    pub address: Option<String>,
    pub request_id: Option<String>,
}

impl Caller {
    /// The actor of a write by this caller, with its reason.
    pub fn actor(&self, reason: Option<String>) -> Actor {
        Actor {
            user: self.principal.as_ref().map(|p| p.name.clone()),
            role: self.principal.as_ref().map(|p| p.role.as_str().to_string()),
            address: self.address.clone(),
            reason,
            request_id: self.request_id.clone(),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let text = v.to_str().map_err(|_| ());
    Some(text.and_then(|t| {
        let (scheme, token) = t.trim().split_once(' ').ok_or(())?;
        if scheme.eq_ignore_ascii_case("bearer") {
            Ok(token.trim())
        } else {
            Err(())
        }
    }))
}

fn unauthorized(description: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", description).into_response()
}

/// Every 401 says how to authenticate.
pub async fn www_authenticate(mut r: Response) -> Response {
    if r.status() == StatusCode::UNAUTHORIZED && !r.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"yizhangtu\""),
        );
    }
    r
}

/// Checks the token of requests that may need one (writes, `/audit`, and every request of a
/// `--private` server but `/healthz`); puts the [`Caller`] in the request's extensions.
pub async fn identify(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let mut caller = Caller {
        principal: None,
        address: ip.map(|i| i.to_string()),
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(128).collect()),
    };
    let path = req.uri().path();
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let private = state.settings.private && !matches!(path, "/healthz" | "/readyz");
    let needs_check = !safe || private || path.starts_with("/audit") || path == "/me";
    if needs_check {
        match bearer(req.headers()) {
            None if private => {
                return unauthorized("this server is private: send Authorization: Bearer <token>")
            }
            None => {}
            Some(token) => match check_token(&state, ip, token, &caller).await {
                Ok(p) => caller.principal = Some(p),
                Err(r) => return r,
            },
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

async fn check_token(
    state: &AppState,
    ip: Option<IpAddr>,
    token: Result<&str, ()>,
    caller: &Caller,
) -> Result<Principal, Response> {
    let auth = &state.auth;
    // Only tokens shaped like ours can be guessed, and only they cost a lookup and a hash:
    // an address over the limit gets 429 for those. Malformed ones stay a plain 401 (no audit
    // row once over the limit, so a flood of them cannot flood the log either).
    let parsed = token.ok().and_then(auth::parse_token);
    let limited = ip.and_then(|ip| {
        let failures = auth.failures.lock();
        let (n, start) = failures.get(&ip)?;
        let left = FAIL_WINDOW.saturating_sub(start.elapsed());
        (*n >= MAX_FAILURES && !left.is_zero()).then_some(left)
    });
    let jwt = state
        .settings
        .jwt
        .as_ref()
        .filter(|_| parsed.is_none())
        .zip(token.ok().filter(|t| auth::jwt::looks_like_jwt(t)));
    if let Some(left) = limited {
        if parsed.is_none() && jwt.is_none() {
            return Err(unauthorized(
                "the bearer token is not valid (unknown, revoked or malformed)",
            ));
        }
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyFailedSignIns",
            format!(
                "{MAX_FAILURES} failed sign-ins from this address within {} s; try again later",
                FAIL_WINDOW.as_secs()
            ),
        )
        .retry_after(left.as_secs() + 1)
        .into_response());
    }
    if let Some((verifier, token)) = jwt {
        let why = match verifier.verify(token).await {
            Ok(p) => return Ok(p),
            Err(why) => why,
        };
        return Err(refuse_sign_in(
            state,
            ip,
            caller,
            &format!("the bearer token is a JWT that is not accepted: {why}"),
        )
        .await);
    }
    let user = match parsed {
        Some((id, _)) => state
            .app
            .store
            .user_by_token_id(id)
            .await
            .map_err(|e| ApiError::internal(e).into_response())?,
        None => None,
    };
    let ok = match (parsed, &user) {
        (Some((id, secret)), Some(u)) if u.revoked_at.is_none() => {
            let phc = u.token_hash.clone().unwrap_or_default();
            let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
            let known = auth
                .verified
                .lock()
                .get(id)
                .is_some_and(|(d, h)| *d == digest && *h == phc);
            known || {
                let secret = secret.to_string();
                let phc2 = phc.clone();
                let good = tokio::task::spawn_blocking(move || auth::verify_secret(&secret, &phc2))
                    .await
                    .unwrap_or(false);
                if good {
                    let mut v = auth.verified.lock();
                    if v.len() >= MAX_REMEMBERED {
                        v.clear();
                    }
                    v.insert(id.to_string(), (digest, phc));
                }
                good
            }
        }
        _ => false,
    };
    if ok {
        let u = user.unwrap_or_else(|| unreachable!());
        return Ok(Principal {
            name: u.name,
            role: Role::parse(&u.role).unwrap_or(Role::Viewer),
            scope: u.scope,
        });
    }
    Err(refuse_sign_in(
        state,
        ip,
        caller,
        "the bearer token is not valid (unknown, revoked or malformed)",
    )
    .await)
}

/// A failed sign-in: counted against the address, audited, answered 401 saying why.
async fn refuse_sign_in(
    state: &AppState,
    ip: Option<IpAddr>,
    caller: &Caller,
    why: &str,
) -> Response {
    let auth = &state.auth;
    if let Some(ip) = ip {
        let mut failures = auth.failures.lock();
        if failures.len() >= MAX_REMEMBERED {
            failures.retain(|_, (_, start)| start.elapsed() < FAIL_WINDOW);
        }
        let e = failures.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAIL_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }
    let entry = AuditEntry {
        address: caller.address.clone(),
        action: "sign-in".into(),
        request_id: caller.request_id.clone(),
        outcome: format!("refused: {why}"),
        ..AuditEntry::default()
    };
    if let Err(e) = state.app.store.audit(&entry).await {
        tracing::warn!(error = %e, "could not record a failed sign-in");
    }
    unauthorized(why)
}

/// What a write needs: a signed-in user with at least `role`. Refusals are audited.
pub async fn require(
    state: &AppState,
    caller: &Caller,
    role: Role,
    action: &str,
    layer: &str,
    ids: &[String],
) -> Result<Principal, ApiError> {
    let refused = |why: &str| AuditEntry {
        user: caller.principal.as_ref().map(|p| p.name.clone()),
        role: caller.principal.as_ref().map(|p| p.role.as_str().into()),
        address: caller.address.clone(),
        action: action.into(),
        layer: Some(layer.into()),
        ids: ids.iter().take(100).cloned().collect(),
        reason: None,
        request_id: caller.request_id.clone(),
        outcome: format!("refused: {why}"),
    };
    let Some(p) = &caller.principal else {
        let _ = state.app.store.audit(&refused("anonymous")).await;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            format!("{action} needs a signed-in user: send Authorization: Bearer <token>"),
        ));
    };
    if p.role < role {
        let _ = state
            .app
            .store
            .audit(&refused(&format!(
                "role {} below {}",
                p.role.as_str(),
                role.as_str()
            )))
            .await;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "{action} in '{layer}' needs the role {} or higher; '{}' is {}",
                role.as_str(),
                p.name,
                p.role.as_str()
            ),
        )
        .with_details(json!({"user": p.name, "role": p.role.as_str(), "needed": role.as_str(), "collection": layer})));
    }
    Ok(p.clone())
}

/// The role a write to `layer` needs at least: reference layers are the stewards'.
pub fn role_for_layer(layer: &str) -> Role {
    if auth::is_reference_layer(layer) {
        Role::Steward
    } else {
        Role::Editor
    }
}

/// 403 (audited) when a scoped user's feature lies outside their districts/towns.
pub async fn check_scope(
    state: &AppState,
    caller: &Caller,
    p: &Principal,
    action: &str,
    features: &[&Feature],
) -> Result<(), ApiError> {
    if !p.scoped() {
        return Ok(());
    }
    for f in features {
        let Some(out) = auth::out_of_scope(&state.app.engine, &p.scope, f) else {
            continue;
        };
        let units: Vec<String> = out
            .scope
            .iter()
            .map(|(c, n)| format!("{n} ({c})").trim().to_string())
            .collect();
        let description = format!(
            "'{}' may write only in {}: feature '{}' of '{}' is not: {}; nothing was changed",
            p.name,
            units.join(", "),
            f.id,
            f.layer,
            out.problem
        );
        let entry = AuditEntry {
            user: Some(p.name.clone()),
            role: Some(p.role.as_str().into()),
            address: caller.address.clone(),
            action: action.into(),
            layer: Some(f.layer.clone()),
            ids: vec![f.id.clone()],
            reason: None,
            request_id: caller.request_id.clone(),
            outcome: format!("refused: out of scope: {}", out.problem),
        };
        let _ = state.app.store.audit(&entry).await;
        return Err(ApiError::new(StatusCode::FORBIDDEN, "OutOfScope", description)
            .with_details(json!({
                "user": p.name,
                "scope": out.scope.iter().map(|(c, n)| json!({"code": c, "name": n})).collect::<Vec<_>>(),
                "collection": f.layer,
                "feature": f.id,
                "problem": out.problem,
            })));
    }
    Ok(())
}

/// The change reason from `X-Change-Reason` (percent-decoded, so any language fits in a header)
/// or the body's `reason` member; 400 when the server requires one and none was given.
pub fn change_reason(
    state: &AppState,
    headers: &HeaderMap,
    member: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let header = headers.get("x-change-reason").map(|v| {
        percent_encoding::percent_decode(v.as_bytes())
            .decode_utf8_lossy()
            .trim()
            .to_string()
    });
    let reason = header
        .or_else(|| member.map(|m| m.trim().to_string()))
        .filter(|r| !r.is_empty())
        .map(|r| r.chars().take(2000).collect::<String>());
    if reason.is_none() && state.settings.require_reason {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ReasonRequired",
            "this server requires a reason for every change: send an X-Change-Reason header or a \"reason\" member",
        )
        .with_details(json!({"parameter": "X-Change-Reason"})));
    }
    Ok(reason)
}
