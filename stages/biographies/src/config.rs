//! Settings of a biographies run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::attribute::Attribute;
use crate::pools::PoolFiles;

/// Settings of `kenning bios` and of a `[bios]` table in a pipeline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BiosConfig {
    /// People with biographies.
    pub people: u64,
    /// People who get QA rows (expected answer "I don't know") but no biography; 10% of `people` when
    /// left out.
    #[serde(default)]
    pub unknown_people: Option<u64>,
    /// Biographies per person, each with templates drawn again.
    #[serde(default = "default_multiplicity")]
    pub multiplicity: u32,
    /// Shuffles the sentence order of every biography.
    #[serde(default)]
    pub permute: bool,
    /// Uses the full name in every sentence instead of pronouns after the first.
    #[serde(default)]
    pub fullname: bool,
    /// Share of the people whose QA rows go to the `train` split; the rest go to `test`.
    #[serde(default = "default_train_fraction")]
    pub train_fraction: f64,
    /// Earliest and latest birth year, inclusive.
    #[serde(default = "default_birth_years")]
    pub birth_years: [i32; 2],
    /// Attributes that follow the surname: each surname gets a preferred value, which a
    /// person takes with probability `rho`.
    #[serde(default)]
    pub correlate: Vec<Attribute>,
    /// Probability of the surname's preferred value, 0 to 1.
    #[serde(default)]
    pub rho: f64,
    #[serde(default)]
    pub seed: u64,
    /// User files that replace the built-in pools.
    #[serde(default)]
    pub pools: PoolFiles,
    /// Folder with `templates/` and `questions/` files that replace the built-in templates.
    #[serde(default)]
    pub templates: Option<PathBuf>,
}

fn default_multiplicity() -> u32 {
    1
}
fn default_train_fraction() -> f64 {
    0.5
}
fn default_birth_years() -> [i32; 2] {
    [1900, 2000]
}

impl BiosConfig {
    pub fn new(people: u64) -> Self {
        Self {
            people,
            unknown_people: None,
            multiplicity: default_multiplicity(),
            permute: false,
            fullname: false,
            train_fraction: default_train_fraction(),
            birth_years: default_birth_years(),
            correlate: Vec::new(),
            rho: 0.0,
            seed: 0,
            pools: PoolFiles::default(),
            templates: None,
        }
    }

    /// Returns the number of unknown people, defaulting to a tenth of `people` (at least 1).
    pub fn unknown_count(&self) -> u64 {
        self.unknown_people.unwrap_or((self.people / 10).max(1))
    }

    /// Checks the settings without reading any file.
    pub fn validate(&self) -> Result<(), String> {
        if self.people == 0 {
            return Err("people must be at least 1".into());
        }
        if self.multiplicity == 0 {
            return Err("multiplicity must be at least 1 (biographies per person)".into());
        }
        if !(0.0..=1.0).contains(&self.rho) {
            return Err(format!("rho is {}, but must be between 0 and 1", self.rho));
        }
        if !(0.0..=1.0).contains(&self.train_fraction) {
            return Err(format!(
                "train_fraction is {}, but must be between 0 and 1",
                self.train_fraction
            ));
        }
        let [first, last] = self.birth_years;
        if first > last {
            return Err(format!(
                "birth_years [{first}, {last}] is empty: give [earliest, latest]"
            ));
        }
        for attribute in &self.correlate {
            match attribute {
                Attribute::BirthDate => {
                    return Err("birth_date cannot follow the surname: correlate birth_city, university, major or employer".into());
                }
                Attribute::EmployerCity => {
                    return Err(
                        "employer_city follows the employer: correlate employer instead".into(),
                    );
                }
                _ => {}
            }
        }
        if !self.correlate.is_empty() && self.rho == 0.0 {
            tracing::warn!("correlate is set but rho is 0, so no attribute follows the surname");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_named() {
        type Change = fn(&mut BiosConfig);
        let cases: [(Change, &str); 5] = [
            (|c| c.rho = 1.5, "rho is 1.5"),
            (|c| c.rho = -0.1, "rho is -0.1"),
            (|c| c.multiplicity = 0, "multiplicity must be at least 1"),
            (
                |c| c.birth_years = [2000, 1990],
                "birth_years [2000, 1990] is empty",
            ),
            (
                |c| c.correlate = vec![Attribute::EmployerCity],
                "correlate employer instead",
            ),
        ];
        for (change, expected) in cases {
            let mut config = BiosConfig::new(10);
            change(&mut config);
            let error = config.validate().unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        assert!(BiosConfig::new(10).validate().is_ok());
    }
}
