//! Evaluate the Driftwatch statistics for the conformance tests.
//!
//! `cargo run -p driftwatch-udfs --example eval_stats -- REF.(parquet|csv) CUR.(parquet|csv)`
//!
//! Profiles REF as baseline `ref`, registers CUR as table `cur`, runs for every numeric column
//! `x` of `cur` that `ref` also has
//! every drift aggregate, `quantile`, `histogram`, `missing_*`, the change detectors over
//! `array_agg(x)` (file order), and the per-row `zscore`, `iqr_outlier`, `out_of_range`; for
//! every string column, and every integer column the baseline profiles as categorical too
//! (under `"<column>#categorical"`), the categorical drift aggregates; over all numeric columns
//! `mahalanobis`, `mmd` and `isolation_forest_score` (plus the forest itself); and prints one
//! JSON object to stdout. `DRIFTWATCH_ADWIN_PARAMS="d,c,m,w,g;…"` adds `adwin(array_agg(x),
//! d,c,m,w,g)` for each parameter set, under the key `adwin(d,c,m,w,g)`.
//! `DRIFTWATCH_MMD_PERMUTATIONS=default,1,37` (comma-separated; `default` omits the
//! argument) adds `mmd_pvalue` over all numeric columns once per entry, as
//! `"__mmd_pvalue": {"default": p, "1": p, "37": p}`.
//! `DRIFTWATCH_PROFILE_BINS=fd|sturges|quantile:K|equal:K|edges:e0,e1,…` sets the baseline's
//! bin rule (default: the profile default, deciles `quantile:10`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use driftwatch_udfs::{register_all, BaselineProfile, BaselineRegistry, BinRule, ProfileOptions};
use serde_json::{json, Map, Value};

async fn register(ctx: &SessionContext, name: &str, path: &str) -> datafusion::common::Result<()> {
    if path.ends_with(".csv") {
        ctx.register_csv(name, path, CsvReadOptions::new()).await
    } else {
        ctx.register_parquet(name, path, ParquetReadOptions::default())
            .await
    }
}

fn json_at(c: &ArrayRef, r: usize) -> Value {
    if c.is_null(r) {
        return Value::Null;
    }
    match c.data_type() {
        DataType::Boolean => json!(c.as_boolean().value(r)),
        DataType::Utf8 => json!(c.as_string::<i32>().value(r)),
        DataType::List(_) => {
            let v = c.as_list::<i32>().value(r);
            Value::Array((0..v.len()).map(|i| json_at(&v, i)).collect())
        }
        _ => {
            let f = cast(c, &DataType::Float64).expect("cast to f64");
            let v = f.as_primitive::<Float64Type>().value(r);
            if v.is_finite() {
                json!(v)
            } else {
                json!(v.to_string())
            }
        }
    }
}

fn column_values(b: &RecordBatch, i: usize) -> Vec<Value> {
    let c = b.column(i);
    (0..c.len()).map(|r| json_at(c, r)).collect()
}

async fn query(ctx: &SessionContext, sql: &str) -> datafusion::common::Result<RecordBatch> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let schema = ctx.sql(sql).await?.schema().inner().clone();
    Ok(concat_batches(&schema, &batches)?)
}

const STATS: [&str; 19] = [
    "wasserstein",
    "wasserstein_norm",
    "ks_stat",
    "ks_pvalue",
    "psi",
    "js_distance",
    "kl_div",
    "hellinger",
    "tvd",
    "l_inf",
    "chi2_stat",
    "chi2_pvalue",
    "chi2_gof_stat",
    "chi2_gof_pvalue",
    "energy_distance",
    "cvm_stat",
    "cvm_pvalue",
    "anderson_stat",
    "anderson_pvalue",
];

const CAT_STATS: [&str; 10] = [
    "psi",
    "js_distance",
    "kl_div",
    "hellinger",
    "tvd",
    "l_inf",
    "chi2_stat",
    "chi2_pvalue",
    "chi2_gof_stat",
    "chi2_gof_pvalue",
];

