//! Kernel of the aggregates whose state is the list of the window's finite values
//! (numeric drift statistics, `histogram`, `quantile`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{internal_err, Result};

use super::udaf::BaselineArgs;
use super::{take_features, DriftKind, FeatureSlot};
use crate::args::numeric_column;
use crate::baseline::{BaselineProfile, NumericProfile};
use crate::group::{passes, Kernel};
use crate::math::sorted::SortedRuns;
use crate::math::{binned, describe::quantile_sorted};

/// What a [`ListKernel`] computes from the sorted values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ListStat {
    /// A numeric drift statistic.
    Drift(DriftKind),
    /// Counts over the baseline's bins (`List<Int64>`).
    Histogram,
    /// `np.quantile(values, q)` (linear).
    Quantile(f64),
}

/// Per-group state: the finite values (sorted runs from merged partial states plus the
/// rows added since; see [`SortedRuns`]) and the feature (long form).
#[derive(Debug, Default)]
pub(crate) struct ListGroup {
    pub(crate) values: SortedRuns,
    pub(crate) feature: Option<Arc<str>>,
}

/// See the module docs. `profile` is `None` only for [`ListStat::Quantile`].
#[derive(Debug)]
pub(crate) struct ListKernel {
    pub stat: ListStat,
    pub profile: Option<Arc<BaselineProfile>>,
    /// Feature fixed at planning time.
    pub feature: Option<String>,
    /// Argument index of a per-row feature column.
    pub feature_arg: Option<usize>,
}

/// `List<Float64>` with one list per group; a single group's buffer is shared, not copied.
pub(crate) fn list_array(lists: Vec<ScalarBuffer<f64>>) -> ListArray {
    let lens = lists.iter().map(|l| l.len());
    let offsets = OffsetBuffer::from_lengths(lens);
    let values: ScalarBuffer<f64> = match <[_; 1]>::try_from(lists) {
        Ok([only]) => only,
        Err(lists) => lists.iter().flat_map(|l| l.iter().copied()).collect(),
    };
    ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        offsets,
        Arc::new(Float64Array::new(values, None)),
        None,
    )
}

impl ListKernel {
    /// A kernel computing `stat` against the resolved baseline arguments `a`; a feature
    /// fixed at planning time must name a numeric column of the baseline.
    pub(crate) fn against(stat: ListStat, a: BaselineArgs) -> Result<Self> {
        if let Some(f) = &a.feature {
            numeric_column(&a.profile, f)?;
        }
        Ok(Self {
            stat,
            profile: Some(a.profile),
            feature: a.feature,
            feature_arg: a.feature_arg,
        })
    }

