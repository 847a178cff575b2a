//! Reading a monitor's results for a report: the rows of the time range from the result
//! store (offline, as `driftwatch query` does), the monitor's definition (newest checkpoint,
//! else the catalog) and, for histograms, the baseline profile's bins.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use driftwatch_udfs::{BaselineProfile, BaselineRegistry};

use super::svg::{downsample, Series};
use super::{Range, ReportError};
use crate::checkpoint::CheckpointStore;
use crate::present::definition::{filters_rows, histogram_baseline};
use crate::present::{ResultShape, TimeColumns};
use crate::query::{FileAccess, QueryEngine};
use crate::serve::catalog::CatalogFile;
use crate::sinks::store::StoreTable;
use crate::sinks::ResultStore;

/// Most series drawn per chart (the others are counted, not drawn).
pub const MAX_SERIES: usize = 20;
/// Most points per series (min/max downsampling above).
pub const MAX_POINTS: usize = 1000;
/// Most charts (numeric result columns).
pub const MAX_CHARTS: usize = 24;
/// Most heat map columns: more windows are merged into buckets (drifted if any is).
pub const MAX_HEAT_COLUMNS: usize = 400;
/// Most heat map rows (features, the most drifted first).
pub const MAX_HEAT_ROWS: usize = 300;
/// Most histogram comparisons (the most drifted features first).
pub const MAX_HISTOGRAMS: usize = 24;
/// Most alert rows listed (the newest).
pub const MAX_ALERT_ROWS: usize = 200;

/// One chart: a numeric result column over time, one series per group.
#[derive(Debug)]
pub struct Chart {
    /// The result column.
    pub column: String,
    /// Drawn series (downsampled).
    pub series: Vec<Series>,
    /// Series not drawn (over [`MAX_SERIES`]).
    pub hidden: usize,
}

/// Per-feature drift summary.
#[derive(Debug, Clone)]
pub struct FeatureSummary {
    /// Feature name.
    pub name: String,
    /// Windows with a result for the feature.
    pub windows: usize,
    /// Of which drifted.
    pub drifted: usize,
    /// Score of the feature's newest window.
    pub last_score: Option<f64>,
}

impl FeatureSummary {
    /// Drifted share of the windows.
    pub fn share(&self) -> f64 {
        if self.windows == 0 {
            0.0
        } else {
            self.drifted as f64 / self.windows as f64
        }
    }
}

/// A drifted feature's newest drifted window against the baseline.
#[derive(Debug)]
pub struct HistogramPair {
    /// Feature.
    pub feature: String,
    /// The window.
    pub window: (i64, i64),
    /// Baseline bin edges.
    pub edges: Vec<f64>,
    /// The window's counts.
    pub current: Vec<i64>,
    /// The baseline's counts.
    pub baseline: Vec<u64>,
}

/// The drift part of a report.
#[derive(Debug)]
pub struct Drift {
    /// Flag column (with `.field` for a struct).
    pub flag: String,
    /// Score column shown as "last score", if any.
    pub score: Option<String>,
    /// Features, most drifted share first.
    pub features: Vec<FeatureSummary>,
    /// Heat map columns (first start, last end of each bucket).
    pub columns: Vec<(i64, i64)>,
    /// Heat map cells.
    pub cells: Vec<super::svg::Cell>,
    /// Histogram comparisons.
    pub histograms: Vec<HistogramPair>,
    /// Why histograms are missing, when they are.
    pub histogram_note: Option<String>,
}

/// Alert rows (a filtered or HAVING monitor).
#[derive(Debug)]
pub struct Alerts {
    /// Column names.
    pub columns: Vec<String>,
    /// The newest rows, rendered as text, newest first.
    pub rows: Vec<Vec<String>>,
    /// All alert rows in the range.
    pub total: usize,
}

/// Everything a report shows.
#[derive(Debug)]
pub struct Collected {
    /// Monitor name.
    pub monitor: String,
    /// The CREATE MONITOR statement, secrets redacted.
    pub definition: Option<String>,
    /// Column roles.
    pub shape: ResultShape,
    /// Range covered (epoch ms).
    pub from_ms: i64,
    /// End of the range (epoch ms).
    pub to_ms: i64,
    /// Rows in the range.
    pub rows: usize,
    /// Distinct windows (windowed) or event times in the range.
    pub windows: usize,
    /// Charts.
    pub charts: Vec<Chart>,
    /// Numeric columns not charted (over [`MAX_CHARTS`]).
    pub hidden_charts: usize,
    /// Drift part (drift monitors).
    pub drift: Option<Drift>,
    /// Alert rows (filtered monitors).
    pub alerts: Option<Alerts>,
}

