//! Run state in `OUT/.kenning/`: the configuration fingerprint that decides whether a run may
//! continue an earlier one, and the clean-up that `--restart` does.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::fsutil;

/// Folder inside the output folder that contains the run state.
pub const STATE_DIR: &str = ".kenning";
const STATE_FILE: &str = "state.json";

/// Progress of the run in an output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Complete,
}

/// The contents of `.kenning/state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    pub fingerprint: String,
    pub config: Value,
    pub status: Status,
    /// When the first run into this folder started, RFC 3339 in UTC.
    pub started_at: String,
    /// How many times a run was started into this folder, resumes included.
    pub attempts: u32,
}

/// Failure to start a run in an output folder.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error(
        "{dir} was written with a different configuration ({changes}). Re-run with the original \
         settings to resume, or pass --restart to delete that output and start again"
    )]
    ConfigChanged { dir: PathBuf, changes: String },
    #[error(
        "{dir} is not empty and was not written by kenning. Choose an empty or new output folder"
    )]
    ForeignDir { dir: PathBuf },
    #[error("{path}: {message}. Pass --restart to delete the output and start again")]
    CorruptState { path: PathBuf, message: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The way a run starts in its output folder.
#[derive(Debug)]
pub enum Start {
    /// Nothing was there, or `--restart` cleared it.
    Fresh(RunState),
    /// An interrupted run with the same configuration is continued.
    Resume(RunState),
    /// A run with the same configuration already completed.
    Complete(RunState),
}

/// Returns the SHA-256 of the canonical JSON form of `config`.
pub fn fingerprint(config: &Value) -> String {
    // serde_json's maps are sorted by key, so equal configurations give equal text.
    let canonical = serde_json::to_vec(config).expect("a JSON value always serializes");
    hex::encode(Sha256::digest(canonical))
}

/// Returns the current time as RFC 3339 in UTC, to the second.
pub fn now_rfc3339() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;

    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);

    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Lists the settings that differ between two configurations, as `path: old → new`.
fn describe_changes(old: &Value, new: &Value) -> String {
    fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(
                        &child,
                        a.get(key).unwrap_or(&Value::Null),
                        b.get(key).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    walk(&format!("{path}[{i}]"), x, y, out);
                }
            }
            _ if old != new => out.push(format!("{path}: {old} → {new}")),
            _ => {}
        }
    }
    let mut changes = Vec::new();
    walk("", old, new, &mut changes);
    if changes.is_empty() {
        return "the configuration fingerprint differs".into();
    }
    changes.join(", ")
}

/// Paths of the state files in an output folder.
pub struct StatePaths {
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    pub state_file: PathBuf,
    pub finalize_plan: PathBuf,
}

impl StatePaths {
    pub fn new(dir: &Path) -> Self {
        let state_dir = dir.join(STATE_DIR);
        Self {
            dir: dir.to_path_buf(),
            state_file: state_dir.join(STATE_FILE),
            finalize_plan: state_dir.join("finalize.json"),
            state_dir,
        }
    }

    /// Decides how a run with `config` starts in this folder, clearing it first on `restart`.
    pub fn prepare(&self, config: &Value, restart: bool) -> Result<Start, ResumeError> {
        let fingerprint = fingerprint(config);
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ResumeError::Io { path, source }
        };

        if self.state_file.exists() {
            let bytes = fs::read(&self.state_file).map_err(io_error(&self.state_file))?;
            let mut state: RunState =
                serde_json::from_slice(&bytes).map_err(|e| ResumeError::CorruptState {
                    path: self.state_file.clone(),
                    message: format!("unreadable run state ({e})"),
                })?;

            if restart {
                self.clear()?;
            } else if state.fingerprint != fingerprint {
                return Err(ResumeError::ConfigChanged {
                    dir: self.dir.clone(),
                    changes: describe_changes(&state.config, config),
                });
            } else {
                state.attempts += 1;
                self.save(&state)?;
                return Ok(match state.status {
                    Status::Complete => Start::Complete(state),
                    Status::Running => Start::Resume(state),
                });
            }
        } else if self.dir.exists() {
            let mut entries = fs::read_dir(&self.dir).map_err(io_error(&self.dir))?;
            if entries.next().is_some() {
                return Err(ResumeError::ForeignDir {
                    dir: self.dir.clone(),
                });
            }
        }

        fs::create_dir_all(&self.state_dir).map_err(io_error(&self.state_dir))?;
        let state = RunState {
            fingerprint,
            config: config.clone(),
            status: Status::Running,
            started_at: now_rfc3339(),
            attempts: 1,
        };
        self.save(&state)?;
        Ok(Start::Fresh(state))
    }

    /// Writes the run state atomically.
    /// Marks a complete run as running again, so that it can be continued (augment's
    /// `--retry-failed`). The engine then moves the shards back to staging before it streams.
    pub fn reopen(&self, mut state: RunState) -> Result<RunState, ResumeError> {
        state.status = Status::Running;
        self.save(&state)?;
        tracing::info!(dir = %self.dir.display(), "reopened a complete run to continue it");
        Ok(state)
    }

    pub fn save(&self, state: &RunState) -> Result<(), ResumeError> {
        let json = serde_json::to_vec_pretty(state).expect("run state always serializes");
        fsutil::write_atomic(&self.state_file, &json).map_err(|source| ResumeError::Io {
            path: self.state_file.clone(),
            source,
        })
    }

    /// Deletes what kenning wrote in the folder: the state, `data/`, the manifest, the card,
    /// the rejects and failures files. Other files are left alone.
    fn clear(&self) -> Result<(), ResumeError> {
        let remove = |path: PathBuf| -> Result<(), ResumeError> {
            let result = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else if path.exists() {
                fs::remove_file(&path)
            } else {
                Ok(())
            };
            result.map_err(|source| ResumeError::Io { path, source })
        };
        remove(self.state_dir.clone())?;
        remove(self.dir.join("data"))?;
        for name in [
            "manifest.json",
            "README.md",
            "rejects.jsonl",
            "failures.jsonl",
        ] {
            remove(self.dir.join(name))?;
        }
        tracing::info!(dir = %self.dir.display(), "cleared the previous output (--restart)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_config_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let paths = StatePaths::new(&out);
        let old = json!({"chunk": {"max_tokens": 512, "overlap": 64}});
        let new = json!({"chunk": {"max_tokens": 256, "overlap": 64}});

        assert!(matches!(
            paths.prepare(&old, false).unwrap(),
            Start::Fresh(_)
        ));
        let error = paths.prepare(&new, false).unwrap_err().to_string();
        assert!(error.contains("chunk.max_tokens: 512 → 256"), "{error}");
        assert!(error.contains("--restart"), "{error}");

        assert!(matches!(
            paths.prepare(&new, true).unwrap(),
            Start::Fresh(_)
        ));
        assert!(matches!(
            paths.prepare(&new, false).unwrap(),
            Start::Resume(_)
        ));
    }

    #[test]
    fn foreign_folder_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let error = StatePaths::new(dir.path())
            .prepare(&json!({}), false)
            .unwrap_err();
        assert!(matches!(error, ResumeError::ForeignDir { .. }));
    }

    #[test]
    fn rfc3339_has_fixed_shape() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20"), "{now}");
        assert!(now.ends_with('Z'), "{now}");
    }
}
