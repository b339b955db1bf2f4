//! A budget for long computations: a deadline and a cancellation flag that whoever started the
//! work (e.g. the HTTP layer, when the client goes away) can raise. Loops call [`Budget::check`]
//! every few hundred items and stop with a [`Stop`] saying why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a computation stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stop {
    /// The deadline passed; the duration is the limit that was set.
    #[error("took longer than the limit of {} s", .0.as_secs_f64())]
    Deadline(Duration),
    /// Whoever asked does not want the answer any more.
    #[error("cancelled")]
    Cancelled,
}

/// A deadline and a shared cancellation flag; clones share the flag.
#[derive(Debug, Clone)]
pub struct Budget {
    deadline: Option<Instant>,
    limit: Duration,
    cancelled: Arc<AtomicBool>,
}

/// How many items a loop may go between two checks ([`Budget::check_every`]).
pub const CHECK_EVERY: usize = 256;

impl Budget {
    /// No deadline and nobody to cancel: for the CLI and for tests.
    pub fn unlimited() -> Budget {
        Budget {
            deadline: None,
            limit: Duration::MAX,
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A budget of `limit` from `start`.
    pub fn new(start: Instant, limit: Duration) -> Budget {
        Budget {
            deadline: start.checked_add(limit),
            limit,
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Asks every holder of this budget to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// The limit this budget was made with.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// `Err` once cancelled or past the deadline.
    pub fn check(&self) -> Result<(), Stop> {
        if self.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(Stop::Deadline(self.limit)),
            _ => Ok(()),
        }
    }

    /// [`Budget::check`] on every [`CHECK_EVERY`]th item `i` of a loop (and on the first).
    #[inline]
    pub fn check_every(&self, i: usize) -> Result<(), Stop> {
        if i % CHECK_EVERY == 0 {
            self.check()
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_stops_until_cancelled() {
        let b = Budget::unlimited();
        assert_eq!(b.check(), Ok(()));
        let other = b.clone();
        other.cancel();
        assert_eq!(b.check(), Err(Stop::Cancelled));
    }

    #[test]
    fn deadline_stops_with_the_limit() {
        let limit = Duration::from_millis(5);
        let b = Budget::new(Instant::now() - Duration::from_millis(10), limit);
        assert_eq!(b.check(), Err(Stop::Deadline(limit)));
        assert_eq!(b.check_every(1), Ok(()));
        assert_eq!(b.check_every(CHECK_EVERY), Err(Stop::Deadline(limit)));
    }
}
