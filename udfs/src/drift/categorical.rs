//! Kernel of the binned drift statistics on string values: per-group category counts
//! compared with the baseline column's categorical frequencies.
//!
//! Category order is the baseline's (sorted) followed by the categories unseen in the
//! baseline (sorted, reference count 0), so results do not depend on arrival or merge order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListBuilder, StringArray, StringBuilder,
    UInt64Builder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, UInt64Type};
use datafusion::common::{internal_err, Result};

use super::{take_features, DriftKind, FeatureSlot};
use crate::baseline::BaselineProfile;
use crate::group::{passes, Kernel};
use crate::mem::{map_bytes, opt_arc_str_bytes};

/// Per-group state: count per category and the feature (long form).
#[derive(Debug, Default)]
pub(crate) struct CatGroup {
    pub(crate) counts: HashMap<Box<str>, u64>,
    pub(crate) feature: Option<Arc<str>>,
}

impl CatGroup {
    /// Adds `c` to the count of `s`; returns the heap bytes added (the key's text and the
    /// table's growth when `s` is new, else 0).
    fn add(&mut self, s: &str, c: u64) -> usize {
        match self.counts.get_mut(s) {
            Some(v) => {
                *v += c;
                0
            }
            None => {
                let cap = self.counts.capacity();
                self.counts.insert(s.into(), c);
                s.len() + map_bytes::<Box<str>, u64>(self.counts.capacity())
                    - map_bytes::<Box<str>, u64>(cap)
            }
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct CatKernel {
    pub kind: DriftKind,
    pub profile: Arc<BaselineProfile>,
    pub feature: Option<String>,
    pub feature_arg: Option<usize>,
}

impl CatKernel {
    fn eval_one(&self, g: &CatGroup) -> Result<Option<f64>> {
        let Some(f) = g.feature.as_deref().or(self.feature.as_deref()) else {
            return Ok(None);
        };
        let Some(col) = crate::args::row_categorical_column(&self.profile, f, 1) else {
            return Ok(None);
        };
        let (mut cur, mut reference) = (Vec::new(), Vec::new());
        for (cat, r) in &col.frequencies {
            cur.push(g.counts.get(cat.as_str()).copied().unwrap_or(0));
            reference.push(*r);
        }
        let mut unseen: Vec<(&str, u64)> = g
            .counts
            .iter()
            .filter(|(k, _)| !col.frequencies.contains_key(&***k))
            .map(|(k, v)| (&**k, *v))
            .collect();
        unseen.sort_unstable();
        for (_, c) in unseen {
            cur.push(c);
            reference.push(0);
        }
        Ok(self.kind.compute_counts(&cur, &reference))
    }
}

impl Kernel for CatKernel {
    type Group = CatGroup;

    fn update(
        &self,
        groups: &mut [CatGroup],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        Ok(update_counts(groups, args, idx, filter, self.feature_arg)? as isize)
    }

    fn merge(&self, groups: &mut [CatGroup], states: &[ArrayRef], idx: &[usize]) -> Result<isize> {
        Ok(merge_counts(groups, states, idx)? as isize)
    }

    fn state(&self, groups: &mut [CatGroup]) -> Result<Vec<ArrayRef>> {
        Ok(counts_state(groups, self.feature.as_deref()))
    }

    fn evaluate(&self, groups: &mut [CatGroup]) -> Result<ArrayRef> {
        let out: Float64Array = groups
            .iter()
            .map(|g| self.eval_one(g))
            .collect::<Result<_>>()?;
        Ok(Arc::new(out))
    }

    fn group_size(&self, g: &CatGroup) -> usize {
        counts_size(g)
    }
}

/// Adds the string values of `args[0]` (cast to text) to their groups' category counts, and
/// takes the long form's feature from `args[feature_arg]`. Returns the bytes added.
pub(crate) fn update_counts(
    groups: &mut [CatGroup],
    args: &[ArrayRef],
    idx: &[usize],
    filter: Option<&BooleanArray>,
    feature_arg: Option<usize>,
) -> Result<usize> {
    let arr = cast(&args[0], &DataType::Utf8)?;
    let arr = arr.as_string::<i32>();
    let mut added = 0;
    for (i, &g) in idx.iter().enumerate() {
        if arr.is_valid(i) && passes(filter, i) {
            added += groups[g].add(arr.value(i), 1);
        }
    }
    if let Some(col) = feature_arg.and_then(|a| args.get(a)) {
        added += take_features(groups, col, idx, filter)?;
    }
    Ok(added)
}

/// Merges partial states `[List<Utf8> categories, List<UInt64> counts, Utf8 feature]` (see
/// [`counts_state`]) into their groups. Returns the bytes added.
pub(crate) fn merge_counts(
    groups: &mut [CatGroup],
    states: &[ArrayRef],
    idx: &[usize],
) -> Result<usize> {
    if states.len() != 3 {
        return internal_err!(
            "categorical state must have 3 columns, got {}",
            states.len()
        );
    }
    let keys = states[0].as_list::<i32>();
    let counts = states[1].as_list::<i32>();
    let mut added = 0;
    for (i, &g) in idx.iter().enumerate() {
        if !keys.is_valid(i) || !counts.is_valid(i) {
            continue;
        }
        let k = cast(&keys.value(i), &DataType::Utf8)?;
        let k = k.as_string::<i32>();
        let c = counts.value(i);
        let c = c.as_primitive::<UInt64Type>();
        for j in 0..k.len() {
            added += groups[g].add(k.value(j), c.value(j));
        }
    }
    added += take_features(groups, &states[2], idx, None)?;
    Ok(added)
}

/// The partial state of category-count groups: categories, counts and the feature (the
/// group's, else `fixed`, the one given at planning time).
pub(crate) fn counts_state(groups: &[CatGroup], fixed: Option<&str>) -> Vec<ArrayRef> {
    let mut kb = ListBuilder::new(StringBuilder::new());
    let mut cb = ListBuilder::new(UInt64Builder::new());
    for g in groups {
        for (k, c) in &g.counts {
            kb.values().append_value(k);
            cb.values().append_value(*c);
        }
        kb.append(true);
        cb.append(true);
    }
    let features: StringArray = groups
        .iter()
        .map(|g| g.feature.as_deref().or(fixed))
        .collect();
    vec![
        Arc::new(kb.finish()),
        Arc::new(cb.finish()),
        Arc::new(features),
    ]
}

/// Heap bytes of a category-count group (O(categories): only for re-measuring, see
/// [`crate::group::GroupedKernel::heap_size`]).
pub(crate) fn counts_size(g: &CatGroup) -> usize {
    map_bytes::<Box<str>, u64>(g.counts.capacity())
        + g.counts.keys().map(|k| k.len()).sum::<usize>()
        + opt_arc_str_bytes(&g.feature)
}

impl FeatureSlot for CatGroup {
    fn feature_slot(&mut self) -> &mut Option<Arc<str>> {
        &mut self.feature
    }
}
