//! Multinational name pools. Each origin has first names and surnames; a surname belongs to
//! exactly one origin, so a full name identifies its origin and names of different origins never
//! collide.
//!
//! The built-in pools are the Latin-script locales of the `fake` crate (version 5). Its Arabic,
//! Persian, Chinese and Japanese locales are left out because their names would mix scripts
//! with the English templates.

use std::collections::HashSet;
use std::path::Path;

use fake::locales::{CY_GB, DE_DE, Data, EN, FR_FR, IT_IT, NL_NL, PT_BR, PT_PT, TR_TR};

use crate::error::BiosError;

/// First names and surnames of one origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    /// Adjective naming the origin, such as `French`.
    pub name: String,
    pub first: Vec<String>,
    pub last: Vec<String>,
}

impl Origin {
    /// Number of distinct full names `first middle last` with `middle != first`.
    pub fn capacity(&self) -> u64 {
        let first = self.first.len() as u64;
        first * first.saturating_sub(1) * self.last.len() as u64
    }

    /// Decodes name number `index` (below [`Origin::capacity`]) into first, middle and last
    /// name indices; distinct indices give distinct triples.
    pub fn decode(&self, index: u64) -> (usize, usize, usize) {
        let last_count = self.last.len() as u64;
        let first_count = self.first.len() as u64;
        let last = index % last_count;
        let rest = index / last_count;
        let first = rest % first_count;
        let middle_rank = rest / first_count;
        let middle = if middle_rank < first {
            middle_rank
        } else {
            middle_rank + 1
        };
        (first as usize, middle as usize, last as usize)
    }
}

/// All origins with their pools.
#[derive(Clone, Debug, PartialEq)]
pub struct NamePools {
    pub origins: Vec<Origin>,
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.trim().to_string()).collect()
}

impl NamePools {
    /// Returns the built-in pools.
    pub fn builtin() -> Self {
        let raw = vec![
            (
                "English",
                strings(EN::NAME_FIRST_NAME),
                strings(EN::NAME_LAST_NAME),
            ),
            (
                "French",
                strings(FR_FR::NAME_FIRST_NAME),
                strings(FR_FR::NAME_LAST_NAME),
            ),
            (
                "German",
                strings(DE_DE::NAME_FIRST_NAME),
                strings(DE_DE::NAME_LAST_NAME),
            ),
            (
                "Italian",
                strings(IT_IT::NAME_FIRST_NAME),
                strings(IT_IT::NAME_LAST_NAME),
            ),
            (
                "Brazilian",
                strings(PT_BR::NAME_FIRST_NAME),
                strings(PT_BR::NAME_LAST_NAME),
            ),
            (
                "Portuguese",
                strings(PT_PT::NAME_FIRST_NAME),
                strings(PT_PT::NAME_LAST_NAME),
            ),
            (
                "Dutch",
                strings(NL_NL::NAME_FIRST_NAME),
                strings(NL_NL::NAME_LAST_NAME),
            ),
            (
                "Welsh",
                strings(CY_GB::NAME_FIRST_NAME),
                strings(CY_GB::NAME_LAST_NAME),
            ),
            (
                "Turkish",
                strings(TR_TR::NAME_FIRST_NAME),
                strings(TR_TR::NAME_LAST_NAME),
            ),
        ];
        Self::from_lists(raw)
    }

    /// Reads pools from a TSV file with lines `origin<TAB>first|last<TAB>name`; `#` starts a
    /// comment line.
    pub fn from_file(path: &Path) -> Result<Self, BiosError> {
        let text = std::fs::read_to_string(path).map_err(|source| BiosError::PoolRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut raw: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let [origin, kind, name] = fields[..] else {
                return Err(BiosError::PoolLine {
                    path: path.to_path_buf(),
                    line: number + 1,
                    message: "expected three tab-separated fields: origin, first|last, name".into(),
                });
            };
            let index = match raw.iter().position(|(o, _, _)| o == origin) {
                Some(index) => index,
                None => {
                    raw.push((origin.to_string(), Vec::new(), Vec::new()));
                    raw.len() - 1
                }
            };
            match kind {
                "first" => raw[index].1.push(name.trim().to_string()),
                "last" => raw[index].2.push(name.trim().to_string()),
                other => {
                    return Err(BiosError::PoolLine {
                        path: path.to_path_buf(),
                        line: number + 1,
                        message: format!("name kind `{other}` is invalid: use `first` or `last`"),
                    });
                }
            }
        }
        Ok(Self::from_lists(raw))
    }

