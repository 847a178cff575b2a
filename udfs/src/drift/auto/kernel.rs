//! Kernels of the automatic drift aggregates: one column ([`AutoNumKernel`] over the
//! window's sorted values, [`AutoCatKernel`] over category counts) and every feature of a
//! long-form window ([`ShareKernel`]). States are exact (values, counts), so partial states of
//! panes and partitions merge to the single-pass result.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Float64Builder, ListArray, ListBuilder,
    StringArray, StringBuilder, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Float64Type};
use datafusion::common::{internal_err, HashMap, Result};

use super::choice::{categorical_verdict, numeric_verdict, numeric_verdict_sketch, Verdict};
use crate::baseline::BaselineProfile;
use crate::drift::categorical::{counts_size, counts_state, merge_counts, update_counts, CatGroup};
use crate::drift::list::ListGroup;
use crate::drift::ListKernel;
use crate::group::{passes, Kernel};
use crate::math::sketch::{LogSketch, Mapping, PooledSketch};
use crate::mem::{arc_str_bytes, delta, map_bytes, vec_bytes};

/// What a per-column automatic drift aggregate returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Output {
    /// `drift_test`: struct {method, statistic, threshold, drifted}.
    Test,
    /// `drift_score`: the statistic.
    Score,
    /// `drift_detected`: the verdict.
    Detected,
}

/// Fields of `drift_test`'s struct.
pub(crate) fn test_fields() -> Fields {
    Fields::from(vec![
        Field::new("method", DataType::Utf8, true),
        Field::new("statistic", DataType::Float64, true),
        Field::new("threshold", DataType::Float64, true),
        Field::new("drifted", DataType::Boolean, true),
    ])
}

impl Output {
    /// SQL name of the aggregate.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Output::Test => "drift_test",
            Output::Score => "drift_score",
            Output::Detected => "drift_detected",
        }
    }

    /// Return type of the aggregate.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            Output::Test => DataType::Struct(test_fields()),
            Output::Score => DataType::Float64,
            Output::Detected => DataType::Boolean,
        }
    }

    /// One row per verdict (NULL for `None`).
    fn array(self, verdicts: &[Option<Verdict>]) -> ArrayRef {
        let scores: Float64Array = verdicts.iter().map(|v| v.map(|v| v.score)).collect();
        let drifted: BooleanArray = verdicts.iter().map(|v| v.map(|v| v.drifted)).collect();
        match self {
            Output::Score => Arc::new(scores),
            Output::Detected => Arc::new(drifted),
            Output::Test => {
                let methods: StringArray = verdicts
                    .iter()
                    .map(|v| v.map(|v| v.method.name()))
                    .collect();
                let thresholds: Float64Array = verdicts
                    .iter()
                    .map(|v| v.map(|v| v.method.threshold()))
                    .collect();
                let valid =
                    NullBuffer::from(verdicts.iter().map(Option::is_some).collect::<Vec<_>>());
                Arc::new(StructArray::new(
                    test_fields(),
                    vec![
                        Arc::new(methods),
                        Arc::new(scores),
                        Arc::new(thresholds),
                        Arc::new(drifted),
                    ],
                    Some(valid),
                ))
            }
        }
    }
}

/// Whether Evidently would type baseline column `feature` categorical: a string or boolean
/// column, or an integer column profiled as categorical too (at most
/// [`crate::MAX_INFERRED_CATEGORIES`] distinct values, or declared).
fn is_categorical(profile: &BaselineProfile, feature: &str) -> bool {
    profile.categorical(feature).is_some()
}

/// Numeric values: the window's sorted finite values ([`ListKernel`]'s state and update),
/// tested against the baseline column's sample.
#[derive(Debug)]
pub(crate) struct AutoNumKernel {
    pub output: Output,
    pub inner: ListKernel,
}

