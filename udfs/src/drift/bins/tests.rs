use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float64Type};
use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};

use super::*;
use crate::baseline::ProfileOptions;
use crate::drift::ListKernel;
use crate::group::{Groups, Single};

fn profile() -> Arc<BaselineProfile> {
    let x: Float64Array = (0..1000).map(|i| Some(i as f64 / 10.0)).collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![Field::new(
        "x",
        DataType::Float64,
        true,
    )]));
    let b = RecordBatch::try_new(schema, vec![Arc::new(x)]).unwrap();
    Arc::new(BaselineProfile::from_batches("b", &[b], &ProfileOptions::default()).unwrap())
}

fn kernel(out: BinsOutput) -> BinsKernel {
    BinsKernel {
        out,
        profile: profile(),
        feature: Some("x".into()),
        feature_arg: None,
    }
}

fn values(n: usize, shift: f64) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(
        (0..n).map(|i| ((i * 7919) % 1000) as f64 / 10.0 + shift),
    ))
}

/// Memory of a windowed binned aggregate over 1 M values stays O(bins): a few hundred
/// bytes of state, where keeping the values (the list kernel, the former layout) takes 8 MB.
/// Measured on the groups accumulator, the interface the window operator uses.
#[test]
fn state_is_o_bins_for_a_million_values() {
    let mut acc = Groups::new(kernel(BinsOutput::Drift(DriftKind::Psi)));
    let chunk = values(100_000, 1.0);
    let zeros = vec![0usize; 100_000];
    for _ in 0..10 {
        acc.update_batch(&[Arc::clone(&chunk)], &zeros, None, 1)
            .unwrap();
    }
    let size = acc.size();
    assert!(size < 1024, "accumulator size {size} bytes");
    let state = acc.state(EmitTo::All).unwrap();
    let state_bytes: usize = state.iter().map(|s| s.get_array_memory_size()).sum();
    assert!(state_bytes < 2048, "state {state_bytes} bytes");
    assert_eq!(state[0].as_list::<i32>().value(0).len(), 10);

    let list = ListKernel {
        stat: crate::drift::ListStat::Quantile(0.5),
        profile: Some(profile()),
        feature: None,
        feature_arg: None,
    };
    let mut acc = Groups::new(list);
    for _ in 0..10 {
        acc.update_batch(&[Arc::clone(&chunk)], &zeros, None, 1)
            .unwrap();
    }
    assert!(acc.size() >= 8_000_000, "list size {}", acc.size());
}

/// Counts merged from partial states equal the single pass, and the single pass equals the
/// statistic of the histogram of all the values.
#[test]
fn merge_adds_counts_exactly() {
    let k = || kernel(BinsOutput::Drift(DriftKind::Chi2Pvalue));
    let all = values(5000, 3.0);
    let mut one = Single::new(k());
    one.update_batch(&[Arc::clone(&all)]).unwrap();
    let want = one.evaluate().unwrap();

    let mut merged = Single::new(k());
    for part in 0..5 {
        let mut p = Single::new(k());
        p.update_batch(&[all.slice(part * 1000, 1000)]).unwrap();
        let state: Vec<ArrayRef> = p
            .state()
            .unwrap()
            .iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        merged.merge_batch(&state).unwrap();
    }
    assert_eq!(merged.evaluate().unwrap(), want);

    let col = profile();
    let col = col.numeric("x").unwrap();
    let vals = all.as_primitive::<Float64Type>().values();
    let counts = binned::histogram(&col.bin_edges, vals);
    let direct = DriftKind::Chi2Pvalue.compute_counts(&counts, &col.bin_counts);
    assert_eq!(want, datafusion::common::ScalarValue::Float64(direct));
}

/// A state in the value-keeping layout (`List<Float64>`, e.g. from an old checkpoint) is
/// binned on merge; a count list of the wrong length is a clear error.
#[test]
fn old_value_state_is_converted_and_bad_counts_rejected() {
    let k = || kernel(BinsOutput::Drift(DriftKind::Psi));
    let all = values(2000, 2.0);
    let mut want = Single::new(k());
    want.update_batch(&[Arc::clone(&all)]).unwrap();

    let old_values = ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        OffsetBuffer::from_lengths([2000]),
        Arc::clone(&all),
        None,
    );
    let feature: ArrayRef = Arc::new(StringArray::from(vec![Some("x")]));
    let mut got = Single::new(k());
    got.merge_batch(&[Arc::new(old_values), Arc::clone(&feature)])
        .unwrap();
    assert_eq!(got.evaluate().unwrap(), want.evaluate().unwrap());

    let bad = ListArray::new(
        Arc::new(Field::new_list_field(DataType::UInt64, true)),
        OffsetBuffer::from_lengths([3]),
        Arc::new(arrow::array::UInt64Array::from(vec![1u64, 2, 3])),
        None,
    );
    let mut acc = Single::new(k());
    let err = acc
        .merge_batch(&[Arc::new(bad), feature])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has 3 counts") && err.contains("10 bins"),
        "{err}"
    );
}

/// `histogram` of no values is all zeros; its counts match `binned::histogram`.
#[test]
fn histogram_counts() {
    let mut acc = Single::new(kernel(BinsOutput::Histogram));
    let empty = acc.evaluate().unwrap().to_array().unwrap();
    let empty = empty.as_list::<i32>().value(0);
    assert_eq!(empty.len(), 10);
    assert_eq!(empty.null_count(), 0);
    acc.update_batch(&[values(777, -50.0)]).unwrap();
    let h = acc.evaluate().unwrap().to_array().unwrap();
    let h = h.as_list::<i32>().value(0);
    let h: Vec<i64> = h
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec();
    let col = profile();
    let col = col.numeric("x").unwrap();
    let v = values(777, -50.0);
    let want: Vec<i64> =
        binned::histogram(&col.bin_edges, v.as_primitive::<Float64Type>().values())
            .into_iter()
            .map(|c| c as i64)
            .collect();
    assert_eq!(h, want);
    assert_eq!(h.iter().sum::<i64>(), 777);
}
