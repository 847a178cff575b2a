//! Compiles a monitor's SELECT into a DataFusion physical plan:
//! `MonitorInputExec` → DataFusion filters/projections → `WindowAggregateExec` (windowed
//! monitors) → DataFusion post-aggregate projection / HAVING.
//!
//! DataFusion plans the query as if it were a batch query over the monitor's input table;
//! the planner then swaps the `AggregateExec` DataFusion chose for the streaming window
//! operator, reusing its physical expressions, and checks that only pass-through operators
//! sit between the input and the window operator (the watermark protocol depends on it).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use driftwatch_sql::{MonitorInput, WindowSpec};
use driftwatch_udfs::BaselineRegistry;
use tokio::sync::mpsc;

use super::detect;
use super::input::{
    FeedReceiver, InputShape, InputWindow, MonitorInputExec, MonitorInputTable, WINDOW_END,
    WINDOW_START,
};
use super::progress::StreamProgress;
use super::streaming_filter::StreamingFilterExec;
use super::window::WindowKind;
use super::window_agg::{AggregateSet, Grouping, OutputLayout, StateLimits, WindowAggregateExec};
use crate::sources::SourceSchema;

/// Why a monitor could not be compiled; the message names the monitor and says how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("monitor '{monitor}': {message}")]
pub struct PlanError {
    /// Monitor name.
    pub monitor: String,
    /// What is wrong.
    pub message: String,
}

/// Operators allowed between a monitor's input and its window operator: they map each
/// input batch to at most one output batch without holding rows back.
const PASS_THROUGH: &[&str] = &["ProjectionExec", "StreamingFilterExec", "CooperativeExec"];

/// Options of a monitor that affect planning.
#[derive(Debug, Clone, Default)]
pub struct MonitorPlanOptions {
    /// Extra wait after the watermark passes a window's end (ms).
    pub allowed_lateness_ms: i64,
    /// Bounds on the monitor's window state (`max_state`, `max_groups`, `max_open_windows`).
    pub limits: StateLimits,
}

/// A compiled monitor, ready to execute once.
pub struct MonitorPlan {
    /// The physical plan; execute partition 0 to run it.
    pub plan: Arc<dyn ExecutionPlan>,
    /// Task context to execute the plan with.
    pub task_ctx: Arc<TaskContext>,
    /// Watermark/end shared by the input and the window operator.
    pub progress: Arc<StreamProgress>,
    /// Late rows, in `late_schema`.
    pub late: mpsc::UnboundedReceiver<RecordBatch>,
    /// Schema of the late table.
    pub late_schema: SchemaRef,
    /// Schema of the results.
    pub schema: SchemaRef,
    /// Window kind, for windowed monitors.
    pub window: Option<WindowKind>,
    /// The optimised logical plan DataFusion made of the monitor's query (indented text).
    pub logical: String,
}

impl MonitorPlan {
    /// The physical plan as `EXPLAIN` shows it: one operator per line, indented by depth,
    /// the window operator (`WindowAggregateExec`) in place of DataFusion's aggregate.
    pub fn physical_text(&self) -> String {
        datafusion::physical_plan::displayable(self.plan.as_ref())
            .indent(true)
            .to_string()
    }
}

/// A session configured for streaming plans: one partition, no repartitioning or batch
/// coalescing (they would hold rows back from the window operator). Its runtime's memory
/// pool is the process-wide monitor pool ([`super::memory::memory_pool`], bounded by
/// `--memory-limit`), so every task context it hands out — the one monitor plans run
/// with included — reserves window state in that one budget.
pub fn streaming_session(baselines: &Arc<BaselineRegistry>) -> SessionContext {
    streaming_session_in(baselines, super::memory::memory_pool())
}

/// [`streaming_session`] reserving memory in `pool` (one pool shared by every monitor).
pub fn streaming_session_in(
    baselines: &Arc<BaselineRegistry>,
    pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(1)
        .with_coalesce_batches(false)
        .with_round_robin_repartition(false)
        .with_repartition_aggregations(false)
        .with_repartition_joins(false)
        .with_repartition_windows(false)
        .with_repartition_sorts(false)
        .with_information_schema(true);
    config.options_mut().optimizer.repartition_file_scans = false;
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .build_arc()
        .expect("a runtime environment with only a memory pool set builds");
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    driftwatch_udfs::register_all(&ctx, baselines);
    ctx
}

