//! A probe's state across its results, decided without I/O: Nagios' soft and hard
//! states, and Nagios/Naemon flap detection. The prober feeds each result to
//! [`ProbeState::observe`] and publishes what it says changed; the state is saved with
//! the result ([`super::history`]) so a restarted daemon resumes its counts.
//!
//! - From hard OK, a non-OK result is soft; `retries` consecutive ones make it hard
//!   (1: at once). An OK while soft only resets the count.
//! - While hard non-OK, a change among WARNING, CRITICAL and UNKNOWN is a hard change
//!   at once; an OK is a hard recovery at once.
//! - Flapping: over the last 21 results, each of the 20 possible changes weighted
//!   linearly from 0.8 (oldest) to 1.2 (newest); the percent is the weighted changes
//!   over 20, times 100. It starts flapping above `flap_high` and stops below
//!   `flap_low` (Nagios' `high_flap_threshold`, `low_flap_threshold`).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Status;

/// How many results flap detection looks at (Nagios' MAX_STATE_HISTORY_ENTRIES).
pub const HISTORY: usize = 21;

/// A probe's state between results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeState {
    /// The state alerted on.
    pub hard: Status,
    pub hard_since: Timestamp,
    /// The last result's status (soft while it differs from `hard`).
    pub current: Status,
    /// Consecutive non-OK results (the soft attempt; 0 while OK).
    pub attempt: u32,
    /// The last [`HISTORY`] results' statuses, oldest first.
    pub history: Vec<Status>,
    pub flapping: bool,
}

/// What one result changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// (from, to) when the hard state changed.
    pub hard_changed: Option<(Status, Status)>,
    /// The new flapping when it started or stopped.
    pub flapping_changed: Option<bool>,
    /// The weighted percent of state changes over the history.
    pub percent: f64,
}

impl ProbeState {
    /// A probe not seen before: hard OK since `at`.
    pub fn new(at: Timestamp) -> ProbeState {
        ProbeState {
            hard: Status::Ok,
            hard_since: at,
            current: Status::Ok,
            attempt: 0,
            history: Vec::new(),
            flapping: false,
        }
    }

    /// Non-OK, but not yet (or no longer) hard: the prober checks again at the
    /// probe's `retry_interval`.
    pub fn is_soft(&self) -> bool {
        self.current != Status::Ok && self.hard == Status::Ok
    }

    /// Takes in a result of `status` at `at`. `retries`: non-OK results before a hard
    /// state; `flap`: (low, high) percents.
    pub fn observe(
        &mut self,
        status: Status,
        at: Timestamp,
        retries: u32,
        flap: (f64, f64),
    ) -> Observed {
        self.history.push(status);
        if self.history.len() > HISTORY {
            let extra = self.history.len() - HISTORY;
            self.history.drain(..extra);
        }
        let mut hard_changed = None;
        let mut change_to = |state: &mut ProbeState, to: Status| {
            hard_changed = Some((state.hard, to));
            state.hard = to;
            state.hard_since = at;
        };
        if status == Status::Ok {
            self.attempt = 0;
            if self.hard != Status::Ok {
                change_to(self, Status::Ok);
            }
        } else {
            self.attempt = self.attempt.saturating_add(1);
            if self.hard == Status::Ok {
                if self.attempt >= retries.max(1) {
                    change_to(self, status);
                }
            } else if self.hard != status {
                change_to(self, status);
            }
        }
        self.current = status;
        let percent = flap_percent(&self.history);
        let (low, high) = flap;
        let mut flapping_changed = None;
        if !self.flapping && percent > high {
            self.flapping = true;
            flapping_changed = Some(true);
        } else if self.flapping && percent < low {
            self.flapping = false;
            flapping_changed = Some(false);
        }
        Observed {
            hard_changed,
            flapping_changed,
            percent,
        }
    }
}

