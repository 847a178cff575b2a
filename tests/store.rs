//! The result store over long histories: compaction keeps every window exactly once
//! (through every crash point of a merge, and for readers holding an older listing), only
//! merges files no restart can discard, queries prune files by window time, and a
//! truncated result file is skipped and reported — through `driftwatch query`'s engine
//! and through the Flight SQL server.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use driftwatch::query::{FileAccess, OutputFormat, QueryEngine};
use driftwatch::sinks::store::compaction::Policy;
use driftwatch::sinks::store::index::{read_footer, schema_id};
use driftwatch::sinks::store::manifest::Manifest;
use driftwatch::sinks::store::names::FileName;
use driftwatch::sinks::ResultStore;
use driftwatch_udfs::BaselineRegistry;

/// 2026-01-01T00:00:00Z, a day boundary.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn no_background_compaction() {
    // SAFETY (edition 2021: safe): every test of this binary sets the same value.
    std::env::set_var("DRIFTWATCH_COMPACTION_INTERVAL", "off");
}

fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("window_start", ts.clone(), false),
        Field::new("window_end", ts, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("n", DataType::Int64, false),
    ]))
}

/// One window: a row per key.
fn window(start: i64, len: i64) -> RecordBatch {
    let keys = ["a", "b"];
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![start; keys.len()])),
            Arc::new(TimestampMillisecondArray::from(vec![
                start + len;
                keys.len()
            ])),
            Arc::new(StringArray::from(keys.to_vec())),
            Arc::new(Int64Array::from(vec![(start - T0) / len, 1])),
        ],
    )
    .unwrap()
}

/// Writes `count` windows of `len` ms from `start`, one file each (as a monitor flushing
/// every window), in epoch `epoch`.
fn write_windows(store: &ResultStore, table: &str, start: i64, len: i64, count: i64, epoch: u64) {
    let mut w = store.open(table, schema(), epoch).unwrap();
    for i in 0..count {
        w.append(window(start + i * len, len)).unwrap();
        w.flush().unwrap();
    }
}

async fn query(store: &ResultStore, sql: &str) -> String {
    let out = QueryEngine::execute(store, sql).await.unwrap();
    QueryEngine::render_output(&out, OutputFormat::Csv).unwrap()
}

const CHECK: &str = "SELECT count(*) AS rows, count(DISTINCT window_start) AS windows, \
                     sum(n) AS total, min(window_start) AS lo, max(window_end) AS hi FROM m";

fn files_on_disk(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn policy(delete_after: Duration) -> Policy {
    Policy {
        interval: None,
        grace: Duration::ZERO,
        delete_after,
        ..Policy::default()
    }
}

#[tokio::test]
async fn compaction_keeps_every_window_once_and_bounds_the_files() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let store = ResultStore::new(work.path());
    // Two days of 10-minute windows.
    write_windows(&store, "m", T0, 10 * MINUTE, 288, 0);
    let before = query(&ResultStore::new(work.path()), CHECK).await;
    assert!(before.contains("576,288,"), "{before}");
    let cached = query(&store, CHECK).await;
    assert_eq!(cached, before);

    let report = store
        .compact_until_idle(&policy(Duration::from_secs(3600)))
        .unwrap();
    // Day 1 is closed: one daily file. Day 2: 23 closed hours, one hourly file each; the
    // open last hour keeps its 6 files.
    assert_eq!(report.merges, 1 + 23, "{report:?}");
    let snap = store.snapshot("m").unwrap();
    let with_rows: Vec<_> = snap.files.iter().filter(|f| f.rows > 0).collect();
    assert_eq!(with_rows.len(), 1 + 23 + 6);
    assert_eq!(
        with_rows.iter().filter(|f| f.kind.is_compacted()).count(),
        24
    );
    // The same rows, through the cached listing and through a new reader.
    assert_eq!(query(&store, CHECK).await, before);
    assert_eq!(query(&ResultStore::new(work.path()), CHECK).await, before);

    // Replaced files stay for readers that listed them, and are deleted later.
    let dir = work.path().join("tables/m");
    assert_eq!(
        files_on_disk(&dir)
            .iter()
            .filter(|n| n.starts_with("part-"))
            .count(),
        289
    );
    let gc = store.compact_round(&policy(Duration::ZERO)).unwrap();
    assert_eq!(gc.deleted, 288 - 6);
    assert_eq!(query(&ResultStore::new(work.path()), CHECK).await, before);
    let manifest = Manifest::load(&dir).unwrap();
    assert!(manifest.superseded.is_empty(), "{manifest:?}");

    // Late results for a compacted hour are merged into it by a later round.
    write_windows(&store, "m", T0 + 30 * HOUR + 5 * MINUTE, 10 * MINUTE, 1, 0);
    let more = store.compact_until_idle(&policy(Duration::ZERO)).unwrap();
    assert_eq!(more.merges, 1, "{more:?}");
    let after = query(&ResultStore::new(work.path()), CHECK).await;
    assert!(after.contains("578,289,"), "{after}");
}

