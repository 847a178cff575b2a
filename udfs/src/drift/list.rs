//! Kernel of the aggregates whose state is the list of the window's finite values
//! (numeric drift statistics, `histogram`, `quantile`).
//!
//! **Bounded state.** A group of a sorted drift statistic (W1, KS, energy, CvM, Anderson)
//! whose window exceeds the baseline's `sketch_above` finite values
//! ([`DEFAULT_SKETCH_ABOVE`] = 2²⁰ by default) converts its values into a [`LogSketch`] on the
//! baseline column's mapping and from then on keeps only the sketch (see
//! [`crate::math::sketch`]); smaller windows stay exact, bit for bit as before. The state
//! list then holds the encoded sketch (`[NaN, key, count, …]`, see [`LogSketch::encode`]);
//! merging an exact partial state with a sketch gives a sketch. `quantile` does the same
//! above [`DEFAULT_SKETCH_ABOVE`] values with the baseline-free [`Mapping::unanchored`].
//!
//! **Memory.** Exact: 8 bytes per value (the tail by capacity, so up to twice that while it
//! grows). Sketch: 24 bytes per key spanned (see [`crate::math::sketch`]) plus the values of
//! the current batch, folded in after every batch. Each update reports the change of heap
//! bytes as it happens (folding into the sketch gives the values' bytes back).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, StringArray};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{internal_err, Result};

use super::udaf::BaselineArgs;
use super::{compute_many, take_features, DriftKind, FeatureSlot};
use crate::args::numeric_column;
use crate::baseline::{BaselineProfile, NumericProfile};
use crate::group::{passes, Kernel};
use crate::math::describe::quantile_sorted;
use crate::math::sketch::{LogSketch, Mapping, PooledSketch, DEFAULT_SKETCH_ABOVE};
use crate::math::sorted::SortedRuns;
use crate::mem::{delta, opt_arc_str_bytes};

/// What a [`ListKernel`] computes from the sorted values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ListStat {
    /// A numeric drift statistic.
    Drift(DriftKind),
    /// `np.quantile(values, q)` (linear).
    Quantile(f64),
}

/// Per-group state: the finite values (sorted runs from merged partial states plus the
/// rows added since; see [`SortedRuns`]), the sketch once the window is too large to keep
/// exactly (see the module docs; the values are then folded into it after every batch) and
/// the feature (long form).
#[derive(Debug, Default)]
pub(crate) struct ListGroup {
    pub(crate) values: SortedRuns,
    pub(crate) sketch: Option<LogSketch>,
    pub(crate) feature: Option<Arc<str>>,
}

impl ListGroup {
    /// Number of finite values (exact or sketched).
    pub(crate) fn len(&self) -> usize {
        self.values.len() + self.sketch.as_ref().map_or(0, |s| s.n() as usize)
    }
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

    /// Window size above which a group of a sorted drift statistic keeps a sketch instead of
    /// its values: the baseline's `sketch_above` option ([`DEFAULT_SKETCH_ABOVE`] without a
    /// baseline).
    pub(crate) fn sketch_above(&self) -> usize {
        self.profile
            .as_ref()
            .map_or(DEFAULT_SKETCH_ABOVE, |p| p.options.sketch_above)
    }

    /// Whether groups may switch to the sketch (the sorted, non-binned drift statistics and
    /// `quantile`).
    fn sketchable(&self) -> bool {
        match self.stat {
            ListStat::Drift(k) => !k.is_binned(),
            ListStat::Quantile(_) => true,
        }
    }

    /// The sketch mapping of a group with `feature`: the baseline column's (`None` without
    /// one: such a group stays exact and evaluates to NULL anyway), or the unanchored one for
    /// `quantile`.
    fn mapping(&self, feature: Option<&str>) -> Option<Mapping> {
        if let ListStat::Quantile(_) = self.stat {
            return Some(Mapping::unanchored());
        }
        let f = feature.or(self.feature.as_deref());
        let col = self
            .profile
            .as_ref()
            .zip(f)
            .and_then(|(p, f)| p.numeric(f))?;
        Some(Mapping::new(col.mean, col.std_pop))
    }

