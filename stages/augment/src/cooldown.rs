//! The pause that a 429 puts on every request to one provider.
//!
//! After a 429 no request is sent before the cooldown ends. Then a single request (the probe)
//! goes first. If the server accepts it, the cooldown is over and every waiting request goes,
//! and if it gets another 429, the cooldown starts again. So a long stream of 429s costs about one
//! request per cooldown instead of one per waiting request, and requests do not use up their
//! attempts on it (see [`Cooldown::patient`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Default time a stream of 429s may last before rate-limited attempts count against
/// `max_attempts` again.
pub const DEFAULT_RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(600);
/// Maximum sleep between two checks of a waiting request, so that a probe that was cancelled
/// without a response cannot hold the others for long.
const RECHECK: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct State {
    /// End of the current pause; `None` when the server accepts requests.
    until: Option<Instant>,
    /// Start of the current stream of 429s.
    stream_started: Option<Instant>,
    /// When the probe of the current cooldown was sent, if one is out.
    probe_sent: Option<Instant>,
}

/// A pause shared by every request to one provider.
#[derive(Debug, Default)]
pub struct Cooldown {
    state: Mutex<State>,
    accepted: Notify,
}

impl Cooldown {
    /// Extends the pause to at least `now + wait`, after a 429.
    pub fn extend(&self, now: Instant, wait: Duration) {
        let mut state = self.lock();
        let end = now + wait;
        if state.until.is_none_or(|current| current < end) {
            state.until = Some(end);
        }
        state.stream_started.get_or_insert(now);
    }

    /// Records the response of a request: a 429 frees the probe slot for the next cooldown,
    /// any other response ends the cooldown and wakes every waiting request.
    pub fn observe(&self, rate_limited: bool) {
        let mut state = self.lock();
        state.probe_sent = None;
        if !rate_limited && state.until.is_some() {
            *state = State::default();
            drop(state);
            self.accepted.notify_waiters();
        }
    }

    /// Returns whether a rate-limited attempt may be retried without counting it: true while the
    /// current stream of 429s is shorter than `patience`.
    pub fn patient(&self, now: Instant, patience: Duration) -> bool {
        self.lock()
            .stream_started
            .is_none_or(|started| now.duration_since(started) < patience)
    }

    /// Returns how long a request must still wait at `now` before the cooldown ends.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.lock()
            .until
            .map_or(Duration::ZERO, |end| end.saturating_duration_since(now))
    }

    /// Waits until a request may be sent: at once without a cooldown; after it ends as the probe;
    /// or when the probe was accepted. A probe that got no response within `probe_timeout`
    /// (its request timed out or was cancelled) lets another request probe.
    pub async fn wait(&self, probe_timeout: Duration) {
        loop {
            let accepted = self.accepted.notified();
            let pause = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.until {
                    None => return,
                    Some(end) if end > now => end - now,
                    Some(_) => {
                        let probe_out = state
                            .probe_sent
                            .is_some_and(|sent| now.duration_since(sent) < probe_timeout);
                        if !probe_out {
                            state.probe_sent = Some(now);
                            return;
                        }
                        RECHECK
                    }
                }
            };
            let _ = tokio::time::timeout(pause.min(RECHECK), accepted).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("the cooldown lock is never poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_keeps_the_latest_end() {
        let cooldown = Cooldown::default();
        let now = Instant::now();
        assert_eq!(cooldown.remaining(now), Duration::ZERO);
        cooldown.extend(now, Duration::from_secs(5));
        cooldown.extend(now, Duration::from_secs(2));
        assert_eq!(cooldown.remaining(now), Duration::from_secs(5));
        assert_eq!(
            cooldown.remaining(now + Duration::from_secs(6)),
            Duration::ZERO
        );
    }

    #[test]
    fn patience_runs_from_the_first_429() {
        let cooldown = Cooldown::default();
        let now = Instant::now();
        let patience = Duration::from_secs(10);
        assert!(cooldown.patient(now, patience));
        cooldown.extend(now, Duration::from_secs(1));
        cooldown.extend(now + Duration::from_secs(5), Duration::from_secs(1));
        assert!(cooldown.patient(now + Duration::from_secs(9), patience));
        assert!(!cooldown.patient(now + Duration::from_secs(11), patience));
        cooldown.observe(false);
        assert!(cooldown.patient(now + Duration::from_secs(11), patience));
    }

    #[tokio::test]
    async fn one_probe_goes_after_the_pause() {
        let cooldown = std::sync::Arc::new(Cooldown::default());
        cooldown.extend(Instant::now(), Duration::from_millis(50));

        // The first waiter becomes the probe once the pause ends.
        cooldown.wait(Duration::from_secs(60)).await;
        let second = {
            let cooldown = cooldown.clone();
            tokio::spawn(async move { cooldown.wait(Duration::from_secs(60)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !second.is_finished(),
            "a second request went while the probe was out"
        );

        cooldown.observe(false);
        tokio::time::timeout(Duration::from_secs(1), second)
            .await
            .expect("the accepted probe releases the others")
            .unwrap();
    }
}
