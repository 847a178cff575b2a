//! What HTTP ingest questions rather than accepts (issue 11): fields that match no column
//! (strict sources refuse them, others count them), envelopes without a payload, content
//! encodings under the body limit (zip bombs), content types, and the 413 message.

use super::*;

async fn post_bytes(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    post_full(url, headers, body).await.0
}

async fn post_full(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> ((u16, Value), reqwest::header::HeaderMap) {
    let mut req = reqwest::Client::new().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    ((status, value), headers)
}

/// An HTTP source run by its connector with `options`, served on loopback.
async fn connector_source(
    options: &[(&str, &str)],
    settings: HttpSettings,
) -> (Source, String, CancellationToken) {
    let ingest = HttpIngest::with_settings(settings);
    let (base, stop) = serve(ingest.clone()).await;
    let src = source(iris("iris"));
    let mut map: std::collections::BTreeMap<String, String> =
        [("connector".to_string(), "http".to_string())].into();
    map.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let spec = ConnectorSpec::new(src.feed.schema().clone(), map);
    let connector = Arc::new(HttpConnector::from_spec(&spec, ingest.clone()).unwrap());
    tokio::spawn(connector.run(src.feed.clone(), stop.clone()));
    while ingest.source_names().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (src, format!("{base}/ingest/iris"), stop)
}

fn error_text(answer: &Value) -> &str {
    answer["error"].as_str().unwrap_or_default()
}

fn instances_with_typo() -> String {
    let good = json!({"sepal_length": 1, "sepal_width": 2, "petal_length": 3, "petal_width": 4});
    let typo = json!({"sepal_lenght": 1, "sepal_width": 2, "petal_length": 3, "petal_width": 4});
    json!({"type": "request", "id": "r", "time": 1700000000,
           "payload": {"instances": [good, good, good, typo]}})
    .to_string()
}

#[tokio::test]
async fn strict_source_refuses_unknown_fields_and_stores_nothing() {
    let (mut src, url, _stop) =
        connector_source(&[("strict", "true")], HttpSettings::default()).await;

    let body = instances_with_typo();
    let (status, answer) = post(&url, &[], body.clone()).await;
    assert_eq!(status, 400, "{answer}");
    let message = error_text(&answer);
    assert!(
        message.starts_with(
            "unknown field 'sepal_lenght' in instance 3 (columns: sepal_length, sepal_width, \
             petal_length, petal_width; did you mean 'sepal_length'?)"
        ) && message.contains("nothing of this body was stored"),
        "{message}"
    );
    let rejected = src.rejected.recv().await.unwrap().records();
    assert_eq!(rejected[0].raw, body);

    // Envelope-level and plain-row (NDJSON) fields are questioned too.
    let cases = [
        (
            json!({"type": "request", "time": 1, "model": "iris-v2",
                   "payload": {"instances": [[1, 2, 3, 4]]}})
            .to_string(),
            "unknown field 'model' in the envelope",
        ),
        (
            format!(
                "{}\n{}\n",
                json!({"request_id": "a", "ts": 1, "sepal_length": 1}),
                json!({"request_id": "b", "ts": 2, "Sepal_Length": 1})
            ),
            "unknown field 'Sepal_Length' in line 2 (columns: request_id, ts, event_type, \
             sepal_length",
        ),
        (
            format!(
                "{}\n{}\n",
                json!({"type": "request", "time": 1, "payload": {"instances": [[1, 2, 3, 4]]}}),
                json!({"type": "request", "time": 1, "payload": {"instances": [{"petal": 1}]}})
            ),
            "line 2: instance 0: no field matches a column",
        ),
    ];
    for (body, expected) in &cases {
        let (status, answer) = post(&url, &[], body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(
            error_text(&answer).contains(expected),
            "{answer}\nwanted {expected}"
        );
    }
    assert!(
        drain(&mut src).is_empty(),
        "nothing of a refused body is stored"
    );
    assert_eq!(src.feed.metrics().total_rows(), 0);

    // A body whose fields are all known is taken as usual.
    let good = json!({"type": "request", "id": "ok", "time": 1700000000,
        "payload": {"instances": [{"sepal_length": 1.5, "petal_width": 0.5}]}});
    let (status, answer) = post(&url, &[], good.to_string()).await;
    assert_eq!((status, answer), (200, json!({"accepted": 1})));
    assert_eq!(col_f64(&drain(&mut src)[0], "sepal_length"), vec![1.5]);
}

#[tokio::test]
async fn lenient_source_counts_unknown_fields() {
    let (mut src, url, _stop) = connector_source(&[], HttpSettings::default()).await;
    let (status, answer) = post(&url, &[], instances_with_typo()).await;
    assert_eq!(
        (status, answer),
        (200, json!({"accepted": 4, "unknown_fields": 1}))
    );
    let b = drain(&mut src);
    assert!(b[0].column_by_name("sepal_length").unwrap().is_null(3));
    assert_eq!(src.feed.metrics().total_unknown_fields(), 1);

    // Plain NDJSON rows: each unknown occurrence counts; known-only bodies add nothing.
    let ndjson = format!(
        "{}\n{}\n",
        json!({"request_id": "a", "ts": 1, "sepal_length": 1, "extra": 1, "more": 2}),
        json!({"request_id": "b", "ts": 2, "sepal_length": 2, "extra": 3})
    );
    let (status, answer) = post(&url, &[], ndjson).await;
    assert_eq!(
        (status, answer),
        (200, json!({"accepted": 2, "unknown_fields": 3}))
    );
    let known = json!({"request_id": "c", "ts": 3, "sepal_length": 3}).to_string();
    assert_eq!(post(&url, &[], known).await.0, 200);
    assert_eq!(src.feed.metrics().total_unknown_fields(), 4);
    assert_eq!(src.feed.metrics().total_rows(), 7);

    // A row none of whose fields is a column is no row of NULLs (a source whose columns
    // are all nullable, else the NOT NULL check refuses it first).
    let ingest = HttpIngest::new();
    let loose = Arc::new(
        SourceSchema::new(
            "loose",
            vec![
                Field::new("request_id", DataType::Utf8, true),
                Field::new("x", DataType::Float64, true),
            ],
            None,
            TimeFormat::Auto,
        )
        .unwrap(),
    );
    let mut loose = source(loose);
    ingest.register("loose", loose.feed.clone()).unwrap();
    let (base, _stop) = serve(ingest).await;
    let url = format!("{base}/ingest/loose");
    let ndjson = format!(
        "{}\n{}\n",
        json!({"request_id": "d", "x": 4}),
        json!({"requestid": "e", "y": 5})
    );
    let (status, answer) = post(&url, &[], ndjson).await;
    assert!(drain(&mut loose).is_empty());
    assert_eq!(status, 400);
    assert!(
        error_text(&answer).starts_with(
            "line 2: no field matches a column; unknown field 'requestid' in line 2 (columns: \
             request_id, x; did you mean 'request_id'?)"
        ),
        "{answer}"
    );
}

#[tokio::test]
async fn envelope_without_payload_is_refused_in_both_modes() {
    for strict in ["false", "true"] {
        let (mut src, url, _stop) =
            connector_source(&[("strict", strict)], HttpSettings::default()).await;
        let envelope = json!({"type": "request", "id": "r1", "time": 1700000000});
        let bodies = [
            envelope.to_string(),
            format!("{envelope}\n{envelope}\n"),
            json!([envelope, envelope]).to_string(),
            json!({"specversion": "1.0", "id": "r2", "type": "request"}).to_string(),
        ];
        for body in &bodies {
            let (status, answer) = post(&url, &[], body.clone()).await;
            assert_eq!(status, 400, "strict={strict}: {body} → {answer}");
            let message = error_text(&answer);
            assert!(
                message.contains("envelope has no \"payload\" field (its instances go in"),
                "{message}"
            );
        }
        // In envelope lines after the first, too.
        let body = format!(
            "{}\n{envelope}\n",
            json!({"type": "request", "time": 1, "payload": {"instances": [[1, 2, 3, 4]]}})
        );
        let (status, answer) = post(&url, &[], body).await;
        assert_eq!(status, 400);
        assert!(
            error_text(&answer).starts_with("line 2: envelope has no \"payload\" field"),
            "{answer}"
        );
        assert!(drain(&mut src).is_empty());
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn compressed_bodies_are_decoded() {
    use std::io::Write;
    let (mut src, url, _stop) = connector_source(&[], HttpSettings::default()).await;
    let body = format!(
        "{}\n{}\n",
        json!({"type": "request", "id": "z1", "time": 1700000000,
               "payload": {"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}}),
        json!({"type": "request", "id": "z2", "time": 1700000001,
               "payload": {"instances": [[4.9, 3.0, 1.4, 0.2]]}})
    );
    let raw = body.as_bytes();
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(raw).unwrap();
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate.write_all(raw).unwrap();
    let encoded: Vec<(&str, Vec<u8>)> = vec![
        ("gzip", gzip(raw)),
        ("x-gzip", gzip(raw)),
        ("deflate", zlib.finish().unwrap()),
        ("deflate", deflate.finish().unwrap()),
        ("zstd", zstd::encode_all(raw, 3).unwrap()),
        ("gzip, zstd", zstd::encode_all(&gzip(raw)[..], 1).unwrap()),
        ("identity", raw.to_vec()),
    ];
    for (coding, bytes) in encoded {
        let headers = [
            ("content-encoding", coding),
            ("content-type", "application/x-ndjson"),
        ];
        let (status, answer) = post_bytes(&url, &headers, bytes).await;
        assert_eq!(
            (status, &answer),
            (200, &json!({"accepted": 3})),
            "{coding}"
        );
        let b = drain(&mut src);
        assert_eq!(
            col_f64(&b[0], "sepal_length"),
            vec![5.1, 6.2, 4.9],
            "{coding}"
        );
        assert_eq!(
            col_str(&b[0], "request_id"),
            vec![Some("z1".into()), Some("z1".into()), Some("z2".into())]
        );
        assert_eq!(
            col_ts(&b[0]),
            vec![1_700_000_000_000, 1_700_000_000_000, 1_700_000_001_000]
        );
    }

    // Bytes that are not what the header says: 400, nothing stored.
    let (status, answer) = post_bytes(
        &url,
        &[("content-encoding", "gzip")],
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error_text(&answer).contains("not valid gzip data"),
        "{answer}"
    );
    assert!(drain(&mut src).is_empty());
}

#[tokio::test]
async fn limits_apply_to_the_decoded_size() {
    let limit = 64 * 1024;
    let settings = HttpSettings {
        body_limit: limit,
        ..HttpSettings::default()
    };
    let (mut src, url, _stop) = connector_source(&[], settings).await;

    // A bomb: 10 KiB of gzip that inflates to 64 MiB of spaces.
    let bomb = gzip(&vec![b' '; 64 * 1024 * 1024]);
    assert!(bomb.len() < limit, "{}", bomb.len());
    let (status, answer) = post_bytes(&url, &[("content-encoding", "gzip")], bomb).await;
    assert_eq!(status, 413, "{answer}");
    let message = error_text(&answer);
    for part in [
        "decoded from Content-Encoding gzip",
        "65536 bytes (64 KiB)",
        "--http-body-limit",
    ] {
        assert!(message.contains(part), "{message} lacks {part}");
    }

    // Exactly at the limit decoded is fine; one byte over is not.
    let row = json!({"request_id": "x", "ts": 1, "sepal_length": 1}).to_string();
    let at_limit = format!("{row}{}", " ".repeat(limit - row.len()));
    let (status, _) = post_bytes(
        &url,
        &[("content-encoding", "zstd")],
        zstd::encode_all(at_limit.as_bytes(), 1).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let over = format!("{at_limit} ");
    let (status, answer) = post_bytes(
        &url,
        &[("content-encoding", "zstd")],
        zstd::encode_all(over.as_bytes(), 1).unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert!(error_text(&answer).contains("decoded from Content-Encoding zstd"));
    assert_eq!(
        drain(&mut src)
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        1
    );
}

#[tokio::test]
async fn unsupported_encodings_and_types_get_415() {
    let (mut src, url, _stop) = connector_source(&[], HttpSettings::default()).await;
    let body = json!({"request_id": "a", "ts": 1, "sepal_length": 1}).to_string();

    let ((status, answer), headers) = post_full(
        &url,
        &[("content-encoding", "br")],
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(status, 415);
    assert!(
        error_text(&answer).contains("unsupported Content-Encoding 'br'")
            && error_text(&answer).contains("gzip, deflate, zstd"),
        "{answer}"
    );
    assert_eq!(headers["accept-encoding"], "gzip, deflate, zstd");

    for media in ["application/xml", "text/csv", "text/xml; charset=utf-8"] {
        let (status, answer) = post(&url, &[("content-type", media)], body.clone()).await;
        assert_eq!(status, 415, "{media}");
        let message = error_text(&answer);
        assert!(
            message.contains("unsupported Content-Type")
                && message.contains("application/json")
                && message.contains("application/x-ndjson"),
            "{message}"
        );
    }
    assert!(drain(&mut src).is_empty());

    // JSON types, generic clients' defaults and no header at all are read as JSON.
    for media in [
        None,
        Some("application/json; charset=utf-8"),
        Some("application/x-ndjson"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let headers: Vec<(&str, &str)> = media.iter().map(|m| ("content-type", *m)).collect();
        let (status, answer) = post(&url, &headers, body.clone()).await;
        assert_eq!((status, answer), (200, json!({"accepted": 1})), "{media:?}");
    }

    // A structured-mode CloudEvent: attributes in the body, the payload in `data`.
    let event = json!({"specversion": "1.0", "type": "org.kubeflow.serving.inference.request",
        "source": "http://iris/", "id": "ce-7", "time": "2023-11-14T22:13:20Z",
        "datacontenttype": "application/json", "data": {"instances": [[1, 2, 3, 4]]}});
    let (status, answer) = post(
        &url,
        &[("content-type", "application/cloudevents+json")],
        event.to_string(),
    )
    .await;
    assert_eq!((status, answer), (200, json!({"accepted": 1})));
    let b = drain(&mut src);
    let b = b.last().unwrap();
    assert_eq!(col_str(b, "request_id"), vec![Some("ce-7".into())]);
    assert_eq!(col_str(b, "event_type"), vec![Some("request".into())]);
    assert_eq!(col_ts(b), vec![1_700_000_000_000]);
}

#[tokio::test]
async fn strict_option_is_checked_with_its_location() {
    use driftwatch::runtime::{Driftwatch, RuntimeConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().to_path_buf(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let sql =
        "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE)\n  WITH (connector = 'http', strict = 'yes');";
    let err = system.execute_script(sql).await.unwrap_err().to_string();
    assert!(
        err.contains("line 2, column 38") && err.contains("strict = 'yes' is not 'true'"),
        "{err}"
    );
    let sql =
        "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE)\n  WITH (connector = 'http', stirct = 'true');";
    let err = system.execute_script(sql).await.unwrap_err().to_string();
    assert!(
        err.contains("line 2, column 29") && err.contains("did you mean 'strict'"),
        "{err}"
    );
    system
        .execute_script(
            "CREATE SOURCE s (ts TIMESTAMP, x DOUBLE) WITH (connector = 'http', strict = TRUE);",
        )
        .await
        .unwrap();
    system.shutdown_token().cancel();
}

#[tokio::test]
async fn unknown_fields_show_in_system_sources_and_strict_bodies_stay_out_of_the_wal() {
    use driftwatch::runtime::{Driftwatch, RuntimeConfig};
    let dir = tempfile::tempdir().unwrap();
    let mut system = Driftwatch::open(RuntimeConfig {
        data_dir: dir.path().to_path_buf(),
        http_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let script = "\
        CREATE SOURCE lenient (request_id VARCHAR, ts TIMESTAMP, x DOUBLE) WITH (connector = 'http');\n\
        CREATE SOURCE picky (request_id VARCHAR, ts TIMESTAMP, x DOUBLE) WITH (connector = 'http', strict = 'true');\n\
        CREATE MONITOR l AS SELECT request_id, x FROM lenient;\n\
        CREATE MONITOR p AS SELECT request_id, x FROM picky;\n";
    system.execute_script(script).await.unwrap();
    system.start().await.unwrap();
    let base = format!("http://{}/ingest", system.http_addr().unwrap());
    let control = system.control();
    let shutdown = system.shutdown_token();
    let runner = tokio::spawn(async move { system.wait(None).await });

    let body = format!(
        "{}\n{}\n",
        json!({"request_id": "a", "ts": 1, "x": 1, "y": 2}),
        json!({"request_id": "b", "ts": 2, "x": 2, "y": 3, "z": 4})
    );
    let (status, answer) = post(&format!("{base}/lenient"), &[], body.clone()).await;
    assert_eq!(
        (status, answer),
        (200, json!({"accepted": 2, "unknown_fields": 3}))
    );
    let (status, answer) = post(&format!("{base}/picky"), &[], body).await;
    assert_eq!(status, 400);
    assert!(
        error_text(&answer).starts_with("unknown field 'y' in line 1"),
        "{answer}"
    );
    let good = json!({"request_id": "c", "ts": 3, "x": 3}).to_string();
    assert_eq!(post(&format!("{base}/picky"), &[], good).await.0, 200);

    let snap = control.snapshot().await.unwrap();
    let tables = driftwatch::serve::system_tables::system_tables(&snap, 0).unwrap();
    let sources = &tables.iter().find(|(n, _)| *n == "sources").unwrap().1;
    let names = col_str(sources, "name");
    let rows_in = sources
        .column_by_name("rows_in")
        .unwrap()
        .as_primitive::<arrow::datatypes::UInt64Type>();
    let unknown = sources
        .column_by_name("unknown_fields")
        .unwrap()
        .as_primitive::<arrow::datatypes::UInt64Type>();
    let by_name = |n: &str| names.iter().position(|x| x.as_deref() == Some(n)).unwrap();
    assert_eq!(unknown.value(by_name("lenient")), 3);
    assert_eq!(unknown.value(by_name("picky")), 0);
    // The strict source stored only the good body's row (through its write-ahead log).
    assert_eq!(rows_in.value(by_name("picky")), 1);
    assert_eq!(rows_in.value(by_name("lenient")), 2);
    shutdown.cancel();
    runner.await.unwrap().unwrap();
}
