//! The state file as [`super::write`] puts it down: byte for byte what `serde_json`
//! writes of a [`StateView`] (tested), with the three long lists (identities, open
//! calls, closed ids) written by hand. Serde's per-field machinery (a key escaped, a
//! separator decided, a string scanned for quotes, for every field of every entry) was
//! most of the cost of saving a catch-up's part.

use std::io::{self, Write};

use serde::Serialize;

use super::view::{CallsView, Civil, Hex, LedgerView, StateView};
use crate::ledger::Seen;
use crate::wolkvox::row::Outcome;

impl StateView<'_> {
    /// Writes the view as compact JSON: the same bytes as `serde_json::to_writer`.
    pub fn write_json<W: Write>(&self, w: &mut W) -> io::Result<()> {
        // In the order `StateView` declares its fields, as the derive writes them.
        w.write_all(b"{")?;
        field(w, "version", &self.version)?;
        w.write_all(b",")?;
        field(w, "operation", &self.operation)?;
        w.write_all(b",")?;
        field(w, "origin", &self.origin)?;
        w.write_all(b",")?;
        field(w, "watermark", &self.watermark)?;
        w.write_all(b",")?;
        field(w, "saved_at", &self.saved_at)?;
        w.write_all(b",")?;
        field(w, "buckets", &self.buckets)?;
        w.write_all(b",")?;
        field(w, "totals", &self.totals)?;
        w.write_all(b",\"ledger\":")?;
        ledger(w, &self.ledger)?;
        w.write_all(b",")?;
        field(w, "api_requests", &self.api_requests)?;
        w.write_all(b",")?;
        field(w, "poll_errors", &self.poll_errors)?;
        w.write_all(b",")?;
        field(w, "window_splits", &self.window_splits)?;
        w.write_all(b",")?;
        field(w, "state_save_failures", &self.state_save_failures)?;
        w.write_all(b",")?;
        field(w, "requests_day", &self.requests_day)?;
        w.write_all(b",")?;
        field(w, "requests_today", &self.requests_today)?;
        w.write_all(b",\"calls\":")?;
        calls(w, &self.calls)?;
        w.write_all(b"}")
    }
}

/// `"key":value`, the value as serde writes it.
fn field<W: Write>(w: &mut W, key: &str, value: &impl Serialize) -> io::Result<()> {
    serde(w, &key)?;
    w.write_all(b":")?;
    serde(w, value)
}

fn serde<W: Write>(w: &mut W, value: &(impl Serialize + ?Sized)) -> io::Result<()> {
    serde_json::to_writer(&mut *w, value).map_err(io::Error::from)
}

/// `[["<id>",copies,"<keep_until>"],...]`
fn ledger<W: Write>(w: &mut W, view: &LedgerView<'_>) -> io::Result<()> {
    w.write_all(b"[")?;
    for (i, (id, Seen { count, keep_until })) in view.entries().into_iter().enumerate() {
        w.write_all(if i == 0 { b"[" } else { b",[" })?;
        hex(w, *id)?;
        w.write_all(b",")?;
        uint(w, u64::from(*count))?;
        w.write_all(b",")?;
        civil(w, *keep_until)?;
        w.write_all(b"]")?;
    }
    w.write_all(b"]")
}

/// `{"open":[{...},...],"closed":[["<id>","<last>"],...]}`
fn calls<W: Write>(w: &mut W, view: &CallsView<'_>) -> io::Result<()> {
    let (open, closed) = view.lists();
    w.write_all(b"{\"open\":[")?;
    for (i, (id, c)) in open.into_iter().enumerate() {
        w.write_all(if i == 0 { b"{\"id\":" } else { b",{\"id\":" })?;
        hex(w, *id)?;
        w.write_all(b",\"rp_id\":")?;
        serde(w, c.entry.0.as_str())?;
        w.write_all(b",\"rp_name\":")?;
        serde(w, c.entry.1.as_str())?;
        w.write_all(b",\"first\":")?;
        civil(w, c.first)?;
        w.write_all(b",\"last\":")?;
        civil(w, c.last)?;
        w.write_all(b",\"last_result\":")?;
        w.write_all(outcome(c.last_result))?;
        w.write_all(if c.served {
            b",\"served\":true,\"steps\":"
        } else {
            b",\"served\":false,\"steps\":"
        })?;
        uint(w, u64::from(c.steps))?;
        w.write_all(b",\"duration\":")?;
        serde(w, &c.duration)?;
        w.write_all(b"}")?;
    }
    w.write_all(b"],\"closed\":[")?;
    for (i, (id, last)) in closed.into_iter().enumerate() {
        w.write_all(if i == 0 { b"[" } else { b",[" })?;
        hex(w, *id)?;
        w.write_all(b",")?;
        civil(w, *last)?;
        w.write_all(b"]")?;
    }
    w.write_all(b"]}")
}

fn hex<W: Write>(w: &mut W, id: u128) -> io::Result<()> {
    let mut buf = [b'"'; 34];
    buf[1..33].copy_from_slice(&Hex(id).digits());
    w.write_all(&buf)
}

fn civil<W: Write>(w: &mut W, d: jiff::civil::DateTime) -> io::Result<()> {
    match Civil(d).digits() {
        Some(digits) => {
            let mut buf = [b'"'; 21];
            buf[1..20].copy_from_slice(&digits);
            w.write_all(&buf)
        }
        None => serde(w, &d),
    }
}

fn outcome(o: Outcome) -> &'static [u8] {
    // The variant names, as the derive writes them.
    match o {
        Outcome::Ok => b"\"Ok\"",
        Outcome::HungUp => b"\"HungUp\"",
        Outcome::Other => b"\"Other\"",
    }
}

fn uint<W: Write>(w: &mut W, mut v: u64) -> io::Result<()> {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    w.write_all(&buf[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_written_as_serde_writes_them() {
        for o in Outcome::ALL {
            assert_eq!(outcome(o), serde_json::to_vec(&o).unwrap().as_slice());
        }
    }

    #[test]
    fn integers_are_written_as_serde_writes_them() {
        for v in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            uint(&mut out, v).unwrap();
            assert_eq!(out, serde_json::to_vec(&v).unwrap());
        }
    }
}
