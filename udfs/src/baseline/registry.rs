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
