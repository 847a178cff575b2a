//! Accumulator memory accounting: for every family of Driftwatch aggregates, the
//! `GroupsAccumulator::size()` the window operator reserves in its memory pool is within
//! [`TOLERANCE`] of the heap the accumulator really holds (measured by a counting global
//! allocator, per thread), including after the switch to sketch mode; and `size()` is O(1)
//! (no walk over groups or values).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDF, GroupsAccumulator};
use datafusion::physical_expr::expressions::{col, lit};
use datafusion::physical_expr::PhysicalExpr;
use driftwatch_udfs::math::iforest::SplitMix64;
use driftwatch_udfs::{aggregate_functions, BaselineProfile, BaselineRegistry, ProfileOptions};

/// Largest accepted |size() − measured| / measured.
const TOLERANCE: f64 = 0.20;

/// Counts the bytes allocated minus freed by the current thread.
struct Counting;

thread_local! {
    static NET: Cell<isize> = const { Cell::new(0) };
}

fn add(n: isize) {
    // `try_with`: allocations during thread teardown have no counter left
    let _ = NET.try_with(|c| c.set(c.get() + n));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        add(l.size() as isize);
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        add(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        add(new as isize - l.size() as isize);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn net() -> isize {
    NET.with(Cell::get)
}

const FEATURES: usize = 40;

fn feature(i: usize) -> String {
    format!("f{i:02}")
}

/// Input schema: long form (`value`, `feature`), a category `c` and two wide columns.
fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("value", DataType::Float64, true),
        Field::new("feature", DataType::Utf8, true),
        Field::new("c", DataType::Utf8, true),
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
    ]))
}

fn normal(rng: &mut SplitMix64) -> f64 {
    let (u, v) = (1.0 - rng.next_f64(), rng.next_f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A baseline `ref` with numeric columns f00…f39, x, y and categorical `c`.
fn registry(sketch_above: usize) -> Arc<BaselineRegistry> {
    let n = 3000;
    let mut rng = SplitMix64::new(7);
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for i in 0..FEATURES {
        fields.push(Field::new(feature(i), DataType::Float64, false));
        let v: Vec<f64> = (0..n).map(|_| normal(&mut rng) + i as f64).collect();
        cols.push(Arc::new(Float64Array::from(v)));
    }
    for name in ["x", "y"] {
        fields.push(Field::new(name, DataType::Float64, false));
        let v: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        cols.push(Arc::new(Float64Array::from(v)));
    }
    fields.push(Field::new("c", DataType::Utf8, false));
    let c: Vec<String> = (0..n).map(|i| format!("cat{}", i % 20)).collect();
    cols.push(Arc::new(StringArray::from(c)));
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let opts = ProfileOptions {
        sketch_above,
        ..Default::default()
    };
    let reg = Arc::new(BaselineRegistry::new());
    reg.insert(BaselineProfile::from_batches("ref", &[b], &opts).unwrap());
    reg
}

/// Long-form batches: `rows` rows cycling through the features; `c` with `cats` distinct
/// categories (new ones keep appearing when `cats` is large).
fn batches(rows: usize, cats: usize, seed: u64) -> Vec<RecordBatch> {
    let mut rng = SplitMix64::new(seed);
    let names: Vec<String> = (0..FEATURES).map(feature).collect();
    let mut out = Vec::new();
    let mut done = 0;
    while done < rows {
        let n = 8192.min(rows - done);
        let value: Vec<f64> = (0..n)
            .map(|i| normal(&mut rng) + ((done + i) % FEATURES) as f64)
            .collect();
        let feat: Vec<&str> = (0..n)
            .map(|i| names[(done + i) % FEATURES].as_str())
            .collect();
        let c: Vec<String> = (0..n)
            .map(|i| format!("cat{}", (done + i) * 7919 % cats))
            .collect();
        let x: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let y: Vec<f64> = (0..n).map(|_| normal(&mut rng) * 3.0).collect();
        out.push(
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Float64Array::from(value)),
                    Arc::new(StringArray::from(feat)),
                    Arc::new(StringArray::from(c)),
                    Arc::new(Float64Array::from(x)),
                    Arc::new(Float64Array::from(y)),
                ],
            )
            .unwrap(),
        );
        done += n;
    }
    out
}

/// How rows are assigned to groups.
#[derive(Clone, Copy)]
enum Grouping {
    /// One group (a window).
    One,
    /// One group per feature (`GROUP BY feature`).
    PerFeature,
    /// `n` groups, round robin.
    RoundRobin(usize),
}

struct Case {
    func: &'static str,
    args: Vec<Arc<dyn PhysicalExpr>>,
    grouping: Grouping,
    rows: usize,
    cats: usize,
    sketch_above: usize,
}

