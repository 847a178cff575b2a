//! Thread-safe name → profile registry shared by all Driftwatch functions.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::BaselineProfile;

/// Registry of baselines by name. Cheap to share (`Arc<BaselineRegistry>`); functions look the
/// profile up when an accumulator / batch evaluation starts, so replacing a baseline affects
/// queries planned or windows started afterwards.
#[derive(Debug, Default)]
pub struct BaselineRegistry {
    inner: RwLock<HashMap<String, Arc<BaselineProfile>>>,
}

impl BaselineRegistry {
    /// Empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert (or replace) a profile under its own name; returns the shared handle.
    pub fn insert(&self, profile: BaselineProfile) -> Arc<BaselineProfile> {
        let p = Arc::new(profile);
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.insert(p.name.clone(), Arc::clone(&p));
        p
    }

    /// Profile by name.
    pub fn get(&self, name: &str) -> Option<Arc<BaselineProfile>> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.get(name).cloned()
    }

    /// Profile a function's `'baseline'` argument names: the baseline of exactly that name,
    /// else the one whose name equals it ignoring ASCII case, when exactly one does.
    ///
    /// `CREATE BASELINE B_r …` stores `b_r` (unquoted names fold to lower case, quoted
    /// ones keep theirs, as in DataFusion and Postgres); the string literal `'B_r'` in
    /// `ks_pvalue(x, 'B_r')` still finds it, while two baselines `"B"` and `b` need the exact
    /// spelling. Errors say which names are known or which ones clash.
    ///
    /// ```
    /// use driftwatch_udfs::{BaselineProfile, BaselineRegistry, ProfileOptions};
    /// use arrow::array::{Float64Array, RecordBatch};
    /// use std::sync::Arc;
    /// let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![1.0, 2.0])) as _)]).unwrap();
    /// let reg = BaselineRegistry::new();
    /// reg.insert(BaselineProfile::from_batches("b_r", &[batch], &ProfileOptions::default()).unwrap());
    /// assert_eq!(reg.resolve("B_R").unwrap().name, "b_r");
    /// assert!(reg.resolve("nope").unwrap_err().contains("known: b_r"));
    /// ```
    pub fn resolve(&self, name: &str) -> Result<Arc<BaselineProfile>, String> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = g.get(name) {
            return Ok(Arc::clone(p));
        }
        let mut folded: Vec<(&String, &Arc<BaselineProfile>)> = g
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .collect();
        folded.sort_by(|a, b| a.0.cmp(b.0));
        match folded.as_slice() {
            [(_, p)] => Ok(Arc::clone(p)),
            [] => {
                let mut known: Vec<&str> = g.keys().map(String::as_str).collect();
                known.sort_unstable();
                Err(format!(
                    "unknown baseline '{name}' (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            }
            several => Err(format!(
                "baseline name '{name}' is ambiguous: it matches {} ignoring case; spell it \
                 exactly",
                several
                    .iter()
                    .map(|(n, _)| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Remove a profile; true if it existed.
    pub fn remove(&self, name: &str) -> bool {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.remove(name).is_some()
    }

    /// Sorted names of all registered baselines.
    pub fn names(&self) -> Vec<String> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<String> = g.keys().cloned().collect();
        v.sort();
        v
    }
}
