//! The report's response and rows: decoding (pure, borrowing from the body where it
//! can) and the reading of each field as the contract defines it.

use std::borrow::Cow;
use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Label values longer than this (in bytes) are cut at a character boundary, so a
/// hostile upstream cannot blow up `/metrics` with megabyte-long names.
pub const MAX_LABEL_LEN: usize = 128;

/// The JSON envelope every answer comes in.
#[derive(Debug, Default, Deserialize)]
pub struct Envelope<'a> {
    #[serde(default, deserialize_with = "code")]
    pub code: Option<i64>,
    #[serde(default, borrow)]
    pub msg: Option<Field<'a>>,
    #[serde(default, borrow)]
    pub data: Option<Vec<RawRow<'a>>>,
}

/// One report row as received; every field as text (numbers and booleans are
/// accepted and kept as their JSON text; missing or null fields are empty).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RawRow<'a> {
    #[serde(borrow)]
    pub rp_id: Field<'a>,
    #[serde(borrow)]
    pub rp_name: Field<'a>,
    #[serde(borrow)]
    pub cod_opc_menu: Field<'a>,
    #[serde(borrow)]
    pub dn_transfer: Field<'a>,
    #[serde(borrow)]
    pub date: Field<'a>,
    #[serde(borrow)]
    pub result: Field<'a>,
    #[serde(borrow)]
    pub ani: Field<'a>,
    #[serde(borrow)]
    pub time: Field<'a>,
    #[serde(borrow)]
    pub customer_id: Field<'a>,
    #[serde(borrow)]
    pub conn_id: Field<'a>,
}

/// A field's text, borrowed from the body unless it had escapes or was not a string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Field<'a>(pub Cow<'a, str>);

impl Field<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Field(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Field(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Field(Cow::Borrowed(if v { "true" } else { "false" })))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::default())
            }
            // Objects and arrays where text belongs: keep the row, read the field as empty.
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::default())
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// The envelope's `code`: a number, or a number written as a string (the vendor's own
/// samples send `"200"`); null or missing is `None`.
pub fn code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a numeric string")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v).map(Some).map_err(E::custom)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| E::custom(format_args!("code: {:?} is not a number", excerpt(v))))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
    }
    d.deserialize_option(V)
}

fn excerpt(s: &str) -> String {
    s.chars().take(20).collect()
}

/// A body without the UTF-8 byte order mark PHP services often put first.
pub fn without_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// Decodes a 200 answer's body. Invalid UTF-8 is replaced rather than refused, so one
/// bad byte in a routing point name does not fail the whole cycle.
pub fn decode(body: &[u8]) -> Result<Envelope<'_>, String> {
    let body = without_bom(body);
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text).map_err(|e| e.to_string()),
        Err(_) => {
            let owned = String::from_utf8_lossy(body).into_owned();
            let env: Envelope<'_> = serde_json::from_str(&owned).map_err(|e| e.to_string())?;
            Ok(env.into_owned())
        }
    }
}

impl Envelope<'_> {
    fn into_owned(self) -> Envelope<'static> {
        Envelope {
            code: self.code,
            msg: self.msg.map(Field::into_owned),
            data: self
                .data
                .map(|rows| rows.into_iter().map(RawRow::into_owned).collect()),
        }
    }
}

impl Field<'_> {
    fn into_owned(self) -> Field<'static> {
        Field(Cow::Owned(self.0.into_owned()))
    }
}

impl RawRow<'_> {
    fn into_owned(self) -> RawRow<'static> {
        RawRow {
            rp_id: self.rp_id.into_owned(),
            rp_name: self.rp_name.into_owned(),
            cod_opc_menu: self.cod_opc_menu.into_owned(),
            dn_transfer: self.dn_transfer.into_owned(),
            date: self.date.into_owned(),
            result: self.result.into_owned(),
            ani: self.ani.into_owned(),
            time: self.time.into_owned(),
            customer_id: self.customer_id.into_owned(),
            conn_id: self.conn_id.into_owned(),
        }
    }

    /// The row's identity: a 128-bit hash of its ten fields as received, so caller
    /// data is never kept in clear. Length prefixes keep `("ab","c")` apart from `("a","bc")`.
    ///
    /// Saved identities must stay valid across versions: this is XXH3-128 of the fields,
    /// each as its length (8 bytes, little-endian) then its bytes.
    pub fn identity(&self) -> u128 {
        self.identity_in(&mut Vec::new())
    }

    /// [`Self::identity`], with the fields laid out in `scratch`, which keeps its room
    /// from row to row: hashed in one call, with no buffer to zero for each row.
    pub fn identity_in(&self, scratch: &mut Vec<u8>) -> u128 {
        scratch.clear();
        for f in [
            &self.rp_id,
            &self.rp_name,
            &self.cod_opc_menu,
            &self.dn_transfer,
            &self.date,
            &self.result,
            &self.ani,
            &self.time,
            &self.customer_id,
            &self.conn_id,
        ] {
            let bytes = f.0.as_bytes();
            scratch.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            scratch.extend_from_slice(bytes);
        }
        xxhash_rust::xxh3::xxh3_128(scratch)
    }
}

// ---------------------------------------------------------------- field reading

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Outcome {
    Ok,
    HungUp,
    Other,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::HungUp, Outcome::Other];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HungUp => "hung_up",
            Outcome::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// `result`: trimmed, lower-cased, `_` read as a space. Read word by word without
