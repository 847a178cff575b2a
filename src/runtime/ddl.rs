//! How the control loop of a running system serves [`Control`] requests without making
//! anyone wait for slow DDL.
//!
//! Scripts sent by front ends (Flight SQL DDL) run one at a time, in the order they
//! arrive, and their statements in order. A statement whose work is slow — `CREATE
//! BASELINE`, which reads, profiles and persists its input — runs on its own task: the
//! loop keeps taking checkpoints and watching for failures meanwhile; snapshots (every
//! Flight query of the `system` tables) never go through the loop at all
//! ([`super::status_board`]). Scripts that arrive while it runs wait their turn, so a
//! later `CREATE MONITOR` naming the baseline sees it registered, a `DROP BASELINE` or
//! `CREATE OR REPLACE BASELINE` of the same name applies after it, and the catalog records
//! statements in the order they took effect. When the job finishes, the loop registers
//! the baseline and continues the script with its next statement.

use std::collections::VecDeque;

use driftwatch_sql::{CreateBaseline, ObjectKind, Statement};
use driftwatch_udfs::BaselineProfile;
use tokio::sync::oneshot;

use super::baselines::BaselineJob;
use super::control::{Control, JobDone, JobResult, Outcome};
use super::driver::Driftwatch;
use super::RuntimeError;
use crate::query::{FileAccess, QueryEngine};

type Reply = oneshot::Sender<Result<Vec<Outcome>, RuntimeError>>;

/// A script being executed by the control loop.
struct ScriptRun {
    /// Statements not executed yet.
    statements: VecDeque<Statement>,
    /// Outcomes of the statements executed so far.
    outcomes: Vec<Outcome>,
    reply: Reply,
}

/// Scripts of the control loop: the one waiting for its job, and those queued behind it.
#[derive(Default)]
pub(super) struct DdlQueue {
    /// The script whose current statement runs off the loop.
    running: Option<ScriptRun>,
    /// Scripts that arrived meanwhile, in arrival order.
    waiting: VecDeque<(String, Reply)>,
}

impl DdlQueue {
    /// Whether a statement runs off the loop now.
    pub(super) fn busy(&self) -> bool {
        self.running.is_some()
    }
}

/// What `CREATE BASELINE` answers.
pub(super) fn baseline_outcome(profile: &BaselineProfile) -> Outcome {
    Outcome::Done(format!(
        "baseline {} ({} numeric columns)",
        profile.name,
        profile.numeric_columns().len()
    ))
}

impl Driftwatch {
    /// Serves one request of the control loop (see the module docs).
    pub(super) async fn serve_control(&mut self, request: Control) {
        match request {
            Control::Execute { sql, reply } => {
                if self.ddl.busy() {
                    self.ddl.waiting.push_back((sql, reply));
                } else {
                    self.begin_script(&sql, reply).await;
                }
            }
            Control::JobDone(JobDone(result)) => {
                let Some(mut run) = self.ddl.running.take() else {
                    tracing::warn!("a DDL job finished with no script waiting for it");
                    return;
                };
                match result {
                    JobResult::Baseline(Ok(profile)) => {
                        let profile = self.baselines.insert(*profile);
                        run.outcomes.push(baseline_outcome(&profile));
                        self.advance_script(run).await;
                    }
                    JobResult::Baseline(Err(e)) => {
                        let _ = run.reply.send(Err(e));
                    }
                }
            }
        }
        // Scripts queued behind a job run once it is done (until the next job starts).
        while !self.ddl.busy() {
            let Some((sql, reply)) = self.ddl.waiting.pop_front() else {
                break;
            };
            self.begin_script(&sql, reply).await;
        }
    }

    async fn begin_script(&mut self, sql: &str, reply: Reply) {
        match driftwatch_sql::parse_statements(sql) {
            Ok(statements) => {
                self.advance_script(ScriptRun {
                    statements: statements.into(),
                    outcomes: Vec::new(),
                    reply,
                })
                .await
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    /// Executes the script's statements in order until one must run off the loop (then
    /// the script waits in [`DdlQueue::running`] for its [`Control::JobDone`]), one fails,
    /// or all are done; then starts new connectors and replies.
    async fn advance_script(&mut self, mut run: ScriptRun) {
        while let Some(statement) = run.statements.pop_front() {
            let result = match statement {
                Statement::CreateBaseline(def) => match self.spawn_baseline_job(&def) {
                    Ok(()) => {
                        self.ddl.running = Some(run);
                        return;
                    }
                    Err(e) => Err(e),
                },
                // `execute` publishes the catalog before any reply: a client sees what its
                // statement did.
                other => self.execute(other).await,
            };
            match result {
                Ok(outcome) => run.outcomes.push(outcome),
                Err(e) => {
                    let _ = run.reply.send(Err(e));
                    return;
                }
            }
        }
        let result = match self.start().await {
            Ok(()) => Ok(run.outcomes),
            Err(e) => Err(e),
        };
        let _ = run.reply.send(result);
    }

    /// Checks `def` and starts reading and profiling its input on a task of its own, which
    /// reports back through the control channel.
    fn spawn_baseline_job(&self, def: &CreateBaseline) -> Result<(), RuntimeError> {
        let job = self.baseline_job(def)?;
        let tx = self.control_tx.clone();
        let name = job.name().to_string();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = job.run().await.map(Box::new);
            tracing::debug!(baseline = %name, ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "baseline job done");
            // The loop is gone when the system stopped meanwhile; nothing waits then.
            let _ = tx
                .send(Control::JobDone(JobDone(JobResult::Baseline(result))))
                .await;
        });
        Ok(())
    }

    /// A checked `CREATE BASELINE`, ready to run: fails when the name is taken and the
    /// statement does not say `OR REPLACE`.
    pub(super) fn baseline_job(&self, def: &CreateBaseline) -> Result<BaselineJob, RuntimeError> {
        if self.baselines.get(&def.name).is_some() && !def.or_replace {
            return Err(RuntimeError::Exists(ObjectKind::Baseline, def.name.clone()));
        }
        let ctx = QueryEngine::session(&self.store, &self.baselines, FileAccess::Paths)?;
        BaselineJob::prepare(def, &self.store, ctx)
    }
}
