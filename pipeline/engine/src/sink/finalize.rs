//! Moves finished shards from the staging folder to their Hugging Face names.
//!
//! The final name `data/{split}-{i:05}-of-{n:05}.parquet` needs the number of shards, which is
//! only known at the end. The list of renames is written to `finalize.json` before the first
//! rename, so a crash part-way is completed by the next run instead of leaving a mixed layout.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{FinishedShard, SinkError};
use crate::fsutil;

/// One shard's move from staging to `data/`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlannedMove {
    pub from: PathBuf,
    pub to: PathBuf,
    pub shard: FinishedShard,
}

/// Returns the Hugging Face file name of shard `index` out of `count`.
pub fn final_name(split: &str, index: u32, count: u32) -> String {
    format!("{split}-{index:05}-of-{count:05}.parquet")
}

/// Plans the moves of `shards` into `data_dir`, numbering each split's shards from 0.
pub fn plan(shards: &[FinishedShard], data_dir: &Path) -> Vec<PlannedMove> {
    let mut by_split: BTreeMap<&str, Vec<&FinishedShard>> = BTreeMap::new();
    for shard in shards {
        by_split.entry(&shard.split).or_default().push(shard);
    }

    let mut moves = Vec::new();
    for (split, mut split_shards) in by_split {
        split_shards.sort_by_key(|s| s.index);
        let count = split_shards.len() as u32;
        for (position, shard) in split_shards.into_iter().enumerate() {
            let to = data_dir.join(final_name(split, position as u32, count));
            let mut moved = shard.clone();
            moved.index = position as u32;
            moved.path = to.clone();
            moves.push(PlannedMove {
                from: shard.path.clone(),
                to,
                shard: moved,
            });
        }
    }
    moves
}

/// Performs the moves that are not done yet and returns the shards at their final paths.
///
/// The caller writes the plan to disk first, so a crash part-way is completed by calling this
/// again with the same moves.
pub fn complete_moves(moves: &[PlannedMove]) -> Result<Vec<FinishedShard>, SinkError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SinkError::Io { path, source }
    };

    for planned in moves {
        if planned.from.exists() {
            if let Some(parent) = planned.to.parent() {
                fs::create_dir_all(parent).map_err(io_error(parent))?;
            }
            fs::rename(&planned.from, &planned.to).map_err(io_error(&planned.to))?;
        } else if !planned.to.exists() {
            return Err(SinkError::Io {
                path: planned.from.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "shard is neither in staging nor at its final name; pass --restart to rebuild the output",
                ),
            });
        }
    }
    if let Some(first) = moves.first() {
        fsutil::sync_parent(&first.to).map_err(io_error(&first.to))?;
    }
    Ok(moves.iter().map(|m| m.shard.clone()).collect())
}

/// Moves the shards of a finished run from `data_dir` back to `shards_dir` under their staging
/// names, so that the run can be continued and finalized again. Returns how many were moved.
///
/// Each move is a rename, so a crash part-way leaves every shard under one of its two names,
/// and calling this again completes the moves.
pub fn restage(data_dir: &Path, shards_dir: &Path) -> Result<usize, SinkError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SinkError::Io { path, source }
    };
    if !data_dir.is_dir() {
        return Ok(0);
    }
    fs::create_dir_all(shards_dir).map_err(io_error(shards_dir))?;

    let mut moved = 0;
    for entry in fs::read_dir(data_dir).map_err(io_error(data_dir))? {
        let path = entry.map_err(io_error(data_dir))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some((split, index)) = parse_final_name(&name) else {
            continue;
        };
        let to = shards_dir.join(super::writer::staged_name(split, index));
        fs::rename(&path, &to).map_err(io_error(&to))?;
        moved += 1;
    }
    if moved > 0 {
        fsutil::sync_parent(&shards_dir.join("x")).map_err(io_error(shards_dir))?;
    }
    Ok(moved)
}

/// Reads `{split}-{index:05}-of-{count:05}.parquet` into its split and index.
fn parse_final_name(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix(".parquet")?;
    let (front, count) = stem.rsplit_once("-of-")?;
    count.parse::<u32>().ok()?;
    let (split, index) = front.rsplit_once('-')?;
    Some((split, index.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_names_parse_back() {
        assert_eq!(
            parse_final_name(&final_name("train", 3, 12)),
            Some(("train", 3))
        );
        assert_eq!(
            parse_final_name("my-split-00001-of-00002.parquet"),
            Some(("my-split", 1))
        );
        assert_eq!(parse_final_name("train-00001.parquet"), None);
        assert_eq!(parse_final_name("notes.txt"), None);
    }

    #[test]
    fn restage_moves_shards_back_to_staging() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let staging = dir.path().join("shards");
        fs::create_dir_all(&data).unwrap();
        for name in [
            "train-00000-of-00002.parquet",
            "train-00001-of-00002.parquet",
            "README.txt",
        ] {
            fs::write(data.join(name), name).unwrap();
        }

        assert_eq!(restage(&data, &staging).unwrap(), 2);
        let second = staging.join(super::super::writer::staged_name("train", 1));
        assert_eq!(
            fs::read_to_string(second).unwrap(),
            "train-00001-of-00002.parquet"
        );
        assert!(data.join("README.txt").exists());
        assert_eq!(restage(&data, &staging).unwrap(), 0);
        assert_eq!(restage(&dir.path().join("missing"), &staging).unwrap(), 0);
    }
}