/// Converts the dialect's window spec into the engine's window kind.
pub fn window_kind(spec: &WindowSpec) -> (WindowKind, &str) {
    match spec {
        WindowSpec::Tumble {
            time_column,
            size_ms,
        } => (WindowKind::Tumble { size: *size_ms }, time_column),
        WindowSpec::Hop {
            time_column,
            slide_ms,
            size_ms,
        } => (
            WindowKind::Hop {
                size: *size_ms,
                slide: *slide_ms,
            },
            time_column,
        ),
        WindowSpec::Session {
            time_column,
            gap_ms,
        } => (WindowKind::Session { gap: *gap_ms }, time_column),
    }
}

/// Compiles monitor `name` over `source`. `feed` is the monitor's subscription (None to only
/// validate, as `driftwatch check` and CREATE do).
pub async fn plan_monitor(
    name: &str,
    input: &MonitorInput,
    source: Arc<SourceSchema>,
    feed: Option<FeedReceiver>,
    options: &MonitorPlanOptions,
    baselines: &Arc<BaselineRegistry>,
) -> Result<MonitorPlan, PlanError> {
    let err = |message: String| PlanError {
        monitor: name.to_string(),
        message,
    };
    let window = match &input.window {
        None => None,
        Some(spec) => {
            let (kind, time_column) = window_kind(spec);
            let Some(event) = &source.event_time else {
                return Err(err(format!(
                    "source '{}' has no watermark, so its windows could never close; declare one: \
                     CREATE SOURCE {} (…, WATERMARK FOR {time_column} AS {time_column} - INTERVAL '5 seconds')",
                    source.name, source.name
                )));
            };
            if !event.column.eq_ignore_ascii_case(time_column) {
                return Err(err(format!(
                    "the window is over '{time_column}' but source '{}' has its watermark on '{}'; \
                     window over '{}'",
                    source.name, event.column, event.column
                )));
            }
            Some(InputWindow {
                kind,
                time_index: event.index,
                allowed_lateness_ms: options.allowed_lateness_ms,
            })
        }
    };
    let features = input.long_view.then_some(&input.features);
    let shape = Arc::new(InputShape::new(Arc::clone(&source), window, features).map_err(err)?);
    // A row-level plan with streaming detectors has a state operator (`DetectorStateExec`)
    // that takes part in barrier alignment as a window operator does.
    let mentions_detectors = detect::mentions_stream_detector(&input.query);
    let stateful = window.is_none() && mentions_detectors;
    let progress = Arc::new(StreamProgress::new(window.is_some() || stateful));
    let (late_tx, late_rx) = mpsc::unbounded_channel();
    let ctx = streaming_session(baselines);
    let detectors = detect::register_stream_detectors(&ctx, mentions_detectors);
    let table = MonitorInputTable::new(Arc::clone(&shape), feed, Arc::clone(&progress), late_tx);
    // `bare`: the name is already normalised; a quoted name like "Src" keeps its case.
    ctx.register_table(TableReference::bare(input.source.as_str()), Arc::new(table))
        .map_err(|e| err(e.to_string()))?;
    let state = ctx.state();
    let statement =
        DFStatement::Statement(Box::new(SqlStatement::Query(Box::new(input.query.clone()))));
    let logical = state.statement_to_plan(statement).await.map_err(|e| {
        let message = e.to_string();
        err(group_by_message(&message, window.is_some()).unwrap_or_else(|| clean_message(&message)))
    })?;
    check_baselines(&logical, baselines).map_err(err)?;
    check_streaming_plan(&logical).map_err(err)?;
    detect::check_stream_detectors(&logical, window.is_some()).map_err(err)?;
    if logical.schema().fields().is_empty() {
        return Err(err(
            "the SELECT list is empty: a monitor must produce at least one column".into(),
        ));
    }
    let optimized = state
        .optimize(&logical)
        .map_err(|e| err(clean_message(&e.to_string())))?;
    let physical = state
        .query_planner()
        .create_physical_plan(&optimized, &state)
        .await
        .map_err(|e| err(clean_message(&e.to_string())))?;
    // DataFusion's FilterExec holds rows back to build full batches; monitors must not.
    let physical =
        StreamingFilterExec::replace_filters(physical).map_err(|e| err(e.to_string()))?;
    let plan = match window {
        Some(w) => replace_aggregate(physical, w, options.limits, &progress).map_err(err)?,
        None => {
            if contains(&physical, "AggregateExec") {
                return Err(err(
                    "aggregates need a window: read the source through TUMBLE(…), HOP(…) or \
                     SESSION(…) and GROUP BY window_start, window_end"
                        .into(),
                ));
            }
            if stateful {
                detect::check_single_evaluation(&physical).map_err(err)?;
                Arc::new(detect::DetectorStateExec::new(
                    physical,
                    detectors,
                    Arc::clone(&progress),
                ))
            } else {
                physical
            }
        }
    };
    for blocked in [
        "SortExec",
        "SortPreservingMergeExec",
        "GlobalLimitExec",
        "LocalLimitExec",
    ] {
        if contains(&plan, blocked) {
            return Err(err(format!(
                "{} cannot stream (it needs the whole input; results are emitted as windows \
                 close): remove ORDER BY / LIMIT and apply them when you query the result table",
                blocked.trim_end_matches("Exec")
            )));
        }
    }
    let logical = optimized.display_indent().to_string();
    Ok(MonitorPlan {
        logical,
        schema: plan.schema(),
        plan,
        task_ctx: ctx.task_ctx(),
        progress,
        late: late_rx,
        late_schema: Arc::clone(shape.late_schema()),
        window: window.map(|w| w.kind),
    })
}

