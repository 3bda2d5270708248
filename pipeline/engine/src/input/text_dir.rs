//! A folder of `.txt` and `.md` files, read recursively in sorted order. Each file is one
//! document whose id is its path relative to the folder and whose title is the file stem.

use std::fs;
use std::path::{Path, PathBuf};

use super::jsonl::BOM;
use super::{Entry, EntryIter, InputError, Location, Origin, Problem, RawDocument};

pub fn read(root: &Path) -> Result<EntryIter, InputError> {
    let mut files = Vec::new();
    collect_text_files(root, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(InputError::NoTextFiles {
            path: root.to_path_buf(),
        });
    }

    let root = root.to_path_buf();
    Ok(Box::new(
        files.into_iter().map(move |path| read_file(&root, &path)),
    ))
}

fn collect_text_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let io_error = |source| InputError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.is_dir() {
            collect_text_files(&path, files)?;
            continue;
        }
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if matches!(extension.as_deref(), Some("txt" | "md")) {
            files.push(path);
        }
    }
    Ok(())
}

fn read_file(root: &Path, path: &Path) -> Result<Entry, InputError> {
    let origin = Origin::new(path, Location::File);
    let problem = |reason: &str| {
        Ok(Entry::Problem(Problem {
            origin: origin.clone(),
            reason: reason.to_string(),
            raw: None,
        }))
    };

    let bytes = fs::read(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.is_empty() {
        return problem("the file is empty (zero length). Remove it or add text");
    }
    if bytes.starts_with(BOM) {
        return problem(
            "the file starts with a UTF-8 byte order mark (BOM). Save it as UTF-8 without a BOM",
        );
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            return problem(&format!(
                "invalid UTF-8 at byte {} of the file. Re-encode the file as UTF-8",
                error.utf8_error().valid_up_to() + 1
            ));
        }
    };

    let relative = path.strip_prefix(root).unwrap_or(path);
    let id = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    let title = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    Ok(Entry::Doc(RawDocument {
        id: Some(id),
        title,
        text,
        origin,
        raw: None,
    }))
}
