//! Cutting token spans into overlapping passages.

use std::ops::Range;

/// One passage: a byte range of the document and its token count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passage {
    pub bytes: Range<usize>,
    pub tokens: usize,
}

/// Groups `spans` into passages of at most `max_tokens` tokens, each starting `overlap`
/// tokens before the end of the previous one. The last passage ends at the last token; a
/// document with no tokens has no passages.
///
/// # Panics
/// If `overlap >= max_tokens`, which the configuration check rules out.
pub fn split_passages(spans: &[Range<usize>], max_tokens: usize, overlap: usize) -> Vec<Passage> {
    assert!(
        overlap < max_tokens,
        "overlap must be smaller than max_tokens"
    );
    let step = max_tokens - overlap;
    let mut passages = Vec::new();
    let mut start = 0;
    while start < spans.len() {
        let end = (start + max_tokens).min(spans.len());
        passages.push(Passage {
            bytes: spans[start].start..spans[end - 1].end,
            tokens: end - start,
        });
        if end == spans.len() {
            break;
        }
        start += step;
    }
    passages
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spans(n: usize) -> Vec<Range<usize>> {
        (0..n).map(|i| i * 2..i * 2 + 1).collect()
    }

    #[test]
    fn short_document_is_one_passage() {
        let passages = split_passages(&spans(5), 10, 2);
        assert_eq!(
            passages,
            [Passage {
                bytes: 0..9,
                tokens: 5
            }]
        );
    }

    #[test]
    fn neighbours_share_overlap_tokens() {
        let passages = split_passages(&spans(10), 4, 1);
        let tokens: Vec<usize> = passages.iter().map(|p| p.tokens).collect();
        assert_eq!(tokens, [4, 4, 4]);
        // Passages start at tokens 0, 3 and 6, so token 3 ends the first and starts the second.
        assert_eq!(passages[1].bytes.start, 6);
        assert_eq!(passages[0].bytes.end, 7);
        assert_eq!(passages[2].bytes.end, 19);
    }

    proptest! {
        #[test]
        fn passages_cover_every_token(n in 0usize..400, max in 1usize..50, overlap_seed in 0usize..50) {
            let overlap = overlap_seed % max;
            let spans = spans(n);
            let passages = split_passages(&spans, max, overlap);

            let mut covered = vec![false; n];
            for passage in &passages {
                prop_assert!(passage.tokens <= max);
                prop_assert!(passage.tokens >= 1);
                for (i, span) in spans.iter().enumerate() {
                    if span.start >= passage.bytes.start && span.end <= passage.bytes.end {
                        covered[i] = true;
                    }
                }
            }
            prop_assert!(covered.iter().all(|&c| c));
            if n > 0 {
                prop_assert_eq!(passages.last().unwrap().bytes.end, spans[n - 1].end);
            }
        }
    }
}
