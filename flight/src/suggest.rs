//! "did you mean …?" for a table that does not exist.
//!
//! DataFusion answers `SELECT * FROM iris_drfit` with "table 'datafusion.public.iris_drfit'
//! not found". [`suggest_table`] finds the closest table the session knows (by edit
//! distance, transpositions counting once, only when close enough to be a typo), and
//! [`with_table_hint`] appends it to the message: "…; did you mean 'iris_drift'?". A table of
//! another schema with the very name written (`FROM train` when there is `baselines.train`)
//! is suggested with its schema.
//!
//! The CLI (`driftwatch query`) and the Flight SQL server use the same functions:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use datafusion::prelude::SessionContext;
//! use driftwatch_flight::suggest::{known_tables, with_table_hint};
//! let ctx = SessionContext::new();
//! ctx.sql("CREATE TABLE iris_drift AS SELECT 1 AS w").await.unwrap();
//! let e = ctx.sql("SELECT * FROM iris_drfit").await.unwrap_err();
//! let message = with_table_hint(&e, &known_tables(&ctx));
//! assert!(message.ends_with("; did you mean 'iris_drift'?"), "{message}");
//! # });
//! ```

use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

/// The schema whose tables are written without a schema (DataFusion's default).
const DEFAULT_SCHEMA: &str = "public";

/// Every table of `ctx`'s catalogs as a user writes it in SQL: `stats` for the default
/// schema, `baselines.train`, `system.monitors`; quoted where SQL needs it (`"iris-drift"`).
/// Sorted.
pub fn known_tables(ctx: &SessionContext) -> Vec<String> {
    let default_catalog = ctx.state().config_options().catalog.default_catalog.clone();
    let default_schema = ctx.state().config_options().catalog.default_schema.clone();
    let mut out = Vec::new();
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table in schema.table_names() {
                let reference = if catalog_name != default_catalog {
                    TableReference::full(catalog_name.as_str(), schema_name.as_str(), table)
                } else if schema_name != default_schema {
                    TableReference::partial(schema_name.as_str(), table)
                } else {
                    TableReference::bare(table)
                };
                out.push(reference.to_quoted_string());
            }
        }
    }
    out.sort();
    out
}

/// The table `err` says was not found, as the query named it (from DataFusion's diagnostic
/// when it has one, else from the message), if `err` is a missing-table error.
pub fn missing_table(err: &DataFusionError) -> Option<String> {
    let from = |text: &str| -> Option<String> {
        let start = text.find("table '")? + "table '".len();
        let end = start + text[start..].rfind("' not found")?;
        let name = &text[start..end];
        (!name.is_empty()).then(|| name.to_string())
    };
    if let Some(d) = err.diagnostic() {
        if let Some(name) = from(&d.message) {
            return Some(name);
        }
    }
    let text = err.to_string();
    // "table function 'x' not found" is another error.
    if text.contains("table function '") {
        return None;
    }
    from(&text)
}

/// (schema, table) of a name written in SQL or printed by DataFusion; `None` schema: the
/// default one. A catalog part is dropped: Driftwatch sessions have one catalog.
fn split(name: &str, quoted: bool) -> (Option<String>, String) {
    let reference = if quoted {
        TableReference::parse_str_normalized(name, true)
    } else {
        // Printed names are not quoted: split at the dots (Driftwatch names have none).
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            [t] => TableReference::bare(*t),
            [s, t] => TableReference::partial(*s, *t),
            [c, s, t] => TableReference::full(*c, *s, *t),
            _ => TableReference::bare(name),
        }
    };
    let schema = reference
        .schema()
        .filter(|s| *s != DEFAULT_SCHEMA)
        .map(str::to_string);
    (schema, reference.table().to_string())
}

/// The table of `known` (names as [`known_tables`] writes them) closest to the missing
/// table of `err`, as it should be written in SQL; `None` when `err` is not a missing-table
/// error or nothing is close.
pub fn suggest_table(err: &DataFusionError, known: &[String]) -> Option<String> {
    let missing = missing_table(err)?;
    let (m_schema, m_table) = split(&missing, false);
    let m_table = m_table.to_lowercase();
    let m_full = format!(
        "{}.{m_table}",
        m_schema.as_deref().unwrap_or(DEFAULT_SCHEMA).to_lowercase()
    );
    let mut best: Option<(usize, bool, &String)> = None;
    for candidate in known {
        let (k_schema, k_table) = split(candidate, true);
        let k_table = k_table.to_lowercase();
        let distance = if m_schema.is_some() {
            let k_full = format!(
                "{}.{k_table}",
                k_schema.as_deref().unwrap_or(DEFAULT_SCHEMA).to_lowercase()
            );
            close(&m_full, &k_full)
        } else {
            close(&m_table, &k_table)
        };
        let Some(distance) = distance else { continue };
        // Ties go to the default schema's tables, then to the first name.
        let key = (distance, k_schema.is_some(), candidate);
        if best.is_none_or(|b| key < b) {
            best = Some(key);
        }
    }
    best.map(|(_, _, name)| name.clone())
        .filter(|name| *name != missing)
}

