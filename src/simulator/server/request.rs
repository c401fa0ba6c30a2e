//! Reading a request as the API does: the `wolkvox-token` header, the query string and
//! its `YYYYmmddHHiiss` dates.

use std::collections::HashMap;

use hyper::Request;
use hyper::body::Incoming;
use jiff::civil::DateTime;

pub(super) enum TokenHeader {
    Missing,
    /// Present but not text (non-visible-ASCII bytes): cannot be a valid token.
    Unreadable,
    Present(String),
}

pub(super) fn token_header(req: &Request<Incoming>) -> TokenHeader {
    match req.headers().get("wolkvox-token") {
        None => TokenHeader::Missing,
        Some(value) => match value.to_str() {
            Ok(text) if text.trim().is_empty() => TokenHeader::Missing,
            Ok(text) => TokenHeader::Present(text.trim().to_string()),
            Err(_) => TokenHeader::Unreadable,
        },
    }
}

/// Query string to a map (first occurrence wins), percent-decoded.
pub(crate) fn parse_query(query: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params
            .entry(percent_decode(key))
            .or_insert_with(|| percent_decode(value));
    }
    params
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYYmmddHHiiss` to a civil date-time; anything else is `None`.
pub(crate) fn parse_api_date(text: &str) -> Option<DateTime> {
    let text = text.trim();
    if text.len() != 14 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All ASCII digits, so byte slicing is on character boundaries.
    let num = |a: usize, b: usize| text[a..b].parse::<i16>().ok();
    DateTime::new(
        num(0, 4)?,
        i8::try_from(num(4, 6)?).ok()?,
        i8::try_from(num(6, 8)?).ok()?,
        i8::try_from(num(8, 10)?).ok()?,
        i8::try_from(num(10, 12)?).ok()?,
        i8::try_from(num(12, 14)?).ok()?,
        0,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let p = parse_query("api=diagram_1&date_ini=20261127000000&customer_id=a%20b+c&x=%zz&x=2");
        assert_eq!(p.get("api").map(String::as_str), Some("diagram_1"));
        assert_eq!(p.get("customer_id").map(String::as_str), Some("a b c"));
        assert_eq!(p.get("x").map(String::as_str), Some("%zz"));
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("%C3%BA"), "ú");
    }

    #[test]
    fn api_dates_parse_strictly() {
        assert!(parse_api_date("20261127080500").is_some());
        assert!(parse_api_date("20260230000000").is_none());
        assert!(parse_api_date("2026112708050").is_none());
        assert!(parse_api_date("2026-11-27 08:05").is_none());
        assert!(parse_api_date("２0261127080500").is_none());
        assert!(parse_api_date("20261127246000").is_none());
    }
}
