use super::*;
use crate::ingest::rows_of;

const ROW: &str = r#"{"rp_id":"1","rp_name":"Menú","cod_opc_menu":"1","dn_transfer":"","date":"2026-04-01 10:00:00","result":"ok","ani":"","time":"5","customer_id":"","conn_id":"c1"}"#;

fn two_rows() -> String {
    format!(
        r#"{{"code":200,"error":null,"msg":"2 records were found","data":[{ROW},{}]}}"#,
        ROW.replace("c1", "c2")
    )
}

/// What a decoder makes of `body` fed in the given pieces: the answer's fingerprint, or
/// the error's detail.
fn fed(pieces: &[&[u8]]) -> Result<String, String> {
    let mut d = Decoder::default();
    d.start();
    for p in pieces {
        if let Err(e) = d.extend(p) {
            return Err(e.detail);
        }
    }
    d.finish().map(|a| a.fingerprint()).map_err(|e| e.detail)
}

/// Fed whole, byte by byte, and split in two at every point: always the same.
fn same_however_fed(body: &[u8]) -> Result<String, String> {
    let whole = fed(&[body]);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(
        fed(&bytes),
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(body)
    );
    for at in 0..=body.len() {
        let (a, b) = body.split_at(at);
        assert_eq!(
            fed(&[a, b]),
            whole,
            "split at {at}: {:?}",
            String::from_utf8_lossy(body)
        );
    }
    whole
}

fn rows(body: &[u8]) -> usize {
    let fingerprint = same_however_fed(body).unwrap();
    fingerprint.matches("Item {").count()
}

