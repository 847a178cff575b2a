//! Arguments of the window table functions.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Value,
};

use super::{last_name, span_loc, FeatureList, FeatureSelection, FEATURES_FN, WINDOW_FNS};
use crate::error::{Location, SqlError};
use crate::parser::normalize_ident;

const FEATURES_USAGE: &str =
    "features(src), features(src, include => 'a, b') or features(src, exclude => 'c')";

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

/// Arguments of `features(src [, include => 'a, b'] [, exclude => 'c'])`: the source and the
/// column selection (see [`FeatureSelection`]).
pub(super) fn features_args(
    args: &[FunctionArg],
    loc: Location,
) -> Result<(Ident, FeatureSelection), SqlError> {
    let mut source: Option<Ident> = None;
    let mut selection = FeatureSelection::default();
    for a in args {
        match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) if source.is_none() => {
                source = Some(source_arg(e, FEATURES_FN, loc, false)?.0);
            }
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } if source.is_some() => {
                let at = Location::from_span(name.span).unwrap_or(loc);
                let key = name.value.to_ascii_lowercase();
                let slot = match key.as_str() {
                    "include" => &mut selection.include,
                    "exclude" => &mut selection.exclude,
                    _ => {
                        let hint = crate::options::did_you_mean(&key, &["include", "exclude"])
                            .map(|s| format!("did you mean {s}? "))
                            .unwrap_or_default();
                        return Err(SqlError::at(
                            at,
                            format!(
                                "features(): unknown argument '{}'; {hint}usage: {FEATURES_USAGE}",
                                name.value
                            ),
                        ));
                    }
                };
                if slot.is_some() {
                    return Err(SqlError::at(
                        at,
                        format!("features(): {key} is given twice"),
                    ));
                }
                *slot = Some(column_list(e, &key, at)?);
            }
            _ => {
                return Err(SqlError::at(
                    loc,
                    format!(
                        "features(): unexpected argument {a}; the source comes first, then \
                         optional named arguments: {FEATURES_USAGE}"
                    ),
                ))
            }
        }
    }
    let Some(source) = source else {
        return Err(SqlError::at(
            loc,
            format!("features() needs a source: {FEATURES_USAGE}"),
        ));
    };
    if selection.exclude.as_ref().is_some_and(|l| l.all) {
        return Err(SqlError::at(
            selection.exclude.as_ref().and_then(|l| l.location),
            "features(): exclude => '*' would leave no feature",
        ));
    }
    Ok((source, selection))
}

/// `'a, b'` (comma-separated column names; `'*'` for every numeric column) of `include` /
/// `exclude`.
fn column_list(e: &Expr, key: &str, at: Location) -> Result<FeatureList, SqlError> {
    let location = span_loc(e).or(Some(at));
    let text = match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let Some(text) = text else {
        return Err(SqlError::at(
            location,
            format!("features(): {key} takes a string of comma-separated column names, e.g. {key} => 'a, b'; found {e}"),
        ));
    };
    let names: Vec<String> = text.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(SqlError::at(
            location,
            format!("features(): {key} => '{text}' has an empty column name; list names separated by commas, e.g. {key} => 'a, b'"),
        ));
    }
    let all = names.iter().any(|n| n == "*");
    if all && names.len() > 1 {
        return Err(SqlError::at(
            location,
            format!("features(): {key} => '{text}' mixes '*' with column names; use '*' alone"),
        ));
    }
    Ok(FeatureList {
        names: if all { Vec::new() } else { names },
        all,
        location,
    })
}

/// First argument of a window / features(): a source name, or `features(src, …)` inside a
/// window. Returns the source identifier and, for the long view, its column selection.
pub(super) fn source_arg(
    e: &Expr,
    fname: &str,
    loc: Location,
    allow_features: bool,
) -> Result<(Ident, Option<FeatureSelection>), SqlError> {
    let at = span_loc(e).unwrap_or(loc);
    match e {
        Expr::Identifier(id) => Ok((id.clone(), None)),
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
                let (src, selection) = features_args(&args, at)?;
                Ok((src, Some(selection)))
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
