//! Consistent hashing: spreads budgets over several independent Redis servers (no Cluster).
//!
//! Each server owns [`VNODES`] points on a 64-bit ring; a budget's key lands on the first point at
//! or after its hash. A key therefore always lands on the same server, and adding a server moves
//! only the keys whose nearest point is now one of the new server's (about 1/N of them), never
//! keys between the old servers.

/// Points per server: enough for an even spread (within a few percent at 3 to 10 servers).
pub(crate) const VNODES: u32 = 160;

/// 64-bit FNV-1a, stable across processes, platforms and releases (unlike `std`'s hasher), so
/// every process maps a key to the same server.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly on short inputs: finish with a 64-bit avalanche (splitmix64).
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The ring: sorted points, each naming the index of the server that owns it.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// A ring over servers identified by `names` (their URLs): the same names give the same ring
    /// in every process, whatever their order.
    pub(crate) fn new<S: AsRef<str>>(names: &[S]) -> Self {
        let mut points = Vec::with_capacity(names.len() * VNODES as usize);
        for (i, name) in names.iter().enumerate() {
            for v in 0..VNODES {
                let point = stable_hash(format!("{}#{v}", name.as_ref()).as_bytes());
                points.push((point, i));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The index of the server that owns `key`.
    pub(crate) fn server_of(&self, key: &str) -> usize {
        let h = stable_hash(key.as_bytes());
        let i = self.points.partition_point(|(p, _)| *p < h);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map_or(0, |(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("redis://10.0.0.{i}:6379")).collect()
    }

    fn keys() -> Vec<String> {
        (0..20_000)
            .map(|i| format!("{{llmrl:tenant-{i}:}}"))
            .collect()
    }

    #[test]
    fn a_key_always_lands_on_the_same_server() {
        let (a, b) = (Ring::new(&names(4)), Ring::new(&names(4)));
        let mut reversed = names(4);
        reversed.reverse();
        let c = Ring::new(&reversed);
        for k in keys() {
            assert_eq!(a.server_of(&k), b.server_of(&k));
            // Order of configuration does not matter: same URL, same server.
            assert_eq!(names(4)[a.server_of(&k)], reversed[c.server_of(&k)]);
        }
    }

    #[test]
    fn keys_spread_evenly() {
        let ring = Ring::new(&names(4));
        let mut counts = [0usize; 4];
        for k in keys() {
            counts[ring.server_of(&k)] += 1;
        }
        for c in counts {
            assert!((4_000..6_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn adding_a_server_moves_only_its_share() {
        let before = Ring::new(&names(4));
        let after = Ring::new(&names(5));
        let mut moved = 0;
        for k in keys() {
            let (old, new) = (before.server_of(&k), after.server_of(&k));
            if old != new {
                assert_eq!(new, 4, "a key moved between two old servers");
                moved += 1;
            }
        }
        let share = moved as f64 / keys().len() as f64;
        assert!(
            (0.15..0.25).contains(&share),
            "moved {share:.3} of keys, expected about 1/5"
        );
    }

    #[test]
    fn stable_hash_is_pinned() {
        // Changing the hash would re-home every budget of a running deployment at upgrade.
        assert_eq!(stable_hash(b"{llmrl:gpt-4o:}"), PINNED);
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
    }

    const PINNED: u64 = 6_425_303_123_273_203_573;
}
