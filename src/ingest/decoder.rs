//! An answer decoded as its bytes arrive, so that a catch-up never holds a whole body (a
//! 60,000-row answer is about 23 MB): the rows of the envelope's `data` array are read
//! one by one out of a buffer of a chunk and a partial row, and everything else (code,
//! msg, error) is kept as text, the *skeleton*, and read when the answer ends.
//!
//! A row of the API's own shape is read by [`super::plain_row`]; any other goes
//! through serde_json.
//!
//! It reads exactly what [`crate::wolkvox::row::decode`] reads from the whole body: a
//! leading byte order mark skipped, invalid UTF-8 replaced (also when a character is
//! split between chunks), the same field rules, and any error reported at its line and
//! column in the text as read. Where the rows come from changes nothing: feeding an
//! answer byte by byte gives the same result as feeding it whole (tested below, and by
//! the fuzz target against the whole-body path).

use std::fmt::Write as _;

use serde_json::Deserializer;

use super::answer::{Answer, LeanEnvelope};
use super::plain_row::plain_row;
use super::{check_code, decode_error};
use crate::wolkvox::ApiError;
use crate::wolkvox::client::Receive;
use crate::wolkvox::row::RawRow;

/// Decodes one answer at a time; [`Receive::start`] begins the next, keeping the buffers.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Text received and not yet read.
    pending: String,
    /// Where `pending` starts in the text as read: line (1-based) and the bytes of that
    /// line before it.
    line: usize,
    col: usize,
    /// The first bytes of a character that the next chunk completes.
    carry: Vec<u8>,
    /// Whether any byte came (an empty body is a 404: no rows), and any text.
    received: bool,
    text_started: bool,
    skeleton: String,
    state: State,
    /// Where the rows were cut out of the skeleton: its offset of the array's `]`, and
    /// that `]`'s line and column in the text as read.
    cut: Option<(usize, Pos)>,
    /// A row that did not end in `pending` is read again only once this much is there:
    /// twice as much as the last try, so that a huge row costs linear time.
    retry_at: usize,
    answer: Answer,
    failed: Option<ApiError>,
}

/// A line and a column, as serde_json counts them: 1-based line, and bytes of the line
/// up to and including the character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Pos {
    line: usize,
    col: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the top-level value.
    #[default]
    Start,
    /// In the top-level object, before its `data` array.
    Envelope(Scan),
    /// In the `data` array: what may come next.
    Rows(Next),
    /// After the rows, or in a top-level value that is not an object: all kept as text.
    Rest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// After `[`: a row or `]`.
    First,
    /// After `,`: a row.
    Row,
    /// After a row: `,` or `]`.
    Separator,
}

/// Enough of the top-level object's structure to find the value of its `data` key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Skeleton offset of the latest string's text at depth 1, and its end.
    string: (usize, usize),
    /// The latest `:` at depth 1 followed a `"data"` key, with only space since.
    after_data_key: bool,
}

impl Receive for Decoder {
    fn start(&mut self) {
        self.pending.clear();
        self.skeleton.clear();
        self.carry.clear();
        (self.line, self.col) = (1, 0);
        self.received = false;
        self.text_started = false;
        self.state = State::Start;
        self.cut = None;
        self.retry_at = 0;
        // Kept at its size: a catch-up's answers are all about as long.
        self.answer.clear();
        self.failed = None;
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.received {
            self.received = true;
            (self.line, self.col) = (1, 0);
        }
        self.push_bytes(bytes);
        self.read(false)
            .inspect_err(|e| self.failed = Some(e.clone()))
    }
}

impl Decoder {
    /// A whole body's answer.
    pub fn whole(body: &[u8]) -> Result<Answer, ApiError> {
        let mut d = Decoder::default();
        d.start();
        // In pieces, as from the network: the text buffer stays small and in cache.
        for piece in body.chunks(64 * 1024) {
            d.extend(piece)?;
        }
        d.finish()?;
        Ok(std::mem::take(&mut d.answer))
    }

