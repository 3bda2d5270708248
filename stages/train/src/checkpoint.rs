//! Checkpoints: weights and optimizer moments as safetensors, plus a small JSON state file.
//!
//! A checkpoint is a folder `checkpoints/step-NNNNNNN/` with `model.safetensors`,
//! `optimizer.safetensors` and `state.json`. `state.json` is written last, through a temporary
//! file and a rename, so a folder without it is an interrupted save and is ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Progress stored with a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Steps completed.
    pub step: u64,
    pub total_steps: u64,
    pub epoch: f64,
    /// Tokens trained on so far.
    pub tokens: u64,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    pub state: CheckpointState,
    pub model: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

/// Writes a checkpoint under `dir` and returns its folder.
pub fn save(
    dir: &Path,
    state: &CheckpointState,
    model: &HashMap<String, Tensor>,
    optimizer: &HashMap<String, Tensor>,
) -> Result<PathBuf> {
    let folder = dir.join(format!("step-{:07}", state.step));
    std::fs::create_dir_all(&folder).map_err(TrainError::io("create", &folder))?;
    let error = |path: &Path| {
        let path = path.to_path_buf();
        move |e: candle_core::Error| TrainError::Checkpoint {
            path,
            message: format!("cannot write: {e}"),
        }
    };
    let model_path = folder.join("model.safetensors");
    candle_core::safetensors::save(model, &model_path).map_err(error(&model_path))?;
    let optimizer_path = folder.join("optimizer.safetensors");
    candle_core::safetensors::save(optimizer, &optimizer_path).map_err(error(&optimizer_path))?;

    let state_path = folder.join("state.json");
    let temporary = folder.join("state.json.tmp");
    let json = serde_json::to_string_pretty(state).expect("the state serializes");
    std::fs::write(&temporary, json).map_err(TrainError::io("write", &temporary))?;
    std::fs::rename(&temporary, &state_path).map_err(TrainError::io("rename", &temporary))?;
    tracing::debug!(step = state.step, folder = %folder.display(), "saved checkpoint");
    Ok(folder)
}

/// Returns the folder of the complete checkpoint with the most steps under `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).map_err(TrainError::io("read folder", dir))? {
        let path = entry.map_err(TrainError::io("read folder", dir))?.path();
        let Some(step) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if path.join("state.json").is_file() && best.as_ref().is_none_or(|(s, _)| step > *s) {
            best = Some((step, path));
        }
    }
    Ok(best.map(|(_, path)| path))
}

/// Loads a checkpoint folder written by `save`.
pub fn load(folder: &Path, device: &Device) -> Result<Checkpoint> {
    let state_path = folder.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(TrainError::io("read", &state_path))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
            path: state_path.clone(),
            message: format!("invalid state file: {e}"),
        })?;
    let read = |name: &str| -> Result<HashMap<String, Tensor>> {
        let path = folder.join(name);
        candle_core::safetensors::load(&path, device).map_err(|e| TrainError::Checkpoint {
            path,
            message: format!("cannot read: {e}"),
        })
    };
    Ok(Checkpoint {
        state,
        model: read("model.safetensors")?,
        optimizer: read("optimizer.safetensors")?,
    })
}
