//! Options of `CREATE BASELINE … WITH (…)`: which file format to read and how the profile is
//! built (histogram bins, reference sample size, quantile levels, multivariate samples).
//!
//! The values are validated when the statement is parsed, so `driftwatch check` reports a bad
//! option at its line and column before any data is read. Options left out are `None` here;
//! the runtime fills them with the profile defaults.

use crate::ast::CreateBaseline;
use crate::error::SqlError;
use crate::options::{did_you_mean, OptionLiteral, OptionValue, Options};

/// Every option `CREATE BASELINE` accepts.
pub const BASELINE_OPTIONS: &[&str] = &[
    "format",
    "bins",
    "bin_count",
    "bin_edges",
    "max_sample",
    "quantiles",
    "row_sample",
    "iforest_trees",
    "iforest_sample",
    "seed",
    "categorical",
    "covariance",
    "sketch_above",
];

/// Accepted values of the `covariance` option (default `sample`).
pub const COVARIANCE_METHODS: &[&str] = &["sample", "ledoit_wolf"];

/// Accepted values of the `format` option (file baselines; default: from the extension).
pub const BASELINE_FORMATS: &[&str] = &["csv", "parquet", "json", "jsonl", "ndjson"];

/// Accepted values of the `bins` option.
pub const BIN_RULES: &[&str] = &["fd", "sturges", "quantile", "equal"];

/// Number of bins of `bins = 'quantile'` and `bins = 'equal'` without `bin_count`.
pub const DEFAULT_BIN_COUNT: usize = 10;

/// Largest accepted `bin_count` (the cap data-driven rules also obey).
pub const MAX_BIN_COUNT: usize = 10_000;

/// How a baseline's histogram bin edges are chosen (`bins`, `bin_count`, `bin_edges`).
#[derive(Debug, Clone, PartialEq)]
pub enum BinSpec {
    /// `bins = 'fd'`: Freedman–Diaconis, `np.histogram_bin_edges(x, 'fd')`.
    Fd,
    /// `bins = 'sturges'`: `np.histogram_bin_edges(x, 'sturges')`.
    Sturges,
    /// `bins = 'quantile', bin_count = k`: equal-frequency edges,
    /// `np.unique(np.quantile(x, np.linspace(0, 1, k + 1)))`. The default is deciles
    /// (k = [`DEFAULT_BIN_COUNT`]): calibrated PSI / χ² on small windows (FUNCTIONS.md).
    Quantile(usize),
    /// `bins = 'equal', bin_count = k`: k equal-width bins over [min, max],
    /// `np.histogram_bin_edges(x, k)`.
    Equal(usize),
    /// `bin_edges = '0, 0.5, 1'`: explicit, finite, strictly increasing edges (at least two).
    Explicit(Vec<f64>),
}

impl Default for BinSpec {
    /// Equal-frequency deciles, `bins = 'quantile', bin_count = 10`.
    fn default() -> Self {
        BinSpec::Quantile(DEFAULT_BIN_COUNT)
    }
}

