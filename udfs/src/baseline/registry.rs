//! Thread-safe name → profile registry shared by all Driftwatch functions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use super::BaselineProfile;

/// Counts, per feature name, of the NULL results functions returned because a long-form
/// feature (a per-row feature column such as `features(src)`'s `feature`) names no column of
/// this baseline. One count per NULL result: per row for row-level functions (`zscore`, …),
/// per group (window × feature) for aggregates, where aggregates that share their
/// `(value, baseline, feature)` arguments are evaluated (and counted) once. The first miss of
/// each feature is logged as a warning.
///
/// Shared by every profile registered under one baseline name, so counts survive
/// `CREATE OR REPLACE BASELINE`; a profile not in a registry has its own. It is bookkeeping,
/// not part of the profile's value: any two compare equal.
#[derive(Debug, Clone, Default)]
pub struct MissingFeatures(Arc<Mutex<BTreeMap<String, u64>>>);

impl PartialEq for MissingFeatures {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// At most this many distinct missing feature names are kept per baseline (further names are
/// counted under [`MissingFeatures::OTHER`]), so a stream of ever-new names cannot grow memory.
const MAX_MISSING_NAMES: usize = 1_000;

impl MissingFeatures {
    /// Name under which misses beyond `MAX_MISSING_NAMES` (1000) distinct features are counted.
    pub const OTHER: &'static str = "(other)";

    /// Counts `nulls` NULL results of `feature`, absent from `baseline`; warns on the
    /// feature's first miss.
    pub fn record(&self, baseline: &str, feature: &str, nulls: u64) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = g.get_mut(feature) {
            *n += nulls;
            return;
        }
        let key = if g.len() < MAX_MISSING_NAMES {
            tracing::warn!(
                baseline,
                feature,
                "long-form feature is not a column of the baseline: its results are NULL \
                 (counted in system.missing_features; logged once per feature)"
            );
            feature
        } else {
            Self::OTHER
        };
        *g.entry(key.to_string()).or_insert(0) += nulls;
    }

    /// `(feature, NULL results)` in feature-name order.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Registry of baselines by name. Cheap to share (`Arc<BaselineRegistry>`); functions look the
/// profile up when an accumulator / batch evaluation starts, so replacing a baseline affects
/// queries planned or windows started afterwards.
#[derive(Debug, Default)]
pub struct BaselineRegistry {
    inner: RwLock<HashMap<String, Arc<BaselineProfile>>>,
    /// Missing-feature counters by baseline name (kept across replacements).
    missing: Mutex<HashMap<String, MissingFeatures>>,
}

impl BaselineRegistry {
    /// Empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert (or replace) a profile under its own name; returns the shared handle. The
    /// profile counts its missing features in the counter of its name.
    pub fn insert(&self, mut profile: BaselineProfile) -> Arc<BaselineProfile> {
        profile.missing_features = self
            .missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(profile.name.clone())
            .or_default()
            .clone();
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

    /// Remove a profile (and its missing-feature counts); true if it existed.
    pub fn remove(&self, name: &str) -> bool {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        self.missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        g.remove(name).is_some()
    }

    /// `(baseline, feature, NULL results)` for every long-form feature that named no column
    /// of a registered baseline (see [`MissingFeatures`]), sorted.
    pub fn missing_features(&self) -> Vec<(String, String, u64)> {
        let g = self.missing.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, String, u64)> = g
            .iter()
            .flat_map(|(b, m)| m.counts().into_iter().map(move |(f, n)| (b.clone(), f, n)))
            .collect();
        out.sort();
        out
    }

    /// Sorted names of all registered baselines.
    pub fn names(&self) -> Vec<String> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<String> = g.keys().cloned().collect();
        v.sort();
        v
    }
}
