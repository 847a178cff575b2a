//! What a SQL text asks for ([`classify`]): a DataFusion query, Driftwatch DDL, or a live
//! follow of a monitor; and the opaque statement tickets handed out by `GetFlightInfo`.

use driftwatch_sql::{parse_statements, ObjectKind, Statement};
use serde::{Deserialize, Serialize};

/// Prefix of the raw DoGet ticket that follows a monitor: `follow:<monitor>`.
pub const FOLLOW_TICKET_PREFIX: &str = "follow:";

/// The kind of a SQL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// A query for the DataFusion session (SHOW … is rewritten into a `system` query).
    Query(String),
    /// `CREATE` / `DROP` of sources, baselines and monitors: runs in the system.
    Ddl(String),
    /// `SELECT * FROM follow('<monitor>')`: the live results of a monitor.
    Follow(String),
}

/// Classifies `sql`. Dialect syntax errors in CREATE / DROP statements are reported as such;
/// anything else that the dialect parser rejects is left for DataFusion to explain.
pub fn classify(sql: &str) -> Result<Classified, String> {
    if let Some(monitor) = parse_follow(sql) {
        return Ok(Classified::Follow(monitor));
    }
    let statements = match parse_statements(sql) {
        Ok(s) => s,
        Err(e) => {
            if names_driftwatch_object(sql) {
                return Err(e.to_string());
            }
            // Anything else (CREATE EXTERNAL TABLE, COPY, …) is judged by the sandbox.
            return Ok(Classified::Query(sql.to_string()));
        }
    };
    let ddl = statements
        .iter()
        .filter(|s| {
            matches!(
                s,
                Statement::CreateSource(_)
                    | Statement::CreateBaseline(_)
                    | Statement::CreateMonitor(_)
                    | Statement::Drop { .. }
            )
        })
        .count();
    match (ddl, statements.as_slice()) {
        (0, [Statement::Show(kind)]) => Ok(Classified::Query(show_query(*kind))),
        (
            0,
            [Statement::ShowCreate {
                kind: kind @ (ObjectKind::Source | ObjectKind::Monitor),
                name,
            }],
        ) => Ok(Classified::Query(show_create_query(*kind, name))),
        // EXPLAIN and SHOW CREATE BASELINE run in the system (admin), answered as a message.
        (0, [Statement::Explain(_) | Statement::ShowCreate { .. }]) => {
            Ok(Classified::Ddl(sql.to_string()))
        }
        (0, _) => Ok(Classified::Query(sql.to_string())),
        (n, _) if n == statements.len() => Ok(Classified::Ddl(sql.to_string())),
        _ => Err(
            "do not mix CREATE / DROP of sources, baselines or monitors with queries in one \
                  request"
                .into(),
        ),
    }
}

/// Whether `sql` starts like Driftwatch DDL: `CREATE [OR REPLACE] SOURCE|BASELINE|MONITOR`
/// or `DROP SOURCE|BASELINE|MONITOR`.
fn names_driftwatch_object(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(4)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let object = |w: Option<&String>| {
        w.is_some_and(|w| matches!(w.as_str(), "SOURCE" | "BASELINE" | "MONITOR"))
    };
    match words.first().map(String::as_str) {
        Some("CREATE") if words.get(1).map(String::as_str) == Some("OR") => object(words.get(3)),
        Some("CREATE") | Some("DROP") => object(words.get(1)),
        _ => false,
    }
}

fn show_query(kind: ObjectKind) -> String {
    match kind {
        ObjectKind::Source => "SELECT name, sql AS definition FROM system.sources ORDER BY name",
        ObjectKind::Monitor => "SELECT name, sql AS definition FROM system.monitors ORDER BY name",
        ObjectKind::Baseline => "SELECT name FROM system.baselines ORDER BY name",
    }
    .to_string()
}

