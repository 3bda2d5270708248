//! The metrics CSV of a run, kept in memory too for the plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};

/// Header of `metrics.csv`.
pub const HEADER: &str = "step,epoch,tokens,lr,loss,grad_norm,val_loss,seconds";

/// One row of `metrics.csv`. `step` counts completed steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricsRow {
    pub step: u64,
    pub epoch: f64,
    pub tokens: u64,
    pub lr: f64,
    pub loss: f64,
    pub grad_norm: f64,
    pub val_loss: Option<f64>,
    /// Wall-clock seconds of training so far in this process.
    pub seconds: f64,
}

/// Metric rows of a run, rewritten to `metrics.csv` on every flush.
pub struct MetricsLog {
    path: PathBuf,
    rows: Vec<MetricsRow>,
}

impl MetricsLog {
    /// Opens `path`, keeping the rows of an earlier process up to `keep_until` steps (the step
    /// of the checkpoint a resumed run starts from); without it, starts empty.
    pub fn open(path: &Path, keep_until: Option<u64>) -> Result<Self> {
        let mut rows = Vec::new();
        if let (Some(limit), true) = (keep_until, path.is_file()) {
            let text = std::fs::read_to_string(path).map_err(TrainError::io("read", path))?;
            for line in text.lines().skip(1) {
                match parse_row(line) {
                    Some(row) if row.step <= limit => rows.push(row),
                    Some(_) => {}
                    None => {
                        tracing::warn!(path = %path.display(), line, "skipped a malformed metrics row")
                    }
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    pub fn rows(&self) -> &[MetricsRow] {
        &self.rows
    }

    pub fn push(&mut self, row: MetricsRow) {
        self.rows.push(row);
    }

    /// Writes every row to the CSV file.
    pub fn flush(&self) -> Result<()> {
        let mut text = String::from(HEADER);
        text.push('\n');
        for r in &self.rows {
            let val = r.val_loss.map(|v| format!("{v:.6}")).unwrap_or_default();
            writeln!(
                text,
                "{},{:.4},{},{:.6e},{:.6},{:.4},{},{:.2}",
                r.step, r.epoch, r.tokens, r.lr, r.loss, r.grad_norm, val, r.seconds
            )
            .expect("a String accepts writes");
        }
        std::fs::write(&self.path, text).map_err(TrainError::io("write", &self.path))
    }
}

fn parse_row(line: &str) -> Option<MetricsRow> {
    let fields: Vec<&str> = line.split(',').collect();
    if fields.len() != 8 {
        return None;
    }
    Some(MetricsRow {
        step: fields[0].parse().ok()?,
        epoch: fields[1].parse().ok()?,
        tokens: fields[2].parse().ok()?,
        lr: fields[3].parse().ok()?,
        loss: fields[4].parse().ok()?,
        grad_norm: fields[5].parse().ok()?,
        val_loss: if fields[6].is_empty() {
            None
        } else {
            Some(fields[6].parse().ok()?)
        },
        seconds: fields[7].parse().ok()?,
    })
}