#[test]
fn reads_the_rows_however_the_body_is_cut() {
    let body = two_rows();
    assert_eq!(rows(body.as_bytes()), 2);
    // A byte order mark, pretty-printed text, `code` as a string, `data` first.
    let pretty = format!(
        "\u{FEFF} {{\n  \"data\" : [\n    {ROW} ,\n\t{ROW}\r\n  ],\n  \"code\": \"200\"\n}}\n"
    );
    assert_eq!(rows(pretty.as_bytes()), 2);
    assert_eq!(
        same_however_fed(pretty.as_bytes()),
        same_however_fed(body.replace("c2", "c1").as_bytes())
    );
    // Escapes in keys and values, a `data` key inside `msg`, rows as arrays.
    let escaped = format!(
        r#"{{"msg":"\"data\":[1]","d\u0061ta":[{}, ["2","B","","","2026-04-01 10:00:01","ok","","1","","c9"]]}}"#,
        ROW.replace("Menú", r#"Men\u00fa \"x\""#)
    );
    assert_eq!(rows(escaped.as_bytes()), 2);
    // No rows: an empty array, null, no `data` at all, a 404 envelope with rows.
    for body in [
        r#"{"code":200,"data":[]}"#,
        r#"{"code":200,"data":null}"#,
        r#"{"code":200,"msg":"ok"}"#,
        r#"{"code":404,"msg":"0 records","data":[{"rp_id":"1"}]}"#,
        r#" {"data":[ ] , "code" : 200 } "#,
    ] {
        assert_eq!(rows(body.as_bytes()), 0, "{body}");
    }
    // The envelope as a sequence, as serde reads a struct: decoded whole, as before.
    assert_eq!(rows(format!(r#"[200, "1 record", [{ROW}]]"#).as_bytes()), 1);
    // An empty body is a 404: no rows, and no error.
    assert_eq!(fed(&[]), Ok(Answer::default().fingerprint()));
}

#[test]
fn a_number_cut_in_a_field_it_skips_waits_for_the_rest() {
    // serde_json calls `12.` at the end of the text an invalid number, not an early end,
    // when it skips the field: a chunk ending there must wait, not fail the answer.
    for extra in ["-12.5e+3", "0.5E-1", "-0", "7e2"] {
        let body = format!(
            r#"{{"code":200,"data":[{},{ROW}]}}"#,
            ROW.replace(r#""time":"5""#, &format!(r#""time":"5","extra":{extra}"#))
        );
        assert_eq!(rows(body.as_bytes()), 2, "{body}");
    }
    // The same cut where the text truly ends is still the error serde_json reports.
    let cut = format!(r#"{{"code":200,"data":[{},"#, &ROW[..ROW.len() - 1]);
    let cut = cut.replace(r#""conn_id":"c1","#, r#""conn_id":"c1","extra":12."#);
    assert_eq!(
        same_however_fed(cut.as_bytes()),
        Err(format!(
            "invalid report answer: invalid number at line 1 column {}",
            cut.len()
        ))
    );
}

#[test]
fn invalid_utf8_reads_as_the_whole_body_path_reads_it() {
    // 0xFA alone, a character cut by the end, a lead byte followed by ASCII, and a
    // valid 4-byte character: every split of each gives the same, U+FFFD where bad.
    for name in [&b"Men\xFA"[..], b"Men\xC3", b"M\xE2\x82A", "M😀".as_bytes()] {
        let mut body = br#"{"code":200,"data":[{"rp_id":"1","rp_name":""#.to_vec();
        body.extend_from_slice(name);
        body.extend_from_slice(
            br#"","date":"2026-04-01 10:00:00","result":"ok","conn_id":"c1"}]}"#,
        );
        let got = same_however_fed(&body).unwrap();
        let want = rows_of(&body).unwrap()[0].read().rp_name.to_string();
        assert!(
            got.contains(&format!("rp_name: {want:?}")),
            "{got} lacks {want:?}"
        );
    }
    // Cut off inside a character at the very end.
    let cut = "{\"code\":200,\"msg\":\"é".as_bytes();
    assert_eq!(
        same_however_fed(&cut[..cut.len() - 1]),
        Err("invalid report answer: EOF while parsing a string at line 1 column 22".into())
    );
}

/// Every error says what serde_json says of the whole body, at the same line and column.
#[test]
fn errors_read_as_the_whole_body_path_reads_them() {
    let whole = |body: &str| {
        rows_of(body.as_bytes())
            .map(|r| r.len())
            .map_err(|e| e.detail)
    };
    let row2 = ROW.replace("c1", "c2");
    let bodies = [
        // cut off: inside a row, between rows, after a comma, before the envelope ends
        two_rows()[..100].to_string(),
        format!(r#"{{"code":200,"data":[{ROW}"#),
        format!("{{\"code\":200,\"data\":[{ROW},\n "),
        format!(r#"{{"code":200,"data":[{ROW}]"#),
        // wrong between rows
        format!(r#"{{"code":200,"data":[{ROW} {row2}]}}"#),
        format!("{{\"code\":200,\"data\":[\n{ROW},\n]}}"),
        // a bad row, on a later line
        format!("{{\"code\":200,\"data\":[{ROW},\n\n  {{\"rp_id\":\"1\",\"time\":}}]}}"),
        // wrong after the rows, on the array's line and on a later one
        format!(r#"{{"data":[{ROW},{row2}],"code":"x2"}}"#),
        format!("{{\"data\":[{ROW},\n{row2}],\n\"code\":2 \"msg\":1}}"),
        format!(r#"{{"data":[{ROW}]}} trailing"#),
        // wrong before them
        format!(r#"{{"code":200,,"data":[{ROW}]}}"#),
        r#"{"code":200,"data":"rows"}"#.to_string(),
        "\u{FEFF}".to_string(),
        " \n ".to_string(),
    ];
    for body in &bodies {
        let want = whole(body);
        assert!(want.is_err(), "{body}");
        assert_eq!(
            same_however_fed(body.as_bytes()),
            want.map(|_| String::new()),
            "{body}"
        );
    }
    // An answer code that is not 200 or 404: the API's reason, whatever the rows.
    let failed = format!(r#"{{"data":[{ROW}],"code":500,"msg":"Internal error"}}"#);
    assert_eq!(
        same_however_fed(failed.as_bytes()),
        Err("answer code 500: Internal error".into())
    );
}

#[test]
fn a_row_that_is_not_an_object_is_an_error_at_its_start() {
    for (body, col) in [(r#"{"data":[1]}"#, 10), (r#"{"data":[{}, "x"]}"#, 14)] {
        assert!(rows_of(body.as_bytes()).is_err());
        assert_eq!(
            same_however_fed(body.as_bytes()),
            Err(format!(
                "invalid report answer: invalid type: expected a row object at line 1 column {col}"
            ))
        );
    }
}

#[test]
fn holds_a_partial_row_not_the_body() {
    let mut d = Decoder::default();
    d.start();
    let body = format!(r#"{{"code":200,"data":[{}]}}"#, vec![ROW; 1000].join(","));
    for piece in body.as_bytes().chunks(4096) {
        d.extend(piece).unwrap();
        assert!(d.pending.len() < 4096 + ROW.len(), "{}", d.pending.len());
    }
    assert!(d.skeleton.len() < 40, "{}", d.skeleton);
    assert_eq!(d.finish().unwrap().items.len(), 1000);
}