/// Evidently's verdict on the values of one [`ListKernel`] group (exact, or its sketch once
/// the window passed the baseline's `sketch_above`) against the group's baseline column.
fn list_verdict(inner: &ListKernel, g: &mut ListGroup) -> Result<Option<Verdict>> {
    let Some(col) = inner.column(g.feature.as_deref())? else {
        return Ok(None);
    };
    let feature = g.feature.as_deref().or(inner.feature.as_deref());
    let categorical = match (&inner.profile, feature) {
        (Some(p), Some(f)) => is_categorical(p, f),
        _ => false,
    };
    if g.sketch.is_none() {
        return Ok(numeric_verdict(
            g.values.sorted(),
            &col.sample,
            col.count as usize,
            col.std_pop,
            categorical,
        ));
    }
    inner.compact(g)?;
    let sketch = g.sketch.as_ref().expect("sketch mode");
    if col.sample.is_empty() {
        return Ok(None);
    }
    let map = Mapping::new(col.mean, col.std_pop);
    let pooled = PooledSketch::new(sketch, &map, &col.sample);
    Ok(numeric_verdict_sketch(
        &pooled,
        col.count as usize,
        col.std_pop,
        categorical,
    ))
}

impl AutoNumKernel {
    fn eval_one(&self, g: &mut ListGroup) -> Result<Option<Verdict>> {
        list_verdict(&self.inner, g)
    }
}

impl Kernel for AutoNumKernel {
    type Group = ListGroup;

    fn update(
        &self,
        groups: &mut [Self::Group],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        self.inner.update(groups, args, idx, filter)
    }
    fn merge(
        &self,
        groups: &mut [Self::Group],
        states: &[ArrayRef],
        idx: &[usize],
    ) -> Result<isize> {
        self.inner.merge(groups, states, idx)
    }
    fn state(&self, groups: &mut [Self::Group]) -> Result<Vec<ArrayRef>> {
        self.inner.state(groups)
    }
    fn evaluate(&self, groups: &mut [Self::Group]) -> Result<ArrayRef> {
        let v: Vec<Option<Verdict>> = groups
            .iter_mut()
            .map(|g| self.eval_one(g))
            .collect::<Result<_>>()?;
        Ok(self.output.array(&v))
    }
    fn group_size(&self, g: &Self::Group) -> usize {
        self.inner.group_size(g)
    }
}

/// String and boolean values (booleans as `true` / `false`, the baseline's text): category
/// counts tested against the baseline column's frequencies.
#[derive(Debug)]
pub(crate) struct AutoCatKernel {
    pub output: Output,
    pub profile: Arc<BaselineProfile>,
    pub feature: Option<String>,
    pub feature_arg: Option<usize>,
}

impl AutoCatKernel {
    fn eval_one(&self, g: &CatGroup) -> Result<Option<Verdict>> {
        let Some(f) = g.feature.as_deref().or(self.feature.as_deref()) else {
            return Ok(None);
        };
        let Some(col) = crate::args::row_categorical_column(&self.profile, f, 1) else {
            return Ok(None);
        };
        let mut keys: Vec<&str> = col.frequencies.keys().map(String::as_str).collect();
        keys.extend(
            g.counts
                .keys()
                .map(|k| &**k)
                .filter(|k| !col.frequencies.contains_key(*k)),
        );
        keys.sort_unstable();
        let counts: Vec<(u64, u64)> = keys
            .iter()
            .map(|k| {
                (
                    g.counts.get(*k).copied().unwrap_or(0),
                    col.frequencies.get(*k).copied().unwrap_or(0),
                )
            })
            .collect();
        let n_ref = counts.iter().map(|c| c.1).sum::<u64>() as usize;
        Ok(categorical_verdict(n_ref, &counts))
    }
}

impl Kernel for AutoCatKernel {
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
        let v: Vec<Option<Verdict>> = groups
            .iter()
            .map(|g| self.eval_one(g))
            .collect::<Result<_>>()?;
        Ok(self.output.array(&v))
    }

    fn group_size(&self, g: &CatGroup) -> usize {
        counts_size(g)
    }
}

/// What a dataset-level aggregate returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ShareOutput {
    /// `drift_share`: share of the window's features that drifted.
    Share,
    /// `drifted_features`: their names, sorted.
    Features,
    /// `dataset_drift`: share ≥ the drift share (default 0.5).
    Dataset,
}

impl ShareOutput {
    /// SQL name of the aggregate.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ShareOutput::Share => "drift_share",
            ShareOutput::Features => "drifted_features",
            ShareOutput::Dataset => "dataset_drift",
        }
    }

    /// Return type of the aggregate.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            ShareOutput::Share => DataType::Float64,
            ShareOutput::Features => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
            }
            ShareOutput::Dataset => DataType::Boolean,
        }
    }
}

/// Values buffered per feature in sketch mode before they are folded into the sketch.
const FOLD_CHUNK: usize = 1024;