/// The validated `WITH (…)` options of a `CREATE BASELINE`.
///
/// ```
/// use driftwatch_sql::{parse_statements, BinSpec, Statement};
/// let sql = "CREATE BASELINE t FROM 'train.csv' \
///            WITH (bins = 'quantile', bin_count = 20, quantiles = '0.1, 0.9', seed = 7)";
/// let Statement::CreateBaseline(b) = &parse_statements(sql).unwrap()[0] else { panic!() };
/// let o = b.baseline_options().unwrap();
/// assert_eq!(o.bins, BinSpec::Quantile(20));
/// assert_eq!(o.quantiles, Some(vec![0.1, 0.9]));
/// assert_eq!((o.seed, o.max_sample), (Some(7), None));
///
/// let err = parse_statements("CREATE BASELINE t FROM 'train.csv' WITH (bins = 'quantil')")
///     .unwrap_err();
/// assert_eq!(err.location.unwrap().column, 49);
/// assert!(err.message.contains("did you mean 'quantile'?"));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BaselineOptions {
    /// `format`, lower-cased (one of [`BASELINE_FORMATS`]).
    pub format: Option<String>,
    /// The bin rule (default deciles, `BinSpec::Quantile(10)`).
    pub bins: BinSpec,
    /// `max_sample`: reference sample size per column (≥ 1).
    pub max_sample: Option<usize>,
    /// `quantiles`: levels recorded in the profile (each in [0, 1], at least one).
    pub quantiles: Option<Vec<f64>>,
    /// `row_sample`: complete rows kept for `mmd` (≥ 1).
    pub row_sample: Option<usize>,
    /// `iforest_trees`: isolation-forest trees (1 to 1000).
    pub iforest_trees: Option<usize>,
    /// `iforest_sample`: rows drawn per isolation tree (2 to 4096).
    pub iforest_sample: Option<usize>,
    /// `seed`: seed of the isolation forest.
    pub seed: Option<u64>,
    /// `categorical = 'label, class'`: columns profiled as categorical (names as written,
    /// trimmed; empty when absent).
    pub categorical: Vec<String>,
    /// `covariance`: the estimate `mahalanobis` uses, lower-cased (`sample` or
    /// `ledoit_wolf`).
    pub covariance: Option<String>,
    /// `sketch_above`: window size above which the sorted drift statistics keep a sketch
    /// (≥ 1).
    pub sketch_above: Option<usize>,
}

impl CreateBaseline {
    /// The statement's validated options (see [`BaselineOptions::from_options`]).
    pub fn baseline_options(&self) -> Result<BaselineOptions, SqlError> {
        BaselineOptions::from_options(&self.options)
    }
}

impl BaselineOptions {
    /// Validates `options` of a `CREATE BASELINE`. Errors are located at the offending value
    /// (at the key for an unknown key or a conflicting combination), say what is accepted,
    /// and suggest the closest valid key or value for a typo.
    pub fn from_options(options: &Options) -> Result<Self, SqlError> {
        options.check_known(BASELINE_OPTIONS, "baseline")?;
        let mut out = BaselineOptions {
            format: options
                .get("format")
                .map(|v| one_of(v, "format", BASELINE_FORMATS, ""))
                .transpose()?,
            max_sample: options
                .get("max_sample")
                .map(|v| size(v, "max_sample", 1, "e.g. max_sample = 100000"))
                .transpose()?,
            quantiles: options.get("quantiles").map(quantile_levels).transpose()?,
            row_sample: options
                .get("row_sample")
                .map(|v| size(v, "row_sample", 1, "e.g. row_sample = 1000"))
                .transpose()?,
            iforest_trees: options
                .get("iforest_trees")
                .map(|v| {
                    size_at_most(
                        v,
                        "iforest_trees",
                        1,
                        MAX_IFOREST_TREES,
                        "e.g. iforest_trees = 100",
                    )
                })
                .transpose()?,
            iforest_sample: options
                .get("iforest_sample")
                .map(|v| {
                    size_at_most(
                        v,
                        "iforest_sample",
                        2,
                        MAX_IFOREST_SAMPLE,
                        "e.g. iforest_sample = 256",
                    )
                })
                .transpose()?,
            seed: options
                .get("seed")
                .map(|v| integer(v, "seed", 0, "e.g. seed = 42"))
                .transpose()?,
            bins: BinSpec::default(),
            categorical: options
                .get("categorical")
                .map(column_list)
                .transpose()?
                .unwrap_or_default(),
            covariance: options
                .get("covariance")
                .map(|v| one_of(v, "covariance", COVARIANCE_METHODS, ""))
                .transpose()?,
            sketch_above: options
                .get("sketch_above")
                .map(|v| size(v, "sketch_above", 1, "e.g. sketch_above = 1048576"))
                .transpose()?,
        };
        out.bins = bin_spec(options)?;
        Ok(out)
    }
}

