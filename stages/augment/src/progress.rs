//! The progress bar of an augment run: rows per second, requests per minute, tokens per second,
//! time left and cost so far.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shortest time between two updates of the bar's message.
const REFRESH: Duration = Duration::from_millis(200);

/// Counts of finished requests, drawn on standard error when it is a terminal.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    refreshed: Instant,
    requests: u64,
    tokens: u64,
    cost_usd: Option<f64>,
}

impl Progress {
    /// Creates a bar over `planned` requests; it stays hidden unless `enabled`.
    pub fn new(enabled: bool, planned: Option<u64>) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(planned, target);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {human_pos}/{human_len} rows+failures  {per_sec}  ETA {eta}  {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix("augment");
        let now = Instant::now();
        Self {
            bar,
            started: now,
            refreshed: now,
            requests: 0,
            tokens: 0,
            cost_usd: None,
        }
    }

    /// Adds requests to the total, for work that is only known during the run.
    pub fn plan(&self, requests: u64) {
        self.bar.inc_length(requests);
    }

    /// Removes requests from the total that will not be sent (stored by an earlier run, or
    /// beyond the token budget).
    pub fn skip(&self, requests: u64) {
        let length = self.bar.length().unwrap_or(0);
        self.bar.set_length(length.saturating_sub(requests));
    }

    /// Counts one finished request (a row or a failure), its tokens and its cost.
    pub fn finish_request(&mut self, tokens: u64, cost_usd: Option<f64>) {
        self.requests += 1;
        self.tokens += tokens;
        if let Some(cost) = cost_usd {
            *self.cost_usd.get_or_insert(0.0) += cost;
        }
        self.bar.inc(1);

        let now = Instant::now();
        if now.duration_since(self.refreshed) >= REFRESH {
            self.refreshed = now;
            self.bar.set_message(self.message(now));
        }
    }

    /// Removes the bar.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }

    fn message(&self, now: Instant) -> String {
        let seconds = now.duration_since(self.started).as_secs_f64().max(1e-3);
        let cost = self
            .cost_usd
            .map_or_else(|| "cost unknown".to_string(), |c| format!("${c:.4}"));
        format!(
            "{:.0} req/min  {:.0} tok/s  {cost}",
            self.requests as f64 * 60.0 / seconds,
            self.tokens as f64 / seconds
        )
    }
}