fn read_err(monitor: &str) -> impl Fn(String) -> ReportError + '_ {
    move |message| ReportError::Read {
        monitor: monitor.to_string(),
        message,
    }
}

/// `name` as a quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Epoch ms of a timestamp/date array, None for nulls.
fn millis(array: &ArrayRef) -> Result<Vec<Option<i64>>, String> {
    let ts = cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))
        .map_err(|e| e.to_string())?;
    let ints = cast(&ts, &DataType::Int64).map_err(|e| e.to_string())?;
    let ints = ints.as_primitive::<Int64Type>();
    Ok((0..ints.len())
        .map(|i| ints.is_valid(i).then(|| ints.value(i)))
        .collect())
}

/// Text of a key column's values ("NULL" for nulls).
fn texts(array: &ArrayRef) -> Result<Vec<String>, String> {
    let s = cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
    let s = s.as_string::<i32>();
    Ok((0..s.len())
        .map(|i| {
            if s.is_valid(i) {
                s.value(i).to_string()
            } else {
                "NULL".into()
            }
        })
        .collect())
}

/// The newest stored definition of `monitor`: the newest checkpoint's, else the catalog's.
fn definition(store: &ResultStore, monitor: &str) -> Option<String> {
    let from_checkpoint = CheckpointStore::new(store.root()).latest().and_then(|c| {
        c.manifest
            .monitors
            .get(monitor)
            .map(|m| m.definition.clone())
    });
    from_checkpoint.or_else(|| {
        let statements = CatalogFile::new(store.root()).load().ok()?;
        statements.into_iter().rev().find_map(|s| match s {
            driftwatch_sql::Statement::CreateMonitor(m) if m.name == monitor => Some(m.sql),
            _ => None,
        })
    })
}