    /// Returns whether `name` looks like a clean name: letters with spaces, hyphens or apostrophes
    /// between them, and no run of capitals at its start. Some locale lists of the `fake` crate
    /// (version 5) contain entries such as `FAnke`, `Floris,` or ones with a stray combining mark.
    fn is_clean_name(name: &str) -> bool {
        let letters_only = name
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '\''));
        let mut chars = name.chars();
        let capital_run = matches!((chars.next(), chars.next()), (Some(a), Some(b)) if a.is_uppercase() && b.is_uppercase());
        let combining = name.chars().any(|c| ('\u{0300}'..='\u{036F}').contains(&c));
        !name.is_empty() && letters_only && !capital_run && !combining
    }

    /// Builds pools, dropping empty, malformed and repeated names, and giving each surname to the first
    /// origin that lists it. Origins left without first names or surnames are dropped.
    fn from_lists<S: Into<String>>(raw: Vec<(S, Vec<String>, Vec<String>)>) -> Self {
        let mut taken_surnames = HashSet::new();
        let mut origins = Vec::new();
        for (name, first, last) in raw {
            let mut seen_first = HashSet::new();
            let first: Vec<String> = first
                .into_iter()
                .filter(|n| Self::is_clean_name(n) && seen_first.insert(n.clone()))
                .collect();
            let last: Vec<String> = last
                .into_iter()
                .filter(|n| Self::is_clean_name(n) && taken_surnames.insert(n.clone()))
                .collect();
            if first.len() >= 2 && !last.is_empty() {
                origins.push(Origin {
                    name: name.into(),
                    first,
                    last,
                });
            }
        }
        Self { origins }
    }

    /// Returns the SHA-256 of every origin's name lists, for the manifest.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for origin in &self.origins {
            hasher.update(origin.name.as_bytes());
            for name in origin.first.iter().chain(&origin.last) {
                hasher.update([0u8]);
                hasher.update(name.as_bytes());
            }
            hasher.update([1u8]);
        }
        hex::encode(hasher.finalize())
    }

    /// Splits `people` over the origins as evenly as their capacities allow, so that no
    /// origin is asked for more distinct names than it has.
    pub fn quotas(&self, people: u64) -> Result<Vec<u64>, BiosError> {
        let capacities: Vec<u64> = self.origins.iter().map(Origin::capacity).collect();
        let total: u64 = capacities.iter().sum();
        if total < people {
            return Err(BiosError::TooFewNames {
                needed: people,
                available: total,
            });
        }

        // Water-filling: every origin gets an equal share, capped by its capacity, and what a
        // small origin cannot take is shared among the others.
        let mut quotas = vec![0u64; capacities.len()];
        let mut remaining = people;
        let mut open: Vec<usize> = (0..capacities.len()).collect();
        while remaining > 0 {
            let share = (remaining / open.len() as u64).max(1);
            let mut next_open = Vec::new();
            for &i in &open {
                if remaining == 0 {
                    break;
                }
                let take = share.min(capacities[i] - quotas[i]).min(remaining);
                quotas[i] += take;
                remaining -= take;
                if quotas[i] < capacities[i] {
                    next_open.push(i);
                }
            }
            open = next_open;
        }
        Ok(quotas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_surnames_belong_to_one_origin() {
        let pools = NamePools::builtin();
        assert!(pools.origins.len() >= 8, "{}", pools.origins.len());
        let mut all = HashSet::new();
        for origin in &pools.origins {
            for last in &origin.last {
                assert!(all.insert(last.clone()), "{last} appears in two origins");
            }
        }
    }

    #[test]
    fn malformed_names_are_dropped() {
        for bad in ["FAnke", "Floris,", "O\u{0302}zm", "D\"ávila", ""] {
            assert!(!NamePools::is_clean_name(bad), "{bad:?} must be dropped");
        }
        for good in [
            "Anke",
            "de Vries",
            "O'Connell",
            "Müller-Schwarzenberg",
            "Yılmaz",
        ] {
            assert!(NamePools::is_clean_name(good), "{good:?} must be kept");
        }
    }

    #[test]
    fn decode_is_injective_and_keeps_middle_apart() {
        let origin = Origin {
            name: "Test".into(),
            first: vec!["A".into(), "B".into(), "C".into()],
            last: vec!["X".into(), "Y".into()],
        };
        let mut seen = HashSet::new();
        for index in 0..origin.capacity() {
            let (first, middle, last) = origin.decode(index);
            assert_ne!(first, middle);
            assert!(seen.insert((first, middle, last)));
        }
        assert_eq!(seen.len(), 12);
    }

    #[test]
    fn quotas_respect_capacity_and_sum() {
        let pools = NamePools::builtin();
        for people in [1u64, 9, 1000, 1_000_000, 10_000_000] {
            let quotas = pools.quotas(people).unwrap();
            assert_eq!(quotas.iter().sum::<u64>(), people);
            for (quota, origin) in quotas.iter().zip(&pools.origins) {
                assert!(*quota <= origin.capacity());
            }
        }
        let error = pools.quotas(u64::MAX / 2).unwrap_err().to_string();
        assert!(error.contains("distinct full names"), "{error}");
    }
}
