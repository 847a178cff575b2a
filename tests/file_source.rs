//! The file connector end to end: formats, time formats, bad lines, directories.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Float64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit, TimestampMillisecondType};
use arrow::record_batch::RecordBatch;
use driftwatch::runtime::metrics::SourceMetrics;
use driftwatch::sources::file::FileConnector;
use driftwatch::sources::{
    Connector, ConnectorSpec, FeedMessage, RejectMessage, RejectedRecord, SourceFeed,
    SourcePosition, SourceSchema, TimeFormat, EVENT_TIME_TYPE,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn schema(format: TimeFormat) -> Arc<SourceSchema> {
    let fields = vec![
        Field::new("request_id", DataType::Utf8, true),
        Field::new("ts", EVENT_TIME_TYPE, false),
        Field::new("x", DataType::Float64, true),
    ];
    Arc::new(SourceSchema::new("s", fields, Some(("ts".into(), 0)), format).unwrap())
}

fn spec(schema: Arc<SourceSchema>, options: &[(&str, &str)]) -> ConnectorSpec {
    ConnectorSpec::new(
        schema,
        options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

struct Run {
    batches: Vec<RecordBatch>,
    rejected: Vec<RejectedRecord>,
}

impl Run {
    fn ids(&self) -> Vec<String> {
        self.batches
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_string::<i32>().clone();
                (0..a.len()).map(move |i| a.value(i).to_string())
            })
            .collect()
    }
    fn ts(&self) -> Vec<i64> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .to_vec()
            })
            .collect()
    }
    fn x(&self) -> Vec<Option<f64>> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.column(2)
                    .as_primitive::<Float64Type>()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Runs the connector to completion with an acknowledging subscriber.
async fn run(spec: ConnectorSpec) -> Run {
    run_from(spec, None).await.0
}

/// Runs the connector from `start` (as restored from a checkpoint) to completion; returns
/// what it delivered and the position it reached.
async fn run_from(spec: ConnectorSpec, start: Option<SourcePosition>) -> (Run, SourcePosition) {
    let connector = Arc::new(FileConnector::from_spec(&spec).unwrap());
    assert!(connector.is_bounded());
    let (reject_tx, mut reject_rx) = mpsc::channel(4096);
    let feed = SourceFeed::new(
        spec.schema.clone(),
        None,
        reject_tx,
        Arc::new(SourceMetrics::default()),
    );
    if let Some(p) = start {
        feed.restore([(0, p)].into_iter().collect(), &Default::default());
    }
    let mut sub = feed.subscribe("test");
    let task = tokio::spawn(connector.run(feed.clone(), CancellationToken::new()));
    let mut batches = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), sub.recv())
            .await
            .unwrap()
        {
            Some(FeedMessage::Batch { batch, taken, .. }) => {
                assert_eq!(batch.schema().fields(), spec.schema.arrow.fields());
                batches.push(batch);
                if let Some(t) = taken {
                    let _ = t.send(());
                }
            }
            Some(FeedMessage::Watermark(_))
            | Some(FeedMessage::Barrier(_))
            | Some(FeedMessage::PartitionProgress { .. }) => {}
            Some(FeedMessage::End) | None => break,
        }
    }
    task.await.unwrap().unwrap();
    let rejected = std::iter::from_fn(|| reject_rx.try_recv().ok())
        .flat_map(|m: RejectMessage| m.records())
        .collect();
    let position = feed
        .position(0)
        .expect("a file source records its position");
    (Run { batches, rejected }, position)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn jsonl_each_time_format_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            TimeFormat::Auto,
            r#"1700000000123"#,
            r#""2023-11-14T22:13:20.5Z""#,
            [1_700_000_000_123, 1_700_000_000_500],
        ),
        (
            TimeFormat::EpochMillis,
            "1700000000123",
            "\"1700000000124\"",
            [1_700_000_000_123, 1_700_000_000_124],
        ),
        (
            TimeFormat::EpochSeconds,
            "1700000000",
            "1700000000.25",
            [1_700_000_000_000, 1_700_000_000_250],
        ),
        (
            TimeFormat::Rfc3339,
            r#""2023-11-14T22:13:20Z""#,
            r#""2023-11-14T23:13:20.75+01:00""#,
            [1_700_000_000_000, 1_700_000_000_750],
        ),
    ];
    for (format, t1, t2, expected) in cases {
        let text = format!(
            "{{\"request_id\":\"a\",\"ts\":{t1},\"x\":1.5,\"unknown\":true}}\n\
             {{\"request_id\":\"bad\",\"ts\":{t1},\"x\":\"not a number\"}}\n\
             \n\
             {{\"request_id\":\"b\",\"ts\":{t2}}}\n\
             {{\"request_id\":\"c\",\"ts\":\"never\"}}\n"
        );
        let path = write(dir.path(), "in.jsonl", &text);
        let out = run(spec(
            schema(format),
            &[("connector", "file"), ("path", &path), ("batch_size", "2")],
        ))
        .await;
        assert_eq!(out.ids(), ["a", "b"], "{format:?}");
        assert_eq!(out.ts(), expected, "{format:?}");
        assert_eq!(out.x(), [Some(1.5), None]);
        let lines: Vec<_> = out.rejected.iter().map(|r| r.position).collect();
        assert_eq!(lines, [Some(2), Some(5)], "{format:?}: {:?}", out.rejected);
        assert!(
            out.rejected[0].reason.starts_with("line 2: column 'x'"),
            "{}",
            out.rejected[0].reason
        );
        assert!(
            out.rejected[1].reason.contains("'ts'"),
            "{}",
            out.rejected[1].reason
        );
        assert!(out.rejected[1].raw.contains("never"));
    }
}

