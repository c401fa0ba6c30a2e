//! The undo log of a table keyed by a 128-bit hash (the ledger's identities, the calls'
//! ids): what changed since the last commit, so that a failed part can be undone in
//! place instead of working on a copy.

use std::collections::HashMap;
use std::hash::BuildHasher;

#[derive(Debug)]
pub(crate) struct Journal<V> {
    /// Keys that were absent: a catch-up's part adds some 60,000, so only their 16
    /// bytes are kept.
    added: Vec<u128>,
    /// Earlier values of keys that were present, oldest first.
    was: Vec<(u128, V)>,
}

impl<V> Default for Journal<V> {
    fn default() -> Self {
        Journal {
            added: Vec::new(),
            was: Vec::new(),
        }
    }
}

impl<V> Journal<V> {
    /// `key` was absent and has been inserted.
    pub(crate) fn added(&mut self, key: u128) {
        self.added.push(key);
    }

    /// `key` held `earlier` before it changed.
    pub(crate) fn changed(&mut self, key: u128, earlier: V) {
        self.was.push((key, earlier));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.was.is_empty()
    }

    /// Keeps the changes: empties the journal.
    pub(crate) fn forget(&mut self) {
        self.added.clear();
        self.was.clear();
        shrink(&mut self.added);
        shrink(&mut self.was);
    }

    /// Puts `table` back as it was at the last [`Journal::forget`].
    pub(crate) fn undo<S: BuildHasher>(&mut self, table: &mut HashMap<u128, V, S>) {
        for (key, v) in self.was.drain(..).rev() {
            table.insert(key, v);
        }
        for key in self.added.drain(..) {
            table.remove(&key);
        }
        self.forget();
    }
}

/// A journal is as long as a part; after a long one, give its room back.
fn shrink<T>(v: &mut Vec<T>) {
    if v.capacity() > 4096 {
        *v = Vec::new();
    }
}