#[tokio::test]
async fn a_reader_holding_an_older_listing_still_reads_every_file() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let store = ResultStore::new(work.path());
    write_windows(&store, "m", T0, MINUTE, 180, 0);
    let old = store.snapshot("m").unwrap();
    let before = query(&store, CHECK).await;
    store
        .compact_until_idle(&policy(Duration::from_secs(3600)))
        .unwrap();
    for f in old.files.iter() {
        assert!(
            f.path.exists(),
            "{} deleted under a reader",
            f.path.display()
        );
    }
    // What the old listing holds is still every window once.
    let rows: u64 = old.files.iter().map(|f| f.rows).sum();
    assert_eq!(rows, 360);
    assert_eq!(query(&store, CHECK).await, before);
}

#[tokio::test]
async fn a_crash_at_any_step_of_a_merge_shows_every_window_once() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let original = work.path().join("original");
    write_windows(&ResultStore::new(&original), "m", T0, MINUTE, 180, 0);
    let expected = query(&ResultStore::new(&original), CHECK).await;
    let table = |root: &Path| root.join("tables/m");

    // Switched, inputs not deleted yet (a crash right after the manifest rename).
    let switched = work.path().join("switched");
    copy_dir(&original, &switched);
    let s = ResultStore::new(&switched);
    assert!(
        s.compact_until_idle(&policy(Duration::from_secs(3600)))
            .unwrap()
            .merges
            >= 2
    );
    assert_eq!(query(&ResultStore::new(&switched), CHECK).await, expected);
    let compacted: Vec<String> = files_on_disk(&table(&switched))
        .into_iter()
        .filter(|n| n.starts_with("cpt-"))
        .collect();
    assert!(!compacted.is_empty());

    // Outputs written, manifest not switched (a crash before the rename), plus a leftover
    // temporary file: invisible, and deleted by recovery.
    let unswitched = work.path().join("unswitched");
    copy_dir(&original, &unswitched);
    for name in &compacted {
        std::fs::copy(table(&switched).join(name), table(&unswitched).join(name)).unwrap();
    }
    std::fs::write(table(&unswitched).join(".cpt-x.parquet.tmp-1"), b"partial").unwrap();
    assert_eq!(query(&ResultStore::new(&unswitched), CHECK).await, expected);
    ResultStore::new(&unswitched).discard_uncovered(0).unwrap();
    let left = files_on_disk(&table(&unswitched));
    assert!(left.iter().all(|n| n.starts_with("part-")), "{left:?}");
    assert_eq!(query(&ResultStore::new(&unswitched), CHECK).await, expected);

    // Deleting the replaced files interrupted halfway, then after all deletions but
    // before the manifest forgot them.
    let manifest = Manifest::load(&table(&switched)).unwrap();
    let half = manifest.superseded.len() / 2;
    for s in &manifest.superseded[..half] {
        std::fs::remove_file(table(&switched).join(&s.file)).unwrap();
    }
    assert_eq!(query(&ResultStore::new(&switched), CHECK).await, expected);
    for s in &manifest.superseded[half..] {
        std::fs::remove_file(table(&switched).join(&s.file)).unwrap();
    }
    assert_eq!(query(&ResultStore::new(&switched), CHECK).await, expected);
    ResultStore::new(&switched).discard_uncovered(0).unwrap();
    let s = ResultStore::new(&switched);
    s.compact_round(&policy(Duration::ZERO)).unwrap();
    assert!(Manifest::load(&table(&switched))
        .unwrap()
        .superseded
        .is_empty());
    assert_eq!(query(&s, CHECK).await, expected);
}

