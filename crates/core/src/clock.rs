//! Where ostler learns what time it is. Everything that reads time (supervisor backoff
//! and crash windows, lock expiry, catalog and journal timestamps, retention, and next
//! schedules and escalations) asks a [`Clock`] it was given, never the system directly,
//! so that tests drive time by hand: a [`ManualClock`] moves only when the test says
//! so, and whatever sleeps on it wakes at once when it passes the wake-up time.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

/// The one handle to time: cheap to clone, `now` and `sleep_until`.
#[derive(Clone)]
pub struct Clock(Arc<dyn Source>);

/// What a clock is made of. [`Clock::system`] and [`ManualClock`] are the two.
trait Source: Send + Sync {
    fn now(&self) -> Timestamp;
    fn sleep_until(&self, t: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
    fn name(&self) -> &'static str;
}

impl Clock {
    /// The system's wall clock; sleeps are tokio timers.
    pub fn system() -> Clock {
        Clock(Arc::new(System))
    }

    pub fn now(&self) -> Timestamp {
        self.0.now()
    }

    /// Resolves once `now() >= t` (at once when `t` has passed).
    pub fn sleep_until(&self, t: Timestamp) -> impl Future<Output = ()> + Send + 'static {
        self.0.sleep_until(t)
    }

    /// Resolves once `d` has passed on this clock.
    pub fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.0.sleep_until(self.after(d))
    }

    /// `now() + d`, or the end of time for a `d` too long to add.
    pub fn after(&self, d: Duration) -> Timestamp {
        later(self.now(), d)
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({}, {})", self.0.name(), self.now())
    }
}

/// `t + d`, or the end of time for a `d` too long to add.
pub fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(signed(d)).unwrap_or(Timestamp::MAX)
}

/// `t` less `d`, saturating at the start of time.
pub fn earlier(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(signed(d)).unwrap_or(Timestamp::MIN)
}

/// The sooner of two times, either of which may be none (none: nothing is due).
pub fn sooner(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A std duration as jiff's, saturating at jiff's largest span.
pub fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

struct System;

impl Source for System {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep_until(&self, t: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(async move {
            // Re-checked after each timer: the wall clock may have been set back.
            loop {
                let left = t.duration_since(Timestamp::now());
                if left <= SignedDuration::ZERO {
                    return;
                }
                let left = Duration::try_from(left).unwrap_or(Duration::from_secs(1));
                tokio::time::sleep(left).await;
            }
        })
    }

    fn name(&self) -> &'static str {
        "system"
    }
}

/// A clock that moves only when told: [`ManualClock::advance`] or [`ManualClock::set`].
/// Its [`Clock`] (from [`ManualClock::clock`]) is what the code under test gets.
#[derive(Clone)]
pub struct ManualClock(Arc<Manual>);

struct Manual {
    now: Mutex<Timestamp>,
    moved: watch::Sender<Timestamp>,
    /// Each pending sleep's deadline, by a number of its own.
    sleepers: Arc<Mutex<BTreeMap<u64, Timestamp>>>,
    next_sleeper: AtomicU64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(Manual {
            now: Mutex::new(start),
            moved: watch::channel(start).0,
            sleepers: Arc::default(),
            next_sleeper: AtomicU64::new(0),
        }))
    }

    /// Starting at a fixed, readable instant: 2026-01-01T00:00:00Z.
    pub fn at_new_year() -> ManualClock {
        ManualClock::new("2026-01-01T00:00:00Z".parse().expect("a valid timestamp"))
    }

    pub fn clock(&self) -> Clock {
        Clock(self.0.clone())
    }

    pub fn now(&self) -> Timestamp {
        self.0.now()
    }

    pub fn advance(&self, d: Duration) {
        let mut now = self.0.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = later(*now, d);
        self.0.moved.send_replace(*now);
    }

    /// Sets the time; it may go backwards (a wall clock set back), which wakes nobody.
    pub fn set(&self, t: Timestamp) {
        let mut now = self.0.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = t;
        self.0.moved.send_replace(t);
    }

    /// How many `sleep_until`s are waiting on this clock now. Tests wait until the code
    /// under test is asleep before they move time, so nothing races the move.
    pub fn sleepers(&self) -> usize {
        self.0.sleepers().len()
    }

    /// The earliest deadline a pending sleep waits for: where a test moves time to
    /// next when it walks the code under test through its wake-ups.
    pub fn earliest_sleeper(&self) -> Option<Timestamp> {
        self.0.sleepers().values().min().copied()
    }

    /// Waits (yielding to the runtime) until at least `n` sleepers wait, or `limit`
    /// of real time passed; true if they do.
    pub async fn until_sleepers(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.sleepers() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        true
    }
}

impl Source for Manual {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sleep_until(&self, t: Timestamp) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut moved = self.moved.subscribe();
        // Counted from now until the future resolves or is dropped.
        let guard = Sleeper::new(self, t);
        Box::pin(async move {
            let _guard = guard;
            loop {
                if *moved.borrow_and_update() >= t {
                    return;
                }
                if moved.changed().await.is_err() {
                    // The clock is gone: nobody will move time again.
                    std::future::pending::<()>().await;
                }
            }
        })
    }

    fn name(&self) -> &'static str {
        "manual"
    }
}

impl Manual {
    fn sleepers(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Timestamp>> {
        self.sleepers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One pending sleep on a manual clock, listed with its deadline for as long as it
/// lives.
struct Sleeper {
    sleepers: Arc<Mutex<BTreeMap<u64, Timestamp>>>,
    id: u64,
}

impl Sleeper {
    fn new(manual: &Manual, deadline: Timestamp) -> Sleeper {
        let id = manual.next_sleeper.fetch_add(1, Ordering::SeqCst);
        manual.sleepers().insert(id, deadline);
        Sleeper {
            sleepers: manual.sleepers.clone(),
            id,
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleep_wakes_when_time_passes_its_deadline_and_not_before() {
        let manual = ManualClock::at_new_year();
        let clock = manual.clock();
        let wake = clock.after(Duration::from_secs(60));
        let sleeping = tokio::spawn(clock.sleep_until(wake));
        assert!(manual.until_sleepers(1, Duration::from_secs(5)).await);
        manual.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeping.is_finished());
        manual.advance(Duration::from_secs(1));
        sleeping.await.unwrap();
        assert_eq!(manual.sleepers(), 0);
        assert_eq!(clock.now(), wake);
    }

    #[tokio::test]
    async fn a_deadline_in_the_past_resolves_at_once() {
        let manual = ManualClock::at_new_year();
        let clock = manual.clock();
        manual.advance(Duration::from_secs(10));
        clock
            .sleep_until("2026-01-01T00:00:05Z".parse().unwrap())
            .await;
    }
}
