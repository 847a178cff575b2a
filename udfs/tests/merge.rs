//! Property tests: for every Driftwatch aggregate, merging the partial states of random
//! splits (and random group assignments, through the `GroupsAccumulator`) gives exactly the
//! single-pass result, and the row `Accumulator` agrees with the `GroupsAccumulator`.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDF, EmitTo};
use datafusion::physical_expr::expressions::{col, lit};
use datafusion::physical_expr::PhysicalExpr;
use driftwatch_udfs::{aggregate_functions, BaselineProfile, BaselineRegistry, ProfileOptions};
use proptest::prelude::*;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
        Field::new("c", DataType::Utf8, true),
    ])
}

fn registry() -> Arc<BaselineRegistry> {
    let n = 300;
    let x: Vec<Option<f64>> = (0..n)
        .map(|i| Some(((i * 37) % 101) as f64 / 7.0))
        .collect();
    let y: Vec<Option<f64>> = (0..n).map(|i| Some(((i * 13) % 29) as f64)).collect();
    let c: Vec<Option<&str>> = (0..n).map(|i| Some(["a", "b", "c"][i % 3])).collect();
    let b = RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(Float64Array::from(x)),
            Arc::new(Float64Array::from(y)),
            Arc::new(StringArray::from(c)),
        ],
    )
    .unwrap();
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(BaselineProfile::from_batches("ref", &[b], &ProfileOptions::default()).unwrap());
    reg
}

/// (function name, argument expressions) for every aggregate call tested.
fn calls(reg: &Arc<BaselineRegistry>) -> Vec<(AggregateUDF, Vec<Arc<dyn PhysicalExpr>>)> {
    let s = schema();
    let x = col("x", &s).unwrap();
    let y = col("y", &s).unwrap();
    let c = col("c", &s).unwrap();
    let mut out = Vec::new();
    for f in aggregate_functions(reg) {
        let name = f.name().to_string();
        let args: Vec<Vec<Arc<dyn PhysicalExpr>>> = match name.as_str() {
            "missing_count" | "missing_rate" => vec![vec![x.clone()]],
            "quantile" => vec![vec![x.clone(), lit(0.3)]],
            "mmd" => vec![vec![x.clone(), y.clone(), lit("ref")]],
            "mmd_pvalue" => vec![
                vec![x.clone(), y.clone(), lit("ref")],
                vec![x.clone(), lit("ref"), lit("x"), lit(7i64)],
            ],
            "histogram" => vec![vec![x.clone(), lit("ref")]],
            "top_k" => vec![vec![c.clone(), lit(2i64)], vec![c.clone(), lit(10i64)]],
            // Chan's update merges up to rounding, not bit for bit: see
            // `moment_matrices_merge_to_rounding` below.
            "covariance_matrix" | "correlation_matrix" => vec![],
            "psi" | "js_distance" | "kl_div" | "hellinger" | "tvd" | "l_inf" | "chi2_stat"
            | "chi2_pvalue" => vec![
                vec![x.clone(), lit("ref")],
                vec![c.clone(), lit("ref"), lit("c")],
            ],
            _ => vec![vec![x.clone(), lit("ref"), lit("x")]],
        };
        for a in args {
            out.push((f.clone(), a));
        }
    }
    out
}

fn acc_args<'a>(
    schema: &'a Schema,
    exprs: &'a [Arc<dyn PhysicalExpr>],
    fields: &'a [Arc<Field>],
    ret: Arc<Field>,
) -> AccumulatorArgs<'a> {
    AccumulatorArgs {
        return_field: ret,
        schema,
        ignore_nulls: false,
        order_bys: &[],
        is_reversed: false,
        name: "f",
        is_distinct: false,
        exprs,
        expr_fields: fields,
    }
}