    /// The answer, once its last byte is in. An empty body has no rows.
    pub fn finish(&mut self) -> Result<&Answer, ApiError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if !self.received {
            self.answer.clear();
            return Ok(&self.answer);
        }
        if !self.carry.is_empty() {
            self.carry.clear();
            self.push_str("\u{FFFD}");
        }
        self.read(true)?;
        if let State::Rows(next) = self.state {
            // Cut off inside the array, between rows.
            let end = self.pos_at(self.pending.len());
            let what = match next {
                Next::Row => "EOF while parsing a value",
                Next::First | Next::Separator => "EOF while parsing a list",
            };
            return Err(error_at(what, end.line, end.col - 1));
        }
        let env: LeanEnvelope<'_> = serde_json::from_str(&self.skeleton).map_err(|e| {
            let at = self.skeleton_to_text(e.line(), e.column());
            decode_error(relocated(&e, at.line, at.col))
        })?;
        if !check_code(env.code, env.msg.as_ref())? {
            self.answer.clear();
        } else if self.cut.is_none() {
            // No `data` array was streamed: whatever rows there are, the skeleton held.
            self.answer = env.data.unwrap_or_default();
        }
        Ok(&self.answer)
    }

    /// Appends the chunk as text: a character split between chunks is kept until it
    /// is whole, invalid bytes become U+FFFD exactly as `String::from_utf8_lossy`.
    fn push_bytes(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !self.carry.is_empty() {
            let Some((&b, tail)) = rest.split_first() else {
                return; // still incomplete: the next chunk goes on
            };
            self.carry.push(b);
            match std::str::from_utf8(&self.carry) {
                Ok(_) => {
                    let whole = std::mem::take(&mut self.carry);
                    self.push_str(std::str::from_utf8(&whole).unwrap_or("\u{FFFD}"));
                    rest = tail;
                }
                Err(e) if e.error_len().is_none() => rest = tail,
                Err(_) => {
                    // The carried bytes were no character; the new byte starts afresh.
                    self.carry.clear();
                    self.push_str("\u{FFFD}");
                }
            }
        }
        // Valid text is the rule: `from_utf8` checks it fastest; only the rest goes
        // through the lossy path.
        let valid = match std::str::from_utf8(rest) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
        };
        self.push_str(valid);
        let rest = &rest[valid.len()..];
        let mut chunks = rest.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            self.push_str(chunk.valid());
            let bad = chunk.invalid();
            if bad.is_empty() {
                continue;
            }
            let incomplete = std::str::from_utf8(bad).is_err_and(|e| e.error_len().is_none());
            if chunks.peek().is_none() && incomplete {
                self.carry.extend_from_slice(bad);
            } else {
                self.push_str("\u{FFFD}");
            }
        }
    }

    fn push_str(&mut self, mut s: &str) {
        if !self.text_started && !s.is_empty() {
            self.text_started = true;
            s = s.strip_prefix('\u{FEFF}').unwrap_or(s);
        }
        self.pending.push_str(s);
    }

    /// Reads what `pending` holds, as far as it goes; `last` when no more will come.
    fn read(&mut self, last: bool) -> Result<(), ApiError> {
        let mut at = 0;
        let result = loop {
            let step = match self.state {
                State::Start => self.start_value(at),
                State::Envelope(scan) => Ok(self.envelope(at, scan)),
                State::Rows(next) => self.rows(at, next, last),
                State::Rest => {
                    self.skeleton.push_str(&self.pending[at..]);
                    Ok(self.pending.len())
                }
            };
            match step {
                // Rows stopped short of a row that has not all arrived.
                Ok(to) if to == at && matches!(self.state, State::Rows(_)) => break Ok(()),
                Ok(to) => at = to,
                Err(e) => break Err(e),
            }
            if at >= self.pending.len() {
                break Ok(());
            }
        };
        self.consume(at);
        result
    }

    /// Drops the first `n` bytes of `pending`, keeping count of lines.
    fn consume(&mut self, n: usize) {
        let done = &self.pending.as_bytes()[..n];
        match memchr::memrchr(b'\n', done) {
            None => self.col += n,
            Some(last) => {
                self.line += memchr::memchr_iter(b'\n', done).count();
                self.col = n - (last + 1);
            }
        }
        self.pending.drain(..n);
    }

    /// The line and column of `pending[i]`.
    fn pos_at(&self, i: usize) -> Pos {
        let before = &self.pending[..i];
        match before.rfind('\n') {
            None => Pos {
                line: self.line,
                col: self.col + i + 1,
            },
            Some(nl) => Pos {
                line: self.line + before.bytes().filter(|&b| b == b'\n').count(),
                col: i - nl,
            },
        }
    }

    fn start_value(&mut self, at: usize) -> Result<usize, ApiError> {
        let text = &self.pending[at..];
        let ws = text.len() - text.trim_start_matches(is_space).len();
        self.skeleton.push_str(&text[..ws]);
        match text[ws..].chars().next() {
            None => Ok(self.pending.len()),
            Some('{') => {
                self.skeleton.push('{');
                self.state = State::Envelope(Scan {
                    depth: 1,
                    ..Scan::default()
                });
                Ok(at + ws + 1)
            }
            Some(_) => {
                self.state = State::Rest;
                Ok(at + ws)
            }
        }
    }

    /// Copies the envelope into the skeleton until the `data` array opens.
    fn envelope(&mut self, at: usize, mut scan: Scan) -> usize {
        let text = &self.pending[at..];
        for (i, ch) in text.char_indices() {
            self.skeleton.push(ch);
            if scan.in_string {
                if scan.escaped {
                    scan.escaped = false;
                } else if ch == '\\' {
                    scan.escaped = true;
                } else if ch == '"' {
                    scan.in_string = false;
                    if scan.depth == 1 {
                        scan.string.1 = self.skeleton.len() - 1;
                    }
                }
                continue;
            }
            match ch {
                '"' => {
                    scan.in_string = true;
                    scan.after_data_key = false;
                    if scan.depth == 1 {
                        scan.string = (self.skeleton.len(), self.skeleton.len());
                    }
                }
                ':' if scan.depth == 1 => {
                    let key = self.skeleton.get(scan.string.0..scan.string.1);
                    scan.after_data_key = key.is_some_and(is_data);
                }
                '[' if scan.depth == 1 && scan.after_data_key => {
                    self.state = State::Rows(Next::First);
                    return at + i + 1;
                }
                '{' | '[' => {
                    scan.depth += 1;
                    scan.after_data_key = false;
                }
                '}' | ']' => {
                    scan.depth = scan.depth.saturating_sub(1);
                    scan.after_data_key = false;
                    if scan.depth == 0 {
                        self.state = State::Rest;
                        return at + i + 1;
                    }
                }
                c if is_space(c) => {}
                _ => scan.after_data_key = false,
            }
        }
        self.state = State::Envelope(scan);
        self.pending.len()
    }

    /// Reads rows and their separators; stops at a row that has not fully arrived.
    fn rows(&mut self, mut at: usize, mut next: Next, last: bool) -> Result<usize, ApiError> {
        loop {
            let text = &self.pending[at..];
            let ws = text.len() - text.trim_start_matches(is_space).len();
            at += ws;
            let Some(c) = self.pending[at..].chars().next() else {
                self.state = State::Rows(next);
                return Ok(at);
            };
            match (next, c) {
                (Next::First | Next::Separator, ']') => {
                    let pos = self.pos_at(at);
                    self.cut = Some((self.skeleton.len(), pos));
                    self.skeleton.push(']');
                    self.state = State::Rest;
                    return Ok(at + 1);
                }
                (Next::Separator, ',') => {
                    next = Next::Row;
                    at += 1;
                }
                (Next::Separator, _) => {
                    let p = self.pos_at(at);
                    return Err(error_at("expected `,` or `]`", p.line, p.col));
                }
                (Next::Row, ']') => {
                    let p = self.pos_at(at);
                    return Err(error_at("trailing comma", p.line, p.col));
                }
                (Next::First | Next::Row, '{' | '[') => {
                    if !last && self.pending.len() - at < self.retry_at {
                        self.state = State::Rows(next);
                        return Ok(at);
                    }
                    if let Some((row, len)) = plain_row(&self.pending[at..]) {
                        self.answer.push(&row);
                        at += len;
                        self.retry_at = 0;
                        next = Next::Separator;
                        continue;
                    }
                    let mut rows =
                        Deserializer::from_str(&self.pending[at..]).into_iter::<RawRow<'_>>();
                    match rows.next() {
                        Some(Ok(row)) => {
                            self.answer.push(&row);
                            at += rows.byte_offset();
                            self.retry_at = 0;
                            next = Next::Separator;
                        }
                        Some(Err(e)) if !last && cut_short(&e, &self.pending[at..]) => {
                            self.retry_at = 2 * (self.pending.len() - at);
                            self.state = State::Rows(next);
                            return Ok(at);
                        }
                        Some(Err(e)) => {
                            let p = self.pos_at(at);
                            let (line, col) = if e.line() <= 1 {
                                (p.line, p.col - 1 + e.column())
                            } else {
                                (p.line + e.line() - 1, e.column())
                            };
                            return Err(decode_error(relocated(&e, line, col)));
                        }
                        None => {
                            self.state = State::Rows(next);
                            return Ok(at);
                        }
                    }
                }
                (Next::First | Next::Row, _) => {
                    // Text, a number or a literal where a row belongs.
                    let p = self.pos_at(at);
                    return Err(error_at(
                        "invalid type: expected a row object",
                        p.line,
                        p.col,
                    ));
                }
            }
        }
    }

    /// Where a skeleton position lies in the text as read: past the cut, shifted by the
    /// rows that were taken out.
    fn skeleton_to_text(&self, line: usize, col: usize) -> Pos {
        let at = Pos { line, col };
        let Some((offset, text)) = self.cut else {
            return at;
        };
        let before = &self.skeleton[..offset.min(self.skeleton.len())];
        let skel = Pos {
            line: 1 + before.bytes().filter(|&b| b == b'\n').count(),
            col: offset - before.rfind('\n').map_or(0, |i| i + 1) + 1,
        };
        if at < skel {
            at
        } else if at.line == skel.line {
            Pos {
                line: text.line,
                col: text.col + (at.col - skel.col),
            }
        } else {
            Pos {
                line: text.line + (at.line - skel.line),
                col: at.col,
            }
        }
    }
}