    /// Folds a group's values into its sketch when it has one or its window exceeds
    /// [`Self::sketch_above`]; returns the change of heap bytes (the sketch's growth minus
    /// the values given back).
    pub(crate) fn compact(&self, g: &mut ListGroup) -> Result<isize> {
        let over = g.sketch.is_some() || g.values.len() > self.sketch_above();
        if !self.sketchable() || !over || g.values.is_empty() {
            return Ok(0);
        }
        let Some(map) = self.mapping(g.feature.as_deref()) else {
            return Ok(0);
        };
        let sketch = g.sketch.get_or_insert_with(LogSketch::default);
        let before = sketch.heap_bytes() + g.values.heap_bytes();
        for part in g.values.parts() {
            sketch.add_values(&map, part);
        }
        g.values = SortedRuns::default();
        Ok(delta(before, sketch.heap_bytes()))
    }

    /// Compacts the groups of `idx` (see [`Self::compact`]).
    fn compact_all(&self, groups: &mut [ListGroup], idx: &[usize]) -> Result<isize> {
        if !self.sketchable() {
            return Ok(0);
        }
        let mut bytes = 0;
        let mut last = usize::MAX;
        for &g in idx {
            if g != last {
                bytes += self.compact(&mut groups[g])?;
                last = g;
            }
        }
        Ok(bytes)
    }

    /// The drift statistics `kinds` of group `g` (exact, or from its sketch).
    pub(crate) fn compute_group(
        &self,
        kinds: &[DriftKind],
        g: &mut ListGroup,
    ) -> Result<Vec<Option<f64>>> {
        let Some(col) = self.column(g.feature.as_deref())? else {
            return Ok(vec![None; kinds.len()]);
        };
        if g.sketch.is_none() {
            return Ok(compute_many(kinds, g.values.sorted(), col));
        }
        self.compact(g)?;
        let sketch = g.sketch.as_ref().expect("sketch mode");
        Ok(compute_many_sketch(kinds, sketch, col))
    }

    /// The baseline column a group with `feature` compares against (`None` without a
    /// profile or a feature, or for a feature the baseline lacks: counted as a NULL result).
    pub(crate) fn column(&self, feature: Option<&str>) -> Result<Option<&NumericProfile>> {
        let (Some(p), Some(f)) = (&self.profile, feature.or(self.feature.as_deref())) else {
            return Ok(None);
        };
        Ok(crate::args::row_numeric_column(p, f, 1))
    }

    fn eval_one(&self, g: &mut ListGroup) -> Result<Option<f64>> {
        match self.stat {
            ListStat::Quantile(q) if g.sketch.is_some() => {
                self.compact(g)?;
                let sketch = g.sketch.as_ref().expect("sketch mode");
                Ok(sketch.quantile(&Mapping::unanchored(), q))
            }
            ListStat::Quantile(q) => {
                let sorted = g.values.sorted();
                Ok((!sorted.is_empty()).then(|| quantile_sorted(sorted, q)))
            }
            ListStat::Drift(k) => Ok(self.compute_group(&[k], g)?[0]),
        }
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
    ) -> Result<isize> {
        let arr = cast(&args[0], &DataType::Float64)?;
        let arr = arr.as_primitive::<Float64Type>();
        let vals = arr.values();
        // values pushed to groups in sketch mode are folded into the sketch below, which
        // gives their bytes back
        let mut added = 0;
        if let ([group], true) = (&mut *groups, arr.null_count() == 0 && filter.is_none()) {
            added = group.values.extend_finite_unsorted(vals);
        } else if arr.null_count() == 0 && filter.is_none() {
            for (v, &g) in vals.iter().zip(idx) {
                if v.is_finite() {
                    added += groups[g].values.push(*v);
                }
            }
        } else {
            for (i, &g) in idx.iter().enumerate() {
                let v = vals[i];
                if v.is_finite() && arr.is_valid(i) && passes(filter, i) {
                    added += groups[g].values.push(v);
                }
            }
        }
        if let Some(col) = self.feature_arg.and_then(|a| args.get(a)) {
            added += take_features(groups, col, idx, filter)?;
        }
        Ok(added as isize + self.compact_all(groups, idx)?)
    }