/// Second line of defence behind the query analysis (`driftwatch_sql`'s streamability
/// checks, which locate the construct in the text): refuses logical plans with an operator
/// that needs its whole input, whatever SQL produced it.
fn check_streaming_plan(plan: &LogicalPlan) -> Result<(), String> {
    let mut problem = None;
    let _ = plan.apply(|node| {
        problem = match node {
            LogicalPlan::Window(_) => Some(
                "window functions (OVER) cannot stream; use TUMBLE / HOP / SESSION with \
                 GROUP BY window_start, window_end, or a streaming detector",
            ),
            LogicalPlan::Join(_) => Some(
                "joins are not supported in monitors yet; compare with a baseline through the \
                 drift and outlier functions",
            ),
            LogicalPlan::Union(_) => {
                Some("UNION is not supported in monitors; create one monitor per branch")
            }
            LogicalPlan::Distinct(_) => {
                Some("DISTINCT cannot stream; GROUP BY window_start, window_end, <columns> instead")
            }
            LogicalPlan::RecursiveQuery(_) => {
                Some("WITH RECURSIVE cannot stream; use a plain WITH")
            }
            _ => None,
        };
        Ok(if problem.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    problem.map_or(Ok(()), |p| Err(p.to_string()))
}

/// Checks, at CREATE time, that every baseline a Driftwatch function names exists. By
/// convention the first string literal argument of a Driftwatch function is a baseline name.
fn check_baselines(plan: &LogicalPlan, baselines: &Arc<BaselineRegistry>) -> Result<(), String> {
    let ours: HashSet<String> = driftwatch_udfs::aggregate_functions(baselines)
        .iter()
        .map(|f| f.name().to_string())
        .chain(
            driftwatch_udfs::scalar_functions(baselines)
                .iter()
                .map(|f| f.name().to_string()),
        )
        .collect();
    let mut problem = None;
    let check = |name: &str, args: &[Expr], problem: &mut Option<String>| {
        if !ours.contains(name) {
            return;
        }
        let baseline = args.iter().find_map(|a| match a {
            Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
                _,
            ) => Some(s.clone()),
            _ => None,
        });
        if let Some(b) = baseline {
            if let Err(e) = baselines.resolve(&b) {
                let hint = if e.starts_with("unknown") {
                    format!("; create it with CREATE BASELINE {b} FROM 'training-data.csv'")
                } else {
                    String::new()
                };
                *problem = Some(format!("{name}(…, '{b}'): {e}{hint}"));
            }
        }
    };
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::ScalarFunction(f) => check(f.func.name(), &f.args, &mut problem),
                    Expr::AggregateFunction(f) => {
                        check(f.func.name(), &f.params.args, &mut problem)
                    }
                    _ => {}
                }
                Ok(if problem.is_some() {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    });
    match problem {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// DataFusion reports a column that is neither grouped nor aggregated as "Column in SELECT
/// must be in GROUP BY …: While expanding wildcard, column "iris.x" must appear in the GROUP
/// BY clause …", also when the query has no wildcard. Says what is wrong instead.
fn group_by_message(message: &str, windowed: bool) -> Option<String> {
    let marker = "While expanding wildcard, column \"";
    let rest = &message[message.find(marker)? + marker.len()..];
    let expr = &rest[..rest.find("\" must appear")?];
    // `iris.x` → `x` (the qualifier is the source or its alias).
    let simple = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
    let column = match expr.split_once('.') {
        Some((q, c)) if simple(q) && simple(c) => c,
        _ => expr,
    };
    let clause = ["SELECT", "HAVING", "ORDER BY", "QUALIFY", "DISTINCT ON"]
        .into_iter()
        .find(|c| message.contains(&format!("Column in {c} must be in GROUP BY")))
        .unwrap_or("SELECT");
    if windowed && (column == WINDOW_START || column == WINDOW_END) {
        return Some(format!(
            "a windowed monitor must GROUP BY window_start, window_end (plus any keys): \
             {column} is in the {clause} list but not in GROUP BY; add \
             GROUP BY window_start, window_end"
        ));
    }
    let group_by = if windowed {
        "GROUP BY window_start, window_end, …"
    } else {
        "GROUP BY"
    };
    Some(format!(
        "column {column} must appear in GROUP BY or inside an aggregate function (it is used \
         in {clause}); add it to {group_by} or aggregate it, e.g. any_value({column})"
    ))
}

/// Strips DataFusion's error prefixes ("Error during planning: ") for user messages.
fn clean_message(message: &str) -> String {
    let mut m = message;
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Execution error: ",
        "SQL error: ",
    ] {
        m = m.trim_start_matches(prefix);
    }
    m.to_string()
}

fn contains(plan: &Arc<dyn ExecutionPlan>, name: &str) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if node.name() == name {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Checks that only pass-through operators lie between `plan` and the monitor input.
fn check_pass_through(plan: &Arc<dyn ExecutionPlan>) -> Result<(), String> {
    let mut node = Arc::clone(plan);
    loop {
        if node.downcast_ref::<MonitorInputExec>().is_some() {
            return Ok(());
        }
        let name = node.name().to_string();
        let children = node.children();
        if !PASS_THROUGH.contains(&name.as_str()) || children.len() != 1 {
            return Err(format!(
                "{name} between the source and the window aggregate is not supported; \
                 a windowed monitor reads one source through filters and projections"
            ));
        }
        node = Arc::clone(children[0]);
    }
}

/// Replaces the single `AggregateExec` of `plan` (grouped by `window_start`, `window_end`
/// and optional keys) with the streaming window operator. Public so benchmarks can run the
/// operator alone over pre-built batches.
pub fn replace_aggregate(
    plan: Arc<dyn ExecutionPlan>,
    window: InputWindow,
    limits: StateLimits,
    progress: &Arc<StreamProgress>,
) -> Result<Arc<dyn ExecutionPlan>, String> {
    let mut replaced = 0usize;
    let mut failure: Option<String> = None;
    let result = plan
        .transform_down(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            // Use the raw-input aggregate: Single, or the Partial below a Final.
            let raw = match agg.mode() {
                AggregateMode::Final | AggregateMode::FinalPartitioned => {
                    match agg.input().downcast_ref::<AggregateExec>() {
                        Some(partial) => partial,
                        None => {
                            failure = Some("unsupported aggregate plan shape".into());
                            return Ok(Transformed::new(node, false, TreeNodeRecursion::Stop));
                        }
                    }
                }
                _ => agg,
            };
            match build_window_exec(agg, raw, window, limits, progress) {
                Ok(exec) => {
                    replaced += 1;
                    Ok(Transformed::new(exec, true, TreeNodeRecursion::Jump))
                }
                Err(e) => {
                    failure = Some(e);
                    Ok(Transformed::new(node, false, TreeNodeRecursion::Stop))
                }
            }
        })
        .map_err(|e| e.to_string())?;
    if let Some(f) = failure {
        return Err(f);
    }
    match replaced {
        0 => Err("a windowed monitor must aggregate: add GROUP BY window_start, window_end".into()),
        1 => Ok(result.data),
        n => Err(format!(
            "{n} aggregations found; a windowed monitor has exactly one GROUP BY window_start, window_end"
        )),
    }
}

/// `plan` without the SortExecs DataFusion placed below an order-sensitive aggregate (only
/// pass-through operators may lie between the input and the window operator, so a sort can
/// only be there for the aggregate's `ORDER BY`).
fn strip_sorts(
    plan: &Arc<dyn ExecutionPlan>,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    Arc::clone(plan)
        .transform_up(|node| match node.downcast_ref::<SortExec>() {
            Some(sort) => Ok(Transformed::yes(Arc::clone(sort.input()))),
            None => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
}

/// The aggregates as they must run over the unsorted stream: an order-sensitive aggregate
/// that can order its values itself (`array_agg … ORDER BY`, `first_value` / `last_value …
/// ORDER BY`: DataFusion's "soft" and "beneficial" order sensitivity) is rebuilt as if its
/// input were not pre-ordered, so each accumulator sorts its values by the ORDER BY key
/// when it is evaluated or emits its state (pane merges and checkpoints merge sorted runs).
/// An aggregate that needs sorted input ("hard" requirement) is refused.
fn unsorted_aggregates(
    aggregates: &[Arc<AggregateFunctionExpr>],
) -> Result<Vec<Arc<AggregateFunctionExpr>>, String> {
    aggregates
        .iter()
        .map(|agg| match agg.order_sensitivity() {
            AggregateOrderSensitivity::Insensitive => Ok(Arc::clone(agg)),
            AggregateOrderSensitivity::HardRequirement => Err(format!(
                "{}(… ORDER BY …) needs its input sorted, which a streaming window cannot \
                 provide; order-sensitive aggregates that sort their own values work: \
                 array_agg, first_value, last_value",
                agg.fun().name()
            )),
            AggregateOrderSensitivity::SoftRequirement | AggregateOrderSensitivity::Beneficial => {
                match Arc::clone(agg)
                    .with_beneficial_ordering(false)
                    .map_err(|e| clean_message(&e.to_string()))?
                {
                    Some(unsorted) => Ok(Arc::new(unsorted)),
                    None => Ok(Arc::clone(agg)),
                }
            }
        })
        .collect()
}

fn build_window_exec(
    outer: &AggregateExec,
    raw: &AggregateExec,
    window: InputWindow,
    limits: StateLimits,
    progress: &Arc<StreamProgress>,
) -> Result<Arc<dyn ExecutionPlan>, String> {
    let group_by = raw.group_expr();
    if group_by.has_grouping_set() {
        return Err("GROUPING SETS / CUBE / ROLLUP are not supported in monitors".into());
    }
    // DataFusion sorts the input of an order-sensitive aggregate (`array_agg(x ORDER BY
    // ts)`) with a SortExec, which would hold the stream back until its end. The window
    // operator reads the unsorted stream instead and has the accumulators sort their own
    // values (see `unsorted_aggregates`).
    let input = strip_sorts(raw.input()).map_err(|e| clean_message(&e.to_string()))?;
    if contains(&input, "MonitorInputExec") {
        check_pass_through(&input)?;
    }
    let input_schema = input.schema();
    let mut start = None;
    let mut end = None;
    let mut start_expr = None;
    let mut keys = Vec::new();
    let mut key_pos = Vec::new();
    let mut key_types = Vec::new();
    for (pos, (expr, _name)) in group_by.expr().iter().enumerate() {
        let column = expr.downcast_ref::<Column>();
        match column.map(|c| c.name()) {
            Some(WINDOW_START) => {
                start = Some(pos);
                start_expr = Some(Arc::clone(expr));
            }
            Some(WINDOW_END) => end = Some(pos),
            _ => {
                key_pos.push(pos);
                key_types.push(expr.data_type(&input_schema).map_err(|e| e.to_string())?);
                keys.push(Arc::clone(expr));
            }
        }
    }
    let pane_start = match (start_expr, end) {
        (Some(e), _) => e,
        (None, Some(_)) => {
            // Only window_end is grouped: window_start is still the pane column.
            let idx = input_schema.index_of(WINDOW_START).map_err(|_| {
                "GROUP BY window_start, window_end: window_start is not available".to_string()
            })?;
            Arc::new(Column::new(WINDOW_START, idx)) as _
        }
        (None, None) => {
            return Err(
                "GROUP BY window_start, window_end is required in a windowed monitor \
                        (the window table function adds both columns)"
                    .into(),
            )
        }
    };
    let layout = OutputLayout {
        schema: outer.schema(),
        start,
        end,
        keys: key_pos,
        num_group_columns: group_by.expr().len(),
    };
    let grouping = Grouping {
        pane_start,
        keys,
        key_types,
    };
    let aggregates = AggregateSet::new(
        unsorted_aggregates(raw.aggr_expr())?,
        raw.filter_expr().to_vec(),
    );
    let exec = WindowAggregateExec::try_new(
        input,
        window.kind,
        window.allowed_lateness_ms,
        grouping,
        aggregates,
        layout,
        limits,
        Arc::clone(progress),
    )
    .map_err(|e| clean_message(&e.to_string()))?;
    Ok(Arc::new(exec))
}