fn case(func: &'static str, args: &[&str], grouping: Grouping, rows: usize) -> Case {
    let s = schema();
    let args = args
        .iter()
        .map(|a| match a.strip_prefix('\'') {
            Some(l) => lit(l.trim_end_matches('\'')),
            None => match a.parse::<f64>() {
                Ok(v) if a.contains('.') => lit(v),
                Ok(v) => lit(v as i64),
                Err(_) => col(a, &s).unwrap(),
            },
        })
        .collect();
    Case {
        func,
        args,
        grouping,
        rows,
        cats: 20,
        sketch_above: 1 << 20,
    }
}

fn udaf(reg: &Arc<BaselineRegistry>, name: &str) -> AggregateUDF {
    aggregate_functions(reg)
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("no aggregate {name}"))
}

fn accumulator(f: &AggregateUDF, exprs: &[Arc<dyn PhysicalExpr>]) -> Box<dyn GroupsAccumulator> {
    let s = schema();
    let fields: Vec<Arc<Field>> = exprs.iter().map(|e| e.return_field(&s).unwrap()).collect();
    let types: Vec<DataType> = fields.iter().map(|f| f.data_type().clone()).collect();
    let ret = Arc::new(Field::new("f", f.return_type(&types).unwrap(), true));
    let args = AccumulatorArgs {
        return_field: ret,
        schema: &s,
        ignore_nulls: false,
        order_bys: &[],
        is_reversed: false,
        name: "f",
        is_distinct: false,
        exprs,
        expr_fields: &fields,
    };
    f.create_groups_accumulator(args).unwrap()
}

/// Feeds the case's rows; returns (size(), measured heap bytes, groups).
fn run(c: &Case) -> (usize, usize, usize) {
    let reg = registry(c.sketch_above);
    let f = udaf(&reg, c.func);
    let input = batches(c.rows, c.cats, 11);
    let arrays: Vec<Vec<ArrayRef>> = input
        .iter()
        .map(|b| {
            c.args
                .iter()
                .map(|e| e.evaluate(b).unwrap().into_array(b.num_rows()).unwrap())
                .collect()
        })
        .collect();
    let groups = match c.grouping {
        Grouping::One => 1,
        Grouping::PerFeature => FEATURES,
        Grouping::RoundRobin(n) => n,
    };
    let mut done = 0;
    let idx: Vec<Vec<usize>> = input
        .iter()
        .map(|b| {
            let v = (0..b.num_rows())
                .map(|i| match c.grouping {
                    Grouping::One => 0,
                    Grouping::PerFeature => (done + i) % FEATURES,
                    Grouping::RoundRobin(n) => (done + i) % n,
                })
                .collect();
            done += b.num_rows();
            v
        })
        .collect();
    let before = net();
    let mut acc = accumulator(&f, &c.args);
    for (a, i) in arrays.iter().zip(&idx) {
        acc.update_batch(a, i, None, groups).unwrap();
    }
    let measured = net() - before;
    let size = acc.size();
    // the accumulator still works (and its state is what was measured)
    let out = acc.evaluate(datafusion::logical_expr::EmitTo::All).unwrap();
    assert_eq!(out.len(), groups);
    (size, measured.max(1) as usize, groups)
}

fn check(name: &str, c: Case) {
    let (size, measured, groups) = run(&c);
    let err = (size as f64 - measured as f64).abs() / measured as f64;
    println!("{name}: size() {size} B, measured {measured} B, {groups} groups, error {err:.3}");
    assert!(
        err <= TOLERANCE,
        "{name}: size() {size} vs measured {measured} ({:.1} % off)",
        err * 100.0
    );
}

#[test]
fn sorted_drift_statistics_exact() {
    let g = Grouping::PerFeature;
    check(
        "wasserstein long form",
        case("wasserstein", &["value", "'ref'", "feature"], g, 200_000),
    );
    check(
        "ks_pvalue one group",
        case("ks_pvalue", &["x", "'ref'", "'x'"], Grouping::One, 100_000),
    );
    check(
        "quantile 1000 groups",
        case(
            "quantile",
            &["x", "0.9"],
            Grouping::RoundRobin(1000),
            100_000,
        ),
    );
}

#[test]
fn sketch_mode_gives_values_back() {
    // above sketch_above (here 2 000 values per group) the values are folded into the
    // sketch: size() must drop with them, not keep counting the values
    let mut c = case(
        "wasserstein",
        &["value", "'ref'", "feature"],
        Grouping::PerFeature,
        400_000,
    );
    c.sketch_above = 2000;
    check("wasserstein sketch", c);
    let mut c = case(
        "anderson_stat",
        &["x", "'ref'", "'x'"],
        Grouping::One,
        200_000,
    );
    c.sketch_above = 1000;
    check("anderson sketch", c);
    let mut c = case("drift_test", &["x", "'ref'", "'x'"], Grouping::One, 200_000);
    c.sketch_above = 1000;
    check("drift_test sketch", c);
}