/// Per-group state of [`ShareKernel`]: the finite values of every feature, each a
/// [`ListGroup`] (exact, or a sketch above the baseline's `sketch_above`) whose feature is
/// set, in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct ShareGroup {
    features: Vec<ListGroup>,
    /// Position of each feature in `features`.
    index: HashMap<Arc<str>, usize>,
    /// Position of the feature of the last row: long-form rows cycle through the features
    /// in the same order, so a row's feature is nearly always this one's successor (one
    /// string comparison instead of a map lookup).
    cursor: usize,
}

impl ShareGroup {
    /// Position of feature `f`, added when new; and the heap bytes added.
    #[inline]
    fn slot(&mut self, f: &str) -> (usize, usize) {
        let n = self.features.len();
        if n > 0 {
            let next = if self.cursor + 1 < n {
                self.cursor + 1
            } else {
                0
            };
            for c in [next, self.cursor] {
                if self.features[c].feature.as_deref() == Some(f) {
                    self.cursor = c;
                    return (c, 0);
                }
            }
            if let Some(&c) = self.index.get(f) {
                self.cursor = c;
                return (c, 0);
            }
        }
        let (vcap, mcap) = (self.features.capacity(), self.index.capacity());
        let name: Arc<str> = Arc::from(f);
        self.features.push(ListGroup {
            feature: Some(Arc::clone(&name)),
            ..Default::default()
        });
        self.index.insert(name, n);
        self.cursor = n;
        let added = arc_str_bytes(f.len())
            + vec_bytes::<ListGroup>(self.features.capacity())
            + map_bytes::<Arc<str>, usize>(self.index.capacity())
            - vec_bytes::<ListGroup>(vcap)
            - map_bytes::<Arc<str>, usize>(mcap);
        (n, added)
    }
}

/// Every feature of a long-form window (numeric values), each tested as
/// [`AutoNumKernel`] would; features the baseline has no numeric column for are left out
/// (counted in `system.missing_features`, one per window, and logged once).
#[derive(Debug)]
pub(crate) struct ShareKernel {
    pub output: ShareOutput,
    /// Feature fixed at planning time.
    pub feature: Option<String>,
    /// Argument index of the per-row feature column.
    pub feature_arg: Option<usize>,
    /// Share of drifted features from which `dataset_drift` is true.
    pub drift_share: f64,
    /// Keeps each feature's values (and its sketch mode) as the per-column aggregates do.
    pub lists: ListKernel,
}

impl ShareKernel {
    /// (feature, verdict) of every feature of `g` the baseline knows, in name order.
    fn verdicts(&self, g: &mut ShareGroup) -> Result<Vec<(Arc<str>, Verdict)>> {
        let mut out = Vec::with_capacity(g.features.len());
        for values in g.features.iter_mut() {
            // A feature the baseline lacks is left out of the share; counted (one per
            // window) and logged once, as every long-form miss.
            if let Some(v) = list_verdict(&self.lists, values)? {
                let f = values.feature.clone().expect("share features are named");
                out.push((f, v));
            }
        }
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Folds a feature's values into its sketch when due: once the window passes
    /// `sketch_above` values, then every [`FOLD_CHUNK`] values. Returns the change of heap
    /// bytes.
    #[inline]
    fn maybe_fold(&self, g: &mut ListGroup) -> Result<isize> {
        let due = if g.sketch.is_some() {
            g.values.tail_len() >= FOLD_CHUNK
        } else {
            g.values.len() > self.lists.sketch_above()
        };
        if due {
            self.lists.compact(g)
        } else {
            Ok(0)
        }
    }
}

impl Kernel for ShareKernel {
    type Group = ShareGroup;

    fn update(
        &self,
        groups: &mut [ShareGroup],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        let arr = cast(&args[0], &DataType::Float64)?;
        let arr = arr.as_primitive::<Float64Type>();
        let names = match self.feature_arg.and_then(|a| args.get(a)) {
            Some(c) => Some(cast(c, &DataType::Utf8)?),
            None => None,
        };
        let names = names.as_ref().map(|c| c.as_string::<i32>());
        let fixed = self.feature.as_deref();
        let mut added = 0isize;
        for (i, &g) in idx.iter().enumerate() {
            let v = arr.value(i);
            if !v.is_finite() || !arr.is_valid(i) || !passes(filter, i) {
                continue;
            }
            let f = match names {
                Some(n) if n.is_valid(i) => n.value(i),
                Some(_) => continue,
                None => match fixed {
                    Some(f) => f,
                    None => continue,
                },
            };
            let group = &mut groups[g];
            let (slot, bytes) = group.slot(f);
            let values = &mut group.features[slot];
            added += (bytes + values.values.push(v)) as isize;
            added += self.maybe_fold(values)?;
        }
        Ok(added)
    }

