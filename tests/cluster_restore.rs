//! Stage 2 of a cluster through a checkpoint: stopped at a barrier and restored from its
//! snapshot (panes merged already and parts still pending, each tagged with its source
//! partition), it emits exactly the windows of an uninterrupted stage 2.

mod cluster_support;

use cluster_support::*;

/// Stage-2 input that, after its steps, parks at checkpoint barrier 1 (the window operator
/// then snapshots its state) and stays there.
#[derive(Debug)]
struct BarrierFeed {
    schema: SchemaRef,
    steps: Mutex<Option<Vec<Step>>>,
    progress: Arc<StreamProgress>,
}

impl PartitionStream for BarrierFeed {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let progress = Arc::clone(&self.progress);
        let mut steps = self.steps.lock().unwrap().take().expect("once").into_iter();
        let mut parked = false;
        let stream = futures::stream::poll_fn(move |cx| match steps.next() {
            Some(s) => {
                progress.advance(s.watermark);
                std::task::Poll::Ready(Some(Ok(s.batch)))
            }
            None => {
                if !parked {
                    progress.park(1, cx.waker());
                    parked = true;
                }
                std::task::Poll::Pending
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// Stage 2 over `steps[..cut]`, stopped at a checkpoint barrier, then a new stage 2
/// restored from that snapshot over `steps[cut..]`: every window either emitted.
async fn stage2_restored(
    query: &str,
    kind: WindowKind,
    reg: &Arc<BaselineRegistry>,
    merge_schema: &SchemaRef,
    steps: &[Step],
    cut: usize,
) -> RecordBatch {
    use futures::StreamExt;
    let (plan, ctx, progress) = monitor_plan(query, kind, reg, Vec::new()).await;
    let feed = BarrierFeed {
        schema: Arc::clone(merge_schema),
        steps: Mutex::new(Some(steps[..cut].to_vec())),
        progress: Arc::clone(&progress),
    };
    let plan = stage2_plan(plan, stage2_input(merge_schema, Arc::new(feed))).unwrap();
    let schema = plan.schema();
    let mut stream = datafusion::physical_plan::execute_stream(plan, ctx).unwrap();
    let mut out = Vec::new();
    let drained = progress.drained();
    tokio::pin!(drained);
    loop {
        tokio::select! {
            id = &mut drained => {
                assert_eq!(id, 1);
                break;
            }
            b = stream.next() => out.push(b.expect("stage 2 runs up to the barrier").unwrap()),
        }
    }
    let snapshot = progress
        .take_snapshot()
        .expect("stage 2 snapshots at the barrier");
    // Both kinds of stage-2 state go through the snapshot: panes merged already
    // (`_source_partition` -1) and parts still waiting for other partitions' watermarks.
    let state = snapshot.state.as_ref().expect("open state at the cut");
    let tags = state
        .column(0)
        .as_primitive::<arrow::datatypes::Int32Type>();
    // (A tumbling window is emitted as soon as its one pane is merged.)
    if matches!(kind, WindowKind::Hop { .. }) {
        assert!(
            tags.values().iter().any(|&p| p < 0),
            "no merged pane at the cut"
        );
    }
    assert!(
        tags.values().iter().any(|&p| p >= 0),
        "no pending part at the cut"
    );
    drop(stream);

    let (plan, ctx, progress) = monitor_plan(query, kind, reg, Vec::new()).await;
    progress.set_restore(snapshot);
    let feed = Feed {
        schema: Arc::clone(merge_schema),
        steps: Mutex::new(Some(steps[cut..].to_vec())),
        progress: Arc::clone(&progress),
    };
    let plan = stage2_plan(plan, stage2_input(merge_schema, Arc::new(feed))).unwrap();
    progress.end();
    out.extend(collect(plan, ctx).await.unwrap());
    concat_batches(&schema, &out).unwrap()
}

/// Stage 2 stopped at a checkpoint barrier and a new stage 2 restored from its snapshot
/// (merged panes and pending parts, each tagged with its source partition) emit together
/// exactly the windows of one uninterrupted stage 2, bit for bit.
#[tokio::test]
async fn stage2_restored_from_a_snapshot_matches_an_uninterrupted_run() {
    let reg = registry();
    let hop = WindowKind::Hop {
        size: 15_000,
        slide: 5_000,
    };
    let tumble = WindowKind::Tumble { size: 15_000 };
    for (query, kind, what) in [(STATS, hop, "hop stats"), (DRIFT, tumble, "tumble drift")] {
        let mut rng = StdRng::seed_from_u64(21);
        let (per_partition, merge_schema) = stage1(query, kind, &reg, &mut rng).await;
        let steps = shuffled(&per_partition, 0, 1, &mut rng);
        let whole = sorted(stage2(query, kind, &reg, &merge_schema, steps.clone()).await);
        assert!(whole.num_rows() > 0);
        for cut in [steps.len() / 3, steps.len() * 2 / 3] {
            let restored = stage2_restored(query, kind, &reg, &merge_schema, &steps, cut).await;
            assert_eq!(
                cells(&whole),
                cells(&sorted(restored)),
                "{what}: restored at step {cut} of {}",
                steps.len()
            );
        }
    }
}
