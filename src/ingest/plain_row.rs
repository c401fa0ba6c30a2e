//! The rows as the API writes them, read without serde: a flat object of the report's
//! fields, each a string without escapes, or null. Reading a row's ten fields through
//! serde_json's visitors was a quarter of a catch-up's CPU; this reads that shape in
//! one pass. Anything else (an escape, a number, a key the row does not declare or
//! declares twice, a row cut short, text that is not JSON) is left to serde_json, which
//! reads it exactly as before and reports any error where it is. The fuzz target holds
//! the two to the same rows.

use std::borrow::Cow;

use crate::wolkvox::row::{Field, RawRow};

/// The row at the start of `text` and the bytes it takes, when it has the plain shape;
/// `None` hands it to serde_json.
pub(super) fn plain_row(text: &str) -> Option<(RawRow<'_>, usize)> {
    let b = text.as_bytes();
    if b.first() != Some(&b'{') {
        return None;
    }
    let mut row = RawRow::default();
    let mut seen = 0u16;
    let mut next = 0;
    let mut i = skip_space(b, 1);
    if b.get(i) == Some(&b'}') {
        return Some((row, i + 1));
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        // The API writes the fields in one order: expect the one after the last.
        let (index, end) = match (KEY_WORDS.get(next), b.get(i + 1..i + 17)) {
            (Some(&(word, mask, len)), Some(at)) if le_u128(at) & mask == word => {
                (next, i + 1 + len)
            }
            _ => {
                let (key, end) = plain_str(text, i + 1)?;
                (index_of(key)?, end)
            }
        };
        next = index + 1;
        i = skip_space(b, end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_space(b, i + 1);
        let bit = 1 << index;
        if seen & bit != 0 {
            return None; // serde_json refuses a repeated field: let it say so
        }
        seen |= bit;
        let field = slot(&mut row, index);
        match b.get(i) {
            Some(b'"') => {
                let (value, end) = plain_str(text, i + 1)?;
                *field = Field(Cow::Borrowed(value));
                i = end;
            }
            Some(b'n') if b[i..].starts_with(b"null") => i += 4,
            _ => return None,
        }
        i = skip_space(b, i);
        match b.get(i) {
            Some(b',') => i = skip_space(b, i + 1),
            Some(b'}') => return Some((row, i + 1)),
            _ => return None,
        }
    }
}

/// The ten keys in the order the API writes them, each with its closing quote; a
/// key's index is its bit.
const KEYS: [&[u8]; 10] = [
    b"rp_id\"",
    b"rp_name\"",
    b"cod_opc_menu\"",
    b"dn_transfer\"",
    b"date\"",
    b"result\"",
    b"ani\"",
    b"time\"",
    b"customer_id\"",
    b"conn_id\"",
];

/// `KEYS` as the first 16 bytes of the text they match, a mask of the bytes they take,
/// and their length: one compare where `starts_with` was a call to `memcmp` (a tenth of
/// reading a row).
const KEY_WORDS: [(u128, u128, usize); 10] = {
    let mut words = [(0, 0, 0); 10];
    let mut k = 0;
    while k < KEYS.len() {
        let (mut word, mut mask) = ([0u8; 16], [0u8; 16]);
        let mut j = 0;
        while j < KEYS[k].len() {
            word[j] = KEYS[k][j];
            mask[j] = 0xff;
            j += 1;
        }
        words[k] = (
            u128::from_le_bytes(word),
            u128::from_le_bytes(mask),
            KEYS[k].len(),
        );
        k += 1;
    }
    words
};

fn le_u128(b: &[u8]) -> u128 {
    let mut w = [0u8; 16];
    w.copy_from_slice(b);
    u128::from_le_bytes(w)
}

/// The index among `KEYS` of the field a key names.
fn index_of(key: &str) -> Option<usize> {
    KEYS.iter()
        .position(|k| k.strip_suffix(b"\"") == Some(key.as_bytes()))
}

/// The field at an index of `KEYS`.
fn slot<'r, 'a>(row: &'r mut RawRow<'a>, index: usize) -> &'r mut Field<'a> {
    match index {
        0 => &mut row.rp_id,
        1 => &mut row.rp_name,
        2 => &mut row.cod_opc_menu,
        3 => &mut row.dn_transfer,
        4 => &mut row.date,
        5 => &mut row.result,
        6 => &mut row.ani,
        7 => &mut row.time,
        8 => &mut row.customer_id,
        _ => &mut row.conn_id,
    }
}

/// The text of a string whose opening quote ends before `start`, and the index after
/// its closing quote; `None` at an escape, a control character or the end of `text`.
fn plain_str(text: &str, start: usize) -> Option<(&str, usize)> {
    let rest = text.as_bytes().get(start..)?;
    let len = string_end(rest)?;
    if rest[len] != b'"' {
        return None;
    }
    // A quote is ASCII, so both ends fall between characters.
    Some((text.get(start..start + len)?, start + len + 1))
}

/// The index of the first `"`, `\\` or control character in `b`. Eight bytes at a
/// time: the byte-by-byte loop was a third of reading a row (fields are a few bytes to a
/// few dozen, too short for memchr's setup to pay).
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // The high bit of each byte below `n` (n <= 0x80). A borrow only ever runs from a
    // flagged byte into the bytes after it, so the first flagged byte is exact.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut at = 0;
    while let Some(chunk) = b.get(at..at + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let hits = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if hits != 0 {
            // Little-endian: the lowest flagged byte comes first in the text.
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = b.get(at..)?;
    tail.iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

fn skip_space(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Deserializer;

    /// What serde_json reads at the start of `text`: the row and its length.
    fn serde_row(text: &str) -> Option<(RawRow<'_>, usize)> {
        let mut it = Deserializer::from_str(text).into_iter::<RawRow<'_>>();
        match it.next() {
            Some(Ok(row)) => Some((row, it.byte_offset())),
            _ => None,
        }
    }

    /// Whenever the plain path reads a row, serde_json reads the same row to the same
    /// byte.
    fn agrees(text: &str) -> bool {
        let plain = plain_row(text);
        if let Some(p) = &plain {
            assert_eq!(Some(p), serde_row(text).as_ref(), "{text}");
        }
        plain.is_some()
    }

    #[test]
    fn the_api_shape_reads_as_serde_reads_it() {
        let row = r#"{"rp_id":"1001","rp_name":"Menú Ventas","cod_opc_menu":"PULSE","dn_transfer":"","date":"2026-12-02 10:00:00","result":"hung up","ani":"573001234567","time":"12","customer_id":"","conn_id":"c1"},{"#;
        assert!(agrees(row));
        let (r, n) = plain_row(row).unwrap();
        assert_eq!(&row[n..], ",{");
        assert_eq!(
            (r.rp_name.as_str(), r.conn_id.as_str()),
            ("Menú Ventas", "c1")
        );
        // Spaces and newlines anywhere JSON allows them, null, missing fields, any
        // order, the empty row.
        assert!(agrees("{ \"date\" :\t\"x\" ,\r\n \"ani\": null }"));
        assert!(agrees("{}"));
        assert!(agrees("{ }"));
        assert!(agrees(r#"{"conn_id":"b","rp_id":"a"}"#));
        // The expected key too close to the end for a word, then the next one.
        assert!(agrees(r#"{"rp_id":"a"}"#));
        assert!(agrees(r#"{"rp_id":"a","rp_name":"b"}"#));
        // A key out of the API's order after one in it.
        assert!(agrees(r#"{"rp_id":"a","date":"b","rp_name":"c"}"#));
    }

    #[test]
    fn string_end_finds_the_first_quote_backslash_or_control_byte() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        // Every byte value at every place of strings up to three words long, after
        // bytes that sit next to the limits (0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff).
        let filler = [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff, b'a'];
        for len in 0..=24 {
            for f in filler {
                let mut b = vec![f; len];
                assert_eq!(string_end(&b), naive(&b), "{b:?}");
                for at in 0..len {
                    for c in 0..=255u8 {
                        b[at] = c;
                        assert_eq!(string_end(&b), naive(&b), "{b:?}");
                        // A second special byte later changes nothing.
                        if at + 1 < len {
                            b[len - 1] = b'"';
                            assert_eq!(string_end(&b), naive(&b), "{b:?}");
                            b[len - 1] = f;
                        }
                    }
                    b[at] = f;
                }
            }
        }
    }

    #[test]
    fn anything_else_is_left_to_serde_json() {
        for text in [
            r#"{"rp_id":"a\"b"}"#,                          // an escape
            r#"{"rp_id":"a\u0041"}"#,                       // a unicode escape
            r#"{"r\u0070_id":"a"}"#,                        // an escaped key
            r#"{"rp_id":12}"#,                              // a number
            r#"{"rp_id":true}"#,                            // a boolean
            r#"{"rp_id":{"x":"y"}}"#,                       // an object where text belongs
            r#"{"rp_id":"a","rp_id":"b"}"#,                 // a repeated field: an error
            r#"{"extra":"a"}"#,                             // a key the row does not declare
            r#"{"rp_idx":"a","b":"cdefghijklmnop"}"#,       // the expected key, and more
            r#"{"rp_id":"a","rp_nam":"bcdefghijklmnop"}"#,  // less than the expected key
            r#"{"rp_id":"a","rp_id":"bcdefghijklmnop"}"#,   // the last key again
            r#"{"rp_id":"a","rp_namX":"bcdefghijklmnop"}"#, // its length, not its text
            r#"{"rp_id":"a",}"#,                            // a trailing comma: an error
            r#"{"rp_id":"a" "date":"b"}"#,                  // no comma: an error
            r#"{"rp_id":"a"#,                               // cut short
            r#"{"rp_id":"a""#,                              // cut short
            r#"{"rp_id":nul"#,                              // cut short
            r#"{"rp_id":nullx}"#,                           // not a literal
            "{\"rp_id\":\"a\tb\"}",                         // a control character: an error
            r#"["a","b"]"#,                                 // a row as an array
            r#"{"rp_id""a"}"#,                              // no colon
        ] {
            assert!(!agrees(text), "{text}");
        }
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 :áñ-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            Just("null".to_string()),
            Just("\"a\\\"b\"".to_string()),
            Just("\"\\u00e1\"".to_string()),
            Just("12.50".to_string()),
            Just("-0".to_string()),
            Just("false".to_string()),
            Just("[1]".to_string()),
            Just("\"x\ty\"".to_string()),
        ]
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "rp_id",
            "rp_name",
            "cod_opc_menu",
            "dn_transfer",
            "date",
            "result",
            "ani",
            "time",
            "customer_id",
            "conn_id",
            "extra",
            "DATE",
        ])
    }

    fn space() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", " ", "\n", "\t", "\r\n "])
    }

    proptest! {
        /// Rows of any mix of plain and other fields, spaced any way, cut anywhere:
        /// whatever the plain path reads, serde_json reads the same.
        #[test]
        fn whatever_it_reads_serde_reads_the_same(
            fields in prop::collection::vec((key(), value(), space(), space()), 0..12),
            cut in 0usize..400,
        ) {
            let mut text = String::from("{");
            for (i, (k, v, s1, s2)) in fields.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&format!("{s1}\"{k}\"{s2}:{s1}{v}{s2}"));
            }
            text.push_str("},{\"next\":1}");
            let plain = agrees(&text);
            // The plain shape is always read: every value a plain string or null,
            // every key one of the ten, once.
            let keys: std::collections::HashSet<_> = fields.iter().map(|f| f.0).collect();
            let plain_shape = keys.len() == fields.len()
                && fields.iter().all(|(k, v, _, _)| {
                    !matches!(*k, "extra" | "DATE")
                        && (v == "null" || (v.starts_with('"') && !v.contains('\\') && !v.contains('\t')))
                });
            prop_assert_eq!(plain, plain_shape, "{}", text);
            // Cut anywhere, it agrees or stands aside.
            let mut at = cut.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            agrees(&text[..at]);
        }
    }
}
