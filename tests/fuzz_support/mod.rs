//! Shared pieces of the fuzz targets (`tests/fuzz_decoders.rs`, `tests/fuzz_sql.rs`):
//! proptest is the fuzz engine (stable Rust has no libFuzzer), so each target is a
//! `#[test]` that runs a [`TestRunner`] for `DRIFTWATCH_FUZZ_CASES` cases (default
//! [`DEFAULT_CASES`], the CI smoke) over structure-aware inputs: valid seeds put through the
//! byte-level [`Mutation`]s below, plus raw arbitrary bytes.
//!
//! `scripts/fuzz.sh` runs every target in release for a million cases; each prints one
//! `fuzz-target <name>: <cases> cases, <runs> runs, <seconds> s, …` line (with
//! `--nocapture`). A target's cases are shared among `DRIFTWATCH_FUZZ_THREADS` workers
//! (default: the available cores).
//! A failure is shrunk by proptest and reported with the minimal input; the input then
//! becomes a plain `#[test]` regression in the target's file.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

/// Cases per target when `DRIFTWATCH_FUZZ_CASES` is unset (what CI runs).
pub const DEFAULT_CASES: u32 = 2000;

/// Cases per target: `DRIFTWATCH_FUZZ_CASES` (underscores allowed), else [`DEFAULT_CASES`].
pub fn cases() -> u32 {
    std::env::var("DRIFTWATCH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The runner configuration: the case count is set explicitly (so `PROPTEST_CASES` cannot
/// override it), nothing is persisted, and `DRIFTWATCH_FUZZ_SEED` fixes the RNG seed to
/// replay a run.
pub fn config() -> Config {
    let rng_seed = std::env::var("DRIFTWATCH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(RngSeed::Random, RngSeed::Fixed);
    Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 4096,
        rng_seed,
        ..Config::default()
    }
}

thread_local! {
    /// Outcomes of the current target's cases by label (see [`outcome`]).
    static OUTCOMES: std::cell::RefCell<std::collections::BTreeMap<&'static str, u64>> =
        Default::default();
}

/// Counts one case's outcome under `label` (e.g. "ok", "rejected", "parse error"); [`run`]
/// prints the counts, which show how deep the inputs get.
pub fn outcome(label: &'static str) {
    OUTCOMES.with(|o| *o.borrow_mut().entry(label).or_default() += 1);
}

/// Worker threads per target: `DRIFTWATCH_FUZZ_THREADS`, else the available cores.
pub fn threads() -> usize {
    std::env::var("DRIFTWATCH_FUZZ_THREADS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// What one fuzzing thread reports: its failure (if any) and its case counters.
type WorkerResult = (Option<String>, Vec<(&'static str, u64)>);

/// Runs fuzz target `name`: `test` over values of the strategy `make` builds, for
/// [`cases`] cases shared among [`threads`] workers (each with its own runner, strategy and
/// RNG). Prints the target's figures, and panics (failing the test) with proptest's minimal
/// failing input when a case fails or panics; the other workers then stop.
pub fn run<S: Strategy>(
    name: &str,
    make: impl Fn() -> S + Sync,
    test: impl Fn(S::Value) -> Result<(), TestCaseError> + Sync,
) {
    let config = config();
    let cases = config.cases;
    let threads = threads().min(cases.max(1) as usize) as u32;
    let runs = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    let results: Vec<WorkerResult> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let mut config = config.clone();
                config.cases = cases / threads + u32::from(t < cases % threads);
                if let RngSeed::Fixed(seed) = config.rng_seed {
                    config.rng_seed = RngSeed::Fixed(seed.wrapping_add(u64::from(t)));
                }
                let (make, test, runs, failed) = (&make, &test, &runs, &failed);
                std::thread::Builder::new()
                    .name(format!("{name}-{t}"))
                    .stack_size(16 << 20)
                    .spawn_scoped(scope, move || {
                        OUTCOMES.with(|o| o.borrow_mut().clear());
                        let mut runner = TestRunner::new(config);
                        let result = runner.run(&make(), |value| {
                            if failed.load(Ordering::Relaxed) {
                                return Err(TestCaseError::reject("another worker failed"));
                            }
                            runs.fetch_add(1, Ordering::Relaxed);
                            test(value)
                        });
                        let error = match result {
                            Ok(()) => None,
                            Err(e) => {
                                // A worker stopped by another's failure reports nothing.
                                let stopped = failed.swap(true, Ordering::Relaxed);
                                (!stopped).then(|| e.to_string())
                            }
                        };
                        let outcomes = OUTCOMES.with(|o| o.borrow().clone().into_iter().collect());
                        (error, outcomes)
                    })
                    .expect("spawn a fuzz worker")
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("fuzz worker"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut outcomes = std::collections::BTreeMap::<&str, u64>::new();
    for (label, n) in results.iter().flat_map(|(_, o)| o) {
        *outcomes.entry(label).or_default() += n;
    }
    let outcomes: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let error = results.into_iter().find_map(|(e, _)| e);
    println!(
        "fuzz-target {name}: {cases} cases, {} runs, {secs:.3} s, {threads} threads, {} \
         (outcomes: {})",
        runs.load(Ordering::Relaxed),
        if error.is_none() { "ok" } else { "FAILED" },
        outcomes.join(", ")
    );
    if let Some(e) = error {
        panic!("fuzz target {name} failed: {e}");
    }
}

/// One byte-level edit of an input. Positions are [`Index`]es, scaled to the input's length
/// when applied, so they stay meaningful while proptest shrinks.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Overwrite one byte.
    Set(Index, u8),
    /// Insert a fragment (from the target's dictionary, or arbitrary bytes).
    Insert(Index, Vec<u8>),
    /// Delete up to this many bytes.
    Delete(Index, usize),
    /// Cut the input here.
    Truncate(Index),
    /// Copy the range between two positions to after it (splicing a part into itself).
    Duplicate(Index, Index),
    /// Replace the run of digits at or after a position by a number literal.
    Number(Index, &'static str),
    /// Replace the contents of the double-quoted string at or after a position (keeps
    /// JSON valid while changing a value or a key).
    Text(Index, &'static str),
}

/// String contents that stress parsing of times, numbers and names.
pub const TEXTS: &[&str] = &[
    "",
    " ",
    "é",
    "\\u0000",
    "\\ud800",
    "\\\\",
    "NaN",
    "inf",
    "-0",
    "1e400",
    "9223372036854775808",
    "2023-11-14T22:13:20Z",
    "2023-11-14 22:13:20.123456789",
    "+262142-12-31T23:59:59Z",
    "1700000000.5",
    "true",
    "null",
    "request",
    "response",
    "payload",
    "instances",
    "inputs",
    "shape",
    "data",
    "ts",
    "x",
    "label",
    "TS",
    "sepal_length",
];

/// Number literals that stress integer parsing, scaling and shape arithmetic.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1e309",
    "-1e309",
    "1e-400",
    "0.1",
    "NaN",
    "Infinity",
    "2147483648",
    "4294967296",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "8200000000000000",
    "8200000000000001",
    "9999999999999999999999999999",
    "1.7976931348623157e308",
    "123456789012345678901234567890e-10",
];

/// Byte fragments that are not UTF-8: lone lead and continuation bytes, truncated
/// sequences, and characters split by a delimiter or a newline.
pub const BROKEN_UTF8: &[&[u8]] = &[
    b"\xc3",
    b"\xa9",
    b"\xff",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80",
    b"\xc3,\xa9",
    b"\xc3;\xa9",
    b"\xc3\t\xa9",
    b"\xe2\x82\n\xac",
    b"\xc3\"\xa9",
];

/// A strategy for a list of up to `max` mutations, inserting fragments of `dictionary`.
pub fn mutations(
    dictionary: &'static [&'static str],
    max: usize,
) -> impl Strategy<Value = Vec<Mutation>> {
    let fragment = prop_oneof![
        6 => proptest::sample::select(dictionary).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::sample::select(BROKEN_UTF8).prop_map(<[u8]>::to_vec),
        1 => vec(any::<u8>(), 1..8),
    ];
    let one = prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        4 => (any::<Index>(), fragment).prop_map(|(i, f)| Mutation::Insert(i, f)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        4 => (any::<Index>(), proptest::sample::select(NUMBERS))
            .prop_map(|(i, n)| Mutation::Number(i, n)),
        4 => (any::<Index>(), proptest::sample::select(TEXTS))
            .prop_map(|(i, t)| Mutation::Text(i, t)),
    ];
    // Mostly few mutations, so inputs get past the parsers often.
    prop_oneof![
        3 => Just(Vec::new()),
        4 => vec(one.clone(), 1..=1),
        3 => vec(one, 2..=max.max(2)),
    ]
}

/// `seed` with `mutations` applied in order.
pub fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for m in mutations {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::Set(i, b) if !out.is_empty() => {
                let p = i.index(out.len());
                out[p] = *b;
            }
            Mutation::Set(..) => {}
            Mutation::Insert(i, f) => {
                let p = at(i, out.len());
                out.splice(p..p, f.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let p = at(i, out.len());
                let end = (p + n).min(out.len());
                out.drain(p..end);
            }
            Mutation::Truncate(i) => out.truncate(at(i, out.len())),
            Mutation::Duplicate(a, b) => {
                let (a, b) = (at(a, out.len()), at(b, out.len()));
                // At most 64 bytes, so repeated splices cannot blow the input up.
                let lo = a.min(b);
                let hi = a.max(b).min(lo + 64);
                let part = out[lo..hi].to_vec();
                out.splice(hi..hi, part);
            }
            Mutation::Number(i, n) => {
                let p = at(i, out.len());
                let start = out[p..]
                    .iter()
                    .position(u8::is_ascii_digit)
                    .map_or(out.len(), |d| p + d);
                let end = out[start..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(out.len(), |d| start + d);
                out.splice(start..end, n.bytes());
            }
            Mutation::Text(i, t) => {
                let p = at(i, out.len());
                let Some(open) = out[p..].iter().position(|b| *b == b'"').map(|o| p + o + 1) else {
                    continue;
                };
                let close = out[open..]
                    .iter()
                    .position(|b| *b == b'"')
                    .map_or(out.len(), |c| open + c);
                out.splice(open..close, t.bytes());
            }
        }
    }
    out
}

/// An input, shown as an escaped byte string in failure reports.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Valid `seeds` with up to `max` mutations each (often none, so valid inputs are exercised
/// too).
pub fn mutated(
    seeds: Vec<Vec<u8>>,
    dictionary: &'static [&'static str],
    max: usize,
) -> impl Strategy<Value = Bytes> {
    (proptest::sample::select(seeds), mutations(dictionary, max))
        .prop_map(|(seed, muts)| Bytes(apply(&seed, &muts)))
}

/// Arbitrary bytes, up to `max` of them.
pub fn raw_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes)
}

/// `depth` levels of `open` around `inner`, closed again.
pub fn nested(open: &str, close: &str, depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}
