//! The upstream: the report API's client, its error classes and its rows.

pub mod client;
pub mod row;

use std::fmt;

/// Why a request failed, as the `reason` label of `wolkvox_poll_errors_total`.
/// Classification lives here, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Timeout,
    Network,
    Http5xx,
    Decode,
    Maintenance,
    TokenLimit,
    ConcurrencyLimit,
    InvalidToken,
    MissingToken,
    BadRequest,
    Other,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Timeout,
        Reason::Network,
        Reason::Http5xx,
        Reason::Decode,
        Reason::Maintenance,
        Reason::TokenLimit,
        Reason::ConcurrencyLimit,
        Reason::InvalidToken,
        Reason::MissingToken,
        Reason::BadRequest,
        Reason::Other,
    ];

    /// Its place in [`Reason::ALL`].
    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    pub fn label(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Network => "network",
            Reason::Http5xx => "http_5xx",
            Reason::Decode => "decode",
            Reason::Maintenance => "maintenance",
            Reason::TokenLimit => "token_limit",
            Reason::ConcurrencyLimit => "concurrency_limit",
            Reason::InvalidToken => "invalid_token",
            Reason::MissingToken => "missing_token",
            Reason::BadRequest => "bad_request",
            Reason::Other => "other",
        }
    }

    /// Worth asking again within the same cycle: the cause is likely gone in seconds.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Reason::Timeout
                | Reason::Network
                | Reason::Http5xx
                | Reason::Decode
                | Reason::ConcurrencyLimit
        )
    }
}

/// A failed request: its class and a short description with no token and no caller data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub reason: Reason,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub detail: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} (HTTP {s}): {}", self.reason.label(), self.detail),
            None => write!(f, "{}: {}", self.reason.label(), self.detail),
        }
    }
}

impl std::error::Error for ApiError {}

/// Classifies an error answer from its status and the envelope's `msg` (the table in
/// `wolkvox-api.md`). 404 never gets here: it means "no rows".
pub fn classify(status: u16, msg: &str) -> Reason {
    let m = msg.to_ascii_uppercase();
    match status {
        401 => Reason::MissingToken,
        403 if m.contains("TOKEN LIMIT") => Reason::TokenLimit,
        403 if m.contains("SIMULTANEOUS") => Reason::ConcurrencyLimit,
        403 if m.contains("VALIDATE TOKEN") || m.contains("INVALID TOKEN") => Reason::InvalidToken,
        403 if m.contains("WOLKVOX-TOKEN") => Reason::MissingToken,
        // The API is switched off during server backups with a 403 whose text varies.
        403 => Reason::Maintenance,
        400 => Reason::BadRequest,
        500..=599 => Reason::Http5xx,
        _ => Reason::Other,
    }
}

/// A short, safe excerpt of an error message for logs: one line, no more than 120 chars.
pub fn excerpt(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    one_line.trim().to_string()
}

/// What `information.php?api=token_info` tells about a token's daily budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenInfo {
    pub limit: Option<u64>,
    pub used_today: Option<u64>,
}

/// Reads a `token_info` answer. Its exact shape is inferred (`data` an object, or a
/// list of one, with `token_limit` and `token_use_today` as numbers or strings), so
/// anything else gives `None` rather than an error.
pub fn parse_token_info(body: &[u8]) -> Option<TokenInfo> {
    let v: serde_json::Value = serde_json::from_slice(row::without_bom(body)).ok()?;
    let data = match &v["data"] {
        serde_json::Value::Array(a) => a.first()?.clone(),
        d => d.clone(),
    };
    let num = |k: &str| match &data[k] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let info = TokenInfo {
        limit: num("token_limit"),
        used_today: num("token_use_today"),
    };
    (info != TokenInfo::default()).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_info_shapes() {
        let want = Some(TokenInfo {
            limit: Some(5000),
            used_today: Some(12),
        });
        assert_eq!(
            parse_token_info(br#"{"code":200,"data":{"token_limit":5000,"token_use_today":12}}"#),
            want
        );
        assert_eq!(
            parse_token_info(
                br#"{"code":200,"data":[{"token_limit":"5000","token_use_today":"12"}]}"#
            ),
            want
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(
            br#"{"code":"200","msg":" 1 records were found","data":{"token_limit":5000,"token_use_today":12}}"#,
        );
        assert_eq!(
            parse_token_info(&bom),
            want,
            "byte order mark and string code"
        );
        assert_eq!(parse_token_info(br#"{"code":200,"data":null}"#), None);
        assert_eq!(parse_token_info(b"<html>"), None);
    }

    #[test]
    fn classification_follows_the_vendor_table() {
        for (status, msg, want) in [
            (401, "PLEASE ENTER THE WOLKVOX-TOKEN", Reason::MissingToken),
            (403, "TOKEN LIMIT EXCEEDED", Reason::TokenLimit),
            (
                403,
                "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)",
                Reason::ConcurrencyLimit,
            ),
            (403, "PLEASE VALIDATE TOKEN", Reason::InvalidToken),
            (
                403,
                "The API is disabled while the server is backed up",
                Reason::Maintenance,
            ),
            (400, "SOME PARAMETERS ARE REQUIRED", Reason::BadRequest),
            (
                400,
                "THE API YOU WANT TO CONSULT DOES NOT EXIST",
                Reason::BadRequest,
            ),
            (502, "<html>Bad Gateway</html>", Reason::Http5xx),
            (503, "", Reason::Http5xx),
            (418, "", Reason::Other),
        ] {
            assert_eq!(classify(status, msg), want, "{status} {msg}");
        }
    }

    #[test]
    fn labels_are_unique_and_match_the_contract() {
        let labels: Vec<_> = Reason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "timeout",
                "network",
                "http_5xx",
                "decode",
                "maintenance",
                "token_limit",
                "concurrency_limit",
                "invalid_token",
                "missing_token",
                "bad_request",
                "other"
            ]
        );
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("a\nb\tc"), "a b c");
        assert_eq!(excerpt(&"x".repeat(500)).len(), 120);
    }
}