/// Reads `monitor`'s results in `range` from `store` and prepares every part of the report.
pub async fn collect(
    store: &ResultStore,
    monitor: &str,
    range: &Range,
) -> Result<Collected, ReportError> {
    let err = read_err(monitor);
    let tables = store.table_names();
    if !tables.iter().any(|t| t == monitor) {
        return Err(ReportError::UnknownMonitor {
            monitor: monitor.to_string(),
            dir: store.root().display().to_string(),
            known: tables,
        });
    }
    let table = StoreTable::open(store, monitor)
        .await
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| ReportError::NoResults(monitor.to_string()))?;
    let ctx = QueryEngine::session(
        store,
        &Arc::new(BaselineRegistry::new()),
        FileAccess::CatalogOnly,
    )
    .map_err(|e| err(e.to_string()))?;
    ctx.register_table(ident(monitor), Arc::new(table))
        .map_err(|e| err(e.to_string()))?;
    let sql = |q: String| {
        let ctx = ctx.clone();
        async move {
            let df = ctx.sql(&q).await.map_err(|e| e.to_string())?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.map_err(|e| e.to_string())?;
            concat_batches(&schema, &batches).map_err(|e| e.to_string())
        }
    };
    let schema = sql(format!("SELECT * FROM {} LIMIT 0", ident(monitor)))
        .await
        .map_err(&err)?
        .schema();
    let shape = ResultShape::of(&schema);
    // The range is judged on window ends (a window is in it when it ended in it) or event times.
    let (start_col, time_col) = match &shape.time {
        TimeColumns::Window { start, end } => (Some(start.clone()), Some(end.clone())),
        TimeColumns::Event { column } => (Some(column.clone()), Some(column.clone())),
        TimeColumns::None => (None, None),
    };
    let mut bounds = None;
    if let Some(t) = &time_col {
        let span = sql(format!(
            "SELECT min({t}) AS lo, max({t}) AS hi FROM {}",
            ident(monitor),
            t = ident(t)
        ))
        .await
        .map_err(&err)?;
        let lo = millis(span.column(0)).map_err(&err)?;
        let hi = millis(span.column(1)).map_err(&err)?;
        if let (Some(Some(lo)), Some(Some(hi))) = (lo.first(), hi.first()) {
            bounds = Some((*lo, *hi));
        }
    }
    let Some((first, last)) = bounds.or(time_col.is_none().then_some((0, 0))) else {
        return Err(ReportError::NoResults(monitor.to_string()));
    };
    let (from_ms, to_ms) = match range {
        Range::All => (first, last),
        // Relative to the newest result, so a stopped monitor's report shows its last hour.
        Range::Since(d) => (last.saturating_sub(d.as_millis() as i64), last),
        Range::Between { from, to } => (from.unwrap_or(first), to.unwrap_or(last)),
    };
    let mut query = format!("SELECT * FROM {}", ident(monitor));
    if let Some(t) = &time_col {
        let lower = if matches!(range, Range::Since(_)) {
            ">"
        } else {
            ">="
        };
        query.push_str(&format!(
            " WHERE {t} {lower} to_timestamp_millis({from_ms}) AND {t} <= to_timestamp_millis({to_ms}) ORDER BY {t}",
            t = ident(t)
        ));
    }
    let batch = sql(query).await.map_err(&err)?;
    if batch.num_rows() == 0 {
        return Err(ReportError::Empty {
            monitor: monitor.to_string(),
            from: super::svg::time_label(from_ms, false),
            to: super::svg::time_label(to_ms, false),
            first: super::svg::time_label(first, false),
            last: super::svg::time_label(last, false),
        });
    }
    let column = |name: &str| -> Result<ArrayRef, ReportError> {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| err(format!("column '{name}' missing")))
    };
    let rows = batch.num_rows();
    let x: Vec<i64> = match &start_col {
        Some(c) => millis(&column(c)?)
            .map_err(&err)?
            .into_iter()
            .map(|v| v.unwrap_or(i64::MIN))
            .collect(),
        None => (0..rows as i64).collect(),
    };
    let ends: Vec<i64> = match &time_col {
        Some(c) => millis(&column(c)?)
            .map_err(&err)?
            .into_iter()
            .map(|v| v.unwrap_or(i64::MIN))
            .collect(),
        None => x.clone(),
    };
    // What the rows cover: the first window's start to the last window's end.
    let from_ms = x
        .iter()
        .copied()
        .filter(|t| *t != i64::MIN)
        .min()
        .unwrap_or(from_ms);
    let to_ms = ends.iter().copied().max().unwrap_or(to_ms);
    let mut distinct: Vec<i64> = x.clone();
    distinct.sort_unstable();
    distinct.dedup();

    // Group label per row: the key values joined.
    let key_texts: Vec<Vec<String>> = shape
        .keys
        .iter()
        .map(|k| column(k).and_then(|a| texts(&a).map_err(&err)))
        .collect::<Result<_, _>>()?;
    let group: Vec<String> = (0..rows)
        .map(|i| {
            key_texts
                .iter()
                .map(|k| k[i].as_str())
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .collect();

    let definition = definition(store, monitor);
    let drift = if shape.is_drift() {
        Some(drift_part(store, &shape, &batch, &x, &ends, definition.as_deref()).map_err(&err)?)
    } else {
        None
    };
    // Series order: the most drifted features first, else by name.
    let rank: HashMap<&str, usize> = drift
        .as_ref()
        .map(|d| {
            d.features
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.as_str(), i))
                .collect()
        })
        .unwrap_or_default();

    let mut charts = Vec::new();
    for name in shape.measures.iter().take(MAX_CHARTS) {
        let values = cast(&column(name)?, &DataType::Float64).map_err(|e| err(e.to_string()))?;
        let values = values.as_primitive::<Float64Type>();
        let mut by_group: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
        for i in 0..rows {
            let v = if values.is_valid(i) {
                values.value(i)
            } else {
                f64::NAN
            };
            let label = if shape.keys.is_empty() {
                name.as_str()
            } else {
                group[i].as_str()
            };
            by_group.entry(label).or_default().push((x[i], v));
        }
        let mut groups: Vec<(&str, Vec<(i64, f64)>)> = by_group.into_iter().collect();
        groups.sort_by_key(|(g, _)| rank.get(g).copied().unwrap_or(usize::MAX));
        let hidden = groups.len().saturating_sub(MAX_SERIES);
        let series = groups
            .into_iter()
            .take(MAX_SERIES)
            .map(|(g, pts)| Series {
                name: g.to_string(),
                points: downsample(&pts, MAX_POINTS),
            })
            .collect();
        charts.push(Chart {
            column: name.clone(),
            series,
            hidden,
        });
    }
    let alerts = match &definition {
        Some(d) if filters_rows(d) => Some(alerts(&batch)?),
        _ => None,
    };
    Ok(Collected {
        monitor: monitor.to_string(),
        definition: definition.map(|d| driftwatch_sql::redact_secrets(&d)),
        hidden_charts: shape.measures.len().saturating_sub(MAX_CHARTS),
        shape,
        from_ms,
        to_ms,
        rows,
        windows: distinct.len(),
        charts,
        drift,
        alerts,
    })
}