fn inputs(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Vec<ArrayRef> {
    exprs
        .iter()
        .map(|e| {
            e.evaluate(batch)
                .unwrap()
                .into_array(batch.num_rows())
                .unwrap()
        })
        .collect()
}

fn batch(rows: &[(Option<f64>, Option<f64>, u8)]) -> RecordBatch {
    let cats = ["a", "b", "c", "new"];
    RecordBatch::try_new(
        Arc::new(schema()),
        vec![
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| (r.2 < 4).then(|| cats[r.2 as usize]))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        8 => (-50.0f64..50.0).prop_map(Some),
        2 => (0i32..5).prop_map(|v| Some(v as f64)),
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn partial_states_merge_exactly(
        rows in proptest::collection::vec((value(), value(), 0u8..5, 0usize..3), 0..80),
        cut in 0usize..80,
    ) {
        let reg = registry();
        let s = schema();
        let cut = cut.min(rows.len());
        let data: Vec<(Option<f64>, Option<f64>, u8)> = rows.iter().map(|r| (r.0, r.1, r.2)).collect();
        let groups: Vec<usize> = rows.iter().map(|r| r.3).collect();
        let all = batch(&data);
        let (b1, b2) = (batch(&data[..cut]), batch(&data[cut..]));
        for (f, exprs) in calls(&reg) {
            let fields: Vec<Arc<Field>> = exprs.iter().map(|e| e.return_field(&s).unwrap()).collect();
            let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
            let ret = Arc::new(Field::new("r", f.return_type(&types).unwrap(), true));
            let args = || acc_args(&s, &exprs, &fields, Arc::clone(&ret));
            prop_assert!(f.groups_accumulator_supported(args()));
            // single pass, 3 groups
            let mut single = f.create_groups_accumulator(args()).unwrap();
            single.update_batch(&inputs(&exprs, &all), &groups, None, 3).unwrap();
            let want = single.evaluate(EmitTo::All).unwrap();
            // two partial accumulators, merged
            let mut merged = f.create_groups_accumulator(args()).unwrap();
            for (b, g) in [(&b1, &groups[..cut]), (&b2, &groups[cut..])] {
                let mut p = f.create_groups_accumulator(args()).unwrap();
                p.update_batch(&inputs(&exprs, b), g, None, 3).unwrap();
                let st = p.state(EmitTo::All).unwrap();
                merged.merge_batch(&st, &[0, 1, 2], 3).unwrap();
            }
            let got = merged.evaluate(EmitTo::All).unwrap();
            for gi in 0..3 {
                let w = ScalarValue::try_from_array(&want, gi).unwrap();
                let m = ScalarValue::try_from_array(&got, gi).unwrap();
                prop_assert_eq!(&w, &m, "{} group {} (merge)", f.name(), gi);
                // row accumulator over the group's rows, split in two with a state round trip
                let idx: Vec<usize> = (0..data.len()).filter(|&r| groups[r] == gi).collect();
                let rows_g: Vec<_> = idx.iter().map(|&r| data[r]).collect();
                let h = rows_g.len() / 2;
                let mut fin = f.accumulator(args()).unwrap();
                for part in [&rows_g[..h], &rows_g[h..]] {
                    let mut a = f.accumulator(args()).unwrap();
                    a.update_batch(&inputs(&exprs, &batch(part))).unwrap();
                    let st: Vec<ArrayRef> = a.state().unwrap().iter().map(|v| v.to_array().unwrap()).collect();
                    fin.merge_batch(&st).unwrap();
                }
                let r = fin.evaluate().unwrap();
                prop_assert_eq!(&w, &r, "{} group {} (row accumulator)", f.name(), gi);
            }
        }
    }
}

/// `mmd_pvalue`'s number of permutations must be an integer literal >= 1.
#[test]
fn mmd_pvalue_rejects_bad_permutations() {
    let reg = registry();
    let s = schema();
    let f = aggregate_functions(&reg)
        .into_iter()
        .find(|f| f.name() == "mmd_pvalue")
        .unwrap();
    let x = col("x", &s).unwrap();
    for bad in [lit(0i64), lit(-3i64)] {
        let exprs = vec![x.clone(), lit("ref"), bad];
        let fields: Vec<Arc<Field>> = exprs.iter().map(|e| e.return_field(&s).unwrap()).collect();
        let ret = Arc::new(Field::new("r", DataType::Float64, true));
        let err = f
            .accumulator(acc_args(&s, &exprs, &fields, ret))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("permutations must be an integer literal >= 1"),
            "{err}"
        );
    }
    let err = f
        .return_type(&[DataType::Float64, DataType::Utf8, DataType::Float64])
        .and_then(|_| {
            f.inner()
                .coerce_types(&[DataType::Float64, DataType::Utf8, DataType::Float64])
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("integer number of permutations"), "{err}");
}

// ---- top_k, covariance_matrix, correlation_matrix (udfs/src/stats) ----

fn udaf(name: &str) -> AggregateUDF {
    aggregate_functions(&registry())
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap()
}

/// Results per group of `f(exprs)` over `batch` (row r in group `groups[r]` of `ng`):
/// (single pass, partial states of the pieces cut at `cuts` merged, row `Accumulator`
/// over each group's rows in three pieces with state round trips).
fn one_pass_and_merged(
    f: &AggregateUDF,
    exprs: &[Arc<dyn PhysicalExpr>],
    batch: &RecordBatch,
    groups: &[usize],
    ng: usize,
    cuts: &[usize],
) -> (ArrayRef, ArrayRef, Vec<ScalarValue>) {
    let s = batch.schema();
    let fields: Vec<Arc<Field>> = exprs.iter().map(|e| e.return_field(&s).unwrap()).collect();
    let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
    let ret = Arc::new(Field::new("r", f.return_type(&types).unwrap(), true));
    let args = || acc_args(&s, exprs, &fields, Arc::clone(&ret));
    let mut single = f.create_groups_accumulator(args()).unwrap();
    single
        .update_batch(&inputs(exprs, batch), groups, None, ng)
        .unwrap();
    let want = single.evaluate(EmitTo::All).unwrap();
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().map(|&c| c.min(batch.num_rows())));
    bounds.push(batch.num_rows());
    bounds.sort_unstable();
    let mut merged = f.create_groups_accumulator(args()).unwrap();
    for w in bounds.windows(2) {
        let piece = batch.slice(w[0], w[1] - w[0]);
        let mut p = f.create_groups_accumulator(args()).unwrap();
        p.update_batch(&inputs(exprs, &piece), &groups[w[0]..w[1]], None, ng)
            .unwrap();
        let st = p.state(EmitTo::All).unwrap();
        let all: Vec<usize> = (0..ng).collect();
        merged.merge_batch(&st, &all, ng).unwrap();
    }
    let got = merged.evaluate(EmitTo::All).unwrap();
    let mut rows = Vec::new();
    for g in 0..ng {
        let idx: Vec<u32> = (0..groups.len() as u32)
            .filter(|&r| groups[r as usize] == g)
            .collect();
        let sub = arrow::compute::take_record_batch(batch, &arrow::array::UInt32Array::from(idx))
            .unwrap();
        let n = sub.num_rows();
        let mut fin = f.accumulator(args()).unwrap();
        for (a, b) in [(0, n / 3), (n / 3, 2 * n / 3), (2 * n / 3, n)] {
            let mut acc = f.accumulator(args()).unwrap();
            acc.update_batch(&inputs(exprs, &sub.slice(a, b - a)))
                .unwrap();
            let st: Vec<ArrayRef> = acc
                .state()
                .unwrap()
                .iter()
                .map(|v| v.to_array().unwrap())
                .collect();
            fin.merge_batch(&st).unwrap();
        }
        rows.push(fin.evaluate().unwrap());
    }
    (want, got, rows)
}

/// `top_k` entries of row `i` of a result array (`None` for NULL).
fn top_k_entries(a: &ArrayRef, i: usize) -> Option<Vec<(String, i64)>> {
    use arrow::array::{Array, AsArray};
    let l = a.as_list::<i32>();
    if l.is_null(i) {
        return None;
    }
    let v = l.value(i);
    let s = v.as_struct();
    let vals = s.column(0).as_string::<i32>();
    let cnts = s.column(1).as_primitive::<arrow::datatypes::Int64Type>();
    Some(
        (0..s.len())
            .map(|j| (vals.value(j).to_string(), cnts.value(j)))
            .collect(),
    )
}

fn category() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => proptest::sample::select(vec!["a", "b", "c", "dd", "é", "", "Z"])
            .prop_map(|s| Some(s.to_string())),
        3 => "[a-cé]{0,3}".prop_map(Some),
        1 => Just(None),
    ]
}

