//! `SHOW CREATE SOURCE | BASELINE | MONITOR name` and `EXPLAIN MONITOR name` /
//! `EXPLAIN CREATE MONITOR …`: read-only statements that return rows.
//!
//! `SHOW CREATE` returns one row `(name, definition)`: the statement as it was written, with
//! secret option values redacted ([`driftwatch_sql::redact_secrets`]). `EXPLAIN` compiles
//! the monitor as `CREATE MONITOR` would, without subscribing to its source or starting
//! anything, and returns two rows `(plan_type, plan)`: `logical_plan`, the optimised
//! DataFusion plan of the monitor's query over its input table, and `physical_plan`, the
//! streaming plan that runs (input, filters and projections, the window operator
//! `WindowAggregateExec` in place of DataFusion's aggregate).

use std::sync::Arc;

use arrow::array::StringArray;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use driftwatch_sql::{ExplainTarget, ObjectKind};

use super::control::Outcome;
use super::driver::Driftwatch;
use super::RuntimeError;
use crate::engine::plan_monitor;

fn two_columns(names: [&str; 2], rows: Vec<(String, String)>) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(names[0], DataType::Utf8, false),
        Field::new(names[1], DataType::Utf8, false),
    ]));
    let (a, b): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(a)),
            Arc::new(StringArray::from(b)),
        ],
    )
    .expect("two utf8 columns")
}

impl Driftwatch {
    /// `SHOW CREATE kind name`: one row `(name, definition)`, secrets redacted.
    pub(super) fn show_create(
        &self,
        kind: ObjectKind,
        name: &str,
    ) -> Result<Outcome, RuntimeError> {
        let unknown = || RuntimeError::Unknown(kind, name.to_string());
        let sql = match kind {
            ObjectKind::Source => self.sources.get(name).ok_or_else(unknown)?.def.sql.clone(),
            ObjectKind::Monitor => self.monitors.get(name).ok_or_else(unknown)?.def.sql.clone(),
            ObjectKind::Baseline => {
                if self.baselines.get(name).is_none() {
                    return Err(unknown());
                }
                let file = self
                    .store
                    .baseline_dir(name)?
                    .join(super::baselines::DEFINITION);
                std::fs::read_to_string(&file).map_err(|e| {
                    RuntimeError::Invalid(format!(
                        "baseline '{name}': reading its definition {}: {e}",
                        file.display()
                    ))
                })?
            }
        };
        Ok(Outcome::Rows(two_columns(
            ["name", "definition"],
            vec![(name.to_string(), driftwatch_sql::redact_secrets(&sql))],
        )))
    }

    /// `EXPLAIN MONITOR name` / `EXPLAIN CREATE MONITOR …`: the monitor's plans, compiled
    /// against the current sources and baselines; nothing is created or started.
    pub(super) async fn explain(&self, target: ExplainTarget) -> Result<Outcome, RuntimeError> {
        let def = match target {
            ExplainTarget::Monitor(name) => match self.monitors.get(&name) {
                Some(m) => Box::new(m.def.clone()),
                None => return Err(RuntimeError::Unknown(ObjectKind::Monitor, name)),
            },
            ExplainTarget::Create(def) => def,
        };
        let (input, options) = self
            .prepare_monitor(&def)
            .map_err(|e| super::driver::name_monitor(e, &def.name))?;
        let source = self
            .sources
            .get(&input.source)
            .ok_or_else(|| RuntimeError::Unknown(ObjectKind::Source, input.source.clone()))?;
        let plan = plan_monitor(
            &def.name,
            &input,
            Arc::clone(&source.schema),
            None,
            &options,
            &self.baselines,
        )
        .await?;
        Ok(Outcome::Rows(two_columns(
            ["plan_type", "plan"],
            vec![
                ("logical_plan".into(), plan.logical.clone()),
                ("physical_plan".into(), plan.physical_text()),
            ],
        )))
    }
}