/// Whether `e` may only mean that `text` stops early: serde_json says so of most
/// values, but when it skips a field the row does not have (`IgnoredAny`), a number cut
/// after its `-`, `.`, `e` or `e+` is an `invalid number` at the end of the text.
fn cut_short(e: &serde_json::Error, text: &str) -> bool {
    if e.is_eof() {
        return true;
    }
    let line = 1 + memchr::memchr_iter(b'\n', text.as_bytes()).count();
    let col = text.len() - text.rfind('\n').map_or(0, |i| i + 1);
    e.line() == line && e.column() >= col
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\n' | '\t' | '\r')
}

/// Whether a key's text (between its quotes, as written) reads as `data`.
fn is_data(raw: &str) -> bool {
    if !raw.contains('\\') {
        return raw == "data";
    }
    serde_json::from_str::<String>(&format!("\"{raw}\"")).is_ok_and(|k| k == "data")
}

fn error_at(what: &str, line: usize, col: usize) -> ApiError {
    decode_error(format!("{what} at line {line} column {col}"))
}

/// serde_json's message for `e`, at another line and column.
fn relocated(e: &serde_json::Error, line: usize, col: usize) -> String {
    let text = e.to_string();
    let own = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&own).unwrap_or(&text);
    let mut out = String::with_capacity(what.len() + 32);
    out.push_str(what);
    if e.line() > 0 {
        let _ = write!(out, " at line {line} column {col}");
    }
    out
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
