//! Progress bars on standard error; hidden when standard error is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Creates a bar over `total` documents that shows the rate and the time left.
pub fn documents_bar(total: u64, enabled: bool) -> ProgressBar {
    bar(total, enabled, "docs  {per_sec}  ETA {eta}  {msg}")
}

/// Creates a bar over `total` rows that shows the rate and the time left.
pub fn rows_bar(total: u64, enabled: bool) -> ProgressBar {
    bar(total, enabled, "rows  {per_sec}  ETA {eta}")
}

fn bar(total: u64, enabled: bool, tail: &str) -> ProgressBar {
    let target = if enabled {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let template = format!("{{prefix:>8}} [{{bar:30}}] {{human_pos}}/{{human_len}} {tail}");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}