fn moment_value() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        8 => (-50.0f64..50.0).prop_map(Some),
        2 => (0i32..3).prop_map(|v| Some(v as f64)),
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => Just(Some(f64::INFINITY)),
    ]
}

/// Two-pass reference (covariance, correlation) of complete rows, numpy's NaN as `None`.
fn moment_reference(rows: &[[f64; 3]]) -> Option<(Vec<f64>, Vec<Option<f64>>)> {
    let n = rows.len();
    if n < 2 {
        return None;
    }
    let mean: Vec<f64> = (0..3)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let mut cov = vec![0.0; 9];
    for r in rows {
        for i in 0..3 {
            for j in 0..3 {
                cov[i * 3 + j] += (r[i] - mean[i]) * (r[j] - mean[j]) / (n - 1) as f64;
            }
        }
    }
    // a column of equal values has variance exactly 0 (numpy: NaN correlations)
    let constant: Vec<bool> = (0..3)
        .map(|j| rows.iter().all(|r| r[j] == rows[0][j]))
        .collect();
    let corr = (0..9)
        .map(|p| {
            let (i, j) = (p / 3, p % 3);
            (!constant[i] && !constant[j])
                .then(|| (cov[p] / (cov[i * 4] * cov[j * 4]).sqrt()).clamp(-1.0, 1.0))
        })
        .collect();
    if constant.iter().any(|&c| c) {
        for j in 0..3 {
            if constant[j] {
                for i in 0..3 {
                    cov[i * 3 + j] = 0.0;
                    cov[j * 3 + i] = 0.0;
                }
            }
        }
    }
    Some((cov, corr))
}

