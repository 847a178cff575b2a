//! [`SqlService`]: the Flight SQL commands — statements, prepared statements with
//! parameters (`?` or `$1`, see [`crate::placeholders`]), DDL, catalog metadata — over a
//! [`Backend`]; and tables as plain Flight datasets (`ListFlights`, path descriptors).
//!
//! Callers are authenticated before they get here (see [`crate::server`]): the caller's
//! [`Identity`] travels in the request extensions.
#![allow(clippy::result_large_err)] // tonic::Status is the error type of every Flight call

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementQuery, CommandStatementUpdate,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc,
    Ticket,
};
use datafusion::common::ScalarValue;
use datafusion::prelude::DataFrame;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::{Request, Response, Status};

use crate::auth::{Identity, Role};
use crate::backend::{Backend, BackendError};
use crate::follow::follow_batches;
use crate::limits::{QueryLimits, QueryRuntime};
use crate::metadata;
use crate::placeholders::positional_types;
use crate::sandbox::{read_only_options, read_only_query};
use crate::statement::{classify, Classified, TicketBody};
use crate::suggest::known_tables;

mod tables;
pub use tables::FlightInfoStream;

/// Most prepared statements kept open at once; the oldest are closed beyond that.
pub const MAX_PREPARED: usize = 4096;

/// Stream of Flight data answered by DoGet.
pub type FlightDataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

#[derive(Debug, Clone)]
struct Prepared {
    kind: Classified,
    param_types: Vec<Option<DataType>>,
    params: Option<Vec<ScalarValue>>,
    created: u64,
    /// The client session that prepared it (see [`session_key`]); nobody else may use it.
    owner: String,
}

/// The client session a request belongs to: the caller's name and the address of its
/// connection (each Flight client — a pyarrow `FlightClient`, an ADBC connection — holds
/// one gRPC connection).
fn session_key<T>(request: &Request<T>, identity: &Identity) -> String {
    let peer = request
        .remote_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|| "local".into());
    format!("{}@{peer}", identity.name)
}

/// The Flight SQL service.
pub struct SqlService {
    backend: Arc<dyn Backend>,
    auth_enabled: bool,
    prepared: Mutex<HashMap<String, Prepared>>,
    next_handle: AtomicU64,
    limits: QueryLimits,
    runtime: QueryRuntime,
}

/// Maps a backend error to a gRPC status.
pub fn backend_status(e: BackendError) -> Status {
    match e {
        BackendError::Invalid(m) => Status::invalid_argument(m),
        BackendError::NotFound(m) => Status::not_found(m),
        BackendError::Unavailable(m) => Status::unavailable(m),
        e @ BackendError::Lagged(_) => Status::resource_exhausted(e.to_string()),
    }
}

fn df_status(e: datafusion::error::DataFusionError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// Batches in flight between the query threads and the gRPC stream of one query.
const QUERY_CHANNEL: usize = 2;

/// Encodes record batches as a DoGet answer that starts with `schema`.
pub fn encode_stream(
    schema: SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch, FlightError>>,
) -> FlightDataStream {
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from),
    )
}

fn message_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "message",
        DataType::Utf8,
        false,
    )]))
}

fn message_batch(message: &str) -> RecordBatch {
    let column: ArrayRef = Arc::new(StringArray::from(vec![message]));
    RecordBatch::try_new(message_schema(), vec![column]).expect("one utf8 column")
}

fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("encoding schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

fn one_batch(batch: RecordBatch) -> FlightDataStream {
    let schema = batch.schema();
    encode_stream(schema, futures::stream::once(async { Ok(batch) }).boxed())
}

impl SqlService {
    /// A service over `backend`; with `auth_enabled`, requests without an [`Identity`] in
    /// their extensions are refused. Queries run under `limits` (see [`crate::limits`]).
    pub fn new(backend: Arc<dyn Backend>, auth_enabled: bool, limits: QueryLimits) -> Self {
        Self {
            backend,
            auth_enabled,
            prepared: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            runtime: QueryRuntime::get(limits.threads),
            limits,
        }
    }

    fn identity<T>(&self, request: &Request<T>) -> Result<Identity, Status> {
        match request.extensions().get::<Identity>() {
            Some(id) => Ok(id.clone()),
            None if !self.auth_enabled => Ok(Identity::anonymous_admin()),
            None => Err(Status::unauthenticated("authentication required")),
        }
    }

    fn require_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let id = self.identity(request)?;
        if id.role != Role::Admin {
            tracing::warn!(user = %id.name, "DDL refused: read-only role");
            return Err(Status::permission_denied(format!(
                "user '{}' has the read role; only admins may create or drop sources, baselines \
                 and monitors",
                id.name
            )));
        }
        Ok(())
    }

    /// Plans a client query: read-only check, a session of its own under the limits, and
    /// DataFusion's verifier with DDL, DML and statements off — on the query threads.
    async fn dataframe(
        &self,
        sql: &str,
        params: Option<&[ScalarValue]>,
    ) -> Result<DataFrame, Status> {
        let sql = read_only_query(sql)
            .map_err(Status::invalid_argument)?
            .into_owned();
        let shared = self.backend.session().await.map_err(backend_status)?;
        let ctx = self.limits.session(&shared).map_err(df_status)?;
        let params = params.map(|p| p.to_vec());
        let limits = self.limits;
        self.runtime
            .run(async move {
                let df = match ctx.sql_with_options(&sql, read_only_options()).await {
                    Ok(df) => df,
                    Err(e) => return Err(limits.plan_status(&e, &known_tables(&ctx))),
                };
                match params {
                    Some(p) => df.with_param_values(p).map_err(df_status),
                    None => Ok(df),
                }
            })
            .await?
    }

    /// Executes a planned query on the query threads under the time limit; batches reach the
    /// returned stream through a small channel, so a slow reader holds the query back
    /// rather than buffering its results, and a reader that goes away cancels it.
    async fn execute(&self, df: DataFrame) -> Result<FlightDataStream, Status> {
        let schema: SchemaRef = df.schema().inner().clone();
        let limits = self.limits;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, Status>>(QUERY_CHANNEL);
        self.runtime.spawn(async move {
            let run = async {
                let mut stream = match df.execute_stream().await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(limits.status(&e))).await;
                        return;
                    }
                };
                while let Some(item) = stream.next().await {
                    let item = item.map_err(|e| limits.status(&e));
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            };
            if tokio::time::timeout(limits.timeout, run).await.is_err() {
                tracing::warn!(timeout = ?limits.timeout, "Flight SQL query cancelled: time limit");
                let _ = tx.send(Err(limits.timeout_status())).await;
            }
        });
        let batches = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map_err(|status| FlightError::Tonic(Box::new(status)))
            .boxed();
        Ok(encode_stream(schema, batches))
    }

    async fn run_ddl<T>(&self, request: &Request<T>, sql: &str) -> Result<String, Status> {
        self.require_admin(request)?;
        let who = self.identity(request)?.name;
        let message = self
            .backend
            .execute_ddl(sql)
            .await
            .map_err(backend_status)?;
        tracing::info!(user = %who, %message, "DDL executed over Flight SQL");
        Ok(message)
    }

    /// Streams what a statement ticket names.
    async fn stream_body(
        &self,
        body: TicketBody,
        params: Option<&[ScalarValue]>,
    ) -> Result<FlightDataStream, Status> {
        match body {
            TicketBody::Sql(sql) => {
                let df = self.dataframe(&sql, params).await?;
                self.execute(df).await
            }
            TicketBody::Message(m) => Ok(one_batch(message_batch(&m))),
            TicketBody::Follow(monitor) => self.follow_stream(&monitor).await,
        }
    }

    /// The live follow stream of `monitor`.
    pub async fn follow_stream(&self, monitor: &str) -> Result<FlightDataStream, Status> {
        let (schema, batches) = follow_batches(&self.backend, monitor)
            .await
            .map_err(backend_status)?;
        Ok(encode_stream(schema, batches))
    }

    /// The schema a classified statement returns (runs DDL, which has effects).
    async fn describe<T>(
        &self,
        request: &Request<T>,
        kind: &Classified,
        params: Option<&[ScalarValue]>,
    ) -> Result<(SchemaRef, TicketBody), Status> {
        match kind {
            Classified::Query(sql) => {
                let df = self.dataframe(sql, params).await?;
                Ok((df.schema().inner().clone(), TicketBody::Sql(sql.clone())))
            }
            Classified::Ddl(sql) => {
                let message = self.run_ddl(request, sql).await?;
                Ok((message_schema(), TicketBody::Message(message)))
            }
            Classified::Follow(monitor) => {
                let (schema, _) = self.backend.follow(monitor).await.map_err(backend_status)?;
                Ok((schema, TicketBody::Follow(monitor.clone())))
            }
        }
    }

    /// The prepared statement `handle` of the caller's session.
    fn prepared<T>(
        &self,
        request: &Request<T>,
        handle: &[u8],
    ) -> Result<(String, Prepared), Status> {
        let owner = session_key(request, &self.identity(request)?);
        let handle = String::from_utf8_lossy(handle).to_string();
        let map = self.prepared.lock().expect("prepared lock");
        match map.get(&handle) {
            Some(p) if p.owner == owner => Ok((handle.clone(), p.clone())),
            // Another session's statement is answered like an unknown one.
            _ => Err(Status::not_found(format!(
                "unknown or closed prepared statement '{handle}' (prepared statements belong \
                 to the connection that created them)"
            ))),
        }
    }
}