/// The newest [`MAX_ALERT_ROWS`] rows as text.
fn alerts(batch: &RecordBatch) -> Result<Alerts, ReportError> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let total = batch.num_rows();
    let keep = total.min(MAX_ALERT_ROWS);
    let newest = batch.slice(total - keep, keep);
    let options = FormatOptions::default().with_null("NULL");
    let formatters: Vec<ArrayFormatter> = newest
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<Result<_, _>>()
        .map_err(|e| ReportError::Render(e.to_string()))?;
    let rows = (0..keep)
        .rev()
        .map(|i| formatters.iter().map(|f| f.value(i).to_string()).collect())
        .collect();
    Ok(Alerts {
        columns: batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
        rows,
        total,
    })
}

/// The flag of every row (a Boolean column or a struct's Boolean field; NULL is false).
fn flags(batch: &RecordBatch, shape: &ResultShape) -> Result<(String, Vec<bool>), String> {
    let flag = shape.flag.as_ref().ok_or("no drift flag")?;
    let col = batch
        .column_by_name(&flag.column)
        .ok_or_else(|| format!("column '{}' missing", flag.column))?;
    let (label, array): (String, ArrayRef) = match &flag.field {
        Some(field) => {
            let s = col
                .as_struct_opt()
                .ok_or("the flag column is not a struct")?;
            let child = s
                .column_by_name(field)
                .ok_or_else(|| format!("field '{field}' missing"))?
                .clone();
            (format!("{}.{field}", flag.column), child)
        }
        None => (flag.column.clone(), col.clone()),
    };
    let b: &BooleanArray = array.as_boolean_opt().ok_or("the flag is not Boolean")?;
    let valid = |i: usize| col.is_valid(i) && b.is_valid(i);
    Ok((
        label,
        (0..b.len()).map(|i| valid(i) && b.value(i)).collect(),
    ))
}

/// The score shown per feature: a struct flag's `statistic`, else the first floating-point
/// measure.
fn scores(batch: &RecordBatch, shape: &ResultShape) -> (Option<String>, Vec<Option<f64>>) {
    let none = (None, vec![None; batch.num_rows()]);
    let from = |label: String, a: &ArrayRef| match cast(a, &DataType::Float64) {
        Ok(f) => {
            let f = f.as_primitive::<Float64Type>();
            (
                Some(label),
                (0..f.len())
                    .map(|i| f.is_valid(i).then(|| f.value(i)))
                    .collect(),
            )
        }
        Err(_) => (None, vec![None; a.len()]),
    };
    if let Some(flag) = shape.flag.as_ref().filter(|f| f.field.is_some()) {
        let child = batch
            .column_by_name(&flag.column)
            .and_then(|c| c.as_struct_opt())
            .and_then(|s| s.column_by_name("statistic").cloned());
        if let Some(c) = child {
            return from(format!("{}.statistic", flag.column), &c);
        }
    }
    for m in &shape.measures {
        if let Some(c) = batch.column_by_name(m) {
            if c.data_type().is_floating() {
                return from(m.clone(), c);
            }
        }
    }
    none
}

