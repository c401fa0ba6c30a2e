//! One operation's saved state: watermark, remembered identities (as hashes: no caller
//! data on disk), and every counter and histogram value. Written atomically (temporary
//! file, fsync, rename, fsync of the directory), so a crash at any instant leaves the old
//! state or the new one, never a torn file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::DateTime;
use serde::{Deserialize, Serialize};

use crate::calls::saved::{SavedCallTotals, SavedCalls};
use crate::ledger::{Ledger, RowId, Seen};
use crate::totals::{RoutingPoint, Totals};

/// Bumped when the layout changes; older versions are migrated or refused in [`load`].
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpState {
    pub version: u32,
    pub operation: String,
    /// Where this operation's history begins: first start minus `backfill`.
    pub origin: Timestamp,
    pub watermark: Option<Timestamp>,
    pub saved_at: Timestamp,
    pub buckets: Vec<f64>,
    pub totals: SavedTotals,
    /// `(identity as 32 hex digits, copies, keep_until)`.
    pub ledger: Vec<(String, u32, DateTime)>,
    /// `wolkvox_api_requests_total` by code.
    pub api_requests: BTreeMap<String, u64>,
    /// `wolkvox_poll_errors_total` by reason.
    pub poll_errors: BTreeMap<String, u64>,
    pub window_splits: u64,
    pub state_save_failures: u64,
    /// Requests made on `requests_day` (the operation's local date), for the daily budget.
    #[serde(default)]
    pub requests_day: Option<jiff::civil::Date>,
    #[serde(default)]
    pub requests_today: u64,
    /// Open calls and recently closed ids (keyed hashes only).
    #[serde(default)]
    pub calls: SavedCalls,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedTotals {
    pub rows: u64,
    pub invalid_time: u64,
    pub invalid_date: u64,
    pub duplicates: u64,
    pub overflow: [u64; 3],
    pub routing_points: Vec<SavedRoutingPoint>,
    #[serde(default)]
    pub calls: SavedCallTotals,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedRoutingPoint {
    pub rp_id: String,
    pub rp_name: String,
    #[serde(flatten)]
    pub totals: RoutingPoint,
}

impl From<&Totals> for SavedTotals {
    fn from(t: &Totals) -> Self {
        let mut routing_points: Vec<_> = t
            .routing_points
            .iter()
            .map(|((id, name), rp)| SavedRoutingPoint {
                rp_id: id.clone(),
                rp_name: name.clone(),
                totals: rp.clone(),
            })
            .collect();
        routing_points.sort_by(|a, b| (&a.rp_id, &a.rp_name).cmp(&(&b.rp_id, &b.rp_name)));
        SavedTotals {
            rows: t.rows,
            invalid_time: t.invalid_time,
            invalid_date: t.invalid_date,
            duplicates: t.duplicates,
            overflow: t.overflow,
            routing_points,
            calls: SavedCallTotals::from(&t.calls),
        }
    }
}

impl From<SavedTotals> for Totals {
    fn from(s: SavedTotals) -> Self {
        Totals {
            rows: s.rows,
            invalid_time: s.invalid_time,
            invalid_date: s.invalid_date,
            duplicates: s.duplicates,
            overflow: s.overflow,
            routing_points: s
                .routing_points
                .into_iter()
                .map(|r| ((r.rp_id, r.rp_name), r.totals))
                .collect(),
            calls: s.calls.into(),
        }
    }
}

pub fn ledger_entries(l: &Ledger) -> Vec<(String, u32, DateTime)> {
    let mut v: Vec<_> = l
        .iter()
        .map(|(id, s)| (format!("{id:032x}"), s.count, s.keep_until))
        .collect();
    v.sort_unstable();
    v
}

/// A saved state that cannot be used: one line naming the file, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: cannot read state file: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not JSON, or not the shape of [`OpState`] (a torn or hand-edited file).
    #[error(
        "{}: state file is unreadable ({source}); move it aside or start with --state.reset",
        path.display()
    )]
    Unreadable {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// Written by a newer exporter: reading it could lose what that one added.
    #[error(
        "{}: state file version {version} is newer than this exporter understands ({VERSION}); upgrade, or start with --state.reset",
        path.display()
    )]
    TooNew { path: PathBuf, version: u32 },
}

/// A remembered identity that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ledger: bad identity {0:?}")]
pub struct BadIdentity(pub String);

pub fn ledger_from_entries(entries: &[(String, u32, DateTime)]) -> Result<Ledger, BadIdentity> {
    let mut out = Vec::with_capacity(entries.len());
    for (hex, count, keep_until) in entries {
        let id = RowId::from_str_radix(hex, 16).map_err(|_| BadIdentity(hex.clone()))?;
        out.push((
            id,
            Seen {
                count: *count,
                keep_until: *keep_until,
            },
        ));
    }
    Ok(Ledger::from_entries(out))
}

