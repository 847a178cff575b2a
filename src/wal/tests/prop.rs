//! Property test: whatever is appended, in whatever groups, with reopens and rotations in
//! between, is what replay returns.

use proptest::collection::vec;
use proptest::prelude::*;

use super::{batch, expected, read_all, WalEntry, WalOptions, WalSync, WalWriter};

fn entry() -> impl Strategy<Value = WalEntry> {
    prop_oneof![
        (any::<i64>(), 0u8..3, 0usize..12, any::<u64>()).prop_map(
            |(arrival_ms, kind, rows, seed)| {
                WalEntry::Batch {
                    arrival_ms,
                    batch: batch(kind, rows, seed),
                }
            }
        ),
        (any::<i64>(), vec(any::<u8>(), 0..48), "\\PC{0,16}").prop_map(
            |(arrival_ms, raw, reason)| WalEntry::Rejected {
                arrival_ms,
                raw,
                reason,
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn replay_returns_what_was_appended(
        entries in vec(entry(), 0..40),
        group_sizes in vec(1usize..6, 1..12),
        reopen_after in vec(any::<bool>(), 1..12),
        segment_bytes in prop_oneof![Just(1u64), 64u64..4096, Just(1u64 << 20)],
        from_fraction in 0.0f64..1.2,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions { segment_bytes };
        let mut wal = WalWriter::open(dir.path(), options.clone()).unwrap();
        let mut at = 0;
        for (i, size) in group_sizes.iter().cycle().enumerate() {
            if at == entries.len() {
                break;
            }
            let group = &entries[at..(at + size).min(entries.len())];
            let reopen = reopen_after[i % reopen_after.len()];
            let sync = if reopen { WalSync::Always } else { WalSync::Never };
            let range = wal.append(group, sync).unwrap();
            prop_assert_eq!(range, at as u64..(at + group.len()) as u64);
            at += group.len();
            if reopen {
                drop(wal);
                wal = WalWriter::open(dir.path(), options.clone()).unwrap();
                prop_assert_eq!(wal.next_lsn(), at as u64);
            }
        }
        prop_assert_eq!(read_all(dir.path(), 0), expected(&entries, 0));
        let from = (entries.len() as f64 * from_fraction) as u64;
        prop_assert_eq!(read_all(dir.path(), from), expected(&entries, from));
    }
}
