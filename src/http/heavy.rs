//! Heavy requests (coverage, area features, exports, tiles, filters over large layers) run on
//! blocking threads, at most one per core at once, the rest in a bounded queue, each under the
//! request deadline; a client that goes away cancels its work. The async workers stay free for
//! cheap requests such as `/conformance` and `/healthz`.

use axum::http::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::engine::{Budget, Stop};

/// Counters an operator (and the tests) can read at `/healthz`.
#[derive(Debug, Default)]
pub struct HeavyStats {
    pub running: AtomicUsize,
    pub queued: AtomicUsize,
    pub completed: AtomicU64,
    /// Jobs stopped because their client went away.
    pub cancelled: AtomicU64,
    /// Requests answered 503 because the deadline passed.
    pub timed_out: AtomicU64,
    /// Requests answered 503 because the queue was full.
    pub rejected: AtomicU64,
}

impl HeavyStats {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "running": self.running.load(Ordering::Relaxed),
            "queued": self.queued.load(Ordering::Relaxed),
            "completed": self.completed.load(Ordering::Relaxed),
            "cancelled": self.cancelled.load(Ordering::Relaxed),
            "timed_out": self.timed_out.load(Ordering::Relaxed),
            "rejected": self.rejected.load(Ordering::Relaxed),
        })
    }
}

/// The pool of slots for heavy work.
pub struct Heavy {
    slots: Arc<Semaphore>,
    pub jobs: usize,
    max_queued: usize,
    pub timeout: Duration,
    pub stats: Arc<HeavyStats>,
}

/// A slot, the request's budget and the guard that cancels the budget when the request is dropped.
pub struct Admission {
    pub permit: OwnedSemaphorePermit,
    pub budget: Budget,
    pub cancel_on_drop: CancelOnDrop,
    pub started: Instant,
}

/// Raises the budget's cancellation flag when dropped, unless disarmed: the handler future is
/// dropped when the client closes the connection.
pub struct CancelOnDrop(Option<Budget>);

impl CancelOnDrop {
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.cancel();
        }
    }
}

/// Decrements the queue length however the wait ends.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Heavy {
    /// `jobs` 0 means one per core.
    pub fn new(jobs: usize, max_queued: usize, timeout: Duration) -> Heavy {
        let jobs = if jobs == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            jobs
        };
        Heavy {
            slots: Arc::new(Semaphore::new(jobs)),
            jobs,
            max_queued,
            timeout,
            stats: Arc::new(HeavyStats::default()),
        }
    }

    /// 503 naming the request-timeout limit.
    pub fn timeout_error(&self) -> ApiError {
        self.stats.timed_out.fetch_add(1, Ordering::Relaxed);
        let secs = self.timeout.as_secs_f64();
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestTimeout",
            format!(
                "the request needed more than the server's limit of {secs} s (--request-timeout); \
                 ask for less (a smaller area, fewer layers, a filter) or try again later"
            ),
        )
        .with_details(json!({"limit": "request-timeout", "seconds": secs}))
        .retry_after(self.timeout.as_secs().clamp(1, 60))
    }

    fn busy_error(&self) -> ApiError {
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            format!(
                "{} heavy requests are running and {} waiting (--heavy-jobs, --heavy-queue); try again shortly",
                self.jobs, self.max_queued
            ),
        )
        .with_details(json!({"limit": "heavy-queue", "running": self.jobs, "queued": self.max_queued}))
        .retry_after(1)
    }

    /// Waits for a slot (within the deadline and the queue bound).
    pub async fn admit(&self) -> Result<Admission, ApiError> {
        let started = Instant::now();
        let budget = Budget::new(started, self.timeout);
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.stats.queued.fetch_add(1, Ordering::Relaxed) >= self.max_queued {
                    self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    return Err(self.busy_error());
                }
                let _queued = Queued(&self.stats.queued);
                match tokio::time::timeout(self.timeout, Arc::clone(&self.slots).acquire_owned())
                    .await
                {
                    Ok(Ok(p)) => p,
                    Ok(Err(closed)) => return Err(ApiError::internal(closed)),
                    Err(_) => return Err(self.timeout_error()),
                }
            }
        };
        Ok(Admission {
            permit,
            cancel_on_drop: CancelOnDrop(Some(budget.clone())),
            budget,
            started,
        })
    }

    /// Runs `work` on a blocking thread once a slot is free and answers within the deadline.
    /// Work that checks its budget stops at the deadline or when the client goes away; work
    /// that does not is answered 503 at the deadline and finishes in the background, still
    /// holding its slot, so that no more than `jobs` computations ever run.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Budget) -> Result<T, Stop> + Send + 'static,
    {
        let Admission {
            permit,
            budget,
            cancel_on_drop,
            started,
        } = self.admit().await?;
        let stats = Arc::clone(&self.stats);
        let b = budget.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            stats.running.fetch_add(1, Ordering::Relaxed);
            let out = work(&b);
            stats.running.fetch_sub(1, Ordering::Relaxed);
            match &out {
                Ok(_) => stats.completed.fetch_add(1, Ordering::Relaxed),
                Err(Stop::Cancelled) => {
                    tracing::info!("heavy request cancelled: the client went away");
                    stats.cancelled.fetch_add(1, Ordering::Relaxed)
                }
                Err(Stop::Deadline(_)) => 0,
            };
            out
        });
        let left = self.timeout.saturating_sub(started.elapsed());
        let out = match tokio::time::timeout(left, handle).await {
            Err(_) => Err(self.timeout_error()),
            Ok(Err(join)) => Err(ApiError::internal(join)),
            Ok(Ok(Err(_stop))) => Err(self.timeout_error()),
            Ok(Ok(Ok(v))) => Ok(v),
        };
        cancel_on_drop.disarm();
        out
    }
}
