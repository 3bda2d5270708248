//! The failures file `failures.jsonl`: one JSON line per request that failed for good, so that
//! a failure is never stored as data and is not paid for again unless the user requests it
//! (`--retry-failed`).

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use kenning_pipeline::fsutil;
use kenning_pipeline::stage::StageError;
use serde_json::Value;

/// The failures file of one output folder.
pub struct FailureLog {
    stage: &'static str,
    path: PathBuf,
    file: File,
    /// Keys that failed in earlier runs.
    previous: HashSet<String>,
    /// Keys of earlier failures that this run sent again.
    resent: HashSet<String>,
}

impl FailureLog {
    /// Opens `path` for appending and reads the keys of earlier failures.
    pub fn open(stage: &'static str, path: &Path) -> Result<Self, StageError> {
        let previous = read_lines(path)
            .into_iter()
            .filter_map(|(key, _)| key)
            .collect();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| failed(stage, format!("cannot open {}: {e}", path.display())))?;
        Ok(Self {
            stage,
            path: path.to_path_buf(),
            file,
            previous,
            resent: HashSet::new(),
        })
    }

    /// Returns whether an earlier run recorded `key` as failed.
    pub fn failed_before(&self, key: &str) -> bool {
        self.previous.contains(key)
    }

    /// Notes that this run sends an earlier failure again, so that [`Self::compact`] drops its
    /// old line.
    pub fn resend(&mut self, key: &str) {
        if self.previous.contains(key) {
            self.resent.insert(key.to_string());
        }
    }

    /// Appends one failure; `line` carries its `key`.
    pub fn append(&mut self, line: &Value) -> Result<(), StageError> {
        writeln!(self.file, "{line}").map_err(|e| {
            failed(
                self.stage,
                format!("cannot write {}: {e}", self.path.display()),
            )
        })
    }

    /// Rewrites the file with one line per key that is still failed: earlier failures that were
    /// sent again keep only the line of their new failure, and those that succeeded are dropped.
    /// A run that sent no earlier failure again leaves the file as it is.
    pub fn compact(self, failed_now: &HashSet<String>) -> Result<(), StageError> {
        if self.resent.is_empty() {
            return Ok(());
        }
        drop(self.file);

        let mut last: HashMap<String, usize> = HashMap::new();
        let lines = read_lines(&self.path);
        for (index, (key, _)) in lines.iter().enumerate() {
            if let Some(key) = key {
                last.insert(key.clone(), index);
            }
        }
        let mut kept = String::new();
        for (index, (key, line)) in lines.iter().enumerate() {
            let keep = match key {
                Some(key) => {
                    last[key] == index && (!self.resent.contains(key) || failed_now.contains(key))
                }
                None => true,
            };
            if keep {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        fsutil::write_atomic(&self.path, kept.as_bytes()).map_err(|e| {
            failed(
                self.stage,
                format!("cannot rewrite {}: {e}", self.path.display()),
            )
        })
    }
}

/// Reads the lines of a failures file with their `key`; a missing file has none.
fn read_lines(path: &Path) -> Vec<(Option<String>, String)> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let key = serde_json::from_str::<Value>(&line)
                .ok()
                .and_then(|v| v["key"].as_str().map(str::to_string));
            (key, line)
        })
        .collect()
}

fn failed(stage: &str, message: String) -> StageError {
    StageError::Failed {
        stage: stage.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_keeps_only_current_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failures.jsonl");
        let mut log = FailureLog::open("augment", &path).unwrap();
        for key in ["a", "b", "c"] {
            log.append(&json!({"key": key, "reason": "http_500"}))
                .unwrap();
        }
        drop(log);

        // A retry run sends a and b again: a succeeds, b fails again; c is not sent.
        let mut log = FailureLog::open("augment", &path).unwrap();
        assert!(log.failed_before("a"));
        log.resend("a");
        log.resend("b");
        log.append(&json!({"key": "b", "reason": "http_400"}))
            .unwrap();
        log.compact(&HashSet::from(["b".to_string()])).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["key"], "c");
        assert_eq!(lines[1]["key"], "b");
        assert_eq!(lines[1]["reason"], "http_400");
    }
}
