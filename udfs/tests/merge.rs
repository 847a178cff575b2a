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
            "histogram" => vec![vec![x.clone(), lit("ref")]],
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
