//! Category counts, the input of the categorical tests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many times each category occurred. Categories are strings; entries
/// with a zero count are kept but ignored by every test (a category that
/// occurs in neither sample is not a category of the table, as in
/// Evidently). Serialises as a JSON object `{"category": count}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counts(BTreeMap<String, u64>);

impl Counts {
    /// No categories.
    pub fn new() -> Self {
        Counts(BTreeMap::new())
    }

    /// Counts the occurrences of each value.
    pub fn from_values<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut counts = Counts::new();
        for v in values {
            counts.add(v.as_ref(), 1);
        }
        counts
    }

    /// Adds `n` occurrences of `category` (saturating at `u64::MAX`).
    pub fn add(&mut self, category: &str, n: u64) {
        match self.0.get_mut(category) {
            Some(c) => *c = c.saturating_add(n),
            None => {
                self.0.insert(category.to_owned(), n);
            }
        }
    }

    /// The count of `category` (0 when absent).
    pub fn get(&self, category: &str) -> u64 {
        self.0.get(category).copied().unwrap_or(0)
    }

    /// Sum of all counts (saturating).
    pub fn total(&self) -> u64 {
        self.0.values().fold(0u64, |acc, &c| acc.saturating_add(c))
    }

    /// Number of categories with a non-zero count.
    pub fn unique(&self) -> usize {
        self.0.values().filter(|&&c| c > 0).count()
    }

    /// Number of entries, zero counts included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Entries in increasing category order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.0.iter().map(|(k, &v)| (k.as_str(), v))
    }

    /// The underlying map.
    pub fn as_map(&self) -> &BTreeMap<String, u64> {
        &self.0
    }
}

impl From<BTreeMap<String, u64>> for Counts {
    fn from(map: BTreeMap<String, u64>) -> Self {
        Counts(map)
    }
}

impl<S: AsRef<str>> FromIterator<(S, u64)> for Counts {
    fn from_iter<T: IntoIterator<Item = (S, u64)>>(iter: T) -> Self {
        let mut counts = Counts::new();
        counts.extend(iter);
        counts
    }
}

impl<S: AsRef<str>> Extend<(S, u64)> for Counts {
    fn extend<T: IntoIterator<Item = (S, u64)>>(&mut self, iter: T) {
        for (k, n) in iter {
            self.add(k.as_ref(), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accumulate() {
        let mut c = Counts::from_values(["a", "b", "a"]);
        c.add("z", 0);
        assert_eq!(c.get("a"), 2);
        assert_eq!(c.get("missing"), 0);
        assert_eq!(c.total(), 3);
        assert_eq!(c.unique(), 2);
        assert_eq!(c.len(), 3);
        let d: Counts = [("a", 2u64), ("b", 1)].into_iter().collect();
        assert_eq!(d.total(), 3);
    }
}
