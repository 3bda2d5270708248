//! Properties of generated people, biographies and QA rows, checked on the generator itself.

use std::collections::{HashMap, HashSet};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use kenning_biographies::names::NamePools;
use kenning_biographies::people::Generator;
use kenning_biographies::pools::{AttributePools, PoolFiles};
use kenning_biographies::tables::{Table, TableBuilder};
use kenning_biographies::templates::TemplateSet;
use kenning_biographies::{Attribute, BiosConfig, BiosError, text};

fn generator(config: BiosConfig) -> Generator {
    Generator::new(
        config,
        NamePools::builtin(),
        AttributePools::load(&PoolFiles::default()).unwrap(),
    )
    .unwrap()
}

#[test]
fn names_unique_at_one_million() {
    let generator = generator(BiosConfig::new(1_000_000));
    let total = generator.total();
    assert_eq!(total, 1_100_000);

    let mut names = HashSet::with_capacity(total as usize);
    for index in 0..total {
        let person = generator.person(index);
        let name = generator.full_name(&person);
        assert!(
            names.insert(name.clone()),
            "{name} is drawn twice (person {index})"
        );
    }

    // Every origin takes part, so names are multinational.
    let mut origins = HashSet::new();
    for index in 0..10_000 {
        origins.insert(generator.person(index).origin);
    }
    assert_eq!(origins.len(), generator.names.origins.len());
}

#[test]
fn biography_names_every_attribute_value() {
    let templates = TemplateSet::load(None).unwrap();
    for (permute, fullname) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut config = BiosConfig::new(500);
        config.multiplicity = 3;
        config.permute = permute;
        config.fullname = fullname;
        let generator = generator(config);

        for index in 0..500 {
            let person = generator.person(index);
            let name = generator.full_name(&person);
            for variant in 0..3 {
                let mut bio = String::new();
                text::biography(&generator, &templates, &person, &name, variant, &mut bio);
                for attribute in Attribute::ALL {
                    let value = generator.value(&person, attribute);
                    assert!(
                        bio.contains(value.as_ref()),
                        "{attribute} `{value}` missing from: {bio}"
                    );
                }
                assert!(bio.contains(&name), "the full name is missing from: {bio}");
                if fullname {
                    let mentions = bio.matches(name.as_str()).count();
                    assert!(
                        mentions >= 6,
                        "full-name biographies name the person in every sentence: {bio}"
                    );
                }
                // Values such as "Washington, D.C." contain periods, so they are masked first.
                let mut masked = bio.clone();
                for attribute in Attribute::ALL {
                    masked = masked.replace(generator.value(&person, attribute).as_ref(), "VALUE");
                }
                assert_eq!(masked.matches(". ").count() + 1, 6, "six sentences: {bio}");
                assert!(bio.ends_with('.'), "{bio}");
            }
        }
    }
}

#[test]
fn variants_redraw_templates() {
    let mut config = BiosConfig::new(200);
    config.multiplicity = 4;
    let generator = generator(config);
    let templates = TemplateSet::load(None).unwrap();

    let mut distinct = 0;
    for index in 0..200 {
        let person = generator.person(index);
        let name = generator.full_name(&person);
        let bios: HashSet<String> = (0..4)
            .map(|variant| {
                let mut bio = String::new();
                text::biography(&generator, &templates, &person, &name, variant, &mut bio);
                bio
            })
            .collect();
        distinct += bios.len();
    }
    assert!(distinct >= 790, "only {distinct} of 800 biographies differ");
}

#[test]
fn permutation_changes_sentence_order() {
    let templates = TemplateSet::load(None).unwrap();
    let mut config = BiosConfig::new(300);
    config.permute = true;
    let generator = generator(config);

    let mut first_is_date = 0;
    for index in 0..300 {
        let person = generator.person(index);
        let name = generator.full_name(&person);
        let mut bio = String::new();
        text::biography(&generator, &templates, &person, &name, 0, &mut bio);
        let date = generator.value(&person, Attribute::BirthDate);
        let first_sentence = bio.split(". ").next().unwrap();
        if first_sentence.contains(date.as_ref()) {
            first_is_date += 1;
        }
    }
    // Without permutation the date sentence is always first; shuffled, about 1 in 6 is.
    assert!((20..=80).contains(&first_is_date), "{first_is_date} of 300");
}