#[tokio::test]
async fn only_files_no_restart_can_discard_are_merged() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let store = ResultStore::new(work.path());
    // Epochs 1..=4, one hour each, then a fifth hour so that the fourth is closed.
    for e in 1..=5u64 {
        write_windows(&store, "m", T0 + (e as i64 - 1) * HOUR, MINUTE, 60, e);
    }
    // Checkpoints 2 and 3 on disk: a restart restores one of them, or none.
    let ckpt = work.path().join("checkpoints");
    std::fs::create_dir_all(&ckpt).unwrap();
    for id in [2u64, 3] {
        std::fs::write(ckpt.join(format!("ckpt-{id:020}.dwc")), b"x").unwrap();
    }
    store
        .compact_until_idle(&policy(Duration::from_secs(3600)))
        .unwrap();
    let dir = work.path().join("tables/m");
    let compacted: Vec<FileName> = files_on_disk(&dir)
        .iter()
        .filter_map(|n| FileName::parse(n))
        .filter(|k| k.is_compacted())
        .collect();
    assert_eq!(compacted.len(), 2, "{compacted:?}");
    assert!(compacted.iter().all(|k| k.epoch() <= 2), "{compacted:?}");

    // Restoring checkpoint 2 keeps epochs 1 and 2 (compacted) and drops 3..=5.
    ResultStore::new(work.path()).discard_uncovered(2).unwrap();
    let out = query(&ResultStore::new(work.path()), CHECK).await;
    assert!(out.contains("240,120,"), "{out}");
    // Restoring none drops every epoch after 0, compacted files included.
    ResultStore::new(work.path()).discard_uncovered(0).unwrap();
    let out = query(&ResultStore::new(work.path()), CHECK).await;
    assert!(out.starts_with("rows,windows,total,lo,hi\n0,0,"), "{out}");
}

/// Files the physical plan of `sql` scans.
async fn planned_files(store: &ResultStore, sql: &str) -> usize {
    let ctx = QueryEngine::session(
        store,
        &Arc::new(BaselineRegistry::new()),
        FileAccess::CatalogOnly,
    )
    .unwrap();
    QueryEngine::register_data_dir(&ctx, store).await.unwrap();
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    scanned_files(&plan)
}

fn scanned_files(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let any: &dyn std::any::Any = plan.as_ref();
    let mut n = 0;
    if let Some(exec) = any.downcast_ref::<DataSourceExec>() {
        let source: &dyn std::any::Any = exec.data_source().as_ref();
        if let Some(config) = source.downcast_ref::<FileScanConfig>() {
            n += config.file_groups.iter().map(|g| g.len()).sum::<usize>();
        }
    }
    n + plan
        .children()
        .into_iter()
        .map(scanned_files)
        .sum::<usize>()
}

#[tokio::test]
async fn a_last_hour_query_plans_only_recent_files() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let store = ResultStore::new(work.path());
    write_windows(&store, "m", T0, MINUTE, 300, 0);
    let last_hour = format!(
        "SELECT count(*) FROM m WHERE window_start >= to_timestamp_millis({})",
        T0 + 240 * MINUTE
    );
    assert_eq!(planned_files(&store, &last_hour).await, 60);
    store.compact_until_idle(&policy(Duration::ZERO)).unwrap();
    // Hours 0..=3 are closed: one hourly file each. Hour 4 is open, but its 60 files are
    // more than trigger a merge: one file too. The last hour plans only that one.
    assert_eq!(planned_files(&store, &last_hour).await, 1);
    assert_eq!(planned_files(&store, "SELECT * FROM m").await, 5);
    let out = query(
        &store,
        &last_hour.replace(
            "count(*)",
            "count(*) AS c, count(DISTINCT window_start) AS w",
        ),
    )
    .await;
    assert_eq!(out, "c,w\n120,60\n");
    let earlier = format!(
        "SELECT count(*) FROM m WHERE window_start < to_timestamp_millis({})",
        T0 + HOUR
    );
    assert_eq!(planned_files(&store, &earlier).await, 1);
}