    fn merge(
        &self,
        groups: &mut [ShareGroup],
        states: &[ArrayRef],
        idx: &[usize],
    ) -> Result<isize> {
        if states.len() != 2 {
            return internal_err!(
                "drift_share state must have 2 columns, got {}",
                states.len()
            );
        }
        let names = states[0].as_list::<i32>();
        let values = states[1].as_list::<i32>();
        let mut added = 0isize;
        for (i, &g) in idx.iter().enumerate() {
            if !names.is_valid(i) || !values.is_valid(i) {
                continue;
            }
            let n = cast(&names.value(i), &DataType::Utf8)?;
            let n = n.as_string::<i32>();
            let v = values.value(i);
            let v = v.as_list::<i32>();
            for j in 0..n.len() {
                let inner = cast(&v.value(j), &DataType::Float64)?;
                let buf = inner.as_primitive::<Float64Type>().values().clone();
                let group = &mut groups[g];
                let (slot, bytes) = group.slot(n.value(j));
                let lg = &mut group.features[slot];
                added += bytes as isize;
                if LogSketch::is_encoded(&buf) {
                    let sketch = lg.sketch.get_or_insert_with(LogSketch::default);
                    let before = sketch.heap_bytes();
                    if let Err(e) = sketch.merge_encoded(&buf) {
                        return internal_err!("drift_share state: {e}");
                    }
                    added += delta(before, sketch.heap_bytes());
                } else {
                    added += lg.values.extend_finite(buf) as isize;
                }
                added += self.lists.compact(lg)?;
            }
        }
        Ok(added)
    }

    fn state(&self, groups: &mut [ShareGroup]) -> Result<Vec<ArrayRef>> {
        let mut nb = ListBuilder::new(StringBuilder::new());
        let mut vb = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
        for g in groups.iter_mut() {
            for lg in g.features.iter_mut() {
                self.lists.compact(lg)?;
                nb.values()
                    .append_value(lg.feature.as_deref().expect("share features are named"));
                match &lg.sketch {
                    Some(sk) => vb.values().values().append_slice(&sk.encode()),
                    None => vb.values().values().append_slice(lg.values.sorted()),
                }
                vb.values().append(true);
            }
            nb.append(true);
            vb.append(true);
        }
        Ok(vec![Arc::new(nb.finish()), Arc::new(vb.finish())])
    }

    fn evaluate(&self, groups: &mut [ShareGroup]) -> Result<ArrayRef> {
        let all: Vec<Vec<(Arc<str>, Verdict)>> = groups
            .iter_mut()
            .map(|g| self.verdicts(g))
            .collect::<Result<_>>()?;
        let share = |v: &Vec<(Arc<str>, Verdict)>| {
            (!v.is_empty())
                .then(|| v.iter().filter(|(_, v)| v.drifted).count() as f64 / v.len() as f64)
        };
        Ok(match self.output {
            ShareOutput::Share => Arc::new(all.iter().map(share).collect::<Float64Array>()),
            ShareOutput::Dataset => Arc::new(
                all.iter()
                    .map(|v| share(v).map(|s| s >= self.drift_share))
                    .collect::<BooleanArray>(),
            ),
            ShareOutput::Features => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for v in &all {
                    if v.is_empty() {
                        b.append(false);
                        continue;
                    }
                    for (f, verdict) in v {
                        if verdict.drifted {
                            b.values().append_value(f);
                        }
                    }
                    b.append(true);
                }
                let list: ListArray = b.finish();
                Arc::new(list)
            }
        })
    }

    fn group_size(&self, g: &ShareGroup) -> usize {
        g.features
            .iter()
            .map(|lg| self.lists.group_size(lg))
            .sum::<usize>()
            + vec_bytes::<ListGroup>(g.features.capacity())
            + map_bytes::<Arc<str>, usize>(g.index.capacity())
    }
}
