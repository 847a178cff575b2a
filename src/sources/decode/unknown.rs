//! Fields of an HTTP body that match no column: counted while decoding (they are ignored
//! by default) so the ingest can refuse them (`strict = 'true'`) or count and log them.

use std::collections::BTreeMap;

/// At most this many distinct unknown field names are kept per body (the total still
/// counts every occurrence): a body of millions of distinct keys cannot grow the map.
pub const MAX_NAMES: usize = 64;

/// Unknown fields of one decoded body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnknownFields {
    /// Every occurrence (a field in each of 3 instances counts 3).
    pub total: u64,
    /// Occurrences per field name, for the first `MAX_NAMES` distinct names.
    pub names: BTreeMap<String, u64>,
    /// The first unknown field, described for a 400 answer: its name, where it was, the
    /// fields that would have been accepted there and the closest one
    /// (`unknown field 'sepal_lenght' in instance 3 (columns: …; did you mean
    /// 'sepal_length'?)`).
    pub first: Option<String>,
}

impl UnknownFields {
    /// True when the body had no unknown field.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Records one occurrence of `name`; `describe` is called for the first one only (see
    /// `describe`).
    pub fn record(&mut self, name: &str, describe: impl FnOnce() -> String) {
        self.total += 1;
        if let Some(n) = self.names.get_mut(name) {
            *n += 1;
        } else if self.names.len() < MAX_NAMES {
            self.names.insert(name.to_string(), 1);
        }
        if self.first.is_none() {
            self.first = Some(describe());
        }
    }

    /// Adds the fields of another body part.
    pub fn merge(&mut self, other: UnknownFields) {
        self.total += other.total;
        for (name, n) in other.names {
            if let Some(m) = self.names.get_mut(&name) {
                *m += n;
            } else if self.names.len() < MAX_NAMES {
                self.names.insert(name, n);
            }
        }
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// Where a message is in a body of several (" of line 2", " of element 0"), for messages
/// about its fields; empty for a body of one message. Formatted only when needed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context(Option<(&'static str, i64)>);

impl Context {
    /// The message at `index` of `what` ("line", "element").
    pub fn at(what: &'static str, index: i64) -> Self {
        Self(Some((what, index)))
    }
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some((what, index)) => write!(f, " of {what} {index}"),
            None => Ok(()),
        }
    }
}

/// `unknown field '{name}' in {place} ({label}: {known…}; did you mean '…'?)`.
pub fn describe<S: AsRef<str>>(name: &str, place: &str, label: &str, known: &[S]) -> String {
    let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
    let hint = driftwatch_sql::did_you_mean(name, &known)
        .map(|k| format!("; did you mean '{k}'?"))
        .unwrap_or_default();
    format!(
        "unknown field '{name}' in {place} ({label}: {}{hint})",
        known.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_names_and_describes_the_first() {
        let mut u = UnknownFields::default();
        let cols = ["sepal_length", "sepal_width"];
        let d = |name: &str, place: &str| describe(name, place, "columns", &cols);
        u.record("sepal_lenght", || d("sepal_lenght", "instance 3"));
        u.record("sepal_lenght", || d("sepal_lenght", "instance 4"));
        u.record("zzz", || unreachable!());
        assert_eq!(u.total, 3);
        assert_eq!(u.names["sepal_lenght"], 2);
        assert_eq!(
            u.first.as_deref(),
            Some(
                "unknown field 'sepal_lenght' in instance 3 (columns: sepal_length, sepal_width; \
                 did you mean 'sepal_length'?)"
            )
        );
        for i in 0..(2 * MAX_NAMES) {
            u.record(&format!("f{i}"), String::new);
        }
        assert_eq!(u.names.len(), MAX_NAMES);
        assert_eq!(u.total, 3 + 2 * MAX_NAMES as u64);
    }
}
