//! The six attributes every person has.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One attribute of a person, in the canonical sentence order of a biography.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    BirthDate,
    BirthCity,
    University,
    Major,
    Employer,
    EmployerCity,
}

impl Attribute {
    pub const ALL: [Attribute; 6] = [
        Self::BirthDate,
        Self::BirthCity,
        Self::University,
        Self::Major,
        Self::Employer,
        Self::EmployerCity,
    ];

    /// Returns the snake_case name used in files, columns and settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::BirthDate => "birth_date",
            Self::BirthCity => "birth_city",
            Self::University => "university",
            Self::Major => "major",
            Self::Employer => "employer",
            Self::EmployerCity => "employer_city",
        }
    }

    /// Returns the placeholder that carries the value in sentence templates.
    pub fn placeholder(self) -> &'static str {
        match self {
            Self::BirthDate => "date",
            Self::BirthCity | Self::EmployerCity => "city",
            Self::University => "university",
            Self::Major => "major",
            Self::Employer => "employer",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Attribute {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown attribute `{s}`: use birth_date, birth_city, university, major, \
                     employer or employer_city"
                )
            })
    }
}
