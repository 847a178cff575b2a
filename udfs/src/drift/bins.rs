//! Kernel of the binned statistics on numbers (`psi`, `js_distance`, `kl_div`, `hellinger`,
//! `tvd`, `l_inf`, `chi2_*`, `chi2_gof_*`) and of `histogram`: the baseline fixes the bins, so
//! the state is one count per bin (O(bins), whatever the window size) plus the feature.
//!
//! * A finite value is counted in its baseline bin at once (see [`binned::bin_index`]: values
//!   beyond the baseline's range count in the first / last bin). Merging adds counts, which is
//!   exact: the result equals the single-pass one, and the one computed from all the values.
//! * Long form (a feature column): a row counts in the bins of its group's feature (the first
//!   non-NULL feature seen, as for every drift aggregate); rows whose feature is NULL are
//!   ignored, as they name no baseline column.
//! * State: `[counts: List<UInt64>, feature: Utf8]` (an empty list for a group without
//!   values). A partial state holding `List<Float64>` values — the layout of releases that
//!   kept the values, e.g. in an old checkpoint — is converted on merge by binning the values;
//!   a count list whose length differs from the baseline column's bins (the baseline was
//!   re-created with other bins) is an error naming both sizes.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
    UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, UInt64Type};
use datafusion::common::{exec_err, internal_err, Result};

use super::udaf::BaselineArgs;
use super::{take_features, DriftKind, FeatureSlot};
use crate::args::numeric_column;
use crate::baseline::{BaselineProfile, NumericProfile};
use crate::group::{passes, Kernel};
use crate::math::binned;

/// What a [`BinsKernel`] computes from the counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BinsOutput {
    /// A binned drift statistic (`Float64`).
    Drift(DriftKind),
    /// The counts themselves (`histogram`, `List<Int64>`).
    Histogram,
}

/// Per-group state: counts per baseline bin (empty until the first value) and the feature.
#[derive(Debug, Default)]
pub(crate) struct BinsGroup {
    counts: Vec<u64>,
    feature: Option<Arc<str>>,
}

impl FeatureSlot for BinsGroup {
    fn feature_slot(&mut self) -> &mut Option<Arc<str>> {
        &mut self.feature
    }
}

