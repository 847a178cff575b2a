//! Stops, restarts and damaged checkpoints change nothing a user sees: a graceful stop in
//! the middle of open windows, then a restart, gives exactly the tables of an uninterrupted
//! run; the same file script run twice stores each window once; a corrupt or truncated
//! newest checkpoint falls back to the previous one (with the write-ahead log replaying what
//! it does not cover); a far-future row is quarantined; an HTTP source without a monitor
//! answers 503. (Crashes of the real binary with `kill -9` are in
//! `tests/python/test_crash.py`.)

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use driftwatch::checkpoint::CheckpointStore;
use driftwatch::query::{OutputFormat, QueryEngine};
use driftwatch::runtime::{Driftwatch, RuntimeConfig};
use driftwatch::sinks::ResultStore;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T0: i64 = 1_767_225_600_000;

fn source(connector: &str) -> String {
    format!(
        "CREATE SOURCE ev (id VARCHAR, ts TIMESTAMP, k VARCHAR, v DOUBLE, \
           WATERMARK FOR ts AS ts - INTERVAL '1 second') \
         WITH ({connector}, time_format = 'epoch_ms', idle_timeout = '1 second');"
    )
}

const MONITORS: &str = "
CREATE MONITOR tumbled AS
  SELECT window_start, window_end, k, count(*) AS n, sum(v) AS s, min(v) AS lo, max(v) AS hi
  FROM TUMBLE(ev, ts, INTERVAL '5 seconds') GROUP BY window_start, window_end, k;
CREATE MONITOR hopped AS
  SELECT window_start, window_end, count(*) AS n, avg(v) AS a
  FROM HOP(ev, ts, INTERVAL '2 seconds', INTERVAL '6 seconds') GROUP BY window_start, window_end;
CREATE MONITOR sessions AS
  SELECT window_start, window_end, k, count(*) AS n
  FROM SESSION(ev, ts, INTERVAL '700 milliseconds') GROUP BY window_start, window_end, k;
CREATE MONITOR big AS SELECT id, ts, v FROM ev WHERE v > 90;
";

const CHECKS: &[&str] = &[
    "SELECT * FROM tumbled ORDER BY window_start, k",
    "SELECT * FROM hopped ORDER BY window_start",
    "SELECT * FROM sessions ORDER BY window_start, k",
    "SELECT * FROM big ORDER BY id",
    "SELECT count(*) AS late FROM tumbled_late",
];

/// JSON rows over 30 s of event time (ordered: nothing is late), three keys, with pauses
/// so sessions split.
fn rows(n: usize, seed: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let pause = (i as i64 / 100) * 1_500;
            let ts = T0 + (i as i64) * 30_000 / n as i64 + pause;
            format!(
                r#"{{"id":"r{i:06}","ts":{ts},"k":"{}","v":{:.3}}}"#,
                ["a", "b", "c"][rng.gen_range(0..3)],
                rng.gen_range(0.0..100.0)
            )
        })
        .collect()
}

fn config(dir: &Path) -> RuntimeConfig {
    RuntimeConfig {
        data_dir: dir.to_path_buf(),
        http_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        checkpoint_interval: Some(Duration::from_millis(300)),
        ..RuntimeConfig::default()
    }
}

async fn query(dir: &Path, sql: &str) -> String {
    let batches = QueryEngine::run(&ResultStore::new(dir), sql).await.unwrap();
    QueryEngine::render(&batches, OutputFormat::Csv).unwrap()
}

/// A running system with the HTTP source, and the URL to post to.
struct Http {
    url: String,
    stop: tokio_util::sync::CancellationToken,
    control: driftwatch::runtime::ControlHandle,
    runner: tokio::task::JoinHandle<Result<(), driftwatch::runtime::RuntimeError>>,
}

async fn start_http(dir: &Path) -> Http {
    spawn(
        dir,
        &format!("{}\n{MONITORS}", source("connector = 'http'")),
    )
    .await
}

/// Runs `sql` in a system on `dir` until stopped; the URL is of the HTTP source, if any.
async fn spawn(dir: &Path, sql: &str) -> Http {
    let mut system = Driftwatch::open(config(dir)).unwrap();
    system.execute_script(sql).await.unwrap();
    system.start().await.unwrap();
    let url = system
        .http_addr()
        .map(|a| format!("http://{a}/ingest/ev"))
        .unwrap_or_default();
    let stop = system.shutdown_token();
    let control = system.control();
    let runner = tokio::spawn(async move { system.wait(None).await });
    Http {
        url,
        stop,
        control,
        runner,
    }
}

