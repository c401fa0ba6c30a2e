//! `conn_id` is caller data: a call is known only by a keyed hash of it. The key is 128
//! random bits kept in `calls.key` beside the state files (mode 0600), so the saved
//! state alone cannot be matched against guessed ids (a Wolkvox id is mostly a clock
//! and small counters: unkeyed, it would fall to a brute force in minutes).
//!
//! An answer's rows carry an unkeyed 128-bit digest of their trimmed `conn_id` only while
//! the answer is read (as the body itself does); [`CallKey::id`] turns it into the keyed
//! [`CallId`] that open calls and the state file hold. SipHash is a keyed PRF and costs
//! ~20 ns a row, where an HMAC would cost ~20 times as much.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};

use siphasher::sip128::{Hasher128, SipHasher13};

/// A call's identity: the keyed hash of its `conn_id`.
pub type CallId = u128;

/// The unkeyed digest of a trimmed, non-empty `conn_id`; `None` for a row without one.
pub fn digest(conn_id: &str) -> Option<u128> {
    let c = crate::wolkvox::row::trim(conn_id);
    (!c.is_empty()).then(|| xxhash_rust::xxh3::xxh3_128(c.as_bytes()))
}

/// The file, in the state directory, that holds the key.
pub const FILE: &str = "calls.key";

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CallKey {
    k0: u64,
    k1: u64,
}

// Never printed: the key is as secret as the ids it protects.
impl std::fmt::Debug for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}: cannot read the calls key: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a calls key (32 hex digits expected); restore it, or start with --state.reset", path.display())]
    Malformed { path: PathBuf },
    #[error("{}: cannot write the calls key: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no random source for the calls key")]
    Random,
}

impl CallKey {
    pub fn from_u128(k: u128) -> CallKey {
        CallKey {
            k0: k as u64,
            k1: (k >> 64) as u64,
        }
    }

    /// A fresh key from the system's random source, for runs that keep nothing
    /// (`backfill`, tests).
    pub fn random() -> Result<CallKey, KeyError> {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| KeyError::Random)?;
        Ok(CallKey::from_u128(u128::from_le_bytes(b)))
    }

    /// The key in `dir`, created on first use. Without it, saved open calls cannot be
    /// matched with their next rows, so a malformed file stops the start.
    pub fn load_or_create(dir: &Path) -> Result<CallKey, KeyError> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => u128::from_str_radix(text.trim(), 16)
                .ok()
                .filter(|_| text.trim().len() == 32)
                .map(CallKey::from_u128)
                .ok_or(KeyError::Malformed { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = CallKey::random()?;
                write_new(&path, key).map_err(|source| KeyError::Write { path, source })?;
                Ok(key)
            }
            Err(source) => Err(KeyError::Read { path, source }),
        }
    }

    /// The keyed identity of a row's [`digest`].
    pub fn id(&self, digest: u128) -> CallId {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(&digest.to_le_bytes());
        h.finish128().as_u128()
    }
}

fn write_new(path: &Path, key: CallKey) -> std::io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    let k = (u128::from(key.k1) << 64) | u128::from(key.k0);
    writeln!(f, "{k:032x}")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_trims_and_skips_empty() {
        assert_eq!(digest(""), None);
        assert_eq!(digest("  \t"), None);
        assert_eq!(digest(" 6736.4628 "), digest("6736.4628"));
        assert_ne!(digest("6736.4628"), digest("6736.4629"));
    }

    #[test]
    fn ids_depend_on_the_key() {
        let d = digest("6736.4628.1040.1768782812.1814").unwrap_or_default();
        let a = CallKey::from_u128(1);
        let b = CallKey::from_u128(2);
        assert_eq!(a.id(d), a.id(d));
        assert_ne!(a.id(d), b.id(d));
        assert_ne!(a.id(d), d);
    }

    #[test]
    fn key_file_is_created_once_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = CallKey::load_or_create(dir.path()).unwrap();
        let k2 = CallKey::load_or_create(dir.path()).unwrap();
        assert_eq!(k1, k2);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.trim().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(format!("{k1:?}"), "CallKey(..)");
    }

    #[test]
    fn a_malformed_key_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "not hex\n").unwrap();
        let e = CallKey::load_or_create(dir.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: not a calls key (32 hex digits expected); restore it, or start with --state.reset",
                dir.path().join(FILE).display()
            )
        );
    }
}
