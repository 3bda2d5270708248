//! Biography and question text, and the buffers that text is appended to.

use arrow_array::builder::StringBuilder;

use crate::attribute::Attribute;
use crate::people::{Generator, Person};
use crate::rng::{SplitMix, below, hash};
use crate::templates::{PersonWords, TemplateSet, render};

const SENTENCE_CHOICE: u64 = 10;
const SENTENCE_ORDER: u64 = 11;
const QUESTION_CHOICE: u64 = 12;

/// A text buffer that generated text is appended to: a `String`, or the value buffer of an
/// Arrow string builder, whose current value is then closed with `append_value("")`.
pub trait TextSink {
    fn push_str(&mut self, text: &str);
}

impl TextSink for String {
    fn push_str(&mut self, text: &str) {
        String::push_str(self, text);
    }
}

impl TextSink for StringBuilder {
    fn push_str(&mut self, text: &str) {
        std::fmt::Write::write_str(self, text).expect("a string builder accepts every write");
    }
}

/// Appends `value` in decimal, padded with leading zeros to at least `width` digits, as
/// `format!("{value:0width$}")` would write it, without the formatting machinery.
pub fn push_decimal(out: &mut impl TextSink, value: u64, width: usize) {
    const ZEROS: &str = "0000000000000000";
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    let mut padding = width.saturating_sub(digits.len());
    while padding > 0 {
        let zeros = padding.min(ZEROS.len());
        out.push_str(&ZEROS[..zeros]);
        padding -= zeros;
    }
    out.push_str(digits);
}

/// Appends `value` in decimal with a leading `-` when it is negative.
pub fn push_signed(out: &mut impl TextSink, value: i64) {
    out.push_str(itoa::Buffer::new().format(value));
}

/// Writes biography number `variant` of `person` into `out`: six sentences, one per
/// attribute, with templates drawn again for every variant.
pub fn biography(
    generator: &Generator,
    templates: &TemplateSet,
    person: &Person,
    full_name: &str,
    variant: u32,
    out: &mut impl TextSink,
) {
    let possessive_name = format!("{full_name}'s");
    let named = PersonWords {
        subject: full_name,
        possessive: &possessive_name,
        object: full_name,
    };
    biography_named(generator, templates, person, &named, variant, out);
}

/// Writes biography number `variant` of `person` into `out`, as [`biography`] does, with the
/// name forms given by the caller so that their buffers can be reused from row to row.
pub fn biography_named(
    generator: &Generator,
    templates: &TemplateSet,
    person: &Person,
    named: &PersonWords<'_>,
    variant: u32,
    out: &mut impl TextSink,
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

    let pronouns = PersonWords {
        subject: person.pronoun.subject(),
        possessive: person.pronoun.possessive(),
        object: person.pronoun.object(),
    };
    let birth_date = generator.birth_date(person);

    for (position, attribute) in order.into_iter().enumerate() {
        let choices = &templates.sentences[attribute.index()];
        let choice = below(hash(row, &[attribute.index() as u64]), choices.len() as u64) as usize;
        let (first, rest) = if generator.config.fullname {
            (named, named)
        } else if position == 0 {
            (named, &pronouns)
        } else {
            (&pronouns, &pronouns)
        };
        if position > 0 {
            out.push_str(" ");
        }
        let value = generator
            .pooled_value(person, attribute)
            .unwrap_or(birth_date.as_str());
        render(&choices[choice], first, rest, value, out);
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
    out: &mut impl TextSink,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_decimal_matches_format() {
        for (value, width) in [
            (0, 9),
            (7, 9),
            (123_456_789, 9),
            (9_876_543_210, 9),
            (42, 1),
            (0, 1),
            (3, 40),
        ] {
            let mut out = String::new();
            push_decimal(&mut out, value, width);
            assert_eq!(out, format!("{value:0width$}"));
        }
    }

    #[test]
    fn push_signed_matches_format() {
        for value in [0i64, 5, -5, 1999, -2024, i64::MIN, i64::MAX] {
            let mut out = String::new();
            push_signed(&mut out, value);
            assert_eq!(out, value.to_string());
        }
    }
}
