//! Tables as plain Flight datasets: `ListFlights` lists every queryable table, and a path
//! descriptor names one (`FlightDescriptor::for_path("iris_drift")`,
//! `for_path("baselines", "iris_train")`), for clients that speak Flight but not Flight SQL.
//!
//! Each listed [`FlightInfo`] carries the table's schema, its path descriptor (the table's
//! name as written in SQL, split at the dot: `["iris_drift"]`, `["baselines", "iris_train"]`,
//! `["system", "monitors"]`) and a ticket whose DoGet streams `SELECT * FROM <table>` — a
//! query like any other: read-only, under the query limits, as the calling user.

use arrow::array::StringArray;
use arrow::compute::kernels::comparison::like;
use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
use arrow_flight::{Criteria, FlightDescriptor, FlightInfo};
use datafusion::common::TableReference;
use futures::StreamExt;
use prost::Message;
use tonic::{Request, Response, Status};

use super::{backend_status, flight_info, SqlService};
use crate::metadata::table_list;
use crate::statement::{Classified, TicketBody};

/// DataFusion's own metadata tables: queryable, but not listed as flights.
const INFORMATION_SCHEMA: &str = "information_schema";

/// Stream of `ListFlights` answers.
pub type FlightInfoStream = futures::stream::BoxStream<'static, Result<FlightInfo, Status>>;

/// The table a path descriptor names: `[table]` (default schema), `[schema, table]` or
/// `[catalog, schema, table]`, each segment exact (no case folding, no quotes needed).
fn path_table(path: &[String]) -> Result<TableReference, Status> {
    match path {
        [t] if !t.is_empty() => Ok(TableReference::bare(t.as_str())),
        [s, t] => Ok(TableReference::partial(s.as_str(), t.as_str())),
        [c, s, t] => Ok(TableReference::full(c.as_str(), s.as_str(), t.as_str())),
        _ => Err(Status::invalid_argument(format!(
            "a path descriptor names one table: [table], [schema, table] or [catalog, schema, \
             table] (got {} segments); ListFlights lists them",
            path.len()
        ))),
    }
}

fn select_all(table: &TableReference) -> String {
    format!("SELECT * FROM {}", table.to_quoted_string())
}

/// The ticket whose DoGet runs `sql` (a `TicketStatementQuery`, as for statements).
fn sql_ticket(sql: String) -> Vec<u8> {
    TicketStatementQuery {
        statement_handle: TicketBody::Sql(sql).encode().into(),
    }
    .as_any()
    .encode_to_vec()
}

/// The optional criteria of `ListFlights`: a SQL `LIKE` pattern on the table names as
/// written in SQL (`iris%`, `baselines.%`); empty lists everything.
fn criteria_pattern(criteria: &Criteria) -> Result<Option<String>, Status> {
    if criteria.expression.is_empty() {
        return Ok(None);
    }
    std::str::from_utf8(&criteria.expression)
        .map(|s| Some(s.to_string()))
        .map_err(|_| {
            Status::invalid_argument(
                "ListFlights criteria: expected a UTF-8 LIKE pattern on table names (e.g. 'iris%')",
            )
        })
}

impl SqlService {
    /// `ListFlights`: every table of the catalog (monitor results, late and error tables,
    /// baselines, system tables) as a [`FlightInfo`] with schema, path descriptor and ticket.
    pub async fn list_table_flights(
        &self,
        request: Request<Criteria>,
    ) -> Result<Response<FlightInfoStream>, Status> {
        let who = self.identity(&request)?.name;
        let pattern = criteria_pattern(request.get_ref())?;
        let ctx = self.backend.session().await.map_err(backend_status)?;
        let (default_catalog, default_schema) = {
            let state = ctx.state();
            let c = &state.config_options().catalog;
            (c.default_catalog.clone(), c.default_schema.clone())
        };
        let mut listed = Vec::new();
        for t in table_list(&ctx).await {
            if t.schema == INFORMATION_SCHEMA {
                continue;
            }
            let (reference, path) = if t.catalog != default_catalog {
                (
                    TableReference::full(t.catalog.as_str(), t.schema.as_str(), t.table.as_str()),
                    vec![t.catalog.clone(), t.schema.clone(), t.table.clone()],
                )
            } else if t.schema != default_schema {
                (
                    TableReference::partial(t.schema.as_str(), t.table.as_str()),
                    vec![t.schema.clone(), t.table.clone()],
                )
            } else {
                (
                    TableReference::bare(t.table.as_str()),
                    vec![t.table.clone()],
                )
            };
            listed.push((reference, path, t.arrow_schema));
        }
        if let Some(pattern) = pattern {
            let names = StringArray::from_iter_values(listed.iter().map(|(r, _, _)| r.to_string()));
            let keep = like(&names, &StringArray::new_scalar(pattern))
                .map_err(|e| Status::invalid_argument(format!("ListFlights criteria: {e}")))?;
            listed = listed
                .into_iter()
                .zip(keep.iter())
                .filter_map(|(t, k)| k.unwrap_or(false).then_some(t))
                .collect();
        }
        let infos = listed
            .into_iter()
            .map(|(reference, path, schema)| {
                flight_info(
                    &schema,
                    sql_ticket(select_all(&reference)),
                    FlightDescriptor::new_path(path),
                )
            })
            .collect::<Result<Vec<_>, Status>>()?;
        tracing::debug!(user = %who, flights = infos.len(), "ListFlights");
        Ok(Response::new(
            futures::stream::iter(infos.into_iter().map(Ok)).boxed(),
        ))
    }

    /// `GetFlightInfo` of a path descriptor: the table it names, with
    /// a ticket for its rows; an unknown table is an error saying so (with "did you mean").
    pub async fn path_flight_info(
        &self,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let table = path_table(&request.get_ref().path)?;
        let kind = Classified::Query(select_all(&table));
        let (schema, body) = self.describe(&request, &kind, None).await?;
        let TicketBody::Sql(sql) = body else {
            return Err(Status::internal("a table query did not plan as a query"));
        };
        Ok(Response::new(flight_info(
            &schema,
            sql_ticket(sql),
            request.into_inner(),
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_tables() {
        let p = |s: &[&str]| path_table(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            select_all(&p(&["iris_drift"]).unwrap()),
            "SELECT * FROM iris_drift"
        );
        assert_eq!(
            select_all(&p(&["baselines", "Iris-Train"]).unwrap()),
            "SELECT * FROM baselines.\"Iris-Train\""
        );
        assert_eq!(
            select_all(&p(&["datafusion", "system", "monitors"]).unwrap()),
            "SELECT * FROM datafusion.system.monitors"
        );
        assert!(p(&[]).is_err());
        assert!(p(&[""]).is_err());
        assert!(p(&["a", "b", "c", "d"]).is_err());
    }
}
