use super::*;
use jiff::civil::date;

#[test]
fn trim_is_str_trim() {
    // Every character below 0x3000 (all of ASCII, Latin-1's NBSP, the Unicode spaces
    // up to U+205F) alone, at either end and at both, around a visible letter.
    for c in (0u32..0x3000).filter_map(char::from_u32) {
        for s in [
            format!("{c}"),
            format!("{c}a"),
            format!("a{c}"),
            format!("{c}a{c}"),
            format!("{c}{c}"),
        ] {
            assert_eq!(trim(&s), s.trim(), "{s:?}");
        }
    }
    assert_eq!(trim(""), "");
}

#[test]
fn results() {
    for (s, want) in [
        ("ok", Outcome::Ok),
        (" OK ", Outcome::Ok),
        ("hung up", Outcome::HungUp),
        ("Hung Up", Outcome::HungUp),
        ("hung_up", Outcome::HungUp),
        ("HUNGUP", Outcome::HungUp),
        ("  hung   up ", Outcome::HungUp),
        ("hung", Outcome::Other),
        ("", Outcome::Other),
        ("okay", Outcome::Other),
        ("hung up now", Outcome::Other),
    ] {
        assert_eq!(parse_result(s), want, "{s:?}");
    }
}

#[test]
fn options() {
    assert_eq!(parse_option(" pulse "), Some(Cow::Borrowed("PULSE")));
    assert_eq!(parse_option("Pulse"), Some(Cow::Borrowed("PULSE")));
    assert_eq!(parse_option(" AGENTE"), Some(Cow::Borrowed("AGENTE")));
    assert_eq!(parse_option("   "), None);
    assert_eq!(parse_option("PULSES"), Some(Cow::Borrowed("PULSES")));
}

#[test]
fn durations() {
    for (s, want) in [
        ("42", Some(42.0)),
        (" 4.5 ", Some(4.5)),
        ("0", Some(0.0)),
        ("00:01:05", Some(65.0)),
        ("1:00:00", Some(3600.0)),
        ("01:05", Some(65.0)),
        ("75:10", Some(4510.0)),
        ("-3", None),
        ("", None),
        ("abc", None),
        ("1:60", None),
        ("1:61:00", None),
        ("1::2", None),
        ("1:2:3:4", None),
        ("NaN", None),
        ("inf", None),
        ("-0:10", None),
    ] {
        assert_eq!(parse_duration(s), want, "{s:?}");
    }
}

#[test]
fn dates() {
    let want = date(2026, 11, 27).at(8, 5, 9, 0);
    assert_eq!(parse_date("2026-11-27 08:05:09"), Some(want));
    assert_eq!(parse_date("2026-11-27T08:05:09"), Some(want));
    assert_eq!(parse_date("20261127080509"), Some(want));
    assert_eq!(
        parse_date(" 2026112708 "),
        Some(date(2026, 11, 27).at(8, 0, 0, 0))
    );
    for bad in [
        "",
        "2026-11-27",
        "2026-13-01 00:00:00",
        "2026-02-30 00:00:00",
        "20261127250000",
        "2026/11/27 08:05:09",
        "2026-11-27 08:05:9x",
        "+2026112708",
    ] {
        assert_eq!(parse_date(bad), None, "{bad:?}");
    }
}

#[test]
fn labels_are_capped_on_char_boundaries() {
    let long = "é".repeat(100);
    let v = label_value(&long);
    assert!(v.len() <= MAX_LABEL_LEN && v.len() == 128);
    assert_eq!(label_value("  Menú  "), "Menú");
    let spaced = format!("{} {}", "a".repeat(MAX_LABEL_LEN - 1), "b".repeat(10));
    assert_eq!(label_value(&spaced), "a".repeat(MAX_LABEL_LEN - 1));
}

#[test]
fn decodes_strings_numbers_nulls_and_missing_fields() {
    let body = br#"{"code":200,"error":null,"msg":"2 records were found","data":[
        {"rp_id":7,"rp_name":"Men\u00fa \"P\"","cod_opc_menu":"1","dn_transfer":null,"date":"2026-11-27 08:00:00","result":"ok","ani":"300","time":12.5,"customer_id":"","conn_id":"c1","extra":{"x":1}},
        {"rp_name":["odd"]}
    ]}"#;
    let env = decode(body).unwrap();
    assert_eq!(env.code, Some(200));
    let rows = env.data.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].rp_id.as_str(), "7");
    assert_eq!(rows[0].rp_name.as_str(), "Menú \"P\"");
    assert_eq!(rows[0].dn_transfer.as_str(), "");
    assert_eq!(rows[0].time.as_str(), "12.5");
    let r = rows[1].read();
    assert_eq!(
        (r.rp_id, r.rp_name, r.outcome),
        ("unknown", "", Outcome::Other)
    );
}