fn bin_spec(options: &Options) -> Result<BinSpec, SqlError> {
    let bins = options.get("bins");
    let count = options.get("bin_count");
    if let Some(edges) = options.get("bin_edges") {
        if let Some(b) = bins {
            return Err(SqlError::at(
                edges.key_location,
                format!(
                    "options 'bins' and 'bin_edges' cannot be combined: bin_edges fixes the \
                     edges itself; remove bins = {} or bin_edges",
                    b.value
                ),
            ));
        }
        if let Some(c) = count {
            return Err(SqlError::at(
                c.key_location,
                "option 'bin_count' cannot be combined with 'bin_edges' (the edges fix the \
                 number of bins); remove bin_count",
            ));
        }
        return explicit_edges(edges).map(BinSpec::Explicit);
    }
    let Some(b) = bins else {
        if let Some(c) = count {
            return Err(SqlError::at(
                c.key_location,
                "option 'bin_count' needs bins = 'quantile' or bins = 'equal' (say which rule \
                 the count is for); add one of them",
            ));
        }
        return Ok(BinSpec::default());
    };
    if let OptionLiteral::Number(n) = &b.value {
        return Err(SqlError::at(
            b.location,
            format!(
                "option 'bins' must be one of 'fd', 'sturges', 'quantile', 'equal', got {n}; \
                 for {n} equal-width bins write bins = 'equal', bin_count = {n}"
            ),
        ));
    }
    let rule = one_of(
        b,
        "bins",
        BIN_RULES,
        "; explicit edges go in bin_edges = '0, 0.5, 1' instead",
    )?;
    let k = count
        .map(|c| {
            size(c, "bin_count", 1, "e.g. bin_count = 20").and_then(|k| {
                if k > MAX_BIN_COUNT {
                    Err(SqlError::at(
                        c.location,
                        format!("option 'bin_count' must be at most {MAX_BIN_COUNT}, got {k}"),
                    ))
                } else {
                    Ok(k)
                }
            })
        })
        .transpose()?;
    match (rule.as_str(), k) {
        ("quantile", k) => Ok(BinSpec::Quantile(k.unwrap_or(DEFAULT_BIN_COUNT))),
        ("equal", k) => Ok(BinSpec::Equal(k.unwrap_or(DEFAULT_BIN_COUNT))),
        (rule, Some(_)) => Err(SqlError::at(
            count.map_or(b.location, |c| c.key_location),
            format!(
                "option 'bin_count' only applies to bins = 'quantile' or 'equal'; bins = '{rule}' \
                 derives the count from the data: remove bin_count or change bins"
            ),
        )),
        ("sturges", None) => Ok(BinSpec::Sturges),
        _ => Ok(BinSpec::Fd),
    }
}

/// `categorical = 'a, b'`: a comma-separated list of column names, none empty.
fn column_list(v: &OptionValue) -> Result<Vec<String>, SqlError> {
    let example = "e.g. categorical = 'label, class'";
    let s = text(
        v,
        "categorical",
        &format!("a list of column names, {example}"),
    )?;
    let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(SqlError::at(
            v.location,
            format!(
                "option 'categorical': item {} is empty; list column names separated by \
                 commas, {example}",
                i + 1
            ),
        ));
    }
    Ok(names)
}

/// The value as a string, number or bare word (not TRUE / FALSE).
fn text(v: &OptionValue, key: &str, what: &str) -> Result<String, SqlError> {
    match &v.value {
        OptionLiteral::String(s) | OptionLiteral::Number(s) | OptionLiteral::Ident(s) => {
            Ok(s.clone())
        }
        OptionLiteral::Bool(_) => Err(SqlError::at(
            v.location,
            format!("option '{key}' must be {what}, got {}", v.value),
        )),
    }
}

/// One of `accepted` (ASCII case-insensitive), returned lower-cased.
fn one_of(v: &OptionValue, key: &str, accepted: &[&str], extra: &str) -> Result<String, SqlError> {
    let list = accepted
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let s = text(v, key, &format!("one of {list}"))?.to_ascii_lowercase();
    if accepted.contains(&s.trim()) {
        return Ok(s.trim().to_string());
    }
    let hint = did_you_mean(s.trim(), accepted)
        .map(|a| format!("; did you mean '{a}'?"))
        .unwrap_or_default();
    Err(SqlError::at(
        v.location,
        format!(
            "option '{key}' must be one of {list}, got {}{hint}{extra}",
            v.value
        ),
    ))
}