impl BinsGroup {
    /// The count vector for `bins` bins (allocated on first use); bytes allocated.
    fn counts_for(&mut self, bins: usize) -> (&mut [u64], usize) {
        let added = if self.counts.is_empty() {
            self.counts = vec![0; bins];
            bins * 8
        } else {
            0
        };
        (&mut self.counts, added)
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct BinsKernel {
    pub out: BinsOutput,
    pub profile: Arc<BaselineProfile>,
    /// Feature fixed at planning time.
    pub feature: Option<String>,
    /// Argument index of a per-row feature column.
    pub feature_arg: Option<usize>,
}

/// Bin edges of a baseline column that has bins (≥ 2 edges).
fn edges_of(col: &NumericProfile) -> Option<&[f64]> {
    (col.bin_edges.len() >= 2).then_some(&col.bin_edges[..])
}

impl BinsKernel {
    /// A kernel computing `out` against the resolved baseline arguments `a`; a feature fixed
    /// at planning time must name a numeric column of the baseline.
    pub(crate) fn against(out: BinsOutput, a: BaselineArgs) -> Result<Self> {
        if let Some(f) = &a.feature {
            numeric_column(&a.profile, f)?;
        }
        Ok(Self {
            out,
            profile: a.profile,
            feature: a.feature,
            feature_arg: a.feature_arg,
        })
    }

    /// The bin edges for a group with `feature` (`None`: no feature yet, a column unknown to
    /// the baseline, or a column without finite baseline values).
    fn edges(&self, feature: Option<&str>) -> Option<&[f64]> {
        let f = feature.or(self.feature.as_deref())?;
        self.profile.numeric(f).and_then(edges_of)
    }

    /// The baseline column of a group (`None` for a feature the baseline lacks: counted).
    fn column(&self, feature: Option<&str>) -> Result<Option<&NumericProfile>> {
        match feature.or(self.feature.as_deref()) {
            Some(f) => Ok(crate::args::row_numeric_column(&self.profile, f, 1)),
            None => Ok(None),
        }
    }

    /// Adds the finite `values[i]` of the rows in `rows` to their groups' bins.
    fn add(
        &self,
        groups: &mut [BinsGroup],
        values: &[f64],
        idx: &[usize],
        keep: impl Fn(usize) -> bool,
    ) -> usize {
        let mut added = 0;
        if self.feature_arg.is_none() {
            // One baseline column for every group: look its edges up once.
            let Some(edges) = self.edges(None) else {
                return 0;
            };
            let nb = edges.len() - 1;
            for (i, (&v, &g)) in values.iter().zip(idx).enumerate() {
                if v.is_finite() && keep(i) {
                    let (counts, a) = groups[g].counts_for(nb);
                    counts[binned::bin_index(edges, v)] += 1;
                    added += a;
                }
            }
            return added;
        }
        // Long form: the edges of the last feature seen, looked up again when it changes.
        let mut cached: Option<(Arc<str>, Option<&[f64]>)> = None;
        for (i, (&v, &g)) in values.iter().zip(idx).enumerate() {
            if !v.is_finite() || !keep(i) {
                continue;
            }
            let Some(f) = groups[g].feature.clone() else {
                continue;
            };
            let edges = match &cached {
                Some((c, e)) if Arc::ptr_eq(c, &f) || **c == *f => *e,
                _ => {
                    let e = self.edges(Some(&f));
                    cached = Some((f, e));
                    e
                }
            };
            if let Some(edges) = edges {
                let (counts, a) = groups[g].counts_for(edges.len() - 1);
                counts[binned::bin_index(edges, v)] += 1;
                added += a;
            }
        }
        added
    }

    fn histogram_one(&self, g: &BinsGroup) -> Result<Option<Vec<i64>>> {
        let Some(col) = self.column(g.feature.as_deref())? else {
            return Ok(None);
        };
        let Some(edges) = edges_of(col) else {
            return Ok(None);
        };
        if g.counts.is_empty() {
            return Ok(Some(vec![0; edges.len() - 1]));
        }
        Ok(Some(g.counts.iter().map(|&c| c as i64).collect()))
    }

    fn eval_one(&self, kind: DriftKind, g: &BinsGroup) -> Result<Option<f64>> {
        let Some(col) = self.column(g.feature.as_deref())? else {
            return Ok(None);
        };
        if g.counts.is_empty() || edges_of(col).is_none() {
            return Ok(None);
        }
        Ok(kind.compute_counts(&g.counts, &col.bin_counts))
    }
}

impl Kernel for BinsKernel {
    type Group = BinsGroup;

    fn update(
        &self,
        groups: &mut [BinsGroup],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<isize> {
        // Features first: a row is binned on its group's feature.
        let features = self.feature_arg.and_then(|a| args.get(a));
        let mut added = 0;
        if let Some(col) = features {
            added += take_features(groups, col, idx, filter)?;
        }
        let arr = cast(&args[0], &DataType::Float64)?;
        let arr = arr.as_primitive::<Float64Type>();
        let vals = arr.values();
        added += match features {
            Some(fc) => self.add(groups, vals, idx, |i| {
                arr.is_valid(i) && fc.is_valid(i) && passes(filter, i)
            }),
            None if arr.null_count() == 0 && filter.is_none() => {
                self.add(groups, vals, idx, |_| true)
            }
            None => self.add(groups, vals, idx, |i| arr.is_valid(i) && passes(filter, i)),
        };
        Ok(added as isize)
    }

    fn merge(&self, groups: &mut [BinsGroup], states: &[ArrayRef], idx: &[usize]) -> Result<isize> {
        if states.len() != 2 {
            return internal_err!("binned state must have 2 columns, got {}", states.len());
        }
        let mut added = take_features(groups, &states[1], idx, None)?;
        let lists = states[0].as_list::<i32>();
        let offsets = lists.value_offsets();
        match lists.values().data_type() {
            DataType::UInt64 => {
                let inner = lists.values().as_primitive::<UInt64Type>().values();
                for (i, &g) in idx.iter().enumerate() {
                    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                    if !lists.is_valid(i) || start == end {
                        continue;
                    }
                    let group = &mut groups[g];
                    let Some(edges) = self.edges(group.feature.as_deref()) else {
                        return exec_err!(
                            "binned state of {} counts for a group whose baseline column \
                             ({}) has no bins",
                            end - start,
                            group
                                .feature
                                .as_deref()
                                .or(self.feature.as_deref())
                                .unwrap_or("none")
                        );
                    };
                    let nb = edges.len() - 1;
                    if end - start != nb {
                        return exec_err!(
                            "binned state has {} counts but baseline '{}' column '{}' has {nb} \
                             bins (was the baseline re-created with other bins since this \
                             state was written?)",
                            end - start,
                            self.profile.name,
                            group
                                .feature
                                .as_deref()
                                .or(self.feature.as_deref())
                                .unwrap_or("")
                        );
                    }
                    let (counts, a) = group.counts_for(nb);
                    added += a;
                    for (c, n) in counts.iter_mut().zip(&inner[start..end]) {
                        *c += n;
                    }
                }
            }
            // Values (the layout that kept every value): bin them.
            DataType::Float64 | DataType::Float32 | DataType::Int64 => {
                let inner = cast(lists.values(), &DataType::Float64)?;
                let inner = inner.as_primitive::<Float64Type>().values();
                for (i, &g) in idx.iter().enumerate() {
                    if !lists.is_valid(i) {
                        continue;
                    }
                    let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                    let rows = vec![g; end - start];
                    added += self.add(groups, &inner[start..end], &rows, |_| true);
                }
            }
            other => {
                return internal_err!("binned state: unexpected count type {other}");
            }
        }
        Ok(added as isize)
    }

    fn state(&self, groups: &mut [BinsGroup]) -> Result<Vec<ArrayRef>> {
        let lens = groups.iter().map(|g| g.counts.len());
        let offsets = OffsetBuffer::from_lengths(lens);
        let flat: UInt64Array = groups
            .iter()
            .flat_map(|g| g.counts.iter().copied())
            .collect::<Vec<u64>>()
            .into();
        let lists = ListArray::new(
            Arc::new(Field::new_list_field(DataType::UInt64, true)),
            offsets,
            Arc::new(flat),
            None,
        );
        let features: StringArray = groups
            .iter()
            .map(|g| g.feature.as_deref().or(self.feature.as_deref()))
            .collect();
        Ok(vec![Arc::new(lists), Arc::new(features)])
    }

    fn evaluate(&self, groups: &mut [BinsGroup]) -> Result<ArrayRef> {
        match self.out {
            BinsOutput::Drift(kind) => {
                let out: Float64Array = groups
                    .iter()
                    .map(|g| self.eval_one(kind, g))
                    .collect::<Result<_>>()?;
                Ok(Arc::new(out))
            }
            BinsOutput::Histogram => {
                let mut lens = Vec::with_capacity(groups.len());
                let mut flat = Vec::new();
                let mut valid = Vec::with_capacity(groups.len());
                for g in groups.iter() {
                    let h = self.histogram_one(g)?;
                    valid.push(h.is_some());
                    let h = h.unwrap_or_default();
                    lens.push(h.len());
                    flat.extend(h);
                }
                Ok(Arc::new(ListArray::new(
                    Arc::new(Field::new_list_field(DataType::Int64, true)),
                    OffsetBuffer::from_lengths(lens),
                    Arc::new(Int64Array::from(flat)),
                    Some(valid.into()),
                )))
            }
        }
    }

    fn group_size(&self, g: &BinsGroup) -> usize {
        g.counts.capacity() * 8 + crate::mem::opt_arc_str_bytes(&g.feature)
    }
}

#[cfg(test)]
mod tests;
