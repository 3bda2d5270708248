//! People: unique names and attribute values, each a pure function of the seed and the
//! person's index.

use crate::attribute::Attribute;
use crate::config::BiosConfig;
use crate::error::BiosError;
use crate::names::NamePools;
use crate::permutation::Permutation;
use crate::pools::AttributePools;
use crate::rng::{below, hash, hash_str, unit};

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
        let origin = &self.names.origins[person.origin];
        format!(
            "{} {} {}",
            origin.first[person.first], origin.first[person.middle], origin.last[person.last]
        )
    }

    pub fn surname<'g>(&'g self, person: &Person) -> &'g str {
        &self.names.origins[person.origin].last[person.last]
    }

    /// Returns the value of `attribute` as biographies and QA rows write it.
    pub fn value<'g>(&'g self, person: &Person, attribute: Attribute) -> std::borrow::Cow<'g, str> {
        let v = person.values[attribute.index()];
        match attribute {
            Attribute::BirthDate => format!(
                "{} {}, {}",
                MONTHS[person.birth_month as usize - 1],
                person.birth_day,
                person.birth_year
            )
            .into(),
            Attribute::BirthCity => self.pools.cities[v].as_str().into(),
            Attribute::University => self.pools.universities[v].as_str().into(),
            Attribute::Major => self.pools.majors[v].as_str().into(),
            Attribute::Employer => self.pools.employers[v].name.as_str().into(),
            Attribute::EmployerCity => {
                let employer = person.values[Attribute::Employer.index()];
                self.pools.employers[employer].city.as_str().into()
            }
        }
    }

    /// Returns the value that the surname prefers for `attribute`, for correlated attributes.
    pub fn preferred_value(&self, person: &Person, attribute: Attribute) -> Option<String> {
        let correlated = self.config.correlate.contains(&attribute)
            || (attribute == Attribute::EmployerCity
                && self.config.correlate.contains(&Attribute::Employer));
        if !correlated {
            return None;
        }
        let surname = self.surname(person);
        Some(match attribute {
            Attribute::BirthCity => self.pools.cities[self.preferred(attribute, surname)].clone(),
            Attribute::University => {
                self.pools.universities[self.preferred(attribute, surname)].clone()
            }
            Attribute::Major => self.pools.majors[self.preferred(attribute, surname)].clone(),
            Attribute::Employer => self.pools.employers[self.preferred(attribute, surname)]
                .name
                .clone(),
            Attribute::EmployerCity => self.pools.employers
                [self.preferred(Attribute::Employer, surname)]
            .city
            .clone(),
            Attribute::BirthDate => unreachable!("birth_date is never correlated"),
        })
    }
}
