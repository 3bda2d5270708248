//! People: unique names and attribute values, each a pure function of the seed and the
//! person's index.

use crate::attribute::Attribute;
use crate::config::BiosConfig;
use crate::error::BiosError;
use crate::names::NamePools;
use crate::permutation::Permutation;
use crate::pools::AttributePools;
use crate::rng::{below, hash, hash_str, unit};
use crate::text::{TextSink, push_decimal, push_signed};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

// Domains that keep the random streams of different draws apart.
const NAME_ORDER: u64 = 1;
const ORIGIN_ORDER: u64 = 2;
const VALUE: u64 = 3;
const PREFERRED: u64 = 4;
const FOLLOW: u64 = 5;
const PRONOUN: u64 = 6;

/// Grammatical gender of the pronouns in a person's biography.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pronoun {
    He,
    She,
}

impl Pronoun {
    pub fn subject(self) -> &'static str {
        match self {
            Self::He => "he",
            Self::She => "she",
        }
    }

    pub fn possessive(self) -> &'static str {
        match self {
            Self::He => "his",
            Self::She => "her",
        }
    }

    pub fn object(self) -> &'static str {
        match self {
            Self::He => "him",
            Self::She => "her",
        }
    }
}

/// One person; indices point into the pools of the [`Generator`].
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub index: u64,
    pub origin: usize,
    pub first: usize,
    pub middle: usize,
    pub last: usize,
    pub pronoun: Pronoun,
    pub birth_year: i32,
    pub birth_month: u32,
    pub birth_day: u32,
    /// Pool index of each attribute with a pool, by [`Attribute::index`]; unused for
    /// `birth_date` and `employer_city`.
    pub values: [usize; 6],
}

/// Draws people from the pools.
pub struct Generator {
    pub config: BiosConfig,
    pub names: NamePools,
    pub pools: AttributePools,
    order: Permutation,
    origin_starts: Vec<u64>,
    origin_orders: Vec<Permutation>,
}

impl Generator {
    /// Prepares a generator for `people + unknown_people` distinct people.
    pub fn new(
        config: BiosConfig,
        names: NamePools,
        pools: AttributePools,
    ) -> Result<Self, BiosError> {
        let total = config.people + config.unknown_count();
        let minimum = if config.correlate.is_empty() { 1 } else { 2 };
        pools.check_sizes(
            minimum,
            "a correlated attribute needs a preferred value and at least one other",
        )?;

        let quotas = names.quotas(total)?;
        let mut origin_starts = Vec::with_capacity(quotas.len() + 1);
        let mut start = 0;
        for quota in &quotas {
            origin_starts.push(start);
            start += quota;
        }
        origin_starts.push(start);
        let origin_orders = names
            .origins
            .iter()
            .enumerate()
            .map(|(i, origin)| {
                Permutation::new(
                    origin.capacity(),
                    hash(config.seed, &[NAME_ORDER, i as u64]),
                )
            })
            .collect();

        Ok(Self {
            order: Permutation::new(total, hash(config.seed, &[ORIGIN_ORDER])),
            origin_starts,
            origin_orders,
            config,
            names,
            pools,
        })
    }

    /// Returns the number of people, unknown people included.
    pub fn total(&self) -> u64 {
        self.order.len()
    }

    fn pool_len(&self, attribute: Attribute) -> u64 {
        match attribute {
            Attribute::BirthCity => self.pools.cities.len() as u64,
            Attribute::University => self.pools.universities.len() as u64,
            Attribute::Major => self.pools.majors.len() as u64,
            Attribute::Employer => self.pools.employers.len() as u64,
            Attribute::BirthDate | Attribute::EmployerCity => 0,
        }
    }

    /// Returns the preferred value of `attribute` for people with this surname.
    pub fn preferred(&self, attribute: Attribute, surname: &str) -> usize {
        let bits = hash(
            self.config.seed,
            &[PREFERRED, attribute.index() as u64, hash_str(surname)],
        );
        below(bits, self.pool_len(attribute)) as usize
    }

    /// Generates person number `index`.
    pub fn person(&self, index: u64) -> Person {
        let seed = self.config.seed;

        // A global permutation spreads people over origins; inside an origin a second
        // permutation turns the person's rank into a distinct (first, middle, last) triple.
        let slot = self.order.apply(index);
        let origin = self.origin_starts.partition_point(|&start| start <= slot) - 1;
        let rank = slot - self.origin_starts[origin];
        let (first, middle, last) =
            self.names.origins[origin].decode(self.origin_orders[origin].apply(rank));
        let surname = &self.names.origins[origin].last[last];

        let [first_year, last_year] = self.config.birth_years;
        let span = (last_year - first_year + 1) as u64;
        let date_bits = hash(seed, &[VALUE, index, Attribute::BirthDate.index() as u64]);
        let birth_year = first_year + below(date_bits, span) as i32;
        let birth_month = 1 + below(hash(date_bits, &[1]), 12) as u32;
        let birth_day = 1 + below(hash(date_bits, &[2]), 28) as u32;

        let mut values = [0usize; 6];
        for attribute in [
            Attribute::BirthCity,
            Attribute::University,
            Attribute::Major,
            Attribute::Employer,
        ] {
            let n = self.pool_len(attribute);
            let a = attribute.index() as u64;
            values[attribute.index()] = if self.config.correlate.contains(&attribute) {
                let preferred = self.preferred(attribute, surname) as u64;
                if unit(hash(seed, &[FOLLOW, index, a])) < self.config.rho {
                    preferred as usize
                } else {
                    // Uniform over the other n - 1 values.
                    let other = below(hash(seed, &[VALUE, index, a]), n - 1);
                    (if other >= preferred { other + 1 } else { other }) as usize
                }
            } else {
                below(hash(seed, &[VALUE, index, a]), n) as usize
            };
        }

        let pronoun = if hash(seed, &[PRONOUN, index]) & 1 == 0 {
            Pronoun::He
        } else {
            Pronoun::She
        };
        Person {
            index,
            origin,
            first,
            middle,
            last,
            pronoun,
            birth_year,
            birth_month,
            birth_day,
            values,
        }
    }