#[tokio::test]
async fn csv_with_header_and_time_formats() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "x;request_id;ts\n1.5;a;1700000000\n2.5;\"b;quoted\";1700000001.5\noops;c;1700000002\n";
    let path = write(dir.path(), "in.csv", text);
    let out = run(spec(
        schema(TimeFormat::EpochSeconds),
        &[("path", &path), ("delimiter", ";")],
    ))
    .await;
    assert_eq!(out.ids(), ["a", "b;quoted"]);
    assert_eq!(out.ts(), [1_700_000_000_000, 1_700_000_001_500]);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].position, Some(4));
    assert!(
        out.rejected[0].reason.contains("'x'"),
        "{}",
        out.rejected[0].reason
    );

    let text = "a,2023-11-14T22:13:20Z,1\nb,2023-11-14T22:13:21Z,2\n";
    let path = write(dir.path(), "noheader.data", text);
    let opts = [
        ("path", path.as_str()),
        ("format", "csv"),
        ("header", "false"),
    ];
    let out = run(spec(schema(TimeFormat::Rfc3339), &opts)).await;
    assert_eq!(out.ts(), [1_700_000_000_000, 1_700_000_001_000]);
    assert_eq!(out.x(), [Some(1.0), Some(2.0)]);
}

#[tokio::test]
async fn parquet_timestamps_any_unit() {
    let dir = tempfile::tempdir().unwrap();
    let file_schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("request_id", DataType::Utf8, true),
        Field::new("ignored", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        file_schema.clone(),
        vec![
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    1_700_000_000_123_456,
                    1_700_000_001_000_000,
                    5,
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec!["a", "b", "c"])),
            Arc::new(StringArray::from(vec!["z", "z", "z"])),
        ],
    )
    .unwrap();
    let path = dir.path().join("in.parquet");
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        file_schema,
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let out = run(spec(
        schema(TimeFormat::Auto),
        &[("path", path.to_str().unwrap()), ("batch_size", "2")],
    ))
    .await;
    assert_eq!(out.ids(), ["a", "b", "c"]);
    assert_eq!(out.ts(), [1_700_000_000_123, 1_700_000_001_000, 0]);
    assert_eq!(out.batches.len(), 2);
}

