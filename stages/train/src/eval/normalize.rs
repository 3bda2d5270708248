//! Answer normalisation and matching as in the SQuAD evaluation: lower case, no punctuation,
//! no articles (a, an, the), single spaces.

/// Returns `text` lower-cased, without punctuation or the articles a, an and the, with single
/// spaces between words.
pub fn normalize_answer(text: &str) -> String {
    let lowered: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect();
    lowered
        .split_whitespace()
        .filter(|word| !matches!(*word, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the normalised prediction equals the normalised gold answer.
pub fn exact_match(prediction: &str, gold: &str) -> bool {
    normalize_answer(prediction) == normalize_answer(gold)
}

/// Whether the normalised prediction contains the normalised gold answer as whole words.
/// An empty gold answer never matches.
pub fn contains_match(prediction: &str, gold: &str) -> bool {
    let gold = normalize_answer(gold);
    if gold.is_empty() {
        return false;
    }
    let prediction = format!(" {} ", normalize_answer(prediction));
    prediction.contains(&format!(" {gold} "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_drops_case_punctuation_articles() {
        assert_eq!(normalize_answer("  The  Eiffel-Tower! "), "eiffel tower");
        assert_eq!(normalize_answer("An apple, a pear"), "apple pear");
    }

    #[test]
    fn containment_needs_whole_words() {
        assert!(contains_match("It was in Paris, France.", "paris"));
        assert!(!contains_match("Parisian food", "Paris"));
        assert!(!contains_match("anything", ""));
        assert!(exact_match("the Paris.", "Paris"));
    }
}