/// An integer ≥ `min` (digits, `_` separators allowed, as a number or a string).
fn integer(v: &OptionValue, key: &str, min: u64, example: &str) -> Result<u64, SqlError> {
    let what = if min == 0 {
        "a non-negative integer".to_string()
    } else if min == 1 {
        "a positive integer".to_string()
    } else {
        format!("an integer ≥ {min}")
    };
    let bad = || {
        SqlError::at(
            v.location,
            format!("option '{key}' must be {what}, got {}; {example}", v.value),
        )
    };
    let s = text(v, key, &what).map_err(|_| bad())?;
    let n = s
        .trim()
        .replace('_', "")
        .parse::<u64>()
        .map_err(|_| bad())?;
    if n < min {
        return Err(bad());
    }
    Ok(n)
}

/// [`integer`] as a `usize`.
/// Most isolation trees a baseline may ask for (the forest is kept in memory and in the
/// baseline file: at most `MAX_IFOREST_TREES × 2 × MAX_IFOREST_SAMPLE` nodes).
pub const MAX_IFOREST_TREES: usize = 1_000;
/// Most rows per isolation tree (ψ; Liu et al. and scikit-learn use 256).
pub const MAX_IFOREST_SAMPLE: usize = 4_096;

/// [`size`] with an upper bound: sizes that drive allocations are validated before use.
fn size_at_most(
    v: &OptionValue,
    key: &str,
    min: u64,
    max: usize,
    example: &str,
) -> Result<usize, SqlError> {
    let n = size(v, key, min, example)?;
    if n > max {
        return Err(SqlError::at(
            v.location,
            format!("option '{key}' must be at most {max}, got {n}; {example}"),
        ));
    }
    Ok(n)
}

fn size(v: &OptionValue, key: &str, min: u64, example: &str) -> Result<usize, SqlError> {
    let n = integer(v, key, min, example)?;
    usize::try_from(n).map_err(|_| {
        SqlError::at(
            v.location,
            format!("option '{key}' is too large, got {}; {example}", v.value),
        )
    })
}

/// A comma-separated list of finite numbers (a string, or one number).
fn number_list(v: &OptionValue, key: &str, example: &str) -> Result<Vec<f64>, SqlError> {
    let what = format!("a quoted, comma-separated list of numbers such as {example}");
    let s = match &v.value {
        OptionLiteral::String(s) | OptionLiteral::Number(s) => s.clone(),
        _ => {
            return Err(SqlError::at(
                v.location,
                format!("option '{key}' must be {what}, got {}", v.value),
            ))
        }
    };
    let mut out = Vec::new();
    for (i, item) in s.split(',').enumerate() {
        let item = item.trim();
        let x = item
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| {
                let found = if item.is_empty() {
                    "is empty".to_string()
                } else {
                    format!("'{item}' is not a finite number")
                };
                SqlError::at(
                    v.location,
                    format!("option '{key}': item {} {found}; write {what}", i + 1),
                )
            })?;
        out.push(x);
    }
    Ok(out)
}

fn explicit_edges(v: &OptionValue) -> Result<Vec<f64>, SqlError> {
    let example = "'0, 0.5, 1, 2.5'";
    let edges = number_list(v, "bin_edges", example)?;
    if edges.len() < 2 {
        return Err(SqlError::at(
            v.location,
            format!(
                "option 'bin_edges' needs at least two edges (one bin), got {}; e.g. bin_edges = {example}",
                edges.len()
            ),
        ));
    }
    if let Some(i) = edges.windows(2).position(|w| w[0] >= w[1]) {
        return Err(SqlError::at(
            v.location,
            format!(
                "option 'bin_edges' must be strictly increasing, but item {} ({}) follows {}; \
                 sort the edges and remove repeats",
                i + 2,
                edges[i + 1],
                edges[i]
            ),
        ));
    }
    Ok(edges)
}