fn f64_list(a: &ArrayRef, i: usize) -> Option<Vec<Option<f64>>> {
    use arrow::array::{Array, AsArray};
    let l = a.as_list::<i32>();
    if l.is_null(i) {
        return None;
    }
    let v = l.value(i);
    let v = v.as_primitive::<arrow::datatypes::Float64Type>();
    Some(
        (0..v.len())
            .map(|j| v.is_valid(j).then(|| v.value(j)))
            .collect(),
    )
}

fn scalar_f64_list(v: &ScalarValue) -> Option<Vec<Option<f64>>> {
    f64_list(&v.to_array().unwrap(), 0)
}

/// Entry-wise agreement: covariance entries to 1e-9·√(var_i·var_j), correlations to 1e-9.
fn assert_matrix_close(
    what: &str,
    got: &Option<Vec<Option<f64>>>,
    want: &Option<Vec<Option<f64>>>,
    scale: &[f64],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        got.is_none(),
        want.is_none(),
        "{}: {:?} vs {:?}",
        what,
        got,
        want
    );
    if let (Some(g), Some(w)) = (got, want) {
        prop_assert_eq!(g.len(), 9);
        for p in 0..9 {
            match (g[p], w[p]) {
                (Some(a), Some(b)) => {
                    let tol = 1e-9 * scale[p].max(1e-300) + 1e-12 * b.abs();
                    prop_assert!((a - b).abs() <= tol, "{} entry {}: {} vs {}", what, p, a, b);
                }
                (a, b) => prop_assert_eq!(a, b, "{} entry {}", what, p),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// top_k: merged partial states (random cuts and groups) = single pass = row
    /// accumulator = collections.Counter-style reference (count desc, value asc).
    #[test]
    fn top_k_merges_exactly(
        rows in proptest::collection::vec((category(), 0usize..3), 0..120),
        cuts in proptest::collection::vec(0usize..120, 0..4),
        k in 1i64..6,
    ) {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let vals: Vec<Option<&str>> = rows.iter().map(|r| r.0.as_deref()).collect();
        let b = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(vals))]).unwrap();
        let groups: Vec<usize> = rows.iter().map(|r| r.1).collect();
        let exprs = vec![col("s", &schema).unwrap(), lit(k)];
        let f = udaf("top_k");
        let (want, got, single_rows) = one_pass_and_merged(&f, &exprs, &b, &groups, 3, &cuts);
        for (g, row) in single_rows.iter().enumerate() {
            let mut counts = std::collections::BTreeMap::<&str, i64>::new();
            for r in rows.iter().filter(|r| r.1 == g) {
                if let Some(s) = &r.0 {
                    *counts.entry(s.as_str()).or_default() += 1;
                }
            }
            let mut expect: Vec<(String, i64)> = counts.iter().map(|(s, c)| (s.to_string(), *c)).collect();
            expect.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            expect.truncate(k as usize);
            let expect = (!expect.is_empty()).then_some(expect);
            prop_assert_eq!(&top_k_entries(&want, g), &expect, "single pass, group {}", g);
            prop_assert_eq!(&top_k_entries(&got, g), &expect, "merged, group {}", g);
            let r = row.to_array().unwrap();
            prop_assert_eq!(&top_k_entries(&r, 0), &expect, "row accumulator, group {}", g);
        }
    }

    /// covariance_matrix / correlation_matrix: merged partial states (Chan's update) agree
    /// with the single pass and a two-pass reference to rounding (rel 1e-9).
    #[test]
    fn moment_matrices_merge_to_rounding(
        rows in proptest::collection::vec(
            (moment_value(), moment_value(), moment_value(), 0usize..3), 0..90),
        cuts in proptest::collection::vec(0usize..90, 0..4),
        offset in prop_oneof![Just(0.0f64), Just(1e6)],
    ) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Float64, true),
            Field::new("c", DataType::Float64, true),
        ]));
        // a large common offset on `a` checks that no raw sums of products are formed
        let a: Vec<Option<f64>> = rows.iter().map(|r| r.0.map(|v| v + offset)).collect();
        let bcol: Vec<Option<f64>> = rows.iter().map(|r| r.1).collect();
        let c: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![
            Arc::new(Float64Array::from(a.clone())),
            Arc::new(Float64Array::from(bcol.clone())),
            Arc::new(Float64Array::from(c.clone())),
        ]).unwrap();
        let groups: Vec<usize> = rows.iter().map(|r| r.3).collect();
        let exprs = vec![col("a", &schema).unwrap(), col("b", &schema).unwrap(), col("c", &schema).unwrap()];
        let cov_f = udaf("covariance_matrix");
        let corr_f = udaf("correlation_matrix");
        let (cov1, cov2, cov3) = one_pass_and_merged(&cov_f, &exprs, &batch, &groups, 3, &cuts);
        let (cor1, cor2, cor3) = one_pass_and_merged(&corr_f, &exprs, &batch, &groups, 3, &cuts);
        for g in 0..3 {
            let complete: Vec<[f64; 3]> = (0..rows.len())
                .filter(|&r| groups[r] == g)
                .filter_map(|r| Some([a[r]?, bcol[r]?, c[r]?]))
                .filter(|v| v.iter().all(|x| x.is_finite()))
                .collect();
            let reference = moment_reference(&complete);
            let want_cov = reference.as_ref().map(|r| r.0.iter().map(|v| Some(*v)).collect::<Vec<_>>());
            let want_cor = reference.as_ref().map(|r| r.1.clone());
            let scale: Vec<f64> = match &reference {
                Some((cov, _)) => (0..9).map(|p| (cov[(p / 3) * 4] * cov[(p % 3) * 4]).sqrt()).collect(),
                None => vec![0.0; 9],
            };
            let ones = vec![1.0; 9];
            let single_cov = f64_list(&cov1, g);
            // a constant column: its covariances are exactly 0 in our state; the reference
            // may differ by rounding, which `scale` (0 there) would not tolerate
            assert_matrix_close("cov single vs reference", &single_cov, &want_cov, &scale)?;
            assert_matrix_close("cov merged", &f64_list(&cov2, g), &single_cov, &scale)?;
            assert_matrix_close("cov row accumulator", &scalar_f64_list(&cov3[g]), &single_cov, &scale)?;
            let single_cor = f64_list(&cor1, g);
            assert_matrix_close("corr single vs reference", &single_cor, &want_cor, &ones)?;
            assert_matrix_close("corr merged", &f64_list(&cor2, g), &single_cor, &ones)?;
            assert_matrix_close("corr row accumulator", &scalar_f64_list(&cor3[g]), &single_cor, &ones)?;
        }
    }
}

#[test]
fn top_k_rejects_bad_k() {
    let s = schema();
    let f = udaf("top_k");
    let c = col("c", &s).unwrap();
    for bad in [
        lit(0i64),
        lit(-2i64),
        lit(ScalarValue::Int64(None)),
        col("x", &s).unwrap(),
    ] {
        let exprs = vec![c.clone(), bad];
        let fields: Vec<Arc<Field>> = exprs.iter().map(|e| e.return_field(&s).unwrap()).collect();
        let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
        let ret = Arc::new(Field::new("r", f.return_type(&types).unwrap(), true));
        let Err(err) = f.create_groups_accumulator(acc_args(&s, &exprs, &fields, ret)) else {
            panic!("top_k accepted a bad k");
        };
        let err = err.to_string();
        assert!(
            err.contains("k must be a positive integer literal"),
            "{err}"
        );
    }
}