/// A fresh, unguessable prepared-statement handle.
fn new_handle(n: u64) -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ps-{n}-{hex}")
}

fn metadata_info<M: ProstMessageExt>(
    cmd: &M,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    Ok(Response::new(flight_info(
        schema,
        cmd.as_any().encode_to_vec(),
        descriptor,
    )?))
}

/// Reads the parameter batches of a DoPut and returns the values of the last row.
async fn read_parameters(
    request: Request<PeekableFlightDataStream>,
    types: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, Status> {
    let stream = request.into_inner().map_err(FlightError::from);
    let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(stream)
        .try_collect()
        .await
        .map_err(Status::from)?;
    let Some(batch) = batches.iter().rev().find(|b| b.num_rows() > 0) else {
        return Ok(Vec::new());
    };
    if batches.iter().map(|b| b.num_rows()).sum::<usize>() > 1 {
        tracing::debug!("several parameter rows bound; the last one is used");
    }
    let row = batch.num_rows() - 1;
    batch
        .columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let value = ScalarValue::try_from_array(col, row).map_err(df_status)?;
            match types.get(i).cloned().flatten() {
                Some(t) if t != value.data_type() && !value.is_null() => {
                    value.cast_to(&t).map_err(df_status)
                }
                Some(t) if value.is_null() => ScalarValue::try_from(&t).map_err(df_status),
                _ => Ok(value),
            }
        })
        .collect()
}

