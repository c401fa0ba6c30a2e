//! An answer as [`super::ingest`] keeps it: each row read straight into an [`Item`],
//! with its label values stored once in a table ([`Interner`]). The rows come from
//! [`super::Decoder`], as the body arrives.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use jiff::civil::DateTime;
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use super::keep_until;
use crate::calls::Calls;
use crate::config::Limits;
use crate::ledger::{Batch, IdHasherBuilder, RowId};
use crate::totals::{LabelSet, SetRow, Totals};
use crate::window::Query;
use crate::wolkvox::row::{Field, Outcome, RawRow, Reading};

/// One row of an answer, as [`super::ingest`] keeps it until it is applied.
#[derive(Debug)]
pub(super) struct Item {
    id: RowId,
    pub(super) date: Option<DateTime>,
    duration: Option<f64>,
    /// Index into [`Answer::labels`].
    labels: u32,
    outcome: Outcome,
    /// [`crate::calls::key::digest`] of the row's `conn_id`: keyed only when the row
    /// is new, and dropped with the answer.
    conn: Option<u128>,
}

/// A decoded answer's rows, as [`Item`]s.
#[derive(Debug, Default)]
pub struct Answer {
    pub(super) items: Vec<Item>,
    labels: Vec<LabelSet>,
    interner: Interner,
    /// Room for a row's fields as its identity hashes them.
    scratch: Vec<u8>,
}

/// The envelope, exactly as [`crate::wolkvox::row::Envelope`] reads it, with the rows
/// read as they are decoded.
#[derive(Deserialize)]
pub(super) struct LeanEnvelope<'a> {
    #[serde(default, deserialize_with = "crate::wolkvox::row::code")]
    pub(super) code: Option<i64>,
    #[serde(default, borrow)]
    pub(super) msg: Option<Field<'a>>,
    #[serde(default)]
    pub(super) data: Option<Answer>,
}

impl Answer {
    /// Empties the answer, keeping its tables' room.
    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.labels.clear();
        self.interner.first.clear();
        self.interner.chain.clear();
    }

    /// Adds one row: its identity, date, duration and outcome, and its label values
    /// by number in the answer's table.
    pub(super) fn push(&mut self, row: &RawRow<'_>) {
        let r = row.read();
        let labels = self.interner.index(&mut self.labels, &r);
        self.items.push(Item {
            id: row.identity_in(&mut self.scratch),
            date: r.date,
            duration: r.duration,
            labels,
            outcome: r.outcome,
            conn: crate::calls::key::digest(row.conn_id.as_str()),
        });
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply(
        &self,
        items: &[Item],
        q: &Query,
        batch: &mut Batch<'_>,
        next: &mut Totals,
        calls: &mut Calls,
        limits: &Limits,
        bounds: &[f64],
    ) -> usize {
        let mut fresh = Vec::with_capacity(items.len());
        batch.reserve(items.len());
        let dated_in_order = items
            .windows(2)
            .all(|w| w[0].date.is_some() && w[0].date <= w[1].date);
        if dated_in_order {
            // Copies share their date: count them second by second.
            for run in items.chunk_by(|a, b| a.date == b.date) {
                let keep = keep_until(run[0].date, q);
                batch.observe_into(run.iter().map(|i| (i.id, keep)), &mut fresh);
            }
        } else {
            batch.observe_into(
                items.iter().map(|i| (i.id, keep_until(i.date, q))),
                &mut fresh,
            );
        }
        // One growth to the answer's size, not doublings that hold old and new tables
        // at once (a catch-up's answer opens up to 60,000 calls).
        calls.reserve(items.len());
        let mut new = 0;
        // Rows come in date order: their keep-until changes only with the date.
        let mut keep = (None, keep_until(None, q));
        for (item, is_new) in items.iter().zip(&fresh) {
            if !is_new {
                next.duplicates += 1;
                continue;
            }
            let Some(l) = self.labels.get(item.labels as usize) else {
                continue; // every index comes from the table: cannot happen
            };
            let reading = Reading {
                rp_id: &l.rp_id,
                rp_name: &l.rp_name,
                outcome: item.outcome,
                option: l.option.as_deref().map(Cow::Borrowed),
                transfer: l.transfer.as_deref(),
                duration: item.duration,
                date: item.date,
            };
            if item.date != keep.0 {
                keep = (item.date, keep_until(item.date, q));
            }
            calls.observe(item.conn, &reading, keep.1, &mut next.calls);
            new += 1;
        }
        // The routing points' counts after the calls': neither reads the other's.
        let rows = items.iter().zip(&fresh).filter(|(_, is_new)| **is_new);
        next.apply_sets(
            &self.labels,
            rows.map(|(item, _)| SetRow {
                set: item.labels,
                outcome: item.outcome,
                duration: item.duration,
                dated: item.date.is_some(),
            }),
            limits,
            bounds,
        );
        new
    }
}

