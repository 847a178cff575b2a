//! Kernel of the aggregates whose state is the list of the window's finite values
//! (numeric drift statistics, `histogram`, `quantile`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{internal_err, Result};

use super::DriftKind;
use crate::args::numeric_column;
use crate::baseline::BaselineProfile;
use crate::group::{passes, Kernel};
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

/// Per-group state: the finite values and the feature (long form).
#[derive(Debug, Default)]
pub(crate) struct ListGroup {
    values: Vec<f64>,
    feature: Option<Arc<str>>,
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

/// `List<Float64>` with one list per group.
pub(crate) fn list_array(lists: impl Iterator<Item = Vec<f64>>) -> ListArray {
    let mut lens = Vec::new();
    let mut flat = Vec::new();
    for l in lists {
        lens.push(l.len());
        flat.extend(l);
    }
    ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        OffsetBuffer::from_lengths(lens),
        Arc::new(Float64Array::from(flat)),
        None,
    )
}

impl ListKernel {
    fn check(&self, f: &str) -> Result<()> {
        match &self.profile {
            Some(p) => numeric_column(p, f).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Sets the feature of groups that have none from a string column.
    pub(crate) fn take_features(
        &self,
        groups: &mut [ListGroup],
        col: &ArrayRef,
        idx: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<()> {
        let col = cast(col, &DataType::Utf8)?;
        let col = col.as_string::<i32>();
        let mut last: Option<Arc<str>> = None;
        for (i, &g) in idx.iter().enumerate() {
            if groups[g].feature.is_some() || !col.is_valid(i) || !passes(filter, i) {
                continue;
            }
            let s = col.value(i);
            let f = match &last {
                Some(l) if &**l == s => Arc::clone(l),
                _ => {
                    self.check(s)?;
                    let a: Arc<str> = Arc::from(s);
                    last = Some(Arc::clone(&a));
                    a
                }
            };
            groups[g].feature = Some(f);
        }
        Ok(())
    }

    fn eval_one(&self, g: &mut ListGroup) -> Result<Option<f64>> {
        g.values.sort_unstable_by(f64::total_cmp);
        if let ListStat::Quantile(q) = self.stat {
            return Ok((!g.values.is_empty()).then(|| quantile_sorted(&g.values, q)));
        }
        let (Some(p), Some(f)) = (
            &self.profile,
            g.feature.as_deref().or(self.feature.as_deref()),
        ) else {
            return Ok(None);
        };
        let col = numeric_column(p, f)?;
        match self.stat {
            ListStat::Drift(k) => Ok(k.compute(&g.values, col)),
            _ => Ok(None),
        }
    }

    fn histogram_one(&self, g: &ListGroup) -> Result<Option<Vec<i64>>> {
        let (Some(p), Some(f)) = (
            &self.profile,
            g.feature.as_deref().or(self.feature.as_deref()),
        ) else {
            return Ok(None);
        };
        let col = numeric_column(p, f)?;
        if col.bin_edges.len() < 2 {
            return Ok(None);
        }
        Ok(Some(
            binned::histogram(&col.bin_edges, &g.values)
                .into_iter()
                .map(|c| c as i64)
                .collect(),
        ))
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
        if arr.null_count() == 0 && filter.is_none() {
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
            self.take_features(groups, col, idx, filter)?;
        }
        Ok(added * 8)
    }

    fn merge(&self, groups: &mut [ListGroup], states: &[ArrayRef], idx: &[usize]) -> Result<usize> {
        if states.len() != 2 {
            return internal_err!("list state must have 2 columns, got {}", states.len());
        }
        let lists = states[0].as_list::<i32>();
        let inner = cast(lists.values(), &DataType::Float64)?;
        let inner = inner.as_primitive::<Float64Type>().values();
        let offsets = lists.value_offsets();
        let mut added = 0;
        for (i, &g) in idx.iter().enumerate() {
            if lists.is_valid(i) {
                let s = &inner[offsets[i] as usize..offsets[i + 1] as usize];
                groups[g].values.extend(s.iter().filter(|v| v.is_finite()));
                added += s.len();
            }
        }
        self.take_features(groups, &states[1], idx, None)?;
        Ok(added * 8)
    }

    fn state(&self, groups: &mut [ListGroup]) -> Result<Vec<ArrayRef>> {
        let lists = list_array(groups.iter().map(|g| g.values.clone()));
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
        g.values.capacity() * 8 + g.feature.as_ref().map_or(0, |f| f.len())
    }
}