#[tonic::async_trait]
impl FlightSqlService for SqlService {
    type FlightService = SqlService;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let kind = classify(&query.query).map_err(Status::invalid_argument)?;
        let (schema, body) = self.describe(&request, &kind, None).await?;
        let ticket = TicketStatementQuery {
            statement_handle: body.encode().into(),
        };
        let info = flight_info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let body =
            TicketBody::decode(&ticket.statement_handle).map_err(Status::invalid_argument)?;
        Ok(Response::new(self.stream_body(body, None).await?))
    }

    async fn do_put_statement_update(
        &self,
        cmd: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        match classify(&cmd.query).map_err(Status::invalid_argument)? {
            Classified::Ddl(sql) => {
                self.run_ddl(&request, &sql).await?;
                Ok(0)
            }
            _ => Err(Status::invalid_argument(
                "only CREATE / DROP of sources, baselines and monitors are updates; run queries \
                 as statements (CommandStatementQuery)",
            )),
        }
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let kind = classify(&query.query).map_err(Status::invalid_argument)?;
        let (dataset_schema, param_types) = match &kind {
            Classified::Query(sql) => {
                let df = self.dataframe(sql, None).await?;
                let types = df.logical_plan().get_parameter_types().map_err(df_status)?;
                let types =
                    positional_types(types).map_err(|e| Status::invalid_argument(e.to_string()))?;
                (df.schema().inner().clone(), types)
            }
            Classified::Ddl(_) => (message_schema(), Vec::new()),
            Classified::Follow(m) => (
                self.backend.follow(m).await.map_err(backend_status)?.0,
                Vec::new(),
            ),
        };
        let owner = session_key(&request, &self.identity(&request)?);
        let parameter_schema = Schema::new(
            param_types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Field::new(
                        format!("${}", i + 1),
                        t.clone().unwrap_or(DataType::Utf8),
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        );
        let n = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let handle = new_handle(n);
        {
            let mut map = self.prepared.lock().expect("prepared lock");
            if map.len() >= MAX_PREPARED {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, p)| p.created)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
            map.insert(
                handle.clone(),
                Prepared {
                    kind,
                    param_types,
                    params: None,
                    created: n,
                    owner,
                },
            );
        }
        let ipc = |s: &Schema| -> Result<_, Status> {
            let IpcMessage(bytes) = SchemaAsIpc::new(s, &IpcWriteOptions::default())
                .try_into()
                .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
            Ok(bytes)
        };
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: ipc(&dataset_schema)?,
            parameter_schema: ipc(&parameter_schema)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let (handle, _) = self.prepared(&request, &query.prepared_statement_handle)?;
        self.prepared.lock().expect("prepared lock").remove(&handle);
        Ok(())
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let (handle, prepared) = self.prepared(&request, &query.prepared_statement_handle)?;
        let params = read_parameters(request, &prepared.param_types).await?;
        if let Some(p) = self
            .prepared
            .lock()
            .expect("prepared lock")
            .get_mut(&handle)
        {
            p.params = Some(params);
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle.into_bytes().into()),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (_, prepared) = self.prepared(&request, &cmd.prepared_statement_handle)?;
        let (schema, body) = self
            .describe(&request, &prepared.kind, prepared.params.as_deref())
            .await?;
        // DDL already ran: hand out its message; queries run again in DoGet with the params.
        let ticket = match body {
            TicketBody::Sql(_) => cmd.as_any().encode_to_vec(),
            other => TicketStatementQuery {
                statement_handle: other.encode().into(),
            }
            .as_any()
            .encode_to_vec(),
        };
        Ok(Response::new(flight_info(
            &schema,
            ticket,
            request.into_inner(),
        )?))
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let (_, prepared) = self.prepared(&request, &cmd.prepared_statement_handle)?;
        let Classified::Query(sql) = prepared.kind else {
            return Err(Status::invalid_argument(
                "this prepared statement is not a query",
            ));
        };
        let stream = self
            .stream_body(TicketBody::Sql(sql), prepared.params.as_deref())
            .await?;
        Ok(Response::new(stream))
    }

    async fn do_put_prepared_statement_update(
        &self,
        cmd: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let (_, prepared) = self.prepared(&request, &cmd.prepared_statement_handle)?;
        match prepared.kind {
            Classified::Ddl(sql) => {
                self.run_ddl(&request, &sql).await?;
                Ok(0)
            }
            _ => Err(Status::invalid_argument(
                "this prepared statement is a query, not an update",
            )),
        }
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(&query, &schema, request.into_inner())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&metadata::SQL_INFO).schema();
        metadata_info(&query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ctx = self.backend.session().await.map_err(backend_status)?;
        let batch = metadata::catalogs(&ctx, query).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ctx = self.backend.session().await.map_err(backend_status)?;
        let batch =
            metadata::db_schemas(&ctx, query).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ctx = self.backend.session().await.map_err(backend_status)?;
        let batch = metadata::tables(&ctx, query)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = metadata::table_types(query).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let batch = query
            .into_builder(&metadata::SQL_INFO)
            .build()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(one_batch(batch)))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::invalid_argument(format!(
            "unsupported ticket {}; to follow a monitor use the ticket bytes 'follow:<monitor>'",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