/// Profile options with the bin rule of `DRIFTWATCH_PROFILE_BINS`.
fn profile_options() -> Result<ProfileOptions, Box<dyn std::error::Error>> {
    let spec = std::env::var("DRIFTWATCH_PROFILE_BINS").unwrap_or_default();
    let (rule, arg) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
    let bins = match rule.trim() {
        "" => ProfileOptions::default().bins,
        "fd" => BinRule::Fd,
        "sturges" => BinRule::Sturges,
        "quantile" => BinRule::Quantile(arg.trim().parse()?),
        "equal" => BinRule::Count(arg.trim().parse()?),
        "edges" => BinRule::Explicit(
            arg.split(',')
                .map(|v| v.trim().parse())
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("DRIFTWATCH_PROFILE_BINS: unknown rule '{other}'").into()),
    };
    Ok(ProfileOptions {
        bins,
        ..ProfileOptions::default()
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: eval_stats REF.(parquet|csv) CUR.(parquet|csv)");
        std::process::exit(2);
    }
    // one partition: array_agg keeps file order (change detectors)
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    register(&ctx, "ref_table", &args[1]).await?;
    let ref_batches = ctx.sql("SELECT * FROM ref_table").await?.collect().await?;
    let profile = BaselineProfile::from_batches("ref", &ref_batches, &profile_options()?)?;
    let reg = Arc::new(BaselineRegistry::new());
    let profile = reg.insert(profile);
    register_all(&ctx, &reg);
    register(&ctx, "cur", &args[2]).await?;

    let cur_schema = ctx.table("cur").await?.schema().inner().clone();
    let numeric: Vec<String> = cur_schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_numeric() && profile.numeric(f.name()).is_some())
        .map(|f| f.name().clone())
        .collect();
    let adwin_params = std::env::var("DRIFTWATCH_ADWIN_PARAMS").unwrap_or_default();
    let mut out = Map::new();
    for c in &numeric {
        let q = format!("\"{c}\"");
        let mut exprs: Vec<(String, String)> = STATS
            .iter()
            // As Float64: binned statistics of an integer column that the baseline also
            // profiles as categorical would compare categories (udfs/tests/categorical.rs);
            // here they are checked on the bins.
            .map(|n| {
                (
                    n.to_string(),
                    format!("{n}(CAST({q} AS DOUBLE),'ref','{c}')"),
                )
            })
            .collect();
        for p in ["0", "0.1", "0.5", "0.9", "1"] {
            exprs.push((format!("quantile_{p}"), format!("quantile({q}, {p})")));
        }
        exprs.push(("histogram".into(), format!("histogram({q},'ref')")));
        exprs.push(("missing_count".into(), format!("missing_count({q})")));
        exprs.push(("missing_rate".into(), format!("missing_rate({q})")));
        for d in ["page_hinkley", "ddm", "cusum", "adwin"] {
            exprs.push((d.into(), format!("{d}(array_agg({q}))")));
        }
        for ps in adwin_params.split(';').filter(|ps| !ps.trim().is_empty()) {
            let e = format!("adwin(array_agg({q}), {ps})");
            exprs.push((format!("adwin({ps})"), e));
        }
        let sql = format!(
            "SELECT {} FROM cur",
            exprs
                .iter()
                .map(|e| e.1.clone())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let b = query(&ctx, &sql).await?;
        let mut m = Map::new();
        for (i, (n, _)) in exprs.iter().enumerate() {
            m.insert(n.clone(), column_values(&b, i).pop().unwrap_or(Value::Null));
        }
        for (key, f) in [
            ("zscore", format!("zscore({q},'ref')")),
            ("iqr_outlier", format!("iqr_outlier({q},'ref')")),
            ("iqr_outlier_3", format!("iqr_outlier({q},'ref', 3)")),
            ("out_of_range", format!("out_of_range({q},'ref')")),
        ] {
            let z = query(&ctx, &format!("SELECT {f} FROM cur")).await?;
            m.insert(key.into(), Value::Array(column_values(&z, 0)));
        }
        let p = profile.numeric(c).expect("numeric column");
        m.insert(
            "profile".into(),
            json!({"mean": p.mean, "std": p.std, "std_pop": p.std_pop,
                   "bin_edges": p.bin_edges, "count": p.count}),
        );
        out.insert(c.clone(), Value::Object(m));
    }
    let strings: Vec<String> = cur_schema
        .fields()
        .iter()
        .filter(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
        })
        .filter(|f| profile.categorical(f.name()).is_some())
        .map(|f| f.name().clone())
        .collect();
    // Integer columns the baseline also profiles as categorical get the categorical
    // aggregates on the integers themselves, under "<column>#categorical".
    let integer_categories = cur_schema
        .fields()
        .iter()
        .filter(|f| f.data_type().is_integer() && profile.categorical(f.name()).is_some())
        .map(|f| (f.name().clone(), format!("{}#categorical", f.name())));
    let categorical: Vec<(String, String)> = strings
        .iter()
        .map(|c| (c.clone(), c.clone()))
        .chain(integer_categories)
        .collect();
    for (c, key) in &categorical {
        let sql = format!(
            "SELECT {} FROM cur",
            CAT_STATS
                .iter()
                .map(|n| format!("{n}(\"{c}\",'ref')"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let b = query(&ctx, &sql).await?;
        let mut m = Map::new();
        for (i, n) in CAT_STATS.iter().enumerate() {
            m.insert(
                n.to_string(),
                column_values(&b, i).pop().unwrap_or(Value::Null),
            );
        }
        out.insert(key.clone(), Value::Object(m));
    }
    if !numeric.is_empty() {
        let cols: Vec<String> = numeric.iter().map(|c| format!("\"{c}\"")).collect();
        let q = format!("SELECT mahalanobis({}, 'ref') FROM cur", cols.join(", "));
        let m = query(&ctx, &q).await?;
        out.insert("__mahalanobis".into(), Value::Array(column_values(&m, 0)));
        let q = format!("SELECT mmd({}, 'ref') FROM cur", cols.join(", "));
        let m = query(&ctx, &q).await?;
        out.insert(
            "__mmd".into(),
            column_values(&m, 0).pop().unwrap_or(Value::Null),
        );
        if let Ok(spec) = std::env::var("DRIFTWATCH_MMD_PERMUTATIONS") {
            let mut pv = Map::new();
            for p in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let extra = if p == "default" {
                    String::new()
                } else {
                    format!(", {p}")
                };
                let q = format!(
                    "SELECT mmd_pvalue({}, 'ref'{extra}) FROM cur",
                    cols.join(", ")
                );
                let m = query(&ctx, &q).await?;
                pv.insert(p.into(), column_values(&m, 0).pop().unwrap_or(Value::Null));
            }
            out.insert("__mmd_pvalue".into(), Value::Object(pv));
        }
        let q = format!(
            "SELECT isolation_forest_score({}, 'ref') FROM cur",
            cols.join(", ")
        );
        let m = query(&ctx, &q).await?;
        out.insert("__iforest".into(), Value::Array(column_values(&m, 0)));
        let f = &profile.forest;
        let trees: Vec<Value> = f
            .forest
            .trees
            .iter()
            .map(|t| {
                Value::Array(
                    t.iter()
                        .map(|n| json!([n.feature, n.threshold, n.left, n.right, n.size]))
                        .collect(),
                )
            })
            .collect();
        out.insert(
            "__forest".into(),
            json!({"columns": f.columns, "sample_size": f.forest.sample_size, "trees": trees}),
        );
    }
    println!("{}", Value::Object(out));
    Ok(())
}
