//! On-disk format of a baseline directory:
//!
//! * `profile.json` — everything except the reference samples; every floating-point number
//!   is written as a string in Rust's shortest round-trip form (`"0.1"`, `"NaN"`, `"inf"`),
//!   so reading it back is bit-exact;
//! * `samples.f64` — the numeric columns' sorted samples, concatenated, little-endian f64
//!   (offsets and lengths in `profile.json`);
//! * `rows.f64` — the row sample of the numeric columns (row-major, little-endian f64);
//! * `forest.f64` — the isolation forest, flattened by
//!   [`crate::math::iforest::IsolationForest::to_f64s`] (little-endian f64).
//!
//! Profiles written before the row sample / forest existed read back with both empty; bin
//! rules are stored by name, so files written before a rule was added still read. Profiles
//! written before the covariance factor was stored read back with the sample covariance and a
//! factor from its eigen-decomposition.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::covariance::pinv_of;
use super::{
    BaselineError, BaselineProfile, CategoricalProfile, ColumnProfile, CovarianceMethod,
    CovarianceProfile, ForestProfile, NumericProfile, ProfileOptions, RowSample,
};
use crate::math::describe::BinRule;
use crate::math::iforest::IsolationForest;
use crate::math::linalg::factor_of_symmetric;

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct FileV1 {
    version: u32,
    name: String,
    max_sample: usize,
    bins: FileBins,
    quantiles: Vec<String>,
    columns: Vec<FileColumn>,
    covariance: FileCov,
    #[serde(default)]
    multivariate: Option<FileMulti>,
    /// Declared categorical columns (`ProfileOptions::categorical`).
    #[serde(default)]
    categorical: Vec<String>,
    /// Categorical profiles of integer columns (`BaselineProfile::integer_categories`).
    #[serde(default)]
    integer_categories: Vec<FileCategories>,
    /// `ProfileOptions::covariance` by name (absent in older files: `sample`).
    #[serde(default)]
    covariance_method: Option<String>,
    /// `ProfileOptions::sketch_above` (absent in older files: the default).
    #[serde(default)]
    sketch_above: Option<usize>,
}

#[derive(Serialize, Deserialize)]
struct FileCategories {
    name: String,
    rows: u64,
    null_count: u64,
    frequencies: std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize)]
struct FileMulti {
    row_sample: usize,
    iforest_trees: usize,
    iforest_sample: usize,
    seed: u64,
    row_columns: Vec<String>,
    complete_rows: u64,
    forest_columns: Vec<String>,
}

fn write_f64s(path: &Path, v: &[f64]) -> Result<(), BaselineError> {
    let mut bytes = Vec::with_capacity(v.len() * 8);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let mut f = std::fs::File::create(path)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    Ok(())
}

fn read_f64s(path: &Path) -> Result<Vec<f64>, BaselineError> {
    let raw = std::fs::read(path)?;
    if raw.len() % 8 != 0 {
        return Err(BaselineError::Format(format!(
            "{} is truncated",
            path.display()
        )));
    }
    Ok(raw
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")))
        .collect())
}

/// Bin rule as stored (`"Fd"`, `"Sturges"`, `{"Count": k}`, `{"Quantile": k}`,
/// `{"Explicit": ["0", "0.5"]}`). Variants are only ever added, so older files keep reading.
#[derive(Serialize, Deserialize)]
enum FileBins {
    Fd,
    Sturges,
    Count(usize),
    Explicit(Vec<String>),
    Quantile(usize),
}

#[derive(Serialize, Deserialize)]
enum FileColumn {
    Numeric {
        name: String,
        rows: u64,
        count: u64,
        null_count: u64,
        nan_count: u64,
        stats: Vec<String>, // mean, std, std_pop, min, max
        quantiles: Vec<(String, String)>,
        bin_edges: Vec<String>,
        bin_counts: Vec<u64>,
        sample_offset: u64,
        sample_len: u64,
    },
    Categorical {
        name: String,
        rows: u64,
        null_count: u64,
        frequencies: BTreeMap<String, u64>,
    },
}

#[derive(Serialize, Deserialize)]
struct FileCov {
    columns: Vec<String>,
    rows: u64,
    mean: Vec<String>,
    covariance: Vec<String>,
    pinv: Vec<String>,
    /// Ledoit–Wolf shrinkage (absent in older files: 0).
    #[serde(default)]
    shrinkage: Option<String>,
    /// `CovarianceProfile::factor` (absent in older files: derived from `covariance`).
    #[serde(default)]
    factor: Vec<String>,
    #[serde(default)]
    factor_rows: usize,
}

fn s(x: f64) -> String {
    x.to_string()
}
fn sv(x: &[f64]) -> Vec<String> {
    x.iter().map(|v| v.to_string()).collect()
}
fn p(x: &str) -> Result<f64, BaselineError> {
    x.parse::<f64>()
        .map_err(|e| BaselineError::Format(format!("bad number '{x}': {e}")))
}
fn pv(x: &[String]) -> Result<Vec<f64>, BaselineError> {
    x.iter().map(|v| p(v)).collect()
}