/// Finds a row's label values in the answer's table, adding them when new. An answer
/// has a few dozen distinct ones, so each is stored once.
#[derive(Debug, Default)]
struct Interner {
    /// Hash of the values to the first table index with that hash; collisions chain.
    first: HashMap<u64, u32, IdHasherBuilder>,
    chain: Vec<u32>,
    scratch: Vec<u8>,
}

const NONE: u32 = u32::MAX;

impl Interner {
    fn hash(scratch: &mut Vec<u8>, r: &Reading<'_>) -> u64 {
        // One call hashes the four (the streaming hasher costs more to set up than to
        // run), from a buffer that keeps its room: nothing to zero for each row.
        scratch.clear();
        for part in [
            Some(r.rp_id),
            Some(r.rp_name),
            r.option.as_deref(),
            r.transfer,
        ] {
            let (len, bytes) = match part {
                Some(s) => (s.len() as u64, s.as_bytes()),
                None => (u64::MAX, &b""[..]),
            };
            scratch.extend_from_slice(&len.to_le_bytes());
            scratch.extend_from_slice(bytes);
        }
        xxhash_rust::xxh3::xxh3_64(scratch)
    }

    fn index(&mut self, table: &mut Vec<LabelSet>, r: &Reading<'_>) -> u32 {
        let hash = Interner::hash(&mut self.scratch, r);
        let same = |l: &LabelSet| {
            l.rp_id == r.rp_id
                && l.rp_name == r.rp_name
                && l.option.as_deref() == r.option.as_deref()
                && l.transfer.as_deref() == r.transfer
        };
        let mut at = self.first.get(&hash).copied().unwrap_or(NONE);
        let mut tail = NONE;
        while at != NONE {
            if table.get(at as usize).is_some_and(same) {
                return at;
            }
            tail = at;
            at = self.chain.get(at as usize).copied().unwrap_or(NONE);
        }
        let i = u32::try_from(table.len()).unwrap_or(NONE - 1);
        table.push(LabelSet {
            rp_id: r.rp_id.to_string(),
            rp_name: r.rp_name.to_string(),
            option: r.option.as_deref().map(str::to_string),
            transfer: r.transfer.map(str::to_string),
        });
        self.chain.push(NONE);
        match self.chain.get_mut(tail as usize) {
            Some(link) => *link = i,
            None => {
                self.first.insert(hash, i);
            }
        }
        i
    }
}

impl<'de> Deserialize<'de> for Answer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Answer;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Answer, A::Error> {
                let mut answer = Answer::default();
                // Each row lives only while it is read: identity, reading, labels.
                while let Some(row) = seq.next_element::<RawRow<'de>>()? {
                    answer.push(&row);
                }
                Ok(answer)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
impl Answer {
    /// Everything the answer holds, as text, for tests that compare two answers.
    pub(super) fn fingerprint(&self) -> String {
        format!("{:?} {:?}", self.items, self.labels)
    }
}