async fn post(url: &str, rows: &[String]) {
    let client = reqwest::Client::new();
    for chunk in rows.chunks(50) {
        let resp = client
            .post(url)
            .body(chunk.join("\n"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }
}

impl Http {
    /// Graceful stop: inputs, final checkpoint, monitors.
    async fn stop(self) {
        self.stop.cancel();
        self.runner.await.unwrap().unwrap();
    }

    /// Waits until traffic stopped long enough for the idle timeout to close every window
    /// (as many as `want` holds), then stops.
    async fn drain_and_stop(self, dir: &Path, want: &Path) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let count = "SELECT (SELECT count(*) FROM tumbled) + (SELECT count(*) FROM hopped) \
                     + (SELECT count(*) FROM sessions) AS c";
        let windows = query(want, count).await;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if query(dir, count).await == windows || tokio::time::Instant::now() > deadline {
                break;
            }
        }
        self.stop().await;
    }
}

/// The uninterrupted reference run over `rows` (a file source: its end flushes every window);
/// returns its data dir and number of tumbling windows.
async fn reference(work: &Path, rows: &[String]) -> (PathBuf, String) {
    let dir = work.join("reference");
    std::fs::create_dir_all(work).unwrap();
    let file = work.join("rows.jsonl");
    std::fs::write(&file, rows.join("\n") + "\n").unwrap();
    let mut system = Driftwatch::open(config(&dir)).unwrap();
    system
        .execute_script(&format!(
            "{}\n{MONITORS}",
            source(&format!("connector = 'file', path = '{}'", file.display()))
        ))
        .await
        .unwrap();
    system.start().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), system.wait(None))
        .await
        .unwrap()
        .unwrap();
    let windows = query(&dir, "SELECT count(*) AS c FROM tumbled").await;
    (dir, windows)
}

