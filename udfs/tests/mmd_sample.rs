//! `mmd` / `mmd_pvalue` keep a bounded, deterministic bottom-1000-by-hash sample of the
//! window's rows (FUNCTIONS.md, "Multivariate drift"): the state stays O(1000·k) however
//! many rows arrive, the sample is the documented one, and any split into partitions gives
//! exactly the single-pass value.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use driftwatch_udfs::math::iforest::SplitMix64;
use driftwatch_udfs::math::mmd::{row_hash, HashSample, MAX_ROWS};
use driftwatch_udfs::{register_all, BaselineProfile, BaselineRegistry, ProfileOptions};

fn rows(seed: u64, n: usize, shift: f64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    (0..2 * n)
        .map(|i| {
            // a few exact duplicates, which the sample must count as separate rows
            let v = rng.next_f64() * 4.0 + shift;
            if i % 50 < 2 {
                1.0
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn sample_is_bounded_and_is_the_bottom_k_by_hash() {
    let k = 2;
    let data = rows(1, 100_000, 0.0);
    let mut s = HashSample::default();
    let mut peak = 0;
    for r in data.chunks_exact(k) {
        s.push(r, k, MAX_ROWS);
        peak = peak.max(s.heap_bytes());
    }
    s.prune(k, MAX_ROWS);
    // ≤ 2·1000 rows of 2 values plus their hashes at any time (vs 1.6 MB of rows)
    assert!(peak <= 2 * (2 * MAX_ROWS + 1) * (k + 1) * 8 * 2, "{peak}");
    assert_eq!(s.len(), MAX_ROWS);
    // brute force: all rows ordered by (hash, row), the first 1000
    let mut all: Vec<(u64, [f64; 2])> = data
        .chunks_exact(k)
        .map(|r| (row_hash(r), [r[0], r[1]]))
        .collect();
    all.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1[0].total_cmp(&b.1[0]))
            .then(a.1[1].total_cmp(&b.1[1]))
    });
    let mut want: Vec<[f64; 2]> = all[..MAX_ROWS].iter().map(|p| p.1).collect();
    let mut got: Vec<[f64; 2]> = s.rows().chunks_exact(k).map(|r| [r[0], r[1]]).collect();
    let key = |a: &[f64; 2], b: &[f64; 2]| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1]));
    want.sort_by(key);
    got.sort_by(key);
    assert_eq!(got, want);
    // the duplicated row (1, 1) appears as often in the sample as its hash rank says
    assert!(row_hash(&[-0.0, 1.0]) == row_hash(&[0.0, 1.0]));
}

fn batch(x: &[f64]) -> RecordBatch {
    let (a, b): (Vec<f64>, Vec<f64>) = x.chunks_exact(2).map(|r| (r[0], r[1])).unzip();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Float64, false),
        ])),
        vec![
            Arc::new(Float64Array::from(a)) as ArrayRef,
            Arc::new(Float64Array::from(b)),
        ],
    )
    .unwrap()
}

async fn mmd(reg: &Arc<BaselineRegistry>, data: &[f64], partitions: usize, rows: usize) -> String {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
    register_all(&ctx, reg);
    let chunks: Vec<RecordBatch> = data.chunks(2 * rows).map(batch).collect();
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (i, b) in chunks.into_iter().enumerate() {
        parts[(i * 7) % partitions].push(b);
    }
    let schema = parts[0][0].schema();
    ctx.register_table("cur", Arc::new(MemTable::try_new(schema, parts).unwrap()))
        .unwrap();
    let batches = ctx
        .sql("SELECT mmd(a, b, 'ref') AS m, mmd_pvalue(a, b, 'ref', 20) AS p FROM cur")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn partitions_and_batches_give_the_single_pass_value() {
    let reg = Arc::new(BaselineRegistry::new());
    let base = [batch(&rows(2, 3000, 0.0))];
    reg.insert(BaselineProfile::from_batches("ref", &base, &ProfileOptions::default()).unwrap());
    let data = rows(3, 30_000, 0.2);
    let single = mmd(&reg, &data, 1, 30_000).await;
    for (partitions, rows) in [(4, 777), (3, 4096), (2, 10)] {
        assert_eq!(mmd(&reg, &data, partitions, rows).await, single);
    }
    // rows in a different order: the same sample, the same values
    let mut rev: Vec<f64> = data.chunks_exact(2).rev().flatten().copied().collect();
    assert_eq!(mmd(&reg, &rev, 4, 999).await, single);
    rev.truncate(2 * 900); // ≤ 1000 rows: all of them are used, values differ
    assert_ne!(mmd(&reg, &rev, 1, 900).await, single);
}