/// `err`'s message, with `; did you mean '<table>'?` when it is a missing-table error and
/// a table of `known` is close (see [`suggest_table`]).
pub fn with_table_hint(err: &DataFusionError, known: &[String]) -> String {
    let message = err.to_string();
    match suggest_table(err, known) {
        Some(name) => format!("{message}; did you mean '{name}'?"),
        None => message,
    }
}

/// The edit distance of `a` and `b` if they are close enough to be a typo of each other:
/// at most a third of the longer one's characters (at least one).
fn close(a: &str, b: &str) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let limit = (a.len().max(b.len()) / 3).max(1);
    let d = osa_distance(&a, &b);
    (d <= limit).then_some(d)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and
/// transpositions of adjacent characters each count one.
fn osa_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = v;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::plan_datafusion_err;

    fn not_found(name: &str) -> DataFusionError {
        plan_datafusion_err!("table '{name}' not found")
    }

    fn known() -> Vec<String> {
        [
            "iris_drift",
            "iris_drift_late",
            "iris_stats",
            "iris_errors",
            "\"iris-outliers\"",
            "baselines.iris_train",
            "system.monitors",
            "system.sources",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn close_typos_are_suggested() {
        let k = known();
        let s = |name: &str| suggest_table(&not_found(name), &k);
        assert_eq!(
            s("datafusion.public.iris_drfit").as_deref(),
            Some("iris_drift")
        );
        assert_eq!(s("iris_drft").as_deref(), Some("iris_drift"));
        assert_eq!(s("iris_stat").as_deref(), Some("iris_stats"));
        assert_eq!(s("system.monitor").as_deref(), Some("system.monitors"));
        assert_eq!(s("sytem.sources").as_deref(), Some("system.sources"));
        assert_eq!(
            s("baselines.iris_trian").as_deref(),
            Some("baselines.iris_train")
        );
        // The name of a table of another schema: suggested with its schema.
        assert_eq!(s("iris_train").as_deref(), Some("baselines.iris_train"));
        assert_eq!(s("monitors").as_deref(), Some("system.monitors"));
        // Quoted where SQL needs it.
        assert_eq!(s("iris_outliers").as_deref(), Some("\"iris-outliers\""));
        assert_eq!(s("IRIS_DRIFT").as_deref(), Some("iris_drift"));
    }

    #[test]
    fn nothing_close_or_another_error_gets_no_suggestion() {
        let k = known();
        assert_eq!(suggest_table(&not_found("orders"), &k), None);
        assert_eq!(suggest_table(&not_found("x"), &k), None);
        assert_eq!(suggest_table(&not_found("iris_drfit"), &[]), None);
        let other = plan_datafusion_err!("table function 'iris_drfit' not found");
        assert_eq!(suggest_table(&other, &k), None);
        let column = plan_datafusion_err!("column 'iris_drfit' not found");
        assert_eq!(suggest_table(&column, &k), None);
        assert_eq!(with_table_hint(&column, &k), column.to_string());
    }

    #[test]
    fn distance_counts_transpositions_once() {
        let d = |a: &str, b: &str| {
            osa_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("iris_drfit", "iris_drift"), 1);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", "abc"), 0);
    }

    #[tokio::test]
    async fn planning_errors_of_a_session_get_the_hint() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE iris_drift AS SELECT 1 AS w")
            .await
            .unwrap();
        ctx.sql("CREATE SCHEMA baselines").await.unwrap();
        ctx.sql("CREATE TABLE baselines.train AS SELECT 1 AS x")
            .await
            .unwrap();
        let known = known_tables(&ctx);
        assert!(known.contains(&"iris_drift".to_string()), "{known:?}");
        assert!(known.contains(&"baselines.train".to_string()), "{known:?}");
        for (sql, hint) in [
            ("SELECT * FROM iris_drfit", "iris_drift"),
            (
                "SELECT w FROM iris_drift JOIN baselines.trian ON true",
                "baselines.train",
            ),
            ("SELECT * FROM train", "baselines.train"),
        ] {
            let e = ctx.sql(sql).await.unwrap_err();
            let message = with_table_hint(&e, &known);
            assert!(
                message.ends_with(&format!("; did you mean '{hint}'?")),
                "{sql}: {message}"
            );
        }
    }
}