/// `SHOW CREATE SOURCE | MONITOR name` as a query of the (redacted) `system` table.
fn show_create_query(kind: ObjectKind, name: &str) -> String {
    let table = match kind {
        ObjectKind::Source => "sources",
        _ => "monitors",
    };
    format!(
        "SELECT name, sql AS definition FROM system.{table} WHERE name = '{}'",
        name.replace('\'', "''")
    )
}

/// Recognises `SELECT * FROM follow('<monitor>')` (any case and spacing, optional `;`).
pub fn parse_follow(sql: &str) -> Option<String> {
    let text = sql.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let joined = words.join(" ");
    let lower = joined.to_ascii_lowercase();
    let prefix = "select * from follow(";
    if !lower.starts_with(prefix) || !lower.ends_with(')') {
        return None;
    }
    let inner = joined[prefix.len()..joined.len() - 1].trim();
    let unquoted = inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))?;
    (!unquoted.is_empty()).then(|| unquoted.to_string())
}

/// Parses a raw `follow:<monitor>` DoGet ticket.
pub fn parse_follow_ticket(ticket: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(ticket).ok()?;
    let monitor = text.strip_prefix(FOLLOW_TICKET_PREFIX)?.trim();
    (!monitor.is_empty()).then(|| monitor.to_string())
}

/// Body of a `TicketStatementQuery` handle: what DoGet must stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketBody {
    /// Run this query.
    Sql(String),
    /// Return this one-row message (DDL sent as a query).
    Message(String),
    /// Follow this monitor.
    Follow(String),
}

impl TicketBody {
    /// Encodes the ticket body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("ticket body serialises")
    }

    /// Decodes a ticket body.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid statement ticket: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_and_show_create_are_routed() {
        assert_eq!(
            classify("SHOW CREATE MONITOR M").unwrap(),
            Classified::Query(
                "SELECT name, sql AS definition FROM system.monitors WHERE name = 'm'".into()
            )
        );
        assert_eq!(
            classify("SHOW CREATE SOURCE \"Src\"").unwrap(),
            Classified::Query(
                "SELECT name, sql AS definition FROM system.sources WHERE name = 'Src'".into()
            )
        );
        for sql in ["EXPLAIN MONITOR m", "SHOW CREATE BASELINE b"] {
            assert_eq!(classify(sql).unwrap(), Classified::Ddl(sql.into()), "{sql}");
        }
    }

    #[test]
    fn classifies_queries_ddl_and_follow() {
        assert_eq!(
            classify("SELECT * FROM iris_drift").unwrap(),
            Classified::Query("SELECT * FROM iris_drift".into())
        );
        assert!(matches!(
            classify("CREATE MONITOR m AS SELECT count(*) FROM TUMBLE(s, ts, INTERVAL '1 second') GROUP BY window_start, window_end").unwrap(),
            Classified::Ddl(_)
        ));
        assert!(matches!(
            classify("DROP MONITOR IF EXISTS m").unwrap(),
            Classified::Ddl(_)
        ));
        assert_eq!(
            classify("  select *  FROM Follow('iris_drift') ; ").unwrap(),
            Classified::Follow("iris_drift".into())
        );
        assert!(
            matches!(classify("SHOW MONITORS").unwrap(), Classified::Query(q) if q.contains("system.monitors"))
        );
        assert!(classify("CREATE SOURCE (").is_err());
        assert!(classify("create or replace monitor (").is_err());
        // Not Driftwatch DDL: left for the sandbox to refuse with its own message.
        assert!(matches!(
            classify("CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'").unwrap(),
            Classified::Query(_)
        ));
        assert!(classify("DROP MONITOR m; SELECT 1").is_err());
    }

    #[test]
    fn follow_tickets_and_bodies_round_trip() {
        assert_eq!(
            parse_follow_ticket(b"follow:iris_drift").as_deref(),
            Some("iris_drift")
        );
        assert_eq!(parse_follow_ticket(b"follow:"), None);
        assert_eq!(parse_follow_ticket(b"\x0a\x01x"), None);
        let body = TicketBody::Sql("SELECT 1".into());
        assert_eq!(TicketBody::decode(&body.encode()).unwrap(), body);
    }
}