/// Nagios' curved percent of state changes over `history` (oldest first; a shorter
/// history is read as if its oldest result had filled the slots before it, as Nagios
/// starts its array filled with the first state).
pub fn flap_percent(history: &[Status]) -> f64 {
    let Some(first) = history.first() else {
        return 0.0;
    };
    let pad = HISTORY.saturating_sub(history.len());
    let window: Vec<Status> = std::iter::repeat_n(*first, pad)
        .chain(history.iter().copied())
        .collect();
    let window = &window[window.len() - HISTORY..];
    let (low, high) = (0.8, 1.2);
    let mut weighted = 0.0;
    for x in 1..HISTORY {
        if window[x] != window[x - 1] {
            weighted += (x - 1) as f64 * (high - low) / (HISTORY - 2) as f64 + low;
        }
    }
    weighted * 100.0 / (HISTORY - 1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::{Critical as C, Ok as O, Unknown as U, Warning as W};

    const FLAP: (f64, f64) = (25.0, 50.0);

    fn t(minute: i64) -> Timestamp {
        Timestamp::from_second(1_767_225_600 + minute * 60).unwrap()
    }

    /// Feeds `statuses` one a minute; returns each hard change with the index of the
    /// result that made it.
    fn feed(
        state: &mut ProbeState,
        statuses: &[Status],
        retries: u32,
    ) -> Vec<(usize, Status, Status)> {
        let mut changes = Vec::new();
        for (i, s) in statuses.iter().enumerate() {
            let seen = state.observe(*s, t(i as i64 + 1), retries, (0.0, 100.0));
            if let Some((from, to)) = seen.hard_changed {
                changes.push((i, from, to));
            }
        }
        changes
    }

    #[test]
    fn three_non_ok_results_make_a_hard_state_the_first_two_are_soft() {
        let mut state = ProbeState::new(t(0));
        let changes = feed(&mut state, &[C, C], 3);
        assert!(changes.is_empty());
        assert!(state.is_soft());
        assert_eq!((state.hard, state.current, state.attempt), (O, C, 2));
        let changes = feed(&mut state, &[C], 3);
        assert_eq!(changes, vec![(0, O, C)]);
        assert!(!state.is_soft());
        assert_eq!(state.hard, C);
    }

    #[test]
    fn an_ok_while_soft_resets_the_count_without_a_change() {
        let mut state = ProbeState::new(t(0));
        assert!(feed(&mut state, &[W, W, O, W, W], 3).is_empty());
        assert_eq!(state.attempt, 2);
        assert_eq!(state.hard, O);
        // Soft WARNING then CRITICAL still counts as one run of non-OK results, and
        // the hard state is the status of the result that made it hard.
        assert_eq!(feed(&mut state, &[C], 3), vec![(0, O, C)]);
    }

    #[test]
    fn retries_one_is_hard_at_once() {
        let mut state = ProbeState::new(t(0));
        assert_eq!(feed(&mut state, &[U], 1), vec![(0, O, U)]);
    }

    #[test]
    fn an_ok_after_a_hard_state_is_a_recovery_at_once() {
        let mut state = ProbeState::new(t(0));
        let changes = feed(&mut state, &[C, C, C, O], 3);
        assert_eq!(changes, vec![(2, O, C), (3, C, O)]);
        assert_eq!(state.hard_since, t(4));
        assert_eq!(state.attempt, 0);
    }

    #[test]
    fn warning_to_critical_while_hard_is_a_change_at_once() {
        let mut state = ProbeState::new(t(0));
        let changes = feed(&mut state, &[W, W, W, C, C, W], 3);
        assert_eq!(changes, vec![(2, O, W), (3, W, C), (5, C, W)]);
    }

    #[test]
    fn the_percent_of_a_known_sequence_by_hand() {
        // 21 results, changes only between the last four: positions 18, 19, 20
        // (x = 18, 19, 20). Weights: (x-1)*0.4/19 + 0.8 = 1.1579, 1.1789, 1.2;
        // sum 3.5368; percent = 3.5368 / 20 * 100 = 17.684.
        let mut history = vec![O; 17];
        history.extend([O, C, O, C]);
        assert_eq!(history.len(), 21);
        let p = flap_percent(&history);
        let by_hand = ((17.0 * 0.4 / 19.0 + 0.8) + (18.0 * 0.4 / 19.0 + 0.8) + 1.2) * 5.0;
        assert!((p - by_hand).abs() < 1e-9, "{p} vs {by_hand}");
        assert!((p - 17.684).abs() < 0.001, "{p}");
        // Every result a change: every weight, 20 changes averaging 1.0: 100 %.
        let alternating: Vec<Status> = (0..21).map(|i| if i % 2 == 0 { O } else { C }).collect();
        assert!((flap_percent(&alternating) - 100.0).abs() < 1e-9);
        // One change, the oldest: 0.8 / 20 = 4 %.
        let mut oldest = vec![C];
        oldest.extend(vec![O; 20]);
        assert!((flap_percent(&oldest) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn alternating_results_start_flapping_and_steady_ones_stop_it() {
        let mut state = ProbeState::new(t(0));
        let mut started = None;
        for i in 0..21 {
            let s = if i % 2 == 0 { C } else { O };
            let seen = state.observe(s, t(i), 3, FLAP);
            if seen.flapping_changed == Some(true) {
                started = Some((i, seen.percent));
                break;
            }
        }
        let (at, percent) = started.expect("alternating results flap");
        assert!(percent > 50.0, "{percent}");
        // The first changes are weighted as the newest: a handful suffices.
        assert!(at < 12, "started flapping at result {at}");
        assert!(state.flapping);
        let mut stopped = None;
        for i in 0..21 {
            let seen = state.observe(O, t(100 + i), 3, FLAP);
            if seen.flapping_changed == Some(false) {
                stopped = Some(seen.percent);
                break;
            }
            assert!(state.flapping);
        }
        let percent = stopped.expect("steady results stop the flapping");
        assert!(percent < 25.0, "{percent}");
        assert!(!state.flapping);
    }

    #[test]
    fn between_the_thresholds_the_flapping_is_kept_either_way() {
        // 17.7 % (the sequence above): not above 50 to start, not below 10 to stop.
        let mut history = vec![O; 17];
        history.extend([O, C, O, C]);
        let mut state = ProbeState {
            history: history[..20].to_vec(),
            ..ProbeState::new(t(0))
        };
        let seen = state.observe(C, t(1), 3, (10.0, 50.0));
        assert_eq!(seen.flapping_changed, None);
        assert!(!state.flapping);
        state.flapping = true;
        state.history = history[..20].to_vec();
        let seen = state.observe(C, t(2), 3, (10.0, 50.0));
        assert_eq!(seen.flapping_changed, None);
        assert!(state.flapping);
    }

    #[test]
    fn the_history_keeps_the_last_21() {
        let mut state = ProbeState::new(t(0));
        for i in 0..30 {
            state.observe(if i == 29 { C } else { O }, t(i), 3, FLAP);
        }
        assert_eq!(state.history.len(), HISTORY);
        assert_eq!(state.history.last(), Some(&C));
    }
}