    fn merge(&self, groups: &mut [ListGroup], states: &[ArrayRef], idx: &[usize]) -> Result<isize> {
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
                let g = &mut groups[g];
                if LogSketch::is_encoded(&s) {
                    let sketch = g.sketch.get_or_insert_with(LogSketch::default);
                    let before = sketch.heap_bytes();
                    if let Err(e) = sketch.merge_encoded(&s) {
                        return internal_err!("list state: {e}");
                    }
                    added += sketch.heap_bytes() - before;
                } else {
                    added += g.values.extend_finite(s);
                }
            }
        }
        added += take_features(groups, &states[1], idx, None)?;
        Ok(added as isize + self.compact_all(groups, idx)?)
    }

    fn state(&self, groups: &mut [ListGroup]) -> Result<Vec<ArrayRef>> {
        // Sorted here, so partial states (partitions, panes) sort in parallel and merge as runs.
        // (sorted buffers are shared with the state array, not copied).
        let mut lists = Vec::with_capacity(groups.len());
        for g in groups.iter_mut() {
            self.compact(g)?;
            lists.push(match &g.sketch {
                Some(s) => s.encode().into(),
                None => g.values.sorted_buffer(),
            });
        }
        let lists = list_array(lists);
        let features: StringArray = groups
            .iter()
            .map(|g| g.feature.as_deref().or(self.feature.as_deref()))
            .collect();
        Ok(vec![Arc::new(lists), Arc::new(features)])
    }

    fn evaluate(&self, groups: &mut [ListGroup]) -> Result<ArrayRef> {
        let out: Float64Array = groups
            .iter_mut()
            .map(|g| self.eval_one(g))
            .collect::<Result<_>>()?;
        Ok(Arc::new(out))
    }

    fn group_size(&self, g: &ListGroup) -> usize {
        g.values.heap_bytes()
            + g.sketch.as_ref().map_or(0, LogSketch::heap_bytes)
            + opt_arc_str_bytes(&g.feature)
    }
}

impl FeatureSlot for ListGroup {
    fn feature_slot(&mut self) -> &mut Option<Arc<str>> {
        &mut self.feature
    }
}