#[tokio::test]
async fn a_new_reader_plans_compacted_files_from_the_manifest() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let store = ResultStore::new(work.path());
    // Three days and 90 minutes of 10-minute windows: three daily files, one hourly file
    // and the three files of the open hour.
    write_windows(&store, "m", T0, 10 * MINUTE, 3 * 144 + 9, 0);
    store.compact_until_idle(&policy(Duration::ZERO)).unwrap();
    store.compact_round(&policy(Duration::ZERO)).unwrap();
    let expected = query(&store, CHECK).await;
    assert!(expected.contains("882,441,"), "{expected}");

    let fresh = ResultStore::new(work.path());
    let snap = fresh.snapshot("m").unwrap();
    let compacted = snap.files.iter().filter(|f| f.kind.is_compacted()).count();
    assert_eq!(compacted, 3 + 1, "{:?}", snap.files);
    let appended = (snap.files.len() - compacted) as u64;
    // The appended files' footers and one to learn the schema; none per compacted file.
    assert!(
        fresh.footer_reads() <= appended + 1,
        "{} footers read for {appended} appended files",
        fresh.footer_reads()
    );
    // The manifest says what the footers say.
    for f in snap.files.iter() {
        let (schema, rows, ranges) = read_footer(&f.path).unwrap();
        assert_eq!(
            (schema_id(&schema), rows, &ranges),
            (f.schema_id, f.rows, &f.ranges),
            "{}",
            f.name
        );
    }
    assert_eq!(query(&fresh, CHECK).await, expected);
    // Files are pruned by the manifest's ranges: the second day is one daily file.
    let second_day = format!(
        "SELECT count(*) FROM m WHERE window_start >= to_timestamp_millis({}) \
         AND window_start < to_timestamp_millis({})",
        T0 + 24 * HOUR,
        T0 + 48 * HOUR
    );
    assert_eq!(
        planned_files(&ResultStore::new(work.path()), &second_day).await,
        1
    );
    assert_eq!(
        query(&ResultStore::new(work.path()), &second_day).await,
        "count(*)\n288\n"
    );
}

#[tokio::test]
async fn a_truncated_result_file_is_skipped_and_reported() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let store = ResultStore::new(work.path());
    write_windows(&store, "m", T0, MINUTE, 10, 0);
    let dir = work.path().join("tables/m");
    let parts: Vec<PathBuf> = files_on_disk(&dir)
        .iter()
        .filter(|n| n.starts_with("part-"))
        .map(|n| dir.join(n))
        .collect();
    // The first file is the empty one carrying the schema; cut a result file in half.
    // The cached reader of this store read every footer already.
    assert!(query(&store, CHECK).await.contains("20,10,"));
    common::truncate_half(&parts[4]);
    let fresh = ResultStore::new(work.path());
    assert!(query(&fresh, CHECK).await.contains("18,9,"));
    assert!(
        query(&store, CHECK).await.contains("18,9,"),
        "the cached listing notices it too"
    );
    let errors = query(
        &fresh,
        "SELECT table_name, file, moved_to IS NOT NULL AS moved FROM system.store_errors",
    )
    .await;
    let name = parts[4].file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(errors, format!("table_name,file,moved\nm,{name},true\n"));
    assert_eq!(fresh.fault_count(), 1);
    assert!(work.path().join("quarantine/m").join(&name).exists());
    // Reported once: a second query does not count it again.
    query(&fresh, CHECK).await;
    assert_eq!(fresh.fault_count(), 1);
    // Compaction goes on around it.
    fresh.compact_until_idle(&policy(Duration::ZERO)).unwrap();
    assert!(query(&fresh, CHECK).await.contains("18,9,"));
}