/// Summary, heat map and histograms of a drift monitor's rows (sorted by time).
fn drift_part(
    store: &ResultStore,
    shape: &ResultShape,
    batch: &RecordBatch,
    starts: &[i64],
    ends: &[i64],
    definition: Option<&str>,
) -> Result<Drift, String> {
    let feature_col = shape.feature.as_deref().ok_or("no feature column")?;
    let features = texts(
        batch
            .column_by_name(feature_col)
            .ok_or("feature column missing")?,
    )?;
    let (flag, drifted) = flags(batch, shape)?;
    let (score, score_values) = scores(batch, shape);
    let mut windows: Vec<(i64, i64)> = starts.iter().copied().zip(ends.iter().copied()).collect();
    windows.sort_unstable();
    windows.dedup();
    let col_of = |w: (i64, i64)| {
        let i = windows.partition_point(|x| *x < w);
        i * MAX_HEAT_COLUMNS.min(windows.len()) / windows.len().max(1)
    };
    let ncols = MAX_HEAT_COLUMNS.min(windows.len());
    let mut columns = vec![(i64::MAX, i64::MIN); ncols];
    for &w in &windows {
        let c = col_of(w);
        columns[c].0 = columns[c].0.min(w.0);
        columns[c].1 = columns[c].1.max(w.1);
    }
    let mut summary: BTreeMap<&str, FeatureSummary> = BTreeMap::new();
    let mut newest_drifted: HashMap<&str, usize> = HashMap::new();
    for i in 0..batch.num_rows() {
        let f = features[i].as_str();
        let s = summary.entry(f).or_insert_with(|| FeatureSummary {
            name: f.to_string(),
            windows: 0,
            drifted: 0,
            last_score: None,
        });
        s.windows += 1;
        s.drifted += usize::from(drifted[i]);
        s.last_score = score_values[i];
        if drifted[i] {
            newest_drifted.insert(f, i);
        }
    }
    let mut ranked: Vec<FeatureSummary> = summary.into_values().collect();
    ranked.sort_by(|a, b| {
        b.share()
            .total_cmp(&a.share())
            .then_with(|| a.name.cmp(&b.name))
    });
    let row: HashMap<&str, usize> = ranked
        .iter()
        .take(MAX_HEAT_ROWS)
        .enumerate()
        .map(|(r, f)| (f.name.as_str(), r))
        .collect();
    let mut cells: HashMap<(usize, usize), bool> = HashMap::new();
    for i in 0..batch.num_rows() {
        if let Some(&r) = row.get(features[i].as_str()) {
            *cells.entry((r, col_of((starts[i], ends[i])))).or_default() |= drifted[i];
        }
    }
    let mut cells: Vec<super::svg::Cell> = cells
        .into_iter()
        .map(|((row, col), drifted)| super::svg::Cell { row, col, drifted })
        .collect();
    cells.sort_by_key(|c| (c.row, c.col));

    let (histograms, histogram_note) = match &shape.histogram {
        Some(h) => histograms(
            store,
            batch,
            h,
            &ranked,
            &newest_drifted,
            starts,
            ends,
            definition,
        ),
        None => (Vec::new(), None),
    };
    Ok(Drift {
        flag,
        score,
        features: ranked,
        columns,
        cells,
        histograms,
        histogram_note,
    })
}

/// For each drifted feature (most drifted first), its newest drifted window's histogram and
/// the baseline's bins; a note says why some or all are missing.
#[allow(clippy::too_many_arguments)]
fn histograms(
    store: &ResultStore,
    batch: &RecordBatch,
    column: &str,
    ranked: &[FeatureSummary],
    newest_drifted: &HashMap<&str, usize>,
    starts: &[i64],
    ends: &[i64],
    definition: Option<&str>,
) -> (Vec<HistogramPair>, Option<String>) {
    if newest_drifted.is_empty() {
        return (Vec::new(), None);
    }
    let Some(name) = definition.and_then(|d| histogram_baseline(d, column)) else {
        return (
            Vec::new(),
            Some(format!(
                "the baseline of '{column}' is unknown (no stored monitor definition)"
            )),
        );
    };
    let profile = match store
        .baseline_dir(&name)
        .map_err(|e| e.to_string())
        .and_then(|dir| BaselineProfile::read_from(&dir).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("baseline '{name}' cannot be read: {e}")),
            )
        }
    };
    let Some(list) = batch
        .column_by_name(column)
        .and_then(|c| c.as_list_opt::<i32>())
    else {
        return (Vec::new(), Some(format!("'{column}' is not a list column")));
    };
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for f in ranked.iter().filter(|f| f.drifted > 0).take(MAX_HISTOGRAMS) {
        let Some(&i) = newest_drifted.get(f.name.as_str()) else {
            continue;
        };
        let numeric = profile.numeric(&f.name).filter(|p| p.bin_edges.len() >= 2);
        let counts = (list.is_valid(i))
            .then(|| cast(&list.value(i), &DataType::Int64).ok())
            .flatten()
            .map(|a| {
                a.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.unwrap_or(0))
                    .collect::<Vec<i64>>()
            });
        match (numeric, counts) {
            (Some(p), Some(c)) if c.len() + 1 == p.bin_edges.len() => out.push(HistogramPair {
                feature: f.name.clone(),
                window: (starts[i], ends[i]),
                edges: p.bin_edges.clone(),
                current: c,
                baseline: p.bin_counts.clone(),
            }),
            _ => skipped.push(f.name.clone()),
        }
    }
    let note = (!skipped.is_empty()).then(|| {
        format!(
            "no histogram against baseline '{name}' for: {} (no numeric bins for the feature, or the counts do not match them)",
            skipped.join(", ")
        )
    });
    (out, note)
}
