//! Attribute pools (cities, universities, majors, employers with their headquarters city):
//! built into the binary from `datasets/bios/pools/`, and replaceable by user files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::BiosError;

const CITIES: &str = include_str!("../../../datasets/bios/pools/cities.txt");
const UNIVERSITIES: &str = include_str!("../../../datasets/bios/pools/universities.txt");
const MAJORS: &str = include_str!("../../../datasets/bios/pools/majors.txt");
const EMPLOYERS: &str = include_str!("../../../datasets/bios/pools/employers.tsv");

/// An employer and the city of its headquarters.
#[derive(Clone, Debug, PartialEq)]
pub struct Employer {
    pub name: String,
    pub city: String,
}

/// Source and checksum of a pool, for the manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolSource {
    /// `builtin:datasets/bios/pools/cities.txt` or the user's path.
    pub source: String,
    pub sha256: String,
    pub values: usize,
}

/// Every attribute pool.
#[derive(Clone, Debug)]
pub struct AttributePools {
    pub cities: Vec<String>,
    pub universities: Vec<String>,
    pub majors: Vec<String>,
    pub employers: Vec<Employer>,
    pub sources: HashMap<String, PoolSource>,
}

/// Paths of user pool files; `None` keeps the built-in pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFiles {
    pub cities: Option<PathBuf>,
    pub universities: Option<PathBuf>,
    pub majors: Option<PathBuf>,
    /// TSV: `employer<TAB>headquarters city`.
    pub employers: Option<PathBuf>,
    /// TSV: `origin<TAB>first|last<TAB>name`.
    pub names: Option<PathBuf>,
}

fn read_source(
    name: &str,
    builtin: &'static str,
    path: Option<&Path>,
) -> Result<(String, String), BiosError> {
    match path {
        None => Ok((
            format!("builtin:datasets/bios/pools/{name}"),
            builtin.to_string(),
        )),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| BiosError::PoolRead {
                path: path.to_path_buf(),
                source,
            })?;
            Ok((path.display().to_string(), text))
        }
    }
}

/// Returns the entries of a pool file with their line numbers: one per line, `#` comments
/// and blank lines skipped, duplicates rejected.
fn parse_lines<'t>(source: &str, text: &'t str) -> Result<Vec<(usize, &'t str)>, BiosError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let entry = line.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        if let Some(first) = seen.insert(entry, number + 1) {
            return Err(BiosError::PoolLine {
                path: PathBuf::from(source),
                line: number + 1,
                message: format!("`{entry}` repeats line {first}; every value must be unique"),
            });
        }
        entries.push((number + 1, entry));
    }
    Ok(entries)
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl AttributePools {
    /// Loads every pool, from `files` where given and built-in otherwise.
    pub fn load(files: &PoolFiles) -> Result<Self, BiosError> {
        let mut sources = HashMap::new();
        let mut list = |name: &str, builtin: &'static str, path: Option<&Path>| {
            let (source, text) = read_source(name, builtin, path)?;
            let values: Vec<String> = parse_lines(&source, &text)?
                .into_iter()
                .map(|(_, v)| v.to_string())
                .collect();
            sources.insert(
                name.trim_end_matches(".txt").to_string(),
                PoolSource {
                    source,
                    sha256: sha256(&text),
                    values: values.len(),
                },
            );
            Ok::<_, BiosError>(values)
        };
        let cities = list("cities.txt", CITIES, files.cities.as_deref())?;
        let universities = list(
            "universities.txt",
            UNIVERSITIES,
            files.universities.as_deref(),
        )?;
        let majors = list("majors.txt", MAJORS, files.majors.as_deref())?;

        let (source, text) = read_source("employers.tsv", EMPLOYERS, files.employers.as_deref())?;
        let mut employers = Vec::new();
        for (line, entry) in parse_lines(&source, &text)? {
            let Some((name, city)) = entry.split_once('\t') else {
                return Err(BiosError::PoolLine {
                    path: PathBuf::from(&source),
                    line,
                    message: "expected `employer<TAB>headquarters city`".into(),
                });
            };
            employers.push(Employer {
                name: name.trim().to_string(),
                city: city.trim().to_string(),
            });
        }
        sources.insert(
            "employers".to_string(),
            PoolSource {
                source,
                sha256: sha256(&text),
                values: employers.len(),
            },
        );

        Ok(Self {
            cities,
            universities,
            majors,
            employers,
            sources,
        })
    }

    /// Checks that every pool has at least `minimum` values.
    pub fn check_sizes(&self, minimum: usize, reason: &str) -> Result<(), BiosError> {
        let sizes = [
            ("cities", self.cities.len()),
            ("universities", self.universities.len()),
            ("majors", self.majors.len()),
            ("employers", self.employers.len()),
        ];
        for (pool, found) in sizes {
            if found < minimum {
                return Err(BiosError::PoolTooSmall {
                    pool: pool.to_string(),
                    source_name: self.sources[pool].source.clone(),
                    found,
                    needed: minimum,
                    reason: reason.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pools_meet_their_sizes() {
        let pools = AttributePools::load(&PoolFiles::default()).unwrap();
        assert!(pools.cities.len() >= 200, "{}", pools.cities.len());
        assert!(
            pools.universities.len() >= 300,
            "{}",
            pools.universities.len()
        );
        assert!(pools.majors.len() >= 100, "{}", pools.majors.len());
        assert!(pools.employers.len() >= 250, "{}", pools.employers.len());
        for employer in &pools.employers {
            assert!(
                pools.cities.contains(&employer.city),
                "{} is not a pool city",
                employer.city
            );
        }
    }

    #[test]
    fn duplicate_pool_value_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cities.txt");
        std::fs::write(&path, "# cities\nLisbon\nOsaka\nLisbon\n").unwrap();
        let files = PoolFiles {
            cities: Some(path),
            ..PoolFiles::default()
        };
        let error = AttributePools::load(&files).unwrap_err().to_string();
        assert!(error.contains("cities.txt:4"), "{error}");
        assert!(error.contains("repeats line 2"), "{error}");
    }

    #[test]
    fn unreadable_pool_names_the_path() {
        let files = PoolFiles {
            majors: Some(PathBuf::from("/nonexistent/majors.txt")),
            ..PoolFiles::default()
        };
        let error = AttributePools::load(&files).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/majors.txt"), "{error}");
    }
}