#[tokio::test]
async fn retention_deletes_compacted_files_by_their_newest_input() {
    no_background_compaction();
    let work = tempfile::tempdir().unwrap();
    let store = ResultStore::new(work.path());
    write_windows(&store, "m", T0, MINUTE, 120, 0);
    store.compact_until_idle(&policy(Duration::ZERO)).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_windows(&store, "m", T0 + 3 * HOUR, MINUTE, 1, 0);
    // Everything but the newest file is older than 20 ms.
    let removed = store.apply_retention(Duration::from_millis(20)).unwrap();
    assert!(removed >= 1, "{removed}");
    let out = query(&ResultStore::new(work.path()), CHECK).await;
    assert!(out.contains("2,1,"), "{out}");
    let manifest = Manifest::load(&work.path().join("tables/m")).unwrap();
    assert!(manifest.compacted.is_empty(), "{manifest:?}");
}

mod flight {
    use super::*;
    use driftwatch::runtime::{Driftwatch, RuntimeConfig};
    use driftwatch::serve::{start_flight, DdlPolicy, FlightConfig};
    use driftwatch_flight::arrow_flight::sql::client::FlightSqlServiceClient;
    use driftwatch_flight::tonic::transport::Endpoint;
    use futures::TryStreamExt;

    const MONITORS: &str = "
    CREATE SOURCE s (id VARCHAR, ts TIMESTAMP, x DOUBLE,
                     WATERMARK FOR ts AS ts - INTERVAL '100 milliseconds')
    WITH (connector = 'http', idle_timeout = '300 milliseconds');
    CREATE MONITOR stats AS
    SELECT window_start, window_end, count(*) AS n
    FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end;
    ";

    async fn count(
        c: &mut FlightSqlServiceClient<driftwatch_flight::tonic::transport::Channel>,
        sql: &str,
    ) -> i64 {
        let info = c.execute(sql.to_string(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let batches: Vec<RecordBatch> =
            c.do_get(ticket).await.unwrap().try_collect().await.unwrap();
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_truncated_file_is_skipped_by_flight_queries_and_shown_in_system_store_errors() {
        no_background_compaction();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut system = Driftwatch::open(RuntimeConfig {
            data_dir: data.clone(),
            http_listen: "127.0.0.1:0".parse().unwrap(),
            ..RuntimeConfig::default()
        })
        .unwrap();
        system.execute_script(MONITORS).await.unwrap();
        system.start().await.unwrap();
        let config = FlightConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..FlightConfig::default()
        };
        let server = start_flight(&system, &config, DdlPolicy::new([dir.path().to_path_buf()]))
            .await
            .unwrap();
        let ingest = format!("http://{}/ingest/s", system.http_addr().unwrap());
        let shutdown = system.shutdown_token();
        tokio::spawn(async move { system.wait(None).await });
        let channel = Endpoint::new(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = FlightSqlServiceClient::new(channel);

        // Ten windows, posted one after the other so they land in several files.
        let base = (chrono::Utc::now().timestamp_millis() / 1000 - 20) * 1000;
        let http = reqwest::Client::new();
        for k in 0..10i64 {
            let rows: Vec<_> = (0..3)
                .map(|i| serde_json::json!({"id": format!("{k}-{i}"), "ts": base + k * 1000 + i * 10, "x": 1.0}))
                .collect();
            assert!(http
                .post(&ingest)
                .json(&rows)
                .send()
                .await
                .unwrap()
                .status()
                .is_success());
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while count(&mut c, "SELECT count(*) FROM stats").await < 10 {
            assert!(tokio::time::Instant::now() < deadline, "windows not stored");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let table = data.join("tables/stats");
        let victim = files_on_disk(&table)
            .into_iter()
            .map(|n| table.join(n))
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("part-")
            })
            .find(|p| {
                let f = std::fs::File::open(p).unwrap();
                let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                    .unwrap();
                r.metadata().file_metadata().num_rows() > 0
            })
            .expect("a result file with rows");
        let rows = {
            let f = std::fs::File::open(&victim).unwrap();
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows()
        };
        common::truncate_half(&victim);
        assert_eq!(count(&mut c, "SELECT count(*) FROM stats").await, 10 - rows);
        assert_eq!(
            count(&mut c, "SELECT sum(n) FROM stats").await,
            3 * (10 - rows)
        );
        // The system tables are refreshed at most every 250 ms.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            count(
                &mut c,
                "SELECT count(*) FROM system.store_errors WHERE table_name = 'stats'"
            )
            .await,
            1
        );
        shutdown.cancel();
    }
}
