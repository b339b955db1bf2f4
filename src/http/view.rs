//! The layers a request reads: live, as they stood at `asof=<RFC 3339 time>` (rebuilt from the
//! feature history, as items do), and/or only the features of one `plan=` (as items filter them).
//!
//! Admin units (the `code` of `/areas/{code}`, an export's `area`) are always the live ones: the
//! question is what the layers held then, inside today's boundaries.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::AppState;
use crate::engine::Engine;
use crate::model::{Feature, Layer};
use crate::store::parse_instant;

/// What a request asked to see of the layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The instant, in the fixed-width UTC form of the history rows.
    pub asof: Option<String>,
    /// A plan id (see `/plans`): only its features, on layers that have a `plan` property.
    pub plan: Option<String>,
}

impl View {
    /// `asof` and `plan` from the query (or from a body's members merged into it).
    pub fn parse(params: &Params) -> ApiResult<View> {
        let asof = match params.get("asof")? {
            None => None,
            Some(t) => Some(parse_instant(t).map_err(|e| ApiError::parameter("asof", t, e))?),
        };
        let plan = match params.get("plan")? {
            Some("") => return Err(ApiError::parameter("plan", "", "name a plan (see /plans)")),
            p => p.map(str::to_string),
        };
        Ok(View { asof, plan })
    }

    /// Only `asof` (for resources that filter by plan themselves).
    pub fn parse_asof(params: &Params) -> ApiResult<View> {
        Ok(View {
            plan: None,
            ..View::parse(params)?
        })
    }

    /// The live layers, unfiltered.
    pub fn is_live(&self) -> bool {
        self.asof.is_none() && self.plan.is_none()
    }

    /// Part of an ETag or cache key: what makes this view's answer differ from the live one.
    pub fn tag(&self) -> String {
        format!(
            "asof={};plan={}",
            self.asof.as_deref().unwrap_or(""),
            self.plan.as_deref().unwrap_or("")
        )
    }

    /// An engine holding `layers` as this view shows them: the live engine itself when nothing
    /// was asked, else a new one built (on the heavy pool) from the history and/or the plan's
    /// features. Layer metadata and revisions are the live ones.
    pub async fn engine(&self, state: &AppState, layers: &[String]) -> ApiResult<Arc<Engine>> {
        let live = &state.app.engine;
        if self.is_live() {
            return Ok(Arc::clone(live));
        }
        // The history only grows with writes, and writes move the layers' revisions: a snapshot
        // of the same layers at the same revisions is still right.
        let revisions: Vec<String> = layers
            .iter()
            .filter_map(|id| {
                live.layer(id)
                    .map(|l| format!("{id}@{}", l.read().revision))
            })
            .collect();
        let key = format!("{}|{}", self.tag(), revisions.join(","));
        if let Some(engine) = state.snapshots.get(&key) {
            return Ok(engine);
        }
        let mut chosen = Vec::with_capacity(layers.len());
        for id in layers {
            let Some(layer) = live.layer(id) else {
                continue;
            };
            let (meta, revision, current, filter) = {
                let idx = layer.read();
                let current: Vec<Feature> = match &self.asof {
                    Some(_) => Vec::new(),
                    None => idx
                        .iter()
                        .map(|(_, f)| Feature::clone(f.as_ref()))
                        .collect(),
                };
                // The same test as items' `plan=`: layers without plans are left whole.
                let filter = self
                    .plan
                    .as_deref()
                    .and_then(|p| crate::monitor::plans::plan_filter(p, &|k| idx.has_property(k)));
                (idx.layer.clone(), idx.revision, current, filter)
            };
            let features = match &self.asof {
                Some(at) => state
                    .app
                    .store
                    .layer_as_of(id, at)
                    .await
                    .map_err(ApiError::internal)?,
                None => current,
            };
            chosen.push(((meta, revision), features, filter));
        }
        let engine = state
            .heavy
            .run(move |budget| {
                let mut metas: Vec<(Layer, u64)> = Vec::with_capacity(chosen.len());
                let mut all = Vec::new();
                for (meta, features, filter) in chosen {
                    budget.check()?;
                    match filter {
                        Some(flt) => all.extend(features.into_iter().filter(|f| flt.matches(f))),
                        None => all.extend(features),
                    }
                    metas.push(meta);
                }
                budget.check()?;
                let features = all.len();
                Ok((Engine::load(metas, all), features))
            })
            .await?;
        let (engine, features) = engine;
        let engine = Arc::new(engine);
        if features <= SNAPSHOT_MAX_FEATURES {
            state.snapshots.put(key, Arc::clone(&engine));
        }
        Ok(engine)
    }
}

/// Snapshots kept for the next request (a map asks for many tiles of the same instant).
const SNAPSHOTS: usize = 4;
/// Larger snapshots are built for their request only, so the kept ones stay small in memory.
const SNAPSHOT_MAX_FEATURES: usize = 200_000;

/// The last few layer sets built for a view, by view, layers and revisions.
#[derive(Default)]
pub struct Snapshots {
    kept: Mutex<VecDeque<(String, Arc<Engine>)>>,
}

impl Snapshots {
    fn get(&self, key: &str) -> Option<Arc<Engine>> {
        let kept = self.kept.lock();
        kept.iter()
            .find(|(k, _)| k == key)
            .map(|(_, e)| Arc::clone(e))
    }

    fn put(&self, key: String, engine: Arc<Engine>) {
        let mut kept = self.kept.lock();
        kept.retain(|(k, _)| *k != key);
        if kept.len() == SNAPSHOTS {
            kept.pop_front();
        }
        kept.push_back((key, engine));
    }
}