    pub fn full_name(&self, person: &Person) -> String {
        let mut name = String::new();
        self.push_full_name(person, &mut name);
        name
    }

    /// Appends the full name, first, middle and last name separated by spaces, to `out`.
    pub fn push_full_name(&self, person: &Person, out: &mut impl TextSink) {
        let origin = &self.names.origins[person.origin];
        out.push_str(&origin.first[person.first]);
        out.push_str(" ");
        out.push_str(&origin.first[person.middle]);
        out.push_str(" ");
        out.push_str(&origin.last[person.last]);
    }

    pub fn surname<'g>(&'g self, person: &Person) -> &'g str {
        &self.names.origins[person.origin].last[person.last]
    }

    /// Returns the value of `attribute` as biographies and QA rows write it.
    pub fn value<'g>(&'g self, person: &Person, attribute: Attribute) -> std::borrow::Cow<'g, str> {
        match self.pooled_value(person, attribute) {
            Some(value) => value.into(),
            None => self.birth_date(person).as_str().to_string().into(),
        }
    }

    /// Returns the value of an attribute that comes from a pool, or `None` for `birth_date`.
    pub fn pooled_value<'g>(&'g self, person: &Person, attribute: Attribute) -> Option<&'g str> {
        let v = person.values[attribute.index()];
        match attribute {
            Attribute::BirthDate => None,
            Attribute::BirthCity => Some(&self.pools.cities[v]),
            Attribute::University => Some(&self.pools.universities[v]),
            Attribute::Major => Some(&self.pools.majors[v]),
            Attribute::Employer => Some(&self.pools.employers[v].name),
            Attribute::EmployerCity => {
                let employer = person.values[Attribute::Employer.index()];
                Some(&self.pools.employers[employer].city)
            }
        }
    }

    /// Returns the birth date as biographies write it, such as `March 5, 1961`.
    pub fn birth_date(&self, person: &Person) -> DateText {
        let mut date = DateText::default();
        date.push_str(MONTHS[person.birth_month as usize - 1]);
        date.push_str(" ");
        push_decimal(&mut date, u64::from(person.birth_day), 1);
        date.push_str(", ");
        push_signed(&mut date, i64::from(person.birth_year));
        date
    }

    /// Appends the value of `attribute` as biographies and QA rows write it to `out`.
    pub fn push_value(&self, person: &Person, attribute: Attribute, out: &mut impl TextSink) {
        match self.pooled_value(person, attribute) {
            Some(value) => out.push_str(value),
            None => out.push_str(self.birth_date(person).as_str()),
        }
    }

    /// Returns the value that the surname prefers for `attribute`, for correlated attributes.
    pub fn preferred_value<'g>(&'g self, person: &Person, attribute: Attribute) -> Option<&'g str> {
        let correlated = self.config.correlate.contains(&attribute)
            || (attribute == Attribute::EmployerCity
                && self.config.correlate.contains(&Attribute::Employer));
        if !correlated {
            return None;
        }
        let surname = self.surname(person);
        Some(match attribute {
            Attribute::BirthCity => &self.pools.cities[self.preferred(attribute, surname)],
            Attribute::University => &self.pools.universities[self.preferred(attribute, surname)],
            Attribute::Major => &self.pools.majors[self.preferred(attribute, surname)],
            Attribute::Employer => &self.pools.employers[self.preferred(attribute, surname)].name,
            Attribute::EmployerCity => {
                &self.pools.employers[self.preferred(Attribute::Employer, surname)].city
            }
            Attribute::BirthDate => unreachable!("birth_date is never correlated"),
        })
    }
}

/// Maximum length of a birth date text in bytes. The longest month name, a two-digit day
/// and an `i32` year with its sign ("September 28, -2147483648") take 25.
const DATE_BYTES: usize = 32;

/// A birth date as text, kept on the stack so that no row allocates for it.
pub struct DateText {
    bytes: [u8; DATE_BYTES],
    len: usize,
}

impl Default for DateText {
    fn default() -> Self {
        Self {
            bytes: [0; DATE_BYTES],
            len: 0,
        }
    }
}

impl DateText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("only whole strings are appended")
    }
}

impl TextSink for DateText {
    fn push_str(&mut self, text: &str) {
        let end = self.len + text.len();
        self.bytes[self.len..end].copy_from_slice(text.as_bytes());
        self.len = end;
    }
}
