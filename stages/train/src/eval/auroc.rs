//! Area under the ROC curve.

/// Returns the AUROC of `scores` for telling `positives` from `negatives`: the probability
/// that a random positive scores higher than a random negative, ties counting one half.
/// `None` when either group is empty.
pub fn auroc(positives: &[f64], negatives: &[f64]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = positives
        .iter()
        .map(|s| (*s, true))
        .chain(negatives.iter().map(|s| (*s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));

    // Mann-Whitney U from average ranks, so tied scores share their rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let average_rank = (i + j + 1) as f64 / 2.0;
        rank_sum += all[i..j].iter().filter(|(_, p)| *p).count() as f64 * average_rank;
        i = j;
    }
    let p = positives.len() as f64;
    let n = negatives.len() as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::auroc;

    #[test]
    fn auroc_of_separated_tied_and_reversed_scores() {
        assert_eq!(auroc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auroc(&[0.1], &[0.9]), Some(0.0));
        assert_eq!(auroc(&[0.5, 0.5], &[0.5]), Some(0.5));
        assert_eq!(auroc(&[0.8, 0.3], &[0.5]), Some(0.5));
        assert_eq!(auroc(&[], &[0.5]), None);
    }
}
