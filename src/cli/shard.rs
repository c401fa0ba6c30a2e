//! `--shard I/N`: which operations one of several instances polls.

/// `--shard I/N`: which part of the operations this instance polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("{s:?} is not I/N with 0 <= I < N, like 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the operation using `token` is polled by this shard. The token, not the
    /// operation's name: the API limits concurrent requests and the daily budget per
    /// token, and one instance can only keep to limits it sees whole. A fixed hash
    /// (never a per-process one), so every instance and every restart agree.
    pub fn selects(&self, token: &str) -> bool {
        xxhash_rust::xxh3::xxh3_64(token.as_bytes()) % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_operations_by_token() {
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "0/0", "1", "a/2", "-1/2", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad:?}");
        }
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        let mut per_shard = [0; 3];
        for t in 0..300 {
            let token = format!("token-{t}");
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].selects(&token)).collect();
            assert_eq!(owners.len(), 1, "{token}");
            per_shard[owners[0]] += 1;
        }
        assert!(
            per_shard.iter().all(|n| (70..=130).contains(n)),
            "{per_shard:?}"
        );
    }
}
