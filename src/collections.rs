//! The hash maps and sets that are filled once per value or per account: the uniqueness and
//! cross-reference rules, and the stage snapshot that every account is decided against.
//!
//! They hash with foldhash rather than std's SipHash-1-3. SipHash was 2.5 % of `validate` and
//! 2 % of a re-stage (issue 15). foldhash is seeded at random per process as std's hasher is, so
//! the keys of a dump, chosen by whoever wrote it, cannot be made to collide on purpose.

/// A [`std::collections::HashMap`] with foldhash.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A [`std::collections::HashSet`] with foldhash.
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