/// [`compute_many`] from a sketched window (see [`crate::math::sketch`]): the sorted,
/// non-binned statistics from the pooled sketch and baseline sample; binned kinds → `None`.
pub(crate) fn compute_many_sketch(
    kinds: &[DriftKind],
    sketch: &LogSketch,
    col: &NumericProfile,
) -> Vec<Option<f64>> {
    if sketch.n() == 0 || col.sample.is_empty() {
        return vec![None; kinds.len()];
    }
    let map = Mapping::new(col.mean, col.std_pop);
    let pooled = PooledSketch::new(sketch, &map, &col.sample);
    let (mut ks, mut cvm, mut anderson, mut w1) = (None, None, None, None);
    kinds
        .iter()
        .map(|&k| {
            let v = match k {
                DriftKind::Wasserstein => *w1.get_or_insert_with(|| pooled.wasserstein()),
                DriftKind::WassersteinNorm => {
                    *w1.get_or_insert_with(|| pooled.wasserstein()) / col.std_pop.max(0.001)
                }
                DriftKind::KsStat => ks.get_or_insert_with(|| pooled.ks()).statistic,
                DriftKind::KsPvalue => ks.get_or_insert_with(|| pooled.ks()).pvalue,
                DriftKind::EnergyDistance => pooled.energy_distance(),
                DriftKind::CvmStat => cvm.get_or_insert_with(|| pooled.cvm()).as_ref()?.statistic,
                DriftKind::CvmPvalue => cvm.get_or_insert_with(|| pooled.cvm()).as_ref()?.pvalue,
                DriftKind::AndersonStat => {
                    anderson
                        .get_or_insert_with(|| pooled.anderson())
                        .as_ref()?
                        .statistic
                }
                DriftKind::AndersonPvalue => {
                    anderson
                        .get_or_insert_with(|| pooled.anderson())
                        .as_ref()?
                        .pvalue
                }
                _ => return None,
            };
            v.is_finite().then_some(v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::ProfileOptions;
    use arrow::array::RecordBatch;
    use arrow::datatypes::Schema;

    fn values(seed: u64, n: usize, shift: f64) -> Vec<f64> {
        let mut rng = crate::math::iforest::SplitMix64::new(seed);
        (0..n)
            .map(|_| (rng.next_f64() + rng.next_f64() + rng.next_f64()) * 2.0 + shift)
            .collect()
    }

    fn kernel(kind: DriftKind, sketch_above: usize) -> ListKernel {
        let x = Arc::new(Float64Array::from(values(1, 5000, 0.0))) as ArrayRef;
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
        let batch = RecordBatch::try_new(schema, vec![x]).unwrap();
        let opts = ProfileOptions {
            sketch_above,
            ..Default::default()
        };
        let profile = BaselineProfile::from_batches("b", &[batch], &opts).unwrap();
        let args = BaselineArgs {
            profile: Arc::new(profile),
            feature: Some("x".into()),
            feature_arg: None,
        };
        ListKernel::against(ListStat::Drift(kind), args).unwrap()
    }

    const SORTED: [DriftKind; 9] = [
        DriftKind::Wasserstein,
        DriftKind::WassersteinNorm,
        DriftKind::KsStat,
        DriftKind::KsPvalue,
        DriftKind::EnergyDistance,
        DriftKind::CvmStat,
        DriftKind::CvmPvalue,
        DriftKind::AndersonStat,
        DriftKind::AndersonPvalue,
    ];

    /// One group fed `parts` (each a partial state merged in, in this order) or, with
    /// `single`, every value in one group by batches.
    fn run(k: &ListKernel, parts: &[Vec<f64>], single: bool) -> (Vec<Option<f64>>, usize) {
        let mut g = vec![ListGroup::default()];
        for p in parts {
            let arr: ArrayRef = Arc::new(Float64Array::from(p.clone()));
            let idx = vec![0; p.len()];
            if single {
                Kernel::update(k, &mut g, &[arr], &idx, None).unwrap();
            } else {
                let mut part = vec![ListGroup::default()];
                Kernel::update(k, &mut part, &[arr], &idx, None).unwrap();
                let state = Kernel::state(k, &mut part).unwrap();
                Kernel::merge(k, &mut g, &state, &[0]).unwrap();
            }
        }
        let size = k.group_size(&g[0]);
        (k.compute_group(&SORTED, &mut g[0]).unwrap(), size)
    }

    #[test]
    fn sketch_mode_above_threshold_merges_exactly() {
        let k = kernel(DriftKind::Wasserstein, 1000);
        let all = values(2, 100_000, 0.3);
        let batches: Vec<Vec<f64>> = all.chunks(8192).map(<[f64]>::to_vec).collect();
        let (single, size) = run(&k, &batches, true);
        assert!(single.iter().all(Option::is_some), "{single:?}");
        // state is the sketch (24 bytes per key of a ±6.4 k key span), well below the
        // 800 kB of exact values
        assert!(size < 400_000, "{size} bytes");
        // partial states of every size (exact below the threshold, sketches above), in any
        // order and split, merge to exactly the single-pass values
        let mut uneven: Vec<Vec<f64>> = Vec::new();
        let mut rest = &all[..];
        for len in [10, 999, 1001, 50_000, 3, 20_000].iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at((*len).min(rest.len()));
            uneven.push(a.to_vec());
            rest = b;
        }
        uneven.reverse();
        assert_eq!(run(&k, &uneven, false).0, single);
        // and are close to the exact values (FUNCTIONS.md, "Sketch error bounds")
        let (exact, exact_size) = run(&kernel(DriftKind::Wasserstein, 1 << 20), &batches, true);
        assert!(exact_size >= 800_000);
        for ((kind, s), e) in SORTED.iter().zip(&single).zip(&exact) {
            let (s, e) = (s.unwrap(), e.unwrap());
            assert!(
                (s - e).abs() <= 0.01 * e.abs().max(1.0),
                "{kind:?}: {s} vs {e}"
            );
        }
    }

    #[test]
    fn exact_up_to_threshold() {
        let k = kernel(DriftKind::KsStat, 1000);
        let v = values(3, 1000, 0.1);
        let (got, _) = run(&k, &[v[..400].to_vec(), v[400..].to_vec()], false);
        let mut sorted = v.clone();
        crate::math::sorted::sort_values(&mut sorted);
        let col = k.column(None).unwrap().unwrap();
        assert_eq!(got, compute_many(&SORTED, &sorted, col));
    }

    #[test]
    fn malformed_sketch_state_is_an_error() {
        let k = kernel(DriftKind::Wasserstein, 1000);
        let mut g = vec![ListGroup::default()];
        let state: Vec<ArrayRef> = vec![
            Arc::new(list_array(vec![vec![f64::NAN, 0.5, 1.0].into()])),
            Arc::new(StringArray::from(vec![Some("x")])),
        ];
        let err = Kernel::merge(&k, &mut g, &state, &[0]).unwrap_err();
        assert!(err.to_string().contains("malformed sketch state"), "{err}");
    }
}