#[test]
fn quantile_sketch_mode_is_bounded() {
    // 2²⁰ + values in one group: exact values would be > 8 MB; the sketch is ~100 KB
    let c = case("quantile", &["x", "0.5"], Grouping::One, (1 << 20) + 50_000);
    let (size, measured, _) = run(&c);
    println!("quantile sketch: size() {size} B, measured {measured} B");
    assert!(size < 1_500_000, "{size}");
    let err = (size as f64 - measured as f64).abs() / measured as f64;
    assert!(err <= TOLERANCE, "{size} vs {measured}");
}

#[test]
fn binned_and_categorical() {
    check(
        "psi long form",
        case(
            "psi",
            &["value", "'ref'", "feature"],
            Grouping::PerFeature,
            100_000,
        ),
    );
    check(
        "histogram",
        case(
            "histogram",
            &["x", "'ref'"],
            Grouping::RoundRobin(500),
            50_000,
        ),
    );
    let mut c = case(
        "psi",
        &["c", "'ref'", "'c'"],
        Grouping::RoundRobin(10),
        100_000,
    );
    c.cats = 5000;
    check("psi categories", c);
    let mut c = case("top_k", &["c", "3"], Grouping::RoundRobin(4), 100_000);
    c.cats = 20_000;
    check("top_k", c);
    let mut c = case(
        "drift_test",
        &["c", "'ref'", "'c'"],
        Grouping::RoundRobin(10),
        50_000,
    );
    c.cats = 2000;
    check("drift_test categories", c);
}

#[test]
fn dataset_drift_long_form() {
    check(
        "drift_share exact",
        case(
            "drift_share",
            &["value", "'ref'", "feature"],
            Grouping::One,
            200_000,
        ),
    );
    let mut c = case(
        "drifted_features",
        &["value", "'ref'", "feature"],
        Grouping::RoundRobin(3),
        400_000,
    );
    c.sketch_above = 1000;
    check("drifted_features sketch", c);
}

#[test]
fn fixed_size_states() {
    check(
        "mmd",
        case(
            "mmd",
            &["x", "y", "'ref'"],
            Grouping::RoundRobin(20),
            100_000,
        ),
    );
    check(
        "covariance_matrix",
        case(
            "covariance_matrix",
            &["x", "y"],
            Grouping::RoundRobin(2000),
            50_000,
        ),
    );
    check(
        "missing_rate",
        case("missing_rate", &["x"], Grouping::RoundRobin(5000), 50_000),
    );
}

/// `size()` must not walk groups or values: on states of 20 000 groups it takes well under
/// the time of one pass over them.
#[test]
fn size_is_constant_time() {
    for c in [
        case(
            "wasserstein",
            &["x", "'ref'", "'x'"],
            Grouping::RoundRobin(20_000),
            200_000,
        ),
        case(
            "drift_share",
            &["value", "'ref'", "feature"],
            Grouping::One,
            400_000,
        ),
        case(
            "psi",
            &["c", "'ref'", "'c'"],
            Grouping::RoundRobin(20_000),
            200_000,
        ),
    ] {
        let reg = registry(c.sketch_above);
        let f = udaf(&reg, c.func);
        let mut acc = accumulator(&f, &c.args);
        let groups = match c.grouping {
            Grouping::RoundRobin(n) => n,
            _ => 1,
        };
        let mut done = 0;
        for b in batches(c.rows, c.cats, 3) {
            let a: Vec<ArrayRef> = c
                .args
                .iter()
                .map(|e| e.evaluate(&b).unwrap().into_array(b.num_rows()).unwrap())
                .collect();
            let idx: Vec<usize> = (0..b.num_rows()).map(|i| (done + i) % groups).collect();
            done += b.num_rows();
            acc.update_batch(&a, &idx, None, groups).unwrap();
        }
        let calls = 10_000;
        let t = Instant::now();
        let mut sum = 0usize;
        for _ in 0..calls {
            sum = sum.wrapping_add(std::hint::black_box(&acc).size());
        }
        let per_call = t.elapsed().as_secs_f64() / calls as f64;
        assert!(sum > 0);
        // a walk over 20 000 groups costs ≥ 20 µs even optimised
        assert!(
            per_call < 2e-6,
            "{}: size() takes {:.2} µs",
            c.func,
            per_call * 1e6
        );
    }
}
