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

mod json;
pub mod view;
pub use view::{CallsView, LedgerView, StateView, TotalsView};

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

/// A state written to its temporary file and not yet in place: [`Unsynced::finish`]
/// syncs it and renames it over the last one.
#[derive(Debug)]
pub struct Unsynced {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    bytes: u64,
}

/// Writes `state` ([`StateView::write_json`]) straight into a temporary file beside `path`. No buffer of the
/// whole state: a busy operation's is megabytes, and the writes only reach the page
/// cache. The slow part, the sync, is [`Unsynced::finish`]'s.
pub fn write(path: &Path, state: &StateView<'_>) -> std::io::Result<Unsynced> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    let mut out = std::io::BufWriter::with_capacity(
        64 * 1024,
        Counted {
            inner: File::create(&tmp)?,
            bytes: 0,
        },
    );
    state.write_json(&mut out)?;
    let counted = out.into_inner().map_err(|e| e.into_error())?;
    let (file, bytes) = (counted.inner, counted.bytes);
    Ok(Unsynced {
        file,
        tmp,
        path: path.to_path_buf(),
        bytes,
    })
}

impl Unsynced {
    /// Makes the write durable and atomic: sync, rename, sync the directory. Returns
    /// the bytes written.
    pub fn finish(self) -> std::io::Result<u64> {
        self.file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        // The rename is durable only once the directory entry is.
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()?;
        Ok(self.bytes)
    }
}