/// building a lower-cased copy: this runs once per row.
pub fn parse_result(s: &str) -> Outcome {
    let s = trim(s);
    if s.eq_ignore_ascii_case("ok") {
        return Outcome::Ok;
    }
    let mut words = s
        .split(|c: char| c == '_' || c.is_whitespace())
        .filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(a), Some(b), None)
            if a.eq_ignore_ascii_case("hung") && b.eq_ignore_ascii_case("up") =>
        {
            Outcome::HungUp
        }
        (Some(a), None, None) if a.eq_ignore_ascii_case("hungup") => Outcome::HungUp,
        _ => Outcome::Other,
    }
}

/// `cod_opc_menu`: trimmed; `PULSE` in any case becomes `PULSE`; empty is no option.
pub fn parse_option(s: &str) -> Option<Cow<'_, str>> {
    let s = trim(s);
    if s.is_empty() {
        None
    } else if s.eq_ignore_ascii_case("PULSE") {
        Some(Cow::Borrowed("PULSE"))
    } else {
        Some(Cow::Borrowed(s))
    }
}

/// `time`: integer or decimal seconds, `HH:MM:SS`, `H:MM:SS` or `MM:SS`. `None` when
/// unparseable or negative.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = trim(s);
    if s.is_empty() {
        return None;
    }
    if !s.contains(':') {
        let v: f64 = s.parse().ok()?;
        return (v.is_finite() && v >= 0.0).then_some(v);
    }
    // At most three parts; a fourth makes it unreadable. No Vec: this runs once per row.
    let mut split = s.split(':');
    let mut buf = [""; 3];
    let mut n = 0;
    for p in split.by_ref().take(3) {
        buf[n] = p;
        n += 1;
    }
    if split.next().is_some() {
        return None;
    }
    let parts = &buf[..n];
    let digits = |p: &str, max_len: usize| -> Option<u64> {
        if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let (h, m, sec) = match parts {
        [h, m, sec] => (digits(h, 6)?, digits(m, 2)?, digits(sec, 2)?),
        [m, sec] => (0, digits(m, 6)?, digits(sec, 2)?),
        _ => return None,
    };
    // Minutes and seconds under 60, except a leading MM in `MM:SS` may run past 59.
    if sec >= 60 || (parts.len() == 3 && m >= 60) {
        return None;
    }
    Some((h * 3600 + m * 60 + sec) as f64)
}

/// `date`: `YYYY-mm-dd HH:MM:SS`, `YYYYmmddHHiiss`, `YYYY-mm-ddTHH:MM:SS` or
/// `YYYYmmddHH`, as local wall time.
pub fn parse_date(s: &str) -> Option<DateTime> {
    let s = trim(s);
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // At most four digits: no overflow.
        Some(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (y, mo, d, h, mi, se) = match b.len() {
        19 if b[4] == b'-'
            && b[7] == b'-'
            && (b[10] == b' ' || b[10] == b'T')
            && b[13] == b':'
            && b[16] == b':' =>
        {
            (
                num(0..4)?,
                num(5..7)?,
                num(8..10)?,
                num(11..13)?,
                num(14..16)?,
                num(17..19)?,
            )
        }
        14 => (
            num(0..4)?,
            num(4..6)?,
            num(6..8)?,
            num(8..10)?,
            num(10..12)?,
            num(12..14)?,
        ),
        10 => (num(0..4)?, num(4..6)?, num(6..8)?, num(8..10)?, 0, 0),
        _ => return None,
    };
    let date = Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(mo).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()?;
    let time = Time::new(
        i8::try_from(h).ok()?,
        i8::try_from(mi).ok()?,
        i8::try_from(se).ok()?,
        0,
    )
    .ok()?;
    Some(date.to_datetime(time))
}

/// Trims and caps a label value at [`MAX_LABEL_LEN`] bytes on a character boundary.
pub fn label_value(s: &str) -> &str {
    let s = trim(s);
    if s.len() <= MAX_LABEL_LEN {
        return s;
    }
    let mut end = MAX_LABEL_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    // The cut can land just after a space: trim again, or the label ends in one
    // (found by the fuzz target, fuzz/fuzz_targets/check.rs).
    s[..end].trim_end()
}

/// [`str::trim`], with a quick answer for the usual field, which starts and ends with
/// a visible ASCII character: a row's fields are trimmed nine times, and the general
/// trim decodes a character at each end (2% of a catch-up's CPU).
pub fn trim(s: &str) -> &str {
    // ASCII bytes that are not `char::is_whitespace` (which, unlike
    // `u8::is_ascii_whitespace`, includes the vertical tab).
    let visible = |b: &u8| b.is_ascii() && !b.is_ascii_whitespace() && *b != 0x0b;
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(a), Some(z)) if visible(a) && visible(z) => s,
        (None, _) => s,
        _ => s.trim(),
    }
}

/// A row read for the metrics: label values (capped), outcome, option, transfer,
/// duration and date, borrowing from the raw row.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading<'a> {
    pub rp_id: &'a str,
    pub rp_name: &'a str,
    pub outcome: Outcome,
    pub option: Option<Cow<'a, str>>,
    pub transfer: Option<&'a str>,
    pub duration: Option<f64>,
    pub date: Option<DateTime>,
}

impl<'a> RawRow<'a> {
    pub fn read(&'a self) -> Reading<'a> {
        let rp_id = label_value(self.rp_id.as_str());
        Reading {
            rp_id: if rp_id.is_empty() { "unknown" } else { rp_id },
            rp_name: label_value(self.rp_name.as_str()),
            outcome: parse_result(self.result.as_str()),
            option: parse_option(label_value(self.cod_opc_menu.as_str())),
            transfer: Some(label_value(self.dn_transfer.as_str())).filter(|t| !t.is_empty()),
            duration: parse_duration(self.time.as_str()),
            date: parse_date(self.date.as_str()),
        }
    }
}

#[cfg(test)]
mod tests;