/// The stored covariance; a file written before factors were stored gets one from the
/// eigen-decomposition of its covariance, and the pseudo-inverse recomputed from that.
fn read_covariance(
    c: FileCov,
    method: CovarianceMethod,
) -> Result<CovarianceProfile, BaselineError> {
    let k = c.columns.len();
    let covariance = pv(&c.covariance)?;
    if covariance.len() != k * k || c.mean.len() != k {
        return Err(BaselineError::Format(format!(
            "covariance of {k} columns has {} entries and {} means",
            covariance.len(),
            c.mean.len()
        )));
    }
    let mut p = CovarianceProfile {
        columns: c.columns,
        rows: c.rows,
        mean: pv(&c.mean)?,
        covariance,
        pinv: pv(&c.pinv)?,
        method,
        shrinkage: c.shrinkage.as_deref().map(p).transpose()?.unwrap_or(0.0),
        factor: pv(&c.factor)?,
        factor_rows: c.factor_rows,
    };
    if p.factor.len() != p.factor_rows * k {
        return Err(BaselineError::Format(format!(
            "covariance factor has {} entries, not {} × {k}",
            p.factor.len(),
            p.factor_rows
        )));
    }
    if p.factor.is_empty() && p.rows >= 2 && k > 0 {
        p.factor = factor_of_symmetric(&p.covariance, k);
        p.factor_rows = k;
        p.pinv = pinv_of(&p);
    }
    Ok(p)
}