/// `state_dir/<operation>.json`.
pub fn path(dir: &Path, operation: &str) -> PathBuf {
    dir.join(format!("{operation}.json"))
}

/// Writes `state` atomically to `path`.
pub fn save(path: &Path, state: &OpState) -> std::io::Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    // Straight to the file: a busy operation's state is megabytes, and a buffer of it
    // would be one more copy at every commit.
    let mut out = Counting {
        inner: std::io::BufWriter::with_capacity(64 * 1024, File::create(&tmp)?),
        written: 0,
    };
    serde_json::to_writer(&mut out, state).map_err(std::io::Error::other)?;
    let written = out.written;
    out.inner
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)?
        .sync_all()?;
    fs::rename(&tmp, path)?;
    // The rename is durable only once the directory entry is.
    File::open(dir)?.sync_all()?;
    Ok(written)
}

/// A writer that counts what passes through it (the saved size, for `/metrics`).
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a saved state. `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<OpState>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let unreadable = |source| StateError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    #[derive(Deserialize)]
    struct Header {
        version: u32,
    }
    // The version first: a newer layout must be refused as such, not as garbage.
    let header: Header = serde_json::from_slice(&bytes).map_err(unreadable)?;
    if header.version > VERSION {
        return Err(StateError::TooNew {
            path: path.to_path_buf(),
            version: header.version,
        });
    }
    let state: OpState = serde_json::from_slice(&bytes).map_err(unreadable)?;
    Ok(Some(state))
}

/// `--state.reset`: moves an existing state file aside with a timestamp, keeping it.
pub fn move_aside(path: &Path, now: Timestamp) -> std::io::Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let aside = path.with_extension(format!("json.reset-{}", now.as_second()));
    fs::rename(path, &aside)?;
    Ok(Some(aside))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use crate::wolkvox::row::{Field, RawRow};

    fn sample() -> OpState {
        let mut t = Totals::default();
        let row = RawRow {
            rp_id: Field("1".into()),
            cod_opc_menu: Field("PULSE".into()),
            time: Field("3".into()),
            result: Field("ok".into()),
            ..Default::default()
        };
        t.apply(&row.read(), &Limits::default(), &[5.0]);
        let mut l = Ledger::new();
        let mut b = l.begin();
        b.observe(&[(u128::MAX - 5, jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0))]);
        let c = b.into_changes();
        l.commit(c);
        OpState {
            version: VERSION,
            operation: "acme".into(),
            origin: "2026-01-01T00:00:00Z".parse().unwrap(),
            watermark: Some("2026-01-01T01:00:00Z".parse().unwrap()),
            saved_at: "2026-01-01T01:02:00Z".parse().unwrap(),
            buckets: vec![5.0],
            totals: SavedTotals::from(&t),
            ledger: ledger_entries(&l),
            api_requests: BTreeMap::from([("200".into(), 3)]),
            poll_errors: BTreeMap::new(),
            window_splits: 0,
            state_save_failures: 0,
            requests_day: None,
            requests_today: 0,
            calls: Default::default(),
        }
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "acme");
        let s = sample();
        save(&p, &s).unwrap();
        let back = load(&p).unwrap().unwrap();
        assert_eq!(back, s);
        let ledger = ledger_from_entries(&back.ledger).unwrap();
        assert_eq!(ledger.len(), 1);
        assert_eq!(Totals::from(back.totals.clone()).rows, 1);
        assert!(!dir.path().join("acme.json.tmp").exists());
    }

    #[test]
    fn missing_is_none_and_garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "acme");
        assert_eq!(load(&p).unwrap(), None);
        fs::write(&p, b"{not json").unwrap();
        let e = load(&p).unwrap_err();
        assert!(matches!(e, StateError::Unreadable { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("acme.json: state file is unreadable") && e.contains("--state.reset"),
            "{e}"
        );
        let mut newer = serde_json::to_value(sample()).unwrap();
        newer["version"] = 99.into();
        fs::write(&p, newer.to_string()).unwrap();
        assert_eq!(
            load(&p).unwrap_err().to_string(),
            format!(
                "{}: state file version 99 is newer than this exporter understands (1); upgrade, or start with --state.reset",
                p.display()
            )
        );
        assert_eq!(
            ledger_from_entries(&[(
                "xyz".into(),
                1,
                jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0)
            )])
            .unwrap_err()
            .to_string(),
            "ledger: bad identity \"xyz\""
        );
        let aside = move_aside(&p, "2026-01-01T00:00:00Z".parse().unwrap())
            .unwrap()
            .unwrap();
        assert!(
            aside
                .to_string_lossy()
                .ends_with("acme.json.reset-1767225600")
        );
        assert!(!p.exists());
    }
}
