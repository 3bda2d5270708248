//! Write-ahead journal: every record that goes into an open shard is first appended here, so a
//! crash before the shard is complete loses no record that was already produced.
//!
//! The journal of shard `i` is `wal/{split}-{i:05}.jsonl`, one JSON record per line. It is
//! deleted once shard `i` is renamed into place. A torn last line (the process died while
//! writing it) is ignored on recovery, which only costs producing that one record again.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::SinkError;
use crate::record::Record;

/// Bytes of journal lines kept in memory between flushes.
const JOURNAL_BUFFER: usize = 256 * 1024;

/// The journal file that one split is appending to.
pub struct Journal {
    dir: PathBuf,
    split: String,
    open: Option<(u32, PathBuf, BufWriter<File>)>,
}

impl Journal {
    pub fn new(dir: &Path, split: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            split: split.to_string(),
            open: None,
        }
    }

    /// Appends `record` to the journal of shard `index`, and hands it to the kernel before
    /// returning, so that a killed process keeps it.
    pub fn append(&mut self, index: u32, record: &Record) -> Result<(), SinkError> {
        self.buffer(index, record)?;
        self.flush()
    }

    /// Appends `record` to the journal of shard `index` in memory, and [`Journal::flush`] hands
    /// it to the kernel. Moving to another shard's journal flushes the previous one.
    pub fn buffer(&mut self, index: u32, record: &Record) -> Result<(), SinkError> {
        let (_, path, file) = self.writer_for(index)?;
        let io_error = |source| SinkError::Io {
            path: path.clone(),
            source,
        };
        serde_json::to_writer(&mut *file, record).map_err(|e| io_error(e.into()))?;
        file.write_all(b"\n").map_err(io_error)
    }

    /// Hands the buffered lines to the kernel, so that a killed process keeps them.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        if let Some((_, path, file)) = &mut self.open {
            file.flush().map_err(|source| SinkError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Deletes the journal of shard `index`, whose rows are now in a finished shard.
    pub fn retire(&mut self, index: u32) -> Result<(), SinkError> {
        if let Some((open_index, _, _)) = &self.open
            && *open_index == index
        {
            self.open = None;
        }
        let path = self.path(index);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SinkError::Io { path, source }),
        }
    }

    /// Fsyncs the open journal file.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        if let Some((_, path, file)) = &mut self.open {
            let result = file.flush().and_then(|()| file.get_ref().sync_all());
            result.map_err(|source| SinkError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    fn path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}-{index:05}.jsonl", self.split))
    }

    fn writer_for(
        &mut self,
        index: u32,
    ) -> Result<&mut (u32, PathBuf, BufWriter<File>), SinkError> {
        let reopen = !matches!(&self.open, Some((open_index, _, _)) if *open_index == index);
        if reopen {
            let path = self.path(index);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|source| SinkError::Io {
                    path: path.clone(),
                    source,
                })?;
            self.flush()?;
            self.open = Some((index, path, BufWriter::with_capacity(JOURNAL_BUFFER, file)));
        }
        Ok(self.open.as_mut().expect("journal is open"))
    }
}

/// Reads the records of one journal file, stopping at a torn or unreadable line.
///
/// Returns the records and the number of lines that were ignored.
pub fn read_journal(path: &Path) -> Result<(Vec<Record>, usize), SinkError> {
    let file = File::open(path).map_err(|source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut records = Vec::new();
    let mut lines = BufReader::new(file).split(b'\n').enumerate();
    while let Some((line_index, line)) = lines.next() {
        let line = line.map_err(|source| SinkError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) => records.push(record),
            Err(error) => {
                let ignored = 1 + lines.count();
                tracing::warn!(
                    journal = %path.display(),
                    line = line_index + 1,
                    ignored,
                    %error,
                    "journal ends in a torn line; its record will be produced again"
                );
                return Ok((records, ignored));
            }
        }
    }
    Ok((records, 0))
}