#[test]
fn null_data_and_invalid_utf8() {
    assert!(
        decode(br#"{"code":404,"msg":"Validate dates entered","data":null}"#)
            .unwrap()
            .data
            .is_none()
    );
    let mut body = br#"{"code":200,"data":[{"rp_name":"A"#.to_vec();
    body.push(0xff);
    body.extend_from_slice(br#"B"}]}"#);
    let env = decode(&body).unwrap();
    assert_eq!(env.data.unwrap()[0].rp_name.as_str(), "A\u{fffd}B");
    assert!(decode(b"<html>502</html>").is_err());
    assert!(decode(br#"{"code":200,"data":"nope"}"#).is_err());
    assert!(decode(br#"{"code":200,"data":[{"rp_id":"1"#).is_err());
}

#[test]
fn identity_is_stable_whatever_the_row_length() {
    // Pinned: saved states hold these values; a change would count rows again.
    let row = RawRow {
        rp_id: Field("1001".into()),
        rp_name: Field("Menú Principal".into()),
        date: Field("2026-11-27 10:00:00".into()),
        conn_id: Field("c1".into()),
        ..Default::default()
    };
    // The streaming hasher over the same bytes, fed field by field.
    let fields = |r: &RawRow<'_>| {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for f in [
            &r.rp_id,
            &r.rp_name,
            &r.cod_opc_menu,
            &r.dn_transfer,
            &r.date,
            &r.result,
            &r.ani,
            &r.time,
            &r.customer_id,
            &r.conn_id,
        ] {
            h.update(&(f.0.len() as u64).to_le_bytes());
            h.update(f.0.as_bytes());
        }
        h.digest128()
    };
    assert_eq!(row.identity(), fields(&row));
    assert_eq!(row.identity(), 0x18718773ecfdfff51a969377486893a4);
    let mut long = row.clone();
    long.rp_name = Field("x".repeat(600).into());
    assert_eq!(long.identity(), fields(&long));
    assert_ne!(long.identity(), row.identity());
    let mut edge = row.clone();
    edge.conn_id = Field("y".repeat(512 - 80 - 4 - 15 - 19).into());
    assert_eq!(edge.identity(), fields(&edge));
    edge.conn_id = Field("y".repeat(512 - 80 - 4 - 15 - 19 + 1).into());
    assert_eq!(edge.identity(), fields(&edge));
    // A scratch buffer that held a longer row first changes nothing.
    let mut scratch = Vec::new();
    assert_eq!(long.identity_in(&mut scratch), fields(&long));
    assert_eq!(row.identity_in(&mut scratch), fields(&row));
    assert_eq!(
        row.identity_in(&mut scratch),
        0x18718773ecfdfff51a969377486893a4
    );
}

#[test]
fn identity_is_the_ten_fields() {
    let a = RawRow {
        rp_id: Field("ab".into()),
        rp_name: Field("c".into()),
        ..Default::default()
    };
    let b = RawRow {
        rp_id: Field("a".into()),
        rp_name: Field("bc".into()),
        ..Default::default()
    };
    assert_ne!(a.identity(), b.identity());
    assert_eq!(a.identity(), a.clone().identity());
    let mut c = a.clone();
    c.conn_id = Field("x".into());
    assert_ne!(a.identity(), c.identity());
}

/// The readings as first written (allocating): the fast ones must agree with them.
fn reference_result(s: &str) -> Outcome {
    let s = s.trim();
    if s.eq_ignore_ascii_case("ok") {
        return Outcome::Ok;
    }
    let norm: String = s
        .chars()
        .map(|c| {
            if c == '_' {
                ' '
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let words: Vec<&str> = norm.split_whitespace().collect();
    match words.as_slice() {
        ["hung", "up"] | ["hungup"] => Outcome::HungUp,
        _ => Outcome::Other,
    }
}

proptest::proptest! {
    #[test]
    fn results_agree_with_the_reference(s in "[ _\\t\u{a0}hHuUnNgGpPoOkK\\PC]{0,12}") {
        proptest::prop_assert_eq!(parse_result(&s), reference_result(&s));
    }

    #[test]
    fn durations_never_take_four_parts(a in 0u32..99, b in 0u32..60, c in 0u32..60, d in 0u32..60) {
        proptest::prop_assert_eq!(parse_duration(&format!("{a}:{b}:{c}:{d}")), None);
        proptest::prop_assert_eq!(parse_duration(&format!("{a}:{b:02}:{c:02}:")), None);
    }

    #[test]
    fn trim_agrees_with_str_trim(s in "[ \t\u{a0}\u{3000}\u{b}\u{1c}a-z\u{e1}]{0,8}") {
        proptest::prop_assert_eq!(trim(&s), s.trim());
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = parse_duration(&s);
        let _ = parse_date(&s);
        let _ = parse_result(&s);
        let _ = parse_option(&s);
        let _ = label_value(&s);
    }

    #[test]
    fn clock_forms_agree_with_seconds(h in 0u64..100, m in 0u64..60, s in 0u64..60) {
        let total = (h * 3600 + m * 60 + s) as f64;
        proptest::prop_assert_eq!(parse_duration(&format!("{h:02}:{m:02}:{s:02}")), Some(total));
        proptest::prop_assert_eq!(parse_duration(&format!("{h}:{m:02}:{s:02}")), Some(total));
        proptest::prop_assert_eq!(parse_duration(&format!("{}", total as u64)), Some(total));
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = decode(&bytes);
    }
}
