//! Progress bars on standard error; hidden when standard error is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Creates a bar over `total` documents that shows the rate and the time left.
pub fn documents_bar(total: u64, enabled: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {human_pos}/{human_len} docs  {per_sec}  ETA {eta}  {msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}

/// Creates a bar over `total` rows that shows the rate and the time left.
pub fn rows_bar(total: u64, enabled: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}