#[tokio::test]
async fn directory_in_name_order_and_json_arrays() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.jsonl", "{\"request_id\":\"b1\",\"ts\":2}\n");
    write(
        dir.path(),
        "a.jsonl",
        "{\"request_id\":\"a1\",\"ts\":1}\n{\"request_id\":\"a2\",\"ts\":1}\n",
    );
    write(dir.path(), "c.csv", "request_id,ts\nc1,3\n");
    write(
        dir.path(),
        "d.json",
        r#"[{"request_id":"d1","ts":4},{"request_id":"d2","ts":"1970-01-01T00:00:00.005Z"}]"#,
    );
    write(
        dir.path(),
        ".hidden.jsonl",
        "{\"request_id\":\"h\",\"ts\":0}\n",
    );
    let out = run(spec(
        schema(TimeFormat::Auto),
        &[("path", dir.path().to_str().unwrap())],
    ))
    .await;
    assert_eq!(out.ids(), ["a1", "a2", "b1", "c1", "d1", "d2"]);
    assert_eq!(out.ts(), [1, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn realtime_replay_paces_by_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"request_id\":\"a\",\"ts\":0}\n{\"request_id\":\"b\",\"ts\":200}\n{\"request_id\":\"c\",\"ts\":400}\n";
    let path = write(dir.path(), "in.jsonl", text);
    let start = Instant::now();
    let out = run(spec(
        schema(TimeFormat::Auto),
        &[
            ("path", &path),
            ("replay", "realtime"),
            ("replay_speed", "2"),
        ],
    ))
    .await;
    let elapsed = start.elapsed();
    assert_eq!(out.ids(), ["a", "b", "c"]);
    assert_eq!(out.batches.len(), 3);
    assert!(elapsed >= Duration::from_millis(190), "{elapsed:?}");
}

#[test]
fn option_errors() {
    let err = |opts: &[(&str, &str)]| {
        FileConnector::from_spec(&spec(schema(TimeFormat::Auto), opts))
            .unwrap_err()
            .to_string()
    };
    let e = err(&[("path", "/nonexistent/x.jsonl")]);
    assert!(e.contains("does not exist"), "{e}");
    let e = err(&[("path", "/tmp"), ("topic", "x")]);
    assert!(
        e.contains("unknown option 'topic'") && e.contains("path, format, replay"),
        "{e}"
    );
    let e = err(&[]);
    assert!(e.contains("needs option path"), "{e}");
    let e = err(&[("path", "/tmp"), ("format", "xml")]);
    assert!(e.contains("format 'xml'"), "{e}");
}

/// Resuming from a position reads exactly what was appended after it, with line numbers
/// that continue: JSON lines (with a bad line on each side), CSV with a header, Parquet
/// rewritten with more rows, and a directory that gained a file.
#[tokio::test]
async fn resumes_where_the_position_says_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let line = |i: usize| {
        format!(
            r#"{{"request_id":"r{i}","ts":{},"x":{i}}}"#,
            1_700_000_000_000i64 + i as i64
        )
    };
    let ids = |from: usize, to: usize| (from..to).map(|i| format!("r{i}")).collect::<Vec<_>>();

    // JSON lines, decoded in chunks of 7 lines.
    let mut text: String = (0..20).map(|i| line(i) + "\n").collect();
    text.push_str("not json\n");
    let path = write(dir.path(), "a.jsonl", &text);
    let opts = [
        ("path", path.as_str()),
        ("format", "jsonl"),
        ("batch_size", "7"),
    ];
    let (first, at) = run_from(spec(schema(TimeFormat::EpochMillis), &opts), None).await;
    assert_eq!(first.ids(), ids(0, 20));
    assert_eq!(first.rejected[0].position, Some(21));
    for i in 20..45 {
        text.push_str(&(line(i) + "\n"));
    }
    text.push_str("{broken\n");
    std::fs::write(&path, &text).unwrap();
    let (second, at2) = run_from(
        spec(schema(TimeFormat::EpochMillis), &opts),
        Some(at.clone()),
    )
    .await;
    assert_eq!(second.ids(), ids(20, 45), "only the appended lines");
    assert_eq!(second.rejected.len(), 1);
    assert_eq!(
        second.rejected[0].position,
        Some(47),
        "line numbers continue"
    );
    let (third, _) = run_from(spec(schema(TimeFormat::EpochMillis), &opts), Some(at2)).await;
    assert!(third.ids().is_empty(), "nothing new: nothing read");

    // CSV with a header line.
    let csv_line = |i: usize| format!("r{i},{},{i}\n", 1_700_000_000_000i64 + i as i64);
    let mut csv = String::from("request_id,ts,x\n");
    csv.extend((0..10).map(csv_line));
    let path = write(dir.path(), "b.csv", &csv);
    let opts = [("path", path.as_str()), ("batch_size", "4")];
    let (first, at) = run_from(spec(schema(TimeFormat::EpochMillis), &opts), None).await;
    assert_eq!(first.ids(), ids(0, 10));
    csv.extend((10..15).map(csv_line));
    csv.push_str("r15,not-a-time,1\n");
    std::fs::write(&path, &csv).unwrap();
    let (second, _) = run_from(spec(schema(TimeFormat::EpochMillis), &opts), Some(at)).await;
    assert_eq!(second.ids(), ids(10, 15));
    assert_eq!(second.rejected.len(), 1);
    assert!(
        second.rejected[0].reason.contains("line 17"),
        "{:?}",
        second.rejected
    );

    // Parquet: the position is a row count.
    let parquet = |n: usize| {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("request_id", DataType::Utf8, false),
                Field::new(
                    "ts",
                    DataType::Timestamp(TimeUnit::Millisecond, None),
                    false,
                ),
                Field::new("x", DataType::Float64, false),
            ])),
            vec![
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("r{i}")),
                )),
                Arc::new(arrow::array::TimestampMillisecondArray::from_iter_values(
                    (0..n).map(|i| 1_700_000_000_000i64 + i as i64),
                )),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
            ],
        )
        .unwrap();
        let path = dir.path().join("c.parquet");
        let file = std::fs::File::create(&path).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path.display().to_string()
    };
    let path = parquet(30);
    let opts = [("path", path.as_str()), ("batch_size", "8")];
    let (first, at) = run_from(spec(schema(TimeFormat::Auto), &opts), None).await;
    assert_eq!(first.ids(), ids(0, 30));
    parquet(42);
    let (second, _) = run_from(spec(schema(TimeFormat::Auto), &opts), Some(at)).await;
    assert_eq!(second.ids(), ids(30, 42));

    // A directory: files before the position are done; a new file is read.
    let d = dir.path().join("d");
    std::fs::create_dir(&d).unwrap();
    write(
        &d,
        "01.jsonl",
        &(0..5).map(|i| line(i) + "\n").collect::<String>(),
    );
    let dpath = d.display().to_string();
    let opts = [("path", dpath.as_str()), ("format", "jsonl")];
    let (first, at) = run_from(spec(schema(TimeFormat::EpochMillis), &opts), None).await;
    assert_eq!(first.ids(), ids(0, 5));
    write(
        &d,
        "02.jsonl",
        &(5..9).map(|i| line(i) + "\n").collect::<String>(),
    );
    let (second, at) = run_from(spec(schema(TimeFormat::EpochMillis), &opts), Some(at)).await;
    assert_eq!(second.ids(), ids(5, 9));
    assert!(matches!(at, SourcePosition::File { file, .. } if file == "02.jsonl"));
}
