//! Evaluate the Driftwatch statistics for the conformance tests.
//!
//! `cargo run -p driftwatch-udfs --example eval_stats -- REF.(parquet|csv) CUR.(parquet|csv)`
//!
//! Profiles REF as baseline `ref`, registers CUR as table `cur`, runs for every numeric column
//! `x` of `cur` that `ref` also has
//! `SELECT wasserstein(x,'ref'), wasserstein_norm(x,'ref'), ks_stat(x,'ref'),
//!  ks_pvalue(x,'ref'), psi(x,'ref'), js_distance(x,'ref') FROM cur` and `zscore(x,'ref')`,
//! plus `mahalanobis(all numeric columns, 'ref')`, and prints one JSON object to stdout.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use driftwatch_udfs::{register_all, BaselineProfile, BaselineRegistry, ProfileOptions};
use serde_json::{json, Map, Value};

async fn register(ctx: &SessionContext, name: &str, path: &str) -> datafusion::common::Result<()> {
    if path.ends_with(".csv") {
        ctx.register_csv(name, path, CsvReadOptions::new()).await
    } else {
        ctx.register_parquet(name, path, ParquetReadOptions::default())
            .await
    }
}

fn column_values(b: &RecordBatch, i: usize) -> Vec<Value> {
    let c = cast(b.column(i), &DataType::Float64).expect("cast to f64");
    let c = c.as_primitive::<Float64Type>();
    (0..c.len())
        .map(|r| {
            if c.is_null(r) {
                Value::Null
            } else {
                json!(c.value(r))
            }
        })
        .collect()
}

async fn query(ctx: &SessionContext, sql: &str) -> datafusion::common::Result<RecordBatch> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let schema = ctx.sql(sql).await?.schema().inner().clone();
    Ok(concat_batches(&schema, &batches)?)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: eval_stats REF.(parquet|csv) CUR.(parquet|csv)");
        std::process::exit(2);
    }
    let ctx = SessionContext::new();
    register(&ctx, "ref_table", &args[1]).await?;
    let ref_batches = ctx.sql("SELECT * FROM ref_table").await?.collect().await?;
    let profile = BaselineProfile::from_batches("ref", &ref_batches, &ProfileOptions::default())?;
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
    let mut out = Map::new();
    for c in &numeric {
        let q = format!(
            "SELECT wasserstein(\"{c}\",'ref'), wasserstein_norm(\"{c}\",'ref'), \
             ks_stat(\"{c}\",'ref'), ks_pvalue(\"{c}\",'ref'), psi(\"{c}\",'ref'), \
             js_distance(\"{c}\",'ref') FROM cur"
        );
        let b = query(&ctx, &q).await?;
        let names = [
            "wasserstein",
            "wasserstein_norm",
            "ks_stat",
            "ks_pvalue",
            "psi",
            "js_distance",
        ];
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            m.insert(
                n.to_string(),
                column_values(&b, i).pop().unwrap_or(Value::Null),
            );
        }
        let z = query(&ctx, &format!("SELECT zscore(\"{c}\",'ref') FROM cur")).await?;
        m.insert("zscore".into(), Value::Array(column_values(&z, 0)));
        let p = profile.numeric(c).expect("numeric column");
        m.insert(
            "profile".into(),
            json!({"mean": p.mean, "std": p.std, "std_pop": p.std_pop,
                   "bin_edges": p.bin_edges, "count": p.count}),
        );
        out.insert(c.clone(), Value::Object(m));
    }
    if !numeric.is_empty() {
        let cols: Vec<String> = numeric.iter().map(|c| format!("\"{c}\"")).collect();
        let q = format!("SELECT mahalanobis({}, 'ref') FROM cur", cols.join(", "));
        let m = query(&ctx, &q).await?;
        out.insert("__mahalanobis".into(), Value::Array(column_values(&m, 0)));
    }
    println!("{}", Value::Object(out));
    Ok(())
}
