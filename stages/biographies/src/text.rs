//! Biography and question text.

use crate::attribute::Attribute;
use crate::people::{Generator, Person};
use crate::rng::{SplitMix, below, hash};
use crate::templates::{PersonWords, TemplateSet, render};

const SENTENCE_CHOICE: u64 = 10;
const SENTENCE_ORDER: u64 = 11;
const QUESTION_CHOICE: u64 = 12;

/// Writes biography number `variant` of `person` into `out`: six sentences, one per
/// attribute, with templates drawn again for every variant.
pub fn biography(
    generator: &Generator,
    templates: &TemplateSet,
    person: &Person,
    full_name: &str,
    variant: u32,
    out: &mut String,
) {
    let seed = generator.config.seed;
    let row = hash(seed, &[SENTENCE_CHOICE, person.index, u64::from(variant)]);

    let mut order = Attribute::ALL;
    if generator.config.permute {
        SplitMix::new(hash(
            seed,
            &[SENTENCE_ORDER, person.index, u64::from(variant)],
        ))
        .shuffle(&mut order);
    }

    let possessive_name = format!("{full_name}'s");
    let named = PersonWords {
        subject: full_name,
        possessive: &possessive_name,
        object: full_name,
    };
    let pronouns = PersonWords {
        subject: person.pronoun.subject(),
        possessive: person.pronoun.possessive(),
        object: person.pronoun.object(),
    };

    for (position, attribute) in order.into_iter().enumerate() {
        let choices = &templates.sentences[attribute.index()];
        let choice = below(hash(row, &[attribute.index() as u64]), choices.len() as u64) as usize;
        let (first, rest) = if generator.config.fullname {
            (&named, &named)
        } else if position == 0 {
            (&named, &pronouns)
        } else {
            (&pronouns, &pronouns)
        };
        if position > 0 {
            out.push(' ');
        }
        let value = generator.value(person, attribute);
        render(&choices[choice], first, rest, &value, out);
    }
}

/// Writes the question about `attribute` for `person` into `out`, with a template drawn per
/// person.
pub fn question(
    generator: &Generator,
    templates: &TemplateSet,
    person: &Person,
    full_name: &str,
    attribute: Attribute,
    out: &mut String,
) {
    let choices = &templates.questions[attribute.index()];
    let bits = hash(
        generator.config.seed,
        &[QUESTION_CHOICE, person.index, attribute.index() as u64],
    );
    let choice = below(bits, choices.len() as u64) as usize;
    let words = PersonWords {
        subject: full_name,
        possessive: full_name,
        object: full_name,
    };
    render(&choices[choice], &words, &words, full_name, out);
}
