//! Arguments of the window table functions.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
};

use super::{last_name, span_loc, FEATURES_FN, WINDOW_FNS};
use crate::error::{Location, SqlError};
use crate::parser::normalize_ident;

/// Flink's legacy `GROUP BY TUMBLE(ts, INTERVAL …)` group windows: point to the TVF form.
pub(super) fn reject_group_window(e: &Expr) -> Result<(), SqlError> {
    if let Expr::Function(f) = e {
        if let Some(id) = last_name(&f.name) {
            let n = id.value.to_ascii_uppercase();
            if WINDOW_FNS.contains(&n.as_str()) {
                return Err(SqlError::at(
                    Location::from_span(id.span),
                    format!(
                        "group windows (GROUP BY {n}(…)) are not supported; use the window table \
                         function instead: FROM {n}(src, ts, …) … GROUP BY window_start, window_end"
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn function_args(args: &FunctionArguments) -> Vec<FunctionArg> {
    match args {
        FunctionArguments::List(list) => list.args.clone(),
        _ => vec![],
    }
}

/// The argument expressions; named arguments and wildcards are rejected.
pub(super) fn positional_args<'a>(
    args: &'a [FunctionArg],
    fname: &str,
    loc: Location,
) -> Result<Vec<&'a Expr>, SqlError> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
            _ => Err(SqlError::at(
                loc,
                format!("{fname}: only positional arguments are supported, got {a}"),
            )),
        })
        .collect()
}

/// First argument of a window / features(): a source name, or `features(src)` inside a window.
/// Returns the source identifier and whether the long view was requested.
pub(super) fn source_arg(
    e: &Expr,
    fname: &str,
    loc: Location,
    allow_features: bool,
) -> Result<(Ident, bool), SqlError> {
    let at = span_loc(e).unwrap_or(loc);
    match e {
        Expr::Identifier(id) => Ok((id.clone(), false)),
        Expr::CompoundIdentifier(parts) => Err(SqlError::at(
            at,
            format!(
                "{fname}: qualified source names are not supported, use {}",
                parts.last().map(|p| p.value.as_str()).unwrap_or("src")
            ),
        )),
        Expr::Function(f) if allow_features => {
            let name = last_name(&f.name)
                .map(|i| i.value.to_ascii_uppercase())
                .unwrap_or_default();
            if name == FEATURES_FN {
                let args = function_args(&f.args);
                let args = positional_args(&args, FEATURES_FN, at)?;
                if args.len() != 1 {
                    return Err(SqlError::at(
                        at,
                        "features() takes one argument: features(src)",
                    ));
                }
                Ok((source_arg(args[0], FEATURES_FN, at, false)?.0, true))
            } else if WINDOW_FNS.contains(&name.as_str()) {
                Err(SqlError::at(
                    at,
                    format!("{fname}: nested windows are not supported"),
                ))
            } else {
                Err(SqlError::at(
                    at,
                    format!("{fname}: the first argument must be a source name or features(src), found {e}"),
                ))
            }
        }
        _ => Err(SqlError::at(
            at,
            format!("{fname}: the first argument must be a source name, found {e}"),
        )),
    }
}

/// Second argument of a window: a column name, or Flink's `DESCRIPTOR(col)`.
pub(super) fn time_column_arg(e: &Expr, fname: &str, usage: &str) -> Result<String, SqlError> {
    let at = span_loc(e);
    match e {
        Expr::Identifier(id) => Ok(normalize_ident(id)),
        Expr::Function(f)
            if last_name(&f.name).is_some_and(|i| i.value.eq_ignore_ascii_case("DESCRIPTOR")) =>
        {
            let args = function_args(&f.args);
            match args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(id)))] => {
                    Ok(normalize_ident(id))
                }
                _ => Err(SqlError::at(
                    at,
                    format!("{fname}: DESCRIPTOR takes one column name"),
                )),
            }
        }
        _ => Err(SqlError::at(
            at,
            format!(
                "{fname}: the time column must be a column name of the source, found {e}: {usage}"
            ),
        )),
    }
}