impl BaselineProfile {
    /// Write this profile into `dir` (created if missing), replacing an existing one.
    pub fn write_to(&self, dir: &Path) -> Result<(), BaselineError> {
        std::fs::create_dir_all(dir)?;
        let mut samples: Vec<u8> = Vec::new();
        let mut columns = Vec::new();
        for (name, c) in &self.columns {
            columns.push(match c {
                ColumnProfile::Numeric(n) => {
                    let off = (samples.len() / 8) as u64;
                    for v in &n.sample {
                        samples.extend_from_slice(&v.to_le_bytes());
                    }
                    FileColumn::Numeric {
                        name: name.clone(),
                        rows: n.rows,
                        count: n.count,
                        null_count: n.null_count,
                        nan_count: n.nan_count,
                        stats: sv(&[n.mean, n.std, n.std_pop, n.min, n.max]),
                        quantiles: n.quantiles.iter().map(|(a, b)| (s(*a), s(*b))).collect(),
                        bin_edges: sv(&n.bin_edges),
                        bin_counts: n.bin_counts.clone(),
                        sample_offset: off,
                        sample_len: n.sample.len() as u64,
                    }
                }
                ColumnProfile::Categorical(c) => FileColumn::Categorical {
                    name: name.clone(),
                    rows: c.rows,
                    null_count: c.null_count,
                    frequencies: c.frequencies.clone(),
                },
            });
        }
        let file = FileV1 {
            version: FORMAT_VERSION,
            name: self.name.clone(),
            max_sample: self.options.max_sample,
            bins: match &self.options.bins {
                BinRule::Fd => FileBins::Fd,
                BinRule::Sturges => FileBins::Sturges,
                BinRule::Count(k) => FileBins::Count(*k),
                BinRule::Quantile(k) => FileBins::Quantile(*k),
                BinRule::Explicit(e) => FileBins::Explicit(sv(e)),
            },
            quantiles: sv(&self.options.quantiles),
            columns,
            covariance: FileCov {
                columns: self.covariance.columns.clone(),
                rows: self.covariance.rows,
                mean: sv(&self.covariance.mean),
                covariance: sv(&self.covariance.covariance),
                pinv: sv(&self.covariance.pinv),
                shrinkage: Some(s(self.covariance.shrinkage)),
                factor: sv(&self.covariance.factor),
                factor_rows: self.covariance.factor_rows,
            },
            multivariate: Some(FileMulti {
                row_sample: self.options.row_sample,
                iforest_trees: self.options.iforest_trees,
                iforest_sample: self.options.iforest_sample,
                seed: self.options.seed,
                row_columns: self.rows.columns.clone(),
                complete_rows: self.rows.complete_rows,
                forest_columns: self.forest.columns.clone(),
            }),
            categorical: self.options.categorical.clone(),
            covariance_method: Some(self.options.covariance.name().to_string()),
            sketch_above: Some(self.options.sketch_above),
            integer_categories: self
                .integer_categories
                .iter()
                .map(|(name, c)| FileCategories {
                    name: name.clone(),
                    rows: c.rows,
                    null_count: c.null_count,
                    frequencies: c.frequencies.clone(),
                })
                .collect(),
        };
        write_f64s(&dir.join("rows.f64"), &self.rows.values)?;
        write_f64s(&dir.join("forest.f64"), &self.forest.forest.to_f64s())?;
        let json =
            serde_json::to_vec_pretty(&file).map_err(|e| BaselineError::Format(e.to_string()))?;
        // write samples first, profile.json last (its presence marks a complete baseline)
        let mut f = std::fs::File::create(dir.join("samples.f64"))?;
        f.write_all(&samples)?;
        f.sync_all()?;
        let tmp = dir.join("profile.json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, dir.join("profile.json"))?;
        Ok(())
    }

    /// Read a profile written by [`BaselineProfile::write_to`].
    pub fn read_from(dir: &Path) -> Result<BaselineProfile, BaselineError> {
        let json = std::fs::read(dir.join("profile.json"))?;
        let file: FileV1 =
            serde_json::from_slice(&json).map_err(|e| BaselineError::Format(e.to_string()))?;
        if file.version != FORMAT_VERSION {
            return Err(BaselineError::Format(format!(
                "unsupported version {}",
                file.version
            )));
        }
        let raw = std::fs::read(dir.join("samples.f64"))?;
        if raw.len() % 8 != 0 {
            return Err(BaselineError::Format("samples.f64 is truncated".into()));
        }
        let all: Vec<f64> = raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")))
            .collect();
        let mut columns = Vec::new();
        for c in file.columns {
            columns.push(match c {
                FileColumn::Numeric {
                    name,
                    rows,
                    count,
                    null_count,
                    nan_count,
                    stats,
                    quantiles,
                    bin_edges,
                    bin_counts,
                    sample_offset,
                    sample_len,
                } => {
                    let st = pv(&stats)?;
                    if st.len() != 5 {
                        return Err(BaselineError::Format(format!("bad stats for '{name}'")));
                    }
                    let (a, b) = (
                        sample_offset as usize,
                        (sample_offset + sample_len) as usize,
                    );
                    let sample = all
                        .get(a..b)
                        .ok_or_else(|| BaselineError::Format(format!("bad sample for '{name}'")))?
                        .to_vec();
                    let quantiles = quantiles
                        .iter()
                        .map(|(q, v)| Ok((p(q)?, p(v)?)))
                        .collect::<Result<_, BaselineError>>()?;
                    let prof = NumericProfile {
                        rows,
                        count,
                        null_count,
                        nan_count,
                        mean: st[0],
                        std: st[1],
                        std_pop: st[2],
                        min: st[3],
                        max: st[4],
                        quantiles,
                        sample,
                        bin_edges: pv(&bin_edges)?,
                        bin_counts,
                    };
                    (name, ColumnProfile::Numeric(prof))
                }
                FileColumn::Categorical {
                    name,
                    rows,
                    null_count,
                    frequencies,
                } => (
                    name,
                    ColumnProfile::Categorical(CategoricalProfile {
                        rows,
                        null_count,
                        frequencies,
                    }),
                ),
            });
        }
        let defaults = ProfileOptions::default();
        let method = match &file.covariance_method {
            Some(m) => CovarianceMethod::parse(m).map_err(BaselineError::Format)?,
            None => CovarianceMethod::Sample,
        };
        let covariance = read_covariance(file.covariance, method)?;
        let (opts_multi, rows, forest) = match &file.multivariate {
            Some(m) => {
                let values = read_f64s(&dir.join("rows.f64"))?;
                if values.len() % m.row_columns.len().max(1) != 0 {
                    return Err(BaselineError::Format(
                        "rows.f64 does not hold whole rows".into(),
                    ));
                }
                let f = read_f64s(&dir.join("forest.f64"))?;
                let forest = IsolationForest::from_f64s(&f)
                    .ok_or_else(|| BaselineError::Format("bad forest.f64".into()))?;
                (
                    (m.row_sample, m.iforest_trees, m.iforest_sample, m.seed),
                    RowSample {
                        columns: m.row_columns.clone(),
                        complete_rows: m.complete_rows,
                        values,
                    },
                    ForestProfile {
                        columns: m.forest_columns.clone(),
                        forest,
                    },
                )
            }
            None => (
                (
                    defaults.row_sample,
                    defaults.iforest_trees,
                    defaults.iforest_sample,
                    defaults.seed,
                ),
                RowSample::default(),
                ForestProfile::default(),
            ),
        };
        Ok(BaselineProfile {
            name: file.name,
            options: ProfileOptions {
                max_sample: file.max_sample,
                bins: match file.bins {
                    FileBins::Fd => BinRule::Fd,
                    FileBins::Sturges => BinRule::Sturges,
                    FileBins::Count(k) => BinRule::Count(k),
                    FileBins::Quantile(k) => BinRule::Quantile(k),
                    FileBins::Explicit(e) => BinRule::Explicit(pv(&e)?),
                },
                quantiles: pv(&file.quantiles)?,
                row_sample: opts_multi.0,
                iforest_trees: opts_multi.1,
                iforest_sample: opts_multi.2,
                seed: opts_multi.3,
                categorical: file.categorical,
                covariance: method,
                sketch_above: file
                    .sketch_above
                    .unwrap_or(crate::math::sketch::DEFAULT_SKETCH_ABOVE),
            },
            integer_categories: file
                .integer_categories
                .into_iter()
                .map(|c| {
                    (
                        c.name,
                        CategoricalProfile {
                            rows: c.rows,
                            null_count: c.null_count,
                            frequencies: c.frequencies,
                        },
                    )
                })
                .collect(),
            columns,
            covariance,
            rows,
            forest,
            missing_features: super::MissingFeatures::default(),
        })
    }
}