fn quantile_levels(v: &OptionValue) -> Result<Vec<f64>, SqlError> {
    let example = "'0.01, 0.5, 0.99'";
    let levels = number_list(v, "quantiles", example)?;
    if let Some((i, q)) = levels
        .iter()
        .enumerate()
        .find(|(_, q)| !(0.0..=1.0).contains(*q))
    {
        return Err(SqlError::at(
            v.location,
            format!(
                "option 'quantiles': item {} ({q}) is not a level between 0 and 1; \
                 write levels as fractions, e.g. quantiles = {example}",
                i + 1
            ),
        ));
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;
    use crate::{parse_statements, Statement};

    fn options(with: &str) -> Result<BaselineOptions, SqlError> {
        let sql = format!("CREATE BASELINE b FROM 'train.csv'\nWITH ({with})");
        let stmts = parse_statements(&sql)?;
        let Statement::CreateBaseline(b) = &stmts[0] else {
            panic!("not a baseline")
        };
        b.baseline_options()
    }

    /// The error for `with` (on line 2, after "WITH ("), its column and message.
    fn error(with: &str) -> (u64, String) {
        let e = options(with).expect_err(with);
        let loc = e.location.expect("located");
        assert_eq!(loc.line, 2, "{e}");
        (loc.column, e.message)
    }

    fn assert_has(message: &str, parts: &[&str]) {
        for p in parts {
            assert!(message.contains(p), "{message:?} lacks {p:?}");
        }
    }

    #[test]
    fn defaults_when_absent() {
        assert_eq!(options("").unwrap(), BaselineOptions::default());
        assert_eq!(
            options("format = CSV").unwrap().format.as_deref(),
            Some("csv")
        );
    }

    #[test]
    fn every_option_parses() {
        let o = options(
            "bins = 'QUANTILE', bin_count = 7, max_sample = '1_000', quantiles = '0, 0.5 ,1', \
             row_sample = '50', iforest_trees = 10, iforest_sample = 64, seed = 18446744073709551615, \
             sketch_above = 5000",
        )
        .unwrap();
        assert_eq!(
            o,
            BaselineOptions {
                format: None,
                bins: BinSpec::Quantile(7),
                max_sample: Some(1000),
                quantiles: Some(vec![0.0, 0.5, 1.0]),
                row_sample: Some(50),
                iforest_trees: Some(10),
                iforest_sample: Some(64),
                seed: Some(u64::MAX),
                categorical: Vec::new(),
                covariance: None,
                sketch_above: Some(5000),
            }
        );
        assert_eq!(
            options("covariance = 'Ledoit_Wolf'")
                .unwrap()
                .covariance
                .as_deref(),
            Some("ledoit_wolf")
        );
        let (_, m) = error("covariance = 'shrunk'");
        assert_has(
            &m,
            &["option 'covariance' must be one of 'sample', 'ledoit_wolf', got 'shrunk'"],
        );
        assert_eq!(
            options("categorical = ' label,Class '")
                .unwrap()
                .categorical,
            ["label", "Class"]
        );
        assert_eq!(
            options("categorical = label").unwrap().categorical,
            ["label"]
        );
        assert_eq!(options("bins = sturges").unwrap().bins, BinSpec::Sturges);
        assert_eq!(options("bins = 'fd'").unwrap().bins, BinSpec::Fd);
        assert_eq!(
            options("bins = 'equal'").unwrap().bins,
            BinSpec::Equal(DEFAULT_BIN_COUNT)
        );
        assert_eq!(
            options("bins = 'quantile'").unwrap().bins,
            BinSpec::Quantile(DEFAULT_BIN_COUNT)
        );
        assert_eq!(
            options("bin_edges = '-1, 0.5,2.5e1'").unwrap().bins,
            BinSpec::Explicit(vec![-1.0, 0.5, 25.0])
        );
        assert_eq!(
            options("quantiles = 0.5").unwrap().quantiles,
            Some(vec![0.5])
        );
    }

    #[test]
    fn forest_sizes_are_bounded_before_use() {
        let (col, m) = error("iforest_sample = 5000000000");
        assert_eq!(col, 24);
        assert_has(&m, &["'iforest_sample' must be at most 4096", "5000000000"]);
        let (_, m) = error("iforest_trees = 1001");
        assert_has(&m, &["'iforest_trees' must be at most 1000"]);
        let o = options("iforest_trees = 1000, iforest_sample = 4096").unwrap();
        assert_eq!(
            (o.iforest_trees, o.iforest_sample),
            (Some(1000), Some(4096))
        );
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let e = options("bin = 'fd'").unwrap_err();
        assert_eq!(e.location, Some(Location::new(2, 7)));
        assert_has(
            &e.message,
            &[
                "unknown option 'bin' for baseline",
                "did you mean 'bins'?",
                "valid options: format, bins, bin_count",
            ],
        );
        let (_, m) = error("max_samples = 10");
        assert_has(&m, &["did you mean 'max_sample'?"]);
    }

    #[test]
    fn bad_values_are_located_and_explained() {
        // "WITH (" is 6 characters: the first key is at column 7
        let (col, m) = error("bins = 'quantil'");
        assert_eq!(col, 14);
        assert_has(
            &m,
            &[
                "'fd', 'sturges', 'quantile', 'equal'",
                "got 'quantil'",
                "did you mean 'quantile'?",
            ],
        );
        let (col, m) = error("bins = 20");
        assert_eq!(col, 14);
        assert_has(&m, &["bins = 'equal', bin_count = 20"]);
        let (col, m) = error("bins = 'equal', bin_count = 0");
        assert_eq!(col, 35);
        assert_has(&m, &["'bin_count' must be a positive integer, got 0"]);
        let (col, m) = error("bins = 'equal', bin_count = 100000");
        assert_eq!(col, 35);
        assert_has(&m, &["at most 10000"]);
        let (col, m) = error("max_sample = -5");
        assert_eq!(col, 20);
        assert_has(
            &m,
            &[
                "'max_sample' must be a positive integer, got -5",
                "e.g. max_sample = 100000",
            ],
        );
        let (_, m) = error("max_sample = 0");
        assert_has(&m, &["got 0"]);
        let (_, m) = error("iforest_sample = 1");
        assert_has(&m, &["'iforest_sample' must be an integer ≥ 2, got 1"]);
        let (_, m) = error("seed = 1.5");
        assert_has(&m, &["'seed' must be a non-negative integer, got 1.5"]);
        let (_, m) = error("row_sample = TRUE");
        assert_has(&m, &["'row_sample' must be a positive integer, got TRUE"]);
        let (col, m) = error("format = 'xlsx'");
        assert_eq!(col, 16);
        assert_has(&m, &["'csv', 'parquet', 'json'"]);
    }

    #[test]
    fn bad_lists_name_the_item() {
        let (col, m) = error("bin_edges = '0, 1, 1, 2'");
        assert_eq!(col, 19);
        assert_has(&m, &["strictly increasing", "item 3 (1) follows 1"]);
        let (_, m) = error("bin_edges = '3'");
        assert_has(&m, &["at least two edges", "got 1"]);
        let (_, m) = error("bin_edges = '0, x'");
        assert_has(&m, &["item 2 'x' is not a finite number"]);
        let (_, m) = error("bin_edges = '0, inf'");
        assert_has(&m, &["item 2 'inf' is not a finite number"]);
        let (_, m) = error("bin_edges = '0,,1'");
        assert_has(&m, &["item 2 is empty"]);
        let (col, m) = error("quantiles = '0.5, 50'");
        assert_eq!(col, 19);
        assert_has(&m, &["item 2 (50) is not a level between 0 and 1"]);
        let (_, m) = error("quantiles = ''");
        assert_has(&m, &["item 1 is empty"]);
        let (_, m) = error("categorical = 'a,,b'");
        assert_has(&m, &["option 'categorical': item 2 is empty"]);
    }

    #[test]
    fn conflicting_bin_options() {
        let (col, m) = error("bins = 'fd', bin_edges = '0, 1'");
        assert_eq!(col, 20);
        assert_has(&m, &["'bins' and 'bin_edges' cannot be combined"]);
        let (col, m) = error("bin_count = 5");
        assert_eq!(col, 7);
        assert_has(&m, &["needs bins = 'quantile' or bins = 'equal'"]);
        let (col, m) = error("bins = 'sturges', bin_count = 5");
        assert_eq!(col, 25);
        assert_has(
            &m,
            &["only applies to bins = 'quantile' or 'equal'", "'sturges'"],
        );
        let (_, m) = error("bin_edges = '0, 1', bin_count = 5");
        assert_has(&m, &["cannot be combined with 'bin_edges'"]);
    }
}
