//! An error's text made safe to show on `/`, which anyone who can reach the port reads.
//! An [`ApiError`](crate::wolkvox::ApiError)'s detail holds an excerpt of the API's own
//! `msg`, or of a gateway's page, or of a JSON decoder's message, any of which may echo
//! what it was sent or what it read: a token, a caller's number, a call's id. What is
//! known to be secret is removed by value; what merely looks like such data (quoted
//! values, long numbers, long unbroken words) is masked by shape.

/// Longest text shown, in characters.
pub const MAX_CHARS: usize = 160;

/// What stands for something removed.
pub const MASK: &str = "…";

/// Digits in a row from which a number is masked: caller numbers, ids.
const LONG_NUMBER: usize = 6;

/// Letters and digits in a row from which a word that holds a digit is masked: tokens.
const LONG_WORD: usize = 16;

/// `text` with every one of `secrets` (4 characters or longer) removed, markup tags
/// dropped, quoted values emptied, long numbers and long words with digits masked,
/// white space and control characters made single spaces, and cut to [`MAX_CHARS`].
pub fn safe_text(text: &str, secrets: &[&str]) -> String {
    let mut s = text.to_string();
    for secret in secrets.iter().filter(|x| x.chars().count() >= 4) {
        s = s.replace(secret, MASK);
    }
    let s = strip_tags(&s);
    let s = mask_quoted(&s);
    let s = mask_words(&s);
    let one_line = s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let trimmed = one_line.as_str();
    if trimmed.chars().count() > MAX_CHARS {
        let cut: String = trimmed.chars().take(MAX_CHARS - 1).collect();
        format!("{}{MASK}", cut.trim_end())
    } else {
        trimmed.to_string()
    }
}

/// Markup (a gateway's error page) as its text: each tag, `<` then a letter, `/` or
/// `!` up to the next `>`, becomes a space.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let tag = c == '<'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '/' || *n == '!');
        if !tag {
            out.push(c);
            continue;
        }
        for n in chars.by_ref() {
            if n == '>' {
                break;
            }
        }
        out.push(' ');
    }
    out
}

/// `"…"` and `` `…` `` for whatever was between the quotes (serde's way of citing the
/// value it could not read); an unclosed quote masks to the end.
fn mask_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut open: Option<char> = None;
    for c in s.chars() {
        match open {
            Some(q) if c == q => {
                out.push_str(MASK);
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '"' || c == '`' => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    if open.is_some() {
        out.push_str(MASK);
    }
    out
}

/// Runs of letters, digits, `-`, `_` and `+`: masked when they hold no letter and
/// [`LONG_NUMBER`] digits or more (`+57 300-123-4567` pieces too), or when they are
/// [`LONG_WORD`] characters or more with a digit among them.
fn mask_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let digits = word.chars().filter(char::is_ascii_digit).count();
        let letters = word.chars().filter(|c| c.is_alphabetic()).count();
        let len = word.chars().count();
        if (letters == 0 && digits >= LONG_NUMBER) || (digits > 0 && len >= LONG_WORD) {
            out.push_str(MASK);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in s.chars() {
        // `-` and `_` join a token's pieces, `+` starts a phone number.
        if c.is_alphanumeric() || c == '-' || c == '_' || c == '+' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_go_whatever_their_shape() {
        assert_eq!(
            safe_text("PLEASE VALIDATE TOKEN abcd-efgh", &["abcd-efgh"]),
            "PLEASE VALIDATE TOKEN …"
        );
        // Too short to replace without garbling the text: left to the shape rules.
        assert_eq!(safe_text("code 42", &["42"]), "code 42");
    }

    #[test]
    fn quoted_values_are_emptied() {
        assert_eq!(
            safe_text(
                "invalid report answer: invalid type: string \"3001234567\", expected u64 at line 1 column 80",
                &[]
            ),
            "invalid report answer: invalid type: string \"…\", expected u64 at line 1 column 80"
        );
        assert_eq!(
            safe_text("invalid type: integer `3001234567`, expected a string", &[]),
            "invalid type: integer `…`, expected a string"
        );
        assert_eq!(safe_text("unclosed \"abc", &[]), "unclosed \"…");
    }

    #[test]
    fn long_numbers_and_long_words_with_digits_are_masked() {
        assert_eq!(
            safe_text("caller +573001234567 hung up on 123456, 300-123-4567", &[]),
            "caller … hung up on …, …"
        );
        assert_eq!(
            safe_text("token 9f86d081884c7d659a2feaa0c55ad015 refused", &[]),
            "token … refused"
        );
        // Short numbers, codes and ordinary long words stay.
        assert_eq!(
            safe_text(
                "http_5xx (HTTP 502): 502 Bad Gateway, os error 111, internationalization",
                &[]
            ),
            "http_5xx (HTTP 502): 502 Bad Gateway, os error 111, internationalization"
        );
        assert_eq!(safe_text("12345 rows", &[]), "12345 rows");
    }

    #[test]
    fn a_gateway_page_reads_as_its_text() {
        assert_eq!(
            safe_text(
                "HTTP 502: <html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>",
                &[]
            ),
            "HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx"
        );
        // Not markup: kept.
        assert_eq!(safe_text("a < b, 2<3", &[]), "a < b, 2<3");
        // Markup cut off at the excerpt's end drops to the end.
        assert_eq!(safe_text("x <a href=", &[]), "x");
    }

    #[test]
    fn one_line_trimmed_and_cut() {
        assert_eq!(safe_text("  a\nb\t\tc  ", &[]), "a b c");
        let long = "word ".repeat(100);
        let cut = safe_text(&long, &[]);
        assert_eq!(cut.chars().count(), MAX_CHARS);
        assert!(cut.ends_with("word…"), "{cut}");
        let exact = "x".repeat(MAX_CHARS);
        assert_eq!(safe_text(&exact, &[]), exact);
    }

    #[test]
    fn what_the_api_and_the_client_say_comes_through() {
        for msg in [
            "invalid_token (HTTP 403): PLEASE VALIDATE TOKEN",
            "token_limit (HTTP 403): TOKEN LIMIT EXCEEDED",
            "concurrency_limit (HTTP 403): EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)",
            "network: error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
            "cannot save state to /var/lib/wolkvox-exporter/acme.json: No space left on device (os error 28)",
        ] {
            assert_eq!(safe_text(msg, &[]), msg);
        }
    }
}