/// A writer that counts what goes through it.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// [`write`] and [`Unsynced::finish`] in one (tests, benchmarks).
pub fn save(path: &Path, state: &StateView<'_>) -> std::io::Result<u64> {
    write(path, state)?.finish()
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
    use std::sync::Arc;

    use super::*;
    use crate::calls::{CallKey, CallRules, Calls, OpenCall};
    use crate::config::Limits;
    use crate::wolkvox::row::{Field, Outcome, RawRow};

    fn day(h: i8, m: i8) -> DateTime {
        jiff::civil::date(2026, 1, 1).at(h, m, 0, 0)
    }

    /// Live tables with more than one of everything, so that order shows.
    fn live() -> (Totals, Ledger, Calls) {
        let mut t = Totals::default();
        for (rp, name, opt, dn, result) in [
            ("2", "Menú", "PULSE", "", "ok"),
            ("1", "Ventas", "3", "3001", "hung up"),
            ("1", "Ventas", "4", "", "otro"),
            ("1", "Soporte \"24h\"", "", "", "ok"),
        ] {
            let row = RawRow {
                rp_id: Field(rp.into()),
                rp_name: Field(name.into()),
                cod_opc_menu: Field(opt.into()),
                dn_transfer: Field(dn.into()),
                time: Field("3".into()),
                result: Field(result.into()),
                ..Default::default()
            };
            t.apply(&row.read(), &Limits::default(), &[5.0]);
        }
        t.calls
            .by_entry
            .insert(("2".into(), "Menú".into()), [1, 0, 2, 0]);
        t.calls
            .by_entry
            .insert(("1".into(), "Ventas".into()), [0, 3, 0, 1]);
        t.calls.late_rows = 4;
        let mut l = Ledger::new();
        let mut b = l.begin();
        b.observe(&[
            (u128::MAX - 5, day(0, 0)),
            (7, day(0, 1)),
            (1 << 100, day(0, 2)),
            (7, day(0, 1)),
        ]);
        l.commit(DateTime::MIN);
        let open = |rp: &str, steps| OpenCall {
            entry: Arc::new((rp.to_string(), "Menú".to_string())),
            first: day(0, 0),
            last: day(0, 5),
            last_result: Outcome::HungUp,
            served: steps > 1,
            steps,
            duration: 12.5,
        };
        let calls = Calls::restore(
            rules(),
            [
                (u128::MAX, open("2", 1)),
                (3, open("1", 2)),
                (1 << 90, open("2", 3)),
            ],
            [(9, day(0, 3)), (2, day(0, 4))],
        );
        (t, l, calls)
    }

    fn rules() -> Arc<CallRules> {
        Arc::new(CallRules {
            key: CallKey::from_u128(0x5eed),
            self_service: Default::default(),
        })
    }

    fn view<'a>(t: &'a Totals, l: &'a Ledger, c: &'a Calls) -> StateView<'a> {
        StateView {
            version: VERSION,
            operation: "acme",
            origin: "2026-01-01T00:00:00Z".parse().unwrap(),
            watermark: Some("2026-01-01T01:00:00Z".parse().unwrap()),
            saved_at: "2026-01-01T01:02:00Z".parse().unwrap(),
            buckets: &[5.0],
            totals: TotalsView(t),
            ledger: LedgerView::new(l),
            api_requests: BTreeMap::from([("200".into(), 3)]),
            poll_errors: BTreeMap::from([("decode".into(), 1)]),
            window_splits: 2,
            state_save_failures: 1,
            requests_day: Some(jiff::civil::date(2026, 1, 1)),
            requests_today: 3,
            calls: CallsView::new(c),
        }
    }

    fn sample() -> OpState {
        let (t, l, c) = live();
        let bytes = serde_json::to_vec(&view(&t, &l, &c)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The hand-written lists are what serde writes: with escapes, fractions of a
    /// second, years jiff writes signed, durations JSON has no number for, the largest
    /// counts, committing views, and nothing at all.
    #[test]
    fn write_json_writes_what_serde_writes() {
        let (t, mut l, c) = live();
        let odd = |d: DateTime| d.checked_add(jiff::SignedDuration::from_nanos(1)).unwrap();
        let mut b = l.begin();
        b.observe(&[
            (11, odd(day(0, 3))),
            (12, jiff::civil::date(-5, 1, 1).at(0, 0, 0, 0)),
        ]);
        b.observe(&[(13, DateTime::MAX)]);
        l.commit(DateTime::MIN);
        let call = |name: &str, duration: f64, steps| OpenCall {
            entry: Arc::new(("1\\\u{1}".to_string(), name.to_string())),
            first: odd(day(0, 0)),
            last: DateTime::MAX,
            last_result: Outcome::Other,
            served: true,
            steps,
            duration,
        };
        let odd_calls = Calls::restore(
            rules(),
            [
                (1, call("a\"b\nc\té\u{7f}\u{2028}", f64::NAN, u32::MAX)),
                (2, call("", f64::INFINITY, 0)),
                (3, call("x", -0.0, 1)),
                (4, call("y", 1e300, 2)),
                (5, call("z", 0.1, 3)),
            ],
            [(6, odd(day(0, 4))), (7, DateTime::MIN)],
        );
        let empty = (Ledger::new(), Calls::new(rules()));
        let mut views = vec![
            view(&t, &l, &c),
            view(&t, &l, &odd_calls),
            view(&t, &empty.0, &empty.1),
        ];
        let mut v = view(&t, &l, &c);
        v.ledger = LedgerView::committing(&l, day(0, 1));
        v.calls = CallsView::committing(&c, day(0, 6), day(0, 4));
        v.watermark = None;
        v.requests_day = None;
        views.push(v);
        for v in views {
            let mut hand = Vec::new();
            v.write_json(&mut hand).unwrap();
            assert_eq!(
                String::from_utf8(hand).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    /// A commit saves before it forgets and closes: its views write what the commit
    /// then leaves in memory, so a failed save has changed nothing.
    #[test]
    fn a_committing_view_writes_what_the_commit_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let (t, mut l, mut c) = live();
        // Forgets identity u128::MAX - 5, closes every open call (latest row 00:05),
        // keeps their ids and closed id 2, forgets closed id 9.
        let (floor, close_before, forget_before) = (day(0, 1), day(0, 6), day(0, 4));
        let mut v = view(&t, &l, &c);
        v.ledger = LedgerView::committing(&l, floor);
        v.calls = CallsView::committing(&c, close_before, forget_before);
        let before = path(dir.path(), "before");
        save(&before, &v).unwrap();
        let before = load(&before).unwrap().unwrap();
        assert_eq!(l.commit(floor), 1);
        c.commit(close_before, forget_before);
        let after = path(dir.path(), "after");
        save(&after, &view(&t, &l, &c)).unwrap();
        let after = load(&after).unwrap().unwrap();
        assert_eq!(before, after);
        assert_eq!(after.ledger.len(), 2);
        assert_eq!((after.calls.open.len(), after.calls.closed.len()), (0, 4));
    }

    #[test]
    fn what_a_commit_writes_reads_back_as_the_same_tables() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "acme");
        let (t, l, c) = live();
        let written = save(&p, &view(&t, &l, &c)).unwrap();
        assert_eq!(written, fs::metadata(&p).unwrap().len());
        assert!(!dir.path().join("acme.json.tmp").exists());
        let back = load(&p).unwrap().unwrap();
        assert_eq!(back, sample());
        assert_eq!(
            (
                back.version,
                back.operation.as_str(),
                back.buckets.as_slice()
            ),
            (VERSION, "acme", &[5.0][..])
        );
        assert_eq!(
            (back.watermark, back.requests_day, back.requests_today),
            (
                Some("2026-01-01T01:00:00Z".parse().unwrap()),
                Some(jiff::civil::date(2026, 1, 1)),
                3
            )
        );
        assert_eq!((back.window_splits, back.state_save_failures), (2, 1));
        assert_eq!(back.api_requests, BTreeMap::from([("200".into(), 3)]));
        assert_eq!(back.poll_errors, BTreeMap::from([("decode".into(), 1)]));
        // Sorted by identity, as the hex digits sort: the same tables give the same file.
        assert_eq!(
            back.ledger,
            vec![
                (format!("{:032x}", 7), 2, day(0, 1)),
                (format!("{:032x}", 1u128 << 100), 1, day(0, 2)),
                (format!("{:032x}", u128::MAX - 5), 1, day(0, 0)),
            ]
        );
        let open: Vec<_> = back.calls.open.iter().map(|o| o.id.clone()).collect();
        assert_eq!(
            open,
            [3, 1 << 90, u128::MAX].map(|i: u128| format!("{i:032x}"))
        );
        let closed: Vec<_> = back.calls.closed.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(closed, [2u128, 9].map(|i| format!("{i:032x}")));
        let rps: Vec<_> = back
            .totals
            .routing_points
            .iter()
            .map(|r| (r.rp_id.as_str(), r.rp_name.as_str()))
            .collect();
        assert_eq!(
            rps,
            [("1", "Soporte \"24h\""), ("1", "Ventas"), ("2", "Menú")]
        );
        let entries: Vec<_> = back
            .totals
            .calls
            .by_entry
            .iter()
            .map(|e| (e.rp_id.as_str(), e.calls))
            .collect();
        assert_eq!(entries, [("1", [0, 3, 0, 1]), ("2", [1, 0, 2, 0])]);
        assert_eq!(ledger_from_entries(&back.ledger).unwrap(), l);
        assert_eq!(back.calls.clone().restore(rules()).unwrap(), c);
        assert_eq!(Totals::from(back.totals), t);
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