/// Attribute frequencies follow the pools and the correlation strength. With 200,000 people
/// and a fixed seed, the share of people holding their surname's preferred value has a
/// standard error of at most 0.0012, so a tolerance of 0.01 is over 8 standard errors.
#[test]
fn frequencies_match_pools_and_rho() {
    let people = 200_000u64;
    for rho in [0.0, 0.5, 0.9, 1.0] {
        let mut config = BiosConfig::new(people);
        config.correlate = vec![Attribute::BirthCity, Attribute::Employer];
        config.rho = rho;
        config.seed = 7;
        let generator = generator(config);

        let mut preferred_city = 0u64;
        let mut preferred_employer = 0u64;
        let mut majors = vec![0u64; generator.pools.majors.len()];
        let mut days = [0u64; 28];
        let mut months = [0u64; 12];
        for index in 0..people {
            let person = generator.person(index);
            let surname = generator.surname(&person).to_string();
            let city = person.values[Attribute::BirthCity.index()];
            if city == generator.preferred(Attribute::BirthCity, &surname) {
                preferred_city += 1;
            }
            let employer = person.values[Attribute::Employer.index()];
            if employer == generator.preferred(Attribute::Employer, &surname) {
                preferred_employer += 1;
            }
            majors[person.values[Attribute::Major.index()]] += 1;
            days[person.birth_day as usize - 1] += 1;
            months[person.birth_month as usize - 1] += 1;
        }

        let city_share = preferred_city as f64 / people as f64;
        let employer_share = preferred_employer as f64 / people as f64;
        assert!(
            (city_share - rho).abs() < 0.01,
            "rho {rho}: birth_city share {city_share}"
        );
        assert!(
            (employer_share - rho).abs() < 0.01,
            "rho {rho}: employer share {employer_share}"
        );

        // Uncorrelated attributes stay uniform: Pearson's chi-square against the 0.999
        // quantile (df = k - 1; the quantile is below df + 4.5·sqrt(2·df) for these df).
        for (name, counts) in [
            ("major", &majors[..]),
            ("day", &days[..]),
            ("month", &months[..]),
        ] {
            let k = counts.len() as f64;
            let expected = people as f64 / k;
            let chi2: f64 = counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum();
            let df = k - 1.0;
            let limit = df + 4.5 * (2.0 * df).sqrt();
            assert!(
                chi2 < limit,
                "rho {rho}: {name} chi-square {chi2:.1} over {limit:.1}"
            );
        }
    }
}

#[test]
fn surnames_share_preferred_values() {
    let mut config = BiosConfig::new(20_000);
    config.correlate = vec![Attribute::University];
    config.rho = 1.0;
    let generator = generator(config);

    let mut by_surname: HashMap<String, HashSet<usize>> = HashMap::new();
    for index in 0..20_000 {
        let person = generator.person(index);
        by_surname
            .entry(generator.surname(&person).to_string())
            .or_default()
            .insert(person.values[Attribute::University.index()]);
    }
    for (surname, universities) in by_surname {
        assert_eq!(
            universities.len(),
            1,
            "{surname} has several universities at rho 1"
        );
    }
}

#[test]
fn qa_rows_cover_every_person_and_attribute() {
    let mut config = BiosConfig::new(100);
    config.unknown_people = Some(20);
    config.train_fraction = 0.6;
    let generator = generator(config);
    let templates = TemplateSet::load(None).unwrap();
    let builder = TableBuilder::new(&generator, &templates);

    let splits = builder.splits(Table::Qa);
    assert_eq!(
        splits,
        vec![("train", 360), ("test", 240), ("unknown", 120)]
    );

    let unknown = builder.batch(Table::Qa, "unknown", 0..120);
    let answers = unknown.column_by_name("answer").unwrap().as_string::<i32>();
    for i in 0..answers.len() {
        assert_eq!(answers.value(i), "I don't know");
    }
    let test = builder.batch(Table::Qa, "test", 0..240);
    let ids = test.column_by_name("person_id").unwrap().as_string::<i32>();
    assert_eq!(ids.value(0), "p000000060");
    assert_eq!(ids.value(239), "p000000099");
}

#[test]
fn too_few_names_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let names = dir.path().join("names.tsv");
    std::fs::write(
        &names,
        "Test\tfirst\tAnna\nTest\tfirst\tBea\nTest\tfirst\tCleo\nTest\tlast\tRossi\n",
    )
    .unwrap();
    let pools = NamePools::from_file(&names).unwrap();
    assert_eq!(pools.origins[0].capacity(), 6);

    let mut config = BiosConfig::new(6);
    config.unknown_people = Some(1);
    let error = Generator::new(
        config,
        pools,
        AttributePools::load(&PoolFiles::default()).unwrap(),
    )
    .err()
    .expect("7 people cannot have distinct names from 6");
    assert!(
        matches!(
            error,
            BiosError::TooFewNames {
                needed: 7,
                available: 6
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("--names"), "{error}");
}

#[test]
fn correlated_pool_needs_two_values() {
    let dir = tempfile::tempdir().unwrap();
    let cities = dir.path().join("cities.txt");
    std::fs::write(&cities, "# one city\nLisbon\n").unwrap();
    let mut config = BiosConfig::new(10);
    config.correlate = vec![Attribute::BirthCity];
    config.rho = 0.5;
    config.pools.cities = Some(cities);

    let pools = AttributePools::load(&config.pools).unwrap();
    let error = Generator::new(config, NamePools::builtin(), pools)
        .err()
        .expect("a single city cannot be correlated");
    let message = error.to_string();
    assert!(message.contains("pool cities"), "{message}");
    assert!(message.contains("cities.txt"), "{message}");
}