    fn check(&self, f: &str) -> Result<()> {
        match &self.profile {
            Some(p) => numeric_column(p, f).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The baseline column a group with `feature` compares against (`None` without a
    /// profile or a feature).
    pub(crate) fn column(&self, feature: Option<&str>) -> Result<Option<&NumericProfile>> {
        let (Some(p), Some(f)) = (&self.profile, feature.or(self.feature.as_deref())) else {
            return Ok(None);
        };
        numeric_column(p, f).map(Some)
    }

    fn eval_one(&self, g: &mut ListGroup) -> Result<Option<f64>> {
        match self.stat {
            ListStat::Quantile(q) => {
                let sorted = g.values.sorted();
                Ok((!sorted.is_empty()).then(|| quantile_sorted(sorted, q)))
            }
            ListStat::Drift(k) => {
                let Some(col) = self.column(g.feature.as_deref())? else {
                    return Ok(None);
                };
                Ok(k.compute(g.values.sorted(), col))
            }
            ListStat::Histogram => Ok(None),
        }
    }

    fn histogram_one(&self, g: &ListGroup) -> Result<Option<Vec<i64>>> {
        let Some(col) = self.column(g.feature.as_deref())? else {
            return Ok(None);
        };
        if col.bin_edges.len() < 2 {
            return Ok(None);
        }
        let mut counts = vec![0i64; col.bin_edges.len() - 1];
        for part in g.values.parts() {
            for (c, n) in counts
                .iter_mut()
                .zip(binned::histogram(&col.bin_edges, part))
            {
                *c += n as i64;
            }
        }
        Ok(Some(counts))
    }
}

impl Kernel for ListKernel {
    type Group = ListGroup;

    fn update(
        &self,
        groups: &mut [ListGroup],
        args: &[ArrayRef],
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<usize> {
        let arr = cast(&args[0], &DataType::Float64)?;
        let arr = arr.as_primitive::<Float64Type>();
        let vals = arr.values();
        let mut added = 0;
        if let ([group], true) = (&mut *groups, arr.null_count() == 0 && filter.is_none()) {
            let before = group.values.len();
            group.values.extend_finite_unsorted(vals);
            added = group.values.len() - before;
        } else if arr.null_count() == 0 && filter.is_none() {
            for (v, &g) in vals.iter().zip(idx) {
                if v.is_finite() {
                    groups[g].values.push(*v);
                    added += 1;
                }
            }
        } else {
            for (i, &g) in idx.iter().enumerate() {
                let v = vals[i];
                if v.is_finite() && arr.is_valid(i) && passes(filter, i) {
                    groups[g].values.push(v);
                    added += 1;
                }
            }
        }
        if let Some(col) = self.feature_arg.and_then(|a| args.get(a)) {
            take_features(groups, col, idx, filter, |f| self.check(f))?;
        }
        Ok(added * 8)
    }

    fn merge(&self, groups: &mut [ListGroup], states: &[ArrayRef], idx: &[usize]) -> Result<usize> {
        if states.len() != 2 {
            return internal_err!("list state must have 2 columns, got {}", states.len());
        }
        let lists = states[0].as_list::<i32>();
        let inner = cast(lists.values(), &DataType::Float64)?;
        let inner = inner.as_primitive::<Float64Type>().values().clone();
        let offsets = lists.value_offsets();
        let mut added = 0;
        for (i, &g) in idx.iter().enumerate() {
            if lists.is_valid(i) {
                let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
                let s = inner.slice(start, end - start);
                added += s.len();
                groups[g].values.extend_finite(s);
            }
        }
        take_features(groups, &states[1], idx, None, |f| self.check(f))?;
        Ok(added * 8)
    }

    fn state(&self, groups: &mut [ListGroup]) -> Result<Vec<ArrayRef>> {
        // Sorted here, so partial states (partitions, panes) sort in parallel and merge as runs.
        // (sorted buffers are shared with the state array, not copied).
        let lists = list_array(
            groups
                .iter_mut()
                .map(|g| g.values.sorted_buffer())
                .collect(),
        );
        let features: StringArray = groups
            .iter()
            .map(|g| g.feature.as_deref().or(self.feature.as_deref()))
            .collect();
        Ok(vec![Arc::new(lists), Arc::new(features)])
    }

    fn evaluate(&self, groups: &mut [ListGroup]) -> Result<ArrayRef> {
        if self.stat == ListStat::Histogram {
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
            return Ok(Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(DataType::Int64, true)),
                OffsetBuffer::from_lengths(lens),
                Arc::new(Int64Array::from(flat)),
                Some(valid.into()),
            )));
        }
        let out: Float64Array = groups
            .iter_mut()
            .map(|g| self.eval_one(g))
            .collect::<Result<_>>()?;
        Ok(Arc::new(out))
    }

    fn group_size(&self, g: &ListGroup) -> usize {
        g.values.heap_bytes() + g.feature.as_ref().map_or(0, |f| f.len())
    }
}

impl FeatureSlot for ListGroup {
    fn feature_slot(&mut self) -> &mut Option<Arc<str>> {
        &mut self.feature
    }
}