async fn assert_same_tables(got: &Path, want: &Path) {
    for check in CHECKS {
        let a = query(got, check).await;
        let b = query(want, check).await;
        assert!(b.lines().count() > 1, "{check} returned nothing");
        assert_eq!(a, b, "{check}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stops_mid_window_then_restarts_equal_one_uninterrupted_run() {
    let work = tempfile::tempdir().unwrap();
    let all = rows(3_000, 1);
    let (want, _) = reference(work.path(), &all).await;
    let dir = work.path().join("stopped");
    // Three runs, each stopped in the middle of open windows.
    for part in [&all[..1_234], &all[1_234..2_345]] {
        let run = start_http(&dir).await;
        post(&run.url, part).await;
        run.stop().await;
        // Nothing partial was emitted: every stored window is complete (same as the
        // reference), and open windows are not in the store yet.
        let stored = query(
            &dir,
            "SELECT window_start, k, n FROM tumbled ORDER BY window_start, k",
        )
        .await;
        let reference = query(
            &want,
            "SELECT window_start, k, n FROM tumbled ORDER BY window_start, k",
        )
        .await;
        assert!(
            reference.starts_with(&stored),
            "a stored window differs:\n{stored}"
        );
        assert!(stored.lines().count() < reference.lines().count());
    }
    let run = start_http(&dir).await;
    post(&run.url, &all[2_345..]).await;
    run.drain_and_stop(&dir, &want).await;
    assert_same_tables(&dir, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_the_same_file_script_twice_stores_each_window_once() {
    let work = tempfile::tempdir().unwrap();
    let more = rows(2_400, 2);
    let (dir, _) = reference(work.path(), &more[..2_000]).await;
    let before: Vec<String> = {
        let mut v = Vec::new();
        for c in CHECKS {
            v.push(query(&dir, c).await);
        }
        v
    };
    let files = |d: &Path| {
        std::fs::read_dir(d.join("tables").join("tumbled"))
            .unwrap()
            .count()
    };
    let n_files = files(&dir);
    // The script again, on the same data dir: the checkpoint says the file was read.
    let file = work.path().join("rows.jsonl");
    let mut system = Driftwatch::open(config(&dir)).unwrap();
    system
        .execute_script(&format!(
            "{}\n{MONITORS}",
            source(&format!("connector = 'file', path = '{}'", file.display()))
        ))
        .await
        .unwrap();
    system.start().await.unwrap();
    system.wait(None).await.unwrap();
    drop(system);
    for (c, b) in CHECKS.iter().zip(&before) {
        assert_eq!(&query(&dir, c).await, b, "{c} changed by the second run");
    }
    assert_eq!(files(&dir), n_files, "no new result file");

    // Rows appended to the file are read by the next run, and only they.
    std::fs::write(&file, more.join("\n") + "\n").unwrap();
    let mut system = Driftwatch::open(config(&dir)).unwrap();
    system
        .execute_script(&format!(
            "{}\n{MONITORS}",
            source(&format!("connector = 'file', path = '{}'", file.display()))
        ))
        .await
        .unwrap();
    system.start().await.unwrap();
    system.wait(None).await.unwrap();
    drop(system);
    let (full, _) = reference(&work.path().join("more"), &more).await;
    let n = |d: PathBuf| async move { query(&d, "SELECT count(*) AS c FROM big").await };
    assert_eq!(
        n(dir.clone()).await,
        n(full).await,
        "appended rows counted once"
    );
    // `--from-scratch` starts over: earlier results move aside, nothing is stored twice.
    let mut cfg = config(&dir);
    cfg.from_scratch = true;
    let mut system = Driftwatch::open(cfg).unwrap();
    system
        .execute_script(&format!(
            "{}\n{MONITORS}",
            source(&format!("connector = 'file', path = '{}'", file.display()))
        ))
        .await
        .unwrap();
    system.start().await.unwrap();
    system.wait(None).await.unwrap();
    drop(system);
    let again = query(&dir, "SELECT count(*) AS c FROM big").await;
    assert_eq!(again, n(work.path().join("more").join("reference")).await);
}

/// Damages the newest checkpoint file with `damage`, restarts, and checks that the
/// previous checkpoint is used and the final tables are still those of one run.
async fn fall_back_over(damage: fn(&Path)) {
    let work = tempfile::tempdir().unwrap();
    let all = rows(2_400, 3);
    let (want, _) = reference(work.path(), &all).await;
    let dir = work.path().join("damaged");
    let run = start_http(&dir).await;
    post(&run.url, &all[..1_000]).await;
    run.stop().await;
    let store = CheckpointStore::new(&dir);
    let first = *store.ids().last().unwrap();
    let run = start_http(&dir).await;
    post(&run.url, &all[1_000..1_800]).await;
    run.stop().await;
    let newest = *store.ids().last().unwrap();
    assert!(newest > first);
    damage(&store.path(newest));
    assert!(store.read(newest).is_err(), "the damage is detected");
    assert_eq!(store.latest().unwrap().manifest.id, newest - 1);
    // The restart restores the previous checkpoint, deletes the results it does not
    // cover, and the write-ahead log gives the rows after it again.
    let run = start_http(&dir).await;
    post(&run.url, &all[1_800..]).await;
    run.drain_and_stop(&dir, &want).await;
    assert_same_tables(&dir, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_falls_back_to_the_previous_one() {
    fall_back_over(|p| {
        let mut bytes = std::fs::read(p).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x5a;
        std::fs::write(p, bytes).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_checkpoint_falls_back_to_the_previous_one() {
    fall_back_over(|p| {
        let len = std::fs::metadata(p).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(len - 9)
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_future_row_is_quarantined_and_the_watermark_keeps_moving() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("future");
    let run = start_http(&dir).await;
    let now = chrono::Utc::now().timestamp_millis();
    let future = now + 86_400_000;
    let mut batch: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"id":"n{i}","ts":{},"k":"a","v":1.0}}"#,
                now - 20_000 + i * 500
            )
        })
        .collect();
    batch.insert(7, format!(r#"{{"id":"f","ts":{future},"k":"a","v":99.5}}"#));
    post(&run.url, &batch).await;
    post(
        &run.url,
        &[format!(
            r#"{{"id":"n20","ts":{},"k":"a","v":1.0}}"#,
            now - 5_000
        )],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop().await;
    let late = query(&dir, "SELECT id, _late_reason FROM tumbled_late").await;
    assert!(
        late.contains("f,event time is further ahead of its arrival than the source's max_future"),
        "{late}"
    );
    // The future row did not move event time: windows up to now - 6 s closed and the
    // future row's window is not among them.
    let ends = query(&dir, "SELECT max(window_end) AS e FROM tumbled").await;
    let end: i64 = chrono::DateTime::parse_from_rfc3339(&format!(
        "{}Z",
        ends.lines().nth(1).unwrap().trim_end_matches('Z')
    ))
    .map(|t| t.timestamp_millis())
    .unwrap_or(0);
    assert!(
        end > now - 20_000 && end < now,
        "windows closed up to {end}"
    );
    // Row-level monitors score every row, the future one included.
    assert!(query(&dir, "SELECT id FROM big").await.contains("\nf\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_source_without_a_monitor_answers_503() {
    let work = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(config(work.path())).unwrap();
    system
        .execute_script(&source("connector = 'http'"))
        .await
        .unwrap();
    system.start().await.unwrap();
    let url = format!("http://{}/ingest/ev", system.http_addr().unwrap());
    let resp = reqwest::Client::new()
        .post(&url)
        .body(format!(r#"{{"id":"x","ts":{T0},"k":"a","v":1}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.text().await.unwrap().contains("no running monitor"));
    system.shutdown_token().cancel();
    system.wait(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_system_on_one_data_dir_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let first = Driftwatch::open(config(work.path())).unwrap();
    let err = Driftwatch::open(config(work.path()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("in use by another driftwatch process"),
        "{err}"
    );
    drop(first);
    Driftwatch::open(config(work.path())).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_monitor_fails_alone_and_the_stopped_run_reports_it() {
    let work = tempfile::tempdir().unwrap();
    let Http {
        url,
        stop,
        control: snapshot,
        runner,
    } = spawn(
        work.path(),
        &format!(
            "{}\nCREATE MONITOR bad AS SELECT id, CAST(k AS INT) AS n FROM ev;",
            source("connector = 'http'")
        ),
    )
    .await;
    // A row the monitor cannot process: its plan fails at run time.
    let _ = reqwest::Client::new()
        .post(&url)
        .body(format!(
            r#"{{"id":"x","ts":{T0},"k":"not a number","v":1}}"#
        ))
        .send()
        .await
        .unwrap();
    let mut failed = None;
    for _ in 0..250 {
        let s = snapshot.snapshot().await.expect("the system keeps running");
        if let Some(m) = s.monitors.iter().find(|m| m.status == "failed") {
            failed = Some((m.name.clone(), m.error.clone()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The failure does not stop the run (the process and other monitors keep going)...
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!runner.is_finished(), "a failed monitor stopped the run");
    snapshot.snapshot().await.expect("the system still answers");
    // ...and a stopped run reports it.
    stop.cancel();
    let err = tokio::time::timeout(Duration::from_secs(30), runner)
        .await
        .expect("the run stops when asked")
        .unwrap()
        .expect_err("the run reports the failed monitor");
    let message = err.to_string();
    assert!(
        message.contains("monitor 'bad' failed") && message.contains("not a number"),
        "{message}"
    );
    let (name, error) = failed.expect("the monitor shows as failed");
    assert_eq!(name, "bad");
    assert!(error.unwrap_or_default().contains("not a number"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_retried_and_shown_never_flushing_windows() {
    let work = tempfile::tempdir().unwrap();
    let run = spawn(
        work.path(),
        &format!(
            "{}\n{MONITORS}",
            source("connector = 'kafka', brokers = '127.0.0.1:1', topic = 'nowhere'")
        ),
    )
    .await;
    let control = run.control.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = control.snapshot().await.unwrap();
        let source = s.sources.iter().find(|s| s.name == "ev").unwrap().clone();
        if source.status == "retrying" || tokio::time::Instant::now() > deadline {
            break source;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.status, "retrying", "{status:?}");
    assert!(status.error.unwrap_or_default().contains("nowhere"));
    run.stop().await;
    assert_eq!(
        query(work.path(), "SELECT count(*) AS c FROM tumbled").await,
        "c\n0\n",
        "no window was flushed because of the source error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_result_file_is_set_aside_and_queries_go_on() {
    let work = tempfile::tempdir().unwrap();
    let all = rows(1_000, 4);
    let (dir, _) = reference(work.path(), &all).await;
    let before = query(&dir, "SELECT count(*) AS c FROM big").await;
    let table = dir.join("tables").join("tumbled");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // Damage the last result file of `tumbled` (cut it in half).
    let victim = files.last().unwrap().clone();
    common::truncate_half(&victim);
    let windows = query(&dir, "SELECT count(*) AS c FROM tumbled").await;
    assert!(windows.starts_with("c\n"), "{windows}");
    assert_eq!(query(&dir, "SELECT count(*) AS c FROM big").await, before);
    let aside = dir
        .join("quarantine")
        .join("tumbled")
        .join(victim.file_name().unwrap());
    assert!(
        aside.exists(),
        "the damaged file was moved to {}",
        aside.display()
    );
    assert!(!victim.exists());
}
